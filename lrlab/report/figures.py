"""Figures (PNG): metric curves by group and schedule, verdict bars.

Figures are plain :class:`matplotlib.figure.Figure` objects, never pyplot's global state, so
lrlab leaves the user's matplotlib backend alone and figures can be drawn from worker threads.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..store import write_atomic

PHASE_COLORS = {"lazy": "#2a9d8f", "catapult": "#e9c46a", "divergent": "#e76f51"}
"""One palette for the lazy / catapult / divergent phases in every figure."""


def subplots(nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Figure, Any]:
    """A new Figure and its axes, like ``pyplot.subplots`` but without pyplot's global state."""
    fig = Figure(figsize=kw.pop("figsize", None))
    return fig, fig.subplots(nrows, ncols, **kw)


def save(fig: Figure, path: Path) -> Path:
    """Save a figure atomically as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    write_atomic(path, buf.getvalue())
    return path


def _mean_band(records: pd.DataFrame, members: Sequence[int], metric: str):
    sub = records[(records.metric == metric) & records.member.isin(list(members))]
    if sub.empty:
        return None
    piv = sub.pivot(index="step", columns="member", values="value")
    return piv.index.to_numpy(), piv.mean(axis=1).to_numpy(), piv.min(axis=1).to_numpy(), piv.max(axis=1).to_numpy()


def group_curves(panels: Sequence[tuple[str, pd.DataFrame, pd.DataFrame, str, Sequence[int]]],
                 groups: Sequence[str], path: Path, metric: str = "acc",
                 title: str = "") -> Path:
    """One panel per (title, records, members, schedule name, marks): train (dashed) and test
    (solid) ``metric`` per group, mean over seeds with a min–max band; vertical lines at
    ``marks`` (e.g. the anneal step)."""
    fig, axes = subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (ptitle, records, members, name, marks) in zip(axes[0], panels):
        mem = members[members.name == name].member.tolist()
        for gi, g in enumerate(groups):
            for split, ls in (("train", "--"), ("test", "-")):
                got = _mean_band(records, mem, f"{split}.{g}.{metric}")
                if got is None:
                    continue
                x, m, lo, hi = got
                ax.plot(x, m, ls, color=colors[gi % len(colors)], label=f"{g} ({split})")
                ax.fill_between(x, lo, hi, color=colors[gi % len(colors)], alpha=0.12, lw=0)
        for s in marks:
            ax.axvline(s, color="k", lw=0.8, ls=":")
            ax.text(s, 0.02, " anneal", transform=ax.get_xaxis_transform(), fontsize=8)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(metric)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=11)
    return save(fig, path)


def epoch_curves(panels: Sequence[tuple[str, pd.DataFrame, Sequence[int | tuple[int, str]]]],
                 series: Sequence[tuple[str, str]], path: Path, title: str = "",
                 ylabel: str = "accuracy") -> Path:
    """One panel per (title, long table with seed/epoch/metric/value, marks): each (metric,
    label) of ``series`` as its mean over seeds with a min–max band; dotted lines at ``marks``
    (an epoch, labelled 'anneal', or an (epoch, label) pair)."""
    fig, axes = subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), sharey=True,
                             squeeze=False)
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (ptitle, table, marks) in zip(axes[0], panels):
        for i, (metric, label) in enumerate(series):
            sub = table[table.metric == metric]
            if sub.empty:
                continue
            piv = sub.pivot_table(index="epoch", columns="seed", values="value")
            x = piv.index.to_numpy()
            ax.plot(x, piv.mean(axis=1).to_numpy(), color=colors[i % len(colors)], label=label)
            ax.fill_between(x, piv.min(axis=1).to_numpy(), piv.max(axis=1).to_numpy(),
                            color=colors[i % len(colors)], alpha=0.15, lw=0)
        for m in marks:
            at, label = m if isinstance(m, tuple) else (m, "anneal")
            ax.axvline(at, color="k", lw=0.8, ls=":")
            ax.text(at, 0.02, f" {label}", transform=ax.get_xaxis_transform(), fontsize=8)
        ax.set_title(ptitle, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=11)
    return save(fig, path)


def verdict_bars(rows: Sequence[tuple[str, float, float, float, str]], path: Path, title: str = "") -> Path:
    """Horizontal bars: effect mean with its 95% interval per verdict, coloured by status."""
    color = {"PASS": "#2a9d8f", "FAIL": "#e76f51", "INCONCLUSIVE": "#e9c46a"}
    fig, ax = subplots(figsize=(7, 0.45 * len(rows) + 1))
    for i, (_, mean, lo, hi, status) in enumerate(rows):
        lo_ = mean if not np.isfinite(lo) else lo
        hi_ = mean if not np.isfinite(hi) else hi
        ax.errorbar(mean, i, xerr=[[mean - lo_], [hi_ - mean]], fmt="o", color=color.get(status, "k"),
                    capsize=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("effect (mean, 95% interval)")
    if title:
        ax.set_title(title, fontsize=10)
    return save(fig, path)
