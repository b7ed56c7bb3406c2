"""lu2023's plan (job_stages) against what its jobs really train."""

from __future__ import annotations

from collections import Counter

import lrlab.plan
from lrlab import driver
from lrlab.claims import lu2023 as lu
from lrlab.claims.lu2023 import experiment
from lrlab.claims.protocol import JobContext
from lrlab.config import validate
from tests.claims.test_lu2023 import TINY


def test_stages_are_the_training_calls(monkeypatch):
    """The sweep and the equal-Σηt control, run with a recording trainer: the plan's stages are
    exactly the calls (model, input, batch, members, steps), and each runs every step asked for."""
    cfg = validate(lu.Config, TINY)
    tp = experiment.train_population
    calls: list = []
    ran: list = []

    def train_population(model, members, train, test, tcfg, **kw):
        calls.append((type(model).__name__, tuple(train[0].input_shape), tcfg.batch_size, len(members), tcfg.steps))
        res = tp(model, members, train, test, tcfg, **kw)
        ran.append((tcfg.steps, int(res.records.step.max())))
        return res

    monkeypatch.setattr(experiment, "train_population", train_population)
    for job in lu.jobs(cfg):
        calls.clear()
        lu.run_job(cfg, job, JobContext())
        plan = [(type(s.model).__name__, tuple(s.input_shape), s.batch, s.members, s.steps)
                for s in lu.job_stages(cfg, job)]
        assert Counter(plan) == Counter(calls), job.key
        assert not any(s.capped for s in lu.job_stages(cfg, job))
    assert all(asked == last for asked, last in ran)
    assert len(ran) == 2  # the sweep and the control


def test_plan_of_the_paper_scale_has_every_job(monkeypatch):
    """plan_claim(paper): a row for every job with positive TFLOP (step timing stubbed)."""
    monkeypatch.setattr(lrlab.plan, "measure_step", lambda *a, **k: 1.0)
    table = driver.plan_claim(lu.NAME, "paper")
    cfg = driver.load_claim_config(lu.NAME, "paper")
    assert list(table.job) == [j.key for j in lu.jobs(cfg)] == ["sweep", "control"]
    assert (table.tflop > 0).all()
    s = cfg.claim
    sweep, control = table.set_index("job").loc["sweep"], table.set_index("job").loc["control"]
    assert sweep.members == len(s.grid) * len(cfg.execution.seeds) and sweep.steps == s.steps
    assert control.members == len(cfg.execution.seeds) and control.steps == round(s.steps * s.large / s.small)
