"""Li, Wei & Ma (2019) two-pattern mixture (docs/spec.md §1a).

x = (x1, x2) with x1, x2 in R^d and y uniform on {±1}. A fraction of examples carries only
pattern P (x2 = 0), a fraction only pattern Q (x1 = 0), the rest both.

* P — easy to fit, hard to generalize: ``x1 = margin·y·w + p_noise·(I − wwᵀ)g``; linearly
  separable with margin ``margin`` along the unit vector ``w`` but buried in high-dimensional
  noise, so a linear rule fits it quickly yet generalizes only from many examples.
* Q — hard to fit, easy to generalize: ``x2 = q_scale·α·(z + s·ζ·[y = −1]) + q_noise·g'`` with
  unit ``z``, ``ζ ⊥ z``, ``‖ζ‖ = q_zeta_norm``, random sign ``s`` and ``α ~ U[q_alpha_min, 1]``.
  Class +1 sits between the two halves of class −1, so no linear rule separates Q; the
  low noise means a ReLU network that fits Q also generalizes on it.
"""

from __future__ import annotations

import torch

from ..config import Li2019MixtureConfig
from .dataset import Dataset, Split

GROUPS = ("P-only", "Q-only", "both")


def _directions(d: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit w (P's direction), unit z and unit ζ̂ ⊥ z (Q's geometry)."""
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    w /= w.norm()
    z = torch.randn(d, generator=gen, dtype=torch.float64)
    z /= z.norm()
    zeta = torch.randn(d, generator=gen, dtype=torch.float64)
    zeta -= (zeta @ z) * z
    zeta /= zeta.norm()
    return w, z, zeta


def _sample(cfg: Li2019MixtureConfig, n: int, dirs, gen: torch.Generator) -> Dataset:
    w, z, zeta_hat = dirs
    d = cfg.d
    y = torch.randint(0, 2, (n,), generator=gen).to(torch.float64) * 2 - 1
    # exact group sizes (rounded), placed at random positions
    n_p, n_q = round(cfg.frac_p_only * n), round(cfg.frac_q_only * n)
    order = torch.randperm(n, generator=gen)
    group = torch.full((n,), 2, dtype=torch.long)
    group[order[:n_p]] = 0
    group[order[n_p : n_p + n_q]] = 1

    g = torch.randn(n, d, generator=gen, dtype=torch.float64)
    g -= (g @ w)[:, None] * w[None, :]
    x1 = cfg.margin * y[:, None] * w[None, :] + cfg.p_noise * g

    alpha = cfg.q_alpha_min + (1 - cfg.q_alpha_min) * torch.rand(n, generator=gen, dtype=torch.float64)
    sign = torch.randint(0, 2, (n,), generator=gen).to(torch.float64) * 2 - 1
    offset = (y < 0).to(torch.float64) * sign * cfg.q_zeta_norm
    x2 = cfg.q_scale * alpha[:, None] * (z[None, :] + offset[:, None] * zeta_hat[None, :])
    x2 = x2 + cfg.q_noise * torch.randn(n, d, generator=gen, dtype=torch.float64)

    x1[group == 1] = 0.0
    x2[group == 0] = 0.0
    x = torch.cat([x1, x2], dim=1).to(torch.float32)
    return Dataset(x=x, y=y.to(torch.float32), group=group, group_names=GROUPS, task="binary")


def li2019_mixture(cfg: Li2019MixtureConfig, seed: int) -> Split:
    """Train and test sets of the two-pattern mixture; a pure function of (cfg, seed)."""
    gen = torch.Generator().manual_seed(int(seed))
    dirs = _directions(cfg.d, gen)
    train = _sample(cfg, cfg.n_train, dirs, gen)
    test = _sample(cfg, cfg.n_test, dirs, gen)
    return Split(train=train, test=test)
