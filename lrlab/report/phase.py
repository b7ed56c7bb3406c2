"""Figure of a :class:`lrlab.phase.PhaseDiagram`: loss curves by phase and the curvature at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..phase import PhaseDiagram
from .figures import PHASE_COLORS, save, subplots


def plot_phase_diagram(pd_: PhaseDiagram, path: str | Path | None = None, title: str = "", *,
                       axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels: loss curves coloured by phase; η·λ_T against η·λ0 with the η·λ = 2 line.

    Draws into ``axes`` (two Axes) when given, else into a new Figure; returns the Figure and
    saves it as PNG only when ``path`` is given.
    """
    if axes is None:
        fig, (a, b) = subplots(1, 2, figsize=(10, 3.8))
    else:
        a, b = axes
        fig = a.figure
    for eta, ph in zip(pd_.etas, pd_.phases):
        c = pd_.loss[eta].to_numpy()
        a.plot(pd_.loss.index, np.where(np.isfinite(c), c, np.nan), color=PHASE_COLORS[ph], lw=1)
    for ph, col in PHASE_COLORS.items():
        a.plot([], [], color=col, label=ph)
    a.set_yscale("log")
    start = float(np.nanmax(pd_.loss.iloc[0].to_numpy()))
    a.set_ylim(top=max(start, 1e-12) * 1e3)  # divergent runs leave the plot instead of flattening it
    a.set_xlabel("step")
    a.set_ylabel("training loss")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    x = pd_.etas * pd_.lam0
    yl = pd_.etas * pd_.lam_final
    ok = np.isfinite(yl)
    b.scatter(x[ok], yl[ok], c=[PHASE_COLORS[p] for p, o in zip(pd_.phases, ok) if o], zorder=3)
    if (~ok).any():  # diverged: no final curvature; marked along the top
        top = float(np.nanmax(np.concatenate([yl[ok], x]))) * 1.5
        b.scatter(x[~ok], np.full((~ok).sum(), top), marker="x", color=PHASE_COLORS["divergent"], zorder=3,
                  label="diverged")
    b.plot(x, x, color="0.6", lw=0.8, ls="--", label="η·λ0 (λ unchanged)")
    b.axhline(2, color="k", lw=0.8, ls=":", label="η·λ = 2")
    for v, label in ((2, "2/λ0"), (4, "4/λ0")):
        b.axvline(v, color="0.4", lw=0.6, ls=":")
        b.text(v, 0.02, f" {label}", transform=b.get_xaxis_transform(), fontsize=8)
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("η·λ0")
    b.set_ylabel("η·λ_T (end of training)")
    b.legend(fontsize=7, loc="upper left")
    b.grid(alpha=0.3)
    if axes is None or title:
        rec = f"; largest converged η = {pd_.recommended_lr:.4g}" if pd_.recommended_lr else ""
        fig.suptitle(title or f"phase diagram: λ0 = {pd_.lam0:.4g} ({pd_.curvature}){rec}", fontsize=10)
    if path is not None:
        save(fig, Path(path))
    return fig
