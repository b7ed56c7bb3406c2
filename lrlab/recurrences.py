"""Closed-form output-space GD recurrences of the uv network on degenerate data (Huang et al. 2020).

On degenerate data every input is ±x̂ with |x̂| = 1, so a two-layer linear (uv) network
f(x) = n^{-1/2} vᵀ u x is seen only through a = u x̂ ∈ R^n and v. With F = vᵀa/√n (the output
on x̂), λ = (|a|² + |v|²)/n (the top — and only nonzero — NTK eigenvalue on such data) and
g = dL/dF, full-batch GD moves a ← a − η g v/√n and v ← v − η g a/√n, which is exactly

    F_{t+1} = F_t − η g_t λ_t + η² g_t² F_t / n,
    λ_{t+1} = λ_t − 4 η g_t F_t / n + η² g_t² λ_t / n.

(For the squared loss, g = F − y, this is the recurrence of :func:`lrlab.models.uv_recurrence`.)
The components of u orthogonal to x̂ never move and never matter.

Logistic loss (mean over examples), with σ the logistic function:

- separable, x_α = y_α x̂: every example sees y_α f(x_α) = F, so L(F) = log(1 + e^{−F}) and
  g = −σ(−F); the loss falls monotonically towards 0 and F → ∞.
- non-separable, every x_α = x̂ with a fraction p labelled +1:
  L(F) = p log(1 + e^{−F}) + (1 − p) log(1 + e^{F}), g = σ(F) − p, minimiser F* = log(p/(1−p)),
  curvature L''(F*) = p(1 − p). Near F* the output-space step contracts by 1 − η p(1−p) λ, so
  GD is linearly stable only for η < 2/(p(1−p) λ): above that a catapult lowers λ until it is.

For exact agreement with GD on a finite data set, p is the realised fraction of +1 labels.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["catapult_threshold", "degenerate_grad", "degenerate_loss", "logistic_recurrence",
           "nonseparable_minimizer"]


def _check_p(p: object) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < float(p) < 1.0:
        raise ValueError(f"p (the fraction of +1 labels) must lie in (0, 1), got {p!r}")
    return float(p)


def _sigmoid(z: float) -> float:
    """σ(z) = 1/(1 + e^{−z}) to full relative precision for either sign of z."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softplus(z: float) -> float:
    """log(1 + e^{z}) without overflow."""
    return float(np.logaddexp(0.0, z))


def degenerate_loss(F: float, p: float | None = None) -> float:
    """Mean logistic loss as a function of the output F on x̂: separable data (``p=None``) or a
    fraction ``p`` of +1 labels on identical inputs."""
    F = float(F)
    if p is None:
        return _softplus(-F)
    p = _check_p(p)
    return p * _softplus(-F) + (1.0 - p) * _softplus(F)


def degenerate_grad(F: float, p: float | None = None) -> float:
    """g = dL/dF of :func:`degenerate_loss`: −σ(−F) (separable) or σ(F) − p (non-separable)."""
    F = float(F)
    if p is None:
        return -_sigmoid(-F)
    return _sigmoid(F) - _check_p(p)


def nonseparable_minimizer(p: float) -> float:
    """F* = log(p/(1−p)), where σ(F*) = p: the output GD converges to on non-separable data."""
    p = _check_p(p)
    return math.log(p) - math.log1p(-p)


def catapult_threshold(p: float, lam0: float) -> float:
    """η_crit = 2/(p(1−p) λ0): above it GD at F* is linearly unstable for NTK eigenvalue λ0."""
    p = _check_p(p)
    if not (math.isfinite(float(lam0)) and lam0 > 0):
        raise ValueError(f"lam0 must be a positive finite number, got {lam0!r}")
    return 2.0 / (p * (1.0 - p) * float(lam0))


def logistic_recurrence(F0: float, lam0: float, n: int, eta: float, steps: int,
                        p: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact GD trajectory (F_t, λ_t, L_t), t = 0..steps, float64, of the uv network on degenerate data.

    ``n`` is the width, ``p=None`` the separable case, otherwise the fraction of +1 labels. A
    divergent run overflows to inf/nan without warnings.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n (the width) must be a positive integer, got {n!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    for name, val in (("F0", F0), ("lam0", lam0), ("eta", eta)):
        if not math.isfinite(float(val)):
            raise ValueError(f"{name} must be finite, got {val!r}")
    if lam0 < 0:
        raise ValueError(f"lam0 is (|u x̂|² + |v|²)/n and cannot be negative, got {lam0!r}")
    if eta < 0:
        raise ValueError(f"eta must be non-negative, got {eta!r}")
    if p is not None:
        p = _check_p(p)
    F = np.empty(steps + 1, dtype=np.float64)
    lam = np.empty(steps + 1, dtype=np.float64)
    loss = np.empty(steps + 1, dtype=np.float64)
    F[0], lam[0] = float(F0), float(lam0)
    eta, nf = float(eta), float(n)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            f = float(F[t])
            finite = math.isfinite(f) and math.isfinite(float(lam[t]))
            loss[t] = degenerate_loss(f, p) if finite else math.nan
            if t == steps:
                break
            if not finite:
                F[t + 1:], lam[t + 1:], loss[t + 1:] = math.nan, math.nan, math.nan
                break
            g = degenerate_grad(f, p)
            eg2n = eta * eta * g * g / nf
            F[t + 1] = f - eta * g * lam[t] + eg2n * f
            lam[t + 1] = lam[t] - 4.0 * eta * g * f / nf + eg2n * lam[t]
    return F, lam, loss
