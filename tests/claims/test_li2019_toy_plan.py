"""li2019-toy's plan (job_stages): the stages of every job are the trainer calls the job makes,
and the shipped configs plan without training."""

from __future__ import annotations

from collections import Counter

import pytest

from lrlab import experiment
from lrlab.claims import li2019_toy as toy
from lrlab.claims.protocol import JobContext
from lrlab.claims.runconfig_plan import data_shape, run_stages
from lrlab.config import FeatureNoiseConfig, PS10Config, validate
from lrlab.data import make_dataset
from lrlab.driver import load_claim_config, plan_claim
from lrlab.plan import measure_device
from tests.claims.test_li2019_toy import tiny_config
from tests.helpers import model_key, stage_key, tiny_run_cfg


@pytest.fixture
def trainer_calls(monkeypatch):
    """Every call of the population trainer as lrlab.experiment makes it (the real trainer runs)."""
    calls = []
    real = experiment.train_population

    def record(model, members, train, test, cfg, **kw):
        first = train[0] if isinstance(train, list) else train
        calls.append((len(members), cfg.batch_size or len(first), cfg.steps, tuple(first.input_shape),
                      model_key(model)))
        return real(model, members, train, test, cfg, **kw)

    monkeypatch.setattr(experiment, "train_population", record)
    return calls


def _tiny() -> dict:
    """test_li2019_toy's tiny config as a claim config (its verdict maps are the driver's)."""
    raw = tiny_config()
    raw.pop("maps", None)
    return raw


def _variant(batch: int | None) -> dict:
    raw = _tiny()
    for rc in raw["regimes"].values():
        rc["train"]["batch_size"] = batch
    return raw


@pytest.mark.parametrize("batch", [16, 24, None])  # 24: a last partial batch; None: full batch
def test_stages_are_the_trainer_calls(trainer_calls, tmp_path, batch):
    cfg = validate(toy.Config, _variant(batch))
    jobs = toy.jobs(cfg)
    assert {j.part for j in jobs} == {"main", "control"}
    planned = Counter()
    for job in jobs:
        stages = toy.job_stages(cfg, job)
        assert all(not st.capped for st in stages)
        planned.update(stage_key(st) for st in stages)
        before = len(trainer_calls)
        toy.run_job(cfg, job, JobContext(workdir=tmp_path / f"{batch}-{job.key}"))
        assert Counter(trainer_calls[before:]) == Counter(stage_key(st) for st in stages), job.key
    assert planned == Counter(trainer_calls)


def test_run_stages_counts_schedules_seeds_and_steps():
    rc = tiny_run_cfg()  # 2 schedules × 2 seeds, 20 steps of 16 out of 64 points in R^(2·5)
    (st,) = run_stages(rc)
    assert (st.members, st.batch, st.steps, st.input_shape) == (4, 16, 20, (10,))
    assert st.label == "large, small × 2 seeds" and not st.capped
    (full,) = run_stages(tiny_run_cfg(train={"batch_size": None}), "full")
    assert (full.label, full.batch, full.steps) == ("full", 64, 20)
    (ep,) = run_stages(tiny_run_cfg(train={"unit": "epoch", "steps": 3, "batch_size": 24, "eval_every": 1,
                                           "checkpoint_every": None}))
    assert ep.steps == 3 * (64 // 24)  # the last partial batch of an epoch is dropped
    auto = tiny_run_cfg(population={"schedules": {"auto": {"kind": "autodecay", "lr": 0.1}}})
    assert run_stages(auto)[0].capped  # AutoDecay may stop before train.steps
    with pytest.raises(ValueError, match="larger than the training set"):
        run_stages(tiny_run_cfg(train={"batch_size": 65}))


def test_data_shapes_match_the_drawn_data():
    for d in (tiny_run_cfg().data, PS10Config(n_train=40, n_test=20, image_size=4),
              FeatureNoiseConfig(d=6, n_train=8, n_test=4)):
        shape, train = data_shape(d), make_dataset(d, 0).train
        assert (shape.input_shape, shape.n_train) == (tuple(train.input_shape), len(train))
        assert shape.out_dim == (1 if train.task == "binary" else train.num_classes)


def test_control_stage_is_the_same_sum_control():
    cfg = validate(toy.Config, _tiny())
    for regime, rc in cfg.regimes.items():
        (ctrl,) = toy.job_stages(cfg, next(j for j in toy.jobs(cfg) if j.key == f"{regime}-control"))
        assert ctrl.steps == toy.control_config(rc, cfg.claim)[1]
        assert ctrl.members == len(cfg.execution.seeds) and ctrl.label == "small-same-sum-lr × 2 seeds"


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_shipped_configs_plan(scale):
    table = plan_claim(toy.NAME, scale)
    assert sorted(table.job) == sorted(j.key for j in toy.jobs(load_claim_config(toy.NAME, scale)))
    assert (table.tflop > 0).all() and (table.gpu_hours > 0).all()
    assert set(table.measured_on) == {measure_device("cpu")}

