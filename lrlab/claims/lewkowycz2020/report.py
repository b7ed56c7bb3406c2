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
from .judge import NAME, Measured, at, boundary, control_row, lam_T, measured, real_summary, real_val_acc
from .selection import CANDIDATES

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
             f"{s.real.val_per_class} validation images per class (further training images, disjoint from "
             f"the subset), {s.real.test_per_class} test images per class, images pooled by {s.real.pool} and "
             f"flattened, ReLU net of depth {s.real.depth} and width {s.real.width} (NTK "
             f"parameterisation), squared loss on one-hot targets, {s.real.steps} full-batch GD steps "
             f"at every η·λ0 of {s.real.grid}; seeds {cfg.real_seeds()}. The grid decides the phase of a "
             f"rate (lazy below 2, catapult from 2 to {s.real.catapult_max:g}, as many points each); the rate of "
             "each phase with the best final validation accuracy is chosen, and its test accuracy reported. "
             "Controls of the chosen rates, from the same initialisation: the lazy rate trained to the "
             "catapult run's Σηt, and both trained until the training loss is at most "
             f"{s.real.conv_loss_frac:g}·L0 (at most {s.real.conv_max_steps} steps).", "",
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
    lines += [uv_flatness_table(cfg, o), "", real_table(cfg, o), ""]
    real = save(real_figure(cfg, o), figdir / f"{NAME}-real-accuracy.png")
    controls = save(controls_figure(cfg, o), figdir / f"{NAME}-real-controls.png")
    eos_seed = cfg.eos_seeds()[0]
    eos = [save(plot_sharpness(o.eos[eos_seed], title=f"{NAME}: edge of stability, CIFAR-10 tanh MLP, "
                               f"seed {eos_seed}"), figdir / f"{NAME}-eos-trace.png"),
           save(eos_ratio_figure(cfg, o), figdir / f"{NAME}-eos-ratio.png")]
    for f, alt in ((traj, "loss and λ_t trajectories"), (phase, "uv phase plot"),
                   (widths, "peak against width"), (relu, "ReLU maximal stable rate"),
                   (real, "test accuracy against η·λ0 on CIFAR-10"),
                   (controls, "controls of the chosen rates: equal Σηt and trained to convergence"),
                   *((f, "edge of stability") for f in eos)):
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


def uv_flatness_table(cfg: Config, o: Measured) -> str:
    """The paired uv runs' λ_T (lazy and catapult, one initialisation per seed) and the catapult
    run's convergence measures, as a Markdown table."""
    u = cfg.claim.uv
    floor = o.floor.set_index("seed").loss_star
    rows = ["| seed | λ_T/λ0 lazy | λ_T/λ0 catapult | ratio | catapult L_T/L0 | L*/L0 | η·λ_T catapult |",
            "|---|---|---|---|---|---|---|"]
    for sd in cfg.execution.seeds:
        pdg = o.uv[sd]
        lz, ct = lam_T(pdg, u.lazy_c), lam_T(pdg, u.catapult_c)
        C = pdg.loss[at(pdg, u.catapult_c)].to_numpy(dtype=float)
        star = float(floor.get(sd, np.nan))
        rows.append(f"| {sd} | {lz / pdg.lam0:.3f} | {ct / pdg.lam0:.3f} | {lz / ct:.3g} | {C[-1] / C[0]:.3g} | "
                    f"{star / C[0]:.3g} | {at(pdg, u.catapult_c) * ct:.3f} |")
    return (f"uv model, paired runs at η·λ0 = {u.lazy_c} (lazy) and {u.catapult_c} (catapult) from one "
            "initialisation per seed (λ_T: top NTK eigenvalue at the end; L*: least-squares floor):\n\n"
            + "\n".join(rows))


def real_table(cfg: Config, o: Measured) -> str:
    """(f): per seed, the validation-chosen rate of each phase with its accuracies, and its controls
    (the lazy rate at equal Σηt, both at convergence), as a Markdown table."""
    r = cfg.claim.real
    rows = ["| seed | phase | η·λ0 | measured phase | val acc | test acc | λ_T | test acc at equal Σηt (steps) "
            "| test acc at convergence (step) |", "|---|---|---|---|---|---|---|---|---|"]
    for sd in cfg.real_seeds():
        summ = real_summary(o.real[sd], real_val_acc(o.real_sweep, sd), r.catapult_max)
        for run in CANDIDATES:
            x = summ[run]
            c = control_row(o.controls, sd, run, x["member"])
            eq = (f"{c.eq_test_acc:.3f} ({int(c.eq_steps)})" if c is not None and int(c.eq_steps) >= 0
                  else f"— ({r.steps}, the run itself)" if run == "catapult" else "—")
            conv = ("—" if c is None else f"never in {r.conv_max_steps}" if int(c.conv_step) < 0
                    else f"{c.conv_test_acc:.3f} ({int(c.conv_step)})")
            rows.append(f"| {sd} | {run} | {x['c']:.3g} | {x['phase']} | {x['val']:.3f} | {x['test']:.3f} | "
                        f"{x['lam']:.3g} | {eq} | {conv} |")
    return ("(f): the rate of each phase chosen on the validation split, its test accuracy after "
            f"{r.steps} steps, and its controls:\n\n" + "\n".join(rows))


def real_figure(cfg: Config, o: Measured) -> Figure:
    """(f): final validation and test accuracy and training loss against η·λ0 per seed, coloured by
    each run's measured phase; the validation-chosen rate of each phase ringed."""
    r = cfg.claim.real
    fig, (v, a, b) = subplots(1, 3, figsize=(15, 3.6))
    fig.subplots_adjust(wspace=0.32)
    for sd in cfg.real_seeds():
        tab = o.real[sd].table()
        val = real_val_acc(o.real_sweep, sd)
        summ = real_summary(o.real[sd], val, r.catapult_max)
        for ax, y in ((v, val), (a, tab.test_acc.to_numpy(dtype=float))):
            ax.plot(tab.eta_lam0, y, color="0.75", lw=0.8, zorder=1)
            ax.scatter(tab.eta_lam0, y, c=[PHASE_COLORS[p] for p in tab.phase], s=18, zorder=2)
            for run in CANDIDATES:
                i = summ[run]["member"]
                if i >= 0:
                    ax.scatter([tab.eta_lam0.iloc[i]], [y[i]], s=90, facecolors="none", edgecolors="k",
                               lw=1.0, zorder=3)
        loss = tab.final_loss.where(tab.phase != "divergent")
        b.plot(tab.eta_lam0, loss, color="0.75", lw=0.8, zorder=1)
        b.scatter(tab.eta_lam0, loss, c=[PHASE_COLORS[p] for p in tab.phase], s=18, zorder=2)
    for ph, col in PHASE_COLORS.items():
        a.scatter([], [], color=col, label=f"measured {ph}")
    a.scatter([], [], s=90, facecolors="none", edgecolors="k", label="chosen on validation")
    v.set_ylabel("final validation accuracy")
    a.set_ylabel("final test accuracy")
    a.legend(fontsize=7)
    b.set_ylabel("final training loss")
    b.set_yscale("log")
    for ax in (v, a, b):
        ax.axvline(2, color="0.4", lw=0.7, ls=":")
        ax.axvline(r.catapult_max, color="0.4", lw=0.7, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("η·λ0 (dotted: 2; dashed: catapult_max)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (f): CIFAR-10 subset, ReLU depth {r.depth}, {r.steps} GD steps "
                 f"(one line per seed; divergent runs have no point)", fontsize=10)
    return fig


def controls_figure(cfg: Config, o: Measured) -> Figure:
    """(f) controls: test accuracy against Σηt·λ0 (= η·λ0 · step, "physical time") and training
    loss / L0 against step, for the chosen lazy and catapult rate of every seed; squares mark the
    end of the sweep's steps and the lazy run's equal Σηt, stars the convergence step."""
    r = cfg.claim.real
    fig, (a, b) = subplots(1, 2, figsize=(11, 3.8))
    cur, ctl = o.control_curves, o.controls
    styles = {"lazy": (PHASE_COLORS["lazy"], "-"), "catapult": ("#b08900", "-")}
    for sd in cfg.real_seeds():
        for run in CANDIDATES:
            rows = ctl[(ctl.seed == sd) & (ctl.run == run)]
            c = cur[(cur.seed == sd) & (cur.run == run)].sort_values("step")
            if rows.empty or c.empty:
                continue
            row = rows.iloc[0]
            col, ls = styles[run]
            x = row.eta_lam0 * c.step.to_numpy(dtype=float)
            a.plot(x, c.test_acc, color=col, ls=ls, lw=1, alpha=0.8)
            b.plot(c.step, c.loss / row.L0, color=col, ls=ls, lw=1, alpha=0.8)
            marks = [int(row.eq_steps)] if int(row.eq_steps) >= 0 else [r.steps]
            for st in marks:
                hit = c[c.step == st]
                if len(hit):
                    a.scatter(row.eta_lam0 * st, hit.test_acc.iloc[0], marker="s", color=col, edgecolors="k", zorder=3)
            if int(row.conv_step) >= 0:
                a.scatter(row.eta_lam0 * row.conv_step, row.conv_test_acc, marker="*", s=90, color=col,
                          edgecolors="k", zorder=3)
                b.scatter(row.conv_step, row.conv_loss / row.L0, marker="*", s=90, color=col, edgecolors="k", zorder=3)
    for run in CANDIDATES:
        a.plot([], [], color=styles[run][0], label=f"chosen {run} rate")
    a.scatter([], [], marker="s", color="0.6", edgecolors="k", label="equal Σηt (catapult: its sweep steps)")
    a.scatter([], [], marker="*", s=90, color="0.6", edgecolors="k", label="converged")
    a.set_xscale("log")
    a.set_xlabel("Σηt·λ0 = η·λ0 · step")
    a.set_ylabel("test accuracy")
    a.legend(fontsize=7)
    b.axhline(r.conv_loss_frac, color="k", lw=0.7, ls=":")
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("step")
    b.set_ylabel(f"training loss / L0 (dotted: the criterion {r.conv_loss_frac:g})")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (f) controls: the validation-chosen rates trained on (one line per seed and phase)",
                 fontsize=10)
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
