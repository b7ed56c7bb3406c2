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


def strong_components(W: Tensor, feature: Tensor) -> Tensor:
    """a_{j,r} = ⟨w_{j,r}, f⟩/‖f‖ of every filter for ``feature`` f ([d] or [K, d]): [K, 2, m]."""
    f = feature if feature.dim() == 2 else feature.expand(W.shape[0], -1)
    return torch.einsum("kjrd,kd->kjr", W, f / f.norm(dim=-1, keepdim=True))


def weight_reversals(prev: Tensor, mid: Tensor, nxt: Tensor, rel: float) -> Tensor:
    """Share of filters whose component reverses its motion at ``mid``: components at three
    consecutive probes [K, ...filters] -> [K]. A filter counts when Δ_prev = mid − prev and
    Δ_next = nxt − mid have opposite signs (Δ_prev·Δ_next < 0) and both moves are at least
    ``rel``·|mid| (a drift does not reverse; SGD jitter well below the filter's size is not
    counted). NaN for a member with a non-finite component."""
    if not rel >= 0:
        raise ValueError(f"rel must be non-negative, got {rel!r}")
    d1, d2 = mid - prev, nxt - mid
    hit = (d1 * d2 < 0) & (torch.minimum(d1.abs(), d2.abs()) >= rel * mid.abs())
    share = hit.flatten(1).double().mean(-1)
    ok = torch.stack([prev, mid, nxt]).flatten(2).isfinite().all(-1).all(0)
    return torch.where(ok, share, torch.nan)


def weight_oscillation_fraction(trace: Tensor, rel: float, start: int = 0) -> Tensor:
    """Offline :func:`weight_reversals` over a component trace [T, K, ...filters]: the share of
    (filter, probe) pairs that reverse, counting the probes t with ``start`` ≤ t, 1 ≤ t ≤ T − 2
    (the middle probe of each triple); NaN for a member with a non-finite component there."""
    if trace.dim() < 3:
        raise ValueError(f"a component trace is [probes, members, filters...], got shape {tuple(trace.shape)}")
    mids = range(max(1, start), trace.shape[0] - 1)
    if not mids:
        raise ValueError(f"no probe triple from row {start} of a trace of {trace.shape[0]} probes")
    return torch.stack([weight_reversals(trace[t - 1], trace[t], trace[t + 1], rel) for t in mids]).mean(0)


class WeightOscillation:
    """Stateful probe: the strong-feature components a_{j,r} of every filter at each call (one
    call per probe, in step order) and the share of filters whose motion reversed at the
    previous probe (:func:`weight_reversals` over the last three calls). NaN for the first two
    calls. Between probes ``eval_every`` steps apart, a period-2 oscillation of the iterates is
    seen only when ``eval_every`` is odd (an even cadence samples one phase: Δ = 0)."""

    def __init__(self, feature: Tensor, rel: float):
        self.feature, self.rel = feature, rel
        self.history: list[Tensor] = []

    def __call__(self, model, params: dict[str, Tensor]) -> Tensor:
        W = params["W"]
        a = strong_components(W.detach(), self.feature.to(W.device))
        self.history = (self.history + [a])[-3:]
        if len(self.history) < 3:
            return torch.full((W.shape[0],), torch.nan, dtype=torch.float64, device=W.device)
        return weight_reversals(*self.history, self.rel)


def benign_probes(model, data: Sequence, data_index: Sequence[int], delta: float,
                  w_rel: float = 0.02) -> dict[str, Callable]:
    """Per-member probes for ``train_population(..., probes=...)`` on feature-noise data.

    ``data`` holds one :class:`~lrlab.data.FeatureNoiseData` per training set and member k
    trains on ``data[data_index[k]]``. The probes: ``yf.strong`` (mean y·f over the strong
    training points), ``yf.strong.first`` (y·f of the first one), ``oscillating`` (share of
    strong points with |y·f − 1| ≥ δ), ``align.weak`` and ``align.strong`` (feature alignment,
    mean of the two classes), ``noise`` (noise memorisation) and ``osc.weights`` (the share of
    filters whose strong-feature component ⟨w, u⟩/‖u‖ reversed its motion at the previous probe,
    moves of at least ``w_rel`` of its size: :class:`WeightOscillation`, stateful — build fresh
    probes for every training run).
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
        "osc.weights": WeightOscillation(u, w_rel),
    }
