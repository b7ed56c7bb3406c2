#!/usr/bin/env python
"""Prototype, NOT lrlab code: how fast could lrlab's population step be on these workloads?

A measured proposal for ``lrlab.train.population`` (see benchmarks/RESULTS.md, "Speed-ups").
For the stacked two-layer ReLU net with logistic loss and plain SGD it writes the backward pass
out by hand instead of calling autograd, and

* keeps every [K, B, width] activation in a preallocated buffer (no per-step allocation, so no
  page faults: glibc hands big freed blocks back to the kernel and each step faults them in
  again; lrlab's W2 step takes ~1,700 minor faults, and disabling glibc's trimming alone took
  lrlab's W2 run from 6.2 s to 4.1 s on this VM),
* folds each member's learning rate into the output gradient and applies the update inside the
  gradient product (``W.baddbmm_(g_preᵀ, x, alpha=-1)``), so W's gradient is never stored,
  let alone in the transposed layout autograd hands back,
* processes the members in chunks sized so that one chunk's hidden activations hold at most
  ``--chunk-elements`` numbers (default 2**20, i.e. 4 MiB): all 64 members at once for W1/W2,
  8 at a time for W3. This replaces the all-or-one-at-a-time choice of LOOP_THRESHOLD_FLOPS.

Same protocol as bench_population.py: same data, initial weights, per-member batch order and
divergence rule; loss on the whole training set at step 0 and at the end (lrlab does the same
two evaluations). Final losses are compared member by member with lrlab's vectorized mode.

    python benchmarks/proto_fused_step.py [--workloads W1,W2,W3] [--threads 1] [--repeat 2]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_population as bp  # noqa: E402


def _full_loss(x: torch.Tensor, y: torch.Tensor, W, b, a) -> torch.Tensor:
    """Each member's mean logistic loss on the whole set, one member at a time (small buffers)."""
    out = torch.empty(W.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for k in range(W.shape[0]):
            f = torch.addmm(b[k], x, W[k].T).clamp_min_(0) @ a[k]
            out[k] = F.softplus(-y * f[:, 0]).mean()
    return out


def train_fused(p: bp.Problem, chunk_elements: int = 1 << 20) -> bp.RunOut:
    w = p.w
    K, B, n, d, h = bp.K, w.B, w.n, w.d, w.width
    x, y = p.data.x, p.data.y
    chunk = max(1, min(K, chunk_elements // (B * h)))
    t0 = time.perf_counter()
    W, b, a = (p.params0[k].clone() for k in ("W", "b", "a"))
    lrs = torch.tensor(bp.LRS, dtype=torch.float32)
    active = torch.ones(K, dtype=torch.bool)
    _full_loss(x, y, W, b, a)  # the step-0 evaluation lrlab also does
    xb, yb = torch.empty(K, B, d), torch.empty(K, B)
    if w.batch is None:
        xb.copy_(x.expand(K, n, d))
        yb.copy_(y.expand(K, n))
    hid, gh, out = torch.empty(chunk, B, h), torch.empty(chunk, B, h), torch.empty(chunk, B, 1)
    per_epoch = n // B
    perm = None
    for t in range(w.steps):
        if w.batch is not None:
            epoch, j = divmod(t, per_epoch)
            if j == 0:
                perm = torch.stack([bp.member_perm(k, epoch, n) for k in range(K)])
            ib = perm[:, j * B:(j + 1) * B].reshape(-1)
            torch.index_select(x, 0, ib, out=xb.view(K * B, d))
            torch.index_select(y, 0, ib, out=yb.view(K * B))
        for lo in range(0, K, chunk):
            sl = slice(lo, min(K, lo + chunk))
            c = sl.stop - sl.start
            Wc, bc, ac, xc, yc = W[sl], b[sl], a[sl], xb[sl], yb[sl]
            hc, gc, oc = hid[:c], gh[:c], out[:c]
            torch.baddbmm(bc.unsqueeze(1), xc, Wc.transpose(1, 2), out=hc)
            hc.clamp_min_(0)                                        # hidden = relu(Wx + b)
            torch.bmm(hc, ac, out=oc)                               # f = a·hidden
            z = oc.squeeze(2).mul(yc).neg_()                        # -y f
            ok = active[sl] & torch.isfinite(F.softplus(z).mean(1))
            # lr_k · dL/df (loss = mean over the batch of softplus(-y f)); zero for frozen members
            gs = torch.sigmoid(z).mul_(yc).mul_((-lrs[sl] / B).unsqueeze(1))
            gs = torch.where(ok.unsqueeze(1), gs, 0.0)
            torch.mul(gs.unsqueeze(2), ac.transpose(1, 2), out=gc)  # lr·dL/dhidden, with the old a
            ac.baddbmm_(hc.transpose(1, 2), gs.unsqueeze(2), alpha=-1)          # a -= lr·dL/da
            torch.ops.aten.threshold_backward.grad_input(gc, hc, 0, grad_input=gc)  # · relu'
            Wc.baddbmm_(gc.transpose(1, 2), xc, alpha=-1)           # W -= lr·dL/dW
            bc.sub_(gc.sum(1))                                      # b -= lr·dL/db
            active[sl] = ok
    final = _full_loss(x, y, W, b, a)
    final = torch.where(active, final, math.nan).numpy()
    return bp.RunOut(time.perf_counter() - t0, final, (~active).numpy(), note=f"chunk {chunk}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="W1,W2,W3")
    ap.add_argument("--threads", default="1")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--chunk-elements", type=int, default=1 << 20)
    args = ap.parse_args()
    print(f"{'work':4s} {'thr':>3s}  {'implementation':18s} {'best s':>7s} {'other':>5s}  {'max|dL| vs lrlab':>16s}")
    for name in args.workloads.split(","):
        for th in (int(s) for s in args.threads.split(",")):
            bp.pin_threads(th)
            p = bp.make_problem(bp.WORKLOADS[name])
            train_fused(bp.Problem(bp.Workload("warm", p.w.d, p.w.width, p.w.n, p.w.batch, 3),
                                   p.data, p.model, p.params0))
            runs = {"lrlab vectorized": lambda: bp.run_lrlab(p, "vectorized"),
                    "lrlab auto": lambda: bp.run_lrlab(p, "auto"),
                    "prototype fused": lambda: train_fused(p, args.chunk_elements)}
            best: dict[str, bp.RunOut] = {}
            for _ in range(args.repeat):
                for label, fn in runs.items():
                    o = bp.timed(fn)
                    if label not in best or o.seconds < best[label].seconds:
                        best[label] = o
            ref = best["lrlab vectorized"]
            for label, o in best.items():
                both = ~(ref.diverged | o.diverged)
                diff = np.max(np.abs(ref.final_loss[both] - o.final_loss[both])) if both.any() else math.nan
                print(f"{name:4s} {th:3d}  {label:18s} {o.seconds:7.2f} {o.other_cores:5.2f}  {diff:16.1e}  {o.note}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
