"""CIFAR-10 without torchvision: decode it once into a memory-mapped uint8 cache.

Three source formats are read: the official ``cifar-10-batches-py`` pickles, an image-folder
tree ``train/<class>/*.png`` + ``test/<class>/...``, and a zip of such a tree. The decoded
arrays are cached under a directory keyed by the source's checksum, so later loads are a few
file checks plus ``np.load(mmap_mode="r")``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import secrets
import shutil
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich import progress as rp
from rich.console import Console

DATA_ENV = "LRLAB_DATA"
CACHE_ENV = "LRLAB_CACHE"
# The development copy, reached from the repo root (the parent of the ``lrlab`` package).
_DEV_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg.zip"
# Names looked for inside a directory that is not itself a source, in order of preference
# (the lossless official release first).
_CONTAINED = ("cifar-10-batches-py", "cifar10-jpeg.zip", "cifar-10", "cifar10")

_PICKLE_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_PICKLE_TEST = ("test_batch",)
_PICKLE_META = "batches.meta"
_PICKLE_FILES = _PICKLE_TRAIN + _PICKLE_TEST + (_PICKLE_META,)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SPLITS = ("train", "test")
_SIDE = 32
_ARRAYS = ("train_x", "train_y", "test_x", "test_y")
_CACHE_VERSION = 1
_MEMO_NAME = "checksums.json"
# A file modified this recently is hashed but not memoised: a second write within the same
# mtime tick with the same size would otherwise go unnoticed (git's "racy" case).
_RACY_NS = 2_000_000_000
_EXPECTED = (
    "expected one of: the official 'cifar-10-batches-py' folder (data_batch_1..5, test_batch, "
    "batches.meta); an image-folder tree with train/<class>/*.png|*.jpg|*.jpeg and "
    "test/<class>/...; or a zip of such a tree (e.g. cifar10-jpeg.zip). Give the path with "
    f"--data-dir (or the config's data.root) or ${DATA_ENV}"
)

# split -> class name -> [(name, size, mtime_ns)], names sorted; name is a zip member name
# or a file name inside the class folder.
_Listing = dict[str, dict[str, list[tuple[str, int, int]]]]


@dataclass(frozen=True, eq=False)
class ImageArrays:
    """CIFAR-style train/test images (uint8 NCHW) and int64 labels, memory-mapped from the cache.

    ``eq=False``: comparing arrays with ``==`` is elementwise, so identity equality is the only
    safe default.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]
    source: str
    key: str


class _CacheInvalid(Exception):
    """The cache directory exists but cannot be trusted (the message says why)."""


# ---------------------------------------------------------------------------- locating the data


def default_cache_dir() -> Path:
    """Where decoded arrays live: ``$LRLAB_CACHE``, else ``$XDG_CACHE_HOME/lrlab``, else
    ``~/.cache/lrlab``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "lrlab"
    return Path.home() / ".cache" / "lrlab"


def _is_pickle_dir(p: Path) -> bool:
    """Does ``p`` hold any of the official batch files (so it is meant as format (a))?"""
    return any((p / name).is_file() for name in _PICKLE_FILES)


def _is_source(p: Path) -> bool:
    """Is ``p`` itself a source? Any file counts as a zip (a corrupt one is reported when opened)."""
    if p.is_file():
        return True
    return p.is_dir() and (_is_pickle_dir(p) or any((p / s).is_dir() for s in _SPLITS))


def resolve_source(path: str | os.PathLike | None = None) -> Path:
    """The CIFAR-10 source to read: ``path``, else ``$LRLAB_DATA``, else the development copy.

    ``path`` may be a source itself or a directory holding one of ``cifar-10-batches-py/``,
    ``cifar10-jpeg.zip``, ``cifar-10/`` or ``cifar10/``. A set-but-wrong location is an error,
    never a silent fall back to the next one.
    """
    if path is not None and str(path) != "":
        base, origin = Path(path).expanduser(), "given path (--data-dir / config)"
    elif os.environ.get(DATA_ENV):
        base, origin = Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV} variable"
    else:
        base, origin = _DEV_DEFAULT, f"development default; ${DATA_ENV} is not set"
    tried = [base]
    if _is_source(base):
        return base.resolve()
    if base.is_dir():
        for name in _CONTAINED:
            candidate = base / name
            tried.append(candidate)
            if _is_source(candidate):
                return candidate.resolve()
    lines = "\n".join(f"  - {p}" for p in tried)
    raise FileNotFoundError(
        f"CIFAR-10 not found (location from the {origin}); tried:\n{lines}\n{_EXPECTED}."
    )


def _kind(src: Path) -> str:
    """``"zip"``, ``"pickle"`` or ``"tree"`` for a path :func:`resolve_source` returned."""
    if src.is_file():
        return "zip"
    return "pickle" if _is_pickle_dir(src) else "tree"


# ------------------------------------------------------------------------------------ checksums


def _sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks into one reused buffer."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _read_memo(cache_dir: Path) -> dict:
    """The memoised file checksums, or ``{}`` if the memo is missing or unreadable."""
    try:
        memo = json.loads((cache_dir / _MEMO_NAME).read_text())
        return memo["files"] if memo.get("version") == 1 and isinstance(memo["files"], dict) else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # missing or unreadable: it is only a memo, rebuilt below


def _new_sibling(path: Path, tag: str) -> Path:
    """An unused hidden name next to ``path``; unlike ``tempfile`` it gets the umask's permissions."""
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temp sibling and ``os.replace`` it over ``path``."""
    tmp = _new_sibling(path, "tmp")
    try:
        with open(tmp, "x") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _file_checksums(paths: list[Path], cache_dir: Path) -> list[str]:
    """sha256 of each file, memoised in ``checksums.json`` by (absolute path, size, mtime_ns)."""
    memo = _read_memo(cache_dir)
    changed = False
    out = []
    for p in paths:
        ap = str(p.resolve())
        st = os.stat(ap)
        hit = memo.get(ap)
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if isinstance(hit, dict) and {k: hit.get(k) for k in stamp} == stamp and "sha256" in hit:
            out.append(hit["sha256"])
            continue
        digest = _sha256_file(Path(ap))
        out.append(digest)
        if time.time_ns() - st.st_mtime_ns > _RACY_NS:
            memo[ap] = {**stamp, "sha256": digest}
            changed = True
    if changed:
        try:
            _write_atomic(cache_dir / _MEMO_NAME, json.dumps({"version": 1, "files": memo}, indent=0))
        except OSError:
            pass  # a read-only cache dir still works; we just re-hash next time
    return out


def _source_key(src: Path, kind: str, cache_dir: Path) -> str:
    """The checksum the cache is keyed by: the zip's bytes, the pickles, or the tree's listing."""
    if kind == "zip":
        return _file_checksums([src], cache_dir)[0]
    if kind == "pickle":
        paths = [src / name for name in _PICKLE_FILES]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(
                    f"CIFAR-10 pickle folder {src} has no {p.name}; expected "
                    f"{', '.join(_PICKLE_FILES)}"
                )
        h = hashlib.sha256()
        for p, digest in zip(paths, _file_checksums(paths, cache_dir)):
            h.update(f"{p.name}\0{digest}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    entries = sorted(
        (f"{split}/{cls}/{name}", size, mtime)
        for split, by_class in _tree_listing(src).items()
        for cls, files in by_class.items()
        for name, size, mtime in files
    )
    for rel, size, mtime in entries:
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------- decoding


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(_IMAGE_SUFFIXES)


def _tree_listing(root: Path) -> _Listing:
    """Image files of ``root/{train,test}/<class>/``, sorted by name; errors name the bad folder."""
    listing: _Listing = {}
    for split in _SPLITS:
        d = root / split
        if not d.is_dir():
            raise ValueError(
                f"image tree {root} has no {split}/ folder; expected {root}/train/<class>/*.png "
                f"and {root}/test/<class>/..."
            )
        listing[split] = {}
        for cls in sorted(e.name for e in os.scandir(d) if e.is_dir() and not e.name.startswith(".")):
            files = []
            for e in os.scandir(d / cls):
                if e.is_file() and _is_image_name(e.name):
                    st = e.stat()
                    files.append((e.name, st.st_size, st.st_mtime_ns))
            listing[split][cls] = sorted(files)
    return listing


def _zip_listing(zf: zipfile.ZipFile, where: str) -> tuple[_Listing, str]:
    """The zip's ``[top/]{train,test}/<class>/<image>`` members, and the top-folder prefix."""
    names = [n for n in zf.namelist() if not n.startswith("__MACOSX/")]
    tops = {n.split("/", 1)[0] for n in names if "/" in n}  # top-level folders
    prefix = ""
    if not tops & set(_SPLITS) and len(tops) == 1:
        prefix = f"{tops.pop()}/"
    listing: _Listing = {}
    for n in names:
        if not n.startswith(prefix):
            continue
        parts = n[len(prefix):].split("/")
        if parts[0] not in _SPLITS:
            continue
        by_class = listing.setdefault(parts[0], {})  # the split folder exists, even if empty
        if len(parts) != 3 or not parts[1] or parts[1].startswith("."):
            continue
        files = by_class.setdefault(parts[1], [])
        if _is_image_name(parts[2]):  # '' for a folder entry: registers the class folder only
            files.append((n, 0, 0))
    for split in _SPLITS:
        if split not in listing:
            raise ValueError(
                f"zip {where} has no {prefix}{split}/ folder; expected members "
                "train/<class>/*.jpg and test/<class>/... (optionally under one top-level folder)"
            )
        listing[split] = {cls: sorted(listing[split][cls]) for cls in sorted(listing[split])}
    return listing, prefix


def _classes(listing: _Listing, where: str) -> tuple[str, ...]:
    """Sorted class folders, checked to be the same in train and test and none empty."""
    train, test = set(listing["train"]), set(listing["test"])
    if train != test:
        raise ValueError(
            f"{where}: train and test have different class folders (only in train: "
            f"{sorted(train - test)}, only in test: {sorted(test - train)}); expected the same set"
        )
    if not train:
        raise ValueError(f"{where}: train/ has no class folders; expected train/<class>/<images>")
    for split in _SPLITS:
        for cls, files in listing[split].items():
            if not files:
                raise ValueError(f"{where}: class folder {split}/{cls} has no .png/.jpg/.jpeg images")
    return tuple(sorted(train))


def _decode_image(data: bytes, where: str) -> np.ndarray:
    """One image as uint8 [3, 32, 32]; errors name ``where`` (a file or zip member)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
            rgb = np.asarray(im.convert("RGB")) if size == (_SIDE, _SIDE) else None
    except Exception as e:  # Pillow raises many types (OSError, SyntaxError, ValueError, ...)
        raise ValueError(f"cannot decode image {where}: {e}") from e
    if rgb is None:
        raise ValueError(f"image {where} is {size[0]}x{size[1]}; expected {_SIDE}x{_SIDE}")
    return rgb.transpose(2, 0, 1)


@contextmanager
def _progress_bar(total: int, label: str, show: bool) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; draws a rich progress bar on stderr when ``show``."""
    if not show:
        yield lambda n: None
        return
    columns = (rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
               rp.TimeElapsedColumn(), rp.TimeRemainingColumn())
    with rp.Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _decode_listing(listing: _Listing, classes: tuple[str, ...], read: Callable[[str], bytes],
                    where: Callable[[str], str], label: str, progress: bool) -> dict[str, np.ndarray]:
    """Decode every listed image into the four arrays, labels by position in ``classes``."""
    total = sum(len(files) for by_class in listing.values() for files in by_class.values())
    out: dict[str, np.ndarray] = {}
    with _progress_bar(total, label, progress) as advance:
        for split in _SPLITS:
            items = [(name, k) for k, cls in enumerate(classes) for name, _, _ in listing[split][cls]]
            x = np.empty((len(items), 3, _SIDE, _SIDE), dtype=np.uint8)
            y = np.empty(len(items), dtype=np.int64)
            for i, (name, k) in enumerate(items):
                try:
                    data = read(name)
                except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as e:
                    raise ValueError(f"cannot read image {where(name)}: {e}") from e
                x[i] = _decode_image(data, where(name))
                y[i] = k
                if i % 500 == 499:
                    advance(500)
            advance(len(items) % 500)
            out[f"{split}_x"], out[f"{split}_y"] = x, y
    return out


def _read_tree(root: Path, progress: bool) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Decode an image-folder tree (format (b))."""
    listing = _tree_listing(root)
    classes = _classes(listing, f"image tree {root}")
    # read by path relative to the root (a bare file name does not say its split and class)
    rel_listing: _Listing = {
        split: {cls: [(f"{split}/{cls}/{n}", s, m) for n, s, m in files]
                for cls, files in by_class.items()}
        for split, by_class in listing.items()
    }
    arrays = _decode_listing(rel_listing, classes, lambda rel: (root / rel).read_bytes(),
                             lambda rel: str(root / rel), f"decoding {root.name}", progress)
    return arrays, classes


def _read_zip(src: Path, progress: bool) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Decode a zip of an image-folder tree (format (c)), member by member."""
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(f"{src} is not a readable zip ({e}); {_EXPECTED}") from e
    with zf:
        listing, _ = _zip_listing(zf, str(src))
        classes = _classes(listing, f"zip {src}")
        arrays = _decode_listing(listing, classes, zf.read, lambda n: f"{n} in zip {src}",
                                 f"decoding {src.name}", progress)
    return arrays, classes


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official pickle batch as (uint8 [n, 3, 32, 32], int64 [n])."""
    d = _unpickle(path)
    data, labels = d.get(b"data", d.get("data")), d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"CIFAR-10 batch {path} has no b'data' or b'labels' entry")
    data, labels = np.asarray(data), np.asarray(labels)
    n = data.shape[0] if data.ndim else 0
    if data.dtype != np.uint8 or data.shape != (n, 3 * _SIDE * _SIDE) or labels.shape != (n,):
        raise ValueError(
            f"CIFAR-10 batch {path}: data is {data.dtype} {list(data.shape)} with labels "
            f"{list(labels.shape)}; expected uint8 [n, {3 * _SIDE * _SIDE}] with labels [n]"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"CIFAR-10 batch {path}: labels are {labels.dtype}; expected integers")
    return data.reshape(n, 3, _SIDE, _SIDE), labels.astype(np.int64)


# the only callables an official CIFAR-10 batch needs: numpy's array reconstruction (numpy 1 and 2 names)
_ARRAY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                  ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds dicts, lists, bytes, strings, numbers and numpy arrays, and refuses
    every other callable, so a crafted batch file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch holds only arrays, "
                                     "lists and bytes")


def _unpickle(path: Path) -> dict:
    """An official batch, read with :class:`_ArraysOnly` (nothing in the file is run)."""
    try:
        with open(path, "rb") as f:
            d = _ArraysOnly(f, encoding="bytes").load()
    except Exception as e:  # a damaged pickle can raise nearly anything
        raise ValueError(f"cannot unpickle CIFAR-10 file {path}: {e}") from e
    if not isinstance(d, dict):
        kind = type(d).__name__
        raise ValueError(f"CIFAR-10 file {path} holds a {kind}; expected a dict")  # noqa: TRY004
    return d


def _read_pickles(src: Path, progress: bool) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Read the official ``cifar-10-batches-py`` folder (format (a)); classes from batches.meta."""
    meta = _unpickle(src / _PICKLE_META)
    names = meta.get(b"label_names", meta.get("label_names"))
    if not isinstance(names, list) or not names:
        raise ValueError(f"{src / _PICKLE_META} has no b'label_names' list")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    out: dict[str, np.ndarray] = {}
    n_files = len(_PICKLE_TRAIN) + len(_PICKLE_TEST)
    with _progress_bar(n_files, f"reading {src.name}", progress) as advance:
        for split, files in (("train", _PICKLE_TRAIN), ("test", _PICKLE_TEST)):
            parts = []
            for name in files:
                parts.append(_load_batch(src / name))
                y = parts[-1][1]
                if y.size and (y.min() < 0 or y.max() >= len(classes)):
                    raise ValueError(f"CIFAR-10 batch {src / name}: labels outside [0, {len(classes)})")
                advance(1)
            out[f"{split}_x"] = np.concatenate([x for x, _ in parts])
            out[f"{split}_y"] = np.concatenate([y for _, y in parts])
    return out, classes


# ---------------------------------------------------------------------------------------- cache


def _open_cache(folder: Path, key: str, src: Path, verify: bool = True) -> ImageArrays:
    """Memory-map a cache folder after checking meta.json, sizes, shapes and (if ``verify``) sha256."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise _CacheInvalid(f"unreadable meta.json: {e}") from e
    try:
        if meta["version"] != _CACHE_VERSION or meta["key"] != key:
            raise _CacheInvalid(f"meta.json is for version {meta['version']}, key {meta['key']}")
        classes = tuple(str(c) for c in meta["classes"])
        arrays = {}
        for name in _ARRAYS:
            info, path = meta["files"][name], folder / f"{name}.npy"
            try:
                size = path.stat().st_size
            except OSError as e:
                raise _CacheInvalid(f"{path.name}: {e}") from e
            if size != info["bytes"]:
                raise _CacheInvalid(f"{path.name} has {size} bytes, meta.json says {info['bytes']}")
            if verify and _sha256_file(path) != info["sha256"]:
                raise _CacheInvalid(f"{path.name} does not match its sha256 in meta.json")
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise _CacheInvalid(f"{path.name}: {e}") from e
            if list(arr.shape) != info["shape"] or str(arr.dtype) != info["dtype"]:
                raise _CacheInvalid(f"{path.name} is {arr.dtype} {list(arr.shape)}; meta.json "
                                    f"says {info['dtype']} {info['shape']}")
            arrays[name] = arr
    except (KeyError, TypeError) as e:
        raise _CacheInvalid(f"malformed meta.json ({e!r})") from e
    for split in _SPLITS:
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if (x.dtype != np.uint8 or x.shape[1:] != (3, _SIDE, _SIDE)
                or y.dtype != np.int64 or y.shape != (x.shape[0],)):
            raise _CacheInvalid(f"{split} arrays have shapes {x.shape} and {y.shape}")
        if y.size and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
            raise _CacheInvalid(f"{split}_y has labels outside [0, {len(classes)})")
    return ImageArrays(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"],
                       classes, str(src), key)


def _write_cache(folder: Path, arrays: dict[str, np.ndarray], classes: tuple[str, ...],
                 src: Path, kind: str, key: str) -> None:
    """Write the cache into a temp sibling, then ``os.replace`` it into place."""
    tmp = _new_sibling(folder, "tmp")
    tmp.mkdir()
    try:
        files = {}
        for name in _ARRAYS:
            path = tmp / f"{name}.npy"
            np.save(path, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            files[name] = {"sha256": _sha256_file(path), "bytes": path.stat().st_size,
                           "shape": list(arrays[name].shape), "dtype": str(arrays[name].dtype)}
        meta = {"version": _CACHE_VERSION, "key": key, "source": str(src), "format": kind,
                "classes": list(classes), "files": files}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        _install(tmp, folder, key, src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already if it was installed


def _install(tmp: Path, folder: Path, key: str, src: Path) -> None:
    """Move ``tmp`` to ``folder``; a bad folder in the way is moved aside, a good one is kept."""
    try:
        os.replace(tmp, folder)
        return
    except OSError:
        pass  # ``folder`` exists and is not empty
    try:
        _open_cache(folder, key, src)
        return  # another process installed a good cache meanwhile: use it
    except _CacheInvalid:
        pass
    trash = _new_sibling(folder, "old")
    os.replace(folder, trash)
    os.replace(tmp, folder)
    shutil.rmtree(trash, ignore_errors=True)


def load_cifar10(path: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None,
                 progress: bool = False) -> ImageArrays:
    """CIFAR-10 from ``path`` (see :func:`resolve_source`), decoded once into a verified cache.

    The cache is ``<cache_dir>/cifar10-<key[:16]>/`` (``cache_dir`` defaults to
    :func:`default_cache_dir`); its arrays are sha256-checked on every load and a damaged cache
    is rebuilt with a warning. ``progress`` draws a progress bar while decoding.
    """
    src = resolve_source(path)
    kind = _kind(src)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = _source_key(src, kind, cache)
    folder = cache / f"cifar10-{key[:16]}"
    if folder.exists():
        try:
            return _open_cache(folder, key, src)
        except _CacheInvalid as e:
            warnings.warn(f"CIFAR-10 cache {folder} is corrupt ({e}); rebuilding it from {src}",
                          stacklevel=2)
    reader = {"zip": _read_zip, "pickle": _read_pickles, "tree": _read_tree}[kind]
    arrays, classes = reader(src, progress)
    _write_cache(folder, arrays, classes, src, kind, key)
    try:
        return _open_cache(folder, key, src, verify=False)
    except _CacheInvalid as e:  # pragma: no cover - only if the disk loses what we just wrote
        raise RuntimeError(f"CIFAR-10 cache {folder} is invalid right after writing it: {e}") from e


# ---------------------------------------------------------------------------------------- subsets


def balanced_subset(y: np.ndarray, n_per_class: int, seed: int) -> np.ndarray:
    """Sorted int64 indices with exactly ``n_per_class`` examples of every class in ``y``.

    Deterministic in ``seed``; for a fixed seed, a smaller subset is contained in a larger one
    (each class takes a prefix of one seeded permutation), so data-size sweeps nest.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {y.shape}")
    if n_per_class < 0:
        raise ValueError(f"n_per_class must be >= 0; got {n_per_class}")
    rng = np.random.default_rng(seed)
    picks = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if members.size < n_per_class:
            raise ValueError(
                f"class {c.item()!r} has only {members.size} examples; expected at least "
                f"n_per_class={n_per_class}"
            )
        picks.append(rng.permutation(members)[:n_per_class])
    if not picks:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate(picks)).astype(np.int64)
