"""Lewkowycz et al. (2020), the catapult mechanism (SPEC §2): lazy, catapult and divergent phases.

Every experiment is full-batch GD with the squared loss on random regression data, from one
initialisation per seed, at learning rates η = c/λ0 with λ0 the top eigenvalue of the
empirical NTK at initialisation. Verdicts, each over seeds with a 95% t interval:

* (a) lazy phase (c < 2): λ changes by less than ``lazy_tol`` (relative) and the loss never rises;
* (b) catapult phase (2 < c < 4): the loss first rises, then converges, and η·λ_T < 2 at the end;
* (c) uv model: divergence sets in at c = 4 (the measured boundary and its interval);
* (d) the peak loss grows with width, and the step of the peak grows like log(width);
* (e) ReLU nets of depth 1–3: the maximal stable c, against the paper's ≈ 12.

Not yet implemented (issue 4): (f) test accuracy against η·λ0 on a real task, and the
edge-of-stability claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from ..config import Strict
from .stats import Verdict, verdict

NAME = "lewkowycz2020"
PAPER = "Lewkowycz et al. 2020 — the catapult mechanism"


class Grid(Strict):
    """Evenly spaced η·λ0 values from ``low`` to ``high``."""

    low: float = Field(gt=0)
    high: float = Field(gt=0)
    points: int = Field(ge=2)

    def values(self) -> np.ndarray:
        """The grid, rejecting low >= high."""
        if not self.low < self.high:
            raise ValueError(f"grid low {self.low} must be below high {self.high}")
        return np.linspace(self.low, self.high, self.points)


class UVSettings(Strict):
    """The uv-model sweeps: data size, width, the lazy and catapult rates, boundary grid, widths."""

    d: int = Field(gt=0, description="input dimension")
    m: int = Field(gt=0, description="training examples")
    width: int = Field(gt=0)
    steps: int = Field(gt=1)
    lazy_c: float = Field(gt=0, lt=2, description="η·λ0 of the lazy run")
    catapult_c: float = Field(gt=2, lt=4, description="η·λ0 of the catapult run")
    boundary: Grid
    widths: list[int] = Field(min_length=3)
    curvature_every: int = Field(gt=0)


class ReLUSettings(Strict):
    """The ReLU-net sweeps for the maximal stable rate, per depth."""

    d: int = Field(gt=0)
    m: int = Field(gt=0)
    width: int = Field(gt=0)
    depths: list[int] = Field(min_length=1)
    grid: Grid
    steps: int = Field(gt=1)
    paper_max: float = Field(12.0, gt=0, description="the paper's maximal stable η·λ0")


class Settings(Strict):
    """Seeds, the tolerances every verdict is judged against, and the two sweep families."""

    seeds: list[int] = Field(min_length=2)
    lazy_tol: float = Field(gt=0, description="largest relative change of λ that counts as lazy")
    rise_tol: float = Field(0.05, ge=0, description="a catapult's loss rises above (1 + rise_tol)·L0")
    boundary_tol: float = Field(gt=0, description="|c* − 4| below this counts as 'at 4/λ0'")
    max_tol: float = Field(gt=0, description="|c_max − paper_max| below this counts as '≈ 12'")
    uv: UVSettings
    relu: ReLUSettings


class ClaimConfig(Strict):
    """The claim config (configs/lewkowycz2020/*.yaml): everything lives under ``claim``."""

    claim: Settings


@dataclass
class Outcome:
    """Everything the sweeps measured, per seed, and the verdicts judged from it."""

    cfg: ClaimConfig
    uv: dict[int, object]  # seed -> PhaseDiagram of the uv sweep
    widths: pd.DataFrame  # seed, width, peak_loss, peak_step, phase
    relu: pd.DataFrame  # seed, depth, c_max
    verdicts: list[Verdict] = field(default_factory=list)
    regime: str = "quick"


def regression_data(d: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I/d) (so |x| ≈ 1) and y ~ N(0, 1), from ``seed``."""
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randn(m, d, generator=g) / d**0.5, torch.randn(m, generator=g)


def _uv_factory(d: int, width: int, seed: int):
    from ..models import UVModel

    uv = UVModel(d, width)
    params = uv.init([seed])
    return lambda: uv.to_module(params, 0)


def _mlp_factory(d: int, width: int, depth: int):
    from ..models import NTKMLP

    return lambda: NTKMLP(d, width, depth=depth, activation="relu")


def preflight(cfg: ClaimConfig) -> None:
    """Checks that need no training: valid grids and depths."""
    s = cfg.claim
    s.uv.boundary.values()
    s.relu.grid.values()
    if any(dep not in (1, 2, 3) for dep in s.relu.depths):
        raise ValueError(f"claim.relu.depths must lie in 1..3, got {s.relu.depths}")


def run(cfg: ClaimConfig, out: Path, progress: bool = False, log: Callable[[str], None] = print,
        workers: int | None = None) -> list[Outcome]:
    """Run every sweep in this process (each is one vectorised population) and judge them."""
    from ..phase import phase_diagram

    s = cfg.claim
    u = s.uv
    cs = np.unique(np.concatenate([[u.lazy_c, u.catapult_c], u.boundary.values()]))
    log(f"[{NAME}] uv sweeps: {len(s.seeds)} seeds × {len(cs)} learning rates, width {u.width}; "
        f"widths {u.widths}; ReLU depths {s.relu.depths} × {s.relu.grid.points} learning rates")
    uv_runs, rows, relu_rows = {}, [], []
    for seed in s.seeds:
        x, y = regression_data(u.d, u.m, seed)
        uv_runs[seed] = phase_diagram(_uv_factory(u.d, u.width, seed), x, y, "squared",
                                      scaled_etas=cs, steps=u.steps, seed=seed, rise_tol=s.rise_tol,
                                      curvature_every=u.curvature_every)
        for width in u.widths:
            pdg = phase_diagram(_uv_factory(u.d, width, seed), x, y, "squared",
                                scaled_etas=[u.catapult_c], steps=u.steps, seed=seed, rise_tol=s.rise_tol)
            c = pdg.loss.iloc[:, 0]
            rows.append({"seed": seed, "width": width, "peak_loss": float(c.max() / c.iloc[0]),
                         "peak_step": int(c.idxmax()), "phase": pdg.phases[0]})
        xr, yr = regression_data(s.relu.d, s.relu.m, seed)
        for depth in s.relu.depths:
            pdg = phase_diagram(_mlp_factory(s.relu.d, s.relu.width, depth), xr, yr, "squared",
                                scaled_etas=s.relu.grid.values(), steps=s.relu.steps, seed=seed,
                                rise_tol=s.rise_tol)
            conv = [c for c, ph in zip(pdg.etas * pdg.lam0, pdg.phases) if ph != "divergent"]
            relu_rows.append({"seed": seed, "depth": depth, "c_max": max(conv) if conv else np.nan,
                              "lam0": pdg.lam0})
        log(f"  seed {seed} done")
    o = Outcome(cfg, uv_runs, pd.DataFrame(rows), pd.DataFrame(relu_rows))
    o.verdicts = judge(o)
    return [o]


def _at(pdg, c: float) -> float:
    """The η of a sweep closest to c/λ0."""
    return float(pdg.etas[np.argmin(np.abs(pdg.etas * pdg.lam0 - c))])


def boundary(pdg) -> float:
    """The smallest η·λ0 of the sweep that diverged (the largest swept value if none did)."""
    cs = pdg.etas * pdg.lam0
    div = [c for c, ph in zip(cs, pdg.phases) if ph == "divergent"]
    return float(min(div)) if div else float(cs.max())


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def judge(o: Outcome) -> list[Verdict]:
    """Every verdict (a)–(e) from the measured sweeps (see the module docstring)."""
    s, u = o.cfg.claim, o.cfg.claim.uv
    seeds = s.seeds
    v: list[Verdict] = []

    def add(id_, statement, effect, values, min_effect, notes=""):
        v.append(verdict(NAME, id_, statement, effect, np.asarray(values, dtype=float), min_effect,
                         o.regime, notes=notes))

    lam_change, max_rise, rise, conv, edge = [], [], [], [], []
    for seed in seeds:
        pdg = o.uv[seed]
        e_l, e_c = _at(pdg, u.lazy_c), _at(pdg, u.catapult_c)
        lam = pdg.lam[e_l].dropna().to_numpy()
        lam_change.append(float(np.abs(lam - pdg.lam0).max() / pdg.lam0))
        L = pdg.loss[e_l].to_numpy()
        max_rise.append(max(0.0, float(np.max(np.diff(L)) / L[0])))  # 0 when it only falls
        C = pdg.loss[e_c].to_numpy()
        rise.append(float(C.max() / C[0] - 1))
        conv.append(float((C[0] - C[-1]) / C[0]) if np.isfinite(C[-1]) else -1.0)
        lam_T = pdg.lam[e_c].dropna().to_numpy()
        edge.append(float(2 - e_c * lam_T[-1]) if lam_T.size else -np.inf)
    add("a-lazy-lambda", f"lazy phase (η·λ0 = {u.lazy_c}): λ_t changes by less than {s.lazy_tol:.0%}",
        f"{s.lazy_tol} − max_t |λ_t − λ0|/λ0", s.lazy_tol - np.asarray(lam_change), 0.0,
        notes="max relative change: " + ", ".join(f"{c:.2e}" for c in lam_change))
    add("a-lazy-monotone", f"lazy phase (η·λ0 = {u.lazy_c}): the loss never rises (by more than 1e-6·L0)",
        "1e-6 − max(0, max_t (L_{t+1} − L_t)/L0)", 1e-6 - np.asarray(max_rise), 0.0,
        notes="largest one-step rise / L0: " + ", ".join(f"{r:.1e}" for r in max_rise))
    add("b-catapult-rises", f"catapult phase (η·λ0 = {u.catapult_c}): the loss first rises above "
        f"{1 + s.rise_tol:.2f}·L0", f"max_t L_t/L0 − 1 − {s.rise_tol}", np.asarray(rise) - s.rise_tol, 0.0)
    add("b-catapult-converges", f"catapult phase (η·λ0 = {u.catapult_c}): the loss then converges "
        "below L0", "(L0 − L_T)/L0", conv, 0.0)
    add("b-catapult-edge", f"catapult phase (η·λ0 = {u.catapult_c}): η·λ_T < 2 at the end",
        "2 − η·λ_T", edge, 0.0)
    bnd = [boundary(o.uv[seed]) for seed in seeds]
    add("c-uv-boundary", f"uv model: divergence sets in at η·λ0 = 4 (within ±{s.boundary_tol})",
        f"{s.boundary_tol} − |c* − 4|, c* = smallest divergent η·λ0", s.boundary_tol - np.abs(np.asarray(bnd) - 4), 0.0,
        notes=f"measured boundary c*: mean {np.mean(bnd):.3f}, per seed " + ", ".join(f"{b:.2f}" for b in bnd)
        + f" (grid step {(u.boundary.high - u.boundary.low) / (u.boundary.points - 1):.3g})")
    w = o.widths
    peak_slope, step_slope = [], []
    for seed in seeds:
        ws = w[w.seed == seed].sort_values("width")
        peak_slope.append(_slope(np.log(ws.width.to_numpy()), np.log(ws.peak_loss.to_numpy())))
        step_slope.append(_slope(np.log(ws.width.to_numpy()), ws.peak_step.to_numpy().astype(float)))
    add("d-peak-grows-with-width", f"the peak loss (η·λ0 = {u.catapult_c}) grows with width",
        "slope of log(peak L/L0) against log(width)", peak_slope, 0.0)
    add("d-peak-step-log-width", "the step of the peak grows like log(width)",
        "slope of the peak step against ln(width)", step_slope, 0.0,
        notes="steps of the peak by width (seed-mean): " + ", ".join(
            f"{int(wd)}: {g:.1f}" for wd, g in w.groupby("width").peak_step.mean().items()))
    r = o.relu
    for depth in s.relu.depths:
        cm = r[r.depth == depth].set_index("seed").c_max.reindex(seeds).to_numpy()
        add(f"e-relu-depth{depth}-max", f"ReLU net of depth {depth}: the maximal stable η·λ0 is "
            f"≈ {s.relu.paper_max:g} (within ±{s.max_tol})", f"{s.max_tol} − |c_max − {s.relu.paper_max:g}|",
            s.max_tol - np.abs(cm - s.relu.paper_max), 0.0,
            notes=f"measured c_max: mean {np.nanmean(cm):.2f}, per seed " + ", ".join(f"{c:.2f}" for c in cm))
    return v


def section(cfg: ClaimConfig, outcomes: list[Outcome], figdir: Path, rel: Path) -> str:
    """The report section: setup, measured numbers and the paper's figures."""
    from ..phase import plot_phase_diagram
    from ..report.figures import plt, save

    o = outcomes[0]
    s, u = cfg.claim, cfg.claim.uv
    seed = s.seeds[0]
    pdg = o.uv[seed]
    lines = [f"## {NAME}: {PAPER}", "",
             f"Full-batch GD, squared loss, {u.m} random regression examples (x ~ N(0, I/{u.d}), "
             f"y ~ N(0, 1)) per seed, {len(s.seeds)} seeds. uv model width {u.width} (SPEC §2); "
             f"ReLU nets in NTK parameterisation, width {s.relu.width}. λ0 = top eigenvalue of the "
             "empirical NTK at initialisation, normalised as the loss. Not yet run: (f) accuracy "
             "against η·λ0 on a real task, and the edge-of-stability claim (issue 4).", ""]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for c, col in ((u.lazy_c, "#2a9d8f"), (u.catapult_c, "#e9c46a"), (4.5, "#e76f51")):
        e = _at(pdg, c)
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
    fig.suptitle(f"{NAME}: uv model, width {u.width}, seed {seed} (first 100 steps)", fontsize=10)
    traj = save(fig, figdir / f"{NAME}-uv-trajectories.png")
    phase = plot_phase_diagram(pdg, figdir / f"{NAME}-uv-phase.png",
                               title=f"{NAME}: uv model phase plot, seed {seed}")
    w = o.widths
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
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
    fig.suptitle(f"{NAME}: catapult peak against width (η·λ0 = {u.catapult_c})", fontsize=10)
    widths = save(fig, figdir / f"{NAME}-widths.png")
    r = o.relu
    fig, ax = plt.subplots(figsize=(5, 3.4))
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
    relu = save(fig, figdir / f"{NAME}-relu-max.png")
    bnd = [boundary(o.uv[sd]) for sd in s.seeds]
    lines += [f"Measured uv divergence boundary c* = {np.mean(bnd):.3f} (per seed "
              + ", ".join(f"{b:.2f}" for b in bnd) + "); ReLU maximal stable η·λ0 by depth: "
              + "; ".join(f"depth {d}: {r[r.depth == d].c_max.mean():.2f}" for d in s.relu.depths) + ".", ""]
    for f, alt in ((traj, "loss and λ_t trajectories"), (phase, "uv phase plot"),
                   (widths, "peak against width"), (relu, "ReLU maximal stable rate")):
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)
