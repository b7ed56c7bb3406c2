"""Probes of benign oscillation (Lu et al. 2023): margins, oscillation, feature learning, noise.

All take the stacked filters ``W`` [K, 2, m, d] of :class:`~lrlab.models.ReLU2CNN` (class +
at index 0) and return one number per member, so they plug into
``train_population(..., probes=...)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ..data.feature_noise import NOISE


def margins(model, W: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """y·f(x) of every member on its own points: ``x`` [K, n, P, d], ``y`` [K, n] -> [K, n]."""
    return y * model.forward({"W": W}, x)


def oscillating(yf: Tensor, delta: float) -> Tensor:
    """The paper's oscillation indicator |y·f − 1| ≥ δ, elementwise (bool)."""
    if not delta > 0:
        raise ValueError(f"delta must be positive, got {delta!r}")
    return (yf - 1).abs() >= delta


def oscillation_fraction(trace: Tensor, delta: float, start: int = 0) -> Tensor:
    """Share of (step, point) pairs from row ``start`` of a margin trace [T, ..., n] that
    oscillate; reduces the first and last axes, NaN rows (diverged members) are left out."""
    if trace.dim() < 2:
        raise ValueError(f"a margin trace is [steps, ..., points], got shape {tuple(trace.shape)}")
    if not 0 <= start < trace.shape[0]:
        raise ValueError(f"start {start} is outside the trace's {trace.shape[0]} steps")
    t = trace[start:]
    ok = torch.isfinite(t)
    hit = (oscillating(torch.where(ok, t, 1.0), delta) & ok).double()
    return hit.sum((0, -1)) / ok.double().sum((0, -1))


def feature_alignment(W: Tensor, feature: Tensor) -> Tensor:
    """max_r ⟨w_{+,r}, f⟩/‖f‖ and max_r ⟨w_{−,r}, −f⟩/‖f‖ for ``feature`` f: [K, 2].

    Class + points carry +f and class − points −f, so each class's filters learn its own sign.
    ``feature`` is [d] (shared) or [K, d] (one per member's dataset).
    """
    f = feature if feature.dim() == 2 else feature.expand(W.shape[0], -1)
    unit = f / f.norm(dim=-1, keepdim=True)
    proj = torch.einsum("kjrd,kd->kjr", W, unit)  # [K, 2, m]
    return torch.stack([proj[:, 0].amax(-1), (-proj[:, 1]).amax(-1)], -1)


def noise_memorisation(W: Tensor, noise: Tensor, y: Tensor) -> Tensor:
    """Mean over training points i of max_r ⟨w_{y_i,r}, ξ_i⟩/‖ξ_i‖ (the filters of i's own
    class): ``noise`` [K, n, d], ``y`` [K, n] -> [K]. Normalised like the feature alignments,
    so the three are on one scale."""
    unit = noise / noise.norm(dim=-1, keepdim=True)
    proj = torch.einsum("kjrd,knd->knjr", W, unit).amax(-1)  # [K, n, 2]
    own = torch.where(y > 0, proj[..., 0], proj[..., 1])
    return own.mean(-1)


def benign_probes(model, data: Sequence, data_index: Sequence[int], delta: float) -> dict[str, Callable]:
    """Per-member probes for ``train_population(..., probes=...)`` on feature-noise data.

    ``data`` holds one :class:`~lrlab.data.FeatureNoiseData` per training set and member k
    trains on ``data[data_index[k]]``. The probes: ``yf.strong`` (mean y·f over the strong
    training points), ``yf.strong.first`` (y·f of the first one), ``oscillating`` (share of
    strong points with |y·f − 1| ≥ δ), ``align.weak`` and ``align.strong`` (feature alignment,
    mean of the two classes) and ``noise`` (noise memorisation).
    """
    idx = list(data_index)
    strong = [d.train.group_mask("strong") for d in data]
    xs = torch.stack([data[i].train.x[strong[i]] for i in idx])
    ys = torch.stack([data[i].train.y[strong[i]] for i in idx])
    xi = torch.stack([data[i].train.x[:, NOISE] for i in idx])
    y = torch.stack([data[i].train.y for i in idx])
    u = torch.stack([data[i].u for i in idx])
    v = torch.stack([data[i].v for i in idx])

    def strong_margins(params: dict[str, Tensor]) -> Tensor:
        W = params["W"]
        return margins(model, W, xs.to(W.device), ys.to(W.device))

    return {
        "yf.strong": lambda model_, params: strong_margins(params).mean(-1),
        "yf.strong.first": lambda model_, params: strong_margins(params)[:, 0],
        "oscillating": lambda model_, params: oscillating(strong_margins(params), delta).double().mean(-1),
        "align.weak": lambda model_, params: feature_alignment(params["W"], v.to(params["W"].device)).mean(-1),
        "align.strong": lambda model_, params: feature_alignment(params["W"], u.to(params["W"].device)).mean(-1),
        "noise": lambda model_, params: noise_memorisation(params["W"], xi.to(params["W"].device),
                                                           y.to(params["W"].device)),
    }
