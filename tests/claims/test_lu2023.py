"""The lu2023 claim: the strong-point recurrence and its stability edge c = 1/4, config checks,
and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lrlab import losses
from lrlab.claims import lu2023 as lu
from lrlab.config import ConfigError, TrainConfig, validate
from lrlab.data import Dataset
from lrlab.driver import load_claim_config, verify
from lrlab.models import ReLU2CNN
from lrlab.probes.oscillation import benign_probes
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
IDS = ["a-large-oscillates", "a-large-converges", "a-small-smooth", "a-large-oscillates-weights",
       "a-small-smooth-weights", "b-large-learns-weak", "b-small-does-not", "b-small-does-not-same-time",
       "b-large-vs-small", "c-weak-test-acc", "c-weak-test-acc-same-time", "d-window"]
TESTS = {"a-large-oscillates": "bound", "a-large-converges": "bound", "a-small-smooth": "bound",
         "a-large-oscillates-weights": "bound", "a-small-smooth-weights": "bound",
         "b-large-learns-weak": "bound", "b-small-does-not": "bound", "b-small-does-not-same-time": "bound",
         "b-large-vs-small": "superiority", "c-weak-test-acc": "superiority",
         "c-weak-test-acc-same-time": "superiority", "d-window": "superiority"}
CFG3 = {**TINY, "execution": {"seeds": [0, 1, 2]}}
W_OSC_MIN = 0.05  # the default verdicts.w_osc_min


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


@pytest.mark.parametrize("c, every, share", [(0.3, 1, 0.5), (0.3, 3, 0.5), (0.3, 2, 0.0), (0.1, 1, 0.0)])
def test_weight_space_oscillation_inside_the_trainer(c, every, share):
    """One strong point visited every step: at c = 0.3 the iterates settle on a period-2 orbit, so the
    class-+ filter's component along u reverses at every probe of an odd cadence (1 of the 2 filters:
    share 0.5; the class-− filter never moves) and never at an even one, which samples one phase.
    At c = 0.1 the fit converges without reversing."""
    model, data, u = _strong_point()
    from lrlab.data import FeatureNoiseData

    fn = FeatureNoiseData(data, data, data, u, torch.tensor([0.0, 1.0, 0.0]))
    probes = benign_probes(model, [fn], [0], delta=0.1, w_rel=0.02)
    res = train_population(model, [Member("m", 0, Constant(c))], data, None,
                           TrainConfig(loss="margin_squared", steps=60, batch_size=1, eval_every=every),
                           probes=probes)
    w = res.curve("osc.weights")[0]
    assert w.iloc[:2].isna().all()  # the first two probes have no triple yet
    assert w.iloc[-8:].eq(share).all()


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
    assert set(vs) == set(IDS)
    assert all(v.status_holm for v in vs.values())  # the driver applies Holm over the claim
    assert all(len(v.per_seed) == 2 for v in vs.values())
    figs = {p.name for p in (out / lu.NAME / "figures").iterdir()}
    assert {f"{lu.NAME}-{n}.png" for n in ("margins", "alignment", "sweep")} <= figs
    assert "| c | weak-only test acc" in (out / "report.md").read_text()
    again = {v.id: v for v in verify([lu.NAME], "quick", tmp_path / "again", log=lambda m: None, workers=1)}
    assert all(again[k].per_seed == vs[k].per_seed for k in vs)  # same config and seeds: same numbers




def _tables(shape: str = "paper", seeds=(0, 1, 2), diverge=()):
    """Hand-made sweep and control tables (grid 0.05, 0.1 below the window; 0.3, 0.35 inside it).

    * "paper": the large rate (c = 0.3) oscillates, converges, grows the weak alignment 100× and
      wins on weak-only accuracy, and 30% of its (filter, probe) pairs reverse in weight space; the
      small rate (c = 0.05, and its control) stays smooth (1% reverse) and grows it 2×;
    * "reversed": the other way round;
    * "null": every rate and the control behave alike (large == small), and every measure sits on
      its threshold ± one step per seed: oscillating share osc_min + (−0.01, 0, 0.01), tail loss
      conv_tol + (−0.01, 0, 0.01), weak-space reversing share w_osc_min + (−0.01, 0, 0.01), weak growth
      growth·10^(−0.1, 0, 0.1), equal accuracies.

    ``diverge``: (c or "control", seed) pairs whose run diverged (curves NaN after step 0, weak_acc NaN)."""
    steps = np.arange(0, 101, 5)
    finals, curves = [], []
    tiny = TINY["claim"]

    def add(job, member, c, seed, good: bool, j: int):
        if shape == "null":
            k = j - 1
            osc = np.where(steps >= 50, tiny["osc_min"] + 0.01 * k, 0.6)
            loss = np.full(steps.size, tiny["conv_tol"] + 0.01 * k)
            oscw = np.where(steps >= 50, W_OSC_MIN + 0.01 * k, 0.6)
            weak = np.linspace(0.01, 0.01 * tiny["growth"] * 10 ** (0.1 * k), steps.size)
            acc = 0.8 + 0.01 * k
        else:
            jitter = 0.001 * j
            osc = np.where(steps >= 50, 0.5 if good else 0.0, 0.6)
            oscw = np.where(steps >= 50, 0.3 if good else 0.01, 0.4)
            loss = np.full(steps.size, 0.01 if good else 0.5)
            weak = np.linspace(0.01, 1.0 if good else 0.02, steps.size) + jitter
            acc = (0.95 if good else 0.6) + jitter
        oscw = np.where(steps >= 10, oscw, np.nan)  # the first two probes have no triple
        series = {"oscillating": osc, "osc.weights": oscw, "train.loss": loss, "train.acc": np.ones(steps.size),
                  "align.weak": weak, "align.strong": np.full(steps.size, 2.0), "noise": np.full(steps.size, 0.1)}
        div = ("control" if job == "control" else c, seed) in diverge
        for metric, vals in series.items():
            vals = np.where((steps > 0) & div, np.nan, vals)
            curves.extend({"job": job, "member": member, "c": c, "seed": seed, "step": int(t), "metric": metric,
                           "value": float(v)} for t, v in zip(steps, vals))
        finals.append({"job": job, "member": member, "c": c, "seed": seed, "diverged": div,
                       "weak_acc": np.nan if div else acc, "like_acc": np.nan if div else 0.9})

    grid = (0.05, 0.1, 0.3, 0.35)
    for i, c in enumerate(grid):
        for j, sd in enumerate(seeds):
            inside = c >= 0.25
            add("sweep", i * len(seeds) + j, c, sd, inside == (shape == "paper"), j)
    for j, sd in enumerate(seeds):
        add("control", j, 0.05, sd, shape != "paper", j)
    return {"finals": pd.DataFrame(finals), "curves": pd.DataFrame(curves)}


def _judge(tables, cfg=CFG3):
    return {v.id: v for v in lu.judge(validate(lu.Config, cfg), tables)}


@pytest.mark.parametrize("shape, status", [("paper", "PASS"), ("reversed", "FAIL")])
def test_judge_on_hand_made_tables(shape, status):
    cfg = validate(lu.Config, CFG3)
    vs = lu.judge(cfg, _tables(shape))
    assert [v.id for v in vs] == IDS
    assert {v.id: v.status for v in vs} == {v.id: status for v in vs}
    assert {v.id: v.test for v in vs} == TESTS
    by = {v.id: v for v in vs}
    assert {i: by[i].min_effect for i in IDS if TESTS[i] == "superiority"} == {
        "b-large-vs-small": 0.3, "c-weak-test-acc": 0.01, "c-weak-test-acc-same-time": 0.01, "d-window": 0.01}
    assert all(by[i].min_effect == 0 for i in IDS if TESTS[i] == "bound")
    assert all(v.failed_seeds == 0 for v in vs)
    if shape == "paper":
        assert by["a-large-oscillates"].per_seed == pytest.approx([0.45] * 3)  # share 0.5 − osc_min 0.05
        assert by["a-large-converges"].per_seed == pytest.approx([0.04] * 3)  # conv_tol 0.05 − loss 0.01
        assert by["a-small-smooth"].per_seed == pytest.approx([0.05] * 3)  # osc_min 0.05 − share 0
        assert by["a-large-oscillates-weights"].per_seed == pytest.approx([0.25] * 3)  # 0.3 − w_osc_min 0.05
        assert by["a-small-smooth-weights"].per_seed == pytest.approx([0.04] * 3)  # w_osc_min 0.05 − 0.01
        assert "0.40 / 0.30" in by["a-large-oscillates-weights"].notes  # first / second half
        assert by["c-weak-test-acc"].per_seed == pytest.approx([0.35] * 3)
        assert by["b-large-learns-weak"].per_seed[0] == pytest.approx(np.log10(1.0 / 0.01) - 1)
        assert by["b-small-does-not"].per_seed[0] == pytest.approx(1 - np.log10(0.02 / 0.01))
        assert by["b-large-vs-small"].per_seed[0] == pytest.approx(np.log10(1.0 / 0.02))
        assert by["d-window"].per_seed == pytest.approx([0.35] * 3)
    assert {v.id for v in vs if v.kind == "accuracy"} == {"c-weak-test-acc", "c-weak-test-acc-same-time", "d-window"}


# Null (large == small, every measure on its threshold): each bound test straddles its boundary
# (INCONCLUSIVE); each superiority test sees an effect of exactly 0, wholly below its min_effect (FAIL).
NULL = {i: "INCONCLUSIVE" if t == "bound" else "FAIL" for i, t in TESTS.items()}


def test_judge_on_a_null_table():
    by = _judge(_tables("null"))
    assert {i: v.status for i, v in by.items()} == NULL
    assert by["a-large-oscillates"].per_seed == pytest.approx([-0.01, 0, 0.01])
    assert by["a-small-smooth"].per_seed == pytest.approx([0.01, 0, -0.01])
    assert by["a-large-oscillates-weights"].per_seed == pytest.approx([-0.01, 0, 0.01])
    assert by["a-small-smooth-weights"].per_seed == pytest.approx([0.01, 0, -0.01])
    assert by["a-large-converges"].per_seed == pytest.approx([0.01, 0, -0.01])
    assert by["b-large-learns-weak"].per_seed == pytest.approx([-0.1, 0, 0.1])
    assert by["b-small-does-not-same-time"].per_seed == pytest.approx([0.1, 0, -0.1])
    for i in ("b-large-vs-small", "c-weak-test-acc", "c-weak-test-acc-same-time", "d-window"):
        assert by[i].per_seed == pytest.approx([0, 0, 0])


def test_thresholds_come_from_the_verdicts_section():
    """A larger min_effect turns the paper-shaped superiority verdicts into FAILs; the bound
    verdicts do not read the section."""
    cfg = {**CFG3, "verdicts": {"b_log_ratio_min": 2.0, "c_acc_min": 0.4, "d_acc_min": 0.4}}
    by = _judge(_tables("paper"), cfg)
    assert {i: v.status for i, v in by.items()} == {i: "FAIL" if t == "superiority" else "PASS"
                                                   for i, t in TESTS.items()}
    assert by["b-large-vs-small"].min_effect == 2.0 and by["d-window"].min_effect == 0.4


LARGE = {"a-large-oscillates", "a-large-converges", "a-large-oscillates-weights", "b-large-learns-weak",
         "b-large-vs-small", "c-weak-test-acc", "c-weak-test-acc-same-time"}


@pytest.mark.parametrize("diverge, failed", [
    ({(0.3, 0)}, LARGE),
    ({(0.05, 0)}, {"a-small-smooth", "a-small-smooth-weights", "b-small-does-not", "b-large-vs-small",
                   "c-weak-test-acc"}),
    ({("control", 0)}, {"b-small-does-not-same-time", "c-weak-test-acc-same-time"}),
    ({(0.3, 0), (0.35, 0)}, LARGE | {"d-window"}),  # every rate inside the window diverged
    ({(0.05, 0), (0.1, 0)}, {"a-small-smooth", "a-small-smooth-weights", "b-small-does-not", "b-large-vs-small",
                             "c-weak-test-acc", "d-window"}),
    ({(c, 0) for c in (0.05, 0.1, 0.3, 0.35, "control")}, set(IDS)),
])
def test_a_diverged_seed_is_a_failed_seed(diverge, failed):
    """A paper-shaped table where seed 0 of some runs diverged: exactly the verdicts that measure
    those runs count one failed seed (1 of 3: INCONCLUSIVE, never PASS) and say why; the others PASS."""
    by = _judge(_tables("paper", diverge=diverge))
    assert {i for i, v in by.items() if v.failed_seeds} == failed
    for i, v in by.items():
        if i in failed:
            assert v.failed_seeds == 1 and v.status == "INCONCLUSIVE", i
            assert np.isnan(v.per_seed[0]) and "seed 0:" in v.notes and "1 of 3 seeds failed" in v.notes
        else:
            assert v.status == "PASS", i


def _set(tables, metric, value, c=0.3, seed=0, last=True):
    cv = tables["curves"]
    rows = (cv.job == "sweep") & (cv.c == c) & (cv.seed == seed) & (cv.metric == metric)
    if last:
        rows &= cv.step == cv.step.max()
    cv.loc[rows, "value"] = value
    return tables


@pytest.mark.parametrize("metric, value, c, failed", [
    ("train.loss", np.inf, 0.3, {"a-large-converges"}),  # the loss blew up without a divergence flag: −inf
    ("align.weak", 0.0, 0.3, {"b-large-learns-weak", "b-large-vs-small"}),  # no log of a zero alignment
    ("align.weak", -0.5, 0.05, {"b-small-does-not", "b-large-vs-small"}),  # nor of a negative one
    ("osc.weights", np.nan, 0.3, {"a-large-oscillates-weights"}),  # no weight-space share in the second half
    ("osc.weights", np.nan, 0.05, {"a-small-smooth-weights"}),
])
def test_a_non_finite_measure_is_a_failed_seed(metric, value, c, failed):
    by = _judge(_set(_tables("paper"), metric, value, c=c, last=metric != "osc.weights"))
    assert {i for i, v in by.items() if v.failed_seeds} == failed
    for i in failed:
        assert by[i].failed_seeds == 1 and by[i].status != "PASS" and not np.isfinite(by[i].per_seed[0])
    assert all(by[i].status == "PASS" for i in set(IDS) - failed)
    if metric == "align.weak":
        assert "weak alignment start" in by["b-large-vs-small"].notes
    if metric == "osc.weights":
        assert "has no weight-space share" in by[next(iter(failed))].notes


def test_tables_without_the_weight_space_curve_fail_its_verdicts_only():
    """Stored before JOBS_VERSION 2 (no 'osc.weights'): the two weight-space verdicts have only failed
    seeds (FAIL, saying why); every other verdict is judged as before."""
    t = _tables("paper")
    t["curves"] = t["curves"][t["curves"].metric != "osc.weights"]
    by = _judge(t)
    for i in ("a-large-oscillates-weights", "a-small-smooth-weights"):
        assert by[i].status == "FAIL" and by[i].failed_seeds == 3 and "no weight-space share" in by[i].notes
    assert all(v.status == "PASS" for i, v in by.items() if "weights" not in i)


@pytest.mark.parametrize("w_osc_min, status", [(0.005, ("PASS", "FAIL")), (0.5, ("FAIL", "PASS"))])
def test_the_weight_space_threshold_comes_from_the_verdicts_section(w_osc_min, status):
    """Paper-shaped shares 0.3 (large) and 0.01 (small): below both, the large rate still oscillates
    but the small rate no longer counts as smooth; above both, the reverse."""
    by = _judge(_tables("paper"), {**CFG3, "verdicts": {"w_osc_min": w_osc_min}})
    assert (by["a-large-oscillates-weights"].status, by["a-small-smooth-weights"].status) == status
    assert f"more than {100 * w_osc_min:.3g}%" in by["a-large-oscillates-weights"].statement


def test_all_seeds_failing_is_fail():
    by = _judge(_tables("paper", diverge={(c, sd) for c in (0.05, 0.1, 0.3, 0.35, "control") for sd in (0, 1, 2)}))
    assert {i: v.status for i, v in by.items()} == dict.fromkeys(IDS, "FAIL")
    assert all(v.failed_seeds == 3 for v in by.values())


def test_every_verdict_can_fail():
    """Each id FAILs on some hand-made table: the reversed one, and all seeds diverged."""
    tables = [_tables("reversed"), _tables("null"),
              _tables("paper", diverge={(c, sd) for c in (0.05, 0.1, 0.3, 0.35, "control") for sd in (0, 1)})]
    fails = [{i for i, v in _judge(t).items() if v.status == "FAIL"} for t in tables]
    for i in IDS:
        assert any(i in f for f in fails), i
    assert fails[0] == set(IDS) and fails[2] == set(IDS)  # 2 of 3 seeds failed: more than half


def test_judge_without_the_control_leaves_out_its_verdicts():
    cfg = validate(lu.Config, CFG3)
    t = _tables("paper")
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
