"""Phase diagram for any model (Lewkowycz et al. 2020): lazy, catapult or divergent, per η.

Measure the initial curvature λ0, train one population of full-batch GD members from the same
initialisation at learning rates spread around 2/λ0, classify each loss curve, and recommend
the largest learning rate that converged. One vectorised run does the whole sweep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .config import TrainConfig
from .data import Dataset, StackedData, as_dataset, xy_of
from .losses import check_loss, split_loss
from .models import FromModule
from .probes.accuracy import group_metrics
from .probes.curvature import population_top_eigs, top_hessian_eigs
from .probes.ntk import ntk_top_eigenvalue, population_ntk_top_eigenvalue
from .progress import stage
from .seeding import seeded
from .train import Constant, Member, train_population

PHASES = ("lazy", "catapult", "divergent")


def classify(loss: Sequence[float], diverged: bool = False, rise_tol: float = 0.05) -> str:
    """Phase of one full-batch GD loss curve (first value = loss at initialisation).

    divergent: the run diverged (inf/NaN) or ends no lower than it started; catapult: the loss
    first rises above (1 + rise_tol)·L0 and then ends below L0; lazy: it never rises that far
    and ends below L0.
    """
    arr = np.asarray(loss, dtype=float)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"need a loss curve of at least 2 values, got shape {arr.shape}")
    if rise_tol < 0:
        raise ValueError(f"rise_tol must be >= 0, got {rise_tol}")
    finite = arr[np.isfinite(arr)]
    if diverged or not np.isfinite(arr[-1]) or finite.size < arr.size or arr[-1] >= arr[0]:
        return "divergent"
    return "catapult" if finite.max() > (1 + rise_tol) * arr[0] else "lazy"


@dataclass
class PhaseDiagram:
    """The sweep's outcome: λ0, each η with its phase, loss curves and final curvature."""

    lam0: float
    curvature: str
    etas: np.ndarray
    phases: list[str]
    loss: pd.DataFrame  # rows = steps, columns = η
    lam_final: np.ndarray
    recommended_lr: float | None
    lam: pd.DataFrame | None = None  # λ_t every ``curvature_every`` steps (rows) per η (columns)
    test_acc: pd.DataFrame | None = None  # test accuracy every ``test_every`` steps and at the end
    hessian_final: np.ndarray | None = None  # top loss-Hessian eigenvalue at the end (flatness)

    def table(self) -> pd.DataFrame:
        """One row per η: η·λ0, phase, final loss, final curvature, η·λ_T (and final test accuracy)."""
        tab = pd.DataFrame({
            "eta": self.etas, "eta_lam0": self.etas * self.lam0, "phase": self.phases,
            "final_loss": self.loss.iloc[-1].to_numpy(), "lam_final": self.lam_final,
            "eta_lam_final": self.etas * self.lam_final,
        })
        if self.test_acc is not None:
            tab["test_acc"] = self.test_acc.iloc[-1].to_numpy()
        if self.hessian_final is not None:
            tab["hessian_final"] = self.hessian_final
        return tab

    @property
    def divergence_edge(self) -> float | None:
        """The largest η whose full-batch GD converged from this one seed (``recommended_lr``, the
        older name): a rate to stay below, not one to train at — :func:`lrlab.lr_advice` gives that."""
        return self.recommended_lr

    @property
    def best_test_lr(self) -> float | None:
        """The η with the highest final test accuracy (None without a test set or if all diverged)."""
        if self.test_acc is None:
            return None
        acc = self.test_acc.iloc[-1].to_numpy(dtype=float)
        return None if np.isnan(acc).all() else float(self.etas[int(np.nanargmax(acc))])


def _gd_setup(factory: Callable[[], nn.Module], x: Tensor, y: Tensor, loss: str, who: str):
    """The population model of ``factory`` and the dataset of (x, y) for a full-batch GD sweep,
    with errors naming ``who`` for models it cannot train and loss/label mismatches."""
    try:
        model = FromModule(factory)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{who} cannot use this model: {e}") from None
    if model.stochastic:
        raise ValueError(f"{who} needs a deterministic model (no dropout or activation noise)")
    data = _dataset(x, y)
    check_loss(loss, data.task)
    return model, data


def _dataset(x: Tensor, y: Tensor) -> Dataset:
    return as_dataset((x, y))


CURVATURES = ("auto", "ntk", "hessian")


def initial_curvature(module: nn.Module, x: Tensor, y: Tensor, loss: str,
                      curvature: str = "auto", on_iter: Callable[[int, int], None] | None = None) -> tuple[float, str]:
    """λ0: the top NTK eigenvalue (normalised as the squared loss, docs/spec.md §2) or the top eigenvalue
    of the loss Hessian at initialisation. ``auto`` takes the NTK for the squared loss and the
    Hessian otherwise; Huang et al. measure logistic-loss rates against the NTK (``ntk``)."""
    if curvature not in CURVATURES:
        raise ValueError(f"curvature must be one of {list(CURVATURES)}, got {curvature!r}")
    if curvature == "ntk" or (curvature == "auto" and loss == "squared"):
        return float(ntk_top_eigenvalue(module, x)), "ntk"
    return float(top_hessian_eigs(module, x, y, loss, k=1, on_iter=on_iter).values[0]), "hessian"


def phase_diagram(factory: Callable[[], nn.Module], x: Any, y: Tensor | None = None,
                  loss: str | Callable = "squared", *,
                  scaled_etas: Sequence[float] | None = None, steps: int = 200, seed: int = 0,
                  eval_every: int = 1, rise_tol: float = 0.05, curvature_every: int | None = None,
                  test: tuple[Tensor, Tensor] | None = None, test_every: int | None = None,
                  curvature: str = "auto", final_hessian: bool = False,
                  progress: bool = False, device: str | torch.device = "cpu") -> PhaseDiagram:
    """Sweep η = c/λ0 for c in ``scaled_etas`` (default 0.5…16, geometric) with full-batch GD
    from one initialisation, classify each run and recommend the largest η that converged.

    ``factory`` builds the model (called under ``torch.manual_seed(seed)``); ``x``/``y`` are
    the training set (``y`` real targets for regression with the squared loss, ±1 floats for
    binary, class indices for multiclass); or pass your data as ``x`` alone: an (x, y) pair, a
    ``TensorDataset``, a ``DataLoader`` (read once) or a map-style dataset. ``curvature_every``
    also records λ_t (the same curvature as λ0) every that many steps. ``test`` = (x, y) of a held-out set adds the test
    accuracy of every η at the end (and every ``test_every`` steps), so the best-generalising η
    can be set beside the phases (Lewkowycz et al. find it in the catapult phase).
    ``curvature`` picks λ0 (see :func:`initial_curvature`). ``final_hessian`` also measures the
    top eigenvalue of the loss Hessian at the end of every run (how flat the minimum is).
    ``device``: where the data, λ0 and the sweep live (cpu, cuda, …).
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    x, y = xy_of(x, y, "phase_diagram")
    x, y = x.to(device), y.to(device)
    if test is not None:
        held_out = as_dataset(test, what="test")
        test = (held_out.x.to(device), held_out.y.to(device))
    model, data = _gd_setup(factory, x, y, loss, "phase_diagram")
    with seeded(seed):
        module = factory().to(device)
    with stage(f"λ0 of the model at initialisation ({curvature} curvature)", progress) as on_iter:
        lam0, kind = initial_curvature(module, x, y, loss, curvature, on_iter)
    if not (math.isfinite(lam0) and lam0 > 0):
        raise ValueError(f"initial curvature λ0 = {lam0} is not positive: cannot place η around 2/λ0")
    cs = np.asarray(scaled_etas if scaled_etas is not None else np.geomspace(0.5, 16, 16), dtype=float)
    if cs.ndim != 1 or cs.size == 0 or not np.all(cs > 0):
        raise ValueError(f"scaled_etas must be positive numbers, got {scaled_etas}")
    etas = cs / lam0
    members = [Member(f"eta={eta:.6g}", seed, Constant(float(eta))) for eta in etas]
    name, crit = split_loss(loss)
    cfg = TrainConfig(loss=name, steps=steps, batch_size=None, eval_every=eval_every,
                      mode="vectorized", device=str(device))
    if test_every is not None and test is None:
        raise ValueError("test_every needs a test set (test=(x, y))")
    test_data = _test_set(test, data) if test is not None else None
    probes: dict[str, Callable] = {}
    cadence: dict[str, int] = {}
    if curvature_every is not None:
        cadence["lam"] = curvature_every
        probes["lam"] = lambda m, p: torch.as_tensor(
            _final_curvature(m, p, x, y, loss, data.num_classes, kind, np.zeros(len(etas), bool)))
    if test_every is not None:
        cadence["test_acc"] = test_every
        probes["test_acc"] = lambda m, p: _accuracy(m, p, test_data)
    res = train_population(model, members, data, None, cfg, progress=progress, probes=probes or None,
                           criterion=crit,
                           probe_every=cadence or None)
    curve = res.curve("train.loss")
    curve.columns = etas
    diverged = res.members.diverged.to_numpy()
    phases = [classify(curve[e].to_numpy(), bool(d), rise_tol) for e, d in zip(etas, diverged)]
    with stage(f"final curvature of {len(etas)} runs (batched {'Lanczos' if kind == 'hessian' else 'NTK'})",
               progress) as on_iter:
        lam_final = _final_curvature(model, res.params, x, y, loss, data.num_classes, kind, diverged, on_iter)
    lam_curve = None
    if curvature_every is not None:
        lam_curve = res.curve("lam").dropna(how="all")
        lam_curve.columns = etas
        lam_curve.loc[:, diverged] = np.nan
    acc_curve = None
    if test_data is not None:
        final = _accuracy(model, res.params, test_data).double().numpy()
        acc_curve = pd.DataFrame(columns=etas, index=pd.Index([], name="step"), dtype=float)
        if test_every is not None:
            acc_curve = res.curve("test_acc").dropna(how="all")
            acc_curve.columns = etas
        acc_curve.loc[steps] = final
        acc_curve.loc[:, diverged] = np.nan
    hess = None
    if final_hessian:
        with stage(f"final Hessian top eigenvalue of {len(etas)} runs (batched Lanczos)", progress) as on_iter:
            hess = _final_curvature(model, res.params, x, y, loss, data.num_classes, "hessian", diverged, on_iter)
    ok = [e for e, p in zip(etas, phases) if p != "divergent"]
    return PhaseDiagram(lam0, kind, etas, phases, curve, lam_final, float(max(ok)) if ok else None,
                        lam_curve, acc_curve, hess)


def _test_set(test: tuple[Tensor, Tensor], train):
    xt, yt = test
    data = _dataset(xt, yt)
    if data.task != train.task or tuple(xt.shape[1:]) != tuple(train.x.shape[1:]):
        raise ValueError(f"test set ({data.task}, inputs {tuple(xt.shape[1:])}) does not match the "
                         f"training set ({train.task}, inputs {tuple(train.x.shape[1:])})")
    return data


@torch.no_grad()
def _accuracy(model, params: dict[str, Tensor], data) -> Tensor:
    """Accuracy [K] of every member on ``data`` (eval mode; NaN parameters give 0)."""
    first = next(iter(params.values()))
    m = group_metrics(model, params, StackedData.stack([data]), torch.zeros(first.shape[0], dtype=torch.long,
                                                                            device=first.device),
                      "squared", "test")
    return m["test.acc"]


def _final_curvature(model, params: dict[str, Tensor], x: Tensor, y: Tensor, loss: str,
                     num_classes: int, kind: str, diverged: np.ndarray,
                     on_iter: Callable[[int, int], None] | None = None) -> np.ndarray:
    """λ_T per member, the same curvature as λ0 (NaN for diverged members)."""
    params = {k: torch.where(torch.isfinite(v), v, torch.zeros_like(v)) if v.is_floating_point() else v
              for k, v in params.items()}
    if kind == "ntk":
        lam = population_ntk_top_eigenvalue(model, params, x)
    else:
        lam = population_top_eigs(model, params, x, y, loss, num_classes, k=1, iters=100, tol=1e-4,
                                  on_iter=on_iter)[:, 0]
    out = lam.detach().double().cpu().numpy()
    out[diverged] = np.nan
    return out
