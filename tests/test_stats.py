"""Effect intervals and the PASS / FAIL / INCONCLUSIVE rule."""

from __future__ import annotations

import json
import math

import pytest

from lrlab.stats import (
    ALPHA,
    FAIL,
    INCONCLUSIVE,
    PASS,
    Interval,
    decide,
    holm,
    holm_adjust,
    p_above,
    p_below,
    t_interval,
    uncontrolled_passes,
    verdict,
    verdict_from_dict,
    with_controls,
)

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
    with pytest.raises(ValueError, match="non-finite"):
        t_interval([0.1, float("nan"), 0.2])
    with pytest.raises(ValueError, match="non-finite"):
        t_interval([0.1, float("inf")])


def test_superiority_needs_the_effect_that_matters():
    assert decide(Interval(0.05, 0.01, 0.09, 5), 0.01) == PASS
    # above zero but wholly below min_effect: no effect that matters, never PASS
    assert decide(Interval(0.0011, 0.001, 0.0012, 5), 0.05) == FAIL
    # above zero, mean below min_effect, interval reaching it: undecided
    assert decide(Interval(0.03, 0.01, 0.06, 5), 0.05) == INCONCLUSIVE
    assert decide(Interval(0.0, -0.02, 0.005, 5), 0.01) == FAIL  # no effect
    assert decide(Interval(-0.3, -0.5, -0.1, 5), 0.01) == FAIL  # the opposite effect
    assert decide(Interval(0.01, -0.01, 0.03, 5), 0.01) == INCONCLUSIVE  # straddles
    assert decide(Interval(0.0, -math.inf, math.inf, 1), 0.01) == INCONCLUSIVE
    with pytest.raises(ValueError, match="min_effect > 0"):
        decide(Interval(0.0, -1.0, 1.0, 3), 0.0)


def test_bound_and_equivalence_tests():
    assert decide(Interval(0.2, 0.1, 0.3, 5), 0.0, "bound") == PASS
    assert decide(Interval(-0.2, -0.3, -0.1, 5), 0.0, "bound") == FAIL
    assert decide(Interval(0.0, -0.1, 0.1, 5), 0.0, "bound") == INCONCLUSIVE
    with pytest.raises(ValueError, match="min_effect must be 0"):
        decide(Interval(0.0, -0.1, 0.1, 5), 0.1, "bound")
    assert decide(Interval(0.0, -0.004, 0.004, 5), 0.005, "equivalence") == PASS  # inside ±margin
    assert decide(Interval(0.02, 0.01, 0.03, 5), 0.005, "equivalence") == FAIL  # wholly outside
    assert decide(Interval(-0.02, -0.03, -0.01, 5), 0.005, "equivalence") == FAIL
    assert decide(Interval(0.004, 0.0, 0.008, 5), 0.005, "equivalence") == INCONCLUSIVE
    with pytest.raises(ValueError, match="test must be one of"):
        decide(Interval(0.0, -0.1, 0.1, 5), 0.1, "two-sided")


def test_failed_seeds_are_failures_never_a_silent_inconclusive():
    inf = float("inf")
    every = verdict("c", "i", "s", "e", [-inf, -inf, -inf], 0.0, test="bound")
    assert every.status == FAIL and every.failed_seeds == 3 and "3 of 3 seeds failed" in every.notes
    most = verdict("c", "i", "s", "e", [0.5, float("nan"), -inf], 0.0, test="bound")
    assert most.status == FAIL  # more than half failed
    some = verdict("c", "i", "s", "e", [0.5, 0.6, 0.55, -inf], 0.0, test="bound")
    assert some.status == INCONCLUSIVE  # the finite seeds alone would PASS; a failed seed forbids it
    assert some.interval.n == 3 and some.per_seed[-1] == -inf
    assert verdict("c", "i", "s", "e", [0.5, 0.6, 0.55], 0.0, test="bound").status == PASS


def test_verdict_packs_everything():
    v = verdict("c", "a-overall", "stmt", "final x", [0.1, 0.12, 0.11], 0.01, regime="r", notes="n")
    assert (v.claim, v.id, v.statement, v.effect, v.regime, v.notes, v.test) == (
        "c", "a-overall", "stmt", "final x", "r", "n", "superiority")
    assert v.interval == t_interval([0.1, 0.12, 0.11])
    assert v.min_effect == 0.01 and v.status == PASS and v.p_pass < 0.025
    assert v.per_seed == [0.1, 0.12, 0.11] and all(type(x) is float for x in v.per_seed)
    assert verdict("c", "i", "s", "e", [-0.2, -0.1, -0.15], 0.01).status == FAIL
    assert verdict("c", "i", "s", "e", [-0.2, 0.3, 0.1], 0.01).status == INCONCLUSIVE


def test_p_values_agree_with_the_interval():
    vals = [0.1, 0.12, 0.11, 0.05]
    ci = t_interval(vals)
    for c in (ci.low - 1e-9, ci.low + 1e-9):
        assert (p_above(vals, c) < ALPHA) == (ci.low > c)
    for c in (ci.high - 1e-9, ci.high + 1e-9):
        assert (p_below(vals, c) < ALPHA) == (ci.high < c)


def test_holm_by_hand():
    assert holm_adjust([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.001]).tolist() == pytest.approx([0.5, 0.002])
    strong = verdict("c", "a", "s", "e", [1.0, 1.1, 0.9, 1.05], 0.0, test="bound")
    weak = verdict("c", "b", "s", "e", [0.3, 0.05, 0.25, 0.15], 0.0, test="bound")
    assert strong.status == weak.status == PASS and ALPHA / 2 < weak.p_pass < ALPHA
    # with one far stronger verdict, Holm's second step tests the weak one at the full level
    assert [v.status_holm for v in holm([strong, weak])] == [PASS, PASS]
    # two equally weak verdicts: the first step needs 2·p < α, which fails, so neither passes
    assert [v.status_holm for v in holm([weak, weak])] == [INCONCLUSIVE, INCONCLUSIVE]
    assert [v.status for v in holm([weak, weak])] == [PASS, PASS]  # the raw status stays beside it
    failing = verdict("c", "f", "s", "e", [-1.0, -1.1, -0.9, -1.05], 0.0, test="bound")
    assert holm([failing, weak])[0].status_holm == FAIL
    assert holm([]) == []


def test_verdict_to_dict_is_strict_json_and_reads_back():
    d = verdict("c", "i", "s", "e", [0.4], 0.01).to_dict()
    assert d["interval"] == {"mean": 0.4, "low": None, "high": None, "n": 1, "level": 0.95}
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["status"] == INCONCLUSIVE
    v = verdict("c", "i", "s", "e", [0.1, 0.2, float("-inf")], 0.05)
    d2 = json.loads(json.dumps(v.to_dict(), allow_nan=False))
    assert set(d2) >= {"claim", "id", "statement", "effect", "interval", "min_effect", "status", "status_holm",
                       "regime", "per_seed", "notes", "test", "failed_seeds", "p_pass", "p_fail", "kind"}
    assert d2["per_seed"] == [0.1, 0.2, None]
    back = verdict_from_dict(d2)
    assert back.interval == v.interval and back.status == v.status and math.isnan(back.per_seed[2])


def test_controls_sit_under_their_comparison_and_a_failing_control_is_named():
    """with_controls puts each control right after the comparison it controls (same regime);
    uncontrolled_passes lists a PASS whose control does not PASS."""
    def v(id_, values, regime="r", control_of=""):
        return verdict("c", id_, id_, "e", values, 0.01, regime=regime, control_of=control_of)

    big, null = [0.1, 0.11, 0.12], [0.0, 0.001, -0.001]
    vs = [v("b-gain", big), v("x-other", big), v("e-same-time", null, control_of="b-gain"),
          v("f-converged", big, control_of="b-gain"), v("g-orphan", big, control_of="missing"),
          v("b-gain", big, regime="s")]
    order = [(x.id, x.regime, c) for x, c in with_controls(vs)]
    assert order == [("b-gain", "r", False), ("e-same-time", "r", True), ("f-converged", "r", True),
                     ("x-other", "r", False), ("g-orphan", "r", True), ("b-gain", "s", False)]
    assert vs[2].status == FAIL and vs[3].status == PASS
    [(comp, bad)] = uncontrolled_passes(vs)
    assert (comp.id, comp.regime, [c.id for c in bad]) == ("b-gain", "r", ["e-same-time"])
    assert verdict_from_dict(vs[2].to_dict()).control_of == "b-gain"
    old = vs[0].to_dict()
    del old["control_of"]  # results written before controls were named read back as no control
    assert verdict_from_dict(old).control_of == ""
