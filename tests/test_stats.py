"""Effect intervals and the PASS / FAIL / INCONCLUSIVE rule."""

from __future__ import annotations

import json
import math

import pytest

from lrlab.stats import FAIL, INCONCLUSIVE, PASS, Interval, decide, t_interval, verdict

# two-sided 95% Student-t quantiles t_{0.975, df}, from tables
T975 = {1: 12.706204736174698, 3: 3.182446305284263, 4: 2.7764451051977987}


def test_t_interval_by_hand():
    values = [1.0, 2.0, 3.0, 4.0]
    mean = 2.5
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)  # sample sd, ddof = 1
    half = T975[3] * sd / math.sqrt(4)
    ci = t_interval(values)
    assert ci.mean == pytest.approx(mean) and ci.n == 4 and ci.level == 0.95
    assert ci.low == pytest.approx(mean - half, rel=1e-9)
    assert ci.high == pytest.approx(mean + half, rel=1e-9)
    assert half == pytest.approx(2.0543, abs=1e-4)


def test_t_interval_other_sizes():
    ci = t_interval([0.1, -0.05, 0.2, 0.15, 0.0])
    m = 0.08
    sd = math.sqrt(sum((v - m) ** 2 for v in [0.1, -0.05, 0.2, 0.15, 0.0]) / 4)
    assert ci.high - ci.mean == pytest.approx(T975[4] * sd / math.sqrt(5), rel=1e-9)
    two = t_interval([1.0, 3.0])
    assert two.high - two.mean == pytest.approx(T975[1] * math.sqrt(2) / math.sqrt(2), rel=1e-9)
    constant = t_interval([0.5, 0.5, 0.5])
    assert constant.low == constant.high == 0.5


def test_t_interval_edge_cases():
    one = t_interval([0.3])
    assert one.mean == 0.3 and one.low == -math.inf and one.high == math.inf and one.n == 1
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])
    with pytest.raises(ValueError, match="NaN"):
        t_interval([0.1, float("nan"), 0.2])


def test_decide_three_cases():
    assert decide(Interval(0.05, 0.01, 0.09, 5), 0.01) == PASS  # above zero
    assert decide(Interval(0.0, -0.02, 0.005, 5), 0.01) == FAIL  # below the effect that matters
    assert decide(Interval(-0.3, -0.5, -0.1, 5), 0.0) == FAIL  # the opposite effect
    assert decide(Interval(0.01, -0.01, 0.03, 5), 0.01) == INCONCLUSIVE  # straddles
    assert decide(Interval(0.0, -math.inf, math.inf, 1), 0.01) == INCONCLUSIVE
    assert decide(Interval(0.0, 0.0, 0.0, 3), 0.0) == INCONCLUSIVE  # low == 0 is not above 0
    with pytest.raises(ValueError, match="min_effect"):
        decide(Interval(0.0, -1.0, 1.0, 3), -0.1)


def test_verdict_packs_everything():
    v = verdict("c", "a-overall", "stmt", "final x", [0.1, 0.12, 0.11], 0.01, regime="r", notes="n")
    assert (v.claim, v.id, v.statement, v.effect, v.regime, v.notes) == (
        "c", "a-overall", "stmt", "final x", "r", "n")
    assert v.interval == t_interval([0.1, 0.12, 0.11])
    assert v.min_effect == 0.01 and v.status == PASS
    assert v.per_seed == [0.1, 0.12, 0.11] and all(type(x) is float for x in v.per_seed)
    assert verdict("c", "i", "s", "e", [-0.2, -0.1, -0.15], 0.01).status == FAIL
    assert verdict("c", "i", "s", "e", [-0.2, 0.3, 0.1], 0.01).status == INCONCLUSIVE
    with pytest.raises(ValueError, match="NaN"):
        verdict("c", "i", "s", "e", [0.1, float("nan")], 0.01)


def test_verdict_to_dict_is_strict_json():
    d = verdict("c", "i", "s", "e", [0.4], 0.01).to_dict()
    assert d["interval"] == {"mean": 0.4, "low": None, "high": None, "n": 1, "level": 0.95}
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["status"] == INCONCLUSIVE
    d2 = verdict("c", "i", "s", "e", [0.1, 0.2], 0.0).to_dict()
    assert set(d2) >= {"claim", "id", "statement", "effect", "interval", "min_effect", "status",
                       "regime", "per_seed", "notes"}
    assert d2["per_seed"] == [0.1, 0.2]


def test_verdict_defined_leaves_out_undefined_seeds():
    from lrlab.stats import INCONCLUSIVE, verdict_defined

    v = verdict_defined("c", "x", "s", "e", [0.5, float("nan"), 0.7], 0.0)
    assert v.per_seed == [0.5, 0.7] and "undefined on 1 of 3 seeds" in v.notes
    none = verdict_defined("c", "x", "s", "e", [float("nan")] * 2, 0.0)
    assert none.status == INCONCLUSIVE and none.per_seed == [] and none.interval.low == float("-inf")
