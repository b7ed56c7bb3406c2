"""The lu2023 claim: the strong-point recurrence and its stability edge c = 1/4, config checks,
and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lrlab.claims import lu2023 as lu
from lrlab.config import ConfigError, TrainConfig, validate
from lrlab.data import Dataset
from lrlab.driver import load_claim_config, verify
from lrlab.models import ReLU2CNN
from lrlab.probes.oscillation import benign_probes
from lrlab import losses
from lrlab.train import Constant, Member, train_population
from tests.helpers import write_yaml

TINY = {"execution": {"seeds": [0, 1]}, "claim": {
    "data": {"d": 8, "n_train": 8, "n_test": 50, "strong_frac": 0.5, "strong_norm": 1.0, "weak_norm": 0.3,
             "noise_std": 0.1},
    "model": {"filters": 2, "init_std": 0.05},
    "steps": 160, "batch_size": 1, "eval_every": 5, "test_every": 40,
    "grid": [0.05, 0.1, 0.3, 0.35], "large": 0.3, "small": 0.05, "window": [0.25, 0.4],
    "delta": 0.1, "osc_min": 0.05, "tail": 0.1, "conv_tol": 0.05, "growth": 10, "acc_gain": 0.05,
    "control": True,
}}


def _strong_point(u_norm: float = 1.0, a0: float = 0.6):
    """One class-+ point with only the strong patch u, and one filter per class with ⟨w₊, û⟩ = a0."""
    d = 3
    u = torch.tensor([u_norm, 0.0, 0.0])
    x = torch.zeros(1, 3, d)
    x[0, 1] = u
    data = Dataset(x, torch.ones(1), torch.zeros(1, dtype=torch.long), ("strong", "weak-only"))
    model = ReLU2CNN(d, filters=1, init_std=1.0)
    W = torch.zeros(1, 2, 1, d)
    W[0, 0, 0, 0] = a0
    model.init = lambda seeds: {"W": W.expand(len(seeds), -1, -1, -1).clone()}
    return model, data, u


def test_margin_squared_loss_is_y_f_minus_one_squared():
    out, y = torch.tensor([[0.3, 2.0]]), torch.tensor([[1.0, -1.0]])
    assert torch.allclose(losses.per_example("margin_squared", out, y), torch.tensor([[0.49, 9.0]]))
    losses.check_loss("margin_squared", "binary")
    with pytest.raises(ValueError, match="margin_squared loss needs a binary task"):
        losses.check_loss("margin_squared", "multiclass")


@pytest.mark.parametrize("c", [0.1, 0.3])
def test_sgd_on_a_strong_point_follows_the_closed_form_recurrence(c):
    """[derived] With (y·f − 1)² and m filters, z = y·f on a strong-only point follows
    z' = z (1 − κ (z − 1))², κ = 4 η ‖u‖²/m; at η = c·m/‖u‖², κ = 4c."""
    model, data, u = _strong_point(u_norm=1.5)
    eta = c * 1 / 1.5 ** 2
    probes = {"yf": lambda m, p: (data.y * m.forward(p, data.x[None]))[:, 0]}
    res = train_population(model, [Member("m", 0, Constant(eta))], data, None,
                           TrainConfig(loss="margin_squared", steps=12, batch_size=1, eval_every=1), probes=probes)
    z_sgd = res.curve("yf")[0].to_numpy()
    z = [(0.6 * 1.5) ** 2]  # ⟨w₊, u⟩² with one filter
    for _ in range(12):
        z.append(z[-1] * (1 - 4 * c * (z[-1] - 1)) ** 2)
    assert np.allclose(z_sgd, z, rtol=1e-5)


def test_the_fit_of_a_strong_point_turns_unstable_at_c_one_quarter():
    """Below c = 1/4 the fixed point z = 1 attracts; just above it the iterates keep oscillating."""
    def late_deviation(c: float) -> float:
        z = 0.9
        devs = []
        for t in range(4000):
            z = z * (1 - 4 * c * (z - 1)) ** 2
            if t >= 3900:
                devs.append(abs(z - 1))
        return max(devs)

    assert late_deviation(0.24) < 1e-6
    assert late_deviation(0.27) > 0.1  # the paper's window starts at c = 1/4
    assert np.isfinite(late_deviation(0.39))  # bounded oscillation inside the window


def test_benign_probes_run_inside_the_trainer():
    model, data, u = _strong_point()
    from lrlab.data import FeatureNoiseData

    fn = FeatureNoiseData(data, data, data, u, torch.tensor([0.0, 1.0, 0.0]))
    probes = benign_probes(model, [fn], [0], delta=0.1)
    res = train_population(model, [Member("m", 0, Constant(0.3))], data, None,
                           TrainConfig(loss="margin_squared", steps=50, batch_size=1, eval_every=1), probes=probes)
    assert res.curve("oscillating")[0].iloc[-10:].eq(1.0).all()  # c = 0.3: still oscillating
    assert res.curve("align.strong")[0].iloc[0] == pytest.approx(0.3)  # (0.6 + 0)/2: class − has no filter on u


def test_shipped_configs_validate():
    for scale in ("quick", "paper"):
        cfg = load_claim_config(lu.NAME, scale, seeds=5)
        assert cfg.execution.seeds == [0, 1, 2, 3, 4]
        assert lu.lr_unit(cfg.claim) == cfg.claim.model.filters / cfg.claim.data.strong_norm ** 2


@pytest.mark.parametrize("key, value, message", [
    ("large", 0.33, r"large = 0.33 must be one of grid"),
    ("small", 0.35, r"small \(0.35\) must be below large \(0.3\)"),
    ("window", [0.4, 0.25], "window must be increasing"),
    ("test_every", 42, "test_every 42 must be a multiple of eval_every 5"),
    ("grid", [0.3, 0.35, 0.05], None),
])
def test_config_errors(key, value, message):
    bad = json.loads(json.dumps(TINY))
    bad["claim"][key] = value
    if message is None:  # a reordered grid is fine
        validate(lu.Config, bad)
        return
    with pytest.raises(ConfigError, match=message):
        validate(lu.Config, bad)


def test_tiny_end_to_end(tmp_path, monkeypatch):
    cfgdir = tmp_path / "configs"
    (cfgdir / lu.NAME).mkdir(parents=True)
    write_yaml(cfgdir / lu.NAME / "quick.yaml", TINY)
    monkeypatch.setenv("LRLAB_CONFIGS", str(cfgdir))
    out = tmp_path / "out"
    vs = {v.id: v for v in verify([lu.NAME], "quick", out, log=lambda m: None, workers=1)}
    assert set(vs) == {"a-large-oscillates", "a-large-converges", "a-small-smooth", "b-large-learns-weak",
                       "b-small-does-not", "b-small-does-not-same-time", "b-large-vs-small", "c-weak-test-acc",
                       "c-weak-test-acc-same-time", "d-window"}
    assert all(len(v.per_seed) == 2 for v in vs.values())
    figs = {p.name for p in (out / lu.NAME / "figures").iterdir()}
    assert {f"{lu.NAME}-{n}.png" for n in ("margins", "alignment", "sweep")} <= figs
    assert "| c | weak-only test acc" in (out / "report.md").read_text()
    again = {v.id: v for v in verify([lu.NAME], "quick", tmp_path / "again", log=lambda m: None, workers=1)}
    assert all(again[k].per_seed == vs[k].per_seed for k in vs)  # same config and seeds: same numbers


def _tables(paper_shaped: bool, seeds=(0, 1, 2)):
    """Hand-made sweep and control tables. Paper-shaped: the large rate (c = 0.3) oscillates,
    converges, grows the weak alignment 100× and wins on weak-only accuracy; the small rate
    (c = 0.05, and its control) stays smooth and grows it 2×. Reversed: the other way round."""
    steps = np.arange(0, 101, 5)
    finals, curves = [], []

    def add(job, member, c, seed, good: bool, jitter: float):
        osc = np.where(steps >= 50, 0.5 if good else 0.0, 0.6)
        loss = np.full(steps.size, 0.01 if good else 0.5)
        weak = np.linspace(0.01, 1.0 if good else 0.02, steps.size) + jitter
        series = {"oscillating": osc, "train.loss": loss, "train.acc": np.ones(steps.size), "align.weak": weak,
                  "align.strong": np.full(steps.size, 2.0), "noise": np.full(steps.size, 0.1)}
        for metric, vals in series.items():
            curves.extend({"job": job, "member": member, "c": c, "seed": seed, "step": int(t), "metric": metric,
                           "value": float(v)} for t, v in zip(steps, vals))
        finals.append({"job": job, "member": member, "c": c, "seed": seed, "diverged": False,
                       "weak_acc": (0.95 if good else 0.6) + jitter, "like_acc": 0.9})

    grid = (0.05, 0.1, 0.3, 0.35)
    for i, c in enumerate(grid):
        for j, sd in enumerate(seeds):
            inside = c >= 0.25
            add("sweep", i * len(seeds) + j, c, sd, inside == paper_shaped, 0.001 * j)
    for j, sd in enumerate(seeds):
        add("control", j, 0.05, sd, not paper_shaped, 0.001 * j)
    return {"finals": pd.DataFrame(finals), "curves": pd.DataFrame(curves)}


@pytest.mark.parametrize("paper_shaped, status", [(True, "PASS"), (False, "FAIL")])
def test_judge_on_hand_made_tables(paper_shaped, status):
    cfg = validate(lu.Config, {**TINY, "execution": {"seeds": [0, 1, 2]}})
    vs = lu.judge(cfg, _tables(paper_shaped))
    assert [v.id for v in vs] == ["a-large-oscillates", "a-large-converges", "a-small-smooth", "b-large-learns-weak",
                                  "b-small-does-not", "b-small-does-not-same-time", "b-large-vs-small",
                                  "c-weak-test-acc", "c-weak-test-acc-same-time", "d-window"]
    assert {v.id: v.status for v in vs} == {v.id: status for v in vs}
    by = {v.id: v for v in vs}
    if paper_shaped:
        assert by["a-large-oscillates"].per_seed == pytest.approx([0.45] * 3)  # share 0.5 − osc_min 0.05
        assert by["c-weak-test-acc"].per_seed == pytest.approx([0.35] * 3)
        assert by["b-large-learns-weak"].per_seed[0] == pytest.approx(np.log10(1.0 / 0.01) - 1)
    assert {v.id for v in vs if v.kind == "accuracy"} == {"c-weak-test-acc", "c-weak-test-acc-same-time", "d-window"}


def test_judge_without_the_control_leaves_out_its_verdicts():
    cfg = validate(lu.Config, {**TINY, "execution": {"seeds": [0, 1, 2]}})
    t = _tables(True)
    t = {k: v[v.job == "sweep"] for k, v in t.items()}
    ids = {v.id for v in lu.judge(cfg, t)}
    assert "b-small-does-not-same-time" not in ids and "c-weak-test-acc-same-time" not in ids


def test_execution_reaches_both_jobs(monkeypatch):
    from lrlab.claims.lu2023 import experiment
    from lrlab.claims.protocol import JobContext

    cfg = load_claim_config(lu.NAME, "quick", seeds=2, device="cuda:3", threads=2)
    seen = []

    class Reached(Exception):
        pass

    def recorder(model, members, train, test, tcfg, **kw):
        seen.append((tcfg.device, sorted({m.seed for m in members})))
        raise Reached

    monkeypatch.setattr(experiment, "train_population", recorder)
    for job in lu.jobs(cfg):
        with pytest.raises(Reached):
            lu.run_job(cfg, job, JobContext(device="cuda:3"))
    assert seen == [("cuda:3", [0, 1]), ("cuda:3", [0, 1])]
