"""A vectorised learning-rate sweep of the uv model (issue 4) against a loop of single runs.

    .venv/bin/python benchmarks/bench_uv_sweep.py [--width 2048] [--members 64] [--steps 1000]

64 members of the uv model f(x) = n^{-1/2} vᵀ u x (docs/spec.md §2; width 2048) from one
initialisation, learning rates η = c/λ0 with c spread geometrically over [0.5, 8], trained by
full-batch GD on the squared loss for 1,000 steps: lrlab's population trainer (one vectorised
run) against a loop of 64 plain ``torch.optim.SGD`` runs on the same data, timed in one process.
Prints both times, the ratio and the largest difference in final loss between the two.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lrlab.config import TrainConfig
from lrlab.data import Dataset
from lrlab.models import UVModel
from lrlab.probes import ntk_top_eigenvalue
from lrlab.threads import set_threads
from lrlab.train import Constant, Member, train_population


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=2048)
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    set_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.m, a.d, generator=g) / a.d**0.5
    y = torch.randn(a.m, generator=g)
    data = Dataset(x, y, torch.zeros(a.m, dtype=torch.long), ("all",), "regression", 1)
    model = UVModel(a.d, a.width)
    lam0 = float(ntk_top_eigenvalue(model.to_module(model.init([0]), 0), x))
    etas = np.geomspace(0.5, 8, a.members) / lam0
    members = [Member(f"c={c:.3g}", 0, Constant(float(e))) for c, e in zip(etas * lam0, etas)]
    cfg = TrainConfig(loss="squared", steps=a.steps, eval_every=a.steps, mode="vectorized")

    t0 = time.perf_counter()
    res = train_population(model, members, data, None, cfg)
    t_vec = time.perf_counter() - t0
    final_vec = res.final("train.loss").to_numpy()

    t0 = time.perf_counter()
    final_loop = []
    init = model.init([0])
    for eta in etas:
        mod = model.to_module(init, 0)
        opt = torch.optim.SGD(mod.parameters(), lr=float(eta))
        for _ in range(a.steps):
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * ((mod(x).squeeze(-1) - y) ** 2).mean()
            if not torch.isfinite(loss):
                break
            loss.backward()
            opt.step()
        with torch.no_grad():
            final_loop.append(float(0.5 * ((mod(x).squeeze(-1) - y) ** 2).mean()))
    t_loop = time.perf_counter() - t0
    final_loop = np.asarray(final_loop)
    both = np.isfinite(final_vec) & np.isfinite(final_loop)
    diff = np.abs(final_vec[both] - final_loop[both]).max(initial=0.0)
    print(f"uv width {a.width}, {a.members} learning rates (η·λ0 0.5–8, λ0 = {lam0:.4g}), "
          f"{a.steps} full-batch GD steps on {a.m} examples, {a.threads} thread(s):")
    print(f"  lrlab vectorised {t_vec:.2f} s; loop of torch.optim runs {t_loop:.2f} s; "
          f"loop / lrlab = {t_loop / t_vec:.1f}×")
    print(f"  diverged: lrlab {int(res.members.diverged.sum())}, loop {int((~np.isfinite(final_loop)).sum())}; "
          f"max |Δ final loss| over converged members {diff:.2e}")


if __name__ == "__main__":
    main()
