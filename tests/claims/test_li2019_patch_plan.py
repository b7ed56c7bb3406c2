"""li2019-patch's plan (job_stages): the stages of every job (patched, clean, equal-Σηt) are the
trainer calls the job makes, and the shipped configs plan without the images or a GPU."""

from __future__ import annotations

from collections import Counter

import pytest

from lrlab import experiment, plan
from lrlab.claims import li2019_patch as patch
from lrlab.claims.protocol import JobContext
from lrlab.claims.runconfig_plan import CIFAR10_IMAGE, data_shape
from lrlab.config import validate
from lrlab.driver import load_claim_config, plan_claim
from lrlab.plan import measure_device
from tests.claims.test_li2019_patch import _claim
from tests.helpers import model_key, stage_key


@pytest.fixture
def trainer_calls(monkeypatch):
    """Every call of the population trainer as lrlab.experiment makes it (the real trainer runs)."""
    calls = []
    real = experiment.train_population

    def record(model, members, train, test, cfg, **kw):
        calls.append((len(members), cfg.batch_size or len(train), cfg.steps, tuple(train.input_shape),
                      model_key(model)))
        return real(model, members, train, test, cfg, **kw)

    monkeypatch.setattr(experiment, "train_population", record)
    return calls


def test_stages_are_the_trainer_calls(cifar_root, trainer_calls, tmp_path):
    raw = _claim(cifar_root, same_time_seeds=2)
    raw["regimes"]["tiny"]["data"]["n_per_class"] = 5  # 50 of the 60 images: 2 batches of 20, 10 left over
    raw["regimes"]["tiny"]["population"]["schedules"]["small"]["lr"] = 0.05  # a 3-epoch equal-Σηt control
    cfg = validate(patch.Config, raw)
    jobs = patch.jobs(cfg)
    assert Counter(j.part for j in jobs) == {"patch": 2, "clean": 2, "same-time": 2}
    planned = Counter()
    for job in jobs:
        stages = patch.job_stages(cfg, job)
        planned.update(stage_key(st) for st in stages)
        before = len(trainer_calls)
        patch.run_job(cfg, job, JobContext(workdir=tmp_path / job.key))
        assert Counter(trainer_calls[before:]) == Counter(stage_key(st) for st in stages), job.key
    assert planned == Counter(trainer_calls)
    by_part = {j.part: patch.job_stages(cfg, j)[0] for j in jobs}
    assert {p: (st.members, st.batch, st.steps) for p, st in by_part.items()} == {
        "patch": (3, 20, 2 * 2), "clean": (2, 20, 2 * 2), "same-time": (1, 20, 3 * 2)}


def test_cifar_shape_without_the_images(cifar_root):
    d = validate(patch.Config, _claim(cifar_root)).regimes["tiny"].data
    full = data_shape(d)  # no subset: all of CIFAR-10's training images
    assert (full.input_shape, full.n_train, full.out_dim) == (CIFAR10_IMAGE, 50_000, 10)
    sub = data_shape(d.model_copy(update={"n_per_class": 1000}))
    assert sub.n_train == 10_000


def test_quick_plan_measures_its_steps():
    table = plan_claim(patch.NAME, "quick")
    cfg = load_claim_config(patch.NAME, "quick")
    assert sorted(table.job) == sorted(j.key for j in patch.jobs(cfg))
    assert (table.tflop > 0).all() and (table.step_s > 0).all() and (table.batch == 128).all()
    per_epoch = 10_000 // 128
    assert set(zip(table.part, table.steps)) == {("patch", 30 * per_epoch), ("clean", 30 * per_epoch),
                                                 ("same-time", 390 * per_epoch)}


def test_paper_plan_has_every_job(monkeypatch):
    """WRN-16-10 on all 50k images for 60 epochs on cuda: one row per job, positive FLOPs, timed on
    the CPU when there is no GPU (the timing itself is stubbed: WRN-16-10 steps take minutes here)."""
    timed = []
    monkeypatch.setattr(plan, "measure_step", lambda model, shape, batch, device: timed.append(device) or 1.0)
    cfg = load_claim_config(patch.NAME, "paper", seeds=1)
    assert cfg.execution.device == "cuda"
    table = plan_claim(patch.NAME, "paper", seeds=1)
    assert sorted(table.job) == sorted(j.key for j in patch.jobs(cfg)) and len(table) == len(patch.jobs(cfg))
    assert (table.tflop > 0).all() and (table.gpus == 1).all()
    assert set(timed) == set(table.measured_on) == {measure_device("cuda")}
    per_epoch = 50_000 // 128
    assert set(zip(table.part, table.members, table.steps)) == {
        ("patch", 3, 60 * per_epoch), ("clean", 2, 60 * per_epoch),
        ("same-time", 1, patch.same_time_epochs(cfg.regimes["paper"], cfg.claim) * per_epoch)}
