"""Edge of stability (Cohen et al. 2021): track the sharpness during full-batch GD.

Under GD at learning rate η the top Hessian eigenvalue of the training loss (the sharpness)
tends to rise ("progressive sharpening") until it reaches about 2/η, the stability limit of
GD on a quadratic, and then hovers there while the loss keeps falling non-monotonically.
:func:`track_sharpness` trains one population of full-batch GD members (one per η) from the
same initialisation and measures every member's sharpness every ``every`` steps with batched
Lanczos; :meth:`SharpnessTrace.summary` says when and how closely each run sat at 2/η.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .config import TrainConfig
from .data import xy_of
from .losses import split_loss
from .phase import _gd_setup
from .probes.curvature import population_top_eigs
from .train import Constant, Member, train_population


@dataclass
class SharpnessTrace:
    """Sharpness and loss of full-batch GD runs, one column per learning rate η."""

    etas: np.ndarray
    sharpness: pd.DataFrame  # rows = steps (every ``every``), columns = η
    loss: pd.DataFrame  # rows = steps, columns = η
    diverged: np.ndarray

    def ratio(self) -> pd.DataFrame:
        """Sharpness in units of the stability limit: S_t·η/2 (1 = at 2/η)."""
        return self.sharpness * (self.etas / 2)

    def summary(self, band: float = 0.1) -> pd.DataFrame:
        """Per η: the first step the sharpness came within ``band`` of 2/η (``arrival``, NaN if
        never), its largest S·η/2, and after arrival the share of probes within the band and
        the 90th percentile of |S·η/2 − 1| (NaN for diverged runs)."""
        if not 0 < band < 1:
            raise ValueError(f"band must lie in (0, 1), got {band}")
        rows = []
        ratio = self.ratio()
        for eta, col, dead in zip(self.etas, ratio.columns, self.diverged):
            r = ratio[col].dropna()
            hit = r.index[(r >= 1 - band).to_numpy()]
            row = {"eta": eta, "two_over_eta": 2 / eta, "diverged": bool(dead),
                   "initial": float(r.iloc[0]) if len(r) else np.nan,
                   "max": float(r.max()) if len(r) else np.nan, "arrival": np.nan,
                   "in_band": np.nan, "dev_q90": np.nan}
            if len(hit) and not dead:
                after = r.loc[hit[0]:]
                dev = (after - 1).abs()
                row.update(arrival=int(hit[0]), in_band=float((dev <= band).mean()),
                           dev_q90=float(dev.quantile(0.9)))
            rows.append(row)
        return pd.DataFrame(rows)


def track_sharpness(factory: Callable[[], nn.Module], x: Any, y: Tensor | None = None,
                    loss: str | Callable = "squared", *,
                    lrs: Sequence[float], steps: int = 1000, every: int = 20, seed: int = 0,
                    iters: int = 30, tol: float = 1e-3, bn_mode: str = "eval",
                    progress: bool = False, device: str | torch.device = "cpu") -> SharpnessTrace:
    """Full-batch GD on (x, y) at each η in ``lrs`` from one initialisation (``factory`` called
    under ``torch.manual_seed(seed)``); the top Hessian eigenvalue of every member every
    ``every`` steps (Lanczos, at most ``iters`` steps to relative residual ``tol``) on ``device``.
    Like :func:`lrlab.phase_diagram`, ``x`` alone may hold the data (a pair, TensorDataset, DataLoader)."""
    etas = np.asarray(lrs, dtype=float)
    if etas.ndim != 1 or etas.size == 0 or not np.all(np.isfinite(etas) & (etas > 0)):
        raise ValueError(f"lrs must be positive finite learning rates, got {lrs}")
    if steps < 1 or every < 1 or every > steps:
        raise ValueError(f"need steps >= 1 and 1 <= every <= steps, got steps={steps}, every={every}")
    x, y = xy_of(x, y, "track_sharpness")
    x, y = x.to(device), y.to(device)
    model, data = _gd_setup(factory, x, y, loss, "track_sharpness")
    members = [Member(f"eta={eta:.6g}", seed, Constant(float(eta))) for eta in etas]
    name, crit = split_loss(loss)
    cfg = TrainConfig(loss=name, steps=steps, batch_size=None, eval_every=1, mode="vectorized",
                      device=str(device))

    def sharpness(m, p: dict[str, Tensor]) -> Tensor:
        p = {k: torch.where(torch.isfinite(v), v, torch.zeros_like(v)) if v.is_floating_point() else v
             for k, v in p.items()}  # diverged members are masked by the trainer; keep Lanczos finite
        return population_top_eigs(m, p, x, y, loss, data.num_classes, k=1, iters=iters, tol=tol,
                                   bn_mode=bn_mode)[:, 0]

    res = train_population(model, members, data, None, cfg, progress=progress, criterion=crit,
                           probes={"sharpness": sharpness}, probe_every=every)
    S = res.curve("sharpness").dropna(how="all")
    L = res.curve("train.loss")
    S.columns = L.columns = etas
    return SharpnessTrace(etas, S, L, res.members.diverged.to_numpy(dtype=bool))
