"""Figure of a :class:`lrlab.eos.SharpnessTrace`: loss and sharpness against 2/η."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..eos import SharpnessTrace
from .figures import save, subplots


def plot_sharpness(trace: SharpnessTrace, path: str | Path | None = None, title: str = "", *,
                   axes: Sequence[Axes] | None = None) -> Figure:
    """Two panels: training loss, and sharpness with each run's 2/η as a dotted line.

    Draws into ``axes`` (two Axes) when given, else into a new Figure; returns the Figure and
    saves it as PNG only when ``path`` is given.
    """
    if axes is None:
        fig, (a, b) = subplots(1, 2, figsize=(10, 3.6))
    else:
        a, b = axes
        fig = a.figure
    colors = matplotlib.colormaps["viridis"](np.linspace(0.1, 0.85, len(trace.etas)))
    for eta, col in zip(trace.etas, colors):
        lc = trace.loss[eta].to_numpy()
        a.plot(trace.loss.index, np.where(np.isfinite(lc), lc, np.nan), color=col, lw=1,
               label=f"η = {eta:.3g}")
        b.plot(trace.sharpness.index, trace.sharpness[eta].to_numpy(), color=col, lw=1.2)
        b.axhline(2 / eta, color=col, lw=0.8, ls=":")
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("training loss")
    a.legend(fontsize=8)
    b.set_xlabel("step")
    b.set_ylabel("sharpness (dotted: 2/η)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    if axes is None or title:
        fig.suptitle(title or "edge of stability: sharpness under full-batch GD", fontsize=10)
    if path is not None:
        save(fig, Path(path))
    return fig
