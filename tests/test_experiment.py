"""Experiments end to end: run directories, resume (in process and after SIGKILL), failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml

import lrlab
from lrlab import experiment, store
from lrlab.config import RunConfig, load_config, validate
from lrlab.store import list_runs, load_run
from tests.helpers import interrupt_at, tiny_run_cfg, tiny_run_dict, write_yaml


def test_run_writes_a_complete_run_directory(tmp_path):
    cfg = tiny_run_cfg()
    rd, res = experiment.run(cfg, root=tmp_path)
    assert rd.parent == tmp_path and rd.name.startswith("tiny-")
    assert {p.name for p in rd.iterdir()} == {"config.yaml", "meta.json", "records.parquet", ".lock", "heartbeat",
                                             "members.parquet", "checkpoint.pt"}
    assert validate(RunConfig, yaml.safe_load((rd / "config.yaml").read_text())) == cfg
    meta = json.loads((rd / "meta.json").read_text())
    assert meta["status"] == "done" and meta["name"] == "tiny"
    assert meta["code"]["lrlab"] == lrlab.__version__
    assert meta["environment"]["packages"]["torch"] == torch.__version__
    assert meta["seeds"] == [0, 1] and meta["schedules"] == ["large", "small"]
    assert meta["n_members"] == 4 and meta["steps"] == 20 and meta["mode"] == res.mode
    assert meta["wall_time"] >= 0 and meta["diverged"] == 0
    stored = load_run(rd)
    assert stored.status == "done"
    assert list(stored.records.columns) == ["member", "step", "metric", "value"]
    pd.testing.assert_frame_equal(stored.records, res.records)
    pd.testing.assert_frame_equal(stored.members, res.members)
    listed = list_runs(tmp_path)
    assert listed.run.tolist() == [rd.name] and listed.status.tolist() == ["done"]
    assert listed.members.tolist() == [4] and listed.config.tolist() == ["tiny"]


def test_members_follow_the_config(tmp_path):
    cfg = tiny_run_cfg(data_seed="fixed")
    _, res = experiment.run(cfg, root=tmp_path)
    assert res.members.name.tolist() == ["large", "large", "small", "small"]
    assert res.members.seed.tolist() == [0, 1, 0, 1]
    assert res.members.data_index.tolist() == [0, 0, 0, 0]
    _, res2 = experiment.run(tiny_run_cfg(), root=tmp_path)
    assert res2.members.data_index.tolist() == [0, 1, 0, 1]


def test_explicit_run_dir_must_be_new(tmp_path):
    rd, _ = experiment.run(tiny_run_cfg(), run_dir=tmp_path / "mine")
    assert rd == tmp_path / "mine"
    with pytest.raises(FileExistsError):
        experiment.run(tiny_run_cfg(), run_dir=tmp_path / "mine")


def test_bad_input_creates_no_run_directory(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        experiment.run(tiny_run_cfg(train={"batch_size": 1000}), root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_failure_during_training_is_recorded(tmp_path):
    def boom(t, total):
        if t == 7:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        experiment.run(tiny_run_cfg(), root=tmp_path, progress=boom)
    (rd,) = tmp_path.iterdir()
    meta = json.loads((rd / "meta.json").read_text())
    assert meta["status"] == "failed" and "disk on fire" in meta["error"]


@pytest.mark.parametrize("stop_at", [13, 3], ids=["after-checkpoint", "before-first-checkpoint"])
def test_resume_interrupted_run_equals_uninterrupted(tmp_path, stop_at):
    cfg = tiny_run_cfg(population={"schedules": {
        "large": {"kind": "step", "lr": 0.2, "milestones": [10], "factor": 0.1},
        "small": {"kind": "constant", "lr": 0.02},
        "huge": {"kind": "constant", "lr": 1e6}}})
    _, full = experiment.run(cfg, root=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        experiment.run(cfg, root=tmp_path / "b", progress=interrupt_at(stop_at))
    (rd,) = (tmp_path / "b").iterdir()
    stored = load_run(rd)
    assert stored.status == "interrupted"
    assert (rd / "checkpoint.pt").is_file() == (stop_at > 5)
    if stop_at > 5:  # the records of the last checkpoint are stored beside it, the full run's so far
        last = stored.records.step.max()
        assert 0 < last < stop_at
        so_far = full.records[full.records.step <= last].reset_index(drop=True)
        pd.testing.assert_frame_equal(stored.records, so_far, check_exact=True)
        assert stored.members.name.tolist() == full.members.name.tolist()
    else:
        assert stored.records is None and stored.members is None
    if stop_at <= 5:  # nothing to continue from: resuming says so, and --restart trains from step 0
        with pytest.raises(store.StoreError, match=r"checkpoint.pt: missing, so there is nothing to resume from; "
                           rf"`lrlab run --resume {rd.name} --restart` trains it again from step 0"):
            experiment.resume(rd.name, root=tmp_path / "b")
    rd2, res = experiment.resume(rd.name, root=tmp_path / "b", restart=stop_at <= 5)
    assert rd2 == rd
    pd.testing.assert_frame_equal(res.records, full.records, check_exact=True)
    pd.testing.assert_frame_equal(res.members, full.members, check_exact=True)
    stored = load_run(rd)
    assert stored.status == "done" and "resumed" in stored.meta
    pd.testing.assert_frame_equal(stored.records, full.records, check_exact=True)


def test_resume_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        experiment.resume("nope", root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an lrlab run"):
        experiment.resume(tmp_path / "empty")


def test_loss_task_mismatch_creates_no_run_directory(tmp_path):
    with pytest.raises(ValueError, match="cross_entropy"):
        experiment.run(tiny_run_cfg(train={"loss": "cross_entropy"}), root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_meta_records_the_thread_count_used(tmp_path):
    assert torch.get_num_threads() == 1
    rd, _ = experiment.run(tiny_run_cfg(train={"threads": 2}), root=tmp_path)
    assert json.loads((rd / "meta.json").read_text())["environment"]["torch_threads"] == 2


# --------------------------------------------------------------------------- SIGKILL + CLI resume

LONG = tiny_run_dict(
    name="long",
    data={"d": 10, "n_train": 256, "n_test": 256},
    model={"kind": "two_layer_relu", "width": 32},
    train={"steps": 800, "batch_size": 16, "eval_every": 40, "checkpoint_every": 40, "threads": 1},
    population={"seeds": [0, 1], "schedules": {
        "large": {"kind": "step", "lr": 0.1, "milestones": [400], "factor": 0.1},
        "small": {"kind": "constant", "lr": 0.01}}},
)


def _cli(*args):
    return [sys.executable, "-m", "lrlab.cli", *map(str, args)]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_cli_resume_after_sigkill_equals_uninterrupted(tmp_path, sig):
    """Killed (no chance to record anything: the run reads as stale, its owner gone) or terminated
    (recorded as interrupted, exit 130), the run resumes from its last checkpoint to the records of
    an uninterrupted run."""
    cfg_path = write_yaml(tmp_path / "long.yaml", LONG)
    runs = tmp_path / "runs"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(_cli("run", cfg_path, "--runs", runs, "--no-progress"),
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        ckpt = None
        while ckpt is None:
            assert proc.poll() is None, f"run ended before a checkpoint: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            found = list(runs.glob("*/checkpoint.pt")) if runs.is_dir() else []
            ckpt = found[0] if found else None
            time.sleep(0.01)
        proc.send_signal(sig)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rd = ckpt.parent
    killed = load_run(rd)
    assert killed.meta["owner"]["pid"] == proc.pid and killed.records is None  # it really was cut short
    if sig == signal.SIGKILL:  # 'running' on record, but its owner is gone
        assert killed.status == "stale" and killed.meta["status"] == "running"
    else:
        assert killed.status == "interrupted" and proc.returncode == 130
        assert "interrupted" in proc.stderr.read().decode()
    assert list_runs(runs).set_index("run").status[rd.name] == killed.status
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < step < LONG["train"]["steps"]
    print(f"killed after the checkpoint at step {step}")

    resume = subprocess.Popen(_cli("run", "--resume", rd.name, "--runs", runs, "--no-progress"),
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        # the uninterrupted reference, in process, while the resume starts up
        _, full = experiment.run(load_config(cfg_path), root=tmp_path / "ref")
        out, err = resume.communicate(timeout=60)
    finally:
        if resume.poll() is None:
            resume.kill()
            resume.wait()
    assert resume.returncode == 0, err
    assert "done" in out
    resumed = load_run(rd)
    assert resumed.status == "done"
    pd.testing.assert_frame_equal(resumed.records, full.records, check_exact=True)
    pd.testing.assert_frame_equal(resumed.members, full.members)
