"""Probe: the empirical NTK Θ = (1/m) J Jᵀ and its top eigenvalue λ (Lewkowycz et al. 2020).

J = ∂f/∂θ stacks the derivatives of all m·C outputs (example-major: row α·C + c is output c of
example α) with respect to the trainable parameters. λ is also the top eigenvalue of the
Gauss–Newton matrix (1/m) JᵀJ of the loss (1/2m) Σ |f − y|², so η·λ compared with 2 and 4
places a learning rate in the lazy, catapult or divergent phase.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, jvp, vjp

from ..data.dataset import as_dataset
from ..models.base import PopulationModel


def _split_state(module: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Trainable parameters and everything else (frozen parameters, buffers), detached."""
    trainable = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}
    fixed = {n: p.detach() for n, p in module.named_parameters() if not p.requires_grad}
    fixed.update({n: b.detach() for n, b in module.named_buffers()})
    if not trainable:
        raise ValueError(f"{type(module).__name__} has no trainable parameters to take an NTK over")
    return trainable, fixed


def _module_outputs(module: nn.Module, x: Tensor) -> tuple[Callable[[dict[str, Tensor]], Tensor], dict[str, Tensor]]:
    """f(trainable params) -> flat outputs [m·C] of ``module`` on ``x``, and the current parameters."""
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch [m, ...] with m >= 1, got shape {tuple(x.shape)}")
    trainable, fixed = _split_state(module)

    def f(p: dict[str, Tensor]) -> Tensor:
        return functional_call(module, {**p, **fixed}, (x,)).reshape(-1)

    return f, trainable


class _EvalMode:
    """Context putting a module in eval mode and restoring its previous mode afterwards."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.was_training = module, module.training

    def __enter__(self) -> nn.Module:
        return self.module.eval()

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)


def ntk_matrix(module: nn.Module, x: Tensor) -> Tensor:
    """Dense empirical NTK (1/m) J Jᵀ [m·C, m·C] of ``module`` (eval mode) on inputs x [m, ...].

    Materialises J, so only for small problems (tests, toy models); use
    :func:`ntk_top_eigenvalue` for the top eigenvalue of a larger network.
    """
    m = x.shape[0] if x.dim() else 0
    with _EvalMode(module):
        f, params = _module_outputs(module, x)
        jac = jacrev(f)(params)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)
    return (J @ J.T) / m


def _remaining_error(delta: Tensor, prev_delta: Tensor) -> Tensor:
    """Estimated distance of a power-iteration eigenvalue from its limit (geometric tail of the steps).

    For a PSD matrix the Rayleigh quotients of power iterates increase, by steps shrinking about
    geometrically with ratio q; the rest of the climb is then delta·q/(1 − q). A small step alone
    would stop too early when the spectral gap is small.
    """
    q = (delta / prev_delta.clamp_min(torch.finfo(delta.dtype).tiny)).clamp(0.0, 1.0)
    tail = torch.where(q < 1, delta * q / (1 - q).clamp_min(torch.finfo(delta.dtype).eps), torch.inf)
    return torch.maximum(delta, tail)


def _normalise(v: Tensor) -> Tensor:
    """Rows of v scaled to unit norm (zero rows stay zero)."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def ntk_top_eigenvalue(module: nn.Module, x: Tensor | Any, tol: float = 1e-6, max_iters: int = 500,
                       seed: int = 0) -> float:
    """Top eigenvalue of the empirical NTK of ``module`` (eval mode) on x [m, ...], without forming J.

    Power iteration on v ↦ (1/m) J (Jᵀ v) (one VJP and one JVP per step); stops once the Rayleigh
    quotient's estimated distance from its limit is below ``tol`` relative, and warns if
    ``max_iters`` is reached first (a near-degenerate top eigenvalue converges slowly).
    """
    if not isinstance(x, Tensor):  # a TensorDataset, DataLoader or (x, y) pair: its inputs
        x = as_dataset(x, what="ntk_top_eigenvalue data").x
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
    m = x.shape[0] if x.dim() else 0
    with _EvalMode(module):
        f, params = _module_outputs(module, x)
        out, vjp_fn = vjp(f, params)
        g = torch.Generator().manual_seed(int(seed))
        v = _normalise(torch.randn(out.shape, generator=g, dtype=torch.float64).to(out))
        lam = torch.tensor(math.nan, dtype=out.dtype, device=out.device)
        step = torch.tensor(math.inf, dtype=out.dtype, device=out.device)
        for _ in range(max_iters):
            (jt_v,) = vjp_fn(v)
            _, theta_v = jvp(f, (params,), (jt_v,))
            theta_v = theta_v / m
            new = (v @ theta_v).detach()  # Rayleigh quotient (v has unit norm)
            delta = (new - lam).abs()
            converged = bool(new == 0) or bool(_remaining_error(delta, step) <= tol * new.abs())
            lam, step = new, delta
            if converged:
                return float(lam)
            v = _normalise(theta_v)
    warnings.warn(f"ntk_top_eigenvalue: not converged to tol={tol} in {max_iters} iterations "
                  f"(last estimate {float(lam):.6g})", RuntimeWarning, stacklevel=2)
    return float(lam)


def _population_inputs(x: Tensor, K: int, per_member: bool | None) -> Tensor:
    """Inputs [K, m, ...] from shared x [m, ...] or per-member x [K, m, ...]."""
    if per_member is None:
        per_member = x.dim() >= 3 and x.shape[0] == K
    if per_member:
        if x.dim() < 2 or x.shape[0] != K:
            raise ValueError(f"per-member inputs must be [K={K}, m, ...], got shape {tuple(x.shape)}")
        return x
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"shared inputs must be [m, ...] with m >= 1, got shape {tuple(x.shape)}")
    return x.unsqueeze(0).expand(K, *x.shape)


def population_ntk_top_eigenvalue(model: PopulationModel, params: dict[str, Tensor], x: Tensor, iters: int = 100,
                                  tol: float = 1e-6, seed: int = 0, *,
                                  per_member: bool | None = None) -> Tensor:
    """Top NTK eigenvalue [K] of every member of a stacked population model, by batched power iteration.

    Members share no parameters, so one VJP of the member-summed outputs and one JVP per step
    serve all K members. Only trainable parameters count (not ``model.frozen`` nor
    ``model.buffer_names``). x is shared [m, ...] or per member [K, m, ...]; ``per_member=None``
    guesses (per member iff x has ≥ 3 dims and leading size K) — pass it when that is ambiguous.
    Stops when every member's estimated remaining error is below ``tol`` relative, or after ``iters`` steps.
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be a positive integer, got {iters!r}")
    if not params:
        raise ValueError("params is empty; expected the population's stacked parameters")
    K = next(iter(params.values())).shape[0]
    skip = set(getattr(model, "frozen", ())) | set(getattr(model, "buffer_names", ()))
    trainable = {k: v.detach() for k, v in params.items() if k not in skip}
    fixed = {k: v.detach() for k, v in params.items() if k in skip}
    if not trainable:
        raise ValueError(f"no trainable parameters: all of {sorted(params)} are frozen or buffers")
    xs = _population_inputs(x, K, per_member)
    m = xs.shape[1]

    def f(p: dict[str, Tensor]) -> Tensor:
        return model.forward({**p, **fixed}, xs, train=False).reshape(K, -1)

    out, vjp_fn = vjp(f, trainable)
    g = torch.Generator().manual_seed(int(seed))
    v = _normalise(torch.randn(out.shape, generator=g, dtype=torch.float64).to(out))
    lam = torch.full((K,), math.nan, dtype=out.dtype, device=out.device)
    step = torch.full((K,), math.inf, dtype=out.dtype, device=out.device)
    for _ in range(iters):
        (jt_v,) = vjp_fn(v)
        _, theta_v = jvp(f, (trainable,), (jt_v,))
        theta_v = theta_v / m
        new = (v * theta_v).sum(-1).detach()
        delta = (new - lam).abs()
        done = (_remaining_error(delta, step) <= tol * new.abs()) | (new == 0)
        lam, step = new, delta
        if bool(done.all()):
            break
        v = _normalise(theta_v)
    return lam.detach()
