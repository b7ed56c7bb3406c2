"""The two-layer CNN of Lu, Wu, Yang & Zou (2023): ReLU² filters over patches, fixed second layer.

f(W, x) = F₊(W₊, x) − F₋(W₋, x),  F_j = (1/m) Σ_{r=1..m} Σ_p ReLU(⟨w_{j,r}, x^{(p)}⟩)²

with m filters per class. Only the filters are trained (the second layer is the fixed ±1/m);
they start i.i.d. N(0, σ0²). Natively stacked over population members: the parameters are
one tensor ``W`` of shape [K, 2, m, d] (class + is index 0, class − index 1).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class ReLU2CNN:
    """``filters`` = m ReLU² filters per class on inputs of ``patches`` × ``d``."""

    frozen: frozenset[str] = frozenset()

    def __init__(self, d: int, filters: int = 8, init_std: float = 0.01, patches: int = 3) -> None:
        for name, v in (("d", d), ("filters", filters), ("patches", patches)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not init_std > 0:
            raise ValueError(f"init_std must be positive, got {init_std!r}")
        self.d, self.m, self.init_std, self.patches = d, filters, init_std, patches

    def init(self, seeds: Sequence[int]) -> dict[str, Tensor]:
        ws = []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            ws.append(torch.randn(2, self.m, self.d, generator=g) * self.init_std)
        return {"W": torch.stack(ws)}

    def class_outputs(self, W: Tensor, x: Tensor) -> Tensor:
        """F₊ and F₋ for inputs [K, B, P, d]: [K, B, 2]."""
        K, B = x.shape[:2]
        if x.shape[2:] != (self.patches, self.d):
            raise ValueError(f"inputs must be [K, B, {self.patches}, {self.d}] (patches × d), "
                             f"got {tuple(x.shape)}")
        pre = torch.bmm(x.reshape(K, -1, self.d), W.reshape(K, 2 * self.m, self.d).transpose(1, 2))
        act = torch.relu(pre).square().reshape(K, B, self.patches, 2, self.m)
        return act.sum((2, 4)) / self.m

    def forward(self, params: dict[str, Tensor], x: Tensor, train: bool = False) -> Tensor:
        """f = F₊ − F₋, [K, B]; ``train`` changes nothing."""
        F = self.class_outputs(params["W"], x)
        return F[..., 0] - F[..., 1]

    def flops_per_example(self, input_shape: tuple[int, ...] = ()) -> int:
        return 2 * self.patches * 2 * self.m * self.d

    def to_module(self, params: dict[str, Tensor], member: int = 0) -> nn.Module:
        """Member ``member`` as a plain ``nn.Module`` (inputs [B, P, d], output [B])."""
        return ReLU2CNNModule(params["W"][member].detach().clone())


class ReLU2CNNModule(nn.Module):
    """One :class:`ReLU2CNN` as an ``nn.Module`` with parameter ``W`` [2, m, d]."""

    def __init__(self, W: Tensor) -> None:
        super().__init__()
        if W.dim() != 3 or W.shape[0] != 2:
            raise ValueError(f"W must be [2, m, d] (class +, class −), got {tuple(W.shape)}")
        self.W = nn.Parameter(W)

    def forward(self, x: Tensor) -> Tensor:
        act = torch.relu(torch.einsum("bpd,jrd->bjrp", x, self.W)).square()
        F = act.sum((2, 3)) / self.W.shape[1]
        return F[:, 0] - F[:, 1]
