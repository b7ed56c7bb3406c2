"""Probe: Hessian curvature of the training loss (top eigenvalues, trace) with ``torch.func``.

Hessian-vector products are forward-over-reverse (``jvp`` of ``grad``), so the Hessian is never
formed. Eigenvalues come from Lanczos with full reorthogonalisation (or power iteration), the
trace from Hutchinson's estimator. :func:`population_top_eigs` probes every member of a stacked
population at once: members share no parameters, so the gradient (and the HVP) of the *sum* of
member losses with respect to the stacked parameters is each member's own, and K Lanczos runs
proceed in lockstep on batched vectors [K, P]. Probes never change training: BatchNorm running
statistics are read, never written.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp

from .. import losses
from ..data.dataset import xy_of

LossFn = Callable[[dict[str, Tensor], Tensor, Tensor], Tensor]
BN_MODES = ("eval", "train")
METHODS = ("lanczos", "power")
STOPS = ("residual", "change")


# ---------------------------------------------------------------------- checks and flat vectors
def _required(loss: losses.Loss | None, who: str) -> losses.Loss:
    if loss is None:
        raise ValueError(f"{who} needs a loss: one of {list(losses.LOSSES)} or a criterion callable")
    return loss


def _check_loss(loss: losses.Loss) -> None:
    """A named loss, or a criterion callable (see :func:`lrlab.losses.criterion`)."""
    if callable(loss):
        return
    if loss not in losses.LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {list(losses.LOSSES)}")


def _check_bn_mode(bn_mode: str) -> None:
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode must be one of {list(BN_MODES)}, got {bn_mode!r}")


def _check_k(k: int, dim: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > dim:
        raise ValueError(f"k={k} is larger than the operator's dimension {dim} (number of parameters)")


def flatten(tensors: dict[str, Tensor], names: Sequence[str], batch_dims: int = 0) -> Tensor:
    """Concatenate ``tensors[names]`` into one vector, keeping the first ``batch_dims`` axes."""
    return torch.cat([tensors[n].reshape(*tensors[n].shape[:batch_dims], -1) for n in names], -1)


def unflatten(vec: Tensor, like: dict[str, Tensor], names: Sequence[str],
              batch_dims: int = 0) -> dict[str, Tensor]:
    """Split a flat vector back into tensors shaped like ``like[names]`` (inverse of :func:`flatten`)."""
    out, i = {}, 0
    lead = vec.shape[:batch_dims]
    for n in names:
        shape = like[n].shape[batch_dims:]
        size = math.prod(shape)
        out[n] = vec[..., i:i + size].reshape(*lead, *shape)
        i += size
    if i != vec.shape[-1]:
        raise ValueError(f"flat vector has {vec.shape[-1]} entries, expected {i}")
    return out


def _squeeze(out: Tensor) -> Tensor:
    """One output unit [.., B, 1] -> [.., B], as :class:`lrlab.models.FromModule` does."""
    return out.squeeze(-1) if out.dim() >= 2 and out.shape[-1] == 1 else out


# ---------------------------------------------------------------------- loss and HVP
def loss_fn(module: nn.Module, loss: str, bn_mode: str = "eval") -> LossFn:
    """``f(params, x, y)``: mean loss of ``module`` under ``functional_call``, for ``torch.func``.

    Parameters missing from ``params`` and all buffers come from the module. In "train" mode
    BatchNorm uses batch statistics; it updates only copies of the running statistics, so the
    module is never modified (its train/eval flag is restored after every call).
    """
    _check_loss(loss)
    _check_bn_mode(bn_mode)
    train = bn_mode == "train"

    def f(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        was_training = module.training
        buffers = {n: (b.clone() if train else b) for n, b in module.named_buffers()}
        module.train(train)
        try:
            out = _squeeze(functional_call(module, {**buffers, **params}, (x,)))
        finally:
            module.train(was_training)
        nc = out.shape[-1] if out.dim() > y.dim() else 2
        return losses.per_example(loss, out.unsqueeze(0), y.unsqueeze(0), nc).mean()

    return f


def hvp(f: LossFn, params: dict[str, Tensor], x: Tensor, y: Tensor, v: dict[str, Tensor],
        chunk_size: int | None = None) -> dict[str, Tensor]:
    """Hessian of the full-data mean loss ``f(params, x, y)`` times ``v`` (forward-over-reverse).

    With ``chunk_size`` the examples go through in chunks whose HVPs are averaged weighted by
    chunk size, which equals the full-batch HVP for a per-example mean loss (not for train-mode
    BatchNorm, whose batch statistics then depend on the chunk).
    """
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x has {n} examples but y has {y.shape[0]}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    step = n if chunk_size is None else chunk_size
    total: dict[str, Tensor] | None = None
    for s in range(0, n, step):
        xc, yc = x[s:s + step], y[s:s + step]
        _, hv = jvp(lambda p: grad(f)(p, xc, yc), (params,), (v,))
        w = xc.shape[0] / n
        if total is None:
            total = {k: t * w for k, t in hv.items()} if w != 1 else hv
        else:
            for k, t in hv.items():
                total[k].add_(t, alpha=w)
    assert total is not None, "empty dataset"
    return total


# ---------------------------------------------------------------------- eigen solvers
def _orthogonalise(w: Tensor, Q: Tensor) -> Tensor:
    """Remove from each w[k] its components along the rows of Q[k] (Gram–Schmidt done twice)."""
    for _ in range(2):
        w = w - torch.einsum("kmp,km->kp", Q, torch.einsum("kmp,kp->km", Q, w))
    return w


def _lanczos_batched(matvec: Callable[[Tensor], Tensor], K: int, dim: int, k: int, iters: int,
                     tol: float, gen: torch.Generator, dtype: torch.dtype,
                     device: torch.device | str, stop: str = "residual",
                     on_iter: Callable[[int, int], None] | None = None) -> tuple[Tensor, Tensor, int]:
    """K independent Lanczos runs in lockstep on vectors [K, dim]: values [K, k], vectors [K, dim, k].

    Full reorthogonalisation; a run that finds an invariant subspace (β ≈ 0) restarts from a
    random vector orthogonal to its basis (β = 0 in T), so repeated eigenvalues are found.
    ``stop="residual"``: stops when every run's top-k Ritz residuals |β s_last| are below tol·|θ|
    (θ floored at √eps·max|θ| so that near-zero eigenvalues do not block convergence);
    ``stop="change"``: when every top-k Ritz value changed by at most tol·|θ| since the previous
    step (PyHessian's rule for its power iteration); or after ``iters``.
    ``on_iter(j, iters)`` is called after the j-th operator product (progress).
    A run whose products stop being finite (e.g. a diverged population member) is set aside
    and returns NaN, without holding up the others.
    """
    if stop not in STOPS:
        raise ValueError(f"stop must be one of {list(STOPS)}, got {stop!r}")
    eps = torch.finfo(dtype).eps
    cap = min(iters, max(12, 2 * k + 4))  # grown by doubling; only rows :j+1 are ever read
    Q = torch.empty(K, cap, dim, dtype=dtype, device=device)
    q = torch.randn(K, dim, generator=gen, dtype=dtype, device=device)
    Q[:, 0] = q / q.norm(dim=-1, keepdim=True)
    alphas: list[Tensor] = []
    betas: list[Tensor] = []
    scale = torch.zeros(K, dtype=dtype, device=device)
    theta = S = None
    prev: Tensor | None = None
    j = 0
    converged = False
    bad = torch.zeros(K, dtype=torch.bool, device=device)
    for j in range(iters):
        qj = Q[:, j]
        w = matvec(qj)
        if on_iter is not None:
            on_iter(j + 1, iters)
        alpha = (w * qj).sum(-1)  # not finite exactly when w is not (inf·0 is NaN too)
        bad |= ~torch.isfinite(alpha)
        if bool(bad.any()):
            w = torch.where(bad.unsqueeze(-1), 0.0, w)
            alpha = torch.where(bad, 0.0, alpha)
        w = _orthogonalise(w, Q[:, :j + 1])
        beta = w.norm(dim=-1)
        alphas.append(alpha)
        scale = torch.maximum(scale, torch.maximum(alpha.abs(), beta))
        T = torch.diag_embed(torch.stack(alphas, -1))
        if betas:
            off = torch.diag_embed(torch.stack(betas, -1), offset=1)
            T = T + off + off.transpose(1, 2)
        theta, S = torch.linalg.eigh(T)  # ascending, [K, j+1]
        broke = beta <= 10 * eps * scale
        if j + 1 >= k and j + 1 < dim and not bool((broke & ~bad).any()):
            top = theta[:, -k:]
            floor = math.sqrt(eps) * theta.abs().amax(-1, keepdim=True)
            if stop == "residual":
                err = beta.unsqueeze(-1) * S[:, -1, -k:].abs()
            else:  # change since the previous step (none measured yet: not converged)
                err = (top - prev).abs() if prev is not None else torch.full_like(top, math.inf)
                prev = top
            if bool(((err <= tol * torch.maximum(top.abs(), floor)) | bad.unsqueeze(-1)).all()):
                converged = True
                break
        if j + 1 >= dim:
            converged = True
            break
        if j + 1 == iters:
            break
        if bool(broke.any()):  # invariant subspace: continue from a fresh orthogonal direction
            r = torch.randn(K, dim, generator=gen, dtype=dtype, device=device)
            r = _orthogonalise(r, Q[:, :j + 1])
            r = r / r.norm(dim=-1, keepdim=True)
            b = broke.unsqueeze(-1)
            nxt = torch.where(b, r, w / torch.where(broke, 1.0, beta).unsqueeze(-1))
            beta = torch.where(broke, 0.0, beta)
        else:
            nxt = w / beta.unsqueeze(-1)
        if j + 1 == Q.shape[1]:  # grow the basis buffer
            grow = torch.empty(K, min(Q.shape[1], iters - Q.shape[1]), dim, dtype=dtype, device=device)
            Q = torch.cat([Q, grow], 1)
        Q[:, j + 1] = nxt
        betas.append(beta)
    if not converged:
        what = "Ritz residuals" if stop == "residual" else "Ritz values' changes"
        warnings.warn(f"Lanczos stopped after {iters} iterations before the top-{k} {what} "
                      f"reached tol={tol}; raise iters or tol", RuntimeWarning, stacklevel=3)
    assert theta is not None and S is not None
    m = theta.shape[-1]
    vals = theta[:, -k:].flip(-1)
    vecs = torch.einsum("kmp,kmi->kpi", Q[:, :m], S[:, :, -k:].flip(-1))
    if bool(bad.any()):
        vals = torch.where(bad.unsqueeze(-1), torch.nan, vals)
        vecs = torch.where(bad.view(K, 1, 1), torch.nan, vecs)
    return vals, vecs, j + 1


def _defaults(dtype: torch.dtype | None, device: torch.device | str | None) -> tuple[torch.dtype, Any]:
    return (dtype or torch.get_default_dtype()), (device if device is not None else "cpu")


def _default_iters(k: int, dim: int, iters: int | None) -> int:
    if iters is None:
        return min(dim, max(100, 20 * k))
    if not isinstance(iters, int) or iters < k:
        raise ValueError(f"iters must be an integer >= k={k}, got {iters!r}")
    return min(iters, dim)


def lanczos(matvec: Callable[[Tensor], Tensor], dim: int, k: int = 1, iters: int | None = None,
            tol: float = 1e-6, seed: int = 0, dtype: torch.dtype | None = None,
            device: torch.device | str | None = None, stop: str = "residual",
            on_iter: Callable[[int, int], None] | None = None) -> tuple[Tensor, Tensor]:
    """Top-k (largest algebraic) eigenvalues [k], descending, and eigenvectors [dim, k] of a
    symmetric operator on flat vectors, by Lanczos with full reorthogonalisation.

    ``iters`` caps the Lanczos steps (default min(dim, max(100, 20k))). ``stop`` picks the rule:
    "residual" (Ritz residuals below ``tol``·|λ|: eigenvalue errors of order tol²) or "change"
    (the top-k values moved by at most ``tol``·|λ| in one step, as PyHessian stops its power
    iteration). A RuntimeWarning says when the rule was not met by ``iters``. ``on_iter(j, iters)``
    is called after every operator product, for a progress display.
    """
    _check_k(k, dim)
    dtype, device = _defaults(dtype, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    vals, vecs, _ = _lanczos_batched(lambda v: matvec(v[0]).unsqueeze(0), 1, dim, k,
                                     _default_iters(k, dim, iters), tol, gen, dtype, device, stop, on_iter)
    return vals[0], vecs[0]


def power_iteration(matvec: Callable[[Tensor], Tensor], dim: int, tol: float = 1e-6,
                    max_iters: int = 1000, seed: int = 0, dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None) -> tuple[float, Tensor, int]:
    """Largest-magnitude eigenvalue (Rayleigh quotient, with sign), its unit eigenvector and the
    iterations used; stops when the estimate changes by less than ``tol`` relative."""
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim!r}")
    dtype, device = _defaults(dtype, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    v = torch.randn(dim, generator=gen, dtype=dtype, device=device)
    v = v / v.norm()
    lam = math.nan
    for it in range(1, max_iters + 1):
        w = matvec(v)
        new = float(v @ w)
        norm = w.norm()
        if float(norm) == 0.0:  # v is in the null space: the eigenvalue is 0
            return 0.0, v, it
        v = w / norm
        if abs(new - lam) <= tol * abs(new):
            return new, v, it
        lam = new
    warnings.warn(f"power iteration did not reach tol={tol} in {max_iters} iterations",
                  RuntimeWarning, stacklevel=2)
    return lam, v, max_iters


def hutchinson_trace(matvec: Callable[[Tensor], Tensor], dim: int, samples: int = 100, seed: int = 0,
                     dtype: torch.dtype | None = None,
                     device: torch.device | str | None = None) -> tuple[float, float]:
    """Trace estimate mean(zᵀAz) over Rademacher probes z, and its standard error."""
    if not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    dtype, device = _defaults(dtype, device)
    gen = torch.Generator(device=device).manual_seed(seed)
    vals = []
    for _ in range(samples):
        z = torch.randint(0, 2, (dim,), generator=gen, device=device).to(dtype) * 2 - 1
        vals.append(float(z @ matvec(z)))
    t = torch.tensor(vals, dtype=torch.float64)
    se = float(t.std() / math.sqrt(samples)) if samples > 1 else math.nan
    return float(t.mean()), se


# ---------------------------------------------------------------------- plain modules
@dataclass
class HessianEigs:
    """Top Hessian eigenvalues (descending), their eigenvectors [P, k] and the HVPs used."""

    values: Tensor
    vectors: Tensor | None
    iterations: int


def _module_operator(module: nn.Module, x: Tensor, y: Tensor, loss: str, bn_mode: str,
                     chunk_size: int | None) -> tuple[Callable[[Tensor], Tensor], int, Tensor]:
    """Flat Hessian-vector product of ``module``'s trainable parameters, its dim and a parameter."""
    f = loss_fn(module, loss, bn_mode)
    params = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("module has no trainable parameters")
    names = list(params)
    p0 = params[names[0]]
    dim = sum(p.numel() for p in params.values())
    if chunk_size is None:
        # one batch: build the gradient's graph once and reuse it for every product (one
        # backward pass through it per HVP instead of a fresh forward-over-reverse)
        leaves = {n: p.clone().requires_grad_(True) for n, p in params.items()}
        with torch.enable_grad():
            g = torch.autograd.grad(f(leaves, x, y), [leaves[n] for n in names], create_graph=True)

        def reused(v: Tensor) -> Tensor:
            vs = unflatten(v, params, names)
            with torch.enable_grad():
                hv = torch.autograd.grad(g, [leaves[n] for n in names], [vs[n] for n in names],
                                         retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv])

        return reused, dim, p0

    def matvec(v: Tensor) -> Tensor:
        return flatten(hvp(f, params, x, y, unflatten(v, params, names), chunk_size), names)

    return matvec, dim, p0


def top_hessian_eigs(module: nn.Module, x: Any, y: Tensor | None = None, loss: losses.Loss | None = None,
                     k: int = 1, method: str = "lanczos", bn_mode: str = "eval", chunk_size: int | None = None,
                     tol: float = 1e-6, seed: int = 0, stop: str = "residual",
                     on_iter: Callable[[int, int], None] | None = None) -> HessianEigs:
    """Top-k Hessian eigenvalues of ``module``'s mean loss on (x, y), over its trainable parameters.

    "lanczos" gives the largest algebraic eigenvalues (``stop``: see :func:`lanczos`); "power"
    runs power iteration with deflation (projecting out the vectors found), i.e. the largest in
    *magnitude*, and stops on the relative change of its estimate. ``x`` alone may hold the data
    (a TensorDataset, DataLoader or (x, y) pair); ``loss`` is a name or a criterion.
    ``on_iter(j, iters)`` follows the Lanczos steps (progress; "lanczos" only).
    """
    x, y = xy_of(x, y, "top_hessian_eigs")
    loss = _required(loss, "top_hessian_eigs")
    _check_loss(loss)
    _check_bn_mode(bn_mode)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    matvec, dim, p0 = _module_operator(module, x, y, loss, bn_mode, chunk_size)
    _check_k(k, dim)
    calls = 0

    def counted(v: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        return matvec(v)

    if method == "lanczos":
        vals, vecs = lanczos(counted, dim, k, tol=tol, seed=seed, dtype=p0.dtype, device=p0.device, stop=stop,
                             on_iter=on_iter)
        return HessianEigs(vals, vecs, calls)
    found: list[Tensor] = []
    values = []
    for i in range(k):
        U = torch.stack(found, 1) if found else None

        def deflated(v: Tensor, U: Tensor | None = U) -> Tensor:
            if U is None:
                return counted(v)
            v = v - U @ (U.T @ v)
            w = counted(v)
            return w - U @ (U.T @ w)

        lam, vec, _ = power_iteration(deflated, dim, tol=tol, seed=seed + i, dtype=p0.dtype,
                                      device=p0.device)
        if U is not None:
            vec = vec - U @ (U.T @ vec)
            vec = vec / vec.norm()
        values.append(lam)
        found.append(vec)
    return HessianEigs(torch.tensor(values, dtype=p0.dtype, device=p0.device),
                       torch.stack(found, 1), calls)


def hessian_trace(module: nn.Module, x: Any, y: Tensor | None = None, loss: losses.Loss | None = None,
                  samples: int = 100, bn_mode: str = "eval", chunk_size: int | None = None,
                  seed: int = 0) -> tuple[float, float]:
    """Hutchinson estimate of the Hessian trace of ``module``'s mean loss, and its standard error
    (data and loss as :func:`top_hessian_eigs` takes them)."""
    x, y = xy_of(x, y, "hessian_trace")
    loss = _required(loss, "hessian_trace")
    _check_loss(loss)
    _check_bn_mode(bn_mode)
    matvec, dim, p0 = _module_operator(module, x, y, loss, bn_mode, chunk_size)
    return hutchinson_trace(matvec, dim, samples, seed, dtype=p0.dtype, device=p0.device)


# ---------------------------------------------------------------------- populations
def population_top_eigs(model: Any, params: dict[str, Tensor], x: Tensor, y: Tensor, loss: str,
                        num_classes: int, k: int = 1, iters: int = 50, bn_mode: str = "eval",
                        seed: int = 0, tol: float = 1e-6, chunk_size: int | None = None,
                        on_iter: Callable[[int, int], None] | None = None) -> Tensor:
    """Top-k Hessian eigenvalues [K, k] of every member of a stacked population at once.

    ``x``, ``y`` are shared ([B, ...], [B]) or per member ([K, B, ...], [K, B]). One batched HVP
    serves all members and K Lanczos runs (at most ``iters`` steps, stopping early once every
    member's top-k Ritz residuals are below ``tol``·|λ|) advance in lockstep. Trainable
    parameters only. bn_mode "train" runs the forward with train=True and puts every buffer
    back afterwards. With ``chunk_size`` each HVP runs over that many examples at a time and adds
    up the slices (the same HVP for a per-example mean loss in eval mode, in one slice's memory).
    ``on_iter(j, iters)`` is called after every batched HVP (progress).
    """
    _check_loss(loss)
    _check_bn_mode(bn_mode)
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    buffer_names = frozenset(getattr(model, "buffer_names", frozenset()))
    frozen = frozenset(getattr(model, "frozen", frozenset()))
    names = [n for n in params if n not in frozen and n not in buffer_names]
    if not names:
        raise ValueError("model has no trainable parameters")
    K = params[names[0]].shape[0]
    if y.dim() == 1:  # shared data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x has {x.shape[0]} examples but y has {y.shape[0]}")
        x = x.unsqueeze(0).expand(K, *x.shape)
        y = y.unsqueeze(0).expand(K, *y.shape)
    elif y.dim() == 2:
        if y.shape[0] != K or tuple(x.shape[:2]) != tuple(y.shape):
            raise ValueError(f"per-member data must be x [K={K}, B, ...], y [K, B]; "
                             f"got x {tuple(x.shape)}, y {tuple(y.shape)}")
    else:
        raise ValueError(f"y must be [B] (shared) or [K, B] (per member), got shape {tuple(y.shape)}")
    trainable = {n: params[n].detach() for n in names}
    dim = sum(t[0].numel() for t in trainable.values())
    _check_k(k, dim)
    train = bn_mode == "train"
    fixed = {n: v.detach() for n, v in params.items() if n not in trainable}
    saved = {n: params[n].clone() for n in params if n in buffer_names} if train else {}

    B = y.shape[1]
    step = B if chunk_size is None else min(chunk_size, B)

    def slice_loss(flat: Tensor, start: int) -> Tensor:
        """The examples [start, start + step)'s share of every member's mean loss, summed over members."""
        p = unflatten(flat, trainable, names, batch_dims=1)
        const = {n: (v.clone() if n in buffer_names and train else v) for n, v in fixed.items()}
        out = model.forward({**const, **p}, x[:, start:start + step], train=train)
        per = losses.per_example(loss, out, y[:, start:start + step], num_classes)
        return per.mean(1).sum() if step == B else per.sum(1).div(B).sum()

    flat0 = flatten(trainable, names, batch_dims=1)

    def matvec(V: Tensor) -> Tensor:
        total = None
        for start in range(0, B, step):
            hv = jvp(grad(partial(slice_loss, start=start)), (flat0,), (V,))[1]
            total = hv if total is None else total.add_(hv)
        return total

    gen = torch.Generator(device=flat0.device).manual_seed(seed)
    try:
        vals, _, _ = _lanczos_batched(matvec, K, dim, k, _default_iters(k, dim, iters), tol, gen,
                                      flat0.dtype, flat0.device, on_iter=on_iter)
    finally:
        with torch.no_grad():
            for n, b in saved.items():
                params[n].copy_(b)
    return vals
