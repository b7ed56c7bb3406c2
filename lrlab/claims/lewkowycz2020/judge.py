"""lewkowycz2020 verdicts, from the stored tables only (no training).

Tables (each concatenated over jobs, with a ``job`` column first; see docs/claims/lewkowycz2020.md):
``uv_sweep``/``uv_loss``/``uv_lam`` (the uv sweep of every core job), ``uv_floor``, ``uv_widths``,
``relu_max``, ``real_sweep``/``real_loss``/``real_test_acc`` (with the final validation accuracy),
``real_controls``/``real_control_curves`` and ``eos_runs``/``eos_sharpness``/``eos_loss``.

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
from .selection import CANDIDATES, choose, equal_sum_steps, grid_phases
from .tables import phase_from_tables, sharpness_from_tables

NAME = "lewkowycz2020"
REGIME = "gd"  # every experiment here is full-batch gradient descent


@dataclass
class Measured:
    """What the jobs measured, rebuilt from the tables: per seed the uv PhaseDiagram, the width
    and ReLU rows, the CIFAR-10 PhaseDiagram (with test accuracy) and its sweep table (with the
    validation accuracy), the controls of the chosen rates and the SharpnessTrace."""

    uv: dict[int, PhaseDiagram]
    floor: pd.DataFrame  # seed, loss_star (the uv model's least-squares floor)
    widths: pd.DataFrame  # seed, width, peak_loss, peak_step, phase
    relu: pd.DataFrame  # seed, depth, c_max, lam0
    real: dict[int, PhaseDiagram]
    real_sweep: pd.DataFrame  # one row per (seed, η): the PhaseDiagram's table with val_acc
    controls: pd.DataFrame  # one row per (seed, run): the chosen rates trained on (experiment.CONTROL_COLUMNS)
    control_curves: pd.DataFrame  # seed, run, step, loss, val_acc, test_acc
    eos: dict[int, SharpnessTrace]


def measured(tables: Tables) -> Measured:
    """Rebuild the sweeps' objects from the stored tables."""
    return Measured(phase_from_tables(tables["uv_sweep"], tables["uv_loss"], lam=tables["uv_lam"]),
                    tables["uv_floor"], tables["uv_widths"], tables["relu_max"],
                    phase_from_tables(tables["real_sweep"], tables["real_loss"], test_acc=tables["real_test_acc"]),
                    tables["real_sweep"], tables["real_controls"], tables["real_control_curves"],
                    sharpness_from_tables(tables["eos_runs"], tables["eos_sharpness"], tables["eos_loss"]))


def at(pdg: PhaseDiagram, c: float) -> float:
    """The η of a sweep closest to c/λ0."""
    return float(pdg.etas[np.argmin(np.abs(pdg.etas * pdg.lam0 - c))])


def lam_T(pdg: PhaseDiagram, c: float) -> float:
    """λ_T of the run of a sweep closest to c/λ0: the last value of its λ_t curve when the sweep
    recorded one (as b-catapult-edge reads it), else the curvature measured at the end; NaN if the
    run diverged."""
    if pdg.lam is not None:
        lam = pdg.lam[at(pdg, c)].to_numpy(dtype=float)
        return float(lam[-1]) if lam.size else np.nan
    return float(pdg.lam_final[int(np.argmin(np.abs(pdg.etas * pdg.lam0 - c)))])


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


def real_summary(pdg: PhaseDiagram, val_acc: np.ndarray, catapult_max: float) -> dict:
    """(f) for one seed: per phase (of the grid, :mod:`.selection`) the rate chosen on the
    validation split, with its η·λ0, validation and test accuracy, measured phase, final training
    loss and λ_T (NaN and phase "none" when every candidate diverged); and the largest converged
    η·λ0 of the sweep."""
    tab = pdg.table()
    cs = tab.eta_lam0.to_numpy(dtype=float)
    picked = choose(cs, val_acc, catapult_max)
    out: dict = {"grid_phase": grid_phases(cs, catapult_max)}
    for ph in CANDIDATES:
        i = picked[ph]
        row = tab.iloc[i] if i is not None else None
        out[ph] = {"member": -1 if i is None else int(i),
                   "c": np.nan if row is None else float(row.eta_lam0),
                   "val": np.nan if i is None else float(val_acc[i]),
                   "test": np.nan if row is None else float(row.test_acc),
                   "phase": "none" if row is None else str(row.phase),
                   "train_loss": np.nan if row is None else float(row.final_loss),
                   "lam": np.nan if row is None else float(row.lam_final)}
    conv = tab[tab.phase != "divergent"].eta_lam0
    out["c_max"] = float(conv.max()) if len(conv) else np.nan
    return out


def real_val_acc(sweep: pd.DataFrame, seed: int) -> np.ndarray:
    """The final validation accuracy of every run of one seed's (f) sweep, in grid order."""
    rows = sweep[sweep.seed == seed].sort_values("member", kind="stable")
    return rows.val_acc.to_numpy(dtype=float)


def control_row(controls: pd.DataFrame, seed: int, run: str, member: int) -> pd.Series | None:
    """The control of ``run`` (lazy or catapult) of one seed when it trained the chosen rate
    (grid position ``member``); None when it is missing (no candidate of the phase converged) or
    trained another rate."""
    rows = controls[(controls.seed == seed) & (controls.run == run)]
    if len(rows) != 1 or int(rows.iloc[0].member) != member:
        return None
    return rows.iloc[0]


# control verdict -> the comparison it controls (equal Σηt, trained to convergence)
CONTROLS = {k: "f-real-best-in-catapult" for k in ("f-real-at-equal-sum-eta", "f-real-at-convergence",
                                                   "f-real-lazy-meets-criterion", "f-real-catapult-meets-criterion")}


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict, (a)–(f) and the edge of stability, from the stored tables (module docstring)."""
    s, u, t = cfg.claim, cfg.claim.uv, cfg.verdicts
    seeds = cfg.execution.seeds
    o = measured(tables)
    v: list[Verdict] = []

    def add(id_, statement, effect, values, min_effect, test, notes="", kind="other"):
        v.append(verdict(NAME, id_, statement, effect, np.asarray(values, dtype=float), min_effect,
                         REGIME, notes=notes, kind=kind, test=test, control_of=CONTROLS.get(id_, "")))

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
        lam_c = pdg.lam[e_c].to_numpy()
        lam_end.append(float(e_c * lam_c[-1]) if lam_c.size else np.nan)
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
    settle, parts = _settles(cfg, o)
    add("b-catapult-settles", f"catapult phase (η·λ0 = {u.catapult_c}): training converges — the final excess "
        f"loss over the least-squares floor L* is ≤ {t.settle_excess:g}·(L0 − L*), the loss moved by ≤ "
        f"{t.settle_tol:g}·L_T over the last {t.settle_window} steps, and η·λ_T < {t.edge:g}",
        f"min of ln({t.settle_excess:g}/excess share), ln({t.settle_tol:g}/relative move), "
        f"ln({t.edge:g}/(η·λ_T)) (each criterion's margin on a log scale)", settle, 0.0, "bound",
        notes="(excess share, relative move, η·λ_T) per seed: " + ", ".join(parts))
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = np.array([np.log(lam_T(o.uv[sd], u.lazy_c) / lam_T(o.uv[sd], u.catapult_c)) for sd in seeds])
    add("b-catapult-flatter", f"paired runs from one initialisation: the catapult run (η·λ0 = {u.catapult_c}) ends "
        f"flatter than the lazy run (η·λ0 = {u.lazy_c}), λ_T(lazy)/λ_T(catapult) ≥ {t.flat_ratio_min:g}",
        "ln(λ_T lazy / λ_T catapult), λ_T the top NTK eigenvalue at the end", flat, float(np.log(t.flat_ratio_min)),
        "superiority", notes=per_seed("λ_T(lazy)/λ_T(catapult)", np.exp(flat), "{:.3f}", "a run diverged")
        + "; beside b-catapult-edge (η·λ_T < 2)")
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


def _settles(cfg: Config, o: Measured) -> tuple[np.ndarray, list[str]]:
    """b-catapult-settles per seed: the smallest log-margin of the three criteria (NaN when the
    catapult run diverged), and the three measures (as text) for the notes."""
    u, t = cfg.claim.uv, cfg.verdicts
    floor = o.floor.set_index("seed").loss_star
    effects, parts = [], []
    tiny = np.finfo(float).tiny
    for sd in cfg.execution.seeds:
        pdg = o.uv[sd]
        e_c = at(pdg, u.catapult_c)
        C = pdg.loss[e_c].to_numpy(dtype=float)
        lam = lam_T(pdg, u.catapult_c)
        if not (np.isfinite(C).all() and np.isfinite(lam) and sd in floor.index):
            effects.append(np.nan)
            parts.append("diverged (a failed seed)")
            continue
        star = float(floor[sd])
        excess = (C[-1] - star) / (C[0] - star)
        tail = C[-(t.settle_window + 1):]
        move = (tail.max() - tail.min()) / C[-1]
        edge = e_c * lam
        effects.append(min(np.log(t.settle_excess / max(excess, tiny)), np.log(t.settle_tol / max(move, tiny)),
                           np.log(t.edge / edge)))
        parts.append(f"({excess:.2e}, {move:.1e}, {edge:.3f})")
    return np.asarray(effects, dtype=float), parts


def _judge_real(cfg: Config, o: Measured, add: Callable) -> None:
    r, t = cfg.claim.real, cfg.verdicts
    seeds = cfg.real_seeds()
    rows = [real_summary(o.real[sd], real_val_acc(o.real_sweep, sd), r.catapult_max) for sd in seeds]
    lazy = [x["lazy"] for x in rows]
    cat = [x["catapult"] for x in rows]
    ctl = {run: [control_row(o.controls, sd, run, x[run]["member"]) for sd, x in zip(seeds, rows)]
           for run in CANDIDATES}

    def ctl_value(c: pd.Series | None, col: str) -> float:
        return float(c[col]) if c is not None else np.nan

    def conv_acc(c: pd.Series | None) -> float:
        return float(c.conv_test_acc) if c is not None and int(c.conv_step) >= 0 else np.nan

    chosen = "; ".join(
        f"seed {sd}: lazy η·λ0 {a['c']:.3g} (val {a['val']:.3f}, test {a['test']:.3f}, measured {a['phase']}, "
        f"train loss {a['train_loss']:.3f}), catapult η·λ0 {b['c']:.3g} (val {b['val']:.3f}, test {b['test']:.3f}, "
        f"measured {b['phase']}, train loss {b['train_loss']:.3f}), largest converged η·λ0 {x['c_max']:.3g}"
        for sd, a, b, x in zip(seeds, lazy, cat, rows))
    gap = [b["test"] - a["test"] for a, b in zip(lazy, cat)]  # NaN (a failed seed) when a phase has no run
    add("f-real-best-in-catapult", "CIFAR-10 subset: the best test accuracy is in the catapult phase (test "
        "accuracy at the validation-chosen catapult rate beats the validation-chosen lazy rate by "
        f"≥ {t.real_gap_min:g}, both after {r.steps} steps)",
        "test acc (chosen catapult rate) − test acc (chosen lazy rate)", gap, t.real_gap_min, "superiority",
        kind="accuracy", notes="rates chosen on the validation split, per seed — " + chosen
        + " (nan: every candidate of that phase diverged, a failed seed)")
    # the lazy control counts only when it ran to the chosen catapult run's Σηt
    eq_ok = [c is not None and np.isfinite(a["c"]) and np.isfinite(b["c"])
             and int(c.eq_steps) == equal_sum_steps(r.steps, b["c"], a["c"]) for a, b, c in zip(lazy, cat, ctl["lazy"])]
    eq = [b["test"] - ctl_value(c, "eq_test_acc") if ok else np.nan for b, c, ok in zip(cat, ctl["lazy"], eq_ok)]
    add("f-real-at-equal-sum-eta", "CIFAR-10 subset, control at equal Σηt: the chosen catapult rate beats the "
        f"chosen lazy rate trained for steps·η_catapult/η_lazy steps (the same Σηt) by ≥ {t.real_gap_min:g}",
        "test acc (chosen catapult rate, steps) − test acc (chosen lazy rate, same Σηt)", eq, t.real_gap_min,
        "superiority", kind="accuracy", notes="per seed — " + "; ".join(
            f"seed {sd}: catapult {b['test']:.3f} after {r.steps} steps, lazy "
            + (f"{c.eq_test_acc:.3f} after {int(c.eq_steps)} steps (train loss {c.eq_loss:.3g})" if ok
               else "not run to the catapult run's Σηt")
            for sd, b, c, ok in zip(seeds, cat, ctl["lazy"], eq_ok))
        + " (nan: a phase had no converged candidate, or the lazy control diverged)")
    conv = [conv_acc(cc) - conv_acc(cl) for cl, cc in zip(ctl["lazy"], ctl["catapult"])]

    def conv_text(c: pd.Series | None) -> str:
        if c is None:
            return "not run"
        if int(c.conv_step) < 0:
            return f"never met in {r.conv_max_steps} steps" + (" (diverged)" if bool(c.diverged) else "")
        return f"{c.conv_test_acc:.3f} at step {int(c.conv_step)}"

    add("f-real-at-convergence", "CIFAR-10 subset, control trained to convergence (train loss ≤ "
        f"{r.conv_loss_frac:g}·L0, at most {r.conv_max_steps} steps): the chosen catapult rate beats the chosen "
        f"lazy rate by ≥ {t.real_gap_min:g}", "test acc (catapult, converged) − test acc (lazy, converged)",
        conv, t.real_gap_min, "superiority", kind="accuracy", notes="per seed — " + "; ".join(
            f"seed {sd}: catapult {conv_text(cc)}, lazy {conv_text(cl)}"
            for sd, cl, cc in zip(seeds, ctl["lazy"], ctl["catapult"]))
        + " (a run that never met the criterion is a failed seed)")
    for run in CANDIDATES:
        steps = [ctl_value(c, "conv_step") for c in ctl[run]]
        met = [np.log(r.conv_max_steps / max(s, 1.0)) if np.isfinite(s) and s >= 0 else np.nan for s in steps]
        add(f"f-real-{run}-meets-criterion", f"CIFAR-10 subset: the chosen {run} rate meets the convergence "
            f"criterion (train loss ≤ {r.conv_loss_frac:g}·L0) within {r.conv_max_steps} steps",
            f"ln({r.conv_max_steps} / step at which the criterion is met)", met, 0.0, "bound",
            notes="steps to the criterion per seed: " + ", ".join(
                "not run" if not np.isfinite(s) else "never" if s < 0 else f"{int(s)}" for s in steps)
            + " (never: a failed seed)")
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = np.array([np.log(a["lam"] / b["lam"]) for a, b in zip(lazy, cat)])
    add("f-real-catapult-flatter", "CIFAR-10 subset, paired runs from one initialisation: the chosen catapult "
        f"rate ends flatter than the chosen lazy rate, λ_T(lazy)/λ_T(catapult) ≥ {t.flat_ratio_min:g}",
        f"ln(λ_T lazy / λ_T catapult) after {r.steps} steps, λ_T the top NTK eigenvalue",
        flat, float(np.log(t.flat_ratio_min)), "superiority",
        notes="λ_T per seed (lazy, catapult): " + ", ".join(f"({a['lam']:.3g}, {b['lam']:.3g})"
                                                             for a, b in zip(lazy, cat)))


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
