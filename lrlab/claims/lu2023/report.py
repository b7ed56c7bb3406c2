"""lu2023 report: the setup, the per-rate table and three figures, from the stored tables."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure

from ...report.figures import save, subplots
from ...stats import Verdict
from ..protocol import Tables
from .config import Config, lr_unit
from .judge import NAME, Run, _members, run_of, window_summary

PAPER = "Lu, Wu, Yang & Zou 2023 — benign oscillation of SGD with large learning rates"


def report(cfg: Config, tables: Tables, verdicts: list[Verdict], figdir: Path, rel: Path) -> str:
    """The report section: setup, the per-rate table, and the figures."""
    s, seeds = cfg.claim, cfg.execution.seeds
    d = s.data
    sw, ctrl = run_of(tables, "sweep"), run_of(tables, "control")
    w = window_summary(sw)
    lines = [f"## {NAME}: {PAPER}", "",
             f"Feature-noise data (docs/claims/lu2023.md): d = {d.d}, n = {d.n_train} training points, "
             f"‖u‖ = {d.strong_norm:g}, ‖v‖ = {d.weak_norm:g}, noise σ_p = {d.noise_std:g} (‖ξ‖ ≈ "
             f"{d.noise_std * math.sqrt(d.d - 2):.2f}), strong share ρ = {d.strong_frac:g}; ReLU² CNN with m = "
             f"{s.model.filters} filters per class, init σ0 = {s.model.init_std:g}; loss (y·f − 1)², SGD batch "
             f"{s.batch_size}, {s.steps} steps; seeds {seeds}. Rates are c·m/‖u‖² (large c = {s.large:g}, small "
             f"c = {s.small:g}); the paper's window is c ∈ [{s.window[0]:g}, {s.window[1]:g}].", "",
             "| c | weak-only test acc (seed mean) | 95% interval | diverged seeds |", "|---|---|---|---|"]
    for _, row in w.iterrows():
        lines.append(f"| {row.c:g} | {row.weak_acc:.4f} | [{row.low:.4f}, {row.high:.4f}] | "
                     f"{int(row.diverged)}/{int(row.seeds)} |")
    lines.append("")
    figs = ((margin_figure(cfg, sw), "margins", "y·f on strong points, large and small rate"),
            (alignment_figure(cfg, sw, ctrl), "alignment", "feature alignments and noise memorisation over steps"),
            (sweep_figure(cfg, sw), "sweep", "weak-only test accuracy against the learning rate"))
    for fig, name, alt in figs:
        f = save(fig, figdir / f"{NAME}-{name}.png")
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


def margin_figure(cfg: Config, sw: Run) -> Figure:
    """y·f on strong training points over SGD steps, large and small rate, first seed."""
    s = cfg.claim
    sd = cfg.execution.seeds[0]
    fig, axes = subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, c, title in ((axes[0], s.large, "large"), (axes[1], s.small, "small")):
        k = _members(sw, c, [sd])[0]
        for metric, lab, lw in (("yf.strong.first", "one strong point", 0.6),
                                ("yf.strong", "mean over strong points", 1.2)):
            col = sw.curves[metric][k]
            ax.plot(col.index, col.to_numpy(), lw=lw, label=lab)
        ax.axhspan(1 - s.delta, 1 + s.delta, color="0.85", zorder=0, label=f"|y·f − 1| < {s.delta:g}")
        ax.set_title(f"{title} rate c = {c:g}, seed {sd}", fontsize=9)
        ax.set_xlabel("SGD step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y·f on strong training points")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{NAME}: oscillation of strong points", fontsize=10)
    return fig


def alignment_figure(cfg: Config, sw: Run, ctrl: Run | None) -> Figure:
    """Weak/strong alignment and noise memorisation against Σ η_t (seed mean, min–max band)."""
    s, seeds = cfg.claim, cfg.execution.seeds
    runs = [(sw, s.large, "large", "C3", "-")]
    if ctrl is not None:
        runs.append((ctrl, s.small, "small, same Σηt", "C2", "-"))
    runs.append((sw, s.small, "small", "C0", "--"))  # last: drawn over its own control
    fig, axes = subplots(1, 3, figsize=(13, 3.4))
    for ax, metric, title in zip(axes, ("align.weak", "align.strong", "noise"),
                                 ("weak feature max_r⟨w, v⟩/‖v‖", "strong feature max_r⟨w, u⟩/‖u‖",
                                  "noise memorisation max_r⟨w, ξ_i⟩/‖ξ_i‖")):
        for r, c, lab, col, ls in runs:
            cur = r.curves[metric][_members(r, c, seeds)]
            t = cur.index.to_numpy() * (c * lr_unit(s))  # physical time Σ η_t
            ax.plot(t, cur.mean(axis=1).to_numpy(), color=col, lw=1.2, ls=ls, label=f"{lab} (c = {c:g})")
            ax.fill_between(t, cur.min(axis=1).to_numpy(), cur.max(axis=1).to_numpy(), color=col, alpha=0.15)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("Σ η_t")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{NAME}: what each rate learns (seed mean, band: min–max over seeds)", fontsize=10)
    return fig


def sweep_figure(cfg: Config, sw: Run) -> Figure:
    """Weak-only test accuracy against c: every seed, the seed mean and its interval, the window."""
    s = cfg.claim
    w, t = window_summary(sw), sw.finals
    fig, ax = subplots(figsize=(6.4, 3.6))
    ax.axvspan(*s.window, color="#e9c46a", alpha=0.3, label="paper's window")
    ax.scatter(t.c, t.weak_acc, s=8, color="0.5", label="one seed")
    ax.plot(w.c, w.weak_acc, color="C3", lw=1.4, marker="o", ms=3, label="seed mean (band: 95% interval)")
    ax.fill_between(w.c, w.low.clip(0, 1), w.high.clip(0, 1), color="C3", alpha=0.15)
    for _, row in w[w.diverged > 0].iterrows():
        ax.annotate(f"{int(row.diverged)}/{int(row.seeds)} diverged", (row.c, 0.42), rotation=90, fontsize=6,
                    ha="center", va="bottom")
    ax.set_ylim(0.4, 1.02)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate c = η·‖u‖²/m")
    ax.set_ylabel("weak-only test accuracy")
    ax.set_title(f"{NAME}: weak-only test accuracy against η", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
