"""huang2020 report: the setup, (e)'s width scaling, the (b, depth) and (d) tables and four figures, from the
stored tables."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...report.figures import PHASE_COLORS, save, subplots
from ...stats import Verdict
from ..protocol import Tables
from .config import Config
from .judge import NAME, chosen_of, controls_of, curves_of, depths_of, real_of, sweep_of, width_scaling

PAPER = "Huang, Du, Xu & Liu 2020 — deep linear networks in the large learning rate phase"
FLOAT32_FLOOR = 1e-7  # relative resolution of a float32 loss (the trajectory figure's floor above L*)


def _phase_of(row, rise_tol: float) -> str:
    if not np.isfinite(row.final_loss):
        return "divergent"
    return "catapult" if row.rise > rise_tol else "lazy"


def report(cfg: Config, tables: Tables, verdicts: list[Verdict], figdir: Path, rel: Path) -> str:
    """The report section: setup, (e)'s scaling, and the figures."""
    s, seeds = cfg.claim, cfg.execution.seeds
    g, gs, r = s.degenerate, s.gaussian, s.real
    w, ci = width_scaling(cfg, tables)
    lines = [f"## {NAME}: {PAPER}", "",
             f"Full-batch GD, logistic loss, deep linear networks in NTK parameterisation (depth {g.depth}, "
             f"width {g.width}), η = c/λ0 with λ0 the top NTK eigenvalue; seeds {seeds}. Degenerate data: "
             f"{g.n} examples in R^{g.d}; Gaussian data: {gs.n} examples in R^{gs.d} (margin {gs.margin} or "
             f"{gs.flip:.0%} flipped labels); CIFAR-10 classes {r.classes}, {r.n_per_class} images per class "
             f"pooled by {r.pool}. Catapult: the loss rises above its running minimum by more than "
             f"{s.rise_tol:g} (relative).", "",
             "(e) divergence boundary c_div (smallest η·λ0 that did not converge, p = "
             f"{g.ps[0]:g}) by width (seed mean): " + ", ".join(
                 f"{int(k)}: {v:.3g}" for k, v in w.groupby("width").c_div.mean().items())
             + (f"; log-log slope {ci.mean:.3f} [{ci.low:.3f}, {ci.high:.3f}]" if ci else "; slope undefined"), ""]
    lines += depth_table(cfg, tables)
    lines += real_table(cfg, tables)
    figs = [(trajectory_figure(cfg, tables), "trajectories", "loss and λ_t across η"),
            (flatness_figure(cfg, tables), "flatness", "final sharpness against η"),
            (real_figure(cfg, tables), "real-accuracy", "test accuracy against η and its controls"),
            (depth_figure(cfg, tables), "depth-boundary", "catapult onset against depth")]
    for fig, name, alt in figs:
        f = save(fig, figdir / f"{NAME}-{name}.png")
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


def depth_table(cfg: Config, tables: Tables) -> list[str]:
    """(b, depth): the measured onset c* / c_theory by depth (seed mean and range) and λ0 / L."""
    s = cfg.claim
    d = depths_of(cfg, tables)
    d["ratio"] = d.c_star / d.c_theory
    out = [f"(b, depth) catapult onset against depth (p = {s.degenerate.ps[0]:g}; c*: smallest η·λ0 that rose by "
           f"more than {s.rise_tol:g} and converged; prediction c*/c_theory = 1 at every depth, tolerance "
           f"{s.boundary_tol:g}):", "",
           "| depth L | c* / c_theory (mean) | min – max over seeds | seeds without onset | λ0 (mean) | λ0 / L |",
           "|---|---|---|---|---|---|"]
    for L, g in d.groupby("depth"):
        r = g.ratio[np.isfinite(g.ratio)]
        rng = f"{r.min():.3f} – {r.max():.3f}" if len(r) else "none"
        out.append(f"| {int(L)} | {r.mean():.3f} | {rng} | {int((~np.isfinite(g.ratio)).sum())} | "
                   f"{g.lam0.mean():.3g} | {g.lam0.mean() / L:.3g} |" if len(r) else
                   f"| {int(L)} | none | none | {len(g)} | {g.lam0.mean():.3g} | {g.lam0.mean() / L:.3g} |")
    return out + [""]


def depth_figure(cfg: Config, tables: Tables) -> Figure:
    """(b, depth): c*/c_theory per seed against depth with the ±boundary_tol band, and λ0 against depth."""
    s = cfg.claim
    d = depths_of(cfg, tables)
    d["ratio"] = d.c_star / d.c_theory
    fig, axes = subplots(1, 2, figsize=(10, 3.6))
    ax = axes[0]
    ax.axhspan(1 - s.boundary_tol, 1 + s.boundary_tol, color="0.9", label=f"±{s.boundary_tol:g} (tolerance)")
    ax.axhline(1, color="k", lw=0.8, ls=":", label="2/(p(1−p)) (every depth)")
    jit = np.linspace(-0.12, 0.12, max(len(cfg.execution.seeds), 2))
    for i, sd in enumerate(cfg.execution.seeds):
        g = d[d.seed == sd]
        ax.scatter(g.depth + jit[i], g.ratio, s=14, color=PHASE_COLORS["catapult"], alpha=0.7,
                   label="c* / c_theory per seed" if i == 0 else None)
    m = d.groupby("depth").ratio.mean()
    ax.plot(m.index, m.to_numpy(), color="#264653", marker="o", lw=1.2, label="seed mean")
    ax.set_xlabel("depth L")
    ax.set_ylabel("measured onset c* / 2/(p(1−p))")
    ax.set_xticks(sorted(s.degenerate.depths))
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.scatter(d.depth, d.lam0, s=14, color="0.4")
    ax.plot(sorted(s.degenerate.depths), sorted(s.degenerate.depths), color="k", lw=0.8, ls=":", label="λ0 = L·|x̂|²")
    ax.set_xlabel("depth L")
    ax.set_ylabel("λ0 (NTK at init)")
    ax.set_xticks(sorted(s.degenerate.depths))
    ax.legend(fontsize=7)
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (b, depth): catapult onset in units of η·λ0 against depth, p = {s.degenerate.ps[0]:g}",
                 fontsize=10)
    fig.subplots_adjust(wspace=0.3)
    return fig


def trajectory_figure(cfg: Config, tables: Tables) -> Figure:
    """Excess loss L_t − L* and η·κ·λ_t (κ = p(1−p), the loss curvature at the minimum; 1 on
    separable data, where λ_t/λ0 is drawn) for a spread of η, first seed, first 150 steps."""
    s = cfg.claim
    sd = cfg.execution.seeds[0]
    panels = [("separable (degenerate)", "separable", False)] + [
        (f"non-separable, p = {p:g}", f"p={p:g}", True) for p in s.degenerate.ps]
    fig, axes = subplots(2, len(panels), figsize=(4.2 * len(panels), 6.2), squeeze=False)
    for j, (title, name, ns) in enumerate(panels):
        r = sweep_of(tables, sd, name)
        loss, lam_curves = curves_of(tables, "loss", sd, name), curves_of(tables, "lam", sd, name)
        tab = r.table
        best = r.best_loss if ns else 0.0
        kappa = r.p_real * (1 - r.p_real) if ns else None
        pick = tab.iloc[np.unique(np.linspace(0, len(tab) - 1, 7).round().astype(int))]
        top = float(loss.iloc[0].max() - best) * 1e2
        for _, row in pick.iterrows():
            col = PHASE_COLORS[_phase_of(row, s.rise_tol)]
            L = loss[row.eta].to_numpy() - best
            # below ~1e-7·L* the float32 loss is rounding noise: draw it at that floor
            floor = FLOAT32_FLOOR * best if ns else 1e-30
            L = np.where(np.isfinite(L) & (L < top), np.maximum(L, floor), np.nan)
            axes[0][j].plot(loss.index, L, lw=1, color=col, label=f"η·λ0 = {row.eta_lam0:.3g}")
            if lam_curves is not None:
                lam = lam_curves[row.eta]
                y = row.eta * kappa * lam if kappa else lam / r.lam0
                axes[1][j].plot(lam.index, y.to_numpy(), lw=1, color=col)
        axes[0][j].set_yscale("log")
        axes[0][j].set_title(title, fontsize=9)
        axes[0][j].set_ylabel("L_t − L*" if ns else "L_t")
        axes[0][j].legend(fontsize=6)
        axes[1][j].set_ylabel("η·p(1−p)·λ_t" if kappa else "λ_t / λ0")
        if kappa:
            axes[1][j].axhline(2, color="k", lw=0.7, ls=":")
        for ax in axes[:, j]:
            ax.set_xlim(0, 150)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME}: loss and curvature trajectories (colour: lazy / catapult / divergent), seed {sd}",
                 fontsize=10)
    fig.subplots_adjust(wspace=0.35)
    return fig


def flatness_figure(cfg: Config, tables: Tables) -> Figure:
    """η·p(1−p)·λ_T and the final top Hessian eigenvalue against η·λ0, every seed and sweep."""
    s, seeds = cfg.claim, cfg.execution.seeds
    fig, axes = subplots(1, 3, figsize=(14, 3.6))
    marks = dict(zip(s.degenerate.ps, "o^sD"))
    for sd in seeds:
        for p in s.degenerate.ps:
            r = sweep_of(tables, sd, f"p={p:g}")
            tab = r.table
            cols = [PHASE_COLORS[_phase_of(row, s.rise_tol)] for _, row in tab.iterrows()]
            axes[0].scatter(tab.eta_lam0, tab.eta * r.p_real * (1 - r.p_real) * tab.lam_final, s=8, c=cols,
                            marker=marks[p], label=f"p = {p:g}" if sd == seeds[0] else None)
            axes[0].axvline(r.theory, color="0.5", lw=0.6, ls=":")
            axes[1].scatter(tab.eta_lam0, tab.hessian_final, s=8, c=cols, marker=marks[p],
                            label=f"p = {p:g}" if sd == seeds[0] else None)
        tab = sweep_of(tables, sd, "gaussian-nonseparable").table
        axes[2].scatter(tab.eta_lam0, tab.hessian_final, s=8, c=[PHASE_COLORS[_phase_of(row, s.rise_tol)]
                                                                 for _, row in tab.iterrows()])
    axes[0].axhline(2, color="k", lw=0.8, ls=":")
    axes[0].set_ylabel("η·p(1−p)·λ_T (NTK)")
    axes[0].set_title("degenerate non-separable (dotted: 2/(p(1−p)))", fontsize=9)
    axes[1].set_ylabel("final top Hessian eigenvalue")
    axes[1].set_title("degenerate non-separable: flatness", fontsize=9)
    axes[2].set_ylabel("final top Hessian eigenvalue")
    axes[2].set_title(f"Gaussian data, {s.gaussian.flip:.0%} flipped labels", fontsize=9)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("η·λ0")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].set_yscale("log")
    axes[2].set_yscale("log")
    fig.suptitle(f"{NAME}: the catapult lowers the final curvature (colour: lazy / catapult / divergent)",
                 fontsize=10)
    fig.subplots_adjust(wspace=0.3)
    return fig


def _control_acc(ctrl: pd.DataFrame, name: str) -> float:
    """Test accuracy of control ``name`` when it met its target (NaN otherwise)."""
    r = ctrl[(ctrl.control == name) & ctrl.met.astype(bool)]
    return float(r.test_acc.iloc[0]) if len(r) else np.nan


def real_figure(cfg: Config, tables: Tables) -> Figure:
    """(d): left, final test accuracy against η·λ0 per seed (colour: measured phase; ringed: the balanced
    candidates; black edge: the validation choice), the annealed run and the median phase edges; right, test
    accuracy of the chosen runs at ``steps``, at equal Σηt and at convergence, one line per seed."""
    s, seeds = cfg.claim, cfg.execution.seeds
    fig, axes = subplots(1, 2, figsize=(12, 3.8))
    ax = axes[0]
    onsets, divs = [], []
    for sd in seeds:
        t = real_of(tables, sd)
        const = t[t.name != "anneal"]
        ax.plot(const.c, const.test_acc, color="0.75", lw=0.8, zorder=1)
        cols = [PHASE_COLORS.get(ph, "0.5") for ph in const.phase]
        ax.scatter(const.c, const.test_acc, s=18, zorder=2, c=cols,
                   edgecolors=["k" if ch else ("0.3" if cd else "none")
                               for ch, cd in zip(const.chosen, const.candidate)],
                   linewidths=[1.4 if ch else 0.5 for ch in const.chosen])
        a = t[t.name == "anneal"]
        ax.scatter(a.c, a.test_acc, marker="*", s=60, color="#264653", zorder=3)
        cat = const[const.phase == "catapult"]
        onsets.append(float(cat.c.min()) if len(cat) else np.nan)
        dv = const[const.phase == "divergent"]
        divs.append(float(dv.c.min()) if len(dv) else np.nan)
    for vals, col, lab in ((onsets, PHASE_COLORS["catapult"], "catapult sets in"),
                           (divs, PHASE_COLORS["divergent"], "divergence sets in")):
        vals = [x for x in vals if np.isfinite(x)]
        if vals:
            ax.axvline(float(np.median(vals)), color=col, lw=1.2, ls="--",
                       label=f"{lab} (median over seeds: η·λ0 = {np.median(vals):g})")
    ax.scatter([], [], marker="*", color="#264653", label=f"large then annealed (to {s.real.anneal_to:g})")
    for ph in ("lazy", "catapult"):
        ax.scatter([], [], color=PHASE_COLORS[ph], label=ph)
    ax.scatter([], [], facecolors="none", edgecolors="k", linewidths=1.4, label="validation choice")
    ax.set_xscale("log")
    ax.set_xlabel("η·λ0")
    ax.set_ylabel(f"test accuracy after {s.real.steps} steps")
    ax.legend(fontsize=6)
    ax = axes[1]
    stages = ["equal steps", "equal Σηt", "converged"]
    series = {"lazy": ("lazy", PHASE_COLORS["lazy"]), "catapult": ("catapult", PHASE_COLORS["catapult"]),
              "anneal": ("anneal", "#264653")}
    for sd in seeds:
        t, ctrl = real_of(tables, sd), controls_of(tables, sd)
        lazy, cat = chosen_of(t, "lazy"), chosen_of(t, "catapult")
        ann = t[t.name == "anneal"]
        acc = partial(_control_acc, ctrl)
        ys = {"lazy": [lazy.test_acc if lazy is not None else np.nan, np.nan, acc("lazy-converged")],
              "catapult": [cat.test_acc if cat is not None else np.nan, np.nan, acc("catapult-converged")],
              "anneal": [float(ann.test_acc.iloc[0]) if len(ann) else np.nan, np.nan, acc("anneal-converged")]}
        for k, (lab, col) in series.items():
            ax.plot([0, 2], [ys[k][0], ys[k][2]], color=col, lw=0.6, alpha=0.5)
            ax.scatter([0, 2], [ys[k][0], ys[k][2]], color=col, s=14, label=lab if sd == seeds[0] else None)
        for name, mark in (("lazy-same-time-catapult", "^"), ("lazy-same-time-anneal", "v")):
            ax.scatter([1], [acc(name)], color=PHASE_COLORS["lazy"], marker=mark, s=22,
                       label=("lazy at the catapult run's Σηt" if mark == "^" else "lazy at the annealed run's Σηt")
                       if sd == seeds[0] else None)
    ax.set_xticks(range(3), stages)
    ax.set_ylabel("test accuracy (validation-chosen rates)")
    ax.set_title(f"controls: equal Σηt; converged = train loss within {s.real.conv_gap:g} of L*", fontsize=8)
    ax.legend(fontsize=6)
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (d): CIFAR-10 classes {s.real.classes}, deep linear net", fontsize=10)
    fig.subplots_adjust(wspace=0.3)
    return fig


def real_table(cfg: Config, tables: Tables) -> list[str]:
    """(d): per seed, the chosen rates, their validation and test accuracy, and the controls' steps."""
    out = ["(d) CIFAR-10: the best rate of each phase chosen on the validation split among k candidates per "
           "phase (the k grid points on each side of the seed's measured onset); the controls continue the chosen "
           f"runs (equal Σηt; converged: training loss within {cfg.claim.real.conv_gap:g} of L*, at most "
           f"{cfg.claim.real.control_max_steps} steps):", "",
           "| seed | k | lazy c (val / test) | catapult c (val / test) | anneal test | lazy at catapult's Σηt: steps "
           "(test) | lazy at anneal's Σηt: steps (test) | converged steps (test): lazy, catapult, anneal |",
           "|---|---|---|---|---|---|---|---|"]
    for sd in cfg.execution.seeds:
        t, ctrl = real_of(tables, sd), controls_of(tables, sd)
        lazy, cat = chosen_of(t, "lazy"), chosen_of(t, "catapult")
        ann = t[t.name == "anneal"]

        def run(x) -> str:
            return f"{x.c:g} ({x.val_acc:.3f} / {x.test_acc:.3f})" if x is not None else "none"

        def ctl(name: str) -> str:
            r = ctrl[ctrl.control == name]
            if not len(r):
                return "—"
            r = r.iloc[0]
            return f"{int(r.step)} ({r.test_acc:.3f})" if bool(r.met) else f"not within the cap (gap {r.gap:.3g})"

        conv = ", ".join(ctl(f"{k}-converged") for k in ("lazy", "catapult", "anneal"))
        out.append(f"| {sd} | {int(t.candidate.astype(bool).sum()) // 2} | {run(lazy)} | {run(cat)} | "
                   f"{float(ann.test_acc.iloc[0]) if len(ann) else float('nan'):.3f} | "
                   f"{ctl('lazy-same-time-catapult')} | {ctl('lazy-same-time-anneal')} | {conv} |")
    return out + [""]
