"""Effect sizes over seeds, their 95% intervals, and the PASS / FAIL / INCONCLUSIVE rule.

This module imports nothing from lrlab, so every layer (claims, report, CLI) can use it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from scipy import stats as _st

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


@dataclass(frozen=True)
class Interval:
    """Mean of per-seed effects with a two-sided t interval (level 0.95 by default)."""

    mean: float
    low: float
    high: float
    n: int
    level: float = 0.95


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Student-t interval for the mean of ``values`` (per-seed effects, e.g. paired differences).

    With one value the interval is unbounded; NaN values are rejected (decide censoring first).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("need at least one value for an interval")
    if np.isnan(v).any():
        raise ValueError(f"interval over values containing NaN: {v.tolist()}")
    m = float(v.mean())
    if v.size == 1:
        return Interval(m, -math.inf, math.inf, 1, level)
    se = float(v.std(ddof=1)) / math.sqrt(v.size)
    q = float(_st.t.ppf(0.5 + level / 2, v.size - 1))
    return Interval(m, m - q * se, m + q * se, int(v.size), level)


def decide(ci: Interval, min_effect: float) -> str:
    """PASS if the interval lies above 0; FAIL if it lies below ``min_effect`` (the smallest
    effect that would matter — so 'no effect' and 'the opposite effect' both fail);
    INCONCLUSIVE otherwise."""
    if min_effect < 0:
        raise ValueError(f"min_effect must be >= 0, got {min_effect}")
    if ci.low > 0:
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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["interval"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in asdict(self.interval).items()}
        return d


def verdict(claim: str, id: str, statement: str, effect: str, values: Sequence[float],
            min_effect: float, regime: str = "default", notes: str = "", kind: str = "other") -> Verdict:
    """Interval over the per-seed ``values`` and the decision, packed as a :class:`Verdict`."""
    ci = t_interval(values)
    return Verdict(claim, id, statement, effect, ci, min_effect, decide(ci, min_effect), regime,
                   [float(x) for x in values], notes, kind)


def verdict_defined(claim: str, id: str, statement: str, effect: str, values: Sequence[float],
                    min_effect: float, regime: str = "default", notes: str = "",
                    kind: str = "other") -> Verdict:
    """:func:`verdict` over the seeds whose effect is defined (NaN values are left out and
    counted in the notes); INCONCLUSIVE with an unbounded interval when none is."""
    v = np.asarray(values, dtype=np.float64)
    undefined = int(np.isnan(v).sum())
    if undefined:
        notes += f"{'; ' if notes else ''}undefined on {undefined} of {v.size} seeds (left out)"
        v = v[~np.isnan(v)]
    if v.size == 0:
        return Verdict(claim, id, statement, effect, Interval(math.nan, -math.inf, math.inf, 0), min_effect,
                       INCONCLUSIVE, regime, [], notes, kind)
    return verdict(claim, id, statement, effect, v, min_effect, regime, notes, kind)


def verdict_from_dict(d: dict[str, Any]) -> Verdict:
    """The inverse of :meth:`Verdict.to_dict` (None interval bounds read back as ±inf)."""
    iv = dict(d["interval"])
    for k, fill in (("mean", math.nan), ("low", -math.inf), ("high", math.inf)):
        if iv.get(k) is None:
            iv[k] = fill
    return Verdict(**{**d, "interval": Interval(**iv)})
