"""Learning-rate advice that holds under your own training, not only under full-batch GD.

The phase diagram's largest converging rate is the *divergence edge* of full-batch GD from one
seed: a rate to stay below, not one to train at. :func:`lr_advice` sweeps η around 2/λ0 with the
training you will use (minibatch SGD at ``batch_size``, optionally with momentum), every rate
from several seeds in one vectorised population, and reports three numbers:

* ``divergence_edge``: the smallest η at which any seed diverged. A run counts as diverged when
  its loss became inf/NaN, rose above ``blowup``·L0 at any probe (blown up but finite), or ended
  no lower than L0.
* ``instability_onset``: above the smallest η that converged on every seed, the first η at
  which some seed did not converge (diverged, or too slow).
* ``recommended_lr``: the largest η that converged on *every* seed and lies at most
  min(edge, onset)/``backoff`` (default √2, one half-octave grid step). Converged means: not
  diverged, and the run made at least ``converge`` (default half) of its seed's best progress
  in log-loss: log(L0/L_T) ≥ converge·log(L0/L*_s), with L*_s the lowest final training loss
  that seed reached at any rate where it did not diverge. Stricter than L_T < L0; it holds each
  run to what this step budget and this initialisation can reach, so a model far from converged
  after ``steps``, or one slow initialisation, still gets advice.
* ``best_val_lr`` (with ``val``): the η with the best mean validation accuracy (lowest mean
  validation loss for regression) among rates no seed diverged at.

When the answer sits at the grid's top (nothing diverged) or nothing converged at its bottom,
the grid is extended by ``extend`` grid points that way (at most ``max_extend`` times) and every
such step is reported in ``notes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import TrainConfig
from .data import as_dataset
from .losses import split_loss
from .phase import _gd_setup, initial_curvature
from .progress import stage
from .seeding import seeded
from .train import Constant, Member, train_population


@dataclass
class LRAdvice:
    """The outcome of :func:`lr_advice`: three rates, per-run table, the criterion, notes."""

    lam0: float
    divergence_edge: float | None
    instability_onset: float | None  # the smallest η above the converging ones where a seed failed
    recommended_lr: float | None
    best_val_lr: float | None
    runs: pd.DataFrame  # one row per (η, seed)
    criterion: str
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per η: η·λ0, seeds converged / diverged, mean final loss (and validation)."""
        g = self.runs.groupby("eta", sort=True)
        tab = pd.DataFrame({"eta_lam0": g.eta_lam0.first(), "converged": g.converged.sum(),
                            "diverged": g.diverged.sum(), "seeds": g.size(),
                            "final_loss": g.final_loss.mean()})
        if "val" in self.runs:
            tab["val"] = g.val.mean()
        return tab.reset_index()


def _sweep(model, data, val, etas: np.ndarray, seeds: list[int], cfg: TrainConfig,
           progress: bool, blowup: float, crit: Callable | None = None) -> pd.DataFrame:
    """Train every (η, seed) and mark the diverged runs (convergence is judged on the whole sweep)."""
    members = [Member(f"eta={eta:.6g}", s, Constant(float(eta))) for eta in etas for s in seeds]
    res = train_population(model, members, data, val, cfg, progress=progress, criterion=crit)
    loss = res.curve("train.loss")
    l0 = loss.iloc[0]
    peak = loss.max(skipna=False)
    final = loss.iloc[-1]
    rows = pd.DataFrame({"eta": [m.schedule.lr for m in members], "seed": [m.seed for m in members],
                         "l0": l0.to_numpy(), "final_loss": final.to_numpy(), "peak_ratio": (peak / l0).to_numpy()})
    blew = ~np.isfinite(rows.peak_ratio) | (rows.peak_ratio > blowup) | ~np.isfinite(rows.final_loss)
    rows["diverged"] = res.members.diverged.to_numpy() | blew.to_numpy() | (final >= l0).to_numpy()
    if val is not None:
        metric = "test.loss" if data.task == "regression" else "test.acc"
        rows["val"] = res.final(metric).to_numpy()
        rows.loc[rows.diverged, "val"] = np.nan
    return rows


def _judge(runs: pd.DataFrame, converge: float) -> pd.DataFrame:
    """Mark each run converged when it did not diverge and reached ``converge`` of the best
    log-loss reduction *its seed* reached at any rate (L*_s = the seed's lowest final loss over
    its runs that did not diverge): an initialisation that trains slowly at every rate is held
    to what it can do, and does not veto every rate."""
    runs = runs.copy()
    ok = runs[~runs.diverged]
    l_star = ok.groupby("seed").final_loss.min().reindex(runs.seed).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        made = np.log(runs.l0 / runs.final_loss).to_numpy()
        need = converge * np.log(runs.l0.to_numpy() / l_star)
    runs["converged"] = ~runs.diverged.to_numpy() & (need > 0) & (made >= need)
    return runs


def lr_advice(factory: Callable[[], nn.Module], data: Any, loss: str | Callable = "cross_entropy", *,
              batch_size: int | None = 32, seeds: int | list[int] = 5, steps: int = 500,
              momentum: float = 0.0, val: Any = None, scaled_etas: Any = None,
              converge: float = 0.5, blowup: float = 10.0, backoff: float = math.sqrt(2),
              extend: int = 4, max_extend: int = 3, seed: int = 0, progress: bool = False,
              device: str | torch.device = "cpu") -> LRAdvice:
    """Sweep η = c/λ0 (default c = 2^(−3 … 4) in half-octaves) under minibatch SGD at
    ``batch_size`` (None: full batch) from ``seeds`` seeds each, for ``steps`` steps; return the
    divergence edge, a recommended rate and (with ``val``) the best-generalising rate. ``data``
    and ``val`` are anything :func:`lrlab.data.as_dataset` reads. See the module docstring."""
    train = as_dataset(data, what="data")
    held_out = as_dataset(val, what="val") if val is not None else None
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must name at least one seed")
    for name, value, ok in [("converge", converge, 0 < converge <= 1), ("blowup", blowup, blowup > 1),
                            ("backoff", backoff, backoff >= 1), ("steps", steps, steps >= 2),
                            ("extend", extend, extend >= 1), ("max_extend", max_extend, max_extend >= 0)]:
        if not ok:
            raise ValueError(f"{name} {value!r} is out of range (converge in (0, 1], blowup > 1, "
                             "backoff >= 1, steps >= 2, extend >= 1, max_extend >= 0)")
    if batch_size is not None and not 0 < batch_size <= len(train):
        raise ValueError(f"batch_size {batch_size} must lie in 1..{len(train)} (the training set), or be None")
    model, _ = _gd_setup(factory, train.x, train.y, loss, "lr_advice")
    train, held_out = train.to(device), held_out.to(device) if held_out is not None else None
    with seeded(seed):
        module = factory().to(device)
    with stage("λ0 of the model at initialisation", progress) as on_iter:
        lam0, _ = initial_curvature(module, train.x, train.y, loss, "auto", on_iter)
    if not (math.isfinite(lam0) and lam0 > 0):
        raise ValueError(f"initial curvature λ0 = {lam0} is not positive: cannot place η around 2/λ0")
    cs = np.asarray(scaled_etas if scaled_etas is not None else 2.0 ** np.arange(-3, 4.5, 0.5), dtype=float)
    if cs.ndim != 1 or cs.size < 2 or not np.all(cs > 0):
        raise ValueError(f"scaled_etas must be at least two positive numbers, got {scaled_etas}")
    cs = np.sort(cs)
    ratio = float(np.exp(np.mean(np.diff(np.log(cs)))))
    name, crit = split_loss(loss)
    cfg = TrainConfig(loss=name, steps=steps, batch_size=batch_size, momentum=momentum,
                      eval_every=max(1, steps // 20), device=str(device))
    criterion = (f"converged: no blow-up (loss ≤ {blowup:g}·L0 at every probe, finite, final < L0) and "
                 f"log(L0/L_T) ≥ {converge:g}·log(L0/L*), L* the lowest final training loss the same "
                 f"seed reached at a rate where it did not diverge, after {steps} steps of "
                 + (f"SGD at batch {batch_size}" if batch_size else "full-batch GD")
                 + (f" with momentum {momentum:g}" if momentum else "") + f", on all {len(seed_list)} seeds")
    notes: list[str] = []
    runs = _judge(_sweep(model, train, held_out, cs / lam0, seed_list, cfg, progress, blowup, crit), converge)
    for _ in range(max_extend):
        by_eta = runs.groupby("eta")
        top, bottom = runs.eta.max(), runs.eta.min()
        if not by_eta.diverged.any().any() or bool(by_eta.converged.all()[top]):
            more = top * ratio ** np.arange(1, extend + 1)
            notes.append(f"the largest rate, η = {top:.4g}, did not diverge on any seed or converged on "
                         f"all: grid extended to {more[-1]:.4g}")
        elif not by_eta.converged.all().any() and bool(by_eta.diverged.any()[bottom]):
            more = bottom / ratio ** np.arange(1, extend + 1)
            notes.append(f"no rate converged on every seed and the smallest, η = {bottom:.4g}, diverged: "
                         f"grid extended down to {more[-1]:.4g}")
        else:
            break
        more_runs = _sweep(model, train, held_out, more, seed_list, cfg, progress, blowup, crit)
        runs = _judge(pd.concat([runs, more_runs], ignore_index=True), converge)
    runs["eta_lam0"] = runs.eta * lam0
    runs = runs.sort_values(["eta", "seed"], ignore_index=True)
    by_eta = runs.groupby("eta")
    diverging = by_eta.diverged.any()
    edge = float(diverging[diverging].index.min()) if diverging.any() else None
    everywhere = by_eta.converged.all()
    safe = everywhere[everywhere].index.to_numpy()
    failing = everywhere[~everywhere].index.to_numpy()
    onset = float(failing[failing > safe.min()].min()) if safe.size and (failing > safe.min()).any() else None
    limit = min(x for x in (edge, onset, math.inf) if x is not None)
    safe = safe[safe <= limit / backoff * (1 + 1e-9)]
    if edge is None:
        notes.append(f"no rate diverged even after {max_extend} extensions: the divergence edge lies "
                     "above the grid")
    recommended = float(safe.max()) if safe.size else None
    if recommended is None:
        notes.append("no rate met the convergence criterion on every seed at or below edge/backoff: "
                     f"train longer than {steps} steps or lower converge={converge:g}")
    best = None
    if "val" in runs:
        mean = by_eta.val.mean()
        mean = mean[~diverging]
        if mean.notna().any():
            best = float(mean.idxmin() if train.task == "regression" else mean.idxmax())
            if best in (runs.eta.min(), runs.eta.max()):
                notes.append(f"the best validation rate η = {best:.4g} is at the edge of the grid")
    return LRAdvice(lam0, edge, onset, recommended, best, runs, criterion, notes)


__all__ = ["LRAdvice", "lr_advice"]
