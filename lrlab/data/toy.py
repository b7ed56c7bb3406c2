"""Two moons: the small 2-d classification set the examples, the advice benchmark and the
tests train on (a stand-in for "the user's own data")."""

from __future__ import annotations

import torch


def two_moons(n: int, seed: int, noise: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points on two interleaved half circles, labels 0/1, Gaussian noise of std ``noise``;
    deterministic in ``seed``. Returns ``(x, y)``: x float (n, 2), y long (n,)."""
    if n < 1:
        raise ValueError(f"two_moons needs n ≥ 1 points, got n={n}")
    if noise < 0:
        raise ValueError(f"two_moons noise must be ≥ 0, got {noise}")
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * torch.pi
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.stack([torch.cos(t) + y, torch.sin(t) * (1 - 2 * y) + 0.5 * y], 1)
    return x + noise * torch.randn(n, 2, generator=g), y
