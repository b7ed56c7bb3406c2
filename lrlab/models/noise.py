"""Spatial activation noise of Li, Wei & Ma (2019), the small-LR-plus-noise arm of the patch experiment.

The noise (docs/spec.md §1b): a Gaussian of shape H×W, shared across the batch and the
channels, at every BN→ReLU, in training only. The image models place one
:class:`ActivationNoise` at every BN→ReLU pair (see their ``noise_site`` argument for which side
of the BN).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn


class ActivationNoise(nn.Module):
    """Add ``sigma * eps`` to a [..., H, W] activation in training mode; identity in eval mode.

    ``eps ~ N(0, 1)`` has shape H×W: one fresh draw per forward call, broadcast over the batch
    and channel axes. ``sigma`` is a 0-dim float buffer (default 0.0) rather than a constructor
    constant because an external trainer sets it per model and per step, and under
    ``torch.func.functional_call`` + ``vmap(..., randomness="different")`` it arrives as a batched
    buffer, one value per population member. The forward therefore never branches on its value:
    in training mode it always computes ``x + sigma * eps`` (σ = 0 returns ``x`` exactly).
    Under ``vmap`` in training mode pass ``randomness="different"`` (one draw per member).
    """

    sigma: Tensor

    def __init__(self, sigma: float = 0.0) -> None:
        super().__init__()
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0:
            raise ValueError(f"sigma must be a non-negative float, got {sigma!r}")
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        if x.dim() < 2:
            raise ValueError(f"ActivationNoise expects inputs [..., H, W], got shape {tuple(x.shape)}")
        eps = torch.randn(x.shape[-2:], dtype=x.dtype, device=x.device)
        return x + self.sigma.to(x.dtype) * eps


NOISE_SITES = ("before_bn", "after_bn")


class BNReLU(nn.Sequential):
    """BatchNorm2d → ReLU, with an optional :class:`ActivationNoise` at ``noise_site``.

    The one place the image models put BN→ReLU, so noise placement is decided here:
    ``"after_bn"`` (default) gives BN→noise→ReLU, i.e. ``relu(bn(x) + σε)``, as in the Li et al.
    code (cwein3/large-lr-code, ``forward_noise``), so σ is in BN-normalised units;
    ``"before_bn"`` gives noise→BN→ReLU (the literal reading of the description, docs/spec.md §1b), where BN
    rescales the noise by each channel's batch statistics.
    """

    def __init__(self, channels: int, noise: bool = False, noise_site: str = "after_bn") -> None:
        if noise_site not in NOISE_SITES:
            raise ValueError(f"noise_site must be one of {NOISE_SITES}, got {noise_site!r}")
        layers: list[tuple[str, nn.Module]] = [("bn", nn.BatchNorm2d(channels)), ("relu", nn.ReLU())]
        if noise:
            layers.insert(0 if noise_site == "before_bn" else 1, ("noise", ActivationNoise()))
        super().__init__(OrderedDict(layers))


def set_activation_noise(model: nn.Module, sigma: float) -> int:
    """Set σ of every :class:`ActivationNoise` in ``model`` in place; returns how many were set.

    For plain (unstacked) modules; a population trainer sets the stacked ``*.sigma`` buffers itself.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0:
        raise ValueError(f"sigma must be a non-negative float, got {sigma!r}")
    count = 0
    for m in model.modules():
        if isinstance(m, ActivationNoise):
            m.sigma.fill_(float(sigma))
            count += 1
    return count
