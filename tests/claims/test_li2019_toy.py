"""The li2019-toy claim: its control, its step-to-fit measure, the config and its seeds, judge on
hand-made tables (paper-shaped, reversed, null, failed seeds), execution options, resuming an
interrupted job, and an end-to-end verify."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from lrlab import experiment
from lrlab.claims import CLAIMS
from lrlab.claims import li2019_toy as toy
from lrlab.claims.protocol import JobContext
from lrlab.config import ConfigError, config_dir, validate
from lrlab.driver import fingerprint, load_claim_config, report, verify
from lrlab.stats import FAIL, INCONCLUSIVE, PASS
from lrlab.train import PopulationResult, StepDecay, total_lr
from tests.helpers import interrupt_at, tiny_run_cfg, tiny_run_dict, write_yaml

IDS = ["a-overall", "b-overall", "a-P-only", "b-P-only", "c-small-order", "c-large-order", "c-large-after-anneal",
       "c-crossover-before-anneal"]
ORDER = ["c-small-order", "c-large-order", "c-large-after-anneal"]  # the learning-order verdicts (in steps)
ACCURACY = [i for i in IDS if i not in ORDER]  # accuracy gaps (min_effect 0.01)


def _small_lr(lr):
    return {"schedules": {"large": {"kind": "step", "lr": 0.2, "milestones": [10], "factor": 0.1},
                          "small": {"kind": "constant", "lr": lr}}}


@pytest.mark.parametrize("small_lr, steps", [(0.02, 110), (0.03, 74), (0.2, 11)])
def test_control_config_matches_the_sum_of_learning_rates(small_lr, steps):
    rc = tiny_run_cfg(population=_small_lr(small_lr))  # large: 10 × 0.2 + 10 × 0.02 = 2.2
    ctrl, n = toy.control_config(rc, toy.Settings())
    assert n == steps == math.ceil(total_lr(StepDecay(0.2, (10,), 0.1), 20) / small_lr - 1e-9)
    assert ctrl.train.steps == n and ctrl.name == "tiny-control"
    assert list(ctrl.population.schedules) == ["small-same-sum-lr"]
    assert ctrl.population.schedules["small-same-sum-lr"] == rc.population.schedules["small"]
    assert ctrl.population.seeds == rc.population.seeds and ctrl.data == rc.data
    assert ctrl.train.eval_every == max(1, n // (20 // 5)) and ctrl.train.checkpoint_every is None


def test_control_config_counts_warmup_and_refuses_huge_controls():
    rc = tiny_run_cfg(population={"schedules": {
        "large": {"kind": "step", "lr": 0.2, "milestones": [10], "factor": 0.1, "warmup_steps": 4},
        "small": {"kind": "constant", "lr": 0.02}}})
    # warm-up: 0.2·(1+2+3+4)/4 = 0.5, then 6 × 0.2 + 10 × 0.02 = 1.4  ->  1.9 / 0.02
    assert toy.control_config(rc, toy.Settings())[1] == 95
    with pytest.raises(ValueError, match="control_max_steps"):
        toy.control_config(rc, toy.Settings(control_max_steps=94))


def _result(curves: dict[int, list[float]], names, seeds, steps, metric="train.Q-only.acc"):
    rows = [(m, s, metric, v) for m, vals in curves.items() for s, v in zip(steps, vals)]
    records = pd.DataFrame(rows, columns=["member", "step", "metric", "value"])
    members = pd.DataFrame({"member": list(curves), "name": names, "seed": seeds,
                            "diverged": [False] * len(curves)})
    return PopulationResult(records, members, {}, "vectorized", 0.0)


def test_first_fit_step_and_censoring():
    res = _result({0: [0.5, 0.8, 0.95, 1.0], 1: [0.5, 0.6, 0.7, 0.89], 2: [0.9, 0.2, 0.1, 0.1],
                   3: [0.1, 0.95, 0.1, float("nan")]},
                  ["small", "small", "large", "large"], [5, 6, 5, 6], [0, 10, 20, 30])
    small = toy.first_fit_step(res, "small", "train.Q-only.acc", 0.9)
    assert small.to_dict() == {5: 20, 6: 40}  # seed 6 never fits: censored at 30 + 10
    large = toy.first_fit_step(res, "large", "train.Q-only.acc", 0.9)
    assert large.to_dict() == {5: 0, 6: 10}  # the threshold itself counts as fit
    single = _result({0: [0.1]}, ["small"], [1], [7])
    assert toy.first_fit_step(single, "small", "train.Q-only.acc", 0.9).to_dict() == {1: 8}


def test_per_seed_final():
    res = _result({0: [0.1, 0.2], 1: [0.3, 0.4], 2: [0.5, 0.6]}, ["a", "a", "b"], [3, 4, 3],
                  [0, 5], metric="test.acc")
    assert toy.per_seed_final(res, "a", "test.acc").to_dict() == {3: 0.2, 4: 0.4}
    assert toy.per_seed_final(res, "b", "test.acc").to_dict() == {3: 0.6}
    res.members.loc[res.members.member == 1, "diverged"] = True
    assert toy.per_seed_final(res, "a", "test.acc", 0.5).to_dict() == {3: 0.2, 4: 0.5}
    got = toy.per_seed_final(res, "a", "test.acc")  # by default a diverged member has no final value
    assert got[3] == 0.2 and math.isnan(got[4])


def _claim_dict(seeds=(0, 1), verdicts=None, **claim) -> dict:
    rd = tiny_run_dict()
    del rd["population"]["seeds"]
    raw = {"execution": {"seeds": list(seeds)}, "claim": claim, "regimes": {"r": rd}}
    if verdicts is not None:
        raw["verdicts"] = verdicts
    return raw


def test_claim_config_checks_the_roles():
    ok = validate(toy.Config, _claim_dict())
    assert ok.claim.large == "large" and ok.claim.small == "small"
    raw = _claim_dict()
    del raw["regimes"]["r"]["population"]["schedules"]["small"]
    with pytest.raises(ConfigError, match="regimes.r.population.schedules has no 'small'"):
        validate(toy.Config, raw)
    raw = _claim_dict()
    raw["regimes"]["r"]["population"]["schedules"]["large"] = {"kind": "constant", "lr": 0.1}
    with pytest.raises(ConfigError, match="must be a 'step' schedule"):
        validate(toy.Config, raw)
    with pytest.raises(ConfigError, match="regimes"):
        validate(toy.Config, {"execution": {"seeds": [0]}, "claim": {}, "regimes": {}})


def test_verdict_thresholds_live_in_config_and_not_in_the_fingerprint():
    cfg = validate(toy.Config, _claim_dict())
    assert cfg.verdicts == toy.Verdicts() and cfg.verdicts.min_lead_steps == 100
    assert cfg.verdicts.crossover_window == 5 and cfg.verdicts.crossover_min_effect == 0.01
    assert cfg.claim.min_effect == 0.01 and cfg.claim.fit_threshold == 0.9
    for bad in ({"claim": {"min_effect": 0}}, {"verdicts": {"min_lead_steps": 0}},
                {"verdicts": {"crossover_window": 0}}, {"verdicts": {"crossover_min_effect": 0}},
                {"verdicts": {"nope": 1}}):
        raw = _claim_dict()
        for section, values in bad.items():
            raw.setdefault(section, {}).update(values)
        with pytest.raises(ConfigError):
            validate(toy.Config, raw)
    for scale, lead in (("quick", 100), ("paper", 200)):  # one probe interval of each scale
        c = load_claim_config(toy.NAME, scale)
        assert c.verdicts.min_lead_steps == lead
        assert all(rc.train.eval_every == lead for rc in c.regimes.values())
        assert (c.verdicts.crossover_window, c.verdicts.crossover_min_effect) == (5, 0.01)
        for rc in c.regimes.values():  # the window: the last quarter of the 20 probes before the anneal
            anneal = toy.anneal_step(rc, c.claim)
            assert anneal // rc.train.eval_every == 20 and anneal == rc.train.steps // 2
        other = load_claim_config(toy.NAME, scale, overrides=["verdicts.min_lead_steps=7",
                                                              "verdicts.crossover_window=3"])
        assert other.verdicts.min_lead_steps == 7 and other.verdicts.crossover_window == 3
        assert [fingerprint(c, j) for j in toy.jobs(c)] == [fingerprint(other, j) for j in toy.jobs(other)]


def test_regime_seeds_come_from_execution():
    cfg = validate(toy.Config, _claim_dict(seeds=(3, 7, 9)))
    assert cfg.regimes["r"].population.seeds == [3, 7, 9]
    again = validate(toy.Config, cfg.model_dump(mode="json"))
    assert again == cfg  # a stored, resolved config (seeds filled in) reads back the same
    raw = _claim_dict(seeds=(0, 1))
    raw["regimes"]["r"]["population"]["seeds"] = [0, 1, 2]
    with pytest.raises(ConfigError, match=r"differ from execution.seeds \[0, 1\]"):
        validate(toy.Config, raw)
    with pytest.raises(ConfigError, match="execution"):
        validate(toy.Config, {k: v for k, v in _claim_dict().items() if k != "execution"})


def _regimes() -> list[str]:
    raw = yaml.safe_load((config_dir() / toy.NAME / "quick.yaml").read_text())
    return list(raw["regimes"])


def test_load_claim_config_seeds_and_errors():
    for scale, n in (("quick", 5), ("paper", 10)):
        cfg = load_claim_config(toy.NAME, scale)
        assert cfg.execution.seeds == list(range(n))
        assert all(rc.population.seeds == list(range(n)) for rc in cfg.regimes.values())
        toy.preflight(cfg)
    cfg = load_claim_config(toy.NAME, "quick", seeds=3)
    assert list(cfg.regimes) == _regimes()
    assert all(rc.population.seeds == [0, 1, 2] for rc in cfg.regimes.values())
    with pytest.raises(ConfigError, match="at least 1"):
        load_claim_config(toy.NAME, "quick", seeds=0)
    with pytest.raises(ConfigError, match="unknown claim"):
        load_claim_config("nope", "quick")
    with pytest.raises(ConfigError, match="unknown scale"):
        load_claim_config(toy.NAME, "huge")
    assert {toy.NAME, "li2019-patch"} <= set(CLAIMS)


def test_jobs_one_per_regime_and_run():
    cfg = load_claim_config(toy.NAME, "quick")
    keys = [(j.key, j.part, j.params["regime"]) for j in toy.jobs(cfg)]
    assert keys == [(f"{r}-{p}", p, r) for r in _regimes() for p in ("main", "control")]
    assert all(j.resources.cpus == 1 and j.resources.gpus == 0 for j in toy.jobs(cfg))
    off = load_claim_config(toy.NAME, "quick", overrides=["claim.control=false"])
    assert [j.key for j in toy.jobs(off)] == [f"{r}-main" for r in _regimes()]


# ------------------------------------------------------------------ judge on hand-made tables
STEPS = [0, 5, 10, 15, 20]  # the tiny regime: 20 steps, eval_every 5, anneal at 10


def _fit_curve(at: int | None) -> list[float]:
    """A training-accuracy curve that reaches 0.95 at step ``at`` (None: never)."""
    return [0.95 if at is not None and s >= at else 0.6 for s in STEPS]


def _final_curve(final: float, before: float | tuple[float, float] = 0.5) -> list[float]:
    """A test-accuracy curve: 0.5 at step 0 and 15, ``before`` at steps 5 and 10 (the probes up to
    the anneal at 10; a pair gives each its own value), ``final`` at the last step 20."""
    b5, b10 = before if isinstance(before, tuple) else (before, before)
    return [0.5, b5, b10, 0.5, final]


def _tables(cfg, large_final, small_final, ctrl_final, small_fit, large_fit, diverged=(), ctrl_fit=None,
            large_before=None, small_before=None):
    """records/members of one regime 'r' in the stored shape. ``*_final``: final test accuracy per
    seed (overall and P-only alike); ``*_before``: per seed the test accuracy at the probes before
    the anneal (steps 5 and 10; default 0.5, no crossover); ``*_fit``: per seed the (P-only,
    Q-only) step that reaches 95% train accuracy (None: never); ``diverged``: (run, name, seed) of
    members marked diverged."""
    seeds = cfg.execution.seeds
    recs, mems = [], []
    large_before = large_before or [0.5] * len(seeds)
    small_before = small_before or [0.5] * len(seeds)

    def add(run, name, k, seed, final, fit, before=0.5):
        div = (run, name, seed) in diverged
        mems.append({"job": f"r-{run}", "regime": "r", "run": run, "member": k, "name": name, "seed": seed,
                     "diverged": div, "diverged_step": 15.0 if div else np.nan})
        curves = {f"test{g}.acc": _final_curve(final, before) for g in ("", ".P-only", ".Q-only", ".both")}
        curves.update({"train.P-only.acc": _fit_curve(fit[0]), "train.Q-only.acc": _fit_curve(fit[1])})
        for metric, vals in curves.items():
            for step, v in zip(STEPS, vals):
                recs.append({"job": f"r-{run}", "regime": "r", "run": run, "member": k, "step": step,
                             "metric": metric, "value": v})

    for i, sd in enumerate(seeds):
        add("main", "large", i, sd, large_final[i], large_fit[i], large_before[i])
        add("main", "small", len(seeds) + i, sd, small_final[i], small_fit[i], small_before[i])
        add("control", "small-same-sum-lr", i, sd, ctrl_final[i], (ctrl_fit or [(5, 5)] * len(seeds))[i])
    return {"records": pd.DataFrame(recs), "members": pd.DataFrame(mems)}


LEAD = 5  # verdicts.min_lead_steps of the hand-made config: one probe of STEPS
WINDOW = 2  # verdicts.crossover_window of the hand-made config: the probes at steps 5 and 10


@pytest.fixture
def hand_cfg():
    return validate(toy.Config, _claim_dict(seeds=(0, 1, 2), verdicts={"min_lead_steps": LEAD,
                                                                       "crossover_window": WINDOW}))


def _paper_shaped(cfg):
    return _tables(cfg, large_final=[0.90, 0.91, 0.72], small_final=[0.70, 0.72, 0.50],
                   ctrl_final=[0.80, 0.80, 0.62],
                   small_fit=[(15, 5), (15, 0), (None, 5)],  # Q-only first (seed 2 never fits P-only)
                   large_fit=[(0, 15), (5, 15), (0, 15)],  # P-only first, Q-only after the anneal (10)
                   small_before=[0.75, (0.70, 0.80), 0.66], large_before=[0.60, 0.62, (0.50, 0.60)])


def _reversed(cfg):
    return _tables(cfg, large_final=[0.70, 0.72, 0.71], small_final=[0.90, 0.91, 0.93],
                   ctrl_final=[0.95, 0.96, 0.95],
                   small_fit=[(5, 15), (0, 15), (5, None)],  # P-only first (seed 2 never fits Q-only)
                   large_fit=[(15, 0), (15, 5), (20, 5)],  # Q-only first, before the anneal
                   small_before=[0.60, 0.62, 0.55], large_before=[0.75, 0.76, 0.74])  # large ahead before


def _null(cfg):
    """No effect at all: equal accuracies, both groups fitted at the same probe, Q-only at the anneal."""
    return _tables(cfg, [0.8] * 3, [0.8] * 3, [0.8] * 3, [(10, 10)] * 3, [(10, 10)] * 3)


def _noisy_null(cfg):
    """No effect on average, with seed-to-seed noise of about the threshold (effects −x, 0, +x)."""
    return _tables(cfg, [0.78, 0.80, 0.82], [0.80] * 3, [0.80] * 3,
                   small_fit=[(5, 10), (10, 10), (15, 10)], large_fit=[(10, 5), (10, 10), (10, 15)],
                   small_before=[0.58, 0.60, 0.62], large_before=[0.60] * 3)


def test_judge_on_hand_made_tables_pass(hand_cfg, tmp_path):
    t = _paper_shaped(hand_cfg)
    vs = toy.judge(hand_cfg, t)
    assert [v.id for v in vs] == IDS and all(v.regime == "r" for v in vs)
    by = {v.id: v for v in vs}
    assert all(v.status == PASS for v in vs), {v.id: v.status for v in vs}
    assert all(v.test == "superiority" and v.failed_seeds == 0 for v in vs)
    np.testing.assert_allclose(by["a-overall"].per_seed, [0.20, 0.19, 0.22])
    assert by["a-overall"].per_seed == by["a-P-only"].per_seed
    assert by["a-overall"].notes == "" and "higher by at least 0.01" in by["a-overall"].statement
    np.testing.assert_allclose(by["b-overall"].per_seed, [0.10, 0.11, 0.10])
    assert by["b-overall"].notes == "" and "same Σηt (110 steps)" in by["b-overall"].statement
    assert by["c-small-order"].per_seed == [10.0, 15.0, 20.0]  # never fits P-only: censored at 20 + 5
    assert by["c-small-order"].notes == ("seed 2: small never fits P-only: censored at step 25, "
                                         "so the lead is at least the value shown")
    assert by["c-large-order"].per_seed == [15.0, 10.0, 15.0]
    assert by["c-large-after-anneal"].per_seed == [5.0, 5.0, 5.0]
    assert "at step 10" in by["c-large-after-anneal"].statement
    assert all(f"at least {LEAD} steps" in by[i].statement for i in ORDER)
    np.testing.assert_allclose(by["c-crossover-before-anneal"].per_seed, [0.15, 0.13, 0.11])
    assert by["c-crossover-before-anneal"].notes == ""
    assert ("before the anneal at step 10, small LR has higher test accuracy than large LR by at least 0.01, "
            "averaged over the 2 probes at steps 5–10") in by["c-crossover-before-anneal"].statement
    assert by["c-crossover-before-anneal"].effect == "mean test.acc over steps 5–10: small − large"
    assert all(v.min_effect == 0.01 for v in vs if v.id in ACCURACY)
    assert all(v.min_effect == LEAD for v in vs if v.id in ORDER)
    assert [v.id for v in vs if v.kind == "accuracy"] == ACCURACY
    # the report draws from the same tables and reads the verdicts back in words
    text = toy.report(hand_cfg, t, vs, tmp_path, tmp_path.relative_to(tmp_path.parent))
    assert "| small-same-sum-lr | 0.740 ± 0.104 |" in text
    assert "the accuracy gain of large LR + anneal at equal steps holds" in text
    assert ("the crossover of test accuracy holds (small LR ahead just before the anneal: holds; large LR "
            "ahead at the end: holds)") in text
    assert "Stored tables" not in text  # no job folders next to this figure folder
    assert (tmp_path / f"{toy.NAME}-r-accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_judge_on_hand_made_tables_reversed(hand_cfg, tmp_path):
    t = _reversed(hand_cfg)
    by = {v.id: v for v in toy.judge(hand_cfg, t)}
    assert {k: v.status for k, v in by.items()} == dict.fromkeys(IDS, FAIL)
    np.testing.assert_allclose(by["a-P-only"].per_seed, [-0.20, -0.19, -0.22])
    np.testing.assert_allclose(by["b-P-only"].per_seed, [-0.25, -0.24, -0.24])
    assert by["c-small-order"].per_seed == [-10.0, -15.0, -20.0]  # never fits Q-only: censored at 25
    assert by["c-small-order"].notes == "seed 2: small never fits Q-only: censored at step 25 (P-only first)"
    assert by["c-large-order"].per_seed == [-15.0, -10.0, -15.0]
    assert by["c-large-after-anneal"].per_seed == [-10.0, -5.0, -5.0]
    np.testing.assert_allclose(by["c-crossover-before-anneal"].per_seed, [-0.15, -0.14, -0.19])
    text = toy.report(hand_cfg, t, list(by.values()), tmp_path, tmp_path.relative_to(tmp_path.parent))
    assert "at equal steps does not hold; against small LR trained to the same Σηt it does not hold" in text
    assert "the crossover of test accuracy does not hold (small LR ahead just before the anneal: does not" in text


# The documented outcome of every id on the null tables: all are superiority tests, so an exact
# null (effect 0 on every seed, wholly below min_effect) FAILs, and a null with noise around 0
# (an interval straddling 0 and min_effect) is INCONCLUSIVE.
NULL = dict.fromkeys(IDS, FAIL)
NOISY_NULL = dict.fromkeys(IDS, INCONCLUSIVE)


def test_judge_on_null_tables(hand_cfg):
    by = {v.id: v for v in toy.judge(hand_cfg, _null(hand_cfg))}
    assert {k: v.status for k, v in by.items()} == NULL
    assert all(v.per_seed == [0.0] * 3 for v in by.values())
    by = {v.id: v for v in toy.judge(hand_cfg, _noisy_null(hand_cfg))}
    assert {k: v.status for k, v in by.items()} == NOISY_NULL
    np.testing.assert_allclose(by["a-overall"].per_seed, [-0.02, 0.0, 0.02], atol=1e-12)
    for i in ORDER:
        assert by[i].per_seed == [-5.0, 0.0, 5.0], i
        assert by[i].interval.low < 0 and by[i].interval.high > LEAD
    np.testing.assert_allclose(by["c-crossover-before-anneal"].per_seed, [-0.02, 0.0, 0.02], atol=1e-12)


def test_every_verdict_can_fail(hand_cfg):
    """Each id FAILs on some hand-made table (here: the reversed one and the exact null)."""
    for make in (_reversed, _null):
        got = {v.id: v.status for v in toy.judge(hand_cfg, make(hand_cfg))}
        assert sorted(got) == sorted(IDS) and set(got.values()) == {FAIL}, (make.__name__, got)


def test_a_higher_threshold_rejudges_the_same_tables(hand_cfg):
    t = _paper_shaped(hand_cfg)
    strict = hand_cfg.model_copy(update={"verdicts": toy.Verdicts(min_lead_steps=30, crossover_window=WINDOW,
                                                                  crossover_min_effect=0.3),
                                         "claim": hand_cfg.claim.model_copy(update={"min_effect": 0.3})})
    by = {v.id: v for v in toy.judge(strict, t)}
    assert {k: v.status for k, v in by.items()} == dict.fromkeys(IDS, FAIL)  # every interval below the bar
    assert by["c-large-order"].min_effect == 30 and by["a-overall"].min_effect == 0.3
    assert by["c-crossover-before-anneal"].min_effect == 0.3


def test_failed_seeds_block_pass(hand_cfg):
    """One failed seed per verdict on otherwise paper-shaped tables: counted, and no PASS."""
    t = _tables(hand_cfg, large_final=[0.90, 0.91, float("nan")],  # large: no final accuracy on seed 2
                small_final=[0.70, 0.72, 0.70], ctrl_final=[0.80, 0.80, 0.80],
                small_fit=[(15, 5), (15, 0), (None, None)],  # seed 2: small fits neither group
                large_fit=[(0, 15), (5, 15), (None, None)],  # seed 2: large fits neither group
                small_before=[0.75] * 3, large_before=[0.6, 0.6, (float("nan"), 0.6)])  # seed 2: NaN in window
    by = {v.id: v for v in toy.judge(hand_cfg, t)}
    for i in IDS:
        assert by[i].failed_seeds == 1 and by[i].status != PASS, (i, by[i].status, by[i].per_seed)
        assert math.isfinite(by[i].per_seed[0]) and not math.isfinite(by[i].per_seed[2]), i
        assert by[i].interval.n == 2 and "1 of 3 seeds failed" in by[i].notes
    assert by["b-overall"].notes == "1 of 3 seeds failed (non-finite effect)"
    assert "seed 2: small fits neither Q-only nor P-only: order not seen" in by["c-small-order"].notes
    assert "seed 2: large fits neither P-only nor Q-only: order not seen" in by["c-large-order"].notes
    assert by["c-large-after-anneal"].per_seed[2] == -math.inf
    assert "seed 2: large never fits Q-only before the end of training" in by["c-large-after-anneal"].notes
    assert by["c-crossover-before-anneal"].notes.startswith(
        "seed 2: non-finite test.acc in the window: failed seed")
    # a diverged member is a failed seed of every verdict that uses it, with a note
    t = _tables(hand_cfg, [0.9] * 3, [0.7] * 3, [0.8] * 3, [(15, 5)] * 3, [(0, 15)] * 3,
                diverged={("main", "small", 1)}, small_before=[0.75] * 3, large_before=[0.6] * 3)
    by = {v.id: v for v in toy.judge(hand_cfg, t)}
    assert {i: by[i].failed_seeds for i in IDS} == {**dict.fromkeys(IDS, 0), "a-overall": 1, "a-P-only": 1,
                                                     "c-small-order": 1, "c-crossover-before-anneal": 1}
    x = by["c-crossover-before-anneal"]  # finite values in the window, but the member diverged (step 15)
    assert math.isnan(x.per_seed[1]) and x.status != PASS
    assert x.notes.startswith("seed 1: small diverged at step 15, failed seed")
    assert math.isnan(by["a-overall"].per_seed[1]) and by["a-overall"].status != PASS
    assert by["a-overall"].notes.startswith("seed 1: small diverged at step 15, no final accuracy, failed seed")
    assert by["c-small-order"].notes.startswith("seed 1: small diverged at step 15: failed seed")
    # large fits P-only but never Q-only: the order is seen (a censored lead, no failed seed), but
    # there is no fit after the anneal (a failed seed)
    t = _tables(hand_cfg, [0.9] * 3, [0.7] * 3, [0.8] * 3, [(15, 5)] * 3,
                large_fit=[(0, 15), (0, 15), (0, None)])
    by = {v.id: v for v in toy.judge(hand_cfg, t)}
    assert by["c-large-order"].per_seed == [15.0, 15.0, 25.0] and by["c-large-order"].failed_seeds == 0
    assert by["c-large-order"].status == PASS
    assert by["c-large-after-anneal"].per_seed == [5.0, 5.0, -math.inf]
    assert by["c-large-after-anneal"].failed_seeds == 1 and by["c-large-after-anneal"].status != PASS


def test_crossover_window_is_the_last_probes_up_to_the_anneal(hand_cfg):
    """The window: the last crossover_window probes at 0 < step ≤ anneal (10): step 0 and the
    probe after the anneal (15) never count; a window longer than the probes uses them all, and says so."""
    t = _tables(hand_cfg, [0.9] * 3, [0.7] * 3, [0.8] * 3, [(15, 5)] * 3, [(0, 15)] * 3,
                small_before=[(0.5, 0.8)] * 3, large_before=[(0.9, 0.6)] * 3)  # small behind at 5, ahead at 10
    res = toy.regime_of(hand_cfg, t, "r").main
    assert toy.window_steps(res, 10, 1) == [10] and toy.window_steps(res, 10, 2) == [5, 10]
    assert toy.window_steps(res, 10, 9) == [5, 10] and toy.window_steps(res, 12, 9) == [5, 10]

    def judge(**vs):
        cfg = hand_cfg.model_copy(update={"verdicts": hand_cfg.verdicts.model_copy(update=vs)})
        return next(v for v in toy.judge(cfg, t) if v.id == "c-crossover-before-anneal")

    last = judge(crossover_window=1)
    np.testing.assert_allclose(last.per_seed, [0.2] * 3)
    assert last.status == PASS and "the 1 probes at step 10" in last.statement and last.notes == ""
    both = judge(crossover_window=2)
    np.testing.assert_allclose(both.per_seed, [-0.1] * 3)
    assert both.status == FAIL
    wide = judge(crossover_window=5, crossover_min_effect=0.05)
    assert wide.per_seed == both.per_seed and wide.min_effect == 0.05
    assert wide.notes == "only 2 probes before the anneal (verdicts.crossover_window = 5)"


def test_all_seeds_failing_fail(hand_cfg):
    every = {(run, name, sd) for sd in (0, 1, 2)
             for run, name in (("main", "large"), ("control", "small-same-sum-lr"))}
    t = _tables(hand_cfg, [0.9] * 3, [0.7] * 3, [0.8] * 3, small_fit=[(None, None)] * 3,
                large_fit=[(0, 15)] * 3, diverged=every)
    by = {v.id: v for v in toy.judge(hand_cfg, t)}
    assert {k: v.status for k, v in by.items()} == dict.fromkeys(IDS, FAIL)
    assert all(v.failed_seeds == 3 and v.interval.n == 0 for v in by.values())
    assert by["c-large-order"].notes.startswith("seed 0: large diverged at step 15: failed seed")


def test_judge_without_control(hand_cfg):
    cfg = hand_cfg.model_copy(update={"claim": hand_cfg.claim.model_copy(update={"control": False})})
    t = _tables(hand_cfg, [0.9] * 3, [0.8, 0.7, 0.9], [0.8] * 3, [(5, 5)] * 3, [(5, 5)] * 3)
    t = {k: v[v.run == "main"] for k, v in t.items()}
    vs = toy.judge(cfg, t)
    assert [v.id for v in vs] == [i for i in IDS if not i.startswith("b-")]
    assert {v.id: v.status for v in vs}["a-overall"] == INCONCLUSIVE  # +0.1, +0.2, 0.0


# ------------------------------------------------------------------ execution options
class Reached(Exception):
    """Raised by the recording stand-ins for the trainer's entry points."""


def test_execution_options_reach_every_job(monkeypatch, tmp_path):
    cfg = load_claim_config(toy.NAME, "quick", seeds=2, device="cuda:3", threads=2)
    assert cfg.execution.seeds == [0, 1]
    assert all(rc.population.seeds == [0, 1] for rc in cfg.regimes.values())
    got = {}

    def record(rc, **kw):
        got[rc.name] = (rc.train.device, rc.train.threads, rc.population.seeds, kw.get("run_dir"))
        raise Reached

    monkeypatch.setattr(experiment, "run", record)
    monkeypatch.setattr(experiment, "resume", lambda *a, **kw: pytest.fail("nothing to resume"))
    jobs = toy.jobs(cfg)
    assert len(jobs) == 2 * len(_regimes())
    for job in jobs:
        with pytest.raises(Reached):
            toy.run_job(cfg, job, JobContext(device="cuda:3", threads=2, workdir=tmp_path / job.key))
    names = {cfg.regimes[r].name + suffix for r in _regimes() for suffix in ("", "-control")}
    assert set(got) == names
    for name, (device, threads, seeds, run_dir) in got.items():
        assert (device, threads, seeds) == ("cuda:3", 2, [0, 1]), name
        assert run_dir.name == "run" and run_dir.parent.parent == tmp_path
    with pytest.raises(Reached):  # without a work folder the run goes to a temporary one
        toy.run_job(cfg, jobs[0], JobContext(device="cuda:3"))


# ------------------------------------------------------------------ end to end on a tiny config
def _tiny_regime(raw: dict) -> dict:
    raw = copy.deepcopy(raw)
    raw["data"].update(d=5, n_train=64, n_test=64)
    raw["model"]["width"] = 8
    raw["train"].update(steps=40, eval_every=10, batch_size=16)
    raw["population"]["schedules"] = {"large": {"kind": "step", "lr": 0.1, "milestones": [20], "factor": 0.1},
                                      "small": {"kind": "constant", "lr": 0.02}}
    return raw


def tiny_config() -> dict:
    """The quick config shrunk to a few seconds: every regime at d=5, 40 steps, 2 seeds."""
    raw = yaml.safe_load((config_dir() / toy.NAME / "quick.yaml").read_text())
    raw["execution"]["seeds"] = [0, 1]
    raw["regimes"] = {k: _tiny_regime(v) for k, v in raw["regimes"].items()}
    return raw


@pytest.fixture
def tiny_configs(tmp_path, monkeypatch):
    d = tmp_path / "configs"
    (d / toy.NAME).mkdir(parents=True)
    write_yaml(d / toy.NAME / "quick.yaml", tiny_config())
    monkeypatch.setenv("LRLAB_CONFIGS", str(d))
    return d


def test_verify_end_to_end(tmp_path, tiny_configs):
    regimes = _regimes()
    out = tmp_path / "out"
    logs = []
    verdicts = verify([toy.NAME], "quick", out, log=logs.append, workers=1)

    payload = json.loads((out / "verdicts.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert payload["scale"] == "quick" and payload["claims"] == [toy.NAME]
    assert len(payload["verdicts"]) == len(verdicts) == len(IDS) * len(regimes)
    for r in regimes:
        assert [v["id"] for v in payload["verdicts"] if v["regime"] == r] == IDS
    for v in payload["verdicts"]:
        assert v["status"] in (PASS, FAIL, INCONCLUSIVE) and v["claim"] == toy.NAME
        assert len(v["per_seed"]) == 2 and v["interval"]["n"] + v["failed_seeds"] == 2
        assert v["kind"] == ("accuracy" if v["id"] in ACCURACY else "other") and v["test"] == "superiority"
        assert v["min_effect"] == (0.01 if v["id"] in ACCURACY else 100)

    text = (out / "report.md").read_text()
    assert text.startswith("# lrlab verification report") and "## Verdicts" in text
    figures = sorted((out / toy.NAME / "figures").iterdir())
    assert {f.name for f in figures} == {f"{toy.NAME}-effects.png"} | {
        f"{toy.NAME}-{r}-accuracy.png" for r in regimes}
    for f in figures:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{toy.NAME}/figures/{f.name}" in text
    for r in regimes:  # the report names the stored job folders, which exist
        for part in ("main", "control"):
            assert f"`{toy.NAME}/jobs/{r}-{part}`" in text
            assert (out / toy.NAME / "jobs" / f"{r}-{part}" / "records.parquet").is_file()
    assert not (out / toy.NAME / "work").exists() or not any((out / toy.NAME / "work").iterdir())

    # the stored tables: a main run and a same-Σηt control per regime
    rec = pd.read_parquet(out / toy.NAME / "jobs" / f"{regimes[0]}-control" / "records.parquet")
    assert list(rec.columns) == ["regime", "run", "member", "step", "metric", "value"]
    assert rec.step.max() == 110  # (20·0.1 + 20·0.01) / 0.02
    mem = pd.read_parquet(out / toy.NAME / "jobs" / f"{regimes[0]}-main" / "members.parquet")
    assert list(mem.columns[:6]) == ["regime", "run", "member", "name", "seed", "data_index"]
    assert sorted(zip(mem.name, mem.seed)) == [("large", 0), ("large", 1), ("small", 0), ("small", 1)]

    # a verdict's per-seed numbers are the paired differences in the stored records
    for r in regimes:
        rec = pd.read_parquet(out / toy.NAME / "jobs" / f"{r}-main" / "records.parquet")
        mem = pd.read_parquet(out / toy.NAME / "jobs" / f"{r}-main" / "members.parquet")
        last = rec[(rec.metric == "test.acc") & (rec.step == rec.step.max())].set_index("member").value

        def final(name):
            m = mem[mem.name == name]
            return pd.Series(last.loc[m.member].to_numpy(), index=m.seed.to_numpy())

        got = next(v for v in verdicts if v.regime == r and v.id == "a-overall").per_seed
        np.testing.assert_allclose(got, (final("large") - final("small")).to_numpy())
    assert any(toy.NAME in line for line in logs)

    # re-judging from the store gives the same bytes
    before = {p: p.read_bytes() for p in (out / "verdicts.json", out / toy.NAME / "verdicts.json")}
    report(out, log=lambda m: None)
    assert all(p.read_bytes() == b for p, b in before.items())


def test_an_interrupted_job_resumes_to_the_same_tables(tmp_path, tiny_configs, monkeypatch):
    cfg = load_claim_config(toy.NAME, "quick")
    job = next(j for j in toy.jobs(cfg) if j.part == "main")
    fresh = toy.run_job(cfg, job, JobContext(workdir=tmp_path / "a"))
    rc = toy.run_config(cfg, job, JobContext())
    with pytest.raises(KeyboardInterrupt):
        experiment.run(rc, run_dir=tmp_path / "b" / "run", progress=interrupt_at(20))
    resumed = []
    real_resume = experiment.resume
    monkeypatch.setattr(experiment, "resume", lambda *a, **kw: resumed.append(a) or real_resume(*a, **kw))
    again = toy.run_job(cfg, job, JobContext(workdir=tmp_path / "b"))
    assert len(resumed) == 1
    for name in ("records", "members"):
        pd.testing.assert_frame_equal(again[name], fresh[name])
    # a checkpoint left by another config is not continued: the job starts over
    other = load_claim_config(toy.NAME, "quick", overrides=[f"regimes.{job.params['regime']}.train.steps=30"])
    experiment.run(toy.run_config(other, job, JobContext()), run_dir=tmp_path / "c" / "run")
    third = toy.run_job(cfg, job, JobContext(workdir=tmp_path / "c"))
    assert len(resumed) == 1
    pd.testing.assert_frame_equal(third["records"], fresh["records"])


def test_verify_survives_a_diverging_large_rate(tmp_path, tiny_configs):
    overrides = [f"regimes.{r}.population.schedules.large.lr=1.0e+30" for r in _regimes()] + ["claim.control=false"]
    out = tmp_path / "out"
    verdicts = verify([toy.NAME], "quick", out, overrides=overrides, log=lambda m: None, workers=1)
    assert (out / "verdicts.json").is_file()
    assert all(v.status != PASS for v in verdicts if v.id.startswith("a-"))
    assert not any(v.id.startswith("b-") for v in verdicts)


def test_verify_rejects_too_long_controls_before_writing(tmp_path, tiny_configs):
    out = tmp_path / "out"
    with pytest.raises((ConfigError, ValueError), match="control_max_steps"):
        verify([toy.NAME], "quick", out, overrides=["claim.control_max_steps=10"], log=lambda m: None)
    assert not out.exists()
