"""The li2019-patch claim: config checks, one job per run, execution options, verdict arithmetic on
hand-made tables, resuming an interrupted job, end to end through the driver."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lrlab import experiment
from lrlab.claims import li2019_patch as patch
from lrlab.claims.protocol import JobContext
from lrlab.config import ConfigError, validate
from lrlab.driver import load_claim_config, report, verify
from lrlab.stats import FAIL, INCONCLUSIVE, PASS
from lrlab.train import population
from tests.helpers import tiny_image_run_dict, write_yaml

SETTINGS = {"early_epoch": 2, "patch_level": 0.5}
ALL_IDS = {"a-small-early", "a-large-chance-before-anneal", "a-large-vs-small-early", "b-large-clean-final",
           "c-noise-chance-before-anneal", "c-noise-vs-small-early", "c-noise-clean-final",
           "a-large-learns-after-anneal", "d-gap-without-patch", "d-patch-widens-gap"}
ACCURACY = {"b-large-clean-final", "c-noise-clean-final", "d-gap-without-patch"}


def _claim(root, seeds=(0, 1), **settings) -> dict:
    rc = tiny_image_run_dict(root)
    del rc["population"]["seeds"], rc["train"]["threads"]
    return {"execution": {"seeds": list(seeds)}, "claim": {**SETTINGS, **settings}, "regimes": {"tiny": rc}}


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_shipped_configs_validate(scale):
    cfg = load_claim_config(patch.NAME, scale, seeds=2)
    assert cfg.execution.seeds == [0, 1]
    for rc in cfg.regimes.values():
        assert rc.population.seeds == [0, 1]
        assert rc.data.patch is not None and rc.train.unit == "epoch"


def test_report_states_the_single_draw_of_subset_and_patch():
    """The intervals cover seeds only: the report says which one draw of the data subset and of
    the patch they are conditional on, from the config values."""
    d = load_claim_config(patch.NAME, "quick").regimes["quick"].data
    text = patch.conditioning(d)
    assert text.startswith("The intervals are conditional on one draw of the data subset (subset_seed = 0: "
                           "1000 training and 200 test images per class) and of the patch (patch.seed = 0: ")
    assert "initialisation, minibatch order and the per-use patch draws (sign, patch-only uses) only" in text
    other = d.model_copy(update={"subset_seed": 7, "patch": d.patch.model_copy(update={"seed": 3})})
    assert "(subset_seed = 7: " in patch.conditioning(other) and "(patch.seed = 3: " in patch.conditioning(other)
    full = patch.conditioning(load_claim_config(patch.NAME, "paper").regimes["paper"].data)
    assert full.startswith("The intervals are conditional on one draw of the patch (patch.seed = 0: ")
    assert "on all training and test images (no subset is drawn)" in full and "subset_seed" not in full


def test_claim_config_checks(cifar_root):
    cfg = validate(patch.Config, _claim(cifar_root))
    assert cfg.regimes["tiny"].population.seeds == [0, 1]
    assert (cfg.regimes["tiny"].train.device, cfg.regimes["tiny"].train.threads) == ("cpu", 1)
    bad = _claim(cifar_root)
    del bad["regimes"]["tiny"]["population"]["activation_noise"]["noise"]
    with pytest.raises(ConfigError, match="activation_noise has no entry for 'noise'"):
        validate(patch.Config, bad)
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["data"]["patch"] = None
    with pytest.raises(ConfigError, match="cifar10 data with a patch"):
        validate(patch.Config, bad)
    with pytest.raises(ConfigError, match=r"early_epoch 9 is beyond train.steps \(2 epochs\)"):
        validate(patch.Config, _claim(cifar_root, early_epoch=9))
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["population"]["schedules"]["large"] = {"kind": "constant", "lr": 0.1}
    with pytest.raises(ConfigError, match="schedules.large must be a 'step' schedule"):
        validate(patch.Config, bad)
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["population"]["seeds"] = [5]
    with pytest.raises(ConfigError, match=r"regimes.tiny.population.seeds = \[5\] differs from execution.seeds"):
        validate(patch.Config, bad)
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["train"]["device"] = "cuda"
    with pytest.raises(ConfigError, match="regimes.tiny.train.device = 'cuda' differs from execution.device"):
        validate(patch.Config, bad)
    same = _claim(cifar_root)
    same["regimes"]["tiny"]["population"]["seeds"] = [0, 1]  # a stored config states them: fine
    validate(patch.Config, same)


def test_one_job_per_run_and_clean_control(cifar_root):
    cfg = validate(patch.Config, _claim(cifar_root))
    js = patch.jobs(cfg)
    assert [j.key for j in js] == ["tiny-patch-seed0", "tiny-clean-seed0", "tiny-patch-seed1", "tiny-clean-seed1"]
    assert all(j.resources.cpus == 1 and j.resources.gpus == 0 for j in js)
    for j in js:
        rc = patch.run_config(cfg.regimes["tiny"], cfg.claim, j.part, j.params["seed"], "cpu", 1)
        assert rc.population.seeds == [j.params["seed"]]
        if j.part == "clean":
            assert rc.data.patch is None and set(rc.population.schedules) == {"large", "small"}
            assert rc.population.activation_noise == {}
            assert rc.name == f"tiny-images-clean-seed{j.params['seed']}"
        else:
            assert set(rc.population.schedules) == {"large", "small", "noise"}
            assert rc.name == f"tiny-images-seed{j.params['seed']}"
    no_ctrl = validate(patch.Config, _claim(cifar_root, control=False))
    assert [j.part for j in patch.jobs(no_ctrl)] == ["patch"] * 2
    on_gpu = _claim(cifar_root)
    on_gpu["execution"]["device"] = "cuda:1"
    assert all(j.resources.gpus == 1 for j in patch.jobs(validate(patch.Config, on_gpu)))


def test_equal_total_lr_control_jobs(cifar_root):
    """The equal-Σηt control: small LR alone on patched images, on the first same_time_seeds seeds,
    for the epochs that give it the large schedule's Σηt (ceil of the ratio), probed every
    same_time_eval_every epochs; the runs' total_lr agree to within one epoch of the small rate."""
    raw = _claim(cifar_root, seeds=(0, 1, 2), same_time_seeds=2, same_time_eval_every=2)
    raw["regimes"]["tiny"]["population"]["schedules"]["small"]["lr"] = 0.05
    cfg = validate(patch.Config, raw)
    # large: 0.1 for 1 epoch then 0.004 for 1 epoch = 0.104 = 2.08 epochs at 0.05 -> 3 epochs
    assert patch.same_time_epochs(cfg.regimes["tiny"], cfg.claim) == 3
    js = patch.jobs(cfg)
    assert [j.key for j in js][:2] == ["tiny-same-time-seed0", "tiny-same-time-seed1"]
    assert len(js) == 2 + 3 * 2
    rc = patch.run_config(cfg.regimes["tiny"], cfg.claim, "same-time", 1)
    assert set(rc.population.schedules) == {"small"} and rc.population.activation_noise == {}
    assert (rc.train.steps, rc.train.eval_every, rc.data.patch is not None) == (3, 2, True)
    assert rc.name == "tiny-images-same-time-seed1"
    ctrl = patch.run_job(cfg, js[0], JobContext())
    main = patch.run_job(cfg, next(j for j in js if j.part == "patch" and j.params["seed"] == 0), JobContext())
    e = ctrl["epochs"]
    assert set(e.data) == {"same-time"} and set(e.schedule) == {"small"} and set(e.seed) == {0}
    assert sorted(set(e.epoch)) == [0, 2, 3] and "batch.acc" in set(e.metric)
    total = ctrl["members"].set_index("name").total_lr
    large = main["members"].set_index("name").total_lr
    spe = 10 * 10 // 20  # tiny data: 100 training images, batch 20
    assert large["large"] <= total["small"] < large["large"] + 0.05 * spe
    with pytest.raises(ConfigError, match="same_time_seeds = 1: an interval needs at least 2"):
        validate(patch.Config, _claim(cifar_root, same_time_seeds=1))
    capped = validate(patch.Config, _claim(cifar_root, seeds=(4,), same_time_seeds=2))  # --seeds 1
    assert [j.key for j in patch.jobs(capped)][0] == "tiny-same-time-seed4"


class _Reached(Exception):
    pass


def test_execution_options_reach_every_job(monkeypatch):
    """--seeds, --device and --threads reach the run of every job."""
    cfg = load_claim_config(patch.NAME, "quick", seeds=2, device="cuda:3", threads=2)
    assert cfg.execution.seeds == [0, 1]
    assert all(rc.population.seeds == [0, 1] for rc in cfg.regimes.values())
    js = patch.jobs(cfg)
    for regime in cfg.regimes:
        for kind in patch.KINDS:
            assert sorted(j.params["seed"] for j in js if j.params["regime"] == regime and j.part == kind) == [0, 1]
    seen = {}

    def recorder(rc, **kw):
        seen[rc.name] = (rc.train.device, rc.train.threads, rc.population.seeds)
        raise _Reached

    monkeypatch.setattr(experiment, "run", recorder)
    monkeypatch.setattr(experiment, "resume", recorder)
    for j in js:
        with pytest.raises(_Reached):
            patch.run_job(cfg, j, JobContext(device="cuda:3", threads=2))
    assert len(seen) == len(js) == 6  # patch, clean and the equal-Σηt control on both seeds
    assert sorted(seen.values()) == [("cuda:3", 2, [0])] * 3 + [("cuda:3", 2, [1])] * 3


# ------------------------------------------------------------------------------------ judge on hand-made tables
# id -> (test, min_effect): the rule each verdict is judged by (docs/claims/li2019-patch.md)
TESTS = {"a-small-early": ("bound", 0.0), "a-large-chance-before-anneal": ("bound", 0.0),
         "c-noise-chance-before-anneal": ("bound", 0.0), "a-large-vs-small-early": ("superiority", 0.01),
         "c-noise-vs-small-early": ("superiority", 0.01), "b-large-clean-final": ("superiority", 0.01),
         "c-noise-clean-final": ("superiority", 0.01), "a-large-learns-after-anneal": ("superiority", 0.01),
         "d-gap-without-patch": ("superiority", 0.01), "d-patch-widens-gap": ("superiority", 0.01)}
BOUNDS = {k for k, (t, _) in TESTS.items() if t == "bound"}


def _epochs(curves: dict[tuple[str, str], dict[str, list[float]]], seeds=(0, 1, 2), regime="tiny",
            offsets: dict[tuple[str, str], list[float]] | None = None) -> dict:
    """The ``epochs`` table of hand-made curves: every seed gets the curve + 0.001·seed, plus
    ``offsets[(data, schedule)][seed]`` when given."""
    rows = []
    for (data, sched), metrics in curves.items():
        extra = (offsets or {}).get((data, sched), [0.0] * len(seeds))
        for metric, values in metrics.items():
            for i, seed in enumerate(seeds):
                for epoch, v in enumerate(values):
                    rows.append((f"{regime}-{data}-seed{seed}", regime, data, sched, seed, epoch, metric,
                                 v + 0.001 * seed + extra[i], False))
    return {"epochs": pd.DataFrame(rows, columns=["job"] + patch.EPOCH_COLUMNS)}


def _spoil(tables: dict, seeds, from_epoch: int, value=np.nan, schedules=None, data=None) -> dict:
    """The tables with every value of ``seeds`` (of ``schedules`` on ``data``, default all) from
    ``from_epoch`` on replaced by ``value``, and those members marked diverged when it is NaN."""
    t = tables["epochs"].copy()
    member = t.seed.isin(seeds)
    if schedules is not None:
        member &= t.schedule.isin(schedules)
    if data is not None:
        member &= t.data == data
    t.loc[member & (t.epoch >= from_epoch), "value"] = value
    if np.isnan(value):
        t.loc[member, "diverged"] = True
    return {"epochs": t}


def _cfg(root, **settings):
    """A claim config whose large schedule anneals at epoch 4 (the hand-made curves' anneal)."""
    raw = _claim(root, seeds=(0, 1, 2), **settings)
    rc = raw["regimes"]["tiny"]
    rc["train"]["steps"] = 6
    rc["population"]["schedules"]["large"]["milestones"] = [4]
    return validate(patch.Config, raw)


def _judge(cfg, tables) -> dict:
    verdicts = patch.judge(cfg, tables)
    vs = {v.id: v for v in verdicts}
    assert set(vs) == ALL_IDS and len(verdicts) == len(ALL_IDS)
    return vs


CHANCE4 = [0.1] * 4
LEARNS = [0.1, 0.6, 0.9, 0.9, 0.9, 0.9]  # small LR's patch-only accuracy in the paper's figure
PAPER_CURVES = {
    ("patch", "small"): {"patch_only.acc": LEARNS, "test.acc": [0.1] + [0.5] * 5},
    ("patch", "large"): {"patch_only.acc": CHANCE4 + [0.7, 0.8], "test.acc": [0.1] + [0.6] * 5},
    ("patch", "noise"): {"patch_only.acc": CHANCE4 + [0.7, 0.8], "test.acc": [0.1] + [0.58] * 5},
    ("clean", "small"): {"test.acc": [0.1] + [0.55] * 5},
    ("clean", "large"): {"test.acc": [0.1] + [0.6] * 5},
}
REVERSED_CURVES = {
    ("patch", "small"): {"patch_only.acc": [0.1] * 6, "test.acc": [0.1] + [0.6] * 5},
    ("patch", "large"): {"patch_only.acc": [0.1, 0.9, 0.9, 0.9, 0.9, 0.9], "test.acc": [0.1] + [0.5] * 5},
    ("patch", "noise"): {"patch_only.acc": [0.1, 0.9, 0.9, 0.9, 0.9, 0.9], "test.acc": [0.1] + [0.5] * 5},
    ("clean", "small"): {"test.acc": [0.1] + [0.55] * 5},
    ("clean", "large"): {"test.acc": [0.1] + [0.5] * 5},
}


def _same_curves(po: list[float]) -> dict:
    """The null: every schedule has the same curves, and clean data gives the same test accuracy."""
    acc = [0.1] + [0.5] * 5
    return {**{("patch", s): {"patch_only.acc": po, "test.acc": acc} for s in ("small", "large", "noise")},
            **{("clean", s): {"test.acc": acc} for s in ("small", "large")}}


def test_every_verdict_states_its_test(cifar_root):
    vs = _judge(_cfg(cifar_root), _epochs(PAPER_CURVES))
    assert {k: (v.test, v.min_effect) for k, v in vs.items()} == TESTS
    assert all(v.failed_seeds == 0 for v in vs.values())
    assert "≥ 0.01" in vs["a-large-vs-small-early"].statement
    assert "< 20%" in vs["a-large-chance-before-anneal"].statement
    vs = _judge(_cfg(cifar_root, min_effect=0.05), _epochs(PAPER_CURVES))  # the threshold is the config's
    assert {v.min_effect for k, v in vs.items() if k not in BOUNDS} == {0.05}
    with pytest.raises(ConfigError, match="min_effect"):  # 0 would let "no effect" pass a superiority test
        _cfg(cifar_root, min_effect=0.0)


def test_judge_on_the_papers_picture(cifar_root):
    """Curves shaped like the paper's figure give PASS on every statement."""
    cfg = _cfg(cifar_root)
    tables = _epochs(PAPER_CURVES)
    vs = _judge(cfg, tables)
    assert all(v.status == PASS for v in vs.values()), {k: v.status for k, v in vs.items()}
    assert {k for k, v in vs.items() if v.kind == "accuracy"} == ACCURACY
    assert {v.regime for v in vs.values()} == {"tiny"}
    np.testing.assert_allclose(vs["a-small-early"].per_seed, [0.4, 0.401, 0.402])
    np.testing.assert_allclose(vs["a-large-chance-before-anneal"].per_seed, [0.1, 0.099, 0.098])
    np.testing.assert_allclose(vs["a-large-vs-small-early"].per_seed, [0.8] * 3)
    np.testing.assert_allclose(vs["a-large-learns-after-anneal"].per_seed, [0.1] * 3)
    np.testing.assert_allclose(vs["b-large-clean-final"].per_seed, [0.1] * 3)
    np.testing.assert_allclose(vs["c-noise-clean-final"].per_seed, [0.08] * 3)
    np.testing.assert_allclose(vs["c-noise-vs-small-early"].per_seed, [0.8] * 3)
    np.testing.assert_allclose(vs["c-noise-chance-before-anneal"].per_seed, [0.1, 0.099, 0.098])
    np.testing.assert_allclose(vs["d-gap-without-patch"].per_seed, [0.05] * 3)
    np.testing.assert_allclose(vs["d-patch-widens-gap"].per_seed, [0.05] * 3)
    assert "epoch 2" in vs["a-small-early"].statement and "50%" in vs["a-small-early"].statement
    assert "(epoch 4)" in vs["a-large-learns-after-anneal"].statement


def test_judge_reports_the_opposite_as_fail(cifar_root):
    cfg = _cfg(cifar_root)
    tables = _epochs(REVERSED_CURVES)
    vs = _judge(cfg, tables)
    assert all(v.status == FAIL for v in vs.values()), {k: v.status for k, v in vs.items()}
    np.testing.assert_allclose(vs["a-large-learns-after-anneal"].per_seed, [0.0] * 3, atol=1e-12)
    np.testing.assert_allclose(vs["d-gap-without-patch"].per_seed, [-0.05] * 3)
    np.testing.assert_allclose(vs["d-patch-widens-gap"].per_seed, [-0.05] * 3)
    [o] = patch.outcomes(cfg, tables)
    reading = patch.reading(o, list(vs.values()))
    assert "(b) large LR + anneal ending with higher clean accuracy does not hold" in reading
    assert "did not learn the patch early" in reading and "(d) the clean-data control" in reading
    no_ctrl = _cfg(cifar_root, control=False)
    assert not any(v.id.startswith("d-") for v in patch.judge(no_ctrl, tables))


def test_null_every_schedule_alike(cifar_root):
    """Large LR and small LR + noise behave exactly like small LR (which learns the patch early),
    with and without the patch: every comparison (superiority) FAILs, the 'stays near chance'
    bounds FAIL (the null lies wholly on the wrong side); a-small-early does not compare
    schedules and PASSes on small LR's curve."""
    vs = _judge(_cfg(cifar_root), _epochs(_same_curves(LEARNS)))
    assert {k: v.status for k, v in vs.items()} == {k: PASS if k == "a-small-early" else FAIL for k in ALL_IDS}
    for k in ALL_IDS - BOUNDS:
        np.testing.assert_allclose(vs[k].per_seed, [0.0] * 3, atol=1e-12)


def test_null_nobody_learns_the_patch(cifar_root):
    """Every schedule stays at chance on the patch: a-small-early FAILs, the chance bounds PASS
    (trivially: the reading says the schedules cannot be told apart), every comparison FAILs."""
    cfg = _cfg(cifar_root)
    tables = _epochs(_same_curves([0.1] * 6))
    vs = _judge(cfg, tables)
    expected = {k: FAIL for k in ALL_IDS}
    expected.update({"a-large-chance-before-anneal": PASS, "c-noise-chance-before-anneal": PASS})
    assert {k: v.status for k, v in vs.items()} == expected
    [o] = patch.outcomes(cfg, tables)
    assert "cannot tell the schedules apart" in patch.reading(o, list(vs.values()))


def test_null_at_the_bounds_is_inconclusive(cifar_root):
    """Small LR exactly at patch_level at epoch E, large LR and noise exactly at chance +
    chance_margin before the anneal (with 0.001·seed jitter): the bound intervals straddle 0."""
    small = [0.1, 0.3, 0.5, 0.9, 0.9, 0.9]
    at_bound = [0.1, 0.2, 0.2, 0.2, 0.7, 0.8]
    curves = {**PAPER_CURVES, ("patch", "small"): {**PAPER_CURVES[("patch", "small")], "patch_only.acc": small},
              ("patch", "large"): {**PAPER_CURVES[("patch", "large")], "patch_only.acc": at_bound},
              ("patch", "noise"): {**PAPER_CURVES[("patch", "noise")], "patch_only.acc": at_bound}}
    vs = _judge(_cfg(cifar_root), _epochs(curves))
    assert {k: vs[k].status for k in BOUNDS} == {k: INCONCLUSIVE for k in BOUNDS}
    np.testing.assert_allclose(vs["a-small-early"].per_seed, [0.0, 0.001, 0.002], atol=1e-12)


def test_noisy_null_is_inconclusive(cifar_root):
    """Every schedule alike on average, but large, noise and clean-data large LR scattered by
    ±0.02 over the seeds: the comparisons across schedules straddle 0 and min_effect
    (INCONCLUSIVE); learns-after-anneal compares large with itself (0 on every seed: FAIL)."""
    off = {("patch", "large"): [-0.02, 0.0, 0.02], ("patch", "noise"): [-0.02, 0.0, 0.02],
           ("clean", "large"): [0.02, 0.0, -0.02]}
    vs = _judge(_cfg(cifar_root), _epochs(_same_curves(LEARNS), offsets=off))
    expected = {k: INCONCLUSIVE for k in ALL_IDS - BOUNDS}
    expected.update({"a-large-learns-after-anneal": FAIL, "a-small-early": PASS,
                     "a-large-chance-before-anneal": FAIL, "c-noise-chance-before-anneal": FAIL})
    assert {k: v.status for k, v in vs.items()} == expected


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_failed_seed_is_counted_not_filled(cifar_root, bad):
    """Seed 1 has no finite value from epoch 1 on (diverged, or a broken value): every verdict
    counts it as a failed seed, says so in its notes, and cannot PASS."""
    vs = _judge(_cfg(cifar_root), _spoil(_epochs(PAPER_CURVES), [1], 1, bad))
    for k, v in vs.items():
        assert v.failed_seeds == 1, k
        assert not np.isfinite(v.per_seed[1]) and np.isfinite(v.per_seed[0]) and np.isfinite(v.per_seed[2]), k
        assert v.status == INCONCLUSIVE, (k, v.status)
        assert "seed 1:" in v.notes and "1 of 3 seeds failed" in v.notes, (k, v.notes)
    if np.isnan(bad):
        assert "large on patch data diverged (patch_only.acc non-finite from epoch 1)" in \
            vs["a-large-chance-before-anneal"].notes


def test_every_seed_failing_fails(cifar_root):
    vs = _judge(_cfg(cifar_root), _spoil(_epochs(PAPER_CURVES), [0, 1, 2], 1))
    assert all(v.status == FAIL and v.failed_seeds == 3 for v in vs.values()), \
        {k: (v.status, v.failed_seeds) for k, v in vs.items()}


def test_large_lr_diverging_before_the_anneal_is_no_evidence(cifar_root):
    """A large-LR member that diverged before the anneal has no patch-only accuracy: it is a failed
    seed of the large-LR verdicts (formerly scored at chance, which 'stays near chance' passed),
    and the verdicts that read only other members are untouched."""
    cfg = _cfg(cifar_root)
    tables = _spoil(_epochs(PAPER_CURVES), [1], 2, schedules=["large"], data="patch")
    vs = _judge(cfg, tables)
    large = {"a-large-chance-before-anneal", "a-large-vs-small-early", "b-large-clean-final",
             "a-large-learns-after-anneal", "d-patch-widens-gap"}
    assert {k for k, v in vs.items() if v.failed_seeds} == large
    assert all(vs[k].status != PASS for k in large)
    assert all(vs[k].status == PASS for k in ALL_IDS - large)
    [o] = patch.outcomes(cfg, tables)
    assert np.isnan(o.max_before("patch", "large", "patch_only.acc", 4).loc[1])
    assert np.isnan(o.per_seed("patch", "large", "patch_only.acc").loc[1])
    # after the anneal only: the pre-anneal statements still have their measurement
    vs = _judge(cfg, _spoil(_epochs(PAPER_CURVES), [1], 5, schedules=["large"], data="patch"))
    assert vs["a-large-chance-before-anneal"].failed_seeds == 0 and vs["a-large-chance-before-anneal"].status == PASS
    assert vs["a-large-learns-after-anneal"].failed_seeds == 1


def test_a_missing_run_is_a_failed_seed(cifar_root):
    """Seed 2's clean-data job is absent from the tables: the control verdicts count it failed."""
    t = _epochs(PAPER_CURVES)["epochs"]
    tables = {"epochs": t[~((t.data == "clean") & (t.seed == 2))]}
    vs = _judge(_cfg(cifar_root), tables)
    assert {k for k, v in vs.items() if v.failed_seeds} == {"d-gap-without-patch", "d-patch-widens-gap"}
    assert "seed 2: no large run on clean data; no small run on clean data" in vs["d-gap-without-patch"].notes
    assert vs["d-gap-without-patch"].status == INCONCLUSIVE


def test_every_verdict_can_fail(cifar_root):
    """Each id of the claim FAILs on some hand-made table."""
    cfg = _cfg(cifar_root)
    failing = {
        "a-small-early": REVERSED_CURVES, "a-large-chance-before-anneal": REVERSED_CURVES,
        "a-large-vs-small-early": REVERSED_CURVES, "b-large-clean-final": REVERSED_CURVES,
        "c-noise-chance-before-anneal": _same_curves(LEARNS), "c-noise-vs-small-early": _same_curves(LEARNS),
        "c-noise-clean-final": _same_curves(LEARNS), "a-large-learns-after-anneal": _same_curves(LEARNS),
        "d-gap-without-patch": _same_curves(LEARNS), "d-patch-widens-gap": _same_curves(LEARNS),
    }
    assert set(failing) == ALL_IDS == set(TESTS)
    for id_, curves in failing.items():
        assert _judge(cfg, _epochs(curves))[id_].status == FAIL, id_


def test_diverged_members_are_nan_not_chance(cifar_root):
    cfg = _cfg(cifar_root)
    tables = _epochs({("patch", "small"): {"patch_only.acc": [0.1, np.nan, np.nan]}})
    [o] = patch.outcomes(cfg, tables)
    assert np.isnan(o.per_seed("patch", "small", "patch_only.acc")).all()
    np.testing.assert_allclose(o.per_seed("patch", "small", "patch_only.acc", 0), [0.1, 0.101, 0.102])
    assert o.jobs == ["tiny-patch-seed0", "tiny-patch-seed1", "tiny-patch-seed2"]


# ------------------------------------------------------------------------------------ training
def test_an_interrupted_job_resumes_from_its_checkpoint(cifar_root, tmp_path, monkeypatch):
    """A job stopped after its first epoch's checkpoint continues there and gives the tables of an
    uninterrupted run."""
    cfg = validate(patch.Config, _claim(cifar_root, seeds=(0,)))
    job = patch.jobs(cfg)[0]
    whole = patch.run_job(cfg, job, JobContext(workdir=tmp_path / "whole"))
    assert set(whole) == {"records", "members", "epochs"}
    assert list(whole["epochs"].columns) == patch.EPOCH_COLUMNS
    assert list(whole["records"].columns) == ["member", "step", "metric", "value"]

    save = population._Trainer.save_checkpoint

    def stop_after_first(self):
        save(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(population._Trainer, "save_checkpoint", stop_after_first)
    work = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        patch.run_job(cfg, job, JobContext(workdir=work))
    meta = json.loads((work / "run" / "meta.json").read_text())
    assert meta["status"] == "interrupted"  # records so far: those of the first checkpoint
    assert pd.read_parquet(work / "run" / "records.parquet").step.max() < whole["records"].step.max()
    monkeypatch.setattr(population._Trainer, "save_checkpoint", save)
    resumed = []
    real_resume = experiment.resume
    monkeypatch.setattr(experiment, "resume", lambda *a, **k: resumed.append(a) or real_resume(*a, **k))
    again = patch.run_job(cfg, job, JobContext(workdir=work))
    assert len(resumed) == 1
    for name in whole:
        pd.testing.assert_frame_equal(again[name], whole[name])


def test_verify_end_to_end(cifar_root, tmp_path, monkeypatch):
    cfgdir = tmp_path / "configs"
    (cfgdir / patch.NAME).mkdir(parents=True)
    write_yaml(cfgdir / patch.NAME / "quick.yaml", _claim(cifar_root, early_epoch=1))
    monkeypatch.setenv("LRLAB_CONFIGS", str(cfgdir))
    out = tmp_path / "out"
    verdicts = verify([patch.NAME], "quick", out, log=lambda m: None, workers=1)
    assert {v.id for v in verdicts} == ALL_IDS and len(verdicts) == 10
    payload = json.loads((out / patch.NAME / "verdicts.json").read_text())
    assert {v["claim"] for v in payload["verdicts"]} == {patch.NAME}
    assert all(len(v["per_seed"]) == 2 for v in payload["verdicts"])
    names = {p.name for p in (out / patch.NAME / "figures").iterdir()}
    assert {f"{patch.NAME}-tiny-accuracy.png", f"{patch.NAME}-tiny-control.png", f"{patch.NAME}-effects.png"} <= names
    text = (out / "report.md").read_text()
    assert "Reading of regime `tiny`" in text and "patch-only @ epoch 1" in text
    assert "The intervals are conditional on one draw of the patch (patch.seed = 0: " in text
    assert "`tiny-clean-seed1`" in text  # the stored jobs, not the run folders (removed after each job)
    assert "Runs:" not in text and str(out / patch.NAME / "work") not in text
    jobs = sorted(p.name for p in (out / patch.NAME / "jobs").iterdir())
    assert jobs == ["tiny-clean-seed0", "tiny-clean-seed1", "tiny-patch-seed0", "tiny-patch-seed1"]
    assert not any((out / patch.NAME / "work").iterdir())
    first = (out / "verdicts.json").read_bytes()
    report(out, log=lambda m: None)  # judged again from the stored tables alone
    assert (out / "verdicts.json").read_bytes() == first


def test_preflight_finds_the_data_through_config_or_environment(cifar_root, tmp_path, monkeypatch):
    raw = _claim(cifar_root)
    patch.preflight(validate(patch.Config, raw))  # data.root
    raw["regimes"]["tiny"]["data"]["root"] = None
    cfg = validate(patch.Config, raw)
    monkeypatch.setenv("LRLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        patch.preflight(cfg)
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))  # what --data-dir sets; spawned workers inherit it
    patch.preflight(cfg)


# ------------------------------------------------------------------------------------ the controls (e, f)
CONTROL_IDS = {"e-large-vs-small-same-time", "f-large-converged", "f-small-converged", "f-noise-converged",
               "f-small-same-time-converged", "f-large-vs-small-converged"}
CONTROL_TESTS = {"e-large-vs-small-same-time": ("superiority", 0.01), "f-large-converged": ("bound", 0.0),
                 "f-small-converged": ("bound", 0.0), "f-noise-converged": ("bound", 0.0),
                 "f-small-same-time-converged": ("bound", 0.0), "f-large-vs-small-converged": ("superiority", 0.01)}
FITS = [np.nan, 0.6, 0.9, 0.97, 0.98, 0.99]  # training accuracy (batch.acc: NaN before any minibatch)


def _ctrl_cfg(root, **settings):
    """_cfg with the equal-Σηt control on the first 2 of 3 seeds and the 95% convergence criterion."""
    raw = _claim(root, seeds=(0, 1, 2), same_time_seeds=2, **settings)
    rc = raw["regimes"]["tiny"]
    rc["train"]["steps"] = 6
    rc["population"]["schedules"]["large"]["milestones"] = [4]
    raw["verdicts"] = {"converged_acc": 0.95}
    return validate(patch.Config, raw)


def _ctrl_tables(same_time: dict[str, list[float]], train: list[float] = FITS, curves=PAPER_CURVES) -> dict:
    """The paper's curves with training accuracy ``train`` on every patched run, plus the equal-Σηt
    run's curves on seeds 0 and 1 only (the control seeds)."""
    with_train = {k: ({**v, "batch.acc": train} if k[0] == "patch" else v) for k, v in curves.items()}
    t = _epochs(with_train)["epochs"]
    st = _epochs({("same-time", "small"): same_time}, seeds=(0, 1))["epochs"]
    return {"epochs": pd.concat([t, st], ignore_index=True)}


def _ctrl_judge(cfg, tables) -> dict:
    vs = {v.id: v for v in patch.judge(cfg, tables)}
    assert set(vs) == ALL_IDS | CONTROL_IDS
    return {k: vs[k] for k in CONTROL_IDS}


# the equal-Σηt run: still learning, fits at its 4th probe, ends at 0.5 clean accuracy
SAME_TIME = {"test.acc": [0.1, 0.3, 0.4, 0.45, 0.5, 0.5], "batch.acc": [np.nan, 0.5, 0.8, 0.96, 0.99, 0.99]}


def test_controls_on_the_papers_picture(cifar_root):
    """Large LR ahead of the equal-Σηt small run, every run trained to the criterion: every
    control PASSes, on the control seeds only (e, f-small-same-time, f-large-vs-small) or all."""
    vs = _ctrl_judge(_ctrl_cfg(cifar_root), _ctrl_tables(SAME_TIME))
    assert {k: (v.test, v.min_effect) for k, v in vs.items()} == CONTROL_TESTS
    assert {k: v.status for k, v in vs.items()} == {k: PASS for k in CONTROL_IDS}
    np.testing.assert_allclose(vs["e-large-vs-small-same-time"].per_seed, [0.1, 0.1])
    np.testing.assert_allclose(vs["f-large-converged"].per_seed, [0.04, 0.041, 0.042])
    np.testing.assert_allclose(vs["f-small-same-time-converged"].per_seed, [0.04, 0.041])
    # first probe with training acc ≥ 0.95 is epoch 3, where the small run's clean accuracy is 0.45
    np.testing.assert_allclose(vs["f-large-vs-small-converged"].per_seed, [0.15, 0.15])
    assert "(5 epochs)" in vs["e-large-vs-small-same-time"].statement
    assert "≥ 95%" in vs["f-large-converged"].statement
    assert vs["e-large-vs-small-same-time"].kind == "accuracy"
    assert {k: v.control_of for k, v in vs.items()} == {
        **{k: "b-large-clean-final" for k in CONTROL_IDS}, "f-noise-converged": "c-noise-clean-final"}


def test_controls_reversed_fail(cifar_root):
    """Small LR ahead at equal Σηt and at convergence, and no run near the criterion: every control FAILs."""
    ahead = {"test.acc": [0.1, 0.7, 0.7, 0.7, 0.7, 0.7], "batch.acc": [np.nan, 0.6, 0.96, 0.6, 0.6, 0.6]}
    vs = _ctrl_judge(_ctrl_cfg(cifar_root), _ctrl_tables(ahead, train=[np.nan, 0.5, 0.6, 0.6, 0.6, 0.6]))
    assert {k: v.status for k, v in vs.items()} == {k: FAIL for k in CONTROL_IDS}
    np.testing.assert_allclose(vs["e-large-vs-small-same-time"].per_seed, [-0.1, -0.1])
    np.testing.assert_allclose(vs["f-large-vs-small-converged"].per_seed, [-0.1, -0.1])  # met at epoch 2
    np.testing.assert_allclose(vs["f-small-same-time-converged"].per_seed, [-0.35, -0.349])


def test_controls_null(cifar_root):
    """Small LR equal to large LR at equal Σηt: the superiority controls FAIL (the null lies below
    min_effect); training accuracy exactly at the criterion (± seed jitter): the bounds are INCONCLUSIVE."""
    same = {"test.acc": [0.1] + [0.6] * 5, "batch.acc": [np.nan] + [0.95] * 5}
    at = [np.nan, 0.9, 0.94, 0.949, 0.95, 0.949]  # + 0.001·seed: 0.949, 0.950, 0.951
    vs = _ctrl_judge(_ctrl_cfg(cifar_root), _ctrl_tables(same, train=at))
    assert vs["e-large-vs-small-same-time"].status == FAIL
    np.testing.assert_allclose(vs["e-large-vs-small-same-time"].per_seed, [0.0, 0.0], atol=1e-12)
    assert vs["f-large-vs-small-converged"].status == FAIL
    assert {vs[k].status for k in ("f-large-converged", "f-small-converged", "f-noise-converged")} == {INCONCLUSIVE}


def test_a_control_that_never_converges_is_a_failed_seed(cifar_root):
    """The equal-Σηt run never reaches the criterion on seed 1: no comparison at convergence for it
    (a failed seed, named in the notes), so that verdict cannot PASS."""
    t = _ctrl_tables(SAME_TIME)["epochs"]
    slow = (t.data == "same-time") & (t.seed == 1) & (t.metric == "batch.acc")
    t.loc[slow, "value"] = 0.5
    vs = _ctrl_judge(_ctrl_cfg(cifar_root), {"epochs": t})
    v = vs["f-large-vs-small-converged"]
    assert v.failed_seeds == 1 and v.status != PASS
    assert "never converged within the equal-Σηt run: seeds [1]" in v.notes
    assert vs["f-small-same-time-converged"].per_seed[1] < 0 and vs["f-small-same-time-converged"].status != PASS
    missing = _ctrl_tables(SAME_TIME)["epochs"]
    vs = _ctrl_judge(_ctrl_cfg(cifar_root), {"epochs": missing[missing.data != "same-time"]})
    assert all(vs[k].failed_seeds == 2 and vs[k].status == FAIL
               for k in ("e-large-vs-small-same-time", "f-small-same-time-converged", "f-large-vs-small-converged"))


def test_controls_are_judged_only_when_configured(cifar_root):
    tables = _ctrl_tables(SAME_TIME)
    assert _judge(_cfg(cifar_root), tables)  # no same_time_seeds, no verdicts section: (a)-(d) only
    raw = _claim(cifar_root, seeds=(0, 1, 2), same_time_seeds=2)
    raw["regimes"]["tiny"]["train"]["steps"] = 6
    raw["regimes"]["tiny"]["population"]["schedules"]["large"]["milestones"] = [4]
    ids = {v.id for v in patch.judge(validate(patch.Config, raw), tables)}
    assert ids == ALL_IDS | {"e-large-vs-small-same-time"}
    with pytest.raises(ConfigError, match="converged_acc"):
        validate(patch.Config, {**raw, "verdicts": {"converged_acc": 1.5}})


def test_report_shows_the_controls(cifar_root, tmp_path):
    """The report's table has the equal-Σηt run (epochs, training accuracy) and its figure, drawn
    against Σηt: large LR's physical time is 0.1 per epoch until the anneal, then 0.004."""
    cfg = _ctrl_cfg(cifar_root)
    rc = cfg.regimes["tiny"]
    np.testing.assert_allclose(patch.physical_time(rc, "large", np.array([0, 1, 4, 6])), [0, 0.1, 0.4, 0.408])
    np.testing.assert_allclose(patch.physical_time(rc, "small", np.array([0, 5])), [0, 0.02])
    tables = _ctrl_tables(SAME_TIME)
    text = patch.report(cfg, tables, patch.judge(cfg, tables), tmp_path, tmp_path)
    assert "| same-time | small | 5 | " in text and "training acc |" in text
    assert (tmp_path / f"{patch.NAME}-tiny-same-time.png").stat().st_size > 0
    assert "(e) large LR ahead of small LR given the same Σηt holds" in text
    assert "(f) the runs trained to convergence holds" in text
