"""Learning-rate schedules: values, warm-up, tables and totals."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.config import ConstantSchedule, CosineSchedule, StepSchedule
from lrlab.train import Constant, Cosine, StepDecay, from_config, lr_table, total_lr
from lrlab.train.schedules import anneal_steps


def test_constant():
    s = Constant(0.3)
    assert [s(t) for t in (0, 1, 10, 10_000)] == [0.3] * 4


def test_step_decay_around_milestones():
    s = StepDecay(0.1, (10, 20), 0.5)
    assert s(0) == s(9) == pytest.approx(0.1)
    assert s(10) == s(19) == pytest.approx(0.05)  # the milestone step already uses the new rate
    assert s(20) == s(1000) == pytest.approx(0.025)
    assert anneal_steps(s) == (10, 20)
    assert StepDecay(0.1, [5], 0.1).milestones == (5,)  # lists become tuples (hashable)
    assert anneal_steps(Constant(0.1)) == ()


def test_cosine_endpoints_and_midpoint():
    s = Cosine(1.0, 10, final_lr=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.55)
    assert s(10) == pytest.approx(0.1)
    assert s(25) == pytest.approx(0.1)  # stays at final_lr afterwards
    vals = [s(t) for t in range(11)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_warmup_ramps_linearly_then_holds():
    s = Constant(0.4, warmup_steps=4)
    assert [s(t) for t in range(6)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])
    d = StepDecay(0.4, (2,), 0.5, warmup_steps=4)  # warm-up scales the decayed rate
    assert [d(t) for t in range(5)] == pytest.approx([0.1, 0.2, 0.15, 0.2, 0.2])


def test_lr_table_shape_and_values():
    schedules = [Constant(0.1), StepDecay(0.2, (3,), 0.1), Cosine(0.5, 4)]
    table = lr_table(schedules, 6)
    assert table.shape == (6, 3) and table.dtype == torch.float64
    for k, s in enumerate(schedules):
        assert table[:, k].tolist() == pytest.approx([s(t) for t in range(6)])


def test_total_lr():
    assert total_lr(Constant(0.1), 10) == pytest.approx(1.0)
    assert total_lr(StepDecay(0.1, (1000,), 0.04), 2000) == pytest.approx(104.0)
    assert total_lr(Constant(0.2, warmup_steps=4), 4) == pytest.approx(0.2 * (1 + 2 + 3 + 4) / 4)
    assert total_lr(Cosine(1.0, 8), 8) == pytest.approx(sum(Cosine(1.0, 8)(t) for t in range(8)))


@pytest.mark.parametrize("lr", [-0.1, 0.0, math.inf, math.nan, "0.1"])
def test_invalid_learning_rates_are_rejected(lr):
    for make in (lambda: Constant(lr), lambda: StepDecay(lr, (5,), 0.1), lambda: Cosine(lr, 10)):
        with pytest.raises(ValueError, match="learning rate"):
            make()


def test_invalid_schedule_shapes_are_rejected():
    with pytest.raises(ValueError, match="strictly increasing"):
        StepDecay(0.1, (20, 10), 0.1)
    with pytest.raises(ValueError, match="strictly increasing"):
        StepDecay(0.1, (10, 10), 0.1)
    with pytest.raises(ValueError, match="positive"):
        StepDecay(0.1, (0,), 0.1)
    with pytest.raises(ValueError, match="factor"):
        StepDecay(0.1, (10,), 0.0)
    with pytest.raises(ValueError, match="steps"):
        Cosine(0.1, 0)


def test_lr_table_rejects_negative_or_non_finite_rates():
    with pytest.raises(ValueError, match="member 1 .* -0.5 at step 3"):
        lr_table([Constant(0.1), lambda t: 0.1 if t < 3 else -0.5], 5)
    with pytest.raises(ValueError, match="member 0"):
        lr_table([lambda t: math.inf], 2)
    with pytest.raises(ValueError):
        lr_table([Cosine(0.1, 4, final_lr=-0.2)], 5)  # a negative final rate is caught here
    assert lr_table([lambda t: 0.0], 2).tolist() == [[0.0], [0.0]]  # zero is allowed


def test_from_config():
    assert from_config(ConstantSchedule(lr=0.1, warmup_steps=2), 50) == Constant(0.1, 2)
    assert from_config(StepSchedule(lr=0.1, milestones=[5, 9], factor=0.5), 50) == StepDecay(
        0.1, (5, 9), 0.5)
    assert from_config(CosineSchedule(lr=0.1), 50) == Cosine(0.1, 50)  # default: the run's steps
    assert from_config(CosineSchedule(lr=0.1, steps=7, final_lr=0.01), 50) == Cosine(0.1, 7, 0.01)
