"""The fused two-layer SGD step: exact in float64, parity with torch.optim and the autograd
step, divergence, chunking, resume, and when it refuses to run."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lrlab import losses
from lrlab.config import TrainConfig
from lrlab.models import FromModule, TwoLayerReLU
from lrlab.train import AutoDecaySchedule, Constant, StepDecay, fused, grid, train_population
from lrlab.train.population import choose_mode
from tests.helpers import assert_records_close, interrupt_at, module_params, reference_sgd

SCHEDULES = {"const": Constant(0.05), "step": StepDecay(0.3, (12,), 0.1), "warm": Constant(0.1, warmup_steps=5)}


@pytest.mark.parametrize("wd", [0.0, 1e-2])
@pytest.mark.parametrize("loss", fused.FUSED_LOSSES)
@pytest.mark.parametrize("bias,output_bias,second", [(True, True, True), (False, False, True), (True, False, False)],
                         ids=["biases", "no-bias", "frozen-a"])
def test_one_step_equals_autograd_in_float64(loss, wd, bias, output_bias, second):
    """In float64 the hand-written step is the autograd step to round-off (1e-15)."""
    g = torch.Generator().manual_seed(0)
    model = TwoLayerReLU(5, 7, bias=bias, output_bias=output_bias, train_second_layer=second)
    p = {k: v.double() for k, v in model.init([1, 2, 3]).items()}
    if bias:
        p["b"] += 0.1 * torch.randn(p["b"].shape, generator=g, dtype=torch.float64)
    x = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    y = torch.where(torch.rand(3, 4, generator=g) < 0.5, -1.0, 1.0).double()
    lr = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    trainable = {k for k in p if k not in model.frozen}
    q = {k: v.clone().requires_grad_(k in trainable) for k, v in p.items()}
    want_loss = losses.per_example(loss, model.forward(q, x), y).mean(1)
    grads = dict(zip(sorted(trainable), torch.autograd.grad(want_loss.sum(), [q[k] for k in sorted(trainable)])))
    want = {k: (v - lr.view(-1, *[1] * (v.dim() - 1)) * (grads[k] + wd * v)) if k in trainable else v
            for k, v in p.items()}
    step = fused.TwoLayerSGD(model, loss, 3, 4, wd, torch.float64, torch.device("cpu"))
    got_loss, ok = step.step(p, slice(0, 3), x, y, lr, torch.ones(3, dtype=torch.bool), trainable)
    assert ok.all()
    torch.testing.assert_close(got_loss, want_loss.detach(), rtol=0, atol=1e-14)
    for k in p:
        torch.testing.assert_close(p[k], want[k].detach(), rtol=0, atol=1e-14, msg=lambda m: f"{k}: {m}")
    if not second:
        assert torch.equal(p["a"], model.init([1, 2, 3])["a"].double())


@pytest.mark.parametrize("batch_size", [10, None], ids=["minibatch", "fullbatch"])
@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_trainer_in_fused_mode_matches_torch_sgd(loss, batch_size, split):
    model = TwoLayerReLU(split.train.x.shape[1], 16, output_bias=True)
    members = grid(SCHEDULES, [0, 3], data_per_seed=False)
    cfg = TrainConfig(loss=loss, steps=30, batch_size=batch_size, weight_decay=1e-3, eval_every=10, mode="fused")
    res = train_population(model, members, split.train, split.test, cfg)
    assert res.mode == "fused" and not res.members.diverged.any()
    for k, mod in enumerate(reference_sgd(model, members, [split.train], cfg)):
        for name, value in module_params(mod).items():
            torch.testing.assert_close(res.params[name][k], value, rtol=1e-5, atol=1e-5)


def test_fused_records_equal_the_autograd_step_to_float32_roundoff(split):
    """Same members, data and batches: every recorded metric agrees with mode 'vectorized'."""
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = grid(SCHEDULES, [0, 1], data_per_seed=False)
    base = dict(steps=40, batch_size=8, eval_every=5)
    a = train_population(model, members, split.train, split.test, TrainConfig(mode="fused", **base))
    b = train_population(model, members, split.train, split.test, TrainConfig(mode="vectorized", **base))
    assert_records_close(a.records, b.records, atol=2e-6)


def test_members_split_into_chunks_train_as_one_chunk(split, monkeypatch):
    """Chunking is bookkeeping: 6 members in chunks of 4 and 2 give the numbers of one chunk of 6."""
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = grid(SCHEDULES, [0, 1], data_per_seed=False)
    cfg = TrainConfig(steps=20, batch_size=8, eval_every=5, mode="fused")
    whole = train_population(model, members, split.train, split.test, cfg)
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 4 * 8 * 16)
    assert fused.chunk_size(6, 8, 16) == 4
    chunked = train_population(model, members, split.train, split.test, cfg)
    assert_records_close(chunked.records, whole.records, atol=1e-6)


def test_diverging_member_is_frozen_exactly_and_others_are_undisturbed(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    cfg = TrainConfig(steps=30, batch_size=16, eval_every=5, mode="fused")
    calm = {"const": Constant(0.05), "step": StepDecay(0.2, (12,), 0.1)}
    res = train_population(model, grid(dict(calm, huge=Constant(1e6)), [0, 1], data_per_seed=False),
                           split.train, split.test, cfg)
    ref = train_population(model, grid(calm, [0, 1], data_per_seed=False), split.train, split.test, cfg)
    vec = train_population(model, grid(dict(calm, huge=Constant(1e6)), [0, 1], data_per_seed=False),
                           split.train, split.test, cfg.model_copy(update={"mode": "vectorized"}))
    mem = res.members.set_index("member")
    huge = mem.index[mem.name == "huge"].tolist()
    assert mem.loc[huge, "diverged"].all() and not mem.drop(huge).diverged.any()
    pd.testing.assert_series_equal(res.members.diverged_step, vec.members.diverged_step)
    for k in huge:  # frozen with the parameters it had before the step that blew up, like the autograd step
        assert torch.isfinite(res.params["W"][k]).all()
        torch.testing.assert_close(res.params["W"][k], vec.params["W"][k], rtol=1e-4, atol=1e-4)
    others = res.records[~res.records.member.isin(huge)].reset_index(drop=True)
    assert_records_close(others, ref.records, atol=0)  # the frozen members change nothing for the rest


def test_autodecay_sees_the_same_losses_in_fused_mode(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = grid({"auto": AutoDecaySchedule(0.2, window=2, factor=0.5, min_lr=1e-3, max_decays=2)}, [0, 1],
                   data_per_seed=False)
    runs = [train_population(model, members, split.train, None,
                             TrainConfig(steps=120, batch_size=16, eval_every=4, mode=m))
            for m in ("fused", "vectorized")]
    for k in runs[0].decisions:
        a, b = runs[0].decisions[k], runs[1].decisions[k]
        assert list(a.action) == list(b.action)
        torch.testing.assert_close(torch.tensor(a.loss.to_numpy()), torch.tensor(b.loss.to_numpy()),
                                   rtol=1e-5, atol=1e-6)


class Stop(Exception):
    pass


def test_fused_run_resumes_to_identical_records(split, tmp_path):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = grid(dict(SCHEDULES, huge=Constant(1e6)), [0, 1], data_per_seed=False)
    cfg = TrainConfig(steps=40, batch_size=12, eval_every=5, checkpoint_every=10, mode="auto")
    full = train_population(model, members, split.train, split.test, cfg)
    assert full.mode == "fused" and full.members.diverged.any()
    with pytest.raises(Stop):
        train_population(model, members, split.train, split.test, cfg, run_dir=tmp_path,
                         progress=interrupt_at(27, Stop))
    again = train_population(model, members, split.train, split.test, cfg, run_dir=tmp_path, resume=True)
    assert again.mode == "fused"
    pd.testing.assert_frame_equal(full.records, again.records, check_exact=True)
    for k in full.params:
        assert torch.equal(full.params[k], again.params[k]), k


def test_auto_picks_fused_only_where_it_applies(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = grid({"c": Constant(0.05)}, [0, 1])
    plain = TrainConfig(steps=2, batch_size=8, eval_every=1)
    assert train_population(model, members, split.train, None, plain).mode == "fused"
    heavy = plain.model_copy(update={"momentum": 0.9})
    assert train_population(model, members, split.train, None, heavy).mode == "vectorized"
    factory = FromModule(lambda: torch.nn.Sequential(torch.nn.Linear(split.train.x.shape[1], 1)))
    assert train_population(factory, members, split.train, None, plain).mode in ("vectorized", "loop")


@pytest.mark.parametrize("change,words", [
    ({"momentum": 0.9}, "momentum 0.9"),
    ({"loss": "cross_entropy"}, "cross_entropy loss"),
])
def test_mode_fused_says_why_it_cannot_run(change, words, split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    cfg = TrainConfig(steps=2, batch_size=8, eval_every=1, mode="fused").model_copy(update=change)
    blocker = fused.eligible(model, cfg, stochastic=False, stream=False)
    assert words in blocker
    with pytest.raises(ValueError, match=f"mode 'fused' cannot train this run: .*{words}"):
        choose_mode(model, (split.train.x.shape[1],), 8, 2, "fused", blocker)
    if change.get("loss") is None:
        with pytest.raises(ValueError, match=words):
            train_population(model, grid({"c": Constant(0.05)}, [0]), split.train, None, cfg)


def test_other_models_are_never_fused():
    mod = FromModule(lambda: torch.nn.Linear(3, 1))
    assert "not a TwoLayerReLU" in fused.eligible(mod, TrainConfig(steps=1, eval_every=1), False, False)
    wide = TwoLayerReLU(3, 4, out_dim=2)
    assert "2 outputs" in fused.eligible(wide, TrainConfig(steps=1, eval_every=1), False, False)
    assert fused.chunk_size(64, 128, 1024) == 8 and fused.chunk_size(64, 64, 256) == 64
    assert fused.chunk_size(3, 10_000, 10_000) == 1
