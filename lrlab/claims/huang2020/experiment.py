"""huang2020 jobs: per seed, the degenerate sweeps, the Gaussian sweeps and the CIFAR-10 runs, each
returned as tidy tables (docs/claims/huang2020.md lists them)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
import torch

from ...config import TrainConfig
from ...data import resolve_source
from ...data.separability import cifar_two_class, degenerate_nonseparable, degenerate_separable, gaussian_data
from ...models import FromModule
from ...models.linear import DeepLinear
from ...phase import initial_curvature, phase_diagram
from ...seeding import seeded
from ...train import Constant, Member, StepDecay, train_population
from ..protocol import Job, JobContext, Resources, seed_job
from .config import Config, NetSettings, Settings

PARTS = ("real", "degenerate", "gaussian")
TRACE_EVERY = 2  # steps between λ_t probes in the degenerate sweeps (their figure)
DEPTH_PART = "depth"  # the onset sweep over depth: one job per (depth, seed), keyed depth<L>-seed<s>
MEMORY_GB = {"real": 2.0, "degenerate": 1.0, "gaussian": 0.5, DEPTH_PART: 0.5}  # rough, at paper scale


def depth_job(depth: int, seed: int) -> Job:
    """The catapult-onset sweep at depth ``depth`` for ``seed``."""
    return Job(f"{DEPTH_PART}{depth}-seed{seed}", DEPTH_PART, {"seed": seed, "depth": depth},
               Resources(cpus=1, memory_gb=MEMORY_GB[DEPTH_PART]))


def jobs(cfg: Config) -> list[Job]:
    """One job per (part, seed): the CIFAR-10 runs, the degenerate sweeps, the Gaussian sweeps; then one
    per (depth, seed) for the onset sweep over depth (added after the others, so their keys stay)."""
    seeds = cfg.execution.seeds
    return ([seed_job(part, sd, cpus=1, memory_gb=MEMORY_GB[part]) for part in PARTS for sd in seeds]
            + [depth_job(L, sd) for L in cfg.claim.degenerate.depths for sd in seeds])


def preflight(cfg: Config) -> None:
    """Checks that need no training: a readable CIFAR-10 source (classes and pooling are checked
    by the config schema)."""
    resolve_source()


# ------------------------------------------------------------------------------------ measurement
def catapult_rise(loss: np.ndarray) -> float:
    """Largest relative rise of a loss curve above its running minimum (inf if it blew up)."""
    L = np.asarray(loss, dtype=float)
    if not np.isfinite(L).all():
        return math.inf
    floor = np.maximum(np.minimum.accumulate(L), np.finfo(float).tiny)  # a separable loss may reach 0
    return float(np.max(L / floor) - 1)


def entropy(p: float) -> float:
    """Binary entropy (nats): the lowest logistic loss on degenerate data with a fraction p of +1."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _factory(d: int, net: NetSettings) -> Callable[[], torch.nn.Module]:
    return lambda: DeepLinear(d, net.width, net.depth)


def _long(curves: pd.DataFrame, keys: dict, column: str = "eta") -> pd.DataFrame:
    """A steps × runs frame as long rows (keys…, column, step, value), run by run, NaN kept."""
    steps = curves.index.to_numpy(dtype=np.int64)
    runs = np.asarray(curves.columns)
    vals = curves.to_numpy().T.ravel()  # run-major
    out = pd.DataFrame({k: [v] * len(vals) for k, v in keys.items()})
    out[column] = np.repeat(runs, len(steps))
    out["step"] = np.tile(steps, len(runs))
    out["value"] = vals
    return out


class _Sweeps:
    """Collects one job's sweeps as rows of the ``sweeps``, ``runs``, ``loss`` and ``lam`` tables."""

    def __init__(self, seed: int):
        self.seed = seed
        self.sweeps: list[dict] = []
        self.runs: list[pd.DataFrame] = []
        self.loss: list[pd.DataFrame] = []
        self.lam: list[pd.DataFrame] = []

    def add(self, name: str, r: dict, p: float = math.nan, p_real: float = math.nan, theory: float = math.nan,
            best_loss: float = math.nan) -> None:
        keys = {"seed": self.seed, "sweep": name}
        self.sweeps.append({**keys, "lam0": float(r["lam0"]), "p": float(p), "p_real": float(p_real),
                            "theory": float(theory), "best_loss": float(best_loss)})
        tab = r["table"]
        self.runs.append(pd.concat([pd.DataFrame(keys, index=tab.index), tab], axis=1))
        self.loss.append(_long(r["loss"], keys))
        if r["lam"] is not None:
            self.lam.append(_long(r["lam"], keys))

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"sweeps": pd.DataFrame(self.sweeps), "runs": pd.concat(self.runs, ignore_index=True),
               "loss": pd.concat(self.loss, ignore_index=True)}
        if self.lam:
            out["lam"] = pd.concat(self.lam, ignore_index=True)
        return out


def _sweep(net: NetSettings, x, y, cs, seed: int, device: str, curvature_every: int | None = None) -> dict:
    """One vectorised full-batch GD sweep of η = c/λ0 (λ0 = NTK), with final NTK and Hessian λ
    (and λ_t every ``curvature_every`` steps); phase_diagram moves x, y to ``device``."""
    pdg = phase_diagram(_factory(x.shape[1], net), x, y, "logistic", scaled_etas=cs, steps=net.steps,
                        seed=seed, curvature="ntk", final_hessian=True, curvature_every=curvature_every,
                        device=device)
    tab = pdg.table()
    tab["rise"] = [catapult_rise(pdg.loss[e].to_numpy()) for e in pdg.etas]
    tab["max_step_rise"] = [float(np.max(np.diff(pdg.loss[e].to_numpy())) / pdg.loss[e].iloc[0])
                            if np.isfinite(pdg.loss[e].to_numpy()).all() else math.inf for e in pdg.etas]
    return {"table": tab, "loss": pdg.loss, "lam0": pdg.lam0, "lam": pdg.lam}


def _degenerate_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(a) separable, (b)/(c) one sweep per p, and (e) the divergence boundary per width."""
    g = s.degenerate
    out = _Sweeps(seed)
    sep = degenerate_separable(g.n, g.d, seed).train
    out.add("separable", _sweep(g, sep.x.to(device), sep.y.to(device), g.separable_grid, seed, device,
                                curvature_every=TRACE_EVERY))
    for p in g.ps:
        data = degenerate_nonseparable(g.n, g.d, p, seed).train
        p_real = float((data.y > 0).double().mean())
        theory = 2 / (p_real * (1 - p_real))
        lo, hi = g.boundary_span
        cs = np.unique(np.round(np.concatenate([np.linspace(lo, hi, g.boundary_points),
                                                np.asarray(g.flat_grid)]) * theory, 9))
        r = _sweep(g, data.x.to(device), data.y.to(device), cs, seed, device, curvature_every=TRACE_EVERY)
        out.add(f"p={p:g}", r, p=p, p_real=p_real, theory=theory, best_loss=entropy(p_real))
    p = g.ps[0]
    widths = []
    for w in g.widths:
        data = degenerate_nonseparable(g.n, g.d, p, seed).train
        p_real = float((data.y > 0).double().mean())
        cs = np.asarray(g.divergence_grid) * 2 / (p_real * (1 - p_real))
        r = _sweep(g.model_copy(update={"width": w}), data.x.to(device), data.y.to(device), cs, seed, device)
        conv = r["table"].final_loss - entropy(p_real) < s.conv_tol
        bad = r["table"].eta_lam0[~conv.to_numpy()]
        widths.append({"seed": seed, "width": w, "c_div": float(bad.min()) if len(bad) else math.nan,
                       "c_theory": 2 / (p_real * (1 - p_real))})
    return {**out.tables(), "widths": pd.DataFrame(widths)}


def boundary_grid(s: Settings, theory: float) -> np.ndarray:
    """The (b) boundary grid of η·λ0: boundary_points values from boundary_span[0] to [1] × theory."""
    lo, hi = s.degenerate.boundary_span
    return np.unique(np.round(np.linspace(lo, hi, s.degenerate.boundary_points) * theory, 9))


def _depth_job(s: Settings, seed: int, depth: int, device: str) -> dict[str, pd.DataFrame]:
    """(b, depth): the degenerate non-separable sweep (p = ps[0]) over the boundary grid at depth ``depth``;
    c* is the smallest η·λ0 whose loss rises by more than rise_tol above its running minimum and still ends
    within conv_tol of the binary entropy (NaN when no run does)."""
    g = s.degenerate
    p = g.ps[0]
    data = degenerate_nonseparable(g.n, g.d, p, seed).train
    p_real = float((data.y > 0).double().mean())
    theory = 2 / (p_real * (1 - p_real))
    net = g.model_copy(update={"depth": depth})
    pdg = phase_diagram(_factory(data.x.shape[1], net), data.x.to(device), data.y.to(device), "logistic",
                        scaled_etas=boundary_grid(s, theory), steps=g.steps, seed=seed, curvature="ntk",
                        device=device)
    tab = pdg.table()
    rise = np.array([catapult_rise(pdg.loss[e].to_numpy()) for e in pdg.etas])
    fin = np.isfinite(tab.final_loss.to_numpy())
    cat = (rise > s.rise_tol) & fin
    conv = (tab.final_loss - entropy(p_real) < s.conv_tol).to_numpy()
    c = tab.eta_lam0.to_numpy()
    runs = pd.DataFrame({"seed": seed, "depth": depth, "eta": tab.eta.to_numpy(), "eta_lam0": c, "rise": rise,
                         "final_loss": tab.final_loss.to_numpy(), "lam_final": tab.lam_final.to_numpy(),
                         "converged": conv})
    row = {"seed": seed, "depth": depth, "p": float(p), "p_real": p_real, "lam0": float(pdg.lam0),
           "c_theory": theory, "c_star": float(c[cat & conv].min()) if (cat & conv).any() else math.nan,
           "c_rise": float(c[cat].min()) if cat.any() else math.nan,
           "grid_step": float(np.diff(c).min()) if len(c) > 1 else math.nan}
    return {"depths": pd.DataFrame([row]), "depth_runs": runs}


def _gaussian_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(a) separable and (c) non-separable Gaussian data."""
    g = s.gaussian
    out = _Sweeps(seed)
    for name, split in (("gaussian-separable", gaussian_data(g.n, g.d, seed, margin=g.margin)),
                        ("gaussian-nonseparable", gaussian_data(g.n, g.d, seed, flip=g.flip))):
        out.add(name, _sweep(g, split.train.x.to(device), split.train.y.to(device), g.grid, seed, device))
    return out.tables()


def _real_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(d): constant rates at every c of the grid and one large-then-annealed run; test accuracy."""
    r = s.real
    split = cifar_two_class(tuple(r.classes), r.n_per_class, r.test_per_class, seed, pool=r.pool)
    train, test = split.train.to(device), split.test.to(device)
    factory = _factory(train.x.shape[1], r)
    with seeded(seed):
        lam0, _ = initial_curvature(factory().to(device), train.x, train.y, "logistic", "ntk")
    names = [f"c={c:g}" for c in r.grid] + ["anneal"]
    scheds = [Constant(c / lam0) for c in r.grid]
    scheds.append(StepDecay(r.anneal_from / lam0, (r.anneal_at,), r.anneal_to / r.anneal_from))
    res = train_population(FromModule(factory), [Member(n, seed, sc) for n, sc in zip(names, scheds)], train, test,
                           TrainConfig(loss="logistic", steps=r.steps, batch_size=None, eval_every=1, device=device))
    loss, acc = res.curve("train.loss"), res.curve("test.acc")
    loss.columns = acc.columns = names
    tab = pd.DataFrame({"seed": seed, "name": names, "c": [float(c) for c in r.grid] + [float(r.anneal_from)],
                        "rise": [catapult_rise(loss[n].to_numpy()) for n in names],
                        "final_loss": loss.iloc[-1].to_numpy(), "test_acc": acc.iloc[-1].to_numpy(),
                        "diverged": res.members.diverged.to_numpy(), "lam0": float(lam0)})
    return {"real": tab, "real_loss": _long(loss, {"seed": seed}, column="name")}


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    if job.part == DEPTH_PART:
        return _depth_job(cfg.claim, int(job.params["seed"]), int(job.params["depth"]), ctx.device)
    part = {"degenerate": _degenerate_job, "gaussian": _gaussian_job, "real": _real_job}[job.part]
    return part(cfg.claim, int(job.params["seed"]), ctx.device)
