"""CIFAR-10 reading (pickles, image tree, zip), the memory-mapped cache, and balanced subsets.

Every fixture is a tiny dataset written into ``tmp_path``; nothing here needs /work/shared.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lrlab.data import (
    balanced_subset,
    cifar,
    default_cache_dir,
    load_cifar10,
    resolve_source,
)

CLASSES = ("bird", "cat", "deer")  # already sorted: the tree's label order
N_TRAIN, N_TEST = 4, 2
OLD_NS = 1_600_000_000 * 10**9  # an mtime far enough in the past to be memoised


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    """No test inherits a data or cache location from the environment."""
    for var in ("LRLAB_DATA", "LRLAB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)


def _pixels(seed: int, flat: bool = False) -> dict[str, np.ndarray]:
    """Images (uint8 NCHW) and labels per split: N_TRAIN / N_TEST per class, grouped by class.

    ``flat`` gives one colour per image, which JPEG keeps almost exactly.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        total = n * len(CLASSES)
        if flat:
            colours = rng.integers(0, 256, (total, 3, 1, 1), dtype=np.uint8)
            x = np.broadcast_to(colours, (total, 3, 32, 32))
        else:
            x = rng.integers(0, 256, (total, 3, 32, 32), dtype=np.uint8)
        out[f"{split}_x"] = np.ascontiguousarray(x)
        out[f"{split}_y"] = np.repeat(np.arange(len(CLASSES), dtype=np.int64), n)
    return out


def _encode(img_chw: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img_chw.transpose(1, 2, 0))).save(buf, format=fmt, quality=95)
    return buf.getvalue()


def _members(arr: dict[str, np.ndarray], ext: str = "png") -> dict[str, bytes]:
    """Relative path -> encoded image, in the image-folder layout."""
    fmt = {"png": "PNG", "jpg": "JPEG"}[ext]
    files = {}
    for split in ("train", "test"):
        for i, (img, label) in enumerate(zip(arr[f"{split}_x"], arr[f"{split}_y"])):
            files[f"{split}/{CLASSES[label]}/{i:04d}.{ext}"] = _encode(img, fmt)
    return files


def _write_tree(root: Path, arr: dict[str, np.ndarray], ext: str = "png") -> Path:
    for rel, data in _members(arr, ext).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _write_zip(path: Path, arr: dict[str, np.ndarray], ext: str = "png", top: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for rel, data in _members(arr, ext).items():
            zf.writestr(top + rel, data)
    return path


def _write_pickles(root: Path, seed: int) -> tuple[Path, dict[str, np.ndarray], tuple[str, ...]]:
    """An official-style folder: 5 train batches of 3, a test batch of 4, label names not sorted."""
    names = (b"zebra", b"ant", b"cow")
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 7):
        n = 3 if i <= 5 else 4
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 3, n)]
        name = f"data_batch_{i}" if i <= 5 else "test_batch"
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f, protocol=2)
        xs.append(data.reshape(n, 3, 32, 32))
        ys.append(np.array(labels, dtype=np.int64))
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": list(names), b"num_cases_per_batch": 3}, f, protocol=2)
    arr = {"train_x": np.concatenate(xs[:5]), "train_y": np.concatenate(ys[:5]),
           "test_x": xs[5], "test_y": ys[5]}
    return root, arr, tuple(n.decode() for n in names)


def _assert_same(got, arr: dict[str, np.ndarray], classes=CLASSES, atol: int = 0) -> None:
    assert got.classes == classes
    for name, want in arr.items():
        have = getattr(got, name)
        assert isinstance(have, np.memmap), name
        assert have.dtype == want.dtype and have.shape == want.shape, name
        if atol:
            assert np.abs(have.astype(int) - want.astype(int)).max() <= atol, name
        else:
            np.testing.assert_array_equal(have, want, err_msg=name)


def _load_quietly(src, cache: Path):
    """Load and fail on any warning (a healthy cache must never warn)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_cifar10(src, cache_dir=cache)


# ------------------------------------------------------------------------------ round trips


def test_tree_png_round_trip_is_exact(tmp_path):
    arr = _pixels(0)
    root = _write_tree(tmp_path / "tree", arr)
    got = _load_quietly(root, tmp_path / "cache")
    _assert_same(got, arr)
    assert got.source == str(root.resolve()) and len(got.key) == 64
    folder = tmp_path / "cache" / f"cifar10-{got.key[:16]}"
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json", "test_x.npy", "test_y.npy", "train_x.npy", "train_y.npy"]


@pytest.mark.parametrize("top", ["", "cifar10/"])
def test_zip_png_round_trip_is_exact(tmp_path, top):
    arr = _pixels(1)
    src = _write_zip(tmp_path / "c.zip", arr, top=top)
    _assert_same(_load_quietly(src, tmp_path / "cache"), arr)


def test_zip_and_tree_jpeg_round_trip_is_close(tmp_path):
    arr = _pixels(2, flat=True)
    tree = _write_tree(tmp_path / "tree", arr, ext="jpg")
    src = _write_zip(tmp_path / "c.zip", arr, ext="jpg")
    a = _load_quietly(src, tmp_path / "cache")
    b = _load_quietly(tree, tmp_path / "cache")
    _assert_same(a, arr, atol=3)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert a.key != b.key


def test_pickle_round_trip_is_exact_and_keeps_label_order(tmp_path):
    root, arr, classes = _write_pickles(tmp_path / "cifar-10-batches-py", 3)
    got = _load_quietly(root, tmp_path / "cache")
    _assert_same(got, arr, classes=classes)
    assert got.classes == ("zebra", "ant", "cow")


def test_progress_bar_runs(tmp_path, capsys):
    src = _write_zip(tmp_path / "c.zip", _pixels(4))
    load_cifar10(src, cache_dir=tmp_path / "cache", progress=True)
    assert "decoding" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ cache


def _no_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    for name in ("_decode_image", "_read_pickles", "_read_zip", "_read_tree"):
        monkeypatch.setattr(cifar, name, refuse)


@pytest.mark.parametrize("fmt", ["zip", "tree", "pickle"])
def test_second_load_uses_the_cache(tmp_path, monkeypatch, fmt):
    if fmt == "pickle":
        src, arr, classes = _write_pickles(tmp_path / "p", 5)
    else:
        arr, classes = _pixels(5), CLASSES
        src = (_write_zip(tmp_path / "c.zip", arr) if fmt == "zip"
               else _write_tree(tmp_path / "tree", arr))
    first = _load_quietly(src, tmp_path / "cache")
    _no_decoding(monkeypatch)
    second = _load_quietly(src, tmp_path / "cache")
    assert second.key == first.key
    _assert_same(second, arr, classes=classes)


def test_unchanged_file_is_not_rehashed(tmp_path, monkeypatch):
    src = _write_zip(tmp_path / "c.zip", _pixels(6))
    os.utime(src, ns=(OLD_NS, OLD_NS))
    key = _load_quietly(src, tmp_path / "cache").key
    memo = (tmp_path / "cache" / "checksums.json").read_text()
    assert str(src.resolve()) in memo and key in memo
    hashed = []
    real = cifar._sha256_file
    monkeypatch.setattr(cifar, "_sha256_file", lambda p: hashed.append(Path(p)) or real(p))
    assert _load_quietly(src, tmp_path / "cache").key == key
    assert src.resolve() not in hashed and len(hashed) == 4  # the four cached arrays only


def test_recently_modified_file_is_hashed_but_not_memoised(tmp_path):
    src = _write_zip(tmp_path / "c.zip", _pixels(6))  # mtime is now
    _load_quietly(src, tmp_path / "cache")
    assert not (tmp_path / "cache" / "checksums.json").exists()


def test_changed_zip_gives_new_key_and_arrays(tmp_path):
    src = _write_zip(tmp_path / "c.zip", _pixels(7))
    os.utime(src, ns=(OLD_NS, OLD_NS))
    first = _load_quietly(src, tmp_path / "cache")
    new = _pixels(8)
    _write_zip(src, new)
    os.utime(src, ns=(OLD_NS + 10**9, OLD_NS + 10**9))  # still "old", but a new stamp
    second = _load_quietly(src, tmp_path / "cache")
    assert second.key != first.key
    _assert_same(second, new)


def test_changed_tree_gives_new_key_and_arrays(tmp_path):
    arr = _pixels(9)
    root = _write_tree(tmp_path / "tree", arr)
    first = _load_quietly(root, tmp_path / "cache")
    changed = {k: v.copy() for k, v in arr.items()}
    changed["train_x"][0] = 255 - changed["train_x"][0]
    (root / "train" / CLASSES[0] / "0000.png").write_bytes(_encode(changed["train_x"][0], "PNG"))
    os.utime(root / "train" / CLASSES[0] / "0000.png", ns=(OLD_NS, OLD_NS))
    second = _load_quietly(root, tmp_path / "cache")
    assert second.key != first.key
    _assert_same(second, changed)


def test_changed_pickle_gives_new_key(tmp_path):
    root, _, _ = _write_pickles(tmp_path / "p", 10)
    first = _load_quietly(root, tmp_path / "cache")
    shutil.rmtree(root)
    _, arr, classes = _write_pickles(root, 11)
    second = _load_quietly(root, tmp_path / "cache")
    assert second.key != first.key
    _assert_same(second, arr, classes=classes)


def _truncate(folder: Path) -> None:
    p = folder / "train_x.npy"
    p.write_bytes(p.read_bytes()[:-100])


def _flip_byte(folder: Path) -> None:
    p = folder / "test_x.npy"
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))


def _flip_label(folder: Path) -> None:
    p = folder / "train_y.npy"
    data = bytearray(p.read_bytes())
    data[-8] ^= 0x01  # a label changes, the file still parses
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason", [
    (_truncate, "train_x.npy has"),
    (_flip_byte, "test_x.npy does not match its sha256"),
    (_flip_label, "train_y.npy does not match its sha256"),
    (lambda f: (f / "meta.json").unlink(), "unreadable meta.json"),
    (lambda f: (f / "meta.json").write_text("{not json"), "unreadable meta.json"),
    (lambda f: (f / "meta.json").write_text("{}"), "malformed meta.json"),
    (lambda f: (f / "test_y.npy").unlink(), "test_y.npy"),
])
def test_corrupt_cache_is_detected_warned_and_rebuilt(tmp_path, damage, reason):
    arr = _pixels(12)
    src = _write_zip(tmp_path / "c.zip", arr)
    key = _load_quietly(src, tmp_path / "cache").key
    folder = tmp_path / "cache" / f"cifar10-{key[:16]}"
    damage(folder)
    with pytest.warns(UserWarning, match=rf"cache .*cifar10-{key[:16]} is corrupt \({reason}"):
        got = load_cifar10(src, cache_dir=tmp_path / "cache")
    _assert_same(got, arr)
    _assert_same(_load_quietly(src, tmp_path / "cache"), arr)  # healthy again
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []


def test_corrupt_checksum_memo_is_ignored(tmp_path):
    arr = _pixels(13)
    src = _write_zip(tmp_path / "c.zip", arr)
    os.utime(src, ns=(OLD_NS, OLD_NS))
    key = _load_quietly(src, tmp_path / "cache").key
    (tmp_path / "cache" / "checksums.json").write_text("[broken")
    got = _load_quietly(src, tmp_path / "cache")
    assert got.key == key
    _assert_same(got, arr)


# ----------------------------------------------------------------------------------- errors


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=rf"(?s){missing}.*--data-dir.*LRLAB_DATA"):
        load_cifar10(missing, cache_dir=tmp_path / "cache")


def test_directory_without_a_source_lists_every_path_tried(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        resolve_source(tmp_path / "empty")
    msg = str(err.value)
    for name in ("cifar-10-batches-py", "cifar10-jpeg.zip", "cifar-10", "cifar10"):
        assert str(tmp_path / "empty" / name) in msg
    assert "image-folder tree" in msg and "LRLAB_DATA" in msg


def test_truncated_zip_names_it(tmp_path):
    src = _write_zip(tmp_path / "c.zip", _pixels(14))
    src.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(ValueError, match=rf"{src} is not a readable zip"):
        load_cifar10(src, cache_dir=tmp_path / "cache")


def test_damaged_zip_member_names_it(tmp_path):
    src = tmp_path / "c.zip"
    with zipfile.ZipFile(src, "w") as zf:
        for split in ("train", "test"):
            zf.writestr(f"{split}/cat/0000.png", _encode(_pixels(15)["train_x"][0], "PNG"))
    data = bytearray(src.read_bytes())
    offset = data.index(b"IDAT")  # inside the first member's PNG data
    data[offset + 8] ^= 0xFF
    src.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"train/cat/0000\.png in zip .*c\.zip"):
        load_cifar10(src, cache_dir=tmp_path / "cache")


def test_unreadable_image_names_the_file(tmp_path):
    root = _write_tree(tmp_path / "tree", _pixels(16))
    bad = root / "test" / "cat" / "0001.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=rf"cannot decode image {bad}"):
        load_cifar10(root, cache_dir=tmp_path / "cache")


def test_unreadable_zip_member_names_it(tmp_path):
    src = tmp_path / "c.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("train/cat/0000.jpg", b"\xff\xd8 not really a jpeg")
        zf.writestr("test/cat/0000.jpg", b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode image train/cat/0000\.jpg in zip .*c\.zip"):
        load_cifar10(src, cache_dir=tmp_path / "cache")


def test_wrong_image_size_names_file_and_size(tmp_path):
    root = _write_tree(tmp_path / "tree", _pixels(17))
    bad = root / "train" / "deer" / "0002.png"
    Image.new("RGB", (31, 32)).save(bad)
    with pytest.raises(ValueError, match=rf"image {bad} is 31x32; expected 32x32"):
        load_cifar10(root, cache_dir=tmp_path / "cache")


def test_tree_without_test_folder(tmp_path):
    root = _write_tree(tmp_path / "tree", _pixels(18))
    shutil.rmtree(root / "test")
    with pytest.raises(ValueError, match=rf"image tree {root} has no test/ folder"):
        load_cifar10(root, cache_dir=tmp_path / "cache")


def test_tree_with_different_class_folders(tmp_path):
    root = _write_tree(tmp_path / "tree", _pixels(19))
    (root / "test" / "deer").rename(root / "test" / "dog")
    with pytest.raises(ValueError, match=r"different class folders \(only in train: \['deer'\], "
                                         r"only in test: \['dog'\]\)"):
        load_cifar10(root, cache_dir=tmp_path / "cache")


def test_empty_class_folder(tmp_path):
    root = _write_tree(tmp_path / "tree", _pixels(20))
    for f in (root / "test" / "cat").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=r"class folder test/cat has no"):
        load_cifar10(root, cache_dir=tmp_path / "cache")


def test_zip_without_train_folder(tmp_path):
    src = tmp_path / "c.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("test/cat/0000.png", _encode(_pixels(21)["test_x"][0], "PNG"))
    with pytest.raises(ValueError, match=rf"zip {src} has no train/ folder"):
        load_cifar10(src, cache_dir=tmp_path / "cache")


def test_zip_with_empty_train_folder(tmp_path):
    src = tmp_path / "c.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("data/train/", b"")
        zf.writestr("data/test/cat/0000.png", _encode(_pixels(21)["test_x"][0], "PNG"))
    with pytest.raises(ValueError, match=r"different class folders \(only in train: \[\], "):
        load_cifar10(src, cache_dir=tmp_path / "cache")


def test_pickle_batch_with_wrong_shape(tmp_path):
    root, _, _ = _write_pickles(tmp_path / "p", 22)
    with open(root / "data_batch_2", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 3000), np.uint8), b"labels": [0, 1, 2]}, f)
    msg = r"batch .*data_batch_2: data is uint8 \[3, 3000\].*expected uint8 \[n, 3072\]"
    with pytest.raises(ValueError, match=msg):
        load_cifar10(root, cache_dir=tmp_path / "cache")


def test_pickle_folder_missing_a_batch(tmp_path):
    root, _, _ = _write_pickles(tmp_path / "p", 23)
    (root / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{root} has no data_batch_4"):
        load_cifar10(root, cache_dir=tmp_path / "cache")


def test_unpicklable_batch(tmp_path):
    root, _, _ = _write_pickles(tmp_path / "p", 24)
    (root / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"cannot unpickle CIFAR-10 file .*test_batch"):
        load_cifar10(root, cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------- locating the data


def test_resolve_order_explicit_then_env_then_default(tmp_path, monkeypatch):
    explicit = _write_zip(tmp_path / "a.zip", _pixels(25))
    env = _write_zip(tmp_path / "b.zip", _pixels(25))
    default = _write_zip(tmp_path / "c.zip", _pixels(25))
    monkeypatch.setattr(cifar, "_DEV_DEFAULT", default)
    assert resolve_source() == default.resolve()
    monkeypatch.setenv("LRLAB_DATA", str(env))
    assert resolve_source() == env.resolve()
    assert resolve_source(explicit) == explicit.resolve()
    assert resolve_source(str(explicit)) == explicit.resolve()


def test_a_set_but_missing_location_does_not_fall_back(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "_DEV_DEFAULT", _write_zip(tmp_path / "c.zip", _pixels(26)))
    monkeypatch.setenv("LRLAB_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match=r"(?s)\$LRLAB_DATA.*gone"):
        resolve_source()
    monkeypatch.delenv("LRLAB_DATA")
    with pytest.raises(FileNotFoundError, match=r"given path"):
        resolve_source(tmp_path / "also-gone")


def test_missing_default_says_how_to_point_at_data(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "_DEV_DEFAULT", tmp_path / "shared" / "cifar10-jpeg.zip")
    msg = r"(?s)development default.*shared/cifar10-jpeg\.zip.*--data-dir"
    with pytest.raises(FileNotFoundError, match=msg):
        resolve_source()


def test_directory_containing_a_source(tmp_path):
    parent = tmp_path / "data"
    _write_tree(parent / "cifar10", _pixels(27))
    assert resolve_source(parent) == (parent / "cifar10").resolve()
    _write_tree(parent / "cifar-10", _pixels(27))
    assert resolve_source(parent) == (parent / "cifar-10").resolve()
    _write_zip(parent / "cifar10-jpeg.zip", _pixels(27))
    assert resolve_source(parent) == (parent / "cifar10-jpeg.zip").resolve()
    _write_pickles(parent / "cifar-10-batches-py", 27)
    assert resolve_source(parent) == (parent / "cifar-10-batches-py").resolve()  # preferred
    assert resolve_source(parent / "cifar10") == (parent / "cifar10").resolve()  # direct


def test_default_cache_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "lrlab"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "lrlab"
    monkeypatch.setenv("LRLAB_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


# ---------------------------------------------------------------------------------- subsets


def _labels() -> np.ndarray:
    return np.random.default_rng(0).permutation(np.repeat(np.arange(4), [30, 25, 40, 20]))


def test_balanced_subset_counts_sorted_deterministic():
    y = _labels()
    idx = balanced_subset(y, 10, seed=1)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [10, 10, 10, 10]
    np.testing.assert_array_equal(idx, balanced_subset(y, 10, seed=1))
    assert not np.array_equal(idx, balanced_subset(y, 10, seed=2))
    assert set(balanced_subset(y, 5, seed=1)) <= set(idx)  # sizes nest for a fixed seed
    assert balanced_subset(y, 20, seed=0).size == 80
    assert balanced_subset(y, 0, seed=0).size == 0


def test_balanced_subset_errors_when_a_class_is_too_small():
    msg = r"class 3 has only 20 examples; expected at least n_per_class=21"
    with pytest.raises(ValueError, match=msg):
        balanced_subset(_labels(), 21, seed=0)
    with pytest.raises(ValueError, match=r"1-D"):
        balanced_subset(np.zeros((2, 2), int), 1, seed=0)
    with pytest.raises(ValueError, match=r">= 0"):
        balanced_subset(_labels(), -1, seed=0)


def test_cifar10_vectors_pools_flattens_and_balances(cifar_root):
    from lrlab.data import cifar10_vectors

    s = cifar10_vectors(2, 1, seed=3, pool=4, data_dir=cifar_root)
    assert s.train.x.shape == (20, 3 * 8 * 8) and s.test.x.shape == (10, 192)
    assert s.train.task == "multiclass" and s.train.num_classes == 10
    assert torch.bincount(s.train.y, minlength=10).tolist() == [2] * 10
    again = cifar10_vectors(2, 1, seed=3, pool=4, data_dir=cifar_root)
    assert torch.equal(again.train.x, s.train.x)
    full = cifar10_vectors(2, 1, seed=3, pool=1, data_dir=cifar_root)
    pooled = torch.nn.functional.avg_pool2d(full.train.x.view(20, 3, 32, 32), 4).flatten(1)
    torch.testing.assert_close(pooled, s.train.x)
    with pytest.raises(ValueError, match="pool must be a positive divisor of 32, got 5"):
        cifar10_vectors(2, 1, seed=0, pool=5, data_dir=cifar_root)
