"""A hand-written SGD step for the stacked two-layer ReLU net: no autograd, no per-step allocation.

For :class:`~lrlab.models.TwoLayerReLU` (one output) trained by plain SGD (weight decay allowed,
no momentum) on the logistic, squared or margin-squared loss, the backward pass is three batched
products. Writing it out lets the step

* fold each member's learning rate into ∂L/∂f, so the update happens inside the gradient
  products (``W.baddbmm_(g_hiddenᵀ, x, alpha=-1)``): no gradient tensor is ever stored;
* keep every [members, B, width] activation in buffers allocated once, so no step allocates or
  page-faults (glibc hands large freed blocks back to the kernel; faulting them in again cost
  a third of a small step on this VM, benchmarks/RESULTS.md);
* run members in chunks whose activations fit in cache, instead of all-or-one (see
  :func:`chunk_size`).

The arithmetic is that of the autograd step in :mod:`lrlab.train.population` up to float
round-off (the products are summed in a different order); ``tests/test_fused.py`` checks both
against each other and against ``torch.optim.SGD``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.two_layer import TwoLayerReLU

FUSED_LOSSES = ("logistic", "squared", "margin_squared")

# Members per chunk: as many as keep one chunk's [members, B, width] hidden activations within
# this many numbers (4 MiB of float32; measured in benchmarks/bench_population.py --chunks).
CHUNK_ELEMENTS = 1 << 20


def eligible(model, cfg, stochastic: bool, stream: bool) -> str | None:
    """Why the fused step cannot train this run (None when it can)."""
    if not isinstance(model, TwoLayerReLU):
        return f"the model is a {type(model).__name__}, not a TwoLayerReLU"
    if model.out_dim != 1:
        return f"the model has {model.out_dim} outputs (the fused step handles one)"
    if cfg.optimizer != "sgd":
        return f"optimizer {cfg.optimizer} (the fused step is plain SGD)"
    if cfg.momentum:
        return f"momentum {cfg.momentum} (the fused step is plain SGD)"
    if cfg.loss not in FUSED_LOSSES:
        return f"the {cfg.loss} loss (the fused step handles {list(FUSED_LOSSES)})"
    if stochastic or stream:
        return "the training data are an image stream" if stream else "the model is stochastic"
    return None


def chunk_size(members: int, batch: int, width: int, budget: int | None = None) -> int:
    """Members per chunk so that one chunk's hidden activations hold at most ``budget`` numbers
    (default CHUNK_ELEMENTS)."""
    budget = CHUNK_ELEMENTS if budget is None else budget
    return max(1, min(members, budget // max(1, batch * width)))


class TwoLayerSGD:
    """The fused step with its buffers, for chunks of up to ``chunk`` members of batch ``B``."""

    def __init__(self, model: TwoLayerReLU, loss: str, chunk: int, B: int, weight_decay: float,
                 dtype: torch.dtype, device: torch.device) -> None:
        if loss not in FUSED_LOSSES:
            raise ValueError(f"the fused step handles the losses {list(FUSED_LOSSES)}, got {loss!r}")
        self.model, self.loss, self.chunk, self.B = model, loss, chunk, B
        self.weight_decay = float(weight_decay)
        h, d = model.width, model.d_in
        opts = {"dtype": dtype, "device": device}
        self.hidden = torch.empty(chunk, B, h, **opts)
        self.g_hidden = torch.empty(chunk, B, h, **opts)
        self.out = torch.empty(chunk, 1, B, **opts)
        self.g_a = torch.empty(chunk, 1, h, **opts)
        self.x = torch.empty(chunk, B, d, **opts)  # the trainer gathers each minibatch into this

    def step(self, params: dict[str, Tensor], sl: slice, x: Tensor, y: Tensor, lr: Tensor,
             active: Tensor, trainable: frozenset[str] | set[str]) -> tuple[Tensor, Tensor]:
        """One SGD step of members ``sl`` on x [k, B, d], y [k, B]; updates ``params`` in place.

        Returns (loss [k], ok [k]): each member's minibatch loss before the step and whether it
        stepped (active and a finite loss). A member that did not step keeps its parameters
        exactly, as in the autograd step.
        """
        k = sl.stop - sl.start
        W, a = params["W"][sl], params["a"][sl]
        b = params["b"][sl] if "b" in params else None
        c = params["c"][sl] if "c" in params else None
        hid, g_hid, out, g_a = self.hidden[:k], self.g_hidden[:k], self.out[:k], self.g_a[:k]
        if b is not None:
            torch.baddbmm(b.unsqueeze(1), x, W.transpose(1, 2), out=hid)
        else:
            torch.bmm(x, W.transpose(1, 2), out=hid)
        hid.clamp_min_(0)  # relu, in place: the backward needs only where it is positive
        # the matrix-vector products run as row vector × matrix ([k,1,h]·[k,h,B]): 3–14× faster on CPU
        # than matrix × column vector ([k,B,h]·[k,h,1]) for these shapes (benchmarks/RESULTS.md)
        torch.bmm(a.transpose(1, 2), hid.transpose(1, 2), out=out)
        f = out.squeeze(1)
        if c is not None:
            f = f + c
        per_ex, d_f = _loss_and_slope(self.loss, f, y)
        loss = per_ex.mean(1)
        ok = active & torch.isfinite(loss)
        all_ok = bool(ok.all())
        lr_eff = lr if all_ok else torch.where(ok, lr, 0.0)  # zero for a member that does not step
        g = d_f.mul_((lr_eff / self.B).unsqueeze(1))  # lr_k · ∂L/∂f (L is the batch mean)
        if not all_ok:
            g = torch.where(ok.unsqueeze(1), g, 0.0)
            keep = {n: v[sl][~ok].clone() for n, v in params.items()}
        torch.mul(g.unsqueeze(2), a.transpose(1, 2), out=g_hid)  # lr·∂L/∂hidden, with a before its step
        if self.weight_decay:  # W ← (1 − lr·wd)·W − lr·∇W, and likewise for every trained tensor
            for name in trainable:
                v = params[name][sl]
                v.mul_((1 - lr_eff * self.weight_decay).view((-1,) + (1,) * (v.dim() - 1)))
        if "a" in trainable:
            torch.bmm(g.unsqueeze(1), hid, out=g_a)  # lr·∂L/∂a as a row
            a.sub_(g_a.transpose(1, 2))
        if c is not None and "c" in trainable:
            c.sub_(g.sum(1, keepdim=True))
        torch.ops.aten.threshold_backward.grad_input(g_hid, hid, 0, grad_input=g_hid)  # · relu'
        W.baddbmm_(g_hid.transpose(1, 2), x, alpha=-1)
        if b is not None and "b" in trainable:
            b.sub_(g_hid.sum(1))
        if not all_ok:  # restore exactly what a member that did not step had
            bad = (~ok).nonzero().squeeze(1)
            for name, v in keep.items():
                params[name][sl].index_copy_(0, bad, v)
        return loss, ok


def _loss_and_slope(loss: str, f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-example loss [k, B] and its derivative in f (a fresh tensor the caller may overwrite)."""
    if loss == "logistic":  # softplus(−y f); slope −y·σ(−y f)
        z = f * y
        z.neg_()
        return torch.nn.functional.softplus(z), torch.sigmoid(z).mul_(y).neg_()
    if loss == "squared":  # ½(f − y)²; slope f − y
        r = f - y
        return 0.5 * r * r, r.clone()
    # margin_squared: (y f − 1)²; slope 2y(y f − 1)
    m = f * y - 1
    return m * m, (2 * m).mul_(y)
