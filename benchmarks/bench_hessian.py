"""Top Hessian eigenvalues: lrlab (Lanczos / power iteration) against PyHessian (issue 4).

    .venv/bin/python benchmarks/bench_hessian.py [--threads 1] [--tol 1e-3]

PyHessian comes with the optional ``bench`` extra (``pip install -e '.[bench]'``, see
benchmarks/README.md), never as an lrlab dependency. Both run in this one process on the same
~1M-parameter MLP (3072 → 300 → 300 → 10, ReLU) and the same 1,000 CIFAR-10 images (random
inputs if the data are absent), cross-entropy loss, float32, at the same relative tolerance:
lrlab's Lanczos with its own rule (Ritz residual < tol·|λ|) and with PyHessian's (the estimate
changes by < tol·|λ| in one step). A tight Lanczos run (tol 1e-8) gives the reference
eigenvalues the errors are measured against.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from lrlab.config import Cifar10PatchConfig
from lrlab.data import cifar10_split, normalize
from lrlab.probes import top_hessian_eigs
from lrlab.probes.curvature import _module_operator
from lrlab.threads import set_threads


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 300), nn.ReLU(), nn.Linear(300, 300), nn.ReLU(),
                         nn.Linear(300, 10))


def data(n: int = 1000) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        sp = cifar10_split(Cifar10PatchConfig(n_per_class=n // 10, n_test_per_class=1))
        return normalize(sp.train.x), sp.train.y, "CIFAR-10 (JPEG copy)"
    except FileNotFoundError:
        g = torch.Generator().manual_seed(0)
        return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g), "random"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--top", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--loose", type=float, default=3e-2,
                    help="also time lrlab's Lanczos at this looser residual tolerance (its "
                         "eigenvalue error is about the square of it; compare achieved accuracy)")
    a = ap.parse_args()
    set_threads(a.threads)

    x, y, source = data()
    model = mlp()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"MLP with {n_params:,} parameters, {len(y)} examples of {source}, cross-entropy, "
          f"{a.threads} thread(s), tol {a.tol}")
    try:
        from pyhessian import hessian as PyHessian
    except ImportError:
        PyHessian = None
        print("  pyhessian is not installed in this environment: only lrlab is timed")
    ref = top_hessian_eigs(model, x, y, "cross_entropy", k=max(a.top), tol=1e-8).values
    (mv, dim, _), t_graph = timed(lambda: _module_operator(model, x, y, "cross_entropy", "eval", None))
    v = torch.randn(dim)
    _, t_hvp = timed(lambda: [mv(v) for _ in range(5)])

    def fwd_bwd():
        for _ in range(5):
            model.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()

    _, t_fb = timed(fwd_bwd)
    model.zero_grad()
    print(f"  one HVP {t_hvp / 5:.3f} s (gradient graph built once: {t_graph:.3f} s); "
          f"one plain forward + backward {t_fb / 5:.3f} s")
    print("  reference (Lanczos, tol 1e-8): " + ", ".join(f"{v:.6g}" for v in ref[: max(a.top)].tolist()))
    for k in a.top:
        res, t_lz = timed(lambda: top_hessian_eigs(model, x, y, "cross_entropy", k=k, tol=a.tol))
        line = (f"  top-{k}: lrlab Lanczos {t_lz:.2f} s ({res.iterations} HVPs), "
                f"max rel. error {float(((res.values[:k] - ref[:k]) / ref[:k]).abs().max()):.1e}")
        if k == 1:
            pw, t_pw = timed(lambda: top_hessian_eigs(model, x, y, "cross_entropy", k=1, method="power",
                                                      tol=a.tol))
            line += (f"; lrlab power {t_pw:.2f} s ({pw.iterations} HVPs), rel. error "
                     f"{abs(float(pw.values[0]) - float(ref[0])) / float(ref[0]):.1e}")
        same, t_ch = timed(lambda: top_hessian_eigs(model, x, y, "cross_entropy", k=k, tol=a.tol, stop="change"))
        line += (f"; lrlab Lanczos, PyHessian's stopping rule (change < tol): {t_ch:.2f} s ({same.iterations} HVPs), "
                 f"max rel. error {float(((same.values[:k] - ref[:k]) / ref[:k]).abs().max()):.1e}")
        loose, t_lo = timed(lambda: top_hessian_eigs(model, x, y, "cross_entropy", k=k, tol=a.loose))
        line += (f"; lrlab Lanczos tol {a.loose:g}: {t_lo:.2f} s ({loose.iterations} HVPs), max rel. error "
                 f"{float(((loose.values[:k] - ref[:k]) / ref[:k]).abs().max()):.1e}")
        if PyHessian is not None:
            def run_pyhessian():
                torch.manual_seed(1)
                comp = PyHessian(mlp(), nn.CrossEntropyLoss(), data=(x, y), cuda=False)
                return comp.eigenvalues(maxIter=100, tol=a.tol, top_n=k)[0]

            vals, t_ph = timed(run_pyhessian)
            err = max(abs(v - float(r)) / float(r) for v, r in zip(vals, ref[:k].tolist()))
            line += (f"; PyHessian {t_ph:.2f} s, max rel. error {err:.1e}; "
                     f"PyHessian / lrlab Lanczos = {t_ph / t_lz:.1f}× (tol {a.tol:g}), "
                     f"{t_ph / t_ch:.1f}× (same stopping rule, tol {a.tol:g}), {t_ph / t_lo:.1f}× (tol {a.loose:g})")
        print(line)


if __name__ == "__main__":
    main()
