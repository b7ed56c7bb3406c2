"""lewkowycz2020's plan (``job_stages``): every job declares exactly the training calls it makes, and the
paper-scale plan covers every job without loading CIFAR-10."""

from __future__ import annotations

import json
from collections import Counter

import pytest

import lrlab.plan
from lrlab import driver
from lrlab.claims import lewkowycz2020 as lew
from lrlab.claims.lewkowycz2020 import experiment
from lrlab.claims.protocol import JobContext
from lrlab.config import validate
from lrlab.models import FromModule
from lrlab.plan import Stage
from tests.claims.test_lewkowycz2020 import TINY

Call = tuple[int, int, int, str, tuple, bool]
"""(members, batch, steps, model class, one member's parameter shapes, capped)."""


def _call(members: int, batch: int, steps: int, model: FromModule, capped: bool) -> Call:
    shapes = tuple(sorted((k, tuple(v.shape[1:])) for k, v in model.init([0]).items()))
    return (members, batch, steps, type(model.base).__name__, shapes, capped)


def _planned(st: Stage) -> Call:
    return _call(st.members, st.batch, st.steps, st.model, st.capped)


def _record(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Wrap the claim's trainer entry points so each call records what it was asked to train (a control
    run: its step cap, max(eq_steps, max_steps)), then runs for real."""
    calls: list[Call] = []
    real_pd, real_sweep = experiment.phase_diagram, experiment.real_sweep
    real_control, real_track = experiment.control_run, experiment.track_sharpness

    def phase_diagram(factory, x, y, loss="squared", *, scaled_etas, steps, **kw):
        calls.append(_call(len(scaled_etas), int(x.shape[0]), steps, FromModule(factory), False))
        return real_pd(factory, x, y, loss, scaled_etas=scaled_etas, steps=steps, **kw)

    def sweep(factory, train, evals, cs, steps, *a):
        calls.append(_call(len(cs), len(train), steps, FromModule(factory), False))
        return real_sweep(factory, train, evals, cs, steps, *a)

    def control_run(factory, seed, eta, train, evals, *, eq_steps, max_steps, **kw):
        cap = max(eq_steps or 0, max_steps)
        calls.append(_call(1, len(train), cap, FromModule(factory), True))
        row, curve = real_control(factory, seed, eta, train, evals, eq_steps=eq_steps, max_steps=max_steps, **kw)
        assert row["steps_run"] <= cap
        return row, curve

    def track_sharpness(factory, x, y, loss="squared", *, lrs, steps, **kw):
        calls.append(_call(len(lrs), int(x.shape[0]), steps, FromModule(factory), False))
        return real_track(factory, x, y, loss, lrs=lrs, steps=steps, **kw)

    monkeypatch.setattr(experiment, "phase_diagram", phase_diagram)
    monkeypatch.setattr(experiment, "real_sweep", sweep)
    monkeypatch.setattr(experiment, "control_run", control_run)
    monkeypatch.setattr(experiment, "track_sharpness", track_sharpness)
    return calls


def test_stages_are_the_training_calls_each_job_makes(cifar_root, monkeypatch):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    raw = json.loads(json.dumps(TINY))
    # a cap above every equal-Σηt run (20·8/0.5 = 320 steps), so the lazy control's cap is conv_max_steps
    # whichever rates the validation split picks, and the plan's cap is what the job asks for
    raw["claim"]["real"]["conv_max_steps"] = 400
    cfg = validate(lew.Config, raw)
    calls = _record(monkeypatch)
    jobs = [j for j in lew.jobs(cfg) if j.params["seed"] == 0]
    assert [j.part for j in jobs] == ["core", "real", "eos"]
    for job in jobs:
        lew.run_job(cfg, job, JobContext())
        assert Counter(calls) == Counter(_planned(st) for st in lew.job_stages(cfg, job)), job.key
        calls.clear()


def test_lazy_control_cap_is_the_longest_run_the_choice_allows():
    r = validate(lew.Config, TINY).claim.real  # lazy candidates 0.5, 1; catapult 3, 8; 20 steps
    assert lew.lazy_control_cap(r) == 320  # 20·8/0.5 steps to equal Σηt, above conv_max_steps = 60
    assert lew.lazy_control_cap(r.model_copy(update={"conv_max_steps": 500})) == 500
    cfg = validate(lew.Config, TINY)
    stages = lew.job_stages(cfg, next(j for j in lew.jobs(cfg) if j.part == "real"))
    assert [(st.label, st.steps, st.capped) for st in stages] == [("sweep", 20, False), ("lazy-control", 320, True),
                                                                  ("catapult-control", 60, True)]


def test_paper_plan_covers_every_job_without_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LRLAB_DATA", str(tmp_path / "nowhere"))  # the plan reads no CIFAR-10
    monkeypatch.setattr(lrlab.plan, "measure_step", lambda *a, **k: 1.0)  # no timing: the widest nets take ~10 s
    table = driver.plan_claim(lew.NAME, "paper", seeds=2)
    cfg = driver.load_claim_config(lew.NAME, "paper", seeds=2)
    tflop = table.groupby("job").tflop.sum()
    assert set(tflop.index) == {j.key for j in lew.jobs(cfg)} and (tflop > 0).all()
    r, real = cfg.claim.real, table[table.part == "real"]
    assert set(real.input) == {str(3 * (32 // r.pool) ** 2)} and set(real.batch) == {10 * r.n_per_class}
    assert set(real[real.capped].steps) == {lew.lazy_control_cap(r), r.conv_max_steps}
    assert lew.lazy_control_cap(r) >= r.steps * max(c for c in r.grid if c <= r.catapult_max) / min(r.grid)
