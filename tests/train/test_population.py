"""The population trainer: parity with torch.optim.SGD, modes, determinism, divergence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import lrlab
from lrlab.config import TrainConfig
from lrlab.data import li2019_mixture
from lrlab.models import FromModule, TwoLayerReLU
from lrlab.probes import metric_names
from lrlab.train import Constant, Member, StepDecay, grid, total_lr, train_population
from lrlab.train.population import LOOP_THRESHOLD_ACTIVATIONS, LOOP_THRESHOLD_FLOPS, choose_mode
from tests.helpers import (
    assert_records_close,
    minibatch,
    module_params,
    multiclass_dataset,
    reference_sgd,
    tiny_data_cfg,
)

SCHEDULES = {
    "const": Constant(0.05),
    "step": StepDecay(0.2, (12,), 0.1),
    "warm": Constant(0.1, warmup_steps=5),
}


MULTICLASS_SCHEDULES = {
    "const": Constant(0.02),
    "step": StepDecay(0.08, (12,), 0.1),
    "warm": Constant(0.04, warmup_steps=5),
}


def _members(seeds=(0, 3), data_per_seed=False, schedules=SCHEDULES):
    return grid(schedules, list(seeds), data_per_seed=data_per_seed)


def _assert_params_match(res, modules, rtol=1e-5, atol=1e-5):
    assert not res.members.diverged.any()
    for k, mod in enumerate(modules):
        ref = module_params(mod)
        for name, value in ref.items():
            torch.testing.assert_close(res.params[name][k], value, rtol=rtol, atol=atol,
                                       msg=lambda m: f"member {k}, param {name}: {m}")


# --------------------------------------------------------------------------- parity with SGD


@pytest.mark.parametrize("batch_size", [16, None], ids=["minibatch", "fullbatch"])
@pytest.mark.parametrize("nesterov", [False, True], ids=["heavyball", "nesterov"])
@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_binary_parity_with_torch_sgd(loss, nesterov, batch_size, split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = _members()
    cfg = TrainConfig(loss=loss, steps=25, batch_size=batch_size, momentum=0.9, nesterov=nesterov,
                      weight_decay=1e-3, eval_every=5, mode="vectorized")
    res = train_population(model, members, split.train, split.test, cfg)
    _assert_params_match(res, reference_sgd(model, members, [split.train], cfg))


@pytest.mark.parametrize("batch_size", [12, None], ids=["minibatch", "fullbatch"])
@pytest.mark.parametrize("nesterov", [False, True], ids=["heavyball", "nesterov"])
@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
def test_multiclass_parity_with_torch_sgd(loss, nesterov, batch_size):
    train, test = multiclass_dataset(48, seed=0), multiclass_dataset(24, seed=1)
    model = TwoLayerReLU(6, 12, out_dim=3, output_bias=True)
    members = _members(schedules=MULTICLASS_SCHEDULES)
    cfg = TrainConfig(loss=loss, steps=25, batch_size=batch_size, momentum=0.9, nesterov=nesterov,
                      weight_decay=5e-3, eval_every=5, mode="vectorized")
    res = train_population(model, members, train, test, cfg)
    assert res.params["a"].shape == (len(members), 12, 3)
    _assert_params_match(res, reference_sgd(model, members, [train], cfg))


@pytest.mark.parametrize("optimizer, weight_decay", [("adam", 0.0), ("adam", 1e-2), ("adamw", 1e-2)])
@pytest.mark.parametrize("mode", ["vectorized", "loop"])
def test_adam_and_adamw_parity_with_torch_optim(optimizer, weight_decay, mode):
    """Per-member rates (constant, step decay, warm-up) under Adam/AdamW equal torch.optim's."""
    train, test = multiclass_dataset(48, seed=0), multiclass_dataset(24, seed=1)
    model = TwoLayerReLU(6, 12, out_dim=3, output_bias=True)
    members = _members(schedules=MULTICLASS_SCHEDULES)
    cfg = TrainConfig(loss="cross_entropy", steps=25, batch_size=12, optimizer=optimizer, betas=(0.8, 0.99),
                      eps=1e-6, weight_decay=weight_decay, eval_every=5, mode=mode)
    res = train_population(model, members, train, test, cfg)
    _assert_params_match(res, reference_sgd(model, members, [train], cfg))
    assert res.mode == mode


def test_adam_settings_are_checked_and_sgd_configs_read_as_before():
    with pytest.raises(ValueError, match="momentum and nesterov belong to optimizer 'sgd'; adam has betas"):
        TrainConfig(steps=5, eval_every=5, optimizer="adam", momentum=0.9)
    with pytest.raises(ValueError, match=r"betas must each lie in \[0, 1\), got \[0.9, 1.0\]"):
        TrainConfig(steps=5, eval_every=5, optimizer="adamw", betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas and eps belong to optimizer 'adam' or 'adamw'"):
        TrainConfig(steps=5, eval_every=5, eps=1e-6)
    sgd = TrainConfig(steps=5, eval_every=5, momentum=0.9).model_dump()
    assert not {"optimizer", "betas", "eps"} & set(sgd)  # job fingerprints of SGD configs unchanged
    assert TrainConfig(steps=5, eval_every=5, optimizer="adam").model_dump()["betas"] == (0.9, 0.999)


def test_parity_plain_sgd_without_momentum(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16, bias=False)
    members = _members()
    # 64 examples in batches of 10: six batches per epoch, the last 4 examples unused each epoch
    cfg = TrainConfig(steps=30, batch_size=10, weight_decay=1e-2, eval_every=10, mode="vectorized")
    res = train_population(model, members, split.train, split.test, cfg)
    assert "b" not in res.params
    _assert_params_match(res, reference_sgd(model, members, [split.train], cfg))


def test_parity_with_multistep_lr_scheduler(split):
    """Step decay with milestones crossed mid-run equals torch's MultiStepLR."""
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = grid({"hi": StepDecay(0.3, (8, 17), 0.2), "lo": StepDecay(0.05, (8, 17), 0.5)},
                   [0, 1], data_per_seed=False)
    cfg = TrainConfig(steps=25, batch_size=16, momentum=0.9, nesterov=True, weight_decay=1e-3,
                      eval_every=5, mode="vectorized")
    res = train_population(model, members, split.train, split.test, cfg)
    _assert_params_match(res, reference_sgd(model, members, [split.train], cfg, use_scheduler=True))


def test_parity_with_one_dataset_per_seed():
    cfg_d = tiny_data_cfg()
    splits = [li2019_mixture(cfg_d, s) for s in (0, 1)]
    trains = [s.train for s in splits]
    model = TwoLayerReLU(trains[0].x.shape[1], 16)
    members = _members(seeds=(0, 1), data_per_seed=True)
    assert sorted({m.data_index for m in members}) == [0, 1]
    cfg = TrainConfig(steps=20, batch_size=16, momentum=0.9, weight_decay=1e-3, eval_every=5,
                      mode="vectorized")
    res = train_population(model, members, trains, [s.test for s in splits], cfg)
    _assert_params_match(res, reference_sgd(model, members, trains, cfg))


def test_parity_in_loop_mode_with_frozen_second_layer(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16, train_second_layer=False)
    members = _members()
    cfg = TrainConfig(steps=20, batch_size=16, momentum=0.9, weight_decay=1e-3, eval_every=5,
                      mode="loop")
    res = train_population(model, members, split.train, split.test, cfg)
    assert res.mode == "loop"
    init = model.init([m.seed for m in members])
    assert torch.equal(res.params["a"], init["a"])  # the frozen layer never moves
    assert not torch.equal(res.params["W"], init["W"])
    _assert_params_match(res, reference_sgd(model, members, [split.train], cfg))


# --------------------------------------------------------------------------- modes and adapters


def test_loop_mode_equals_vectorized_mode(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = _members()
    base = dict(steps=30, batch_size=16, momentum=0.9, nesterov=True, weight_decay=1e-3,
                eval_every=5)
    vec = train_population(model, members, split.train, split.test,
                           TrainConfig(mode="vectorized", **base))
    loop = train_population(model, members, split.train, split.test, TrainConfig(mode="loop", **base))
    assert (vec.mode, loop.mode) == ("vectorized", "loop")
    assert_records_close(vec.records, loop.records, atol=1e-5)
    pd.testing.assert_frame_equal(vec.members, loop.members)


def _as_module_factory(model: TwoLayerReLU):
    """A factory whose module under torch.manual_seed(s) has TwoLayerReLU's init for seed s."""

    def factory():
        return model.to_module(model.init([torch.initial_seed()]), 0)

    return factory


@pytest.mark.parametrize("mode", ["vectorized", "loop"])
def test_from_module_trains_like_two_layer_relu(mode, split):
    tl = TwoLayerReLU(split.train.x.shape[1], 16)
    fm = FromModule(_as_module_factory(tl))
    members = _members()
    cfg = TrainConfig(steps=20, batch_size=16, momentum=0.9, weight_decay=1e-3, eval_every=5,
                      mode=mode)
    a = train_population(tl, members, split.train, split.test, cfg)
    b = train_population(fm, members, split.train, split.test, cfg)
    assert set(b.params) == {"1.weight", "1.bias", "3.weight"}
    torch.testing.assert_close(b.params["1.weight"], a.params["W"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.params["1.bias"], a.params["b"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b.params["3.weight"].transpose(1, 2), a.params["a"], rtol=1e-5,
                               atol=1e-6)
    assert_records_close(a.records, b.records, atol=1e-5)


def test_from_module_matches_torch_optim_loop(split):
    d = split.train.x.shape[1]

    def factory():
        return torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    fm = FromModule(factory)
    members = grid({"a": Constant(0.1), "b": Constant(0.02)}, [4, 5], data_per_seed=False)
    cfg = TrainConfig(steps=15, batch_size=16, momentum=0.9, eval_every=5, mode="vectorized")
    res = train_population(fm, members, split.train, None, cfg)
    for k, m in enumerate(members):
        torch.manual_seed(m.seed)
        mod = factory()
        opt = torch.optim.SGD(mod.parameters(), lr=m.schedule(0), momentum=0.9)
        for t in range(cfg.steps):
            idx = minibatch(m.seed, t, len(split.train), 16)
            opt.zero_grad()
            torch.nn.functional.soft_margin_loss(mod(split.train.x[idx]).squeeze(-1),
                                                 split.train.y[idx]).backward()
            opt.step()
        for name, p in mod.named_parameters():
            torch.testing.assert_close(res.params[name][k], p.detach(), rtol=1e-5, atol=1e-6)


def test_from_module_frozen_parameters_do_not_move(split):
    d = split.train.x.shape[1]
    fm = FromModule(lambda: torch.nn.Sequential(torch.nn.Linear(d, 8), torch.nn.ReLU(),
                                                torch.nn.Linear(8, 1)), frozen=["2.weight"])
    members = grid({"a": Constant(0.1)}, [0, 1], data_per_seed=False)
    res = train_population(fm, members, split.train, None,
                           TrainConfig(steps=10, batch_size=16, momentum=0.9, weight_decay=0.1,
                                       eval_every=5))
    init = fm.init([0, 1])
    assert torch.equal(res.params["2.weight"], init["2.weight"])
    assert not torch.equal(res.params["2.bias"], init["2.bias"])


def test_choose_mode():
    small = TwoLayerReLU(10, 8)
    assert choose_mode(small, (10,), 32, 4, "auto") == "vectorized"
    assert choose_mode(small, (10,), 32, 4, "auto", fused_blocker=None) == "fused"
    # a model that reports its activations switches on batch × width, not FLOPs
    narrow_deep = TwoLayerReLU(10_000, 64)
    assert narrow_deep.flops_per_example((10_000,)) * 32 > LOOP_THRESHOLD_FLOPS
    assert choose_mode(narrow_deep, (10_000,), 32, 4, "auto") == "vectorized"
    big = TwoLayerReLU(1000, 4096)
    assert 32 * 4096 > LOOP_THRESHOLD_ACTIVATIONS
    assert choose_mode(big, (1000,), 32, 4, "auto") == "loop"
    assert choose_mode(big, (1000,), 32, 1, "auto") == "vectorized"  # one member: nothing to loop
    assert choose_mode(big, (1000,), 32, 4, "vectorized") == "vectorized"
    # a model that does not: forward FLOPs
    conv = FromModule(lambda: torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.Flatten(),
                                                  torch.nn.Linear(64 * 30 * 30, 1)))
    assert choose_mode(conv, (3, 32, 32), 128, 3, "auto") == "loop"
    assert choose_mode(small, (10,), 32, 4, "loop") == "loop"
    with pytest.raises(ValueError, match="mode"):
        choose_mode(small, (10,), 32, 4, "parallel")


# --------------------------------------------------------------------------- determinism


def test_same_config_and_seed_give_identical_records(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    cfg = TrainConfig(steps=25, batch_size=8, momentum=0.9, eval_every=5)
    a = train_population(model, _members(), split.train, split.test, cfg)
    b = train_population(model, _members(), split.train, split.test, cfg)
    pd.testing.assert_frame_equal(a.records, b.records, check_exact=True)
    pd.testing.assert_frame_equal(a.members, b.members, check_exact=True)
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k])


def test_different_seeds_give_different_runs(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    cfg = TrainConfig(steps=10, batch_size=8, eval_every=5)
    a = train_population(model, grid({"c": Constant(0.1)}, [0]), split.train, None, cfg)
    b = train_population(model, grid({"c": Constant(0.1)}, [1]), split.train, None, cfg)
    assert not torch.equal(a.params["W"], b.params["W"])


def test_members_with_one_seed_share_init_and_batches(split):
    """Common random numbers: two schedules equal until a milestone give identical curves."""
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = grid({"const": Constant(0.1), "decay": StepDecay(0.1, (15,), 0.1)}, [7],
                   data_per_seed=False)
    cfg = TrainConfig(steps=30, batch_size=8, momentum=0.9, eval_every=5, mode="vectorized")
    loss = train_population(model, members, split.train, split.test, cfg).curve("train.loss")
    assert (loss.loc[:15, 0] == loss.loc[:15, 1]).all()
    assert (loss.loc[20:, 0] != loss.loc[20:, 1]).all()


# --------------------------------------------------------------------------- divergence


@pytest.mark.parametrize("mode", ["vectorized", "loop"])
def test_diverging_member_is_frozen_and_does_not_disturb_others(mode, split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    cfg = TrainConfig(steps=30, batch_size=16, momentum=0.9, eval_every=5, mode=mode)
    calm = {"const": Constant(0.05), "step": StepDecay(0.2, (12,), 0.1)}
    with_huge = dict(calm, huge=Constant(1e6))
    res = train_population(model, grid(with_huge, [0, 1], data_per_seed=False), split.train,
                           split.test, cfg)
    ref = train_population(model, grid(calm, [0, 1], data_per_seed=False), split.train,
                           split.test, cfg)
    mem = res.members.set_index("member")
    huge = mem.index[mem.name == "huge"].tolist()
    assert mem.loc[huge, "diverged"].all() and not mem.drop(huge).diverged.any()
    for k in huge:
        t_div = int(mem.loc[k, "diverged_step"])
        assert 0 <= t_div < cfg.steps
        rec = res.records[(res.records.member == k) & (res.records.step > t_div)]
        measured = rec[~rec.metric.isin(["lr", "diverged"])]
        assert len(measured) > 0 and measured.value.isna().all()
        assert (rec[rec.metric == "diverged"].value == 1.0).all()
        assert torch.isfinite(res.params["W"][k]).all()  # frozen before a non-finite update
    assert (mem.drop(huge).diverged_step == -1).all()
    others = res.records[~res.records.member.isin(huge)].reset_index(drop=True)
    assert_records_close(others, ref.records, atol=1e-6)
    for name in ref.params:
        torch.testing.assert_close(res.params[name][: len(ref.members)], ref.params[name],
                                   rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- records


def test_records_layout_and_metrics(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = _members()
    cfg = TrainConfig(steps=23, batch_size=16, eval_every=5, mode="vectorized")
    res = train_population(model, members, split.train, split.test, cfg)
    assert list(res.records.columns) == ["member", "step", "metric", "value"]
    assert sorted(res.records.step.unique()) == [0, 5, 10, 15, 20, 23]
    groups = split.train.group_names
    expected = set(metric_names("train", groups) + metric_names("test", groups) + ["lr", "diverged"])
    assert set(res.records.metric.unique()) == expected
    counts = res.records.groupby(["member", "step", "metric"]).size()
    assert (counts == 1).all() and len(counts) == len(members) * 6 * len(expected)
    # the lr metric is the rate the schedule gives for the next update
    lr = res.curve("lr")
    for k, m in enumerate(members):
        assert lr[k].tolist() == pytest.approx([m.schedule(min(t, 22)) for t in lr.index])
    # members table
    mem = res.members
    assert mem.name.tolist() == [m.name for m in members]
    assert mem.seed.tolist() == [m.seed for m in members]
    assert mem.total_lr.tolist() == pytest.approx([total_lr(m.schedule, 23) for m in members])
    assert not mem.diverged.any()


def test_final_metrics_match_a_recomputation_from_final_params(split):
    model = TwoLayerReLU(split.train.x.shape[1], 16)
    members = _members()
    cfg = TrainConfig(steps=20, batch_size=16, momentum=0.9, eval_every=5)
    res = train_population(model, members, split.train, split.test, cfg)
    K = len(members)
    for name, data in (("train", split.train), ("test", split.test)):
        out = model.forward(res.params, data.x.expand(K, *data.x.shape))
        correct = (out * data.y) > 0
        loss = torch.nn.functional.softplus(-data.y * out)
        np.testing.assert_allclose(res.final(f"{name}.acc").to_numpy(),
                                   correct.double().mean(1).numpy(), atol=1e-12)
        np.testing.assert_allclose(res.final(f"{name}.loss").to_numpy(),
                                   loss.double().mean(1).numpy(), rtol=1e-5)
        for gi, g in enumerate(data.group_names):
            mask = data.group == gi
            np.testing.assert_allclose(res.final(f"{name}.{g}.acc").to_numpy(),
                                       correct[:, mask].double().mean(1).numpy(), atol=1e-12)


def test_no_test_set_records_train_metrics_only(split):
    model = TwoLayerReLU(split.train.x.shape[1], 8)
    res = train_population(model, grid({"c": Constant(0.1)}, [0]), split.train, None,
                           TrainConfig(steps=5, eval_every=5))
    assert not any(m.startswith("test.") for m in res.records.metric.unique())
    with pytest.raises(KeyError, match="test.acc"):
        res.curve("test.acc")


# --------------------------------------------------------------------------- input errors


def test_grid_and_member_errors(split):
    assert [(m.name, m.seed, m.data_index) for m in grid({"a": Constant(0.1)}, [5, 9])] == [
        ("a", 5, 0), ("a", 9, 1)]
    with pytest.raises(ValueError, match="schedule"):
        grid({}, [0])
    with pytest.raises(ValueError, match="0 seeds"):
        grid({"a": Constant(0.1)}, [])
    with pytest.raises(ValueError, match="distinct"):
        grid({"a": Constant(0.1)}, [1, 1])
    model = TwoLayerReLU(split.train.x.shape[1], 8)
    cfg = TrainConfig(steps=5, eval_every=5)
    with pytest.raises(ValueError, match="at least one member"):
        train_population(model, [], split.train, None, cfg)
    with pytest.raises(ValueError, match="data_index"):
        train_population(model, [Member("a", 0, Constant(0.1), data_index=2)],
                         [split.train, split.train], None, cfg)
    with pytest.raises(ValueError, match="larger than the training set"):
        train_population(model, grid({"a": Constant(0.1)}, [0]), split.train, None,
                         TrainConfig(steps=5, eval_every=5, batch_size=1000))


def test_loss_and_task_must_match(split):
    cfg = TrainConfig(loss="cross_entropy", steps=5, eval_every=5)
    with pytest.raises(ValueError, match="multiclass"):
        train_population(TwoLayerReLU(10, 8), grid({"a": Constant(0.1)}, [0]), split.train, None, cfg)
    mc = multiclass_dataset()
    with pytest.raises(ValueError, match="binary"):
        train_population(TwoLayerReLU(6, 8, out_dim=3), grid({"a": Constant(0.1)}, [0]), mc, None,
                         TrainConfig(loss="logistic", steps=5, eval_every=5))


def test_stacked_datasets_must_match():
    a = li2019_mixture(tiny_data_cfg(), 0).train
    b = li2019_mixture(tiny_data_cfg(n_train=40), 1).train
    with pytest.raises(ValueError, match="stacked datasets must match"):
        train_population(TwoLayerReLU(10, 8), grid({"a": Constant(0.1)}, [0, 1]), [a, b], None,
                         TrainConfig(steps=5, eval_every=5))


def test_result_curve_and_final(split):
    res = train_population(TwoLayerReLU(10, 8), grid({"a": Constant(0.1)}, [0, 1], data_per_seed=False),
                           split.train, None, TrainConfig(steps=10, eval_every=5))
    c = res.curve("train.acc")
    assert list(c.index) == [0, 5, 10] and list(c.columns) == [0, 1]
    pd.testing.assert_series_equal(res.final("train.acc"), c.loc[10])
    with pytest.raises(KeyError, match="recorded metrics"):
        res.curve("nope")


def test_training_leaves_global_rng_untouched(split):
    tl = TwoLayerReLU(split.train.x.shape[1], 8)
    fm = FromModule(_as_module_factory(tl))
    members = grid({"a": Constant(0.1)}, [0, 1], data_per_seed=False)
    before = torch.random.get_rng_state()
    train_population(fm, members, split.train, None, TrainConfig(steps=5, eval_every=5, mode="auto"))
    assert torch.equal(before, torch.random.get_rng_state())


def test_package_docstring_example_runs():
    split = lrlab.li2019_mixture(tiny_data_cfg(), seed=0)
    model = lrlab.TwoLayerReLU(d_in=split.train.x.shape[1], width=8)
    members = lrlab.grid({"large": lrlab.StepDecay(0.1, (5,), 0.04), "small": lrlab.Constant(0.004)},
                         seeds=[0, 1, 2])
    res = lrlab.train_population(model, members, split.train, split.test,
                                 TrainConfig(steps=10, eval_every=5))
    assert len(res.members) == 6
