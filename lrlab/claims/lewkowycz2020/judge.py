"""lewkowycz2020 verdicts, from the stored tables only (no training).

Tables (each concatenated over jobs, with a ``job`` column first; see docs/claims/lewkowycz2020.md):
``uv_sweep``/``uv_loss``/``uv_lam`` (the uv sweep of every core job), ``uv_widths``, ``relu_max``,
``real_sweep``/``real_loss``/``real_test_acc`` and ``eos_runs``/``eos_sharpness``/``eos_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ...eos import SharpnessTrace
from ...phase import PhaseDiagram
from ...stats import Verdict, verdict
from ..protocol import Tables
from .config import Config
from .tables import phase_from_tables, sharpness_from_tables

NAME = "lewkowycz2020"
REGIME = "gd"  # every experiment here is full-batch gradient descent


@dataclass
class Measured:
    """What the jobs measured, rebuilt from the tables: per seed the uv PhaseDiagram, the width
    and ReLU rows, the CIFAR-10 PhaseDiagram (with test accuracy) and the SharpnessTrace."""

    uv: dict[int, PhaseDiagram]
    widths: pd.DataFrame  # seed, width, peak_loss, peak_step, phase
    relu: pd.DataFrame  # seed, depth, c_max, lam0
    real: dict[int, PhaseDiagram]
    eos: dict[int, SharpnessTrace]


def measured(tables: Tables) -> Measured:
    """Rebuild the sweeps' objects from the stored tables."""
    return Measured(phase_from_tables(tables["uv_sweep"], tables["uv_loss"], lam=tables["uv_lam"]),
                    tables["uv_widths"], tables["relu_max"],
                    phase_from_tables(tables["real_sweep"], tables["real_loss"], test_acc=tables["real_test_acc"]),
                    sharpness_from_tables(tables["eos_runs"], tables["eos_sharpness"], tables["eos_loss"]))


def at(pdg: PhaseDiagram, c: float) -> float:
    """The η of a sweep closest to c/λ0."""
    return float(pdg.etas[np.argmin(np.abs(pdg.etas * pdg.lam0 - c))])


def boundary(pdg) -> float:
    """The smallest η·λ0 of the sweep that diverged (the largest swept value if none did)."""
    cs = pdg.etas * pdg.lam0
    div = [c for c, ph in zip(cs, pdg.phases) if ph == "divergent"]
    return float(min(div)) if div else float(cs.max())


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def real_summary(pdg: PhaseDiagram) -> dict:
    """(f) for one seed: best final test accuracy among catapult and among lazy runs, the η·λ0
    of the overall best run and its phase, and the final training loss of each best run."""
    tab = pdg.table()
    out = {}
    for ph in ("lazy", "catapult"):
        sub = tab[tab.phase == ph]
        best = sub.loc[sub.test_acc.idxmax()] if len(sub) and sub.test_acc.notna().any() else None
        out[ph] = float(best.test_acc) if best is not None else np.nan
        out[f"{ph}_c"] = float(best.eta_lam0) if best is not None else np.nan
        out[f"{ph}_train_loss"] = float(best.final_loss) if best is not None else np.nan
    ok = tab[tab.test_acc.notna()]
    top = ok.loc[ok.test_acc.idxmax()] if len(ok) else None
    out["best_c"] = float(top.eta_lam0) if top is not None else np.nan
    out["best_phase"] = str(top.phase) if top is not None else "none"
    conv = tab[tab.phase != "divergent"].eta_lam0
    out["c_max"] = float(conv.max()) if len(conv) else np.nan
    return out


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict, (a)–(f) and the edge of stability, from the stored tables (package docstring)."""
    s, u = cfg.claim, cfg.claim.uv
    seeds = cfg.execution.seeds
    o = measured(tables)
    v: list[Verdict] = []

    def add(id_, statement, effect, values, min_effect, notes="", kind="other"):
        v.append(verdict(NAME, id_, statement, effect, np.asarray(values, dtype=float), min_effect,
                         REGIME, notes=notes, kind=kind))

    lam_change, max_rise, rise, conv, edge = [], [], [], [], []
    for seed in seeds:
        pdg = o.uv[seed]
        e_l, e_c = at(pdg, u.lazy_c), at(pdg, u.catapult_c)
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
    _judge_real(cfg, o, add)
    _judge_eos(cfg, o, add)
    return v


def _judge_real(cfg: Config, o: Measured, add: Callable) -> None:
    seeds = cfg.real_seeds()
    rows = [real_summary(o.real[sd]) for sd in seeds]
    gap = [r["catapult"] - r["lazy"] for r in rows]
    add("f-real-best-in-catapult", "CIFAR-10 subset: the best final test accuracy is in the catapult "
        "phase (best catapult run beats best lazy run)", "max test acc (catapult) − max test acc (lazy)",
        [g if np.isfinite(g) else -1.0 for g in gap], 0.0, kind="accuracy",
        notes="per seed — " + "; ".join(
            f"seed {sd}: best η·λ0 {r['best_c']:.3g} ({r['best_phase']}), lazy {r['lazy']:.3f} "
            f"(η·λ0 {r['lazy_c']:.3g}, train loss {r['lazy_train_loss']:.3f}), catapult "
            f"{r['catapult']:.3f} (η·λ0 {r['catapult_c']:.3g}, train loss {r['catapult_train_loss']:.3f}), "
            f"largest converged η·λ0 {r['c_max']:.3g}" for sd, r in zip(seeds, rows)))


def _judge_eos(cfg: Config, o: Measured, add: Callable) -> None:
    e = cfg.claim.eos
    seeds = cfg.eos_seeds()
    for i, k in enumerate(e.stability):
        sums = [o.eos[sd].summary(e.band).iloc[i] for sd in seeds]
        reach = [float(r["max"]) - (1 - e.band) if np.isfinite(r["max"]) else -1.0 for r in sums]
        stay = [e.band - float(r["dev_q90"]) if np.isfinite(r["dev_q90"]) else -1.0 for r in sums]
        arr = ", ".join("never" if not np.isfinite(r["arrival"]) else f"{int(r['arrival'])}" for r in sums)
        tag = f"{k:g}".replace(".", "p")
        add(f"eos-reaches-{tag}", f"edge of stability (η = 2/({k:g}·λ0)): the sharpness rises to within "
            f"{e.band:.0%} of 2/η", f"max_t S_t·η/2 − {1 - e.band:g}", reach, 0.0,
            notes=f"initial S·η/2 = {1 / k:.3f}; arrival steps per seed: {arr}; max S·η/2 per seed: "
            + ", ".join(f"{r['max']:.3f}" for r in sums))
        add(f"eos-stays-{tag}", f"edge of stability (η = 2/({k:g}·λ0)): after arriving, the sharpness "
            f"stays within {e.band:.0%} of 2/η (90% of probes)", f"{e.band:g} − q90_t |S_t·η/2 − 1| after "
            "arrival", stay, 0.0,
            notes="share of probes in the band after arrival per seed: "
            + ", ".join("—" if not np.isfinite(r["in_band"]) else f"{r['in_band']:.2f}" for r in sums)
            + "; a run that never arrived counts −1")
