"""The li2019-toy claim: its control, its step-to-fit measure, configs and an end-to-end verify."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from lrlab.claims import CLAIMS, PASS, FAIL, INCONCLUSIVE, load_claim_config, verify
from lrlab.claims import li2019_toy as toy
from lrlab.config import ConfigError, config_dir, validate
from lrlab.store import load_run
from lrlab.train import PopulationResult, StepDecay, total_lr
from tests.helpers import tiny_run_cfg, tiny_run_dict


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


def test_claim_config_checks_the_roles():
    ok = validate(toy.ClaimConfig, {"claim": {}, "regimes": {"r": tiny_run_dict()}})
    assert ok.claim.large == "large" and ok.claim.small == "small"
    raw = {"claim": {}, "regimes": {"r": tiny_run_dict()}}
    del raw["regimes"]["r"]["population"]["schedules"]["small"]
    with pytest.raises(ConfigError, match="regimes.r.population.schedules has no 'small'"):
        validate(toy.ClaimConfig, raw)
    raw = {"claim": {}, "regimes": {"r": tiny_run_dict()}}
    raw["regimes"]["r"]["population"]["schedules"]["large"] = {"kind": "constant", "lr": 0.1}
    with pytest.raises(ConfigError, match="must be a 'step' schedule"):
        validate(toy.ClaimConfig, raw)
    with pytest.raises(ConfigError, match="regimes"):
        validate(toy.ClaimConfig, {"claim": {}, "regimes": {}})


def _regimes() -> list[str]:
    raw = yaml.safe_load((config_dir() / toy.NAME / "quick.yaml").read_text())
    return list(raw["regimes"])


def test_load_claim_config_seeds_and_errors():
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


def _shrink(regime: str) -> list[str]:
    p = f"regimes.{regime}."
    return [p + "data.d=5", p + "data.n_train=64", p + "data.n_test=64", p + "model.width=8",
            p + "train.steps=40", p + "train.eval_every=10", p + "train.batch_size=16",
            p + "population.schedules.large={kind: step, lr: 0.1, milestones: [20], factor: 0.1}",
            p + "population.schedules.small={kind: constant, lr: 0.02}"]


def test_verify_end_to_end(tmp_path):
    regimes = _regimes()
    overrides = [o for r in regimes for o in _shrink(r)]
    out = tmp_path / "out"
    logs = []
    verdicts = verify([toy.NAME], "quick", out, seeds=2, overrides=overrides, log=logs.append)

    payload = json.loads((out / "verdicts.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert payload["scale"] == "quick" and payload["claims"] == [toy.NAME]
    assert len(payload["verdicts"]) == len(verdicts) == 7 * len(regimes)
    ids = {"a-overall", "a-P-only", "b-overall", "b-P-only", "c-small-order", "c-large-order",
           "c-large-after-anneal"}
    for r in regimes:
        assert {v["id"] for v in payload["verdicts"] if v["regime"] == r} == ids
    for v in payload["verdicts"]:
        assert v["status"] in (PASS, FAIL, INCONCLUSIVE) and v["claim"] == toy.NAME
        assert len(v["per_seed"]) == 2 and v["interval"]["n"] == 2

    report = (out / "report.md").read_text()
    assert report.startswith("# lrlab verification report") and "## Verdicts" in report
    figures = sorted((out / "figures").iterdir())
    assert {f.name for f in figures} == {f"{toy.NAME}-effects.png"} | {
        f"{toy.NAME}-{r}-accuracy.png" for r in regimes}
    for f in figures:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{f.name}" in report

    # the stored runs: a main run and a same-Σηt control per regime, each finished
    cfg = load_claim_config(toy.NAME, "quick", seeds=2, overrides=overrides)
    runs = {load_run(p).meta["name"]: load_run(p) for p in (out / "runs").iterdir()}
    names = {r: cfg.regimes[r].name for r in regimes}
    assert set(runs) == set(names.values()) | {f"{n}-control" for n in names.values()}
    assert all(r.status == "done" for r in runs.values())
    for r in regimes:
        assert runs[f"{names[r]}-control"].meta["steps"] == 110  # (20·0.1 + 20·0.01) / 0.02

    # a verdict's per-seed numbers are the paired differences in the stored records
    for r in regimes:
        rec, mem = runs[names[r]].records, runs[names[r]].members
        last = rec[(rec.metric == "test.acc") & (rec.step == rec.step.max())].set_index("member").value

        def final(name):
            m = mem[mem.name == name]
            return pd.Series(last.loc[m.member].to_numpy(), index=m.seed.to_numpy())

        got = next(v for v in verdicts if v.regime == r and v.id == "a-overall").per_seed
        np.testing.assert_allclose(got, (final("large") - final("small")).to_numpy())
    assert any(toy.NAME in line for line in logs)


def test_verify_survives_a_diverging_large_rate(tmp_path):
    regimes = _regimes()
    overrides = [o for r in regimes for o in _shrink(r)] + [
        f"regimes.{r}.population.schedules.large.lr=1.0e+30" for r in regimes] + ["claim.control=false"]
    out = tmp_path / "out"
    verdicts = verify([toy.NAME], "quick", out, seeds=2, overrides=overrides, log=lambda m: None)
    assert (out / "verdicts.json").is_file()
    assert all(v.status != PASS for v in verdicts if v.id.startswith("a-"))


def test_verify_rejects_too_long_controls_before_writing(tmp_path):
    regimes = _regimes()
    overrides = [o for r in regimes for o in _shrink(r)] + ["claim.control_max_steps=10"]
    out = tmp_path / "out"
    with pytest.raises((ConfigError, ValueError), match="control_max_steps"):
        verify([toy.NAME], "quick", out, seeds=2, overrides=overrides, log=lambda m: None)
    assert not out.exists()
