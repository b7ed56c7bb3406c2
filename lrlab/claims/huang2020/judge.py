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


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict from the stored sweeps (the package docstring lists them; the thresholds are
    ``cfg.claim``'s tolerances and ``cfg.verdicts``). A seed whose measurement failed (a blow-up on
    separable data, no catapult onset, no converged catapult run, fewer than two runs for a slope,
    no lazy or no catapult CIFAR-10 run) has a non-finite effect: a failed seed."""
    s, vt, seeds = cfg.claim, cfg.verdicts, cfg.execution.seeds
    v: list[Verdict] = []

    def add(id_, statement, effect, values, test, min_effect, notes=""):
        v.append(verdict(NAME, id_, statement, effect, values, min_effect, REGIME, notes=notes, kind="other",
                         test=test))

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
    gap, anneal, notes = [], [], []
    for sd in seeds:
        t = real_of(tables, sd)
        const = t[t.name != "anneal"]
        lazy = const[(const.rise <= s.rise_tol) & ~const.diverged]
        cat = const[(const.rise > s.rise_tol) & ~const.diverged & np.isfinite(const.final_loss)]
        best_lazy = float(lazy.test_acc.max()) if len(lazy) else math.nan
        best_cat = float(cat.test_acc.max()) if len(cat) else math.nan
        acc_anneal = float(t[t.name == "anneal"].test_acc.iloc[0])
        gap.append(best_cat - best_lazy if len(cat) and len(lazy) else -math.inf)  # a phase missing: failed
        anneal.append(acc_anneal - best_lazy if len(lazy) else -math.inf)
        notes.append(f"seed {sd}: lazy best {_fmt(best_lazy, '.3f', 'no lazy run')}, catapult best "
                     f"{_fmt(best_cat, '.3f', 'no catapult run')} (c = {', '.join(f'{c:g}' for c in cat.c)}), "
                     f"anneal {_fmt(acc_anneal, '.3f', 'undefined')}")
    add("d-real-catapult-beats-lazy", f"CIFAR-10 classes {s.real.classes}: the best catapult-phase run has test "
        f"accuracy at least {vt.min_acc_gain:g} above the best lazy-phase run",
        "max test acc (catapult) − max test acc (lazy)", gap, "superiority", vt.min_acc_gain,
        notes="; ".join(notes) + "; no catapult or no lazy run: a failed seed")
    add("d-real-anneal-beats-lazy", f"CIFAR-10 classes {s.real.classes}: large (η·λ0 = {s.real.anneal_from:g}) then "
        f"annealed (to {s.real.anneal_to:g}) beats the best lazy-phase run by at least {vt.min_acc_gain:g} in "
        "test accuracy", "test acc (anneal) − max test acc (lazy)", anneal, "superiority", vt.min_acc_gain,
        notes="; ".join(notes) + "; no lazy run: a failed seed")
    return v


def width_scaling(cfg: Config, tables: Tables) -> tuple[pd.DataFrame, Interval | None]:
    """(e): c_div by width and seed, and the t interval of the per-seed log-log slope."""
    w = tables["widths"]
    w = pd.concat([w[w.seed == sd] for sd in cfg.execution.seeds], ignore_index=True).drop(columns="job")
    slopes = [_log_slope(g.width.to_numpy(), g.c_div.to_numpy()) for _, g in w.groupby("seed")]
    slopes = [x for x in slopes if np.isfinite(x)]
    return w, (t_interval(slopes) if slopes else None)
