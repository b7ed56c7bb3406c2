"""Adaptive (AutoDecay) members in the population trainer: decisions, LR table, stops, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lrlab.config import ConfigError, TrainConfig, validate
from lrlab.data import li2019_mixture
from lrlab.models import TwoLayerReLU
from lrlab.train import Constant, Member, from_config, train_population
from lrlab.train.autodecay import AutoDecayRule, AutoDecaySchedule
from tests.helpers import interrupt_at, tiny_data_cfg


class Stop(KeyboardInterrupt):
    pass


def _setup(steps=120, extra=()):
    split = li2019_mixture(tiny_data_cfg(), 0)
    model = TwoLayerReLU(10, 16)
    ad = AutoDecaySchedule(0.3, window=3, tol=0.05, drop=0.95, factor=0.5, max_decays=2)
    members = [Member("auto", 0, ad), Member("auto", 1, ad), *extra]
    cfg = TrainConfig(steps=steps, batch_size=16, eval_every=4, momentum=0.9, checkpoint_every=8)
    return model, members, split.train, split.test, cfg


def test_decisions_follow_the_rule_and_rewrite_the_lr_table():
    args = _setup(extra=(Member("const", 0, Constant(0.1)),))
    res = train_population(*args)
    spe = len(args[2]) // 16
    assert spe == 4
    lr = res.curve("lr")
    for k in (0, 1):
        d = res.decisions[k]
        assert list(d.epoch) == list(range(1, len(d) + 1))
        rule = AutoDecayRule(lr=0.3, window=3, tol=0.05, drop=0.95, factor=0.5, max_decays=2)
        assert [rule.observe(x) for x in d.loss] == list(d.action)  # the same rule, replayed
        expect, rate = [], 0.3
        for epoch, action in zip(d.epoch, d.action):
            if action == "decay":
                rate *= 0.5
            elif action == "stop":
                rate = 0.0
            expect.append((epoch * spe, rate))
        for step, rate in expect:
            assert lr.loc[step, k] == pytest.approx(rate)
        stops = d.epoch[d.action == "stop"]
        assert res.members.stopped_step[k] == (int(stops.iloc[0]) * spe if len(stops) else -1)
        assert res.members.decays[k] == int((d.action == "decay").sum())
    assert 2 not in res.decisions and res.members.stopped_step[2] == -1  # constant member: untouched
    assert (lr[2] == 0.1).all() and res.records.step.max() == 120  # and it trains to the end


def test_a_stopped_member_is_frozen_and_an_all_stopped_population_ends_early():
    args = _setup(steps=400)
    res = train_population(*args, probes={"w": lambda m, p: p["W"].flatten(1).norm(dim=1)})
    stops = res.members.stopped_step.to_numpy()
    assert (stops > 0).all(), "both members should stop well inside 400 steps"
    assert res.records.step.max() == stops.max() < 400  # nothing left to train: the run ended
    w = res.curve("w")
    k = int(np.argmin(stops))
    after = w.loc[w.index >= stops[k], k]
    assert after.nunique() == 1  # lr 0 from the stop on: the weights no longer move


def test_resume_with_adaptive_members_equals_an_uninterrupted_run(tmp_path):
    args = _setup(extra=(Member("const", 0, Constant(0.1)),))
    full = train_population(*args)
    with pytest.raises(KeyboardInterrupt):
        train_population(*args, run_dir=tmp_path, progress=interrupt_at(50, Stop))
    resumed = train_population(*args, run_dir=tmp_path, resume=True)
    pd.testing.assert_frame_equal(full.records, resumed.records, check_exact=True)
    pd.testing.assert_frame_equal(full.members, resumed.members, check_exact=True)
    for k in full.decisions:
        pd.testing.assert_frame_equal(full.decisions[k], resumed.decisions[k], check_exact=True)
    for name in full.params:
        assert torch.equal(full.params[name], resumed.params[name])


def test_members_sharing_one_schedule_object_decide_independently():
    args = _setup()
    ad = args[1][0].schedule
    res = train_population(*args)
    assert ad.history == []  # the trainer works on copies
    assert not res.decisions[0].equals(res.decisions[1])  # different seeds, different losses


def test_autodecay_schedule_from_config():
    from lrlab.config import RunConfig
    from tests.helpers import tiny_run_dict

    d = tiny_run_dict()
    d["population"]["schedules"] = {"auto": {"kind": "autodecay", "lr": 0.2, "window": 4, "factor": 0.5}}
    cfg = validate(RunConfig, d)
    sch = from_config(cfg.population.schedules["auto"], 100)
    assert isinstance(sch, AutoDecaySchedule) and sch.lr == 0.2 and sch(0) == 0.2
    d["population"]["schedules"]["auto"]["window"] = 1
    with pytest.raises(ConfigError, match="window"):
        validate(RunConfig, d)
