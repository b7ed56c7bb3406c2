"""Effect sizes over seeds, their 95% intervals, and the PASS / FAIL / INCONCLUSIVE rule.

This module imports nothing from lrlab, so every layer (claims, report, CLI) can use it.

The rule (README, "How verdicts are decided"). A verdict is one of three tests on the per-seed
effects, each oriented so that a positive effect is what the paper predicts:

* ``superiority`` (the paper predicts an effect of at least ``min_effect`` > 0): PASS when the
  95% t interval lies above 0 *and* its mean reaches ``min_effect``; FAIL when the interval lies
  wholly below ``min_effect`` (no effect that matters, or the opposite one);
* ``bound`` (the effect is already "threshold − measure", so 0 is the paper's boundary):
  PASS when the interval lies above 0, FAIL when it lies below 0;
* ``equivalence`` ("no effect / within tolerance", margin δ = ``min_effect`` > 0): PASS when
  the interval lies inside (−δ, δ), FAIL when it lies wholly outside it;

and INCONCLUSIVE otherwise. A non-finite per-seed value (±inf, NaN) is a failed seed: a
verdict with any failed seed cannot PASS, and one where more than half of the seeds failed
FAILs. Within a claim, :func:`holm` repeats every decision with Holm's step-down correction
over the claim's verdicts (``status_holm``), beside the raw ``status``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np
from scipy import stats as _st

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
TESTS = ("superiority", "bound", "equivalence")
LEVEL = 0.95
ALPHA = (1 - LEVEL) / 2  # one-sided level of each test: the 95% two-sided interval's edge


@dataclass(frozen=True)
class Interval:
    """Mean of per-seed effects with a two-sided t interval (level 0.95 by default)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = LEVEL


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Student-t interval for the mean of ``values`` (per-seed effects, e.g. paired differences).

    With one value the interval is unbounded; non-finite values are rejected (they are failed
    seeds, which :func:`verdict` counts before it builds the interval).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("need at least one value for an interval")
    if not np.isfinite(v).all():
        raise ValueError(f"interval over non-finite values: {v.tolist()}")
    m = float(v.mean())
    if v.size == 1:
        return Interval(m, -math.inf, math.inf, 1, level)
    se = float(v.std(ddof=1)) / math.sqrt(v.size)
    q = float(_st.t.ppf(0.5 + level / 2, v.size - 1))
    return Interval(m, m - q * se, m + q * se, int(v.size), level)


def p_above(values: Sequence[float], c: float) -> float:
    """One-sided t-test p-value against H0: mean ≤ c (small when the mean is clearly above c)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return 1.0
    m, se = float(v.mean()), float(v.std(ddof=1)) / math.sqrt(v.size)
    if se == 0:
        return 0.0 if m > c else 1.0
    return float(_st.t.sf((m - c) / se, v.size - 1))


def p_below(values: Sequence[float], c: float) -> float:
    """One-sided t-test p-value against H0: mean ≥ c."""
    return p_above(-np.asarray(values, dtype=np.float64), -c)


def _check(test: str, min_effect: float) -> None:
    if test not in TESTS:
        raise ValueError(f"test must be one of {list(TESTS)}, got {test!r}")
    if not math.isfinite(min_effect):
        raise ValueError(f"min_effect must be finite, got {min_effect}")
    if test == "bound" and min_effect != 0:
        raise ValueError(f"a bound test has its threshold inside the effect: min_effect must be 0, got {min_effect}")
    if test in ("superiority", "equivalence") and min_effect <= 0:
        what = "the smallest effect that matters" if test == "superiority" else "the equivalence margin"
        raise ValueError(f"a {test} test needs min_effect > 0 ({what}), got {min_effect}")


def p_values(values: Sequence[float], test: str, min_effect: float) -> tuple[float, float]:
    """(p_pass, p_fail): the one-sided p-values whose rejection at :data:`ALPHA` means PASS
    (interval side) and FAIL, for the finite per-seed ``values``."""
    _check(test, min_effect)
    if test == "equivalence":
        d = min_effect
        return max(p_above(values, -d), p_below(values, d)), min(p_above(values, d), p_below(values, -d))
    return p_above(values, 0.0), p_below(values, min_effect)


def decide(ci: Interval, min_effect: float, test: str = "superiority", failed: int = 0, n: int | None = None) -> str:
    """The status of an interval under ``test`` (module docstring); ``failed`` of ``n`` seeds
    were non-finite."""
    _check(test, min_effect)
    n = ci.n + failed if n is None else n
    if failed * 2 > n:
        return FAIL
    if ci.n == 0:
        return INCONCLUSIVE
    if test == "equivalence":
        d = min_effect
        if ci.low > -d and ci.high < d and not failed:
            return PASS
        return FAIL if ci.low > d or ci.high < -d else INCONCLUSIVE
    if ci.low > 0 and ci.mean >= min_effect and not failed:
        return PASS
    if ci.high < min_effect:
        return FAIL
    return INCONCLUSIVE


@dataclass
class Verdict:
    """One checked statement of a paper: the effect with its interval and the decision."""

    claim: str
    id: str
    statement: str
    effect: str
    interval: Interval
    min_effect: float
    status: str
    regime: str = "default"
    per_seed: list[float] = field(default_factory=list)
    notes: str = ""
    kind: str = "other"  # what the effect measures, e.g. "accuracy": figures select verdicts by it
    test: str = "superiority"
    failed_seeds: int = 0
    p_pass: float = 1.0
    p_fail: float = 1.0
    status_holm: str = ""  # set by :func:`holm` over the claim's verdicts
    control_of: str = ""  # the id of the comparison this verdict controls (equal Σηt, convergence), if any

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in asdict(self.interval).items()}
        d["per_seed"] = [x if math.isfinite(x) else None for x in self.per_seed]
        return d


def verdict(claim: str, id: str, statement: str, effect: str, values: Sequence[float],
            min_effect: float, regime: str = "default", notes: str = "", kind: str = "other",
            test: str = "superiority", control_of: str = "") -> Verdict:
    """The interval over the finite per-seed ``values``, the p-values and the decision, packed as
    a :class:`Verdict`; non-finite values are failed seeds (counted in the notes). ``control_of``
    names the comparison (a verdict id of the same claim and regime) this verdict is a control of."""
    _check(test, min_effect)
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError(f"verdict {id!r}: no per-seed values")
    ok = v[np.isfinite(v)]
    failed = int(v.size - ok.size)
    if failed:
        notes += f"{'; ' if notes else ''}{failed} of {v.size} seeds failed (non-finite effect)"
    ci = t_interval(ok) if ok.size else Interval(math.nan, -math.inf, math.inf, 0)
    p_pass, p_fail = p_values(ok, test, min_effect) if ok.size else (1.0, 1.0)
    status = decide(ci, min_effect, test, failed, int(v.size))
    return Verdict(claim, id, statement, effect, ci, min_effect, status, regime, [float(x) for x in v], notes,
                   kind, test, failed, p_pass, p_fail, "", control_of)


def with_controls(verdicts: Sequence[Verdict]) -> list[tuple[Verdict, bool]]:
    """The verdicts in reading order, each control right after the comparison it controls:
    (verdict, is_control) pairs. A control whose comparison is absent keeps its own place."""
    vs = list(verdicts)
    known = {(v.regime, v.id) for v in vs}
    placed = {id(v) for v in vs if v.control_of and (v.regime, v.control_of) in known}
    out: list[tuple[Verdict, bool]] = []
    for v in vs:
        if id(v) in placed:
            continue
        out.append((v, bool(v.control_of)))
        out += [(c, True) for c in vs if id(c) in placed and c.control_of == v.id and c.regime == v.regime]
    return out


def uncontrolled_passes(verdicts: Sequence[Verdict]) -> list[tuple[Verdict, list[Verdict]]]:
    """Comparisons that PASS (after Holm where set) while one of their controls does not."""
    out = []
    for v in verdicts:
        ctrl = [c for c in verdicts if c.control_of == v.id and c.regime == v.regime]
        bad = [c for c in ctrl if (c.status_holm or c.status) != PASS]
        if (v.status_holm or v.status) == PASS and bad:
            out.append((v, bad))
    return out


def holm_adjust(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(p, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def holm(verdicts: Sequence[Verdict], alpha: float = ALPHA) -> list[Verdict]:
    """The verdicts with ``status_holm``: each decision repeated with Holm-adjusted p-values over
    these verdicts (one claim), so that the chance of any false PASS (and of any false FAIL)
    stays at ``alpha`` per direction."""
    vs = list(verdicts)
    if not vs:
        return vs
    adj_pass = holm_adjust([v.p_pass for v in vs])
    adj_fail = holm_adjust([v.p_fail for v in vs])
    out = []
    for v, pp, pf in zip(vs, adj_pass, adj_fail):
        n = v.interval.n + v.failed_seeds
        if v.failed_seeds * 2 > n:
            status = FAIL
        elif pp < alpha and not v.failed_seeds and (v.test != "superiority" or v.interval.mean >= v.min_effect):
            status = PASS
        elif pf < alpha:
            status = FAIL
        else:
            status = INCONCLUSIVE
        out.append(replace(v, status_holm=status))
    return out


def verdict_from_dict(d: dict[str, Any]) -> Verdict:
    """The inverse of :meth:`Verdict.to_dict` (None interval bounds and seeds read back as ±inf/NaN)."""
    iv = dict(d["interval"])
    for k, fill in (("mean", math.nan), ("low", -math.inf), ("high", math.inf)):
        if iv.get(k) is None:
            iv[k] = fill
    seeds = [math.nan if x is None else x for x in d.get("per_seed", [])]
    return Verdict(**{**d, "interval": Interval(**iv), "per_seed": seeds})
