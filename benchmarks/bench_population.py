#!/usr/bin/env python
"""Benchmark lrlab's population trainer against a plain PyTorch loop and a JAX reference.

Three workloads (the issue's W1-W3). Each trains K = 64 two-layer ReLU nets, member k with
learning rate ``LRS[k]`` (log-spaced 1e-3..1), logistic loss, plain SGD (no momentum), on one
fixed Gaussian data set whose ±1 labels come from a random linear teacher.

Implementations, all timed in this one process:

* ``lrlab fused`` / ``lrlab vectorized`` / ``lrlab loop`` / ``lrlab auto``: ``lrlab.train_population``
  with ``TrainConfig(mode=...)`` (``auto`` resolves to ``fused`` on these workloads); its cost
  includes the two evaluations it always does (step 0 and the end) and building the result tables.
* ``torch loop``: the baseline. For each member, an ``nn.Sequential(Linear, ReLU, Linear)``
  trained with ``torch.optim.SGD``; then its loss on the whole training set.
* ``jax`` (only if ``jax`` imports): ``jit(lax.scan(vmap(step)))`` over members, batch indices
  precomputed as an int32 array [steps, K, B]; compile time is reported separately.

Fair-comparison protocol, identical for every implementation:

* the same initial weights: member k starts from ``TwoLayerReLU.init(range(K))[.][k]``;
* the same minibatch order: member k draws a fresh permutation of the training set each epoch
  from a generator seeded exactly as lrlab seeds member k (``_batch_seed(k, epoch)``), and takes
  consecutive slices of it; W2 is full-batch, so there is no order;
* a member whose minibatch loss is inf/NaN is frozen and counted as diverged (lrlab's rule).

Hence per-member final training losses should agree to float32 round-off (checked and printed).

Threads: ``--threads 1,2`` runs everything once per count. For a count N the script calls
``torch.set_num_threads(N)`` and restricts the whole process (every OS thread, including XLA's
pool) to N CPUs with ``sched_setaffinity``; that is the only way to hold JAX to N cores from
inside one process.

FLOPs counted: matrix-product FLOPs only. Forward = 2·B·(d·h + h) per member per step (first
layer d·h and second layer h multiply-adds per example); forward+backward = 3× that. Evaluation
passes, bias adds, ReLU, loss and the SGD update are not counted, so the reported GFLOP/s is a
lower bound on work done. The machine's reference is the best of several 2048×2048 float32
``torch.matmul`` calls at the same thread count, measured before and after each workload.

Noise: the machine may be shared. Implementations are interleaved round by round, the best
of ``--repeat`` runs is kept, and each run records how many cores *other* processes kept busy
while it ran (from /proc/stat minus this process's CPU time): the ``other`` column. A run with
other ≈ 1 competed for a core; with 2 threads such runs can be several times slower.

Usage::

    python benchmarks/bench_population.py [--workloads W1,W2,W3] [--threads 1,2] [--repeat N]
                                          [--out benchmarks/results.json]
    python benchmarks/bench_population.py --profile W1,W2,W3 --threads 1 --out benchmarks/profile.json
                                          # where lrlab's step goes (shares of wall time)

A run of 3 workloads × repeat 2 with JAX took 644 s at 1 thread and 407 s at 2 threads on a quiet
2-core machine (benchmarks/RESULTS.md): the slow implementations (torch loop, lrlab loop) need
most of that. Measure each thread count in its own process with its XLA_FLAGS
(benchmarks/README.md). ``--threads 1`` or a subset of ``--workloads`` is faster;
``--step-scale 0.1`` is a smoke test whose numbers are not comparable.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import json
import math
import os
import platform
import pstats
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import lrlab
from lrlab.threads import set_threads
from lrlab.train import Constant, Member, choose_mode
from lrlab.train import fused as _fused
from lrlab.train import population as _population

K = 64
LRS = np.logspace(-3, 0, K)
DATA_SEED = 20240601
ALL_CPUS = sorted(os.sched_getaffinity(0))

try:  # JAX is optional and never a dependency of lrlab.
    import jax
    import jax.numpy as jnp

    HAVE_JAX = True
    JAX_ERROR = ""
except Exception as e:  # pragma: no cover - depends on the environment
    HAVE_JAX = False
    JAX_ERROR = f"{type(e).__name__}: {e}"


# ----------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    name: str
    d: int
    width: int
    n: int
    batch: int | None  # None = full-batch gradient descent
    steps: int

    @property
    def B(self) -> int:
        return self.batch or self.n

    @property
    def forward_flops(self) -> int:
        """Forward matmul FLOPs of one member for one step (one minibatch)."""
        return 2 * self.B * (self.d * self.width + self.width)

    @property
    def train_flops(self) -> int:
        """Counted FLOPs of a whole run: 3 × forward, K members, all steps."""
        return 3 * self.forward_flops * K * self.steps

    def describe(self) -> str:
        b = f"batch {self.batch}" if self.batch else "full batch"
        return f"d={self.d}, width {self.width}, {self.n} points, {b}, {self.steps} steps"


WORKLOADS = {
    "W1": Workload("W1", d=100, width=256, n=512, batch=64, steps=500),
    "W2": Workload("W2", d=20, width=64, n=256, batch=None, steps=1000),
    "W3": Workload("W3", d=200, width=1024, n=1024, batch=128, steps=200),
}


@dataclass
class Problem:
    """Everything one workload's runs share: data, initial weights, batch order."""

    w: Workload
    data: lrlab.Dataset
    model: lrlab.TwoLayerReLU
    params0: dict[str, torch.Tensor]  # W [K,h,d], b [K,h], a [K,h,1]


def make_problem(w: Workload) -> Problem:
    g = torch.Generator().manual_seed(DATA_SEED)
    x = torch.randn(w.n, w.d, generator=g)
    teacher = torch.randn(w.d, generator=g)
    y = torch.sign(x @ teacher)
    y[y == 0] = 1.0
    data = lrlab.Dataset(x, y, torch.zeros(w.n, dtype=torch.long), ("all",))
    model = lrlab.TwoLayerReLU(w.d, w.width)
    params0 = model.init(list(range(K)))
    return Problem(w, data, model, params0)


def member_perm(seed: int, epoch: int, n: int) -> torch.Tensor:
    """Member ``seed``'s order of the training set in ``epoch``: the permutation lrlab draws."""
    g = torch.Generator().manual_seed(_population._batch_seed(seed, epoch))
    return torch.randperm(n, generator=g)


def batch_indices(w: Workload) -> np.ndarray:
    """All minibatch indices, int32 [steps, K, B] (for the JAX scan)."""
    per_epoch = w.n // w.B
    out = np.empty((w.steps, K, w.B), dtype=np.int32)
    for k in range(K):
        perm = None
        for t in range(w.steps):
            epoch, j = divmod(t, per_epoch)
            if j == 0:
                perm = member_perm(k, epoch, w.n).numpy()
            out[t, k] = perm[j * w.B:(j + 1) * w.B]
    return out


# ----------------------------------------------------------------------------- threads


def pin_threads(n: int) -> None:
    """torch.set_num_threads(n) and every thread of this process on the first n CPUs."""
    if n > len(ALL_CPUS):
        raise SystemExit(f"--threads {n}: this process may only use {len(ALL_CPUS)} CPUs")
    set_threads(n)
    cpus = set(ALL_CPUS[:n])
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:  # the thread ended meanwhile
            pass


def _busy_seconds() -> float:
    """CPU seconds all processes on the machine have spent busy (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def timed(fn: Callable[[], RunOut]) -> RunOut:
    """Run fn and record how many cores other processes kept busy meanwhile (noise gauge)."""
    busy0, own0, wall0 = _busy_seconds(), _own_cpu(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - wall0
    out.other_cores = max(0.0, ((_busy_seconds() - busy0) - (_own_cpu() - own0)) / wall)
    return out


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def matmul_gflops(reps: int = 5, size: int = 2048) -> float:
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b  # warm-up
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


# ----------------------------------------------------------------------------- implementations


@dataclass
class RunOut:
    seconds: float
    final_loss: np.ndarray  # [K] loss on the whole training set; NaN for diverged members
    diverged: np.ndarray  # [K] bool
    note: str = ""
    other_cores: float = math.nan  # cores other processes used during the run


def run_lrlab(p: Problem, mode: str, steps: int | None = None) -> RunOut:
    w = p.w
    T = steps or w.steps
    members = [Member(f"lr{k}", k, Constant(float(lr))) for k, lr in enumerate(LRS)]
    cfg = lrlab.TrainConfig(steps=T, batch_size=w.batch, eval_every=T, mode=mode)
    t0 = time.perf_counter()
    res = lrlab.train_population(p.model, members, p.data, None, cfg)
    dt = time.perf_counter() - t0
    final = res.final("train.loss").sort_index().to_numpy(dtype=np.float64)
    div = res.members.sort_values("member")["diverged"].to_numpy(dtype=bool)
    return RunOut(dt, final, div, note=f"ran as {res.mode}")


def _auto_mode(w: Workload) -> str:
    """The mode lrlab's ``auto`` resolves to on this workload (the trainer's own rule)."""
    model = lrlab.TwoLayerReLU(w.d, w.width)
    cfg = lrlab.TrainConfig(steps=w.steps, batch_size=w.batch, eval_every=w.steps)
    return choose_mode(model, (w.d,), w.B, K, "auto", _fused.eligible(model, cfg, False, False))


def _module_for(p: Problem, k: int) -> nn.Sequential:
    """Member k as nn.Sequential(Linear, ReLU, Linear) holding the shared initial weights."""
    first = nn.Linear(p.w.d, p.w.width)
    second = nn.Linear(p.w.width, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(p.params0["W"][k])
        first.bias.copy_(p.params0["b"][k])
        second.weight.copy_(p.params0["a"][k].T)
    return nn.Sequential(first, nn.ReLU(), second)


def run_torch_loop(p: Problem, steps: int | None = None) -> RunOut:
    """The baseline: 64 ordinary single-model training runs, one after the other."""
    w = p.w
    T = steps or w.steps
    x, y = p.data.x, p.data.y
    B, n = w.B, w.n
    per_epoch = n // B
    final = np.full(K, np.nan)
    div = np.zeros(K, dtype=bool)
    t0 = time.perf_counter()
    for k in range(K):
        net = _module_for(p, k)
        opt = torch.optim.SGD(net.parameters(), lr=float(LRS[k]))
        perm = None
        for t in range(T):
            if w.batch is None:
                xb, yb = x, y
            else:
                epoch, j = divmod(t, per_epoch)
                if j == 0:
                    perm = member_perm(k, epoch, n)
                ib = perm[j * B:(j + 1) * B]
                xb, yb = x[ib], y[ib]
            loss = F.softplus(-yb * net(xb).squeeze(1)).mean()
            if not bool(torch.isfinite(loss)):
                div[k] = True
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if not div[k]:
            with torch.no_grad():
                final[k] = float(F.softplus(-y * net(x).squeeze(1)).mean())
    return RunOut(time.perf_counter() - t0, final, div)


class JaxRunner:
    """jit(scan over steps of vmap over members of one SGD step), compiled once per thread count."""

    def __init__(self, p: Problem, steps: int | None = None) -> None:
        w = p.w
        self.T = steps or w.steps
        self.full = w.batch is None
        t0 = time.perf_counter()
        idx = None if self.full else batch_indices(w)[: self.T]
        self.index_seconds = time.perf_counter() - t0
        self.args = (
            {k: jnp.asarray(v.numpy()) for k, v in p.params0.items()},
            jnp.asarray(p.data.x.numpy()),
            jnp.asarray(p.data.y.numpy()),
            jnp.asarray(LRS, dtype=jnp.float32),
            None if idx is None else jnp.asarray(idx),
        )
        self.compiled = None
        self.compile_seconds = math.nan

    def _build(self) -> Callable:
        T, full = self.T, self.full

        def loss_fn(params, xb, yb):
            hidden = jax.nn.relu(xb @ params["W"].T + params["b"])
            out = (hidden @ params["a"])[:, 0]
            return jnp.mean(jax.nn.softplus(-yb * out))

        value_and_grad = jax.value_and_grad(loss_fn)

        def member_step(params, active, lr, x, y, ib):
            xb, yb = (x, y) if ib is None else (x[ib], y[ib])
            loss, grads = value_and_grad(params, xb, yb)
            ok = active & jnp.isfinite(loss)
            new = jax.tree_util.tree_map(lambda v, g: jnp.where(ok, v - lr * g, v), params, grads)
            return new, ok

        step_all = jax.vmap(member_step, in_axes=(0, 0, 0, None, None, None if full else 0))

        def train(params, x, y, lrs, idx):
            def body(carry, ib):
                prm, act = carry
                return step_all(prm, act, lrs, x, y, ib), None

            active = jnp.ones(lrs.shape[0], dtype=bool)
            (params, active), _ = jax.lax.scan(body, (params, active), idx, length=T)
            final = jax.vmap(loss_fn, in_axes=(0, None, None))(params, x, y)
            return jnp.where(active, final, jnp.nan), ~active

        return jax.jit(train)

    def compile(self) -> float:
        t0 = time.perf_counter()
        self.compiled = self._build().lower(*self.args).compile()
        self.compile_seconds = time.perf_counter() - t0
        return self.compile_seconds

    def run(self) -> RunOut:
        t0 = time.perf_counter()
        final, div = jax.block_until_ready(self.compiled(*self.args))
        dt = time.perf_counter() - t0
        final = np.asarray(final, dtype=np.float64)
        return RunOut(dt, final, np.asarray(div, dtype=bool))


# ----------------------------------------------------------------------------- one workload


def bench_workload(w: Workload, threads: int, repeat: int, use_jax: bool, log) -> dict:
    pin_threads(threads)
    p = make_problem(w)
    auto_mode = _auto_mode(w)
    mm_before = matmul_gflops()
    # warm-up: one-off costs (allocator, MKL/oneDNN init) kept out of the first timing
    run_torch_loop(p, steps=3)
    run_lrlab(p, "vectorized", steps=3)
    run_lrlab(p, "loop", steps=3)

    impls: list[tuple[str, Callable[[], RunOut], int]] = [
        ("torch loop", lambda: run_torch_loop(p), repeat),
        ("lrlab vectorized", lambda: run_lrlab(p, "vectorized"), repeat),
        ("lrlab loop", lambda: run_lrlab(p, "loop"), repeat),
        ("lrlab fused", lambda: run_lrlab(p, "fused"), repeat),
        # auto runs exactly the code path of the mode it resolves to; timed once to save time
        ("lrlab auto", lambda: run_lrlab(p, "auto"), 1),
    ]
    jax_info = {}
    if use_jax:
        jr = JaxRunner(p)
        jr.compile()
        jax_info = {"compile_s": jr.compile_seconds, "index_precompute_s": jr.index_seconds}
        impls.append(("jax", jr.run, repeat))

    times: dict[str, list[float]] = {name: [] for name, _, _ in impls}
    other: dict[str, list[float]] = {name: [] for name, _, _ in impls}
    outs: dict[str, RunOut] = {}
    for r in range(repeat):  # rounds interleave implementations so drifting load hits all alike
        for name, fn, reps in impls:
            if r >= reps:
                continue
            out = timed(fn)
            times[name].append(out.seconds)
            other[name].append(out.other_cores)
            outs.setdefault(name, out)
            log(f"  [{w.name} threads={threads} round {r + 1}] {name:17s} {out.seconds:8.2f} s"
                f"  other load {out.other_cores:.2f} cores" + (f"  ({out.note})" if out.note else ""))
    mm_after = matmul_gflops()

    loop_best = min(times["torch loop"])
    rows = []
    ref = outs["lrlab vectorized"]
    for name, ts in times.items():
        best = min(ts)
        o = outs[name]
        both = ~(ref.diverged | o.diverged)
        diff = float(np.max(np.abs(ref.final_loss[both] - o.final_loss[both]))) if both.any() else math.nan
        rows.append({
            "workload": w.name, "threads": threads, "impl": name,
            "best_s": best, "times_s": ts, "spread": max(ts) / best if len(ts) > 1 else math.nan,
            "other_cores": other[name], "other_cores_best": other[name][ts.index(best)],
            "vs_loop": loop_best / best, "gflops": w.train_flops / best / 1e9,
            "mean_final_loss": float(np.nanmean(o.final_loss)) if (~o.diverged).any() else math.nan,
            "diverged": int(o.diverged.sum()),
            "same_diverged_as_lrlab": bool((o.diverged == ref.diverged).all()),
            "max_abs_loss_diff_vs_lrlab": diff,
            "note": o.note,
        })
        if name == "jax":
            rows[-1].update(jax_info)
            rows[-1]["best_plus_compile_s"] = best + jax_info["compile_s"]
            rows[-1]["vs_loop_with_compile"] = loop_best / rows[-1]["best_plus_compile_s"]
    auto_time = min(times["lrlab auto"])
    modes = {m: min(times[f"lrlab {m}"]) for m in ("fused", "vectorized", "loop")}
    vec, lp = modes["vectorized"], modes["loop"]
    return {
        "workload": asdict(w), "threads": threads, "rows": rows,
        "matmul_gflops": {"before": mm_before, "after": mm_after},
        "train_gflop": w.train_flops / 1e9,
        "forward_flops_per_member_step": w.forward_flops,
        "auto": {"picked": auto_mode, "faster_mode": min(modes, key=modes.get), "fused_s": modes["fused"],
                 "auto_s": auto_time, "vectorized_s": vec, "loop_s": lp},
    }


# ----------------------------------------------------------------------------- reporting


def format_table(results: list[dict], have_jax: bool) -> str:
    head = (f"{'work':4s} {'thr':>3s}  {'implementation':17s} {'best s':>8s} {'spread':>6s} "
            f"{'vs loop':>7s} {'GFLOP/s':>7s} {'%mm':>5s} {'other':>5s} {'div':>3s} {'max|dL|':>8s}  notes")
    lines = [head, "-" * len(head)]
    for res in results:
        mm = max(res["matmul_gflops"].values())
        for r in res["rows"]:
            note = r["note"]
            if r["impl"] == "jax":
                note = (f"compile {r['compile_s']:.2f} s; with compile {r['best_plus_compile_s']:.2f} s "
                        f"= {r['vs_loop_with_compile']:.2f}x loop")
            spread = "-" if math.isnan(r["spread"]) else f"{r['spread']:.2f}"
            diff = "-" if r["impl"] == "lrlab vectorized" else f"{r['max_abs_loss_diff_vs_lrlab']:.1e}"
            if not r["same_diverged_as_lrlab"]:
                note += " DIVERGED SET DIFFERS"
            lines.append(
                f"{r['workload']:4s} {r['threads']:>3d}  {r['impl']:17s} {r['best_s']:8.2f} {spread:>6s} "
                f"{r['vs_loop']:6.2f}x {r['gflops']:7.1f} {100 * r['gflops'] / mm:4.0f}% {r['other_cores_best']:5.2f} "
                f"{r['diverged']:>3d} {diff:>8s}  {note}")
        a = res["auto"]
        lines.append(f"{'':4s} {'':3s}  auto picked {a['picked']}; faster here: {a['faster_mode']} "
                     f"(fused {a['fused_s']:.2f} s, vectorized {a['vectorized_s']:.2f} s, loop {a['loop_s']:.2f} s); "
                     f"matmul {res['matmul_gflops']['before']:.0f}/{res['matmul_gflops']['after']:.0f} "
                     f"GFLOP/s before/after; counted {res['train_gflop']:.0f} GFLOP")
        lines.append("")
    if not have_jax:
        lines.append(f"jax column skipped: jax does not import here ({JAX_ERROR})")
    return "\n".join(lines)


# cProfile names of the fused step's torch calls, by what they do (anything else is overhead)
PROFILE_CATEGORIES = {
    "products": ("torch.baddbmm", "torch.bmm", "'baddbmm_'"),
    "element-wise": ("'clamp_min_'", "torch.sigmoid", "softplus", "torch.mul", "aten.", "'sum'", "'sub_'",
                     "'neg_'", "'mul_'", "'mean'", "torch.isfinite", "torch.where", "'all'", "'any'"),
    "gather": ("torch.index_select", "'index_select'", "'__getitem__'", "'view'", "'reshape'"),
}


TRAIN_CALLERS = ("step", "_loss_and_slope", "_gather_rows", "_fused_update")  # the fused training step


def profile_breakdown(name: str, steps: int, threads: int) -> dict:
    """Where the fused trainer (what ``auto`` picks) spends its time on one workload, in wall-clock
    shares: the matrix products of training (and their GFLOP/s against this machine's matmul
    peak), element-wise work, input gathering, the two evaluations, and everything else (Python
    and dispatch overhead), from cProfile; plus minor page faults per step. cProfile adds about a
    microsecond per call, which lands in "overhead"; the unprofiled time is printed beside it.
    """
    pin_threads(threads)
    w = replace(WORKLOADS[name], steps=steps)
    p = make_problem(w)
    run_lrlab(p, "fused", steps=5)
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    plain = run_lrlab(p, "fused")
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / steps
    prof = cProfile.Profile()
    prof.enable()
    out = run_lrlab(p, "fused")
    prof.disable()
    stats = pstats.Stats(prof).stats  # (file, line, fn) -> (calls, calls, own s, cumulative s, {caller: edge})
    shares = {k: 0.0 for k in PROFILE_CATEGORIES}
    evaluation = sum(v[3] for (_, _, fn), v in stats.items() if fn == "group_metrics")
    for (_, _, fn), (*_, callers) in stats.items():
        cat = next((c for c, keys in PROFILE_CATEGORIES.items() if any(k in fn for k in keys)), None)
        if cat is not None:  # only the calls made by the training step (evaluations call them too)
            shares[cat] += sum(edge[2] for (_, _, caller), edge in callers.items() if caller in TRAIN_CALLERS)
    total = out.seconds
    matmul = matmul_gflops()
    row = {"workload": name, "threads": threads, "steps": steps, "plain_s": plain.seconds, "profiled_s": total,
           "faults_per_step": faults, "evaluation_s": evaluation, "matmul_peak_gflops": matmul,
           **{f"{k}_s": v for k, v in shares.items()}}
    row["overhead_s"] = max(0.0, total - evaluation - sum(shares.values()))
    # the fused step's products: first layer forward and ∂W (no ∂x), second layer forward and ∂a
    row["product_gflops"] = 4 * w.B * w.width * (w.d + 1) * K * steps / max(1e-9, shares["products"]) / 1e9
    print(f"{name} fused, {threads} thread(s), {steps} steps: {plain.seconds:.2f} s plain, {total:.2f} s profiled, "
          f"{faults:.0f} page faults/step")
    for k in (*shares, "evaluation", "overhead"):
        v = row[f"{k}_s"]
        print(f"  {k:13s} {v:7.2f} s  {100 * v / total:5.1f}%")
    print(f"  training products at {row['product_gflops']:.0f} GFLOP/s = {100 * row['product_gflops'] / matmul:.0f}% "
          f"of this machine's {matmul:.0f} GFLOP/s matmul")
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", default="W1,W2,W3", help="comma-separated subset of W1,W2,W3")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per implementation (best kept)")
    ap.add_argument("--out", default="benchmarks/results.json", help="where to write the JSON results")
    ap.add_argument("--no-jax", action="store_true", help="skip the JAX reference even if jax imports")
    ap.add_argument("--profile", metavar="WORKLOADS",
                    help="instead of benchmarking, break down where the fused trainer's time goes on these workloads")
    ap.add_argument("--profile-steps", type=int, default=300)
    ap.add_argument("--step-scale", type=float, default=1.0,
                    help="multiply every workload's steps (smoke tests only; results not comparable)")
    args = ap.parse_args(argv)

    names = [s.strip() for s in args.workloads.split(",") if s.strip()]
    for s in names + (args.profile.split(",") if args.profile else []):
        if s not in WORKLOADS:
            ap.error(f"unknown workload {s!r}; choose from {', '.join(WORKLOADS)}")
    threads = [int(s) for s in args.threads.split(",") if s.strip()]
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    if args.profile:
        rows = [profile_breakdown(n, args.profile_steps, th)
                for n in args.profile.split(",") for th in threads]
        if args.out:
            Path(args.out).write_text(json.dumps({"env": {"date": _dt.datetime.now().astimezone().isoformat(
                timespec="seconds"), "cpu": _cpu_name(), "torch": torch.__version__}, "profile": rows}, indent=1))
        return 0

    use_jax = HAVE_JAX and not args.no_jax
    if args.step_scale != 1.0:
        for n in list(WORKLOADS):
            WORKLOADS[n] = replace(WORKLOADS[n], steps=max(1, round(WORKLOADS[n].steps * args.step_scale)))
    if use_jax:  # start XLA's CPU client (and its thread pool) while every CPU is allowed
        jax.block_until_ready(jax.jit(lambda a: a @ a)(jnp.ones((64, 64))))
    env = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]) if argv is None else str(argv),
        "python": platform.python_version(), "torch": torch.__version__,
        "jax": jax.__version__ if HAVE_JAX else None, "numpy": np.__version__,
        "lrlab": lrlab.__version__, "nproc": os.cpu_count(), "cpus_allowed": len(ALL_CPUS),
        "cpu": _cpu_name(), "members": K, "lrs": [float(LRS[0]), float(LRS[-1])],
        "loop_threshold_flops": _population.LOOP_THRESHOLD_FLOPS, "step_scale": args.step_scale,
        "load_avg_start": os.getloadavg(), "xla_flags": os.environ.get("XLA_FLAGS"),
    }
    print(f"lrlab population benchmark  {env['date']}")
    print(f"cpu: {env['cpu']}, nproc {env['nproc']}, torch {env['torch']}, jax {env['jax']}, "
          f"K={K} members, lr {LRS[0]:g}..{LRS[-1]:g}, repeat {args.repeat}, threads {threads}, "
          f"load avg {env['load_avg_start'][0]:.2f}")
    if not use_jax:
        print("jax column skipped: " + ("--no-jax given" if HAVE_JAX else f"jax does not import ({JAX_ERROR})"))
    for n in names:
        w = WORKLOADS[n]
        print(f"{n}: {w.describe()}; forward {w.forward_flops / 1e6:.2f} MFLOP per member-step; "
              f"auto -> {_auto_mode(w)}")

    results = []
    t_start = time.perf_counter()
    for n in names:
        for th in threads:
            results.append(bench_workload(WORKLOADS[n], th, args.repeat, use_jax, lambda s: print(s, flush=True)))
    pin_threads(max(threads))
    env["total_s"] = time.perf_counter() - t_start
    env["load_avg_end"] = os.getloadavg()

    print()
    print(format_table(results, use_jax))
    print(f"total {env['total_s']:.0f} s; load average {env['load_avg_start'][0]:.2f} at start, "
          f"{env['load_avg_end'][0]:.2f} at end")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"env": env, "results": results}, indent=1, default=_json_default))
        print(f"wrote {out}")
    return 0


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
