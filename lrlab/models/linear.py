"""Deep linear network in NTK parameterisation (Huang, Du, Xu & Liu 2020), one scalar output.

f(x) = w_Lᵀ W_{L−1} ⋯ W_1 x / √(n^{L−1}) (× 1/√d with ``input_norm``), every entry N(0, 1):
each layer maps h ↦ W h / √fan_in, except that the first layer skips the 1/√d unless
``input_norm`` is set. Depth 2 without ``input_norm`` is exactly the uv model of
:mod:`lrlab.models.uv`, f = n^{-1/2} vᵀ u x, with W_1 = u and w_2 = v.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class DeepLinear(nn.Module):
    """``depth`` weight matrices of a linear network R^d → R: W_1 [n, d], W_2..W_{L−1} [n, n], w_L [n].

    Parameters are ``weights.0`` … ``weights.{L−1}``, every entry N(0, 1) drawn from torch's
    global RNG in layer order (so ``lrlab.models.FromModule`` can seed members, and depth 2
    under ``torch.manual_seed(s)`` draws the same u, v as ``UVModel(d, n).init([s])``).

    ``input_norm=False`` (default) leaves the first layer unscaled, f = n^{-(L−1)/2} w_Lᵀ⋯W_1 x,
    so depth 2 is the uv model of docs/spec.md §2 and its NTK on unit inputs is (|W_1 x̂|² + |w_2|²)/n.
    ``input_norm=True`` divides the first layer by √d too (every layer h ↦ W h/√fan_in), which
    keeps f of order 1 for inputs with entries of order 1 (e.g. images) rather than |x| of order 1.

    Inputs [B, ...] are flattened to [B, d]; the output is [B] (one logit per example, as a
    binary ±1 task with the logistic loss expects; ``FromModule`` stacks it to [K, B]).
    """

    def __init__(self, d_in: int, width: int, depth: int = 2, input_norm: bool = False) -> None:
        super().__init__()
        _check_positive_int("d_in", d_in)
        _check_positive_int("width", width)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise ValueError(f"depth (number of weight matrices) must be an integer >= 2, got {depth!r}")
        if not isinstance(input_norm, bool):
            raise ValueError(f"input_norm must be a bool, got {input_norm!r}")
        self.d_in, self.width, self.depth, self.input_norm = d_in, width, depth, input_norm
        shapes = [(width, d_in)] + [(width, width)] * (depth - 2) + [(width,)]
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(*s)) for s in shapes)
        # multiplier of each layer: 1/√fan_in, except the first one without input_norm
        self.scales = tuple([1.0 / math.sqrt(d_in) if input_norm else 1.0]
                            + [1.0 / math.sqrt(width)] * (depth - 1))

    def _flat(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        if h.shape[1] != self.d_in:
            raise ValueError(f"inputs have {h.shape[1]} features after flattening, expected d_in={self.d_in}")
        return h

    def forward(self, x: Tensor) -> Tensor:
        """Outputs [B] for inputs [B, ...]."""
        if x.dim() < 2:
            raise ValueError(f"inputs must be a batch [B, ...], got shape {tuple(x.shape)}")
        h = self._flat(x)
        ws = list(self.weights)
        for w, c in zip(ws[:-1], self.scales[:-1]):
            h = (h @ w.T) * c
        return (h @ ws[-1]) * self.scales[-1]

    def end_to_end(self) -> Tensor:
        """The effective linear map β [d] with f(x) = βᵀ x (all layer scales included)."""
        ws = list(self.weights)
        beta = ws[-1] * self.scales[-1]  # a row vector, multiplied down to the input
        for w, c in zip(reversed(ws[:-1]), reversed(self.scales[:-1])):
            beta = (beta @ w) * c
        return beta

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, width={self.width}, depth={self.depth}, input_norm={self.input_norm}"
