"""lewkowycz2020 report: the setup, the measured boundary and maximal rates, and the figures,
drawn from the stored tables only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ...report import plot_phase_diagram, plot_sharpness
from ...report.figures import PHASE_COLORS, save, subplots
from ...stats import Verdict
from ..protocol import Tables
from .config import Config
from .judge import NAME, Measured, at, boundary, measured

PAPER = "Lewkowycz et al. 2020 — the catapult mechanism"


def report(cfg: Config, tables: Tables, verdicts: list[Verdict], figdir: Path, rel: Path) -> str:
    """The report section: setup, measured numbers and the paper's figures."""
    o = measured(tables)
    s, u = cfg.claim, cfg.claim.uv
    seeds = cfg.execution.seeds
    seed = seeds[0]
    pdg = o.uv[seed]
    lines = [f"## {NAME}: {PAPER}", "",
             f"Full-batch GD, squared loss, {u.m} random regression examples (x ~ N(0, I/{u.d}), "
             f"y ~ N(0, 1)) per seed, {len(seeds)} seeds. uv model width {u.width} "
             f"(docs/claims/{NAME}.md); ReLU nets in NTK parameterisation, width {s.relu.width}. λ0 = top "
             "eigenvalue of the empirical NTK at initialisation, normalised as the loss.", "",
             f"(f): CIFAR-10, {s.real.n_per_class} training images per class (a subset per seed), "
             f"{s.real.test_per_class} test images per class, images pooled by {s.real.pool} and "
             f"flattened, ReLU net of depth {s.real.depth} and width {s.real.width} (NTK "
             f"parameterisation), squared loss on one-hot targets, {s.real.steps} full-batch GD steps "
             f"at every η·λ0 of {s.real.grid}; seeds {cfg.real_seeds()}. Each run's phase is read off its "
             "loss curve.", "",
             f"Edge of stability: CIFAR-10, {s.eos.n_per_class} images per class, tanh MLP of depth "
             f"{s.eos.depth} and width {s.eos.width} (PyTorch's default initialisation), squared loss, "
             f"{s.eos.steps} full-batch GD steps at η = 2/(s·λ0) for s in {s.eos.stability} (λ0 = "
             f"sharpness at initialisation), sharpness by Lanczos every {s.eos.every} steps; seeds "
             f"{cfg.eos_seeds()}.", ""]
    traj = save(trajectory_figure(cfg, pdg), figdir / f"{NAME}-uv-trajectories.png")
    phase = save(plot_phase_diagram(pdg, title=f"{NAME}: uv model phase plot, seed {seed}"),
                 figdir / f"{NAME}-uv-phase.png")
    widths = save(width_figure(cfg, o), figdir / f"{NAME}-widths.png")
    relu = save(relu_figure(cfg, o), figdir / f"{NAME}-relu-max.png")
    r = o.relu
    bnd = [boundary(o.uv[sd]) for sd in seeds]
    lines += [f"Measured uv divergence boundary c* = {np.mean(bnd):.3f} (per seed "
              + ", ".join(f"{b:.2f}" for b in bnd) + "); ReLU maximal stable η·λ0 by depth: "
              + "; ".join(f"depth {d}: {r[r.depth == d].c_max.mean():.2f}" for d in s.relu.depths) + ".", ""]
    real = save(real_figure(cfg, o), figdir / f"{NAME}-real-accuracy.png")
    eos_seed = cfg.eos_seeds()[0]
    eos = [save(plot_sharpness(o.eos[eos_seed], title=f"{NAME}: edge of stability, CIFAR-10 tanh MLP, "
                               f"seed {eos_seed}"), figdir / f"{NAME}-eos-trace.png"),
           save(eos_ratio_figure(cfg, o), figdir / f"{NAME}-eos-ratio.png")]
    for f, alt in ((traj, "loss and λ_t trajectories"), (phase, "uv phase plot"),
                   (widths, "peak against width"), (relu, "ReLU maximal stable rate"),
                   (real, "test accuracy against η·λ0 on CIFAR-10"), *((f, "edge of stability") for f in eos)):
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


def trajectory_figure(cfg: Config, pdg) -> Figure:
    """Loss and λ_t over the first 100 steps of the uv sweep at the lazy, catapult and a divergent rate."""
    u = cfg.claim.uv
    fig, axes = subplots(1, 2, figsize=(10, 3.6))
    for c, col in ((u.lazy_c, "#2a9d8f"), (u.catapult_c, "#e9c46a"), (4.5, "#e76f51")):
        e = at(pdg, c)
        lc = pdg.loss[e].to_numpy()
        axes[0].plot(pdg.loss.index, np.where(np.isfinite(lc), lc, np.nan), color=col,
                     label=f"η·λ0 = {e * pdg.lam0:.2f}")
        lam = pdg.lam[e]
        axes[1].plot(lam.index, lam.to_numpy(), color=col)
        axes[1].axhline(2 / e, color=col, lw=0.7, ls=":")
    axes[0].set_yscale("log")
    axes[0].set_ylim(top=float(pdg.loss.iloc[0].max()) * 1e3)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("λ_t (top NTK eigenvalue); dotted: 2/η")
    for a in axes:
        a.grid(alpha=0.3)
        a.set_xlim(0, min(float(pdg.loss.index.max()), 100))
    fig.suptitle(f"{NAME}: uv model, width {u.width}, seed {cfg.execution.seeds[0]} (first 100 steps)",
                 fontsize=10)
    return fig


def width_figure(cfg: Config, o: Measured) -> Figure:
    """Peak loss and the step of the peak against width (seed mean ± std)."""
    w = o.widths
    fig, axes = subplots(1, 2, figsize=(10, 3.4))
    g = w.groupby("width")
    axes[0].errorbar(g.peak_loss.mean().index, g.peak_loss.mean(), yerr=g.peak_loss.std(), fmt="o-")
    axes[0].set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("width")
    axes[0].set_ylabel("peak loss / L0")
    axes[1].errorbar(g.peak_step.mean().index, g.peak_step.mean(), yerr=g.peak_step.std(), fmt="o-")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("width (log scale)")
    axes[1].set_ylabel("step of the peak")
    for a in axes:
        a.grid(alpha=0.3)
    fig.suptitle(f"{NAME}: catapult peak against width (η·λ0 = {cfg.claim.uv.catapult_c})", fontsize=10)
    return fig


def relu_figure(cfg: Config, o: Measured) -> Figure:
    """The largest converged η·λ0 of every seed, per depth, against the paper's ≈ 12 and the uv 4."""
    s, r = cfg.claim, o.relu
    fig, ax = subplots(figsize=(5, 3.4))
    for depth in s.relu.depths:
        vals = r[r.depth == depth].c_max.to_numpy()
        ax.scatter(np.full(vals.size, depth), vals, color="#264653")
    ax.axhline(s.relu.paper_max, color="k", ls=":", label=f"paper ≈ {s.relu.paper_max:g}")
    ax.axhline(4, color="0.5", ls="--", lw=0.8, label="uv: 4")
    ax.set_xticks(s.relu.depths)
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("largest converged η·λ0")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def real_figure(cfg: Config, o: Measured) -> Figure:
    """(f): final test accuracy against η·λ0 per seed, coloured by each run's phase."""
    r = cfg.claim.real
    fig, (a, b) = subplots(1, 2, figsize=(10, 3.6))
    for sd in cfg.real_seeds():
        tab = o.real[sd].table()
        a.plot(tab.eta_lam0, tab.test_acc, color="0.75", lw=0.8, zorder=1)
        a.scatter(tab.eta_lam0, tab.test_acc, c=[PHASE_COLORS[p] for p in tab.phase], s=18, zorder=2)
        loss = tab.final_loss.where(tab.phase != "divergent")
        b.plot(tab.eta_lam0, loss, color="0.75", lw=0.8, zorder=1)
        b.scatter(tab.eta_lam0, loss, c=[PHASE_COLORS[p] for p in tab.phase], s=18, zorder=2)
    for ph, col in PHASE_COLORS.items():
        a.scatter([], [], color=col, label=ph)
    a.set_ylabel("final test accuracy")
    a.legend(fontsize=8)
    b.set_ylabel("final training loss")
    b.set_yscale("log")
    for ax in (a, b):
        ax.axvline(2, color="0.4", lw=0.7, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("η·λ0")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (f): CIFAR-10 subset, ReLU depth {r.depth}, {r.steps} GD steps "
                 f"(one line per seed; divergent runs have no point)", fontsize=10)
    return fig


def eos_ratio_figure(cfg: Config, o: Measured) -> Figure:
    """Edge of stability: S·η/2 of every seed, one panel per rate, with the ± band."""
    e = cfg.claim.eos
    fig, axes = subplots(1, len(e.stability), figsize=(4.2 * len(e.stability), 3.4), squeeze=False)
    for ax, (i, k) in zip(axes[0], enumerate(e.stability)):
        for sd in cfg.eos_seeds():
            ratio = o.eos[sd].ratio().iloc[:, i]
            ax.plot(ratio.index, ratio.to_numpy(), lw=1, label=f"seed {sd}")
        ax.axhspan(1 - e.band, 1 + e.band, color="0.85", zorder=0)
        ax.axhline(1, color="k", lw=0.7, ls=":")
        ax.set_title(f"η = 2/({k:g}·λ0)", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("sharpness · η/2")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{NAME}: sharpness in units of 2/η (grey: the ±{e.band:.0%} band)", fontsize=10)
    return fig
