"""Fully connected network in NTK parameterisation (Jacot et al. 2018), for the catapult study.

Every weight and bias is N(0, 1) at init and the layer scales them: (σ_w/√fan_in)·W h + σ_b·b.
With this scaling the NTK (and so the top Hessian eigenvalue λ0) has a finite wide-width limit,
which is the setting in which Lewkowycz et al. (2020) state the 2/λ0, 4/λ0 and ~12/λ0 rates.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}
_DEFAULT_SIGMA_W = {"relu": math.sqrt(2.0), "tanh": 1.0}


class NTKLinear(nn.Module):
    """Affine layer (σ_w/√fan_in)·W h + σ_b·b with W [out, in] and b [out] drawn N(0, 1)."""

    def __init__(self, fan_in: int, fan_out: int, sigma_w: float, sigma_b: float) -> None:
        super().__init__()
        self.fan_in, self.fan_out = fan_in, fan_out
        self.w_scale = sigma_w / math.sqrt(fan_in)
        self.sigma_b = sigma_b
        self.weight = nn.Parameter(torch.randn(fan_out, fan_in))
        self.bias = nn.Parameter(torch.randn(fan_out))

    def forward(self, h: Tensor) -> Tensor:
        """Scaled affine map of [B, fan_in] to [B, fan_out]."""
        return torch.addmm(self.bias * self.sigma_b, h, self.weight.T, alpha=self.w_scale)


class NTKMLP(nn.Module):
    """``depth`` hidden layers of ``width`` units (``activation`` "relu" or "tanh"), then a linear readout.

    Inputs [B, ...] are flattened to [B, d_in]; outputs are [B, out_dim]. σ_w defaults to √2 for
    ReLU and 1 for tanh (pre-activation variance stays of order 1 with depth); σ_b to 0.1. The
    readout uses the same parameterisation. Parameters come from torch's global RNG, so
    ``lrlab.models.FromModule`` can seed members.
    """

    def __init__(self, d_in: int, width: int, depth: int = 1, activation: str = "relu", out_dim: int = 1,
                 sigma_w: float | None = None, sigma_b: float = 0.1) -> None:
        super().__init__()
        for name, val in (("d_in", d_in), ("width", width), ("out_dim", out_dim)):
            if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                raise ValueError(f"{name} must be a positive integer, got {val!r}")
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 3:
            raise ValueError(f"depth (number of hidden layers) must be 1, 2 or 3, got {depth!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if sigma_w is None:
            sigma_w = _DEFAULT_SIGMA_W[activation]
        if not (math.isfinite(sigma_w) and sigma_w > 0):
            raise ValueError(f"sigma_w must be a positive finite number, got {sigma_w!r}")
        if not (math.isfinite(sigma_b) and sigma_b >= 0):
            raise ValueError(f"sigma_b must be a non-negative finite number, got {sigma_b!r}")
        self.d_in, self.width, self.depth, self.out_dim = d_in, width, depth, out_dim
        self.activation, self.sigma_w, self.sigma_b = activation, float(sigma_w), float(sigma_b)
        fans = [d_in] + [width] * depth
        self.hidden = nn.ModuleList(NTKLinear(a, b, self.sigma_w, self.sigma_b) for a, b in zip(fans, fans[1:]))
        self.readout = NTKLinear(width, out_dim, self.sigma_w, self.sigma_b)

    def preactivations(self, x: Tensor) -> list[Tensor]:
        """Pre-activations [B, width] of every hidden layer, then the outputs (for init diagnostics)."""
        h = x.flatten(1)
        if h.shape[1] != self.d_in:
            raise ValueError(f"inputs have {h.shape[1]} features after flattening, expected d_in={self.d_in}")
        act = _ACTIVATIONS[self.activation]
        out = []
        for layer in self.hidden:
            z = layer(h)
            out.append(z)
            h = act(z)
        out.append(self.readout(h))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Outputs [B, out_dim] for inputs [B, ...]."""
        return self.preactivations(x)[-1]


def torch_mlp(d_in: int, width: int, depth: int, out_dim: int, activation: str = "relu") -> Callable[[], nn.Module]:
    """A factory of plain PyTorch MLPs (``depth`` hidden layers, PyTorch's default init, standard
    parameterisation) — the networks of Cohen et al. and of our You et al. experiments."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]

    def make() -> nn.Module:
        layers: list[nn.Module] = []
        for fan_in in [d_in] + [width] * (depth - 1):
            layers += [nn.Linear(fan_in, width), act()]
        return nn.Sequential(*layers, nn.Linear(width, out_dim))

    return make
