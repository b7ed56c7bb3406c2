"""lewkowycz2020 verdicts, from the stored tables only (no training).

Tables (each concatenated over jobs, with a ``job`` column first; see docs/claims/lewkowycz2020.md):
``uv_sweep``/``uv_loss``/``uv_lam`` (the uv sweep of every core job), ``uv_widths``, ``relu_max``,
``real_sweep``/``real_loss``/``real_test_acc`` and ``eos_runs``/``eos_sharpness``/``eos_loss``.

Every verdict names its test (lrlab.stats): ``bound`` for "measure on the right side of the
paper's threshold" (effect = the signed distance to it), ``superiority`` for a predicted effect of
at least a stated size, ``equivalence`` for "at the paper's value within a margin". Every
threshold comes from the config (``claim`` tolerances, ``verdicts``). A seed on which the
measurement a statement needs failed (a diverged run, a boundary beyond the swept grid, a rate
that never arrived) gets a non-finite effect, which the rule counts as a failed seed.
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
    """Least-squares slope of y against x; NaN (a failed seed) unless every value is finite."""
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return np.nan
    return float(np.polyfit(x, y, 1)[0])


def measured_boundary(pdg: PhaseDiagram) -> float:
    """:func:`boundary` when some run of the sweep diverged; NaN (not measured: the boundary lies
    beyond the swept grid) when none did."""
    return boundary(pdg) if "divergent" in pdg.phases else np.nan


def beyond_grid(c_max: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Where the largest converged η·λ0 is the top of the grid (nearer to it than to the point
    below), so that the maximal stable rate lies beyond the grid and is not measured."""
    return np.asarray(c_max, dtype=float) > (grid[-1] + grid[-2]) / 2


def stay_deviation(trace: SharpnessTrace, member: int, band: float, share: float) -> float:
    """The ``share`` quantile of |S_t·η/2 − 1| from the arrival step on (the first probe within
    ``band`` of 2/η; :meth:`SharpnessTrace.summary`); NaN when the run never arrived or diverged."""
    arrival = trace.summary(band).iloc[member]["arrival"]
    if not np.isfinite(arrival):
        return np.nan
    r = trace.ratio().iloc[:, member].dropna()
    return float((r.loc[int(arrival):] - 1).abs().quantile(share))


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
    """Every verdict, (a)–(f) and the edge of stability, from the stored tables (module docstring)."""
    s, u, t = cfg.claim, cfg.claim.uv, cfg.verdicts
    seeds = cfg.execution.seeds
    o = measured(tables)
    v: list[Verdict] = []

    def add(id_, statement, effect, values, min_effect, test, notes="", kind="other"):
        v.append(verdict(NAME, id_, statement, effect, np.asarray(values, dtype=float), min_effect,
                         REGIME, notes=notes, kind=kind, test=test))

    lam_change, max_rise, peak, end, lam_end = [], [], [], [], []
    for seed in seeds:
        pdg = o.uv[seed]
        e_l, e_c = at(pdg, u.lazy_c), at(pdg, u.catapult_c)
        lam = pdg.lam[e_l].to_numpy()  # all NaN when the lazy run diverged
        lam_change.append(float(np.abs(lam - pdg.lam0).max() / pdg.lam0)
                          if lam.size and np.isfinite(lam).all() else np.inf)
        L = pdg.loss[e_l].to_numpy()
        max_rise.append(max(0.0, float(np.max(np.diff(L)) / L[0])) if np.isfinite(L).all() else np.inf)
        C = pdg.loss[e_c].to_numpy()
        peak.append(float(np.max(C) / C[0]))  # inf/NaN when the catapult run diverged
        end.append(float(C[-1] / C[0]))
        lam_T = pdg.lam[e_c].to_numpy()
        lam_end.append(float(e_c * lam_T[-1]) if lam_T.size else np.nan)
    lam_change, max_rise, peak, end, lam_end = map(np.asarray, (lam_change, max_rise, peak, end, lam_end))

    def per_seed(label, values, fmt, why):
        """The per-seed measure for the notes, saying why a non-finite one failed."""
        ok = np.isfinite(values)
        return (f"{label} per seed: " + ", ".join(fmt.format(x) if f else "not finite" for x, f in zip(values, ok))
                + ("" if ok.all() else f" (not finite: {why})"))

    add("a-lazy-lambda", f"lazy phase (η·λ0 = {u.lazy_c}): λ_t changes by less than {s.lazy_tol:.0%}",
        f"{s.lazy_tol} − max_t |λ_t − λ0|/λ0", s.lazy_tol - lam_change, 0.0, "bound",
        notes=per_seed("max relative change of λ", lam_change, "{:.2e}", "the lazy run diverged"))
    add("a-lazy-monotone", f"lazy phase (η·λ0 = {u.lazy_c}): the loss never rises (by more than "
        f"{t.monotone_tol:g}·L0)", f"{t.monotone_tol:g} − max(0, max_t (L_{{t+1}} − L_t)/L0)",
        t.monotone_tol - max_rise, 0.0, "bound",
        notes=per_seed("largest one-step rise / L0", max_rise, "{:.1e}", "the lazy run diverged"))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_peak = np.log10(peak)
    add("b-catapult-rises", f"catapult phase (η·λ0 = {u.catapult_c}): the loss first rises above "
        f"{1 + s.rise_tol:.2f}·L0", f"log10(max_t L_t/L0) − log10(1 + {s.rise_tol})",
        log_peak - np.log10(1 + s.rise_tol), 0.0, "bound",
        notes=per_seed("max_t L_t/L0", peak, "{:.3g}", "the catapult run diverged"))
    add("b-catapult-converges", f"catapult phase (η·λ0 = {u.catapult_c}): the loss then converges "
        "below L0", "(L0 − L_T)/L0", np.where(np.isfinite(end), 1 - end, -np.inf), 0.0, "bound",
        notes=per_seed("L_T/L0", end, "{:.3g}", "the catapult run diverged"))
    add("b-catapult-edge", f"catapult phase (η·λ0 = {u.catapult_c}): η·λ_T < {t.edge:g} at the end",
        f"{t.edge:g} − η·λ_T", np.where(np.isfinite(lam_end), t.edge - lam_end, -np.inf), 0.0, "bound",
        notes=per_seed("η·λ_T", lam_end, "{:.3f}", "the catapult run diverged"))
    bnd = np.array([measured_boundary(o.uv[seed]) for seed in seeds])
    add("c-uv-boundary", f"uv model: divergence sets in at η·λ0 = {t.uv_boundary:g} (within ±{s.boundary_tol})",
        f"c* − {t.uv_boundary:g}, c* = smallest divergent η·λ0 (equivalence margin {s.boundary_tol})",
        bnd - t.uv_boundary, s.boundary_tol, "equivalence",
        notes=f"measured boundary c*: mean {np.nanmean(bnd) if np.isfinite(bnd).any() else np.nan:.3f}, "
        + per_seed("c*", bnd, "{:.2f}", "no run of the sweep diverged")
        + f" (grid step {(u.boundary.high - u.boundary.low) / (u.boundary.points - 1):.3g})")
    w = o.widths
    peak_slope, step_slope = [], []
    for seed in seeds:
        ws = w[w.seed == seed].sort_values("width")
        lw = np.log(ws.width.to_numpy(dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            peak_slope.append(_slope(lw, np.log(ws.peak_loss.to_numpy(dtype=float))))
        # the step of the peak of a diverged run is no catapult peak: a failed seed, as above
        steps = np.where(np.isfinite(ws.peak_loss.to_numpy(dtype=float)), ws.peak_step.to_numpy(dtype=float), np.nan)
        step_slope.append(_slope(lw, steps))
    add("d-peak-grows-with-width", f"the peak loss (η·λ0 = {u.catapult_c}) grows with width (log-log "
        f"slope ≥ {t.peak_slope_min:g})", "slope of log(peak L/L0) against log(width)", peak_slope,
        t.peak_slope_min, "superiority",
        notes=per_seed("slope", peak_slope, "{:.2f}", "a width's run diverged"))
    add("d-peak-step-log-width", f"the step of the peak grows like log(width) (slope ≥ {t.step_slope_min:g} "
        "steps per unit ln(width))", "slope of the peak step against ln(width)", step_slope,
        t.step_slope_min, "superiority",
        notes="steps of the peak by width (seed-mean): " + ", ".join(
            f"{int(wd)}: {g:.1f}" for wd, g in w.groupby("width").peak_step.mean().items())
        + "; " + per_seed("slope", step_slope, "{:.2f}", "a width's run diverged"))
    r = o.relu
    grid = s.relu.grid.values()
    for depth in s.relu.depths:
        cm = r[r.depth == depth].set_index("seed").c_max.reindex(seeds).to_numpy(dtype=float)
        cut = beyond_grid(cm, grid)
        add(f"e-relu-depth{depth}-max", f"ReLU net of depth {depth}: the maximal stable η·λ0 is "
            f"≈ {s.relu.paper_max:g} (within ±{s.max_tol})",
            f"c_max − {s.relu.paper_max:g} (equivalence margin {s.max_tol})",
            np.where(cut, np.nan, cm - s.relu.paper_max), s.max_tol, "equivalence",
            notes=f"measured c_max: mean {np.nanmean(cm) if np.isfinite(cm).any() else np.nan:.2f}, per seed "
            + ", ".join("none converged" if not np.isfinite(c) else f"{c:.2f}" + (" (the top of the grid: "
                        "beyond it)" if k else "") for c, k in zip(cm, cut)))
    _judge_real(cfg, o, add)
    _judge_eos(cfg, o, add)
    return v


def _judge_real(cfg: Config, o: Measured, add: Callable) -> None:
    seeds = cfg.real_seeds()
    rows = [real_summary(o.real[sd]) for sd in seeds]
    gap = [r["catapult"] - r["lazy"] for r in rows]  # NaN (a failed seed) when a phase has no run
    add("f-real-best-in-catapult", "CIFAR-10 subset: the best final test accuracy is in the catapult "
        f"phase (best catapult run beats best lazy run by ≥ {cfg.verdicts.real_gap_min:g})",
        "max test acc (catapult) − max test acc (lazy)", gap, cfg.verdicts.real_gap_min, "superiority",
        kind="accuracy",
        notes="per seed — " + "; ".join(
            f"seed {sd}: best η·λ0 {r['best_c']:.3g} ({r['best_phase']}), lazy {r['lazy']:.3f} "
            f"(η·λ0 {r['lazy_c']:.3g}, train loss {r['lazy_train_loss']:.3f}), catapult "
            f"{r['catapult']:.3f} (η·λ0 {r['catapult_c']:.3g}, train loss {r['catapult_train_loss']:.3f}), "
            f"largest converged η·λ0 {r['c_max']:.3g}" for sd, r in zip(seeds, rows))
        + " (nan: no run of that phase, a failed seed)")


def _judge_eos(cfg: Config, o: Measured, add: Callable) -> None:
    e, q = cfg.claim.eos, cfg.verdicts.stay_quantile
    seeds = cfg.eos_seeds()
    for i, k in enumerate(e.stability):
        sums = [o.eos[sd].summary(e.band).iloc[i] for sd in seeds]
        # a diverged run, or one without a finite sharpness, is a failed seed
        reach = [float(r["max"]) - (1 - e.band) if np.isfinite(r["max"]) and not r["diverged"] else -np.inf
                 for r in sums]
        dev = [stay_deviation(o.eos[sd], i, e.band, q) for sd in seeds]  # NaN: never arrived or diverged
        stay = [e.band - d for d in dev]
        arr = ", ".join("diverged" if r["diverged"] else "never" if not np.isfinite(r["arrival"])
                        else f"{int(r['arrival'])}" for r in sums)
        tag = f"{k:g}".replace(".", "p")
        add(f"eos-reaches-{tag}", f"edge of stability (η = 2/({k:g}·λ0)): the sharpness rises to within "
            f"{e.band:.0%} of 2/η", f"max_t S_t·η/2 − {1 - e.band:g}", reach, 0.0, "bound",
            notes=f"initial S·η/2 = {1 / k:.3f}; arrival steps per seed: {arr}; max S·η/2 per seed: "
            + ", ".join(f"{r['max']:.3f}" for r in sums))
        add(f"eos-stays-{tag}", f"edge of stability (η = 2/({k:g}·λ0)): after arriving, the sharpness "
            f"stays within {e.band:.0%} of 2/η ({q:.0%} of probes)", f"{e.band:g} − q{100 * q:g}_t |S_t·η/2 − 1| "
            "after arrival", stay, 0.0, "bound",
            notes=f"arrival steps per seed: {arr}; share of probes in the band after arrival per seed: "
            + ", ".join("—" if not np.isfinite(r["in_band"]) else f"{r['in_band']:.2f}" for r in sums)
            + "; a run that never arrived (or diverged) is a failed seed")
