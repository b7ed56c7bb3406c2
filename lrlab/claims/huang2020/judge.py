"""huang2020 verdicts, from the stored tables only (no training).

Tables (each with the driver's ``job`` column first; docs/claims/huang2020.md):
``sweeps`` (seed, sweep, lam0, p, p_real, theory, best_loss) one row per GD sweep;
``runs`` (seed, sweep, eta, eta_lam0, phase, final_loss, lam_final, eta_lam_final, hessian_final,
rise, max_step_rise) one row per η of a sweep; ``loss`` and ``lam`` (seed, sweep, eta, step, value)
the curves; ``widths`` (seed, width, c_div, c_theory); ``real`` (seed, name, c, rise, final_loss,
test_acc, diverged, lam0) and ``real_loss`` (seed, name, step, value) for the CIFAR-10 part;
``depths`` (seed, depth, p, p_real, lam0, c_theory, c_star, c_rise, grid_step) one row per (depth, seed)
and ``depth_runs`` (seed, depth, eta, eta_lam0, rise, final_loss, lam_final, converged) for the onset
sweep over depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...stats import Interval, Verdict, t_interval, verdict
from ..protocol import Tables
from .config import Config

NAME = "huang2020"
REGIME = "gd"
EDGE = 2.0  # [derived] GD's stability edge η·p(1−p)·λ < 2: the paper's bound itself, not a tolerance
_KEYS = ["job", "seed", "sweep"]


@dataclass
class Sweep:
    """One GD sweep of one seed: its per-η table (rows in run order) and the sweep's constants
    (p, p_real, theory, best_loss are NaN on separable and Gaussian data)."""

    table: pd.DataFrame
    lam0: float
    p: float
    p_real: float
    theory: float
    best_loss: float


def sweep_of(tables: Tables, seed: int, name: str) -> Sweep:
    """The sweep ``name`` ("separable", "p=0.5", "gaussian-nonseparable", …) of ``seed``."""
    meta = tables["sweeps"]
    meta = meta[(meta.seed == seed) & (meta.sweep == name)]
    if len(meta) != 1:
        raise KeyError(f"{NAME}: {len(meta)} stored sweeps {name!r} for seed {seed} (expected 1)")
    runs = tables["runs"]
    tab = runs[(runs.seed == seed) & (runs.sweep == name)].drop(columns=_KEYS).reset_index(drop=True)
    m = meta.iloc[0]
    return Sweep(tab, float(m.lam0), float(m.p), float(m.p_real), float(m.theory), float(m.best_loss))


def curves_of(tables: Tables, metric: str, seed: int, name: str) -> pd.DataFrame | None:
    """Curve ``metric`` ("loss" or "lam") of a sweep as steps × η (None when not recorded)."""
    if metric not in tables:
        return None
    c = tables[metric]
    c = c[(c.seed == seed) & (c.sweep == name)]
    return c.pivot(index="step", columns="eta", values="value") if len(c) else None


def real_of(tables: Tables, seed: int) -> pd.DataFrame:
    """The CIFAR-10 runs of ``seed``: name, c, rise, final_loss, test_acc, diverged (and lam0)."""
    t = tables["real"]
    return t[t.seed == seed].drop(columns=["job", "seed"]).reset_index(drop=True)


def depths_of(cfg: Config, tables: Tables) -> pd.DataFrame:
    """The ``depths`` rows of the config's depths × seeds, one each (KeyError when one is missing or doubled)."""
    t = tables["depths"]
    rows = []
    for L in cfg.claim.degenerate.depths:
        for sd in cfg.execution.seeds:
            r = t[(t.depth == L) & (t.seed == sd)]
            if len(r) != 1:
                raise KeyError(f"{NAME}: {len(r)} stored depth rows for depth {L}, seed {sd} (expected 1)")
            rows.append(r)
    return pd.concat(rows, ignore_index=True).drop(columns="job", errors="ignore")


def _converged(tab: pd.DataFrame, best: float, tol: float) -> np.ndarray:
    return (tab.final_loss - best < tol).to_numpy()


def _log_slope(c: np.ndarray, v: np.ndarray) -> float:
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(c[ok]), np.log(v[ok]), 1)[0])


def _fmt(x: float, spec: str = ".3g", missing: str = "none") -> str:
    return format(x, spec) if np.isfinite(x) else missing


# control verdict -> the comparison it controls (equal Σηt, trained to convergence)
CONTROLS = {"d-real-catapult-beats-lazy-same-time": "d-real-catapult-beats-lazy",
            "d-real-catapult-beats-lazy-converged": "d-real-catapult-beats-lazy",
            "d-real-converged": "d-real-catapult-beats-lazy",
            "d-real-anneal-beats-lazy-same-time": "d-real-anneal-beats-lazy",
            "d-real-anneal-beats-lazy-converged": "d-real-anneal-beats-lazy"}


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict from the stored sweeps (the package docstring lists them; the thresholds are
    ``cfg.claim``'s tolerances and ``cfg.verdicts``). A seed whose measurement failed (a blow-up on
    separable data, no catapult onset, no converged catapult run, fewer than two runs for a slope,
    no lazy or no catapult CIFAR-10 run) has a non-finite effect: a failed seed."""
    s, vt, seeds = cfg.claim, cfg.verdicts, cfg.execution.seeds
    v: list[Verdict] = []

    def add(id_, statement, effect, values, test, min_effect, notes=""):
        v.append(verdict(NAME, id_, statement, effect, values, min_effect, REGIME, notes=notes, kind="other",
                         test=test, control_of=CONTROLS.get(id_, "")))

    g = s.degenerate
    for label, name in (("degenerate", "separable"), ("gaussian", "gaussian-separable")):
        runs = [sweep_of(tables, sd, name) for sd in seeds]
        worst = [float(np.max(r.table.max_step_rise.to_numpy())) for r in runs]  # inf: a run blew up
        first = []
        for r in runs:
            tab = r.table
            rose = tab.eta_lam0[(tab.max_step_rise > vt.monotone_tol).to_numpy()]
            first.append(f"{rose.min():g}" if len(rose) else "none")
        cmax = max(float(r.table.eta_lam0.max()) for r in runs)
        add(f"a-separable-{label}-monotone", f"separable {label} data: the loss never rises (no one-step rise "
            f"above {vt.monotone_tol:g}·L0) for any η·λ0 up to {cmax:g} (no catapult)",
            f"{vt.monotone_tol:g} − max over η and t of (L_{{t+1}} − L_t)/L0", vt.monotone_tol - np.asarray(worst),
            "bound", 0.0,
            notes="largest one-step rise / L0 per seed: "
            + ", ".join("blew up" if w == math.inf else _fmt(w, ".1e", "NaN") for w in worst)
            + "; smallest η·λ0 whose loss rose, per seed: " + ", ".join(first))
    for p in g.ps:
        key = f"p={p:g}"
        bnd, edge, slope, rows = [], [], [], []
        for r in (sweep_of(tables, sd, key) for sd in seeds):
            tab = r.table
            cat = (tab.rise > s.rise_tol).to_numpy() & np.isfinite(tab.final_loss.to_numpy())
            conv = _converged(tab, r.best_loss, s.conv_tol)
            c_star = float(tab.eta_lam0[cat].min()) if cat.any() else math.nan
            bnd.append(abs(c_star - r.theory) / r.theory if np.isfinite(c_star) else math.inf)  # no onset: failed
            ok = cat & conv
            pq = r.p_real * (1 - r.p_real)
            edge.append(EDGE - float((tab.eta[ok] * pq * tab.lam_final[ok]).max()) if ok.any() else -math.inf)
            slope.append(_log_slope(tab.eta_lam0[ok].to_numpy(), tab.hessian_final[ok].to_numpy()))
            rows.append((c_star, r.theory, int(ok.sum())))
        add(f"b-boundary-p{p:g}", f"degenerate non-separable data, p = {p:g}: the catapult sets in at "
            f"η·λ0 = 2/(p(1−p)) (within {s.boundary_tol:.0%})", f"{s.boundary_tol:g} − |c* − c_theory|/c_theory",
            s.boundary_tol - np.asarray(bnd), "bound", 0.0,
            notes="measured c* / theory per seed: " + "; ".join(f"{_fmt(a)} / {b:.3g}" for a, b, _ in rows)
            + f" (grid step {(g.boundary_span[1] - g.boundary_span[0]) / (g.boundary_points - 1):.3g}·theory; "
            "none: no run catapulted, a failed seed)")
        add(f"b-curvature-falls-p{p:g}", f"p = {p:g}: every converged catapult run ends with η·p(1−p)·λ_T < {EDGE:g}",
            f"{EDGE:g} − max over converged catapult runs of η·p(1−p)·λ_T", edge, "bound", 0.0,
            notes="converged catapult runs per seed: " + ", ".join(str(k) for *_, k in rows)
            + " (0: a failed seed)")
        add(f"c-flatter-p{p:g}", f"p = {p:g}: through the catapult phase the final top Hessian eigenvalue "
            f"falls as η grows (log-log slope at most −{vt.min_flat_slope:g})",
            "− slope of log λ_H(T) against log η·λ0 (converged catapult runs)", [-x for x in slope],
            "superiority", vt.min_flat_slope,
            notes="converged catapult runs in the slope per seed: " + ", ".join(str(k) for *_, k in rows)
            + " (fewer than 2: a failed seed)")
    dep = depths_of(cfg, tables)
    for L in g.depths:
        d = dep[dep.depth == L]
        cs, th = d.c_star.to_numpy(dtype=float), d.c_theory.to_numpy(dtype=float)
        err = np.where(np.isfinite(cs), np.abs(cs - th) / th, math.inf)  # no onset: a failed seed
        add(f"b-boundary-depth{L}", f"deep linear network of depth {L}, degenerate non-separable data, "
            f"p = {g.ps[0]:g}: the catapult (a rise above rise_tol that still converges) sets in at "
            f"η·λ0 = 2/(p(1−p)) with λ0 the depth-{L} NTK at init (within {s.boundary_tol:.0%})",
            f"{s.boundary_tol:g} − |c* − c_theory|/c_theory", s.boundary_tol - err, "bound", 0.0,
            notes="measured c* / theory per seed: " + "; ".join(f"{_fmt(a)} / {b:.3g}" for a, b in zip(cs, th))
            + "; λ0 per seed: " + ", ".join(f"{x:.3g}" for x in d.lam0)
            + f" (grid step {(g.boundary_span[1] - g.boundary_span[0]) / (g.boundary_points - 1):.3g}·theory; "
            "none: no run both catapulted and converged, a failed seed)")
    gslope, gruns = [], []
    for sd in seeds:
        tab = sweep_of(tables, sd, "gaussian-nonseparable").table
        fin = np.isfinite(tab.final_loss.to_numpy())
        ok = (tab.rise > s.rise_tol).to_numpy() & fin
        if fin.any():
            ok &= (tab.final_loss <= tab.final_loss[fin].min() + vt.gaussian_loss_band).to_numpy()
        gslope.append(_log_slope(tab.eta_lam0[ok].to_numpy(), tab.hessian_final[ok].to_numpy()))
        gruns.append(int(ok.sum()))
    add("c-flatter-gaussian", f"Gaussian data with {s.gaussian.flip:.0%} flipped labels: through the catapult "
        f"phase the final top Hessian eigenvalue falls as η grows (log-log slope at most −{vt.min_flat_slope:g})",
        f"− slope of log λ_H(T) against log η·λ0 (catapult runs that reached the lowest loss "
        f"+ {vt.gaussian_loss_band:g})", [-x for x in gslope], "superiority", vt.min_flat_slope,
        notes="catapult runs in the slope per seed: " + ", ".join(str(k) for k in gruns)
        + " (fewer than 2: a failed seed)")
    _judge_real(cfg, tables, add)
    return v


def controls_of(tables: Tables, seed: int) -> pd.DataFrame:
    """The (d) control rows of ``seed`` (empty when the seed had no lazy or no catapult run)."""
    t = tables.get("real_controls")
    if t is None or not len(t):
        return pd.DataFrame(columns=["control", "run", "c", "step", "sum_c", "target_sum_c", "train_loss", "gap",
                                     "train_acc", "val_acc", "test_acc", "met"])
    return t[t.seed == seed].drop(columns=["job", "seed"], errors="ignore").reset_index(drop=True)


def _control(ctrl: pd.DataFrame, name: str) -> pd.Series | None:
    r = ctrl[ctrl.control == name]
    return r.iloc[0] if len(r) == 1 else None


def _met_acc(row: pd.Series | None) -> float:
    """Test accuracy of a control row that met its target (NaN: not reached within the cap, a failed seed)."""
    return float(row.test_acc) if row is not None and bool(row.met) else math.nan


def _conv_margin(cap: int, conv_gap: float, rows: list[pd.Series | None]) -> float:
    """The (d) convergence check of one seed on a log scale: log10(cap / steps the slower run needed) when
    every run met the criterion (> 0), else log10(conv_gap / the largest gap a run that did not meet it
    reached) (< 0); −inf when a row is missing."""
    if any(x is None for x in rows):
        return -math.inf
    missed = [float(x.gap) for x in rows if not bool(x.met)]
    if missed:
        return math.log10(conv_gap / max(missed)) if all(np.isfinite(missed)) else -math.inf
    return math.log10(cap / max(int(x.step) for x in rows))


def chosen_of(t: pd.DataFrame, phase: str) -> pd.Series | None:
    """The validation-chosen run of ``phase`` ("lazy" or "catapult") in a seed's ``real`` rows (None: none)."""
    r = t[t.chosen.astype(bool) & (t.phase == phase)]
    return r.iloc[0] if len(r) == 1 else None


def _judge_real(cfg: Config, tables: Tables, add) -> None:
    """(d): the validation-chosen catapult and annealed runs against the validation-chosen lazy run, at equal
    steps, at equal Σηt and trained to convergence, and the check that the chosen runs converged."""
    s, vt, seeds = cfg.claim, cfg.verdicts, cfg.execution.seeds
    r = s.real
    eff: dict[str, list[float]] = {k: [] for k in ("cat", "ann", "cat_time", "ann_time", "cat_conv", "ann_conv",
                                                    "conv")}
    notes: dict[str, list[str]] = {k: [] for k in eff}
    anneal_seeds = cfg.execution.seeds_for(r.anneal_control_seeds)
    for sd in seeds:
        t, ctrl = real_of(tables, sd), controls_of(tables, sd)
        lazy, cat = chosen_of(t, "lazy"), chosen_of(t, "catapult")
        ann = t[t.name == "anneal"]
        a_ann = float(ann.test_acc.iloc[0]) if len(ann) else math.nan
        a_lazy = float(lazy.test_acc) if lazy is not None else math.nan
        a_cat = float(cat.test_acc) if cat is not None else math.nan
        k = int(t.candidate.astype(bool).sum()) // 2
        both = lazy is not None and cat is not None
        eff["cat"].append(a_cat - a_lazy if both else -math.inf)  # a phase without runs: failed
        eff["ann"].append(a_ann - a_lazy if lazy is not None else -math.inf)
        if both:
            desc = (f"seed {sd}: lazy c = {lazy.c:g} (val {lazy.val_acc:.3f}, test {a_lazy:.3f}), catapult "
                    f"c = {cat.c:g} (val {cat.val_acc:.3f}, test {a_cat:.3f}), {k} candidates per phase")
        else:
            desc = (f"seed {sd}: no choice ({int((t.phase == 'lazy').sum())} lazy, "
                    f"{int((t.phase == 'catapult').sum())} catapult runs)")
        desc += f", anneal test {_fmt(a_ann, '.3f', 'NaN')}"
        notes["cat"].append(desc)
        notes["ann"].append(desc)
        for key, ctl, a_big in (("cat_time", "lazy-same-time-catapult", a_cat),
                                ("ann_time", "lazy-same-time-anneal", a_ann)):
            row = _control(ctrl, ctl)
            eff[key].append(a_big - _met_acc(row) if both else -math.inf)
            notes[key].append(f"seed {sd}: " + ("no choice" if not both else "not reached within the cap"
                              if row is None or not bool(row.met) else
                              f"lazy c = {row.c:g} for {int(row.step)} steps, test {row.test_acc:.3f}"))
        lc, cc = _control(ctrl, "lazy-converged"), _control(ctrl, "catapult-converged")
        eff["cat_conv"].append(_met_acc(cc) - _met_acc(lc) if both else -math.inf)
        steps = [int(x.step) if x is not None and bool(x.met) else None for x in (lc, cc)]
        eff["conv"].append(_conv_margin(r.control_max_steps, r.conv_gap, [lc, cc]) if both else -math.inf)
        conv_note = f"seed {sd}: " + ("no choice" if not both else ", ".join(
            f"{name} {'converged at step ' + str(st) + f' (test {_met_acc(x):.3f})' if st else 'not converged'}"
            for name, x, st in (("lazy", lc, steps[0]), ("catapult", cc, steps[1]))))
        notes["cat_conv"].append(conv_note)
        notes["conv"].append(conv_note)
        if sd in anneal_seeds:
            ac = _control(ctrl, "anneal-converged")
            eff["ann_conv"].append(_met_acc(ac) - _met_acc(lc) if lazy is not None else -math.inf)
            notes["ann_conv"].append(f"seed {sd}: anneal " + (f"converged at step {int(ac.step)} (test "
                                     f"{ac.test_acc:.3f})" if ac is not None and bool(ac.met) else
                                     "not converged within the cap") + (f", lazy test {_met_acc(lc):.3f}"
                                                                         if lc is not None and bool(lc.met) else ""))
    sel = "validation-chosen"
    cls = f"CIFAR-10 classes {r.classes}"
    g = vt.min_acc_gain
    add("d-real-catapult-beats-lazy", f"{cls}: the {sel} catapult-phase run has test accuracy at least {g:g} above "
        f"the {sel} lazy-phase run (equal numbers of candidates per phase)",
        "test acc (chosen catapult) − test acc (chosen lazy)", eff["cat"], "superiority", g,
        notes="; ".join(notes["cat"]) + "; no catapult or no lazy run: a failed seed")
    add("d-real-anneal-beats-lazy", f"{cls}: large (η·λ0 = {r.anneal_from:g}) then annealed (to {r.anneal_to:g}) "
        f"beats the {sel} lazy-phase run by at least {g:g} in test accuracy",
        "test acc (anneal) − test acc (chosen lazy)", eff["ann"], "superiority", g,
        notes="; ".join(notes["ann"]) + "; no lazy run: a failed seed")
    add("d-real-catapult-beats-lazy-same-time", f"{cls}: the {sel} catapult-phase run beats the {sel} lazy rate "
        f"trained until its Σηt equals the catapult run's by at least {g:g} in test accuracy",
        "test acc (chosen catapult) − test acc (chosen lazy at equal Σηt)", eff["cat_time"], "superiority", g,
        notes="; ".join(notes["cat_time"]) + f"; not reached within {r.control_max_steps} steps: a failed seed")
    add("d-real-anneal-beats-lazy-same-time", f"{cls}: large then annealed beats the {sel} lazy rate trained "
        f"until its Σηt equals the annealed run's by at least {g:g} in test accuracy",
        "test acc (anneal) − test acc (chosen lazy at equal Σηt)", eff["ann_time"], "superiority", g,
        notes="; ".join(notes["ann_time"]) + f"; not reached within {r.control_max_steps} steps: a failed seed")
    add("d-real-catapult-beats-lazy-converged", f"{cls}: trained until the training loss is within "
        f"{r.conv_gap:g} of the best linear loss, the {sel} catapult-phase run beats the {sel} lazy one by at "
        f"least {g:g} in test accuracy", "test acc at convergence (chosen catapult − chosen lazy)",
        eff["cat_conv"], "superiority", g,
        notes="; ".join(notes["cat_conv"]) + f"; a run not converged within {r.control_max_steps} steps: a failed seed")
    add("d-real-anneal-beats-lazy-converged", f"{cls}: trained until the training loss is within {r.conv_gap:g} of "
        f"the best linear loss (the annealed run continuing at η·λ0 = {r.anneal_to:g}), large then annealed beats "
        f"the {sel} lazy run by at least {g:g} in test accuracy (first {len(anneal_seeds)} seeds)",
        "test acc at convergence (anneal − chosen lazy)", eff["ann_conv"], "superiority", g,
        notes="; ".join(notes["ann_conv"]) + f"; a run not converged within {r.control_max_steps} steps: a failed "
        "seed")
    add("d-real-converged", f"{cls}: the {sel} lazy and catapult runs both reach a training loss within "
        f"{r.conv_gap:g} of the best linear loss within {r.control_max_steps} steps",
        f"log10({r.control_max_steps} / steps the slower of the two needed) when both converged, else "
        f"log10({r.conv_gap:g} / the larger gap to L* a non-converged run reached)", eff["conv"], "bound", 0.0,
        notes="; ".join(notes["conv"]) + "; no lazy or no catapult run: a failed seed")


def width_scaling(cfg: Config, tables: Tables) -> tuple[pd.DataFrame, Interval | None]:
    """(e): c_div by width and seed, and the t interval of the per-seed log-log slope."""
    w = tables["widths"]
    w = pd.concat([w[w.seed == sd] for sd in cfg.execution.seeds], ignore_index=True).drop(columns="job")
    slopes = [_log_slope(g.width.to_numpy(), g.c_div.to_numpy()) for _, g in w.groupby("seed")]
    slopes = [x for x in slopes if np.isfinite(x)]
    return w, (t_interval(slopes) if slopes else None)
