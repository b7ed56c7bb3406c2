"""Checkpoints and resume inside the trainer: an interrupted run finishes like an uninterrupted one."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lrlab.config import TrainConfig
from lrlab.data import li2019_mixture
from lrlab.models import TwoLayerReLU
from lrlab.train import Constant, StepDecay, grid, train_population
from lrlab.train import population as pop
from tests.helpers import interrupt_at, tiny_data_cfg


class Stop(KeyboardInterrupt):
    pass


def _setup(mode, optimizer="sgd"):
    splits = [li2019_mixture(tiny_data_cfg(), s) for s in (0, 1)]
    model = TwoLayerReLU(10, 16)
    members = grid({"large": StepDecay(0.2, (20,), 0.1), "small": Constant(0.02),
                    "huge": Constant(1e6)}, [0, 1])
    sgd = {"momentum": 0.9, "nesterov": True} if optimizer == "sgd" else {"optimizer": optimizer}
    cfg = TrainConfig(steps=40, batch_size=12, weight_decay=1e-3, eval_every=5, checkpoint_every=10,
                      mode=mode, **sgd)
    return (model, members, [s.train for s in splits], [s.test for s in splits], cfg)


def _assert_same(a, b):
    pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)
    pd.testing.assert_frame_equal(a.members, b.members, check_exact=True)
    assert a.mode == b.mode
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), k


@pytest.mark.parametrize("mode, optimizer", [("vectorized", "sgd"), ("loop", "sgd"), ("vectorized", "adamw")])
def test_resume_after_interrupt_equals_uninterrupted_run(mode, optimizer, tmp_path):
    args = _setup(mode, optimizer)
    full = train_population(*args)
    assert optimizer != "sgd" or full.members.diverged.any()  # the resumed state includes a frozen member
    with pytest.raises(KeyboardInterrupt):
        train_population(*args, run_dir=tmp_path, progress=interrupt_at(27, Stop))
    ckpt = pop.load_checkpoint(tmp_path / pop.CHECKPOINT)
    assert ckpt["step"] == 20  # the last checkpoint before the interrupt
    resumed = train_population(*args, run_dir=tmp_path, resume=True)
    _assert_same(resumed, full)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [pop.CHECKPOINT, "members.parquet", "records.parquet"]  # no temp files left


def test_checkpoints_never_write_through_a_planted_symlink(tmp_path):
    """The checkpoint goes through a new uniquely named temporary file: a symlink planted at the old
    fixed temporary name keeps its target untouched, and no temporary file is left."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.tmp").symlink_to(victim)
    train_population(*_setup("vectorized"), run_dir=run)
    assert victim.read_bytes() == b"keep me"
    assert sorted(p.name for p in run.iterdir()) == [pop.CHECKPOINT, "checkpoint.tmp", "members.parquet",
                                                      "records.parquet"]
    assert pop.load_checkpoint(run / pop.CHECKPOINT)["step"] == 40


def test_resume_twice_interrupted(tmp_path):
    args = _setup("vectorized")
    full = train_population(*args)
    with pytest.raises(KeyboardInterrupt):
        train_population(*args, run_dir=tmp_path, progress=interrupt_at(13, Stop))
    with pytest.raises(KeyboardInterrupt):
        train_population(*args, run_dir=tmp_path, resume=True, progress=interrupt_at(36, Stop))
    _assert_same(train_population(*args, run_dir=tmp_path, resume=True), full)


def test_resume_of_a_finished_run_returns_the_same_result(tmp_path):
    args = _setup("vectorized")
    done = train_population(*args, run_dir=tmp_path)
    seen = []
    again = train_population(*args, run_dir=tmp_path, resume=True,
                             progress=lambda t, total: seen.append(t))
    assert seen == []  # nothing left to train
    _assert_same(again, done)


def test_resume_needs_a_checkpoint(tmp_path):
    args = _setup("vectorized")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train_population(*args, resume=True)
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        train_population(*args, run_dir=tmp_path, resume=True)


def test_resume_rejects_a_checkpoint_of_another_population(tmp_path):
    model, members, train, test, cfg = _setup("vectorized")
    train_population(model, members, train, test, cfg, run_dir=tmp_path)
    with pytest.raises(ValueError, match="members"):
        train_population(model, members[:2], train, test, cfg, run_dir=tmp_path, resume=True)


def _checkpoint_steps(monkeypatch, tmp_path, **cfg):
    saved = []
    original = pop._Trainer.save_checkpoint

    def spy(self):
        saved.append(self.step)
        original(self)

    monkeypatch.setattr(pop._Trainer, "save_checkpoint", spy)
    split = li2019_mixture(tiny_data_cfg(), 0)
    train_population(TwoLayerReLU(10, 8), grid({"a": Constant(0.05)}, [0]), split.train, None,
                     TrainConfig(batch_size=16, **cfg), run_dir=tmp_path)
    return saved


def test_checkpoints_at_probes_and_at_the_end(monkeypatch, tmp_path):
    assert _checkpoint_steps(monkeypatch, tmp_path, steps=42, eval_every=5, checkpoint_every=10) == [
        10, 20, 30, 40, 42]
    assert _checkpoint_steps(monkeypatch, tmp_path, steps=12, eval_every=5) == [5, 10, 12]


def test_checkpoint_at_first_probe_after_each_multiple(monkeypatch, tmp_path):
    # probes at 30, 60, ..., 240 and 250; multiples of 50 -> first probes 60, 120, 150, 210, 250
    assert _checkpoint_steps(monkeypatch, tmp_path, steps=250, eval_every=30, checkpoint_every=50) == [
        60, 120, 150, 210, 250]


class _Payload:
    """Unpickling this object would create a file: the proof that a load ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("bad", ["payload", "truncated"])
def test_resume_refuses_a_checkpoint_that_is_not_plain_tensors(bad, tmp_path):
    """A pickled object saved as checkpoint.pt is refused with a clear error and never runs."""
    marker = tmp_path / "ran"
    ckpt = tmp_path / "run" / pop.CHECKPOINT
    ckpt.parent.mkdir()
    if bad == "payload":
        torch.save({"n_members": 6, "step": _Payload(marker)}, ckpt)
    else:
        ckpt.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable lrlab checkpoint"):
        train_population(*_setup("vectorized"), run_dir=tmp_path / "run", resume=True)
    assert not marker.exists()
