"""PhaseDiagram and SharpnessTrace as tidy tables, and back.

A job stores each sweep as plain tables (one row per (seed, η) and long curves with one row per
(seed, η, step)); judge and report rebuild the objects from them. Every float stays float64 and
the η column keeps the exact values of the sweep, so the rebuilt objects give the same numbers
as the ones the job measured.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...eos import SharpnessTrace
from ...phase import PhaseDiagram


def long_curve(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A curve (rows = steps, columns = η) as rows (seed, eta, step, value), NaN/inf kept."""
    etas = frame.columns.to_numpy(dtype=np.float64)
    steps = frame.index.to_numpy(dtype=np.int64)
    return pd.DataFrame({"seed": np.full(steps.size * etas.size, seed, dtype=np.int64),
                         "eta": np.tile(etas, steps.size), "step": np.repeat(steps, etas.size),
                         "value": frame.to_numpy(dtype=np.float64).ravel()})


def wide_curve(long: pd.DataFrame, etas: np.ndarray) -> pd.DataFrame:
    """The inverse of :func:`long_curve` for one seed: rows = steps, columns = ``etas`` in their order."""
    w = long.pivot(index="step", columns="eta", values="value").reindex(columns=etas)
    w.columns = etas
    w.index = w.index.astype(np.int64).rename("step")
    return w


def phase_tables(pdg: PhaseDiagram, seed: int) -> dict[str, pd.DataFrame]:
    """``sweep`` (one row per η: :meth:`PhaseDiagram.table` with seed, member (the position in the
    sweep), lam0 and curvature), and ``loss`` and, when measured, ``lam`` (λ_t) and ``test_acc``
    as long curves (seed, eta, step, value)."""
    sweep = pdg.table()
    sweep.insert(0, "seed", np.int64(seed))
    sweep.insert(1, "member", np.arange(len(sweep), dtype=np.int64))
    sweep["lam0"] = float(pdg.lam0)
    sweep["curvature"] = pdg.curvature
    out = {"sweep": sweep, "loss": long_curve(pdg.loss, seed)}
    if pdg.lam is not None:
        out["lam"] = long_curve(pdg.lam, seed)
    if pdg.test_acc is not None:
        out["test_acc"] = long_curve(pdg.test_acc, seed)
    return out


def phase_from_tables(sweep: pd.DataFrame, loss: pd.DataFrame, lam: pd.DataFrame | None = None,
                      test_acc: pd.DataFrame | None = None) -> dict[int, PhaseDiagram]:
    """The PhaseDiagram of every seed in ``sweep`` (tables of :func:`phase_tables`, possibly
    concatenated over jobs)."""
    out = {}
    for seed, s in sweep.groupby("seed", sort=False):
        s = s.sort_values("member", kind="stable")
        etas = s.eta.to_numpy(dtype=np.float64)
        phases = [str(p) for p in s.phase]

        def curve(t: pd.DataFrame | None, seed=seed, etas=etas) -> pd.DataFrame | None:
            return None if t is None else wide_curve(t[t.seed == seed], etas)

        ok = [e for e, p in zip(etas, phases) if p != "divergent"]
        out[int(seed)] = PhaseDiagram(float(s.lam0.iloc[0]), str(s.curvature.iloc[0]), etas, phases,
                                      curve(loss), s.lam_final.to_numpy(dtype=np.float64),
                                      float(max(ok)) if ok else None, curve(lam), curve(test_acc))
    return out


def sharpness_tables(trace: SharpnessTrace, seed: int, lam0: float,
                     stability: list[float]) -> dict[str, pd.DataFrame]:
    """``runs`` (one row per η: seed, member (the position in the sweep), stability s,
    eta = 2/(s·λ0), lam0, diverged) and the long curves ``sharpness`` and ``loss`` (seed, eta,
    step, value)."""
    runs = pd.DataFrame({"seed": np.full(len(trace.etas), seed, dtype=np.int64),
                         "member": np.arange(len(trace.etas), dtype=np.int64),
                         "stability": np.asarray(stability, dtype=np.float64),
                         "eta": trace.etas.astype(np.float64), "lam0": float(lam0),
                         "diverged": trace.diverged.astype(bool)})
    return {"runs": runs, "sharpness": long_curve(trace.sharpness, seed), "loss": long_curve(trace.loss, seed)}


def sharpness_from_tables(runs: pd.DataFrame, sharpness: pd.DataFrame,
                          loss: pd.DataFrame) -> dict[int, SharpnessTrace]:
    """The SharpnessTrace of every seed in ``runs`` (tables of :func:`sharpness_tables`)."""
    out = {}
    for seed, r in runs.groupby("seed", sort=False):
        r = r.sort_values("member", kind="stable")
        etas = r.eta.to_numpy(dtype=np.float64)
        out[int(seed)] = SharpnessTrace(etas, wide_curve(sharpness[sharpness.seed == seed], etas),
                                        wide_curve(loss[loss.seed == seed], etas),
                                        r.diverged.to_numpy(dtype=bool))
    return out
