"""``FromModule(..., compile=True)``: compiled loop-mode training equals eager within float32
round-off, repeats itself exactly, falls back to eager when compiling fails, and is off by default.

One tiny CNN (one conv→BN→noise→ReLU stage of 4 channels, 8×8 images) keeps the single
inductor compile short; later trainers reuse the compiled graph.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch
from torch import nn

from lrlab.config import TrainConfig
from lrlab.data.dataset import Dataset
from lrlab.models import FromModule
from lrlab.models.noise import BNReLU
from lrlab.train import Constant
from lrlab.train.population import Member, _Trainer

STEPS = 4
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
needs_compiler = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                    reason="torch.compile's CPU backend needs a C compiler")


def tiny_data() -> Dataset:
    g = torch.Generator().manual_seed(0)
    n = 64
    return Dataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g),
                   torch.zeros(n, dtype=torch.long), ("all",), "multiclass", 3)


def tiny_cnn() -> nn.Module:
    """conv3×3 stride 2 → BN → activation noise → ReLU → global average pool → Linear."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), BNReLU(4, noise=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def tiny_trainer(compile: bool) -> _Trainer:
    """Two members of the tiny CNN: plain SGD, and SGD with activation noise σ = 0.4."""
    model = FromModule(tiny_cnn, channels_last=True, compile=compile)
    members = [Member("plain", 0, Constant(0.05)), Member("noise", 1, Constant(0.05), 0, Constant(0.4))]
    cfg = TrainConfig(loss="cross_entropy", steps=100, batch_size=16, momentum=0.9, nesterov=True,
                      weight_decay=5e-4, eval_every=100, mode="loop")
    return _Trainer(model, members, tiny_data(), None, cfg, None)


def train(tr: _Trainer) -> dict[str, torch.Tensor]:
    for t in range(STEPS):
        tr.update(t)
    return {k: v.clone() for k, v in tr.params.items()}


@pytest.fixture(scope="module")
def eager_params() -> dict[str, torch.Tensor]:
    return train(tiny_trainer(False))


@needs_compiler
def test_compiled_matches_eager_and_repeats_exactly(eager_params):
    tr = tiny_trainer(True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would warn
        first = train(tr)
    assert tr.model._compiled is not None and not tr.model._compile_failed
    init = tiny_trainer(False).params
    for k, v in eager_params.items():
        # parameters and BN running statistics (updated in place by the compiled forward), and the
        # noise member's too: a different noise draw would move it far beyond round-off
        torch.testing.assert_close(first[k], v, rtol=1e-4, atol=1e-5, msg=k)
        if "running" in k:
            assert not torch.equal(v, init[k]), f"{k} was not updated"
    assert torch.equal(first["1.bn.num_batches_tracked"], torch.full((2,), STEPS))
    second = train(tiny_trainer(True))
    for k in first:
        assert torch.equal(first[k], second[k]), f"{k}: compiled run is not deterministic"


def test_failed_compile_warns_once_and_runs_eager(monkeypatch, eager_params):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("no compiler here")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    tr = tiny_trainer(True)
    with pytest.warns(RuntimeWarning, match="no compiler here"):
        tr.update(0)
    assert tr.model._compile_failed
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for t in range(1, STEPS):
            tr.update(t)
    for k, v in eager_params.items():
        assert torch.equal(tr.params[k], v), k


def test_flag_off_and_evaluation_never_compile(monkeypatch):
    def forbidden(fn, **kwargs):
        raise AssertionError("torch.compile was called")

    monkeypatch.setattr(torch, "compile", forbidden)
    tr = tiny_trainer(False)
    assert not tr.model.compile
    tr.update(0)
    on = tiny_trainer(True)
    x = torch.randn(1, 5, 3, 8, 8)
    out = on.model.forward({k: v[:1] for k, v in on.params.items()}, x, train=False)  # eval: eager
    assert out.shape == (1, 5, 3) and on.model._compiled is None
