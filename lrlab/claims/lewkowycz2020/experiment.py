"""lewkowycz2020 jobs: per seed, the uv and ReLU sweeps (core), the CIFAR-10 accuracy sweep (real)
and the edge-of-stability runs (eos), each returning tidy tables (see docs/claims/lewkowycz2020.md)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...data import cifar10_vectors, resolve_source
from ...eos import track_sharpness
from ...models import NTKMLP, UVModel
from ...models.mlp import torch_mlp
from ...phase import phase_diagram
from ...probes.curvature import top_hessian_eigs
from ...seeding import seeded
from ..protocol import Job, JobContext, seed_job
from .config import Config, Settings
from .tables import phase_tables, sharpness_tables

PARTS = ("core", "real", "eos")


def regression_data(d: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I/d) (so |x| ≈ 1) and y ~ N(0, 1), from ``seed``."""
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randn(m, d, generator=g) / d**0.5, torch.randn(m, generator=g)


def _uv_factory(d: int, width: int, seed: int) -> Callable[[], nn.Module]:
    uv = UVModel(d, width)
    params = uv.init([seed])
    return lambda: uv.to_module(params, 0)


def _mlp_factory(d: int, width: int, depth: int) -> Callable[[], nn.Module]:
    return lambda: NTKMLP(d, width, depth=depth, activation="relu")


def preflight(cfg: Config) -> None:
    """Checks that need no training: valid grids and depths, and a readable CIFAR-10 source."""
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


def jobs(cfg: Config) -> list[Job]:
    """One job per (part, seed): core for every seed; real and eos for their stated prefix of seeds."""
    return ([seed_job("core", sd, cpus=1, memory_gb=1.0) for sd in cfg.execution.seeds]
            + [seed_job("real", sd, cpus=1, memory_gb=1.5) for sd in cfg.real_seeds()]
            + [seed_job("eos", sd, cpus=1, memory_gb=1.5) for sd in cfg.eos_seeds()])


def _core_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """The uv sweeps (boundary grid and widths) and the ReLU maximal-rate sweeps of one seed."""
    u = s.uv
    cs = np.unique(np.concatenate([[u.lazy_c, u.catapult_c], u.boundary.values()]))
    x, y = regression_data(u.d, u.m, seed)  # phase_diagram moves the data to ``device``
    uv = phase_diagram(_uv_factory(u.d, u.width, seed), x, y, "squared", scaled_etas=cs, steps=u.steps,
                       seed=seed, rise_tol=s.rise_tol, curvature_every=u.curvature_every, device=device)
    rows, relu_rows = [], []
    for width in u.widths:
        pdg = phase_diagram(_uv_factory(u.d, width, seed), x, y, "squared", scaled_etas=[u.catapult_c],
                            steps=u.steps, seed=seed, rise_tol=s.rise_tol, device=device)
        c = pdg.loss.iloc[:, 0]
        rows.append({"seed": seed, "width": width, "peak_loss": float(c.max() / c.iloc[0]),
                     "peak_step": int(c.idxmax()), "phase": pdg.phases[0]})
    xr, yr = regression_data(s.relu.d, s.relu.m, seed)
    for depth in s.relu.depths:
        pdg = phase_diagram(_mlp_factory(s.relu.d, s.relu.width, depth), xr, yr, "squared",
                            scaled_etas=s.relu.grid.values(), steps=s.relu.steps, seed=seed,
                            rise_tol=s.rise_tol, device=device)
        conv = [c for c, ph in zip(pdg.etas * pdg.lam0, pdg.phases) if ph != "divergent"]
        relu_rows.append({"seed": seed, "depth": depth, "c_max": max(conv) if conv else np.nan,
                          "lam0": pdg.lam0})
    tabs = {f"uv_{k}": v for k, v in phase_tables(uv, seed).items()}
    tabs["uv_widths"] = pd.DataFrame(rows, columns=["seed", "width", "peak_loss", "peak_step", "phase"])
    tabs["relu_max"] = pd.DataFrame(relu_rows, columns=["seed", "depth", "c_max", "lam0"]).astype(
        {"c_max": np.float64, "lam0": np.float64})
    return tabs


def _real_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(f): one seed's sweep of η·λ0 on the CIFAR-10 subset, with final test accuracy."""
    r = s.real
    split = cifar10_vectors(r.n_per_class, r.test_per_class, seed, pool=r.pool)
    train, test = split.train, split.test  # phase_diagram moves them to ``device``
    d, C = train.x.shape[1], train.num_classes
    pdg = phase_diagram(lambda: NTKMLP(d, r.width, depth=r.depth, activation="relu", out_dim=C),
                        train.x, train.y, "squared", scaled_etas=r.grid, steps=r.steps, seed=seed,
                        rise_tol=s.rise_tol, test=(test.x, test.y), test_every=r.test_every, device=device)
    return {f"real_{k}": v for k, v in phase_tables(pdg, seed).items()}


def _eos_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """Edge of stability: one seed's sharpness traces at η = 2/(s·λ0) for each s."""
    e = s.eos
    train = cifar10_vectors(e.n_per_class, 1, seed, pool=e.pool).train.to(device)  # λ0 uses it directly
    x, y = train.x, train.y
    factory = torch_mlp(x.shape[1], e.width, e.depth, train.num_classes, "tanh")
    with seeded(seed):
        lam0 = float(top_hessian_eigs(factory().to(device), x, y, "squared", k=1).values[0])
    lrs = [2 / (k * lam0) for k in e.stability]
    trace = track_sharpness(factory, x, y, "squared", lrs=lrs, steps=e.steps, every=e.every, seed=seed,
                            device=device)
    return {f"eos_{k}": v for k, v in sharpness_tables(trace, seed, lam0, e.stability).items()}


_JOBS = {"core": _core_job, "real": _real_job, "eos": _eos_job}


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    """One (part, seed) job on ``ctx.device``: its tidy tables."""
    return _JOBS[job.part](cfg.claim, int(job.params["seed"]), ctx.device)
