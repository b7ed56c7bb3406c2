"""Full-batch GD on the logistic loss for K deep linear networks with one output, in closed form.

Why: the (d) CIFAR-10 controls train the chosen rates for up to 10^5 steps (equal Σηt, and until the
loss is within ``conv_tol`` of the best linear loss). ``train_population`` differentiates through the
batch (O(N·d·width) per step); a deep linear network with a scalar output needs only s = Xᵀr, with
r_α = ∂ℓ/∂f_α / N: by linearity Σ_α r_α ∂f_α/∂W_k = c_k g_k ⊗ h_{k−1}(s), where h_0(s) = s,
h_k(s) = c_k W_k h_{k−1}(s) is the forward pass of the single vector s and g_k = ∂f/∂h_k is the same
for every input (g_{L−1} = c_L w_L, g_{k−1} = c_k W_kᵀ g_k). Every gradient is rank one, so a step costs
O(N·d + L·width²). The arithmetic is plain GD (W ← W − η ∇W, the same as ``torch.optim.SGD`` without
momentum); ``tests/claims/test_huang2020.py`` checks the gradients against autograd and the curves
against ``train_population``. A member whose loss turns non-finite is frozen and marked diverged, as
in the population trainer, and its later losses read NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...models import FromModule
from ...models.linear import DeepLinear


class LinearGDModel:
    """The population :class:`LinearGD` trains: ``DeepLinear(d, width, depth)`` members, initialised as
    ``FromModule`` initialises them, whose forward goes through the end-to-end map β (f = βᵀx, β computed once
    per member), so autograd through it costs what a closed-form step costs, O(N·d + L·width·d), not the
    O(N·d·width) of the layer-by-layer forward (what :mod:`lrlab.plan` counts and times for the (d) runs).

    ``examples``: the full batch β's cost is spread over in :meth:`flops_per_example`."""

    def __init__(self, d: int, width: int, depth: int, examples: int = 1) -> None:
        self.module = FromModule(lambda: DeepLinear(d, width, depth))
        self.d, self.width, self.depth, self.examples = d, width, depth, max(1, int(examples))
        self.scales: tuple[float, ...] = tuple(self.module.base.scales)
        self.frozen: frozenset[str] = frozenset()

    def init(self, seeds: Sequence[int]) -> dict[str, Tensor]:
        """Stacked ``weights.0`` … ``weights.{L−1}`` [K, ...], member k drawn as ``FromModule`` draws it."""
        return self.module.init(seeds)

    def forward(self, params: dict[str, Tensor], x: Tensor, train: bool = False) -> Tensor:
        """Logits [K, B] for inputs [K, B, ...] (flattened to d features)."""
        ws = [params[f"weights.{i}"] for i in range(self.depth)]
        b = ws[-1] * self.scales[-1]
        for w, c in zip(reversed(ws[:-1]), reversed(self.scales[:-1])):
            b = torch.bmm(b.unsqueeze(1), w).squeeze(1) * c
        return torch.bmm(x.flatten(2), b.unsqueeze(-1)).squeeze(-1)

    def flops_per_example(self, input_shape: tuple[int, ...] = ()) -> int:
        """βᵀx (2·d) and β itself (2·width·(d + (L−2)·width)) spread over ``examples`` examples."""
        d = math.prod(input_shape) if input_shape else self.d
        beta = 2 * self.width * (self.d + (self.depth - 2) * self.width)
        return 2 * d + -(-beta // self.examples)


@dataclass
class LinearGD:
    """K members' weights (``weights[k]``: [K, out, in], the last [K, width]) with their layer scales."""

    weights: list[Tensor]
    scales: tuple[float, ...]
    active: Tensor
    diverged_step: Tensor
    step: int = 0

    @classmethod
    def init(cls, d: int, width: int, depth: int, seeds: list[int], dtype: torch.dtype = torch.float64,
             device: str = "cpu") -> LinearGD:
        """Members initialised exactly as ``train_population`` initialises ``DeepLinear(d, width, depth)``
        for these seeds (``FromModule``), cast to ``dtype``."""
        model = LinearGDModel(d, width, depth)
        p = model.init(seeds)
        weights = [p[f"weights.{i}"].to(device=device, dtype=dtype).clone() for i in range(depth)]
        K = len(seeds)
        return cls(weights, model.scales, torch.ones(K, dtype=torch.bool, device=device),
                   torch.full((K,), -1, dtype=torch.long))

    def select(self, members: list[int]) -> LinearGD:
        """A copy holding only ``members`` (in this order), at the same step."""
        idx = torch.tensor(members, dtype=torch.long, device=self.active.device)
        return LinearGD([w[idx].clone() for w in self.weights], self.scales, self.active[idx].clone(),
                        self.diverged_step[idx.cpu()].clone(), self.step)

    def beta(self) -> Tensor:
        """The end-to-end linear maps [K, d] (f(x) = βᵀx)."""
        b = self.weights[-1] * self.scales[-1]
        for w, c in zip(reversed(self.weights[:-1]), reversed(self.scales[:-1])):
            b = torch.bmm(b.unsqueeze(1), w).squeeze(1) * c
        return b

    def outputs(self, x: Tensor) -> Tensor:
        """Logits [K, N] for inputs [N, d]."""
        return self.beta() @ x.T

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean logistic loss [K] (NaN for frozen members)."""
        out = F.softplus(-y * self.outputs(x)).mean(1)
        return torch.where(self.active, out, torch.nan)

    def accuracy(self, x: Tensor, y: Tensor) -> Tensor:
        """Fraction of ±1 labels predicted by the sign of the logit [K] (NaN for frozen members)."""
        acc = ((self.outputs(x) * y) > 0).to(x.dtype).mean(1)
        return torch.where(self.active, acc, torch.nan)

    def gd_step(self, x: Tensor, y: Tensor, lr: Tensor) -> Tensor:
        """One full-batch GD step with rates ``lr`` [K]; returns the loss [K] before the step."""
        m = y * self.outputs(x)
        loss = F.softplus(-m).mean(1)
        finite = torch.isfinite(loss)
        newly = self.active & ~finite
        if bool(newly.any()):
            self.diverged_step[newly.cpu()] = self.step
        self.active &= finite
        act = self.active
        r = torch.where(act[:, None], -y * torch.sigmoid(-m) / x.shape[0], 0.0)  # ∂(mean loss)/∂f_α
        hs = [r @ x]  # h_0(s) = s = Xᵀr, then the forward pass of s
        for w, c in zip(self.weights[:-1], self.scales[:-1]):
            hs.append((w * hs[-1].unsqueeze(1)).sum(-1) * c)  # W_k h, batched (faster than bmm here)
        hs = [torch.where(act[:, None], h, 0.0) for h in hs]  # a frozen member moves by exactly 0
        rate = torch.where(act, lr.to(x.dtype), 0.0)[:, None]
        gs = [self.weights[-1] * self.scales[-1]]  # ∂f/∂h_{L−1}, then down to ∂f/∂h_1
        for w, c in zip(reversed(self.weights[1:-1]), reversed(self.scales[1:-1])):
            gs.append(torch.bmm(gs[-1].unsqueeze(1), w).squeeze(1) * c)
        gs.reverse()  # gs[k] = ∂f/∂h_{k+1} (0-based: W_k maps h_k to h_{k+1}), all before any weight moves
        last = self.weights[-1]
        last.sub_(torch.where(act[:, None], rate * self.scales[-1] * hs[-1], 0.0))  # ∇w_L = c_L h_{L−1}(s)
        for k in range(len(self.weights) - 1):  # W_k −= η c_k g_k ⊗ h_{k−1}(s), rank one, in place
            step = torch.where(act[:, None], rate * self.scales[k] * gs[k], 0.0)
            self.weights[k].baddbmm_(step.unsqueeze(-1), hs[k].unsqueeze(1), alpha=-1.0)
        self.step += 1
        return torch.where(act | newly, loss, torch.nan)  # the blow-up itself reads inf, later steps NaN
