"""Faults a run directory must survive: a second writer, a failure while writing the final records,
an owner that died, and each stored file damaged in turn (list, show and resume name the file)."""

from __future__ import annotations

import datetime
import json
import os
import pickle
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lrlab import experiment, store
from lrlab.check import check_store
from lrlab.cli import app
from lrlab.config import ConfigError, RunConfig, max_threads, read_yaml, validate, yaml_load
from lrlab.data.cifar import _unpickle
from lrlab.store import StoreError, list_runs, load_run
from lrlab.threads import set_threads
from tests.helpers import interrupt_at, tiny_run_cfg, tiny_run_dict, write_cifar_pickles, write_yaml

runner = CliRunner()


def _interrupted(root):
    """A run stopped by Ctrl-C after its checkpoint at step 10 (of 20)."""
    with pytest.raises(KeyboardInterrupt):
        experiment.run(tiny_run_cfg(), root=root, progress=interrupt_at(13))
    (rd,) = root.iterdir()
    return rd


def test_a_second_writer_stops_at_once_naming_the_holder(tmp_path):
    rd = _interrupted(tmp_path)
    with store.lock(rd):  # another resume holds the run
        with pytest.raises(StoreError, match=r"this run is in use by pid \d+ on .+ since .+; wait for it"):
            experiment.resume(rd)
        res = runner.invoke(app, ["run", "--resume", str(rd), "--no-progress"])
        assert res.exit_code == 2 and "is in use by pid" in res.output
    assert load_run(rd).status == "interrupted"  # the refused writer changed nothing
    _, done = experiment.resume(rd)  # once the holder is gone, the run resumes
    assert load_run(rd).status == "done" and len(done.records)


def test_a_failure_while_writing_the_final_records_is_recorded(tmp_path, monkeypatch):
    def full(path, df):
        raise StoreError(f"{path}: cannot write (No space left on device)")

    monkeypatch.setattr(store, "write_parquet", full)
    with pytest.raises(StoreError, match="No space left"):
        experiment.run(tiny_run_cfg(), root=tmp_path)
    (rd,) = tmp_path.iterdir()
    meta = load_run(rd).meta
    assert meta["status"] == "failed" and "records.parquet: cannot write" in meta["error"]


def test_a_run_whose_owner_died_reads_as_stale_and_resumes(tmp_path):
    rd = _interrupted(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    owner = {**store.owner(), "pid": int(dead.stdout)}  # a process that has ended
    store.write_meta(rd, status="running", owner=owner)
    assert load_run(rd).status == "stale"
    assert list_runs(tmp_path).status.tolist() == ["stale"]
    store.write_meta(rd, owner={**owner, "host": "elsewhere"})  # another machine's: its heartbeat tells
    assert load_run(rd).status == "running"  # its last heartbeat is recent
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=store.STALE_AFTER_S + 5))
    (rd / store.HEARTBEAT).write_text(old.isoformat(timespec="seconds"))
    assert load_run(rd).status == "stale" and list_runs(tmp_path).status.tolist() == ["stale"]
    (rd / store.HEARTBEAT).unlink()
    assert load_run(rd).status == "running"  # no heartbeat at all: cannot tell, so not called stale
    store.write_meta(rd, owner=store.owner())  # this very process: alive
    assert load_run(rd).status == "running"
    experiment.resume(rd)
    assert load_run(rd).status == "done"


DAMAGE = {
    "meta-not-utf8": ("meta.json", b"\xff\xfe{\x00", "meta.json: not UTF-8 text"),
    "meta-truncated": ("meta.json", b'{"status": "do', "meta.json: unreadable"),
    "meta-a-list": ("meta.json", b"[1, 2]", "meta.json: expected a JSON object, found a list"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_meta_lists_the_run_as_corrupt_and_leaves_the_others(tmp_path, case):
    _, good = experiment.run(tiny_run_cfg(name="good"), root=tmp_path)
    bad, _ = experiment.run(tiny_run_cfg(name="bad"), root=tmp_path)
    name, data, message = DAMAGE[case]
    (bad / name).write_bytes(data)
    df = list_runs(tmp_path).set_index("run")
    assert df.status[bad.name] == "corrupt" and message in df.problem[bad.name]
    assert set(df.status) == {"done", "corrupt"} and df.problem.isna().sum() == 1
    res = runner.invoke(app, ["list", "--runs", str(tmp_path)])
    assert res.exit_code == 0 and "corrupt" in res.output and "done" in res.output
    for args in (["show", str(bad)], ["run", "--resume", str(bad), "--no-progress"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "meta.json" in res.output and "Traceback" not in res.output, args


def _damaged_run(tmp_path, name: str, data: bytes | None):
    rd = _interrupted(tmp_path)
    if data is None:
        (rd / name).unlink()
    else:
        (rd / name).write_bytes(data)
    return rd


@pytest.mark.parametrize("name, data, message", [
    ("config.yaml", b"name: [unclosed", "config.yaml"),
    ("config.yaml", b"\xff\xfe", "config.yaml: not UTF-8 text"),
    ("checkpoint.pt", b"PK\x03\x04 truncated", "not a loadable lrlab checkpoint"),
    ("checkpoint.pt", None, "checkpoint.pt: missing, so there is nothing to resume from"),
])
def test_resume_names_the_damaged_file_and_what_to_do(tmp_path, name, data, message):
    rd = _damaged_run(tmp_path, name, data)
    with pytest.raises((StoreError, ValueError), match=message):
        experiment.resume(rd)
    res = runner.invoke(app, ["run", "--resume", str(rd), "--no-progress"])
    assert res.exit_code == 2 and message.split(":")[0] in res.output and "Traceback" not in res.output
    if name == "checkpoint.pt":  # --restart is the way out, and trains to the same records
        assert "--restart" in res.output
        _, again = experiment.resume(rd, restart=True)
        _, ref = experiment.run(tiny_run_cfg(), root=tmp_path / "ref")
        pd.testing.assert_frame_equal(again.records, ref.records, check_exact=True)


@pytest.mark.parametrize("damage", ["records-columns", "records-garbage", "records-missing", "members-missing"])
def test_show_names_a_damaged_table_of_a_finished_run(tmp_path, damage):
    rd, _ = experiment.run(tiny_run_cfg(), root=tmp_path)
    if damage == "records-columns":
        store.write_parquet(rd / "records.parquet", pd.DataFrame({"x": [1]}))
        message = r"records.parquet: columns \['x'\], expected \['member', 'step', 'metric', 'value'\]"
    elif damage == "records-garbage":
        (rd / "records.parquet").write_bytes(b"not parquet")
        message = "records.parquet: stored table is unreadable"
    else:
        f = "records.parquet" if damage == "records-missing" else "members.parquet"
        (rd / f).unlink()
        message = f"{f}: missing, though meta.json says the run is done"
    with pytest.raises(StoreError, match=message):
        load_run(rd)
    res = runner.invoke(app, ["show", str(rd)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert json.loads((rd / "meta.json").read_text())["status"] == "done"  # looking changed nothing


# ----------------------------------------------------------------------------------------- configs
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8))


@pytest.mark.parametrize("text, message", [
    (LAUGHS.encode(), "expands to more than 100,000 nodes through its aliases"),
    (b"name: a\ntrain: {steps: 5, steps: 6}\n", "duplicate key 'steps'"),
    ("name: a\n".encode("utf-16"), "not UTF-8 text"),
    (b"\x00\x01\x02binary", "not UTF-8 text|not valid YAML"),
])
def test_config_files_that_cannot_hang_or_mislead(tmp_path, text, message):
    """A billion-laughs file is refused at once, a repeated key is an error (not last-wins), and a
    binary or UTF-16 file is an error naming the file; no run directory is created."""
    path = tmp_path / "bad.yaml"
    path.write_bytes(text)
    t0 = time.perf_counter()
    res = runner.invoke(app, ["run", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"])
    assert time.perf_counter() - t0 < 10
    assert res.exit_code == 2 and "bad.yaml" in res.output and "Traceback" not in res.output
    assert re.search(message, " ".join(res.output.split()))
    assert not (tmp_path / "runs").exists()


def test_claim_configs_may_still_share_sections_through_aliases():
    assert yaml_load("a: &x {b: 1}\nc: *x\nd: {<<: *x, b: 2}\n") == {"a": {"b": 1}, "c": {"b": 1}, "d": {"b": 2}}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_text_reads_as_a_mapping_or_a_config_error(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        raw = read_yaml(path)
    except ConfigError as e:
        assert "fuzz.yaml" in str(e)
    else:
        assert isinstance(raw, dict)


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                   st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3))
FIELDS = ["train.steps", "train.batch_size", "train.eval_every", "train.threads", "train.device", "train.loss",
          "model.width", "data.d", "data.n_train", "population.seeds", "train.momentum", "name"]


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), VALUES, min_size=1, max_size=3))
def test_any_config_values_validate_or_raise_a_config_error(changes):
    raw = tiny_run_dict()
    for key, value in changes.items():
        section, field = key.split(".") if "." in key else (None, key)
        (raw[section] if section else raw)[field] = value
    try:
        validate(RunConfig, raw, source="fuzz.yaml")
    except ConfigError as e:
        assert "fuzz.yaml" in str(e)


@pytest.mark.parametrize("key, value, message", [
    ("train.threads", 100000, "threads = 100000 is more than 4 per CPU"),
    ("train.device", "meta", "device 'meta' is not one of cpu, cuda, cuda:N, mps"),
    ("train.device", "cuda;rm", "is not one of cpu, cuda, cuda:N, mps"),
    ("train.steps", "100000000000000", "train.steps = 100,000,000,000,000 (100,000,000,000,000 steps) with 4 members"),
    ("model.width", "1000000000", "the model of 'tiny' (two_layer_relu, model.width = 1,000,000,000) with 4 members"),
    ("data.d", "1000000000", "dimension data.d = 1,000,000,000, 2 draw(s)) needs about 768 GB"),
])
def test_machine_bounded_fields_are_config_errors_and_leave_no_run(tmp_path, key, value, message):
    path = write_yaml(tmp_path / "c.yaml", tiny_run_dict())
    res = runner.invoke(app, ["run", str(path), "--set", f"{key}={value}", "--runs", str(tmp_path / "runs"),
                              "--no-progress"])
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and message in text and "Traceback" not in text, text
    assert "c.yaml" in text or "available" in text  # a config error names the file; a size error the machine
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="more than 4 per CPU"):
        set_threads(max_threads() + 1)


def test_lrlab_check_reads_every_file_and_names_each_problem(tmp_path):
    """`lrlab check` passes a healthy store (a finished and an interrupted run) and, after damage
    to one file at a time, names that file and exits 1; it changes nothing."""
    root = tmp_path / "runs"
    done, _ = experiment.run(tiny_run_cfg(name="done"), root=root)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(tiny_run_cfg(name="cut"), root=root, progress=interrupt_at(13))
    cut = next(p for p in root.iterdir() if p.name.startswith("cut"))
    res = runner.invoke(app, ["check", str(root)])
    assert res.exit_code == 0 and "2 run(s) checked, 0 with problems" in res.output
    assert [c.status for c in check_store(root)] == ["interrupted", "done"]

    rec = load_run(done).records
    store.write_parquet(done / "records.parquet", rec[rec.step < rec.step.max()])  # records cut short
    (cut / "checkpoint.pt").write_bytes(b"garbage")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    res = runner.invoke(app, ["check", str(root)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1 and "2 run(s) checked, 2 with problems" in text
    assert "records.parquet: ends at step 15, the run has 20 steps" in text
    assert "checkpoint.pt: not a loadable lrlab checkpoint" in text
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing changed
    (cut / "checkpoint.pt").unlink()
    (done / "meta.json").write_text("[]")
    problems = {c.path.name[:3]: c.problems for c in check_store(root)}
    assert any("can not resume" in p or "cannot resume" in p for p in problems["cut"])
    assert any("meta.json: expected a JSON object" in p for p in problems["don"])
    res = runner.invoke(app, ["check", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no runs folder" in res.output


_REFERENCE: dict[str, pd.DataFrame] = {}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stops=st.lists(st.integers(1, 19), min_size=1, max_size=3))
def test_interrupted_at_any_steps_then_resumed_gives_the_uninterrupted_records(tmp_path_factory, stops):
    """Ctrl-C (or SIGTERM, which lrlab handles the same way) at random steps, once or several times,
    then resume (with --restart when no checkpoint was written yet): the records equal an
    uninterrupted run's, bit for bit."""
    if "records" not in _REFERENCE:
        _, ref = experiment.run(tiny_run_cfg(), root=tmp_path_factory.mktemp("ref"))
        _REFERENCE["records"] = ref.records
    root = tmp_path_factory.mktemp("cut")
    with pytest.raises(KeyboardInterrupt):
        experiment.run(tiny_run_cfg(), root=root, progress=interrupt_at(stops[0]))
    (rd,) = root.iterdir()
    for stop in stops[1:]:
        restart = not (rd / "checkpoint.pt").is_file()
        try:
            experiment.resume(rd, restart=restart, progress=interrupt_at(stop))
        except KeyboardInterrupt:
            assert load_run(rd).status == "interrupted"
    if load_run(rd).status != "done":
        experiment.resume(rd, restart=not (rd / "checkpoint.pt").is_file())
    pd.testing.assert_frame_equal(load_run(rd).records, _REFERENCE["records"], check_exact=True)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/lrlab-test-pickle-ran"


def test_a_crafted_cifar_batch_runs_nothing(tmp_path):
    """Official-format CIFAR-10 batches are pickles: they are read with an unpickler that builds
    arrays only, so a batch carrying code is refused and the code never runs."""
    root = write_cifar_pickles(tmp_path / "cifar-10-batches-py")
    assert _unpickle(root / "data_batch_1")[b"data"].shape == (12, 3072)  # the real format still loads
    Path(MARKER).unlink(missing_ok=True)
    (root / "data_batch_1").write_bytes(pickle.dumps({b"data": _Payload(), b"labels": [0]}))
    with pytest.raises(ValueError, match=r"data_batch_1: refused to load posix.system"):
        _unpickle(root / "data_batch_1")
    assert not Path(MARKER).exists()


def _file_size_limit(nbytes: int):
    def limit():  # in the child, before exec: files may not grow beyond nbytes (a "full disk")
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


def test_a_real_full_disk_ends_the_run_failed_or_stale_with_no_temp_file(tmp_path):
    """`ulimit -f`: the run cannot write its records (EFBIG). It stops with an error naming the
    file, leaves no temporary file, keeps every file it wrote before intact, and reads as failed
    (or, when even that could not be written, stale)."""
    cfg = write_yaml(tmp_path / "c.yaml", tiny_run_dict(data={"n_train": 256, "n_test": 256},
                                                          train={"steps": 400, "eval_every": 1}))
    runs = tmp_path / "runs"
    # no bytecode caching in the child: under the limit Python would store truncated .pyc files
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([sys.executable, "-m", "lrlab.cli", "run", str(cfg), "--runs", str(runs), "--no-progress"],
                         capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(40_000), env=env)
    assert res.returncode == 2, res.stderr
    assert "cannot write (File too large)" in res.stderr and "Traceback" not in res.stderr
    (rd,) = runs.iterdir()
    assert not [p.name for p in rd.iterdir() if p.name.endswith(".tmp")]
    assert read_yaml(rd / "config.yaml")["name"] == "tiny"  # written before the fault: intact
    run = load_run(rd)
    assert run.status in ("failed", "stale")
    assert run.records is None or run.records.step.max() < 400  # at most an earlier checkpoint's
    assert check_store(runs)[0].status == run.status


_DONE_RUN: dict[str, Path] = {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["meta.json", "config.yaml", "records.parquet", "members.parquet", "checkpoint.pt"]),
       data=st.binary(max_size=300))
def test_any_bytes_in_any_store_file_give_a_named_error_never_a_crash(tmp_path_factory, name, data):
    """Whatever bytes replace one file of a finished run: list never fails, check reports instead of
    raising, and show/load raise only lrlab's own errors."""
    if "run" not in _DONE_RUN:
        _DONE_RUN["run"], _ = experiment.run(tiny_run_cfg(), root=tmp_path_factory.mktemp("store"))
    src = _DONE_RUN["run"]
    root = tmp_path_factory.mktemp("fuzz")
    rd = root / src.name
    shutil.copytree(src, rd)
    (rd / name).write_bytes(data)
    assert len(list_runs(root)) == 1
    found = check_store(root)[0]
    assert found.ok or all(isinstance(p, str) and p for p in found.problems)
    try:
        load_run(rd)
    except (StoreError, ConfigError) as e:
        assert name.split(".")[0] in str(e) or "meta.json" in str(e)
    res = runner.invoke(app, ["show", str(rd)])
    assert res.exit_code in (0, 2) and "Traceback" not in res.output
