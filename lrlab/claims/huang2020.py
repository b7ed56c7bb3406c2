"""Huang, Du, Xu & Liu (2020), deep linear networks with logistic loss at large learning rates (SPEC §3).

Full-batch GD on the logistic loss with NTK-parameterised linear networks (``DeepLinear``),
η = c/λ0 with λ0 the top eigenvalue of the empirical NTK at initialisation. A run is a
catapult when its loss rises above its running minimum by more than ``rise_tol`` (relative);
it converged when it ends within ``conv_tol`` of the best loss it could reach. Verdicts, each
over seeds with a 95% t interval:

* (a) separable data (degenerate x = y·x̂, and Gaussian data with a margin): the loss never
  rises for any c up to the grid's largest (100);
* (b) degenerate non-separable data with a fraction p of +1 labels: the catapult sets in at
  c = 2/(p(1−p)) (the measured boundary against the formula), and every converged catapult
  run ends with η·p(1−p)·λ_T < 2;
* (c) flatter minima: through the catapult phase the final top eigenvalue of the loss Hessian
  falls as η grows (slope of log λ_H against log c), on degenerate and on Gaussian
  non-separable data;
* (d) two CIFAR-10 classes (non-separable by a linear map at this size): the best catapult-phase
  run, and a large-then-annealed run, against the best lazy-phase run in test accuracy;
* (e) the divergence boundary c_div against width (reported with its log-log slope).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator

from ..config import Strict
from .stats import Verdict, t_interval, verdict_defined

NAME = "huang2020"
TRACE_EVERY = 2  # steps between λ_t probes in the degenerate sweeps (their figure)
RISE_CAP = 1e3  # a run whose loss blew up counts as a rise of this many L0 (keeps intervals finite)
FLOAT32_FLOOR = 1e-7  # relative resolution of a float32 loss (the trajectory figure's floor above L*)
PAPER = "Huang, Du, Xu & Liu 2020 — deep linear networks in the large learning rate phase"


class NetSettings(Strict):
    """A deep linear network (NTK parameterisation) and the GD budget."""

    width: int = Field(gt=0)
    depth: int = Field(2, ge=2, description="weight matrices; 2 is the uv model")
    steps: int = Field(gt=1)


class DegenerateSettings(NetSettings):
    """(a), (b), (c) on degenerate data (every input ±x̂) and (e) on its width sweep."""

    n: int = Field(gt=1)
    d: int = Field(gt=0)
    separable_grid: list[float] = Field(min_length=2, description="c values for (a)")
    ps: list[float] = Field(min_length=1, description="label fractions p for (b)")
    boundary_span: list[float] = Field(min_length=2, max_length=2, description="(b) grid of c from "
                                       "span[0]·c_theory to span[1]·c_theory")
    boundary_points: int = Field(ge=3)
    flat_grid: list[float] = Field(min_length=3, description="(c) c values in units of c_theory")
    widths: list[int] = Field(min_length=3, description="(e) widths of the divergence sweep (p = ps[0])")
    divergence_grid: list[float] = Field(min_length=3, description="(e) c values in units of c_theory")


class GaussianSettings(NetSettings):
    """(a) separable and (c) non-separable Gaussian data in d dimensions."""

    n: int = Field(gt=1)
    d: int = Field(gt=0)
    margin: float = Field(gt=0, description="margin of the separable variant")
    flip: float = Field(gt=0, lt=0.5, description="label-flip rate of the non-separable variant")
    grid: list[float] = Field(min_length=3, description="c values")


class RealSettings(NetSettings):
    """(d) two CIFAR-10 classes, pooled and flattened; test accuracy per η."""

    classes: list[int] = Field(min_length=2, max_length=2)
    n_per_class: int = Field(gt=0)
    test_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    grid: list[float] = Field(min_length=3, description="c values (constant rates)")
    anneal_from: float = Field(gt=0, description="c of the large-then-annealed run")
    anneal_to: float = Field(gt=0, description="c after the anneal")
    anneal_at: int = Field(gt=0, description="step of the anneal")


class Settings(Strict):
    seeds: list[int] = Field(min_length=2)
    rise_tol: float = Field(1e-3, gt=0, description="catapult: the loss rises above its running minimum by more")
    conv_tol: float = Field(1e-3, gt=0, description="converged: final loss within this of the best reachable")
    boundary_tol: float = Field(0.1, gt=0, description="(b) |c* − c_theory|/c_theory below this counts")
    degenerate: DegenerateSettings
    gaussian: GaussianSettings
    real: RealSettings

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        if not all(0 < p < 1 for p in self.degenerate.ps):
            raise ValueError(f"degenerate.ps must lie in (0, 1), got {self.degenerate.ps}")
        lo, hi = self.degenerate.boundary_span
        if not 0 < lo < 1 < hi:
            raise ValueError(f"degenerate.boundary_span must bracket 1, got {[lo, hi]}")
        if self.real.anneal_at >= self.real.steps:
            raise ValueError(f"real.anneal_at {self.real.anneal_at} must be below real.steps {self.real.steps}")
        return self


class ClaimConfig(Strict):
    """The claim config (configs/huang2020/*.yaml): everything lives under ``claim``."""

    claim: Settings


@dataclass
class Outcome:
    cfg: ClaimConfig
    results: dict[tuple[str, int], dict]
    verdicts: list[Verdict] = field(default_factory=list)
    regime: str = "gd"


def preflight(cfg: ClaimConfig) -> None:
    """Checks that need no training: CIFAR-10 classes and a readable source."""
    from ..data import resolve_source

    r = cfg.claim.real
    if len(set(r.classes)) != 2 or not all(0 <= c < 10 for c in r.classes):
        raise ValueError(f"real.classes must be two distinct CIFAR-10 classes in 0..9, got {r.classes}")
    if 32 % r.pool:
        raise ValueError(f"real.pool must divide 32, got {r.pool}")
    resolve_source()


# ------------------------------------------------------------------------------------ measurement
def catapult_rise(loss: np.ndarray) -> float:
    """Largest relative rise of a loss curve above its running minimum (inf if it blew up)."""
    L = np.asarray(loss, dtype=float)
    if not np.isfinite(L).all():
        return math.inf
    floor = np.maximum(np.minimum.accumulate(L), np.finfo(float).tiny)  # a separable loss may reach 0
    return float(np.max(L / floor) - 1)


def _factory(d: int, net: NetSettings) -> Callable[[], torch.nn.Module]:
    from ..models.linear import DeepLinear

    return lambda: DeepLinear(d, net.width, net.depth)


def _sweep(net: NetSettings, x, y, cs, seed: int, curvature_every: int | None = None) -> dict:
    """One vectorised full-batch GD sweep of η = c/λ0 (λ0 = NTK), with final NTK and Hessian λ
    (and λ_t every ``curvature_every`` steps)."""
    from ..phase import phase_diagram

    pdg = phase_diagram(_factory(x.shape[1], net), x, y, "logistic", scaled_etas=cs, steps=net.steps,
                        seed=seed, curvature="ntk", final_hessian=True, curvature_every=curvature_every)
    tab = pdg.table()
    tab["rise"] = [catapult_rise(pdg.loss[e].to_numpy()) for e in pdg.etas]
    tab["max_step_rise"] = [float(np.max(np.diff(pdg.loss[e].to_numpy())) / pdg.loss[e].iloc[0])
                            if np.isfinite(pdg.loss[e].to_numpy()).all() else math.inf for e in pdg.etas]
    return {"table": tab, "loss": pdg.loss, "lam0": pdg.lam0, "lam": pdg.lam}


def _entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _degenerate_job(s: Settings, seed: int) -> dict:
    from ..data.separability import degenerate_nonseparable, degenerate_separable

    g = s.degenerate
    out: dict = {}
    sep = degenerate_separable(g.n, g.d, seed).train
    out["separable"] = _sweep(g, sep.x, sep.y, g.separable_grid, seed, curvature_every=TRACE_EVERY)
    for p in g.ps:
        data = degenerate_nonseparable(g.n, g.d, p, seed).train
        p_real = float((data.y > 0).double().mean())
        theory = 2 / (p_real * (1 - p_real))
        lo, hi = g.boundary_span
        cs = np.unique(np.round(np.concatenate([np.linspace(lo, hi, g.boundary_points),
                                                np.asarray(g.flat_grid)]) * theory, 9))
        r = _sweep(g, data.x, data.y, cs, seed, curvature_every=TRACE_EVERY)
        r.update(p=p, p_real=p_real, theory=theory, best_loss=_entropy(p_real))
        out[f"p={p:g}"] = r
    p = g.ps[0]
    widths = []
    for w in g.widths:
        data = degenerate_nonseparable(g.n, g.d, p, seed).train
        p_real = float((data.y > 0).double().mean())
        cs = np.asarray(g.divergence_grid) * 2 / (p_real * (1 - p_real))
        r = _sweep(g.model_copy(update={"width": w}), data.x, data.y, cs, seed)
        conv = r["table"].final_loss - _entropy(p_real) < s.conv_tol
        bad = r["table"].eta_lam0[~conv.to_numpy()]
        widths.append({"seed": seed, "width": w, "c_div": float(bad.min()) if len(bad) else math.nan,
                       "c_theory": 2 / (p_real * (1 - p_real))})
    out["widths"] = widths
    return out


def _gaussian_job(s: Settings, seed: int) -> dict:
    from ..data.separability import gaussian_data

    g = s.gaussian
    sep = gaussian_data(g.n, g.d, seed, margin=g.margin).train
    non = gaussian_data(g.n, g.d, seed, flip=g.flip).train
    return {"separable": _sweep(g, sep.x, sep.y, g.grid, seed), "nonseparable": _sweep(g, non.x, non.y, g.grid, seed)}


def _real_job(s: Settings, seed: int) -> dict:
    """(d): constant rates at every c of the grid and one large-then-annealed run; test accuracy."""
    from ..config import TrainConfig
    from ..data.separability import cifar_two_class
    from ..models import FromModule
    from ..phase import initial_curvature
    from ..train import Constant, Member, StepDecay, train_population

    r = s.real
    split = cifar_two_class(tuple(r.classes), r.n_per_class, r.test_per_class, seed, pool=r.pool)
    factory = _factory(split.train.x.shape[1], r)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lam0, _ = initial_curvature(factory(), split.train.x, split.train.y, "logistic", "ntk")
    names = [f"c={c:g}" for c in r.grid] + ["anneal"]
    scheds = [Constant(c / lam0) for c in r.grid]
    scheds.append(StepDecay(r.anneal_from / lam0, (r.anneal_at,), r.anneal_to / r.anneal_from))
    res = train_population(FromModule(factory), [Member(n, seed, sc) for n, sc in zip(names, scheds)],
                           split.train, split.test,
                           TrainConfig(loss="logistic", steps=r.steps, batch_size=None, eval_every=1))
    loss, acc = res.curve("train.loss"), res.curve("test.acc")
    loss.columns = acc.columns = names
    tab = pd.DataFrame({"name": names, "c": list(r.grid) + [r.anneal_from],
                        "rise": [catapult_rise(loss[n].to_numpy()) for n in names],
                        "final_loss": loss.iloc[-1].to_numpy(), "test_acc": acc.iloc[-1].to_numpy(),
                        "diverged": res.members.diverged.to_numpy()})
    return {"table": tab, "lam0": lam0, "loss": loss}


def _run_job(cfg_data: dict, part: str, seed: int, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    s = ClaimConfig.model_validate(cfg_data).claim
    return {"degenerate": _degenerate_job, "gaussian": _gaussian_job, "real": _real_job}[part](s, seed)


def run(cfg: ClaimConfig, out: Path, progress: bool = False, log: Callable[[str], None] = print,
        workers: int | None = None) -> list[Outcome]:
    """Every (part, seed) job, in this process or over local processes, then the verdicts."""
    from ..exec.local import default_workers, run_jobs

    s = cfg.claim
    jobs = [(part, sd) for part in ("real", "degenerate", "gaussian") for sd in s.seeds]
    n = workers if workers is not None else default_workers(len(jobs))
    log(f"[{NAME}] {len(jobs)} jobs (degenerate, Gaussian and CIFAR-10 sweeps × seeds {s.seeds}) on {n} worker(s)")
    data = cfg.model_dump(mode="json")
    done = run_jobs(_run_job, [(data, part, sd) for part, sd in jobs], n, log,
                    label=lambda job: f"{job[1]} seed {job[2]}")
    o = Outcome(cfg, dict(zip(jobs, done)))
    o.verdicts = judge(o)
    return [o]


# ------------------------------------------------------------------------------------ verdicts
def _converged(tab: pd.DataFrame, best: float, tol: float) -> np.ndarray:
    return (tab.final_loss - best < tol).to_numpy()


def _log_slope(c: np.ndarray, v: np.ndarray) -> float:
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(c[ok]), np.log(v[ok]), 1)[0])


def judge(o: Outcome) -> list[Verdict]:
    """Every verdict from the measured sweeps (module docstring)."""
    s = o.cfg.claim
    seeds = s.seeds
    v: list[Verdict] = []

    def add(id_, statement, effect, values, notes=""):
        v.append(verdict_defined(NAME, id_, statement, effect, values, 0.0, o.regime, notes=notes))

    D = [o.results[("degenerate", sd)] for sd in seeds]
    G = [o.results[("gaussian", sd)] for sd in seeds]
    g = s.degenerate
    for label, runs in (("degenerate", [r["separable"] for r in D]), ("gaussian", [r["separable"] for r in G])):
        worst = [min(float(r["table"].max_step_rise.max()), RISE_CAP) for r in runs]
        first = []
        for r in runs:
            tab = r["table"]
            rose = tab.eta_lam0[(tab.max_step_rise > 1e-6).to_numpy()]
            first.append(f"{rose.min():g}" if len(rose) else "none")
        cmax = max(float(r["table"].eta_lam0.max()) for r in runs)
        add(f"a-separable-{label}-monotone", f"separable {label} data: the loss never rises for any η·λ0 up to "
            f"{cmax:g} (no catapult)", "1e-6 − max over η and t of (L_{t+1} − L_t)/L0", 1e-6 - np.asarray(worst),
            notes="largest one-step rise / L0 per seed: " + ", ".join(f"{w:.1e}" for w in worst)
            + f" (a blow-up counts as {RISE_CAP:g}); smallest η·λ0 whose loss rose, per seed: " + ", ".join(first))
    for p in g.ps:
        key = f"p={p:g}"
        bnd, edge, slope, rows = [], [], [], []
        for r in (d[key] for d in D):
            tab = r["table"]
            cat = (tab.rise > s.rise_tol).to_numpy() & np.isfinite(tab.final_loss.to_numpy())
            conv = _converged(tab, r["best_loss"], s.conv_tol)
            c_star = float(tab.eta_lam0[cat].min()) if cat.any() else math.nan
            bnd.append(abs(c_star - r["theory"]) / r["theory"] if np.isfinite(c_star) else math.inf)
            ok = cat & conv
            pq = r["p_real"] * (1 - r["p_real"])
            edge.append(2 - float((tab.eta[ok] * pq * tab.lam_final[ok]).max()) if ok.any() else -math.inf)
            slope.append(_log_slope(tab.eta_lam0[ok].to_numpy(), tab.hessian_final[ok].to_numpy()))
            rows.append((c_star, r["theory"], int(ok.sum())))
        add(f"b-boundary-p{p:g}", f"degenerate non-separable data, p = {p:g}: the catapult sets in at "
            f"η·λ0 = 2/(p(1−p)) (within {s.boundary_tol:.0%})", f"{s.boundary_tol} − |c* − c_theory|/c_theory",
            s.boundary_tol - np.asarray(bnd),
            notes="measured c* / theory per seed: " + "; ".join(f"{a:.3g} / {b:.3g}" for a, b, _ in rows)
            + f" (grid step {(g.boundary_span[1] - g.boundary_span[0]) / (g.boundary_points - 1):.3g}·theory)")
        add(f"b-curvature-falls-p{p:g}", f"p = {p:g}: every converged catapult run ends with η·p(1−p)·λ_T < 2",
            "2 − max over converged catapult runs of η·p(1−p)·λ_T", edge,
            notes="converged catapult runs per seed: " + ", ".join(str(k) for *_, k in rows))
        add(f"c-flatter-p{p:g}", f"p = {p:g}: through the catapult phase the final top Hessian eigenvalue "
            "falls as η grows", "− slope of log λ_H(T) against log η·λ0 (converged catapult runs)",
            [-x for x in slope])
    gslope = []
    for r in G:
        tab = r["nonseparable"]["table"]
        ok = (tab.rise > s.rise_tol).to_numpy() & np.isfinite(tab.final_loss.to_numpy())
        ok &= (tab.final_loss <= tab.final_loss[np.isfinite(tab.final_loss)].min() + 0.05).to_numpy()
        gslope.append(_log_slope(tab.eta_lam0[ok].to_numpy(), tab.hessian_final[ok].to_numpy()))
    add("c-flatter-gaussian", f"Gaussian data with {s.gaussian.flip:.0%} flipped labels: through the catapult "
        "phase the final top Hessian eigenvalue falls as η grows",
        "− slope of log λ_H(T) against log η·λ0 (catapult runs that reached the lowest loss ± 0.05)",
        [-x for x in gslope])
    R = [o.results[("real", sd)]["table"] for sd in seeds]
    gap, anneal, notes = [], [], []
    for t in R:
        const = t[t.name != "anneal"]
        lazy = const[(const.rise <= s.rise_tol) & ~const.diverged]
        cat = const[(const.rise > s.rise_tol) & ~const.diverged & np.isfinite(const.final_loss)]
        best_lazy = float(lazy.test_acc.max()) if len(lazy) else math.nan
        gap.append(float(cat.test_acc.max()) - best_lazy if len(cat) and len(lazy) else math.nan)
        anneal.append(float(t[t.name == "anneal"].test_acc.iloc[0]) - best_lazy)
        notes.append(f"lazy best {best_lazy:.3f}, catapult best {cat.test_acc.max() if len(cat) else math.nan:.3f} "
                     f"(c = {', '.join(f'{c:g}' for c in cat.c)}), anneal {t[t.name == 'anneal'].test_acc.iloc[0]:.3f}")
    add("d-real-catapult-beats-lazy", f"CIFAR-10 classes {s.real.classes}: the best catapult-phase run has higher "
        "test accuracy than the best lazy-phase run", "max test acc (catapult) − max test acc (lazy)",
        [x if np.isfinite(x) else -1.0 for x in gap], notes="; ".join(notes) + "; no catapult or no lazy run counts −1")
    add("d-real-anneal-beats-lazy", f"CIFAR-10 classes {s.real.classes}: large (η·λ0 = {s.real.anneal_from:g}) then "
        f"annealed (to {s.real.anneal_to:g}) beats the best lazy-phase run", "test acc (anneal) − max test acc (lazy)",
        [x if np.isfinite(x) else -1.0 for x in anneal])
    return v


def width_scaling(o: Outcome) -> tuple[pd.DataFrame, object]:
    """(e): c_div by width and seed, and the t interval of the per-seed log-log slope."""
    w = pd.DataFrame([row for sd in o.cfg.claim.seeds for row in o.results[("degenerate", sd)]["widths"]])
    slopes = [_log_slope(g.width.to_numpy(), g.c_div.to_numpy()) for _, g in w.groupby("seed")]
    slopes = [x for x in slopes if np.isfinite(x)]
    return w, (t_interval(slopes) if slopes else None)


# ------------------------------------------------------------------------------------ report
_COLORS = {"lazy": "#2a9d8f", "catapult": "#e9c46a", "divergent": "#e76f51"}


def _phase_of(row, rise_tol: float) -> str:
    if not np.isfinite(row.final_loss):
        return "divergent"
    return "catapult" if row.rise > rise_tol else "lazy"


def section(cfg: ClaimConfig, outcomes: list[Outcome], figdir: Path, rel: Path) -> str:
    """The report section: setup, (e)'s scaling, and the figures."""
    o = outcomes[0]
    s = cfg.claim
    g, gs, r = s.degenerate, s.gaussian, s.real
    w, ci = width_scaling(o)
    lines = [f"## {NAME}: {PAPER}", "",
             f"Full-batch GD, logistic loss, deep linear networks in NTK parameterisation (depth {g.depth}, "
             f"width {g.width}), η = c/λ0 with λ0 the top NTK eigenvalue; seeds {s.seeds}. Degenerate data: "
             f"{g.n} examples in R^{g.d}; Gaussian data: {gs.n} examples in R^{gs.d} (margin {gs.margin} or "
             f"{gs.flip:.0%} flipped labels); CIFAR-10 classes {r.classes}, {r.n_per_class} images per class "
             f"pooled by {r.pool}. Catapult: the loss rises above its running minimum by more than "
             f"{s.rise_tol:g} (relative).", "",
             "(e) divergence boundary c_div (smallest η·λ0 that did not converge, p = "
             f"{g.ps[0]:g}) by width (seed mean): " + ", ".join(
                 f"{int(k)}: {v:.3g}" for k, v in w.groupby("width").c_div.mean().items())
             + (f"; log-log slope {ci.mean:.3f} [{ci.low:.3f}, {ci.high:.3f}]" if ci else "; slope undefined"), ""]
    figs = [(_trajectories(o, figdir), "loss and λ_t across η"), (_flatness(o, figdir), "final sharpness against η"),
            (_real_figure(o, figdir), "test accuracy against η")]
    for f, alt in figs:
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


def _trajectories(o: Outcome, figdir: Path) -> Path:
    """Excess loss L_t − L* and η·κ·λ_t (κ = p(1−p), the loss curvature at the minimum; 1 on
    separable data, where λ_t/λ0 is drawn) for a spread of η, seed 0, first 150 steps."""
    from ..report.figures import plt, save

    s = o.cfg.claim
    sd = s.seeds[0]
    d = o.results[("degenerate", sd)]
    panels = [("separable (degenerate)", d["separable"], None)] + [
        (f"non-separable, p = {p:g}", d[f"p={p:g}"], d[f"p={p:g}"]) for p in s.degenerate.ps]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 6.2), squeeze=False)
    for j, (title, r, ns) in enumerate(panels):
        tab = r["table"]
        best = ns["best_loss"] if ns else 0.0
        kappa = ns["p_real"] * (1 - ns["p_real"]) if ns else None
        pick = tab.iloc[np.unique(np.linspace(0, len(tab) - 1, 7).round().astype(int))]
        top = float(r["loss"].iloc[0].max() - best) * 1e2
        for _, row in pick.iterrows():
            col = _COLORS[_phase_of(row, s.rise_tol)]
            L = r["loss"][row.eta].to_numpy() - best
            # below ~1e-7·L* the float32 loss is rounding noise: draw it at that floor
            floor = FLOAT32_FLOOR * best if ns else 1e-30
            L = np.where(np.isfinite(L) & (L < top), np.maximum(L, floor), np.nan)
            axes[0][j].plot(r["loss"].index, L, lw=1, color=col, label=f"η·λ0 = {row.eta_lam0:.3g}")
            if r.get("lam") is not None:
                lam = r["lam"][row.eta]
                y = row.eta * kappa * lam if kappa else lam / r["lam0"]
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
    return save(fig, figdir / f"{NAME}-trajectories.png")


def _flatness(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    s = o.cfg.claim
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    marks = dict(zip(s.degenerate.ps, "o^sD"))
    for sd in s.seeds:
        for p in s.degenerate.ps:
            r = o.results[("degenerate", sd)][f"p={p:g}"]
            tab = r["table"]
            cols = [_COLORS[_phase_of(row, s.rise_tol)] for _, row in tab.iterrows()]
            axes[0].scatter(tab.eta_lam0, tab.eta * r["p_real"] * (1 - r["p_real"]) * tab.lam_final, s=8, c=cols,
                            marker=marks[p], label=f"p = {p:g}" if sd == s.seeds[0] else None)
            axes[0].axvline(r["theory"], color="0.5", lw=0.6, ls=":")
            axes[1].scatter(tab.eta_lam0, tab.hessian_final, s=8, c=cols, marker=marks[p],
                            label=f"p = {p:g}" if sd == s.seeds[0] else None)
        tab = o.results[("gaussian", sd)]["nonseparable"]["table"]
        axes[2].scatter(tab.eta_lam0, tab.hessian_final, s=8, c=[_COLORS[_phase_of(row, s.rise_tol)]
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
    return save(fig, figdir / f"{NAME}-flatness.png")


def _real_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    s = o.cfg.claim
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for sd in s.seeds:
        t = o.results[("real", sd)]["table"]
        const = t[t.name != "anneal"]
        ax.plot(const.c, const.test_acc, color="0.75", lw=0.8, zorder=1)
        ax.scatter(const.c, const.test_acc, s=18, zorder=2,
                   c=[_COLORS["divergent"] if dv else _COLORS["catapult" if rs > s.rise_tol else "lazy"]
                      for rs, dv in zip(const.rise, const.diverged)])
        a = t[t.name == "anneal"]
        ax.scatter(a.c, a.test_acc, marker="*", s=60, color="#264653", zorder=3)
    onsets, divs = [], []
    for sd in s.seeds:  # the measured phase boundaries of each seed
        const = o.results[("real", sd)]["table"]
        const = const[const.name != "anneal"]
        cat = const[(const.rise > s.rise_tol) & ~const.diverged]
        onsets.append(float(cat.c.min()) if len(cat) else np.nan)
        dv = const[const.diverged]
        divs.append(float(dv.c.min()) if len(dv) else np.nan)
    for vals, col, lab in ((onsets, _COLORS["catapult"], "catapult sets in"),
                           (divs, _COLORS["divergent"], "divergence sets in")):
        vals = [x for x in vals if np.isfinite(x)]
        if vals:
            ax.axvline(float(np.median(vals)), color=col, lw=1.2, ls="--",
                       label=f"{lab} (median over seeds: η·λ0 = {np.median(vals):g})")
    ax.scatter([], [], marker="*", color="#264653", label=f"large then annealed (to {s.real.anneal_to:g})")
    for ph in ("lazy", "catapult"):
        ax.scatter([], [], color=_COLORS[ph], label=ph)
    ax.set_xscale("log")
    ax.set_xlabel("η·λ0")
    ax.set_ylabel("final test accuracy")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (d): CIFAR-10 classes {s.real.classes}, deep linear net", fontsize=10)
    return save(fig, figdir / f"{NAME}-real-accuracy.png")
