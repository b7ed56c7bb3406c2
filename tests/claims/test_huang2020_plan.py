"""huang2020's plan (``job_stages``): every job declares exactly the training calls it makes, and the
paper-scale plan covers every job without loading CIFAR-10."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

import lrlab.claims.huang2020.experiment as ex
from lrlab import driver
from lrlab.claims import huang2020 as hu
from lrlab.claims.protocol import JobContext
from lrlab.config import validate
from lrlab.models import FromModule
from lrlab.models.linear import DeepLinear
from lrlab.plan import Stage
from tests.claims.test_huang2020 import TINY

Call = tuple[int, int, int, str, tuple, bool]
"""(members, batch, steps, model class, one member's parameter shapes, capped)."""


def _shapes(params: dict[str, torch.Tensor]) -> tuple:
    return tuple(sorted((k, tuple(v.shape[1:])) for k, v in params.items()))


def _kind(model) -> str:
    return type(model.base).__name__ if isinstance(model, FromModule) else type(model).__name__


def _planned(st: Stage) -> Call:
    return (st.members, st.batch, st.steps, _kind(st.model), _shapes(st.model.init([0])), st.capped)


class _Recorder:
    """Wraps the claim's trainer entry points (phase_diagram, LinearGD) and records each training call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict] = []
        real_pd, real_init = ex.phase_diagram, ex.LinearGD.init
        real_select, real_step = ex.LinearGD.select, ex.LinearGD.gd_step

        def phase_diagram(factory, x, y, loss="squared", *, scaled_etas, steps, **kw):
            model = FromModule(factory)  # what phase_diagram hands the population trainer
            self.calls.append({"members": len(scaled_etas), "batch": int(x.shape[0]), "steps": steps,
                               "kind": _kind(model), "shapes": _shapes(model.init([0])), "capped": False})
            return real_pd(factory, x, y, loss, scaled_etas=scaled_etas, steps=steps, **kw)

        def init(d, width, depth, seeds, *a, **kw):
            gd = real_init(d, width, depth, seeds, *a, **kw)
            gd._plan_rec = self._closed_form(gd, len(seeds), capped=False)
            return gd

        def select(gd, members):
            new = real_select(gd, members)
            rec = gd._plan_rec
            new._plan_rec = rec if rec["capped"] else self._closed_form(new, len(members), capped=True)
            return new

        def gd_step(gd, x, y, lr):
            rec = gd._plan_rec
            rec["steps"] += 1
            rec["batch"] = int(x.shape[0])
            return real_step(gd, x, y, lr)

        monkeypatch.setattr(ex, "phase_diagram", phase_diagram)
        monkeypatch.setattr(ex.LinearGD, "init", init)
        monkeypatch.setattr(ex.LinearGD, "select", select)
        monkeypatch.setattr(ex.LinearGD, "gd_step", gd_step)

    def _closed_form(self, gd, members: int, capped: bool) -> dict:
        """A closed-form GD call: the grid from ``init``, the controls from its first ``select``."""
        rec = {"members": members, "batch": 0, "steps": 0, "kind": "LinearGDModel",
               "shapes": tuple(sorted((f"weights.{i}", tuple(w.shape[1:])) for i, w in enumerate(gd.weights))),
               "capped": capped}
        self.calls.append(rec)
        return rec

    def take(self) -> Counter:
        out = Counter(tuple(c[k] for k in ("members", "batch", "steps", "kind", "shapes", "capped"))
                      for c in self.calls)
        self.calls = []
        return out


def test_stages_are_the_training_calls_each_job_makes(cifar_root, monkeypatch):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    raw = json.loads(json.dumps(TINY))
    raw["claim"]["real"]["conv_gap"] = 1e-9  # no control converges: each runs to control_max_steps, the cap
    cfg = validate(hu.Config, raw)
    rec = _Recorder(monkeypatch)
    jobs = [j for j in hu.jobs(cfg) if j.params["seed"] == 0]  # seed 1 has no catapult run: no controls
    assert {j.part for j in jobs} == {"real", "degenerate", "gaussian", hu.DEPTH_PART}
    for job in jobs:
        hu.run_job(cfg, job, JobContext())
        assert rec.take() == Counter(_planned(st) for st in hu.job_stages(cfg, job)), job.key
    r = cfg.claim.real
    stages = hu.job_stages(cfg, jobs[0])
    assert [(st.members, st.steps, st.capped) for st in stages] == [(len(r.grid) + 1, r.steps, False),
                                                                     (3, r.control_max_steps - r.steps, True)]


def test_a_seed_without_the_annealed_control_plans_two_runs():
    raw = json.loads(json.dumps(TINY))
    raw["execution"]["seeds"] = [0, 1, 2]
    cfg = validate(hu.Config, raw)
    real = {j.params["seed"]: hu.job_stages(cfg, j)[-1].members for j in hu.jobs(cfg) if j.part == "real"}
    assert real == {0: 3, 1: 3, 2: 2}  # anneal_control_seeds = 2


def test_linear_gd_model_is_the_deep_linear_network():
    model = hu.LinearGDModel(7, 5, 3, examples=4)
    params = model.init([2, 3])
    x = torch.randn(2, 4, 7)
    want = FromModule(lambda: DeepLinear(7, 5, 3)).forward(params, x)
    torch.testing.assert_close(model.forward(params, x), want)
    gd = hu.LinearGD.init(7, 5, 3, [2, 3], dtype=torch.float32)
    assert all(torch.equal(w, params[f"weights.{i}"]) for i, w in enumerate(gd.weights))
    assert model.flops_per_example((7,)) == 2 * 7 + 2 * 5 * (7 + 5) // 4  # βᵀx, and β shared by 4 examples


def test_paper_plan_covers_every_job_without_the_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LRLAB_DATA", str(tmp_path / "nowhere"))  # the plan reads no CIFAR-10
    table = driver.plan_claim(hu.NAME, "paper", seeds=2)
    cfg = driver.load_claim_config(hu.NAME, "paper", seeds=2)
    jobs = hu.jobs(cfg)
    tflop = table.groupby("job").tflop.sum()
    assert set(tflop.index) == {j.key for j in jobs} and (tflop > 0).all()
    real = table[table.part == "real"]
    assert set(real.input) == {"3072"} and set(real.batch) == {2 * 4500}  # two full CIFAR-10 classes
    assert real.capped.sum() == len(cfg.execution.seeds)  # one capped control stage per seed
