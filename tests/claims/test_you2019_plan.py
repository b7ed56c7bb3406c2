"""you2019's plan (job_stages) against what its jobs really train, and its image-model option
(a tiny WideResNet in every part; the MLP default keeps the stored jobs' fingerprints)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from torch import nn

import lrlab.plan
import lrlab.transfer
from lrlab import driver
from lrlab.claims import you2019 as you
from lrlab.claims.protocol import JobContext
from lrlab.claims.you2019 import experiment
from lrlab.config import ConfigError, validate
from lrlab.models import FromModule, make_model
from lrlab.train import choose_mode
from tests.claims.test_you2019 import TINY

WRN = {"kind": "wide_resnet", "depth": 10, "width": 1, "dropout": 0.0}


def _with_model(raw: dict) -> dict:
    """TINY with the tiny WRN in every part instead of the MLP (PS10 as 3-channel 4×4 images, 100 of
    them for training to keep it fast)."""
    d = json.loads(json.dumps(raw))
    for part in you.PARTS:
        sec = d["claim"][part]
        sec.pop("width")
        sec["model"] = WRN
        if "data" in sec:
            sec["data"] = {**sec["data"], "channels": 3, "image_size": 4, "n_train": 100}
    return d


def _ident(model) -> tuple[str, int]:
    """A network's class and size (parameters and buffers of one member)."""
    if isinstance(model, FromModule):
        return _ident(model.factory())
    if isinstance(model, nn.Module):
        return type(model).__name__, sum(v.numel() for v in model.state_dict().values())
    return type(model).__name__, sum(v[0].numel() for v in model.init([0]).values())


def _record(monkeypatch, calls: list, ran: list) -> None:
    """Wrap every training entry point a you2019 job calls: record (network, input shape, batch,
    members, steps asked for), then run the real one."""
    tp, tws, ft = experiment.train_population, experiment.train_with_snapshots, lrlab.transfer.finetune

    def train_population(model, members, train, test, cfg, **kw):
        calls.append((_ident(model), tuple(train.input_shape), cfg.batch_size or len(train), len(members), cfg.steps))
        res = tp(model, members, train, test, cfg, **kw)
        ran.append((cfg.steps, int(res.records.step.max()), res.mode))
        return res

    def train_with_snapshots(net, x, y, *, lrs, epochs_per_stage, batch_size, **kw):
        steps = sum(epochs_per_stage) * math.ceil(len(x) / batch_size)
        calls.append((_ident(net), tuple(x.shape[1:]), batch_size, 1, steps))
        return tws(net, x, y, lrs=lrs, epochs_per_stage=epochs_per_stage, batch_size=batch_size, **kw)

    def finetune(model, x, y, x_test, y_test, num_classes, *, epochs, batch_size, **kw):
        net = lrlab.transfer.replace_head(model, num_classes)
        calls.append((_ident(net), tuple(x.shape[1:]), batch_size, 1, epochs * math.ceil(len(x) / batch_size)))
        return ft(model, x, y, x_test, y_test, num_classes, epochs=epochs, batch_size=batch_size, **kw)

    monkeypatch.setattr(experiment, "train_population", train_population)
    monkeypatch.setattr(experiment, "train_with_snapshots", train_with_snapshots)
    monkeypatch.setattr(lrlab.transfer, "finetune", finetune)


@pytest.mark.parametrize("image_model", [False, True], ids=["mlp", "wide_resnet"])
def test_stages_are_the_training_calls(image_model, monkeypatch, cifar_root):
    """Every part, run for one seed with recording trainers: the plan's stages are exactly the
    calls (network, input, batch, members, steps); nothing stops before the steps asked for."""
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    cfg = validate(you.Config, _with_model(TINY) if image_model else TINY)
    for job in [j for j in you.jobs(cfg) if j.params["seed"] == 0]:
        calls: list = []
        ran: list = []
        _record(monkeypatch, calls, ran)
        tables = you.run_job(cfg, job, JobContext())
        plan = [(_ident(s.model), tuple(s.input_shape), s.batch, s.members, s.steps)
                for s in you.job_stages(cfg, job)]
        assert Counter(plan) == Counter(calls), job.key
        assert not any(s.capped for s in you.job_stages(cfg, job))
        assert all(asked == last for asked, last, _ in ran), job.key  # AutoDecay included: never cut short
        assert all(np.isfinite(df.select_dtypes("number").to_numpy(dtype=float)).any() for df in tables.values())
        if image_model:  # every network trained is the WRN
            assert {c[0][0] for c in calls} == {"WideResNet"}, job.key


def test_plan_of_the_paper_scale_has_every_job(monkeypatch):
    """plan_claim(paper), two seeds: a row for every job, each with positive TFLOP (step timing
    stubbed: this checks the stages, not the machine)."""
    monkeypatch.setattr(lrlab.plan, "measure_step", lambda *a, **k: 1.0)
    table = driver.plan_claim(you.NAME, "paper", seeds=2)
    cfg = driver.load_claim_config(you.NAME, "paper", seeds=2)
    keys = [j.key for j in you.jobs(cfg)]
    assert set(table.job) == set(keys)
    assert (table.groupby("job").tflop.sum() > 0).all()
    assert not table.capped.any()


def test_paper_scale_networks_and_modes():
    """paper.yaml trains WideResNets on 3×32×32 inputs in every part; the trainer's cost model runs
    their populations one member at a time (loop) and a single member as it is."""
    cfg = driver.load_claim_config(you.NAME, "paper")
    s = cfg.claim
    for part in you.PARTS:
        assert getattr(s, part).model is not None and getattr(s, part).model.kind == "wide_resnet", part
    assert s.gdsgd.pool == s.transfer.pool == 1 and s.gdsgd.n_per_class == 5000
    for p in (s.patterns, s.noise, s.autodecay):
        assert experiment.ps10_shape(p.data) == (3, 32, 32)
    model = make_model(s.patterns.model, (3, 32, 32), 10)
    assert choose_mode(model, (3, 32, 32), s.patterns.batch_size, 4, "auto") == "loop"
    assert choose_mode(model, (3, 32, 32), s.patterns.batch_size, 1, "auto") == "vectorized"
    assert choose_mode(model, (3, 32, 32), 10 * s.gdsgd.n_per_class, 4, "auto") == "loop"


def test_model_is_left_out_of_the_fingerprint_when_none():
    """Jobs of an MLP config read no `model` key (stored quick jobs keep their fingerprints); a
    model enters the fingerprint of its own part only."""
    cfg = validate(you.Config, TINY)
    wrn = validate(you.Config, {**TINY, "claim": {**TINY["claim"], "gdsgd": _with_model(TINY)["claim"]["gdsgd"]}})
    for job in you.jobs(cfg):
        assert "model" not in driver.job_inputs(cfg, job)["claim"][job.part]
        same = driver.fingerprint(cfg, job) == driver.fingerprint(wrn, job)
        assert same == (job.part != "gdsgd"), job.key
    assert driver.job_inputs(wrn, you.jobs(wrn)[0])["claim"]["gdsgd"]["model"]["kind"] == "wide_resnet"


@pytest.mark.parametrize("part, change, message", [
    ("patterns", {"model": WRN}, "give exactly one of width"),
    ("gdsgd", {"width": None}, "give exactly one of width"),
    ("autodecay", {"width": None, "model": WRN}, "needs 3-channel PS10 images"),
])
def test_network_choice_errors(part, change, message):
    d = json.loads(json.dumps(TINY))
    d["claim"][part].update(change)
    with pytest.raises(ConfigError, match=message):
        validate(you.Config, d)
