"""AutoDecay: the rule's moving average, plateau test and actions; the torch scheduler; the
population schedule."""

from __future__ import annotations

import io
import json
import math
import warnings

import pytest
import torch

from lrlab.train.autodecay import AutoDecay, AutoDecayRule, AutoDecaySchedule
from lrlab.train.schedules import lr_table


def feed(rule, losses) -> list[str]:
    """Observe ``losses`` in turn (ending early at a stop); the actions returned."""
    actions = []
    for x in losses:
        actions.append(rule.observe(x))
        if rule.stopped:
            break
    return actions


def reference_g(losses: list[float], beta: float) -> list[float]:
    """ĝ(t) in closed form, Σ_s (1−β) β^(t−s) ℓ̂(s) / (1 − β^t), for one stage."""
    return [math.fsum((1 - beta) * beta ** (t - s) * losses[s - 1] for s in range(1, t + 1))
            / (1 - beta**t) for t in range(1, len(losses) + 1)]


def first_stable(losses: list[float], beta: float, window: int, tol: float) -> int | None:
    """The 1-based epoch at which the window first becomes stable (single stage, eps = 0)."""
    g = reference_g(losses, beta)
    for t in range(window, len(g) + 1):
        last = g[t - window:t]
        if (max(last) - min(last)) / min(last) < tol:
            return t
    return None


def run_stage(rule, high: float, low: float, limit: int = 500) -> tuple[str, int]:
    """One loss at ``high``, then ``low`` until the rule acts; (action, epochs used)."""
    for n, x in enumerate([high] + [low] * limit, start=1):
        action = rule.observe(x)
        if action != "continue":
            return action, n
    raise AssertionError("the rule never acted")


# --- the rule ---------------------------------------------------------------------------------

def test_bias_correction():
    rule = AutoDecayRule()
    rule.observe(2.0)
    assert rule.g == 2.0 and rule.g_start == 2.0 and rule.t == 1  # ĝ(1) = ℓ̂(1) exactly
    rule.observe(1.0)
    by_hand = (0.9 * (0.1 * 2.0) + 0.1 * 1.0) / (1 - 0.9**2)  # = 0.28 / 0.19
    assert rule.g == pytest.approx(by_hand, rel=1e-14)
    assert rule.g_start == 2.0 and rule.t == 2
    assert rule.history[1] == {"epoch": 2, "loss": 1.0, "g": rule.g, "action": "continue"}


def test_plateau_after_drop_decays_when_window_first_stable():
    losses = [4.0, 2.0] + [1.0] * 20
    rule = AutoDecayRule(beta=0.5, window=3, tol=0.02)
    # by hand: ĝ(8..10) = 1.0196, 1.0098, 1.0049 is the first window with range/min < 2%
    assert first_stable(losses, 0.5, 3, 0.02) == 10
    actions = feed(rule, losses[:10])
    assert actions == ["continue"] * 9 + ["decay"]
    assert [h["g"] for h in rule.history] == pytest.approx(reference_g(losses[:10], 0.5), rel=1e-12)
    assert rule.decays == 1 and rule.current_lr == pytest.approx(0.1)


def test_decay_resets_stage_then_flat_plateau_stops():
    rule = AutoDecayRule(beta=0.5, window=3, tol=0.02, stage_start="first")
    feed(rule, [4.0, 2.0] + [1.0] * 8)
    assert (rule.t, rule.f, rule.g_start, rule.recent) == (0, 0.0, None, [])
    assert rule.observe(0.7) == "continue"
    assert rule.g == 0.7 and rule.g_start == 0.7 and rule.t == 1  # bias correction restarted
    # a constant loss keeps ĝ constant in a fresh stage: stable after exactly W values, no drop
    assert feed(rule, [0.7, 0.7]) == ["continue", "stop"]
    assert rule.stopped and rule.decays == 1
    assert [h["epoch"] for h in rule.history][-3:] == [11, 12, 13]
    with pytest.raises(RuntimeError, match="already stopped"):
        rule.observe(0.7)


def test_plateau_start_counts_the_drop_a_decay_causes():
    """Default stage_start="plateau": ĝ(0) of a new stage is the plateau that triggered the decay."""
    rule = AutoDecayRule(beta=0.5, window=3, tol=0.02)
    feed(rule, [4.0, 2.0] + [1.0] * 8)
    plateau = rule.history[-1]["g"]
    assert rule.decays == 1 and (rule.t, rule.f, rule.recent) == (0, 0.0, []) and rule.g_start == plateau
    assert rule.observe(0.7) == "continue" and rule.g == 0.7 and rule.g_start == plateau
    # a flat stage well below the old plateau is a significant drop: it decays again ...
    assert feed(rule, [0.7, 0.7]) == ["continue", "decay"] and rule.g_start == pytest.approx(0.7)
    # ... and a flat stage at the same level is not: it stops
    assert feed(rule, [0.69] * 3) == ["continue", "continue", "stop"]
    with pytest.raises(ValueError, match=r"stage_start must be one of \['plateau', 'first'\], got 'x'"):
        AutoDecayRule(stage_start="x")


def test_flat_start_stops_without_drop():
    rule = AutoDecayRule()
    assert feed(rule, [1.3] * 5) == ["continue"] * 4 + ["stop"]
    assert rule.decays == 0 and rule.current_lr == 1.0


def test_drop_one_decays_on_any_plateau():
    rule = AutoDecayRule(drop=1.0)
    assert feed(rule, [1.3] * 5)[-1] == "decay"


def test_noise_below_tolerance_passes_above_delays():
    def stop_epoch(delta: float) -> int:
        rule = AutoDecayRule()
        losses = [1.0 + (delta if i % 2 == 0 else -delta) for i in range(200)]
        for epoch, x in enumerate(losses, start=1):
            if rule.observe(x) != "continue":
                assert rule.stopped
                assert epoch == first_stable(losses, 0.9, 5, 0.02)
                return epoch
        raise AssertionError("never stable")

    assert stop_epoch(0.0) == 5
    assert stop_epoch(0.005) == 5  # ±0.5% noise, smoothed further by the average
    assert stop_epoch(0.1) > 5  # ±10% noise keeps the window wide for a while


def test_max_decays():
    rule = AutoDecayRule(beta=0.5, window=3, max_decays=1)
    assert run_stage(rule, 4.0, 1.0)[0] == "decay"
    assert run_stage(rule, 0.8, 0.2)[0] == "stop"  # a real drop, but no decays left
    assert rule.decays == 1
    assert run_stage(AutoDecayRule(beta=0.5, window=3, max_decays=0), 4.0, 1.0)[0] == "stop"


def test_min_lr():
    rule = AutoDecayRule(beta=0.5, window=3, lr=1.0, factor=0.1, min_lr=0.05)
    assert run_stage(rule, 4.0, 1.0)[0] == "decay"
    assert run_stage(rule, 0.8, 0.2)[0] == "stop"  # 0.01 would go below min_lr
    assert rule.decays == 1 and rule.current_lr == pytest.approx(0.1)
    # 0.7 · 0.1 = 0.06999999999999999 in floats: landing on min_lr up to rounding is allowed
    rule = AutoDecayRule(beta=0.5, window=3, lr=0.7, factor=0.1, min_lr=0.07)
    assert run_stage(rule, 4.0, 1.0)[0] == "decay"
    assert run_stage(rule, 0.8, 0.2)[0] == "stop"


def test_non_finite_loss_rejected():
    rule = AutoDecayRule()
    with pytest.raises(ValueError, match="nan"):
        rule.observe(float("nan"))
    with pytest.raises(ValueError, match="inf"):
        rule.observe(float("inf"))
    assert rule.epoch == 0 and rule.history == []


@pytest.mark.parametrize("kwargs, message", [
    ({"beta": 1.0}, r"beta must be in \(0, 1\), got 1.0"),
    ({"beta": 0}, r"beta must be in \(0, 1\), got 0"),
    ({"window": 1}, r"window must be an integer >= 2, got 1"),
    ({"window": 3.0}, r"window must be an integer >= 2, got 3.0"),
    ({"tol": 0.0}, r"tol must be > 0, got 0.0"),
    ({"drop": 1.5}, r"drop \(zeta\) must be in \(0, 1\], got 1.5"),
    ({"drop": 0.0}, r"drop \(zeta\) must be in \(0, 1\], got 0.0"),
    ({"eps": -1e-8}, r"eps must be >= 0, got -1e-08"),
    ({"factor": 1.0}, r"factor must be in \(0, 1\), got 1.0"),
    ({"min_lr": -0.1}, r"min_lr must be >= 0, got -0.1"),
    ({"max_decays": -1}, r"max_decays must be None or an integer >= 0, got -1"),
    ({"lr": 0.0}, r"lr must be > 0, got 0.0"),
    ({"tol": float("nan")}, r"tol must be a finite number, got nan"),
])
def test_parameter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AutoDecayRule(**kwargs)
    if "lr" not in kwargs:
        with pytest.raises(ValueError, match=message):
            AutoDecaySchedule(0.1, **kwargs)


def test_rule_state_round_trip_and_key_checks():
    rule = AutoDecayRule(beta=0.5, window=3, max_decays=3)
    feed(rule, [4.0, 2.0] + [1.0] * 9)  # one decay, then one epoch into the next stage
    state = rule.state_dict()
    assert json.loads(json.dumps(state)) == state
    other = AutoDecayRule()
    other.load_state_dict(json.loads(json.dumps(state)))
    assert other == rule
    tail = [0.9, 0.5] + [0.3] * 30
    actions = feed(rule, tail)
    assert actions[-1] == "stop" and feed(other, tail) == actions and other == rule
    with pytest.raises(ValueError, match=r"missing keys \['decays'\]"):
        AutoDecayRule().load_state_dict({k: v for k, v in state.items() if k != "decays"})
    with pytest.raises(ValueError, match=r"unknown keys \['bogus'\]"):
        AutoDecayRule().load_state_dict({**state, "bogus": 1})


# --- the torch scheduler ----------------------------------------------------------------------

def make_optimizer() -> torch.optim.SGD:
    w, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.zeros(1))
    return torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=1.0)


def losses_two_stages() -> list[float]:
    return [4.0, 2.0] + [1.0] * 8 + [0.5, 0.2] + [0.1] * 30


def test_scheduler_decays_every_group_and_stops():
    opt = make_optimizer()
    sched = AutoDecay(opt, beta=0.5, window=3)
    assert sched.get_last_lr() == [1.0, 0.5] and sched.decays == 0  # construction is a no-op
    sched.step()  # no value: an epoch counter, nothing observed
    assert sched.last_epoch == 1 and sched.rule.epoch == 0 and sched.get_last_lr() == [1.0, 0.5]
    lrs = []
    for x in losses_two_stages():
        opt.step()
        sched.step(torch.tensor(x))  # 0-dim tensors are accepted
        lrs.append(sched.get_last_lr())
        if sched.should_stop:
            break
    actions = [h["action"] for h in sched.history]
    assert actions.count("decay") == 2 and actions[-1] == "stop" and sched.decays == 2
    assert actions[9] == "decay"  # as the rule alone (test above)
    assert lrs[9] == pytest.approx([0.1, 0.05])
    assert lrs[-1] == pytest.approx([0.01, 0.005])
    assert [g["lr"] for g in opt.param_groups] == lrs[-1]


def test_stepping_after_the_stop_warns_once_and_leaves_the_rate():
    opt = make_optimizer()
    sched = AutoDecay(opt, beta=0.5, window=3, max_decays=0)
    for x in [4.0, 2.0] + [1.0] * 8:
        sched.step(x)
    assert sched.should_stop and sched.get_last_lr() == [1.0, 0.5]
    epochs = len(sched.history)
    with pytest.warns(UserWarning, match=f"stopped training at epoch {epochs}"):
        sched.step(0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only the first late step warns
        sched.step(0.01)
        sched.step()
    assert sched.get_last_lr() == [1.0, 0.5] == [g["lr"] for g in opt.param_groups]
    assert len(sched.history) == epochs and sched.last_epoch == epochs + 3


def test_per_group_floors_stop_at_the_first_group_that_would_cross_its_own():
    losses = losses_two_stages()
    for floors, decays in [(1e-3, 2), ([0.005, 0.02], 1), ([0.05, 1e-4], 1), ([1e-4, 1e-4], 2)]:
        opt = make_optimizer()
        sched = AutoDecay(opt, beta=0.5, window=3, min_lr=floors)
        for x in losses:
            sched.step(x)
            if sched.should_stop:
                break
        assert sched.should_stop and sched.decays == decays, floors
        assert all(g["lr"] >= f for g, f in zip(opt.param_groups, sched.min_lrs))
    with pytest.raises(ValueError, match="min_lr has 3 values but the optimizer has 2 param groups"):
        AutoDecay(make_optimizer(), min_lr=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"min_lr must be >= 0, got -0.1"):
        AutoDecay(make_optimizer(), min_lr=[0.0, -0.1])


def test_mode_max_decays_after_a_rise_and_stops_on_a_flat_stage():
    accuracy = [0.2, 0.5] + [0.8] * 8 + [0.82, 0.84] + [0.84] * 30
    opt = make_optimizer()
    sched = AutoDecay(opt, beta=0.5, window=3, mode="max")
    for x in accuracy:
        sched.step(x)
        if sched.should_stop:
            break
    actions = [h["action"] for h in sched.history]
    # the first stage rose 4× (a significant change), the second only 1.05× < 1/0.9: stop
    assert actions.count("decay") == 1 and actions[-1] == "stop" and sched.decays == 1
    assert sched.get_last_lr() == pytest.approx([0.1, 0.05])
    # the same accuracies watched as a loss (mode="min") never drop: the first plateau stops
    rule = AutoDecayRule(beta=0.5, window=3)
    assert feed(rule, accuracy)[-1] == "stop" and rule.decays == 0
    with pytest.raises(ValueError, match=r"mode must be one of \['min', 'max'\], got 'maximum'"):
        AutoDecay(make_optimizer(), mode="maximum")
    with pytest.raises(ValueError, match=r"metric must be >= 0 .* got -0.5 at epoch 1"):
        AutoDecay(make_optimizer(), mode="max").step(-0.5)


def test_warm_up_in_sequential_lr_then_autodecay():
    """LinearLR warms up for 3 epochs; then AutoDecay, fed the losses, decays as it does alone."""
    opt = make_optimizer()
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=3)
    auto = AutoDecay(opt, beta=0.5, window=3)
    seq = torch.optim.lr_scheduler.SequentialLR(opt, [warm, auto], milestones=[3])
    seen = []
    for epoch, x in enumerate([9.0, 9.0, 9.0] + losses_two_stages()):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        seq.step()
        if epoch >= 3:
            auto.step(x)
        if auto.should_stop:
            break
    assert seen[0] == pytest.approx([0.25, 0.125]) and seen[3] == pytest.approx([1.0, 0.5])
    alone = AutoDecay(make_optimizer(), beta=0.5, window=3)
    for x in losses_two_stages():
        alone.step(x)
        if alone.should_stop:
            break
    assert auto.history == alone.history and auto.get_last_lr() == pytest.approx(alone.get_last_lr())


def test_scheduler_state_round_trip():
    losses = losses_two_stages()
    opt = make_optimizer()
    sched = AutoDecay(opt, beta=0.5, window=3, min_lr=1e-4)
    for x in losses[:13]:
        sched.step(x)
    state = sched.state_dict()
    assert json.loads(json.dumps(state)) == state  # plain values, no optimizer
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf)

    opt2 = make_optimizer()
    sched2 = AutoDecay(opt2, beta=0.5, window=3, min_lr=1e-4)
    sched2.load_state_dict(loaded)
    assert sched2.get_last_lr() == sched.get_last_lr() == [g["lr"] for g in opt2.param_groups]
    assert sched2.rule == sched.rule and sched2.last_epoch == sched.last_epoch == 13
    for x in losses[13:]:
        sched.step(x)
        sched2.step(x)
        assert sched2.history[-1] == sched.history[-1]
        assert sched2.get_last_lr() == sched.get_last_lr()
        if sched.should_stop:
            break
    assert sched2.should_stop and sched2.decays == 2
    with pytest.raises(ValueError, match="expected"):
        sched2.load_state_dict({"rule": state["rule"]})


# --- the population schedule ------------------------------------------------------------------

def test_schedule_follows_its_rule():
    s = AutoDecaySchedule(0.4, beta=0.5, window=3, factor=0.5)
    assert AutoDecaySchedule.adaptive is True
    assert s.lr == s.current_lr == s(0) == s(10_000) == 0.4
    assert lr_table([s], 3).tolist() == [[0.4]] * 3  # a table built before training: initial lr
    fresh = s.fresh()
    assert run_stage(s, 4.0, 1.0) == ("decay", first_stable([4.0] + [1.0] * 50, 0.5, 3, 0.02))
    assert s.current_lr == s(0) == pytest.approx(0.2) and s.lr == 0.4 and s.decays == 1
    assert fresh.current_lr == 0.4 and fresh.history == [] and not fresh.stopped  # independent
    assert repr(fresh) == repr(s) and repr(s).startswith("AutoDecaySchedule(lr=0.4, beta=0.5")
    assert s.fresh().history == [] and s.fresh().current_lr == 0.4

    restored = s.fresh()
    restored.load_state_dict(s.state_dict())
    assert restored.current_lr == s.current_lr and restored.history == s.history
    tail = [0.95] * 3  # a flat stage just below the plateau it started from: no significant drop
    assert feed(restored, tail) == feed(s, tail) == ["continue", "continue", "stop"]
    assert restored.stopped and s.stopped and restored.current_lr == s.current_lr
