"""Lewkowycz et al. (2020), the catapult mechanism (SPEC §2): lazy, catapult and divergent phases.

Every experiment is full-batch GD with the squared loss on random regression data, from one
initialisation per seed, at learning rates η = c/λ0 with λ0 the top eigenvalue of the
empirical NTK at initialisation. Verdicts, each over seeds with a 95% t interval:

* (a) lazy phase (c < 2): λ changes by less than ``lazy_tol`` (relative) and the loss never rises;
* (b) catapult phase (2 < c < 4): the loss first rises, then converges, and η·λ_T < 2 at the end;
* (c) uv model: divergence sets in at c = 4 (the measured boundary and its interval);
* (d) the peak loss grows with width, and the step of the peak grows like log(width);
* (e) ReLU nets of depth 1–3: the maximal stable c, against the paper's ≈ 12;
* (f) a real task (a CIFAR-10 subset, 10 classes, squared loss on one-hot targets): is the
  best final test accuracy in the catapult phase? (best catapult run − best lazy run);
* edge of stability (Cohen et al. 2021, SPEC "Beyond the papers"): on a small CIFAR-10 MLP
  under full-batch GD the sharpness rises to within ``band`` of 2/η and stays there.

Each (part, seed) is an independent job; with more than one worker they run in local
processes with one torch thread each. Results do not depend on the number of workers.
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


class RealSettings(Strict):
    """(f): full-batch GD of an NTK-parameterised ReLU net on a CIFAR-10 subset, per η·λ0."""

    seeds: list[int] = Field(min_length=2, description="data subset and initialisation seeds")
    n_per_class: int = Field(gt=0, description="training images per class")
    test_per_class: int = Field(gt=0, description="test images per class (a fixed subset)")
    pool: int = Field(4, gt=0, description="average-pool the 32×32 images by this factor")
    width: int = Field(gt=0)
    depth: int = Field(ge=1, le=3)
    steps: int = Field(gt=1)
    grid: list[float] = Field(min_length=3, description="η·λ0 values, λ0 the top NTK eigenvalue")
    test_every: int = Field(gt=0)


class EoSSettings(Strict):
    """Edge of stability: a tanh MLP (PyTorch's default init) on a CIFAR-10 subset, squared loss."""

    seeds: list[int] = Field(min_length=2)
    n_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    width: int = Field(gt=0)
    depth: int = Field(ge=1, le=3)
    steps: int = Field(gt=1)
    every: int = Field(gt=0, description="measure the sharpness every this many steps")
    stability: list[float] = Field(min_length=1, description="2/η in units of the initial "
                                   "sharpness λ0: η = 2/(s·λ0), so s > 1 needs sharpening")
    band: float = Field(0.1, gt=0, lt=1, description="'at 2/η' means within this relative band")


class Settings(Strict):
    """Seeds, the tolerances every verdict is judged against, and the sweep families."""

    seeds: list[int] = Field(min_length=2)
    lazy_tol: float = Field(gt=0, description="largest relative change of λ that counts as lazy")
    rise_tol: float = Field(0.05, ge=0, description="a catapult's loss rises above (1 + rise_tol)·L0")
    boundary_tol: float = Field(gt=0, description="|c* − 4| below this counts as 'at 4/λ0'")
    max_tol: float = Field(gt=0, description="|c_max − paper_max| below this counts as '≈ 12'")
    uv: UVSettings
    relu: ReLUSettings
    real: RealSettings
    eos: EoSSettings


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
    real: dict[int, object] = field(default_factory=dict)  # seed -> PhaseDiagram with test accuracy
    eos: dict[int, object] = field(default_factory=dict)  # seed -> SharpnessTrace
    verdicts: list[Verdict] = field(default_factory=list)
    regime: str = "gd"  # every experiment here is full-batch gradient descent


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
    """Checks that need no training: valid grids and depths, and a readable CIFAR-10 source."""
    from ..data import resolve_source

    s = cfg.claim
    s.uv.boundary.values()
    s.relu.grid.values()
    if any(dep not in (1, 2, 3) for dep in s.relu.depths):
        raise ValueError(f"claim.relu.depths must lie in 1..3, got {s.relu.depths}")
    if any(c <= 0 for c in s.real.grid) or sorted(s.real.grid) != list(s.real.grid):
        raise ValueError(f"claim.real.grid must be increasing positive η·λ0 values, got {s.real.grid}")
    if any(v <= 0 for v in s.eos.stability):
        raise ValueError(f"claim.eos.stability must be positive, got {s.eos.stability}")
    for part in (s.real, s.eos):
        if 32 % part.pool:
            raise ValueError(f"pool must divide 32, got {part.pool}")
    resolve_source()  # names the paths it tried when CIFAR-10 is missing


def _core_job(s: Settings, seed: int) -> dict:
    """The uv sweeps (boundary grid and widths) and the ReLU maximal-rate sweeps of one seed."""
    from ..phase import phase_diagram

    u = s.uv
    cs = np.unique(np.concatenate([[u.lazy_c, u.catapult_c], u.boundary.values()]))
    x, y = regression_data(u.d, u.m, seed)
    uv = phase_diagram(_uv_factory(u.d, u.width, seed), x, y, "squared", scaled_etas=cs,
                       steps=u.steps, seed=seed, rise_tol=s.rise_tol, curvature_every=u.curvature_every)
    rows, relu_rows = [], []
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
    return {"uv": uv, "widths": rows, "relu": relu_rows}


def _real_job(s: Settings, seed: int) -> dict:
    """(f): one seed's sweep of η·λ0 on the CIFAR-10 subset, with final test accuracy."""
    from ..data import cifar10_vectors
    from ..models import NTKMLP
    from ..phase import phase_diagram

    r = s.real
    split = cifar10_vectors(r.n_per_class, r.test_per_class, seed, pool=r.pool)
    d, C = split.train.x.shape[1], split.train.num_classes
    pdg = phase_diagram(lambda: NTKMLP(d, r.width, depth=r.depth, activation="relu", out_dim=C),
                        split.train.x, split.train.y, "squared", scaled_etas=r.grid, steps=r.steps,
                        seed=seed, rise_tol=s.rise_tol, test=(split.test.x, split.test.y),
                        test_every=r.test_every)
    return {"real": pdg}


def _eos_job(s: Settings, seed: int) -> dict:
    """Edge of stability: one seed's sharpness traces at η = 2/(s·λ0) for each s."""
    from ..data import cifar10_vectors
    from ..eos import track_sharpness
    from ..models.mlp import torch_mlp
    from ..probes.curvature import top_hessian_eigs

    e = s.eos
    split = cifar10_vectors(e.n_per_class, 1, seed, pool=e.pool)
    x, y = split.train.x, split.train.y
    factory = torch_mlp(x.shape[1], e.width, e.depth, split.train.num_classes, "tanh")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        lam0 = float(top_hessian_eigs(factory(), x, y, "squared", k=1).values[0])
    lrs = [2 / (k * lam0) for k in e.stability]
    return {"eos": track_sharpness(factory, x, y, "squared", lrs=lrs, steps=e.steps, every=e.every,
                                   seed=seed)}


_JOBS = {"core": _core_job, "real": _real_job, "eos": _eos_job}


def _run_job(cfg_data: dict, part: str, seed: int, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    cfg = ClaimConfig.model_validate(cfg_data)
    return _JOBS[part](cfg.claim, seed)


def run(cfg: ClaimConfig, out: Path, progress: bool = False, log: Callable[[str], None] = print,
        workers: int | None = None) -> list[Outcome]:
    """Run every (part, seed) job — in this process, or over local processes — and judge them."""
    from ..exec.local import default_workers, run_jobs

    s = cfg.claim
    jobs = ([("core", sd) for sd in s.seeds] + [("real", sd) for sd in s.real.seeds]
            + [("eos", sd) for sd in s.eos.seeds])
    n = workers if workers is not None else default_workers(len(jobs))
    log(f"[{NAME}] {len(jobs)} jobs on {n} worker(s): uv and ReLU sweeps for seeds {s.seeds}; "
        f"CIFAR-10 accuracy sweep for seeds {s.real.seeds}; edge of stability for seeds {s.eos.seeds}")
    data = cfg.model_dump(mode="json")
    done = run_jobs(_run_job, [(data, part, sd) for part, sd in jobs], n, log,
                    label=lambda job: f"{job[1]} seed {job[2]}")
    results = dict(zip(jobs, done))
    core = [results[("core", sd)] for sd in s.seeds]
    o = Outcome(cfg, {sd: c["uv"] for sd, c in zip(s.seeds, core)},
                pd.DataFrame([r for c in core for r in c["widths"]]),
                pd.DataFrame([r for c in core for r in c["relu"]]),
                real={sd: results[("real", sd)]["real"] for sd in s.real.seeds},
                eos={sd: results[("eos", sd)]["eos"] for sd in s.eos.seeds})
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
    """Every verdict, (a)–(f) and the edge of stability, from the measured sweeps (module docstring)."""
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
    _judge_real(o, add)
    _judge_eos(o, add)
    return v


def real_summary(pdg) -> dict:
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


def _judge_real(o: Outcome, add: Callable) -> None:
    s = o.cfg.claim.real
    rows = [real_summary(o.real[sd]) for sd in s.seeds]
    gap = [r["catapult"] - r["lazy"] for r in rows]
    add("f-real-best-in-catapult", "CIFAR-10 subset: the best final test accuracy is in the catapult "
        "phase (best catapult run beats best lazy run)", "max test acc (catapult) − max test acc (lazy)",
        [g if np.isfinite(g) else -1.0 for g in gap], 0.0,
        notes="per seed — " + "; ".join(
            f"seed {sd}: best η·λ0 {r['best_c']:.3g} ({r['best_phase']}), lazy {r['lazy']:.3f} "
            f"(η·λ0 {r['lazy_c']:.3g}, train loss {r['lazy_train_loss']:.3f}), catapult "
            f"{r['catapult']:.3f} (η·λ0 {r['catapult_c']:.3g}, train loss {r['catapult_train_loss']:.3f}), "
            f"largest converged η·λ0 {r['c_max']:.3g}" for sd, r in zip(s.seeds, rows)))


def _judge_eos(o: Outcome, add: Callable) -> None:
    e = o.cfg.claim.eos
    for i, k in enumerate(e.stability):
        sums = [o.eos[sd].summary(e.band).iloc[i] for sd in e.seeds]
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
             "empirical NTK at initialisation, normalised as the loss.", "",
             f"(f): CIFAR-10, {s.real.n_per_class} training images per class (a subset per seed), "
             f"{s.real.test_per_class} test images per class, images pooled by {s.real.pool} and "
             f"flattened, ReLU net of depth {s.real.depth} and width {s.real.width} (NTK "
             f"parameterisation), squared loss on one-hot targets, {s.real.steps} full-batch GD steps "
             f"at every η·λ0 of {s.real.grid}; seeds {s.real.seeds}. Each run's phase is read off its "
             "loss curve.", "",
             f"Edge of stability: CIFAR-10, {s.eos.n_per_class} images per class, tanh MLP of depth "
             f"{s.eos.depth} and width {s.eos.width} (PyTorch's default initialisation), squared loss, "
             f"{s.eos.steps} full-batch GD steps at η = 2/(s·λ0) for s in {s.eos.stability} (λ0 = "
             f"sharpness at initialisation), sharpness by Lanczos every {s.eos.every} steps; seeds "
             f"{s.eos.seeds}.", ""]
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
    real, eos = _real_figure(o, figdir), _eos_figures(o, figdir)
    for f, alt in ((traj, "loss and λ_t trajectories"), (phase, "uv phase plot"),
                   (widths, "peak against width"), (relu, "ReLU maximal stable rate"),
                   (real, "test accuracy against η·λ0 on CIFAR-10"), *((f, "edge of stability") for f in eos)):
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


_PHASE_COLORS = {"lazy": "#2a9d8f", "catapult": "#e9c46a", "divergent": "#e76f51"}


def _real_figure(o: Outcome, figdir: Path) -> Path:
    """(f): final test accuracy against η·λ0 per seed, coloured by each run's phase."""
    from ..report.figures import plt, save

    r = o.cfg.claim.real
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for sd in r.seeds:
        tab = o.real[sd].table()
        a.plot(tab.eta_lam0, tab.test_acc, color="0.75", lw=0.8, zorder=1)
        a.scatter(tab.eta_lam0, tab.test_acc, c=[_PHASE_COLORS[p] for p in tab.phase], s=18, zorder=2)
        loss = tab.final_loss.where(tab.phase != "divergent")
        b.plot(tab.eta_lam0, loss, color="0.75", lw=0.8, zorder=1)
        b.scatter(tab.eta_lam0, loss, c=[_PHASE_COLORS[p] for p in tab.phase], s=18, zorder=2)
    for ph, col in _PHASE_COLORS.items():
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
    return save(fig, figdir / f"{NAME}-real-accuracy.png")


def _eos_figures(o: Outcome, figdir: Path) -> list[Path]:
    """Edge of stability: seed 0's loss and sharpness, and S·η/2 of every seed and rate."""
    from ..eos import plot_sharpness
    from ..report.figures import plt, save

    e = o.cfg.claim.eos
    first = plot_sharpness(o.eos[e.seeds[0]], figdir / f"{NAME}-eos-trace.png",
                           title=f"{NAME}: edge of stability, CIFAR-10 tanh MLP, seed {e.seeds[0]}")
    fig, axes = plt.subplots(1, len(e.stability), figsize=(4.2 * len(e.stability), 3.4), squeeze=False)
    for ax, (i, k) in zip(axes[0], enumerate(e.stability)):
        for sd in e.seeds:
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
    return [first, save(fig, figdir / f"{NAME}-eos-ratio.png")]
