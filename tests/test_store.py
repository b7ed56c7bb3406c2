"""Run directories: atomic writes, metadata, loading and listing."""

from __future__ import annotations

import errno
import json
import os
import re
import stat

import pandas as pd
import pytest

from lrlab import store


def _files(path):
    return sorted(p.name for p in path.iterdir())


def test_write_atomic_text_and_bytes(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    store.write_atomic(target, "héllo")
    assert target.read_text() == "héllo"
    store.write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert _files(target.parent) == ["f.txt"]  # no temporary files left behind


def test_failed_write_keeps_old_content_and_no_temp_file(tmp_path):
    target = tmp_path / "f.txt"
    store.write_atomic(target, "old")

    class Boom:  # not str/bytes: the write itself fails after the temp file exists
        pass

    with pytest.raises(TypeError):
        store.write_atomic(target, Boom())
    assert target.read_text() == "old"
    assert _files(tmp_path) == ["f.txt"]


def test_failed_rename_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    store.write_atomic(target, "old")

    def fail(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        store.write_atomic(target, "new")
    assert target.read_text() == "old" and _files(tmp_path) == ["f.txt"]


def test_write_parquet_round_trip(tmp_path):
    df = pd.DataFrame({"member": [0, 1], "metric": pd.array(["a", "b"], dtype="string"),
                       "value": [0.5, float("nan")]})
    store.write_parquet(tmp_path / "x.parquet", df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "x.parquet"), df)


def test_runs_root(monkeypatch, tmp_path):
    assert str(store.runs_root(None)) == "runs"
    monkeypatch.setenv(store.RUNS_ENV, str(tmp_path / "env"))
    assert store.runs_root(None) == tmp_path / "env"
    assert store.runs_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_new_run_dir_is_unique_and_safe(tmp_path):
    a = store.new_run_dir(tmp_path, "my run/1")
    b = store.new_run_dir(tmp_path, "my run/1")
    assert a != b and a.is_dir() and b.is_dir() and a.parent == b.parent == tmp_path
    assert re.fullmatch(r"my-run-1-\d{8}-\d{6}(-\d+)?", a.name)


def test_write_meta_merges(tmp_path):
    store.write_meta(tmp_path, status="running", seeds=[0, 1])
    meta = store.write_meta(tmp_path, status="done")
    on_disk = json.loads((tmp_path / "meta.json").read_text())
    assert on_disk == meta and meta["status"] == "done" and meta["seeds"] == [0, 1] and "updated" in meta


def test_code_version_and_environment():
    code = store.code_version()
    import lrlab

    assert code["lrlab"] == lrlab.__version__
    env = store.environment()
    assert env["packages"]["torch"] and env["packages"]["pandas"] and env["python"]


def test_resolve_and_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run 'ghost'"):
        store.resolve_run("ghost", tmp_path)
    (tmp_path / "notarun").mkdir()
    with pytest.raises(FileNotFoundError, match="not an lrlab run"):
        store.load_run("notarun", tmp_path)


def test_load_unfinished_run_and_list(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    store.write_atomic(run / "config.yaml", "name: x\n")
    store.write_meta(run, name="x", status="running", n_members=3, steps=10)
    (tmp_path / "stray").mkdir()  # not a run: ignored by list_runs
    loaded = store.load_run(run)
    assert loaded.status == "running" and loaded.records is None and loaded.members is None
    assert store.load_run("r1", tmp_path).path == run  # by name under the root
    listed = store.list_runs(tmp_path)
    assert listed.run.tolist() == ["r1"] and listed.status.tolist() == ["running"]
    assert listed.members.tolist() == [3]


def test_list_runs_of_missing_root_is_empty(tmp_path):
    df = store.list_runs(tmp_path / "none")
    assert df.empty and list(df.columns) == ["run", "config", "status", "created", "members",
                                             "steps", "wall_time_s", "problem"]


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        store.write_atomic(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode


def test_planted_symlinks_are_never_followed(tmp_path):
    """A symlink planted where a fixed temporary name used to be (or any name) is left alone:
    the temporary file is created new with O_EXCL, and the rename replaces only the real name."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    for name in ("f.txt.tmp", ".f.txt.tmp", "checkpoint.tmp"):
        (tmp_path / name).symlink_to(victim)
    store.write_atomic(tmp_path / "f.txt", "new")
    assert victim.read_text() == "keep me" and (tmp_path / "f.txt").read_text() == "new"


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_a_full_disk_is_a_store_error_and_keeps_the_old_file(tmp_path, monkeypatch, where):
    target = tmp_path / "f.txt"
    store.write_atomic(target, "old")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, where, full)
    with pytest.raises(store.StoreError, match=r"f\.txt: cannot write \(No space left on device\); the previous"):
        store.write_atomic(target, "new")
    assert target.read_text() == "old" and _files(tmp_path) == ["f.txt"]


def test_an_unwritable_folder_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(store.StoreError, match=r"file/f\.txt: cannot write"):
        store.write_atomic(tmp_path / "file" / "f.txt", "x")
