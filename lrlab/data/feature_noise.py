"""The feature-noise data model of Lu, Wu, Yang & Zou (2023), "benign oscillation" (docs/spec.md §5).

Structure (the paper's)
    y is uniform on ±1. A point x has patches in R^d: a *weak* feature y·v in every point
    (small ‖v‖), a *strong* feature y·u in a fraction ρ of the points (large ‖u‖, u ⊥ v), and
    Gaussian noise ξ. Test data carry only the weak feature (and noise).

Layout (our choices; every number is a field of :class:`~lrlab.config.FeatureNoiseConfig`)
    * x is [3, d]: patch 0 = y·v, patch 1 = y·u on strong points and 0 elsewhere, patch 2 = ξ.
    * u and v are ``strong_norm`` and ``weak_norm`` times an orthonormal pair drawn once per
      seed (QR of a Gaussian d×2 matrix).
    * ξ ~ N(0, σ_p² (I − ûûᵀ − v̂v̂ᵀ)): the noise is projected off the two feature directions, so
      the alignments ⟨w, v⟩/‖v‖ and ⟨w, u⟩/‖u‖ measure feature learning alone.
    * Training set: exactly ``max(1, round(ρ·n))`` strong points at random positions (ρ·n is
      tiny at n = 16, so the share is fixed rather than drawn). Group tags ``strong`` /
      ``weak-only``.
    * ``test_weak``: the paper's test set, every point weak-only (patch 1 is zero).
    * ``test_like``: drawn like the training distribution, each point strong with probability ρ.

:func:`feature_noise` returns all three sets with u and v (the probes need them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import FeatureNoiseConfig
from .dataset import Dataset, Split

FEATURE_NOISE_GROUPS = ("strong", "weak-only")
WEAK, STRONG, NOISE = 0, 1, 2  # patch indices


@dataclass(frozen=True)
class FeatureNoiseData:
    """Training set, the weak-only and the training-like test sets, and the two features."""

    train: Dataset
    test_weak: Dataset
    test_like: Dataset
    u: Tensor
    v: Tensor

    @property
    def split(self) -> Split:
        """(train, weak-only test): the pair ``lrlab run`` trains and probes on."""
        return Split(self.train, self.test_weak)


def _points(n: int, strong: Tensor, u: Tensor, v: Tensor, sigma: float, g: torch.Generator) -> Dataset:
    d = u.shape[0]
    y = torch.where(torch.rand(n, generator=g) < 0.5, 1.0, -1.0)
    basis = torch.stack([u / u.norm(), v / v.norm()], 1)  # [d, 2], orthonormal columns
    xi = torch.randn(n, d, generator=g) * sigma
    xi = xi - (xi @ basis) @ basis.T
    x = torch.zeros(n, 3, d)
    x[:, WEAK] = y[:, None] * v
    x[:, STRONG] = torch.where(strong[:, None], y[:, None] * u, torch.zeros(d))
    x[:, NOISE] = xi
    group = torch.where(strong, 0, 1)
    return Dataset(x, y, group, FEATURE_NOISE_GROUPS)


def feature_noise(cfg: FeatureNoiseConfig, seed: int) -> FeatureNoiseData:
    """Draw the features, the training set and both test sets; a pure function of (cfg, seed)."""
    g = torch.Generator().manual_seed(int(seed))
    q, _ = torch.linalg.qr(torch.randn(cfg.d, 2, generator=g, dtype=torch.float64))
    u = (q[:, 0] * cfg.strong_norm).float()
    v = (q[:, 1] * cfg.weak_norm).float()
    k = max(1, round(cfg.strong_frac * cfg.n_train))
    strong = torch.zeros(cfg.n_train, dtype=torch.bool)
    strong[torch.randperm(cfg.n_train, generator=g)[:k]] = True
    train = _points(cfg.n_train, strong, u, v, cfg.noise_std, g)
    test_weak = _points(cfg.n_test, torch.zeros(cfg.n_test, dtype=torch.bool), u, v, cfg.noise_std, g)
    test_like = _points(cfg.n_test, torch.rand(cfg.n_test, generator=g) < cfg.strong_frac, u, v,
                        cfg.noise_std, g)
    return FeatureNoiseData(train, test_weak, test_like, u, v)
