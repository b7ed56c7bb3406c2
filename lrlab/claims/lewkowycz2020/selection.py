"""(f): which grid point is a candidate of which phase, and the rate of each phase chosen on the
validation split.

The phase of a grid point is decided by the grid, before any run: lazy for η·λ0 < 2, catapult for
2 < η·λ0 ≤ ``catapult_max`` (the paper's phases are ranges of the rate), ``beyond`` above it. So
both phases have the same number of candidates on every seed, and the choice cannot be steered by
how a run is classified afterwards; the measured phase of each chosen run is reported beside it.
The job uses :func:`choose` to pick the rates of its controls and the judge uses it again on the
stored tables, so both see the same choice.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

EDGE = 2.0  # η·λ0 = 2, the edge of the lazy phase [paper]
CANDIDATES = ("lazy", "catapult")


def grid_phases(cs: Sequence[float], catapult_max: float) -> list[str]:
    """The phase each η·λ0 of a grid stands for: lazy, catapult or beyond (above ``catapult_max``)."""
    return ["lazy" if c < EDGE else "catapult" if c <= catapult_max else "beyond" for c in cs]


def check_balanced(cs: Sequence[float], catapult_max: float) -> None:
    """Reject a grid with a point at 2 or with unequal numbers of lazy and catapult candidates."""
    if any(c == EDGE for c in cs):
        raise ValueError(f"claim.real.grid must not contain η·λ0 = {EDGE:g} (the phase edge), got {list(cs)}")
    ph = grid_phases(cs, catapult_max)
    n_lazy, n_cat = ph.count("lazy"), ph.count("catapult")
    if n_lazy != n_cat or n_lazy == 0:
        raise ValueError(f"claim.real.grid needs as many lazy points (η·λ0 < {EDGE:g}) as catapult points "
                         f"({EDGE:g} < η·λ0 ≤ catapult_max = {catapult_max:g}), at least one each; got "
                         f"{n_lazy} and {n_cat} in {list(cs)}")


def choose(cs: Sequence[float], val_acc: Sequence[float], catapult_max: float) -> dict[str, int | None]:
    """Per phase, the position in the grid of the candidate with the highest final validation
    accuracy (the smaller η·λ0 on a tie); None when every candidate of the phase diverged (NaN)."""
    acc = np.asarray(val_acc, dtype=float)
    ph = grid_phases(cs, catapult_max)
    out: dict[str, int | None] = {}
    for phase in CANDIDATES:
        idx = [i for i, p in enumerate(ph) if p == phase and np.isfinite(acc[i])]
        out[phase] = max(idx, key=lambda i: (acc[i], -i)) if idx else None
    return out


def equal_sum_steps(steps: int, c_catapult: float, c_lazy: float) -> int:
    """The steps at which the lazy rate reaches the Σηt of ``steps`` steps at the catapult rate:
    steps · c_catapult / c_lazy, rounded to the nearest step (both rates share λ0)."""
    return int(round(steps * c_catapult / c_lazy))
