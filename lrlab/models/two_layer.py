"""Two-layer ReLU network f(x) = aᵀ relu(Wx + b) (+ c), natively stacked over members.

The forward is written with batched matrix products over the member axis rather than
``vmap(functional_call)``; an ad-hoc comparison during development found it faster for small
networks on CPU, but benchmarks/ does not yet measure that comparison.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TwoLayerReLU:
    """Width-``width`` two-layer ReLU net on inputs of size ``d_in``.

    Init: W ~ N(0, init_scale²/d_in), a ~ N(0, init_scale²/width), biases zero.
    ``train_second_layer=False`` keeps ``a`` at its initial value (a common theory setting).
    """

    def __init__(self, d_in: int, width: int, out_dim: int = 1, *, bias: bool = True,
                 output_bias: bool = False, train_second_layer: bool = True,
                 init_scale: float = 1.0) -> None:
        for name, v in (("d_in", d_in), ("width", width), ("out_dim", out_dim)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale!r}")
        self.d_in, self.width, self.out_dim = d_in, width, out_dim
        self.bias, self.output_bias, self.init_scale = bias, output_bias, init_scale
        self.frozen = frozenset() if train_second_layer else frozenset({"a"})

    def init(self, seeds: Sequence[int]) -> dict[str, Tensor]:
        members = []
        for s in seeds:
            g = torch.Generator().manual_seed(int(s))
            p = {
                "W": torch.randn(self.width, self.d_in, generator=g) * (self.init_scale / math.sqrt(self.d_in)),
                "a": torch.randn(self.width, self.out_dim, generator=g) * (self.init_scale / math.sqrt(self.width)),
            }
            if self.bias:
                p["b"] = torch.zeros(self.width)
            if self.output_bias:
                p["c"] = torch.zeros(self.out_dim)
            members.append(p)
        return {k: torch.stack([m[k] for m in members]) for k in members[0]}

    def forward(self, params: dict[str, Tensor], x: Tensor, train: bool = False) -> Tensor:
        """Outputs [K, B] (or [K, B, out_dim]) for inputs [K, B, ...]; ``train`` changes nothing."""
        W, a = params["W"], params["a"]
        x = x.flatten(2)
        if W.shape[0] == 1:  # one member (loop mode): plain matrix products are faster than bmm
            h = torch.relu(F.linear(x[0], W[0], params["b"][0] if "b" in params else None))
            out = F.linear(h, a[0].T, params["c"][0] if "c" in params else None).unsqueeze(0)
            return out.squeeze(-1) if self.out_dim == 1 else out
        # The [K, width, B] layout (∂L/∂W contiguous) is faster on wide nets but sums in another
        # order; with momentum SGD's chaotic runs that moved published verdicts, so it stays out
        # (benchmarks/RESULTS.md, issue 17). Plain SGD takes the fused step, which has neither cost.
        if "b" in params:
            pre = torch.baddbmm(params["b"].unsqueeze(1), x, W.transpose(1, 2))
        else:
            pre = torch.bmm(x, W.transpose(1, 2))
        out = torch.bmm(torch.relu(pre), a)
        if "c" in params:
            out = out + params["c"].unsqueeze(1)
        return out.squeeze(-1) if self.out_dim == 1 else out

    def flops_per_example(self, input_shape: tuple[int, ...] = ()) -> int:
        return 2 * (self.d_in * self.width + self.width * self.out_dim)

    def activation_elements(self, input_shape: tuple[int, ...] = ()) -> int:
        """Numbers the forward holds per example (the hidden layer): what sizes member chunks."""
        return self.width

    def to_module(self, params: dict[str, Tensor], member: int) -> nn.Module:
        """Member ``member`` as a plain ``nn.Sequential`` (for users' own loops and parity checks)."""
        first = nn.Linear(self.d_in, self.width, bias="b" in params)
        second = nn.Linear(self.width, self.out_dim, bias="c" in params)
        with torch.no_grad():
            first.weight.copy_(params["W"][member])
            if "b" in params:
                first.bias.copy_(params["b"][member])
            second.weight.copy_(params["a"][member].T)
            if "c" in params:
                second.bias.copy_(params["c"][member])
        return nn.Sequential(nn.Flatten(), first, nn.ReLU(), second)
