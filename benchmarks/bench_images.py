"""Image-pipeline and small-CNN training throughput (issue 3), as ratios measured in one process.

    .venv/bin/python benchmarks/bench_images.py [--threads 1 2] [--width 16 32] [--json out.json]

1. Patch + normalise: images/s of ``ImageStream.batch`` (gather uint8, normalise, patch with
   fresh per-use draws), 128-image minibatches from a 10,000-image CIFAR-10 subset.
2. Small-CNN training: images/s of lrlab's trainer (loop mode, one member at a time, SGD with
   Nesterov momentum and weight decay, patched minibatches) against a plain ``torch.optim``
   loop on the same model and minibatch size; the model's forward+backward FLOPs per image
   turn images/s into GFLOP/s, shown as a fraction of this machine's float32 matmul GFLOP/s
   measured in the same run. Also the vectorised (vmap) population at K=3 for comparison.
3. Where the time goes in one lrlab training step and one evaluation pass.

Uses ../shared/data/cifar10-jpeg.zip (or $LRLAB_DATA); exits with a message when absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

from lrlab import losses
from lrlab.config import Cifar10PatchConfig, PatchConfig, TrainConfig
from lrlab.data import cifar10_split
from lrlab.models import FromModule, SmallCNN
from lrlab.threads import set_threads
from lrlab.train import Constant, grid
from lrlab.train.population import _Trainer


def best_of(fn, repeats: int = 3, number: int = 1) -> float:
    """Smallest wall time of ``number`` calls, over ``repeats`` tries (the machine is shared)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t) / number)
    return best


def matmul_gflops(n: int = 1024) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_of(lambda: a @ b, repeats=5, number=5) / 1e9


def train_flops_per_image(width: int, downsample: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    m = SmallCNN(10, width, downsample=downsample).train()
    x = torch.randn(8, 3, 32, 32)
    with FlopCounterMode(display=False) as c:
        F.cross_entropy(m(x), torch.zeros(8, dtype=torch.long)).backward()
    return c.get_total_flops() / 8


def pipeline(split, B: int = 128, k: int = 1) -> float:
    tr = split.train
    g = torch.Generator().manual_seed(0)
    idx = torch.stack([torch.randperm(tr.n, generator=g)[:B] for _ in range(k)])
    step = iter(range(10**9))
    dt = best_of(lambda: tr.batch(idx, list(range(k)), next(step)), repeats=5, number=20)
    return k * B / dt


def plain_loop(split, width: int, downsample: str, B: int, steps: int, channels_last: bool) -> float:
    """images/s of the usual loop: one nn.Module, torch.optim.SGD, the same patched minibatches."""
    torch.manual_seed(0)
    m = SmallCNN(10, width, downsample=downsample).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    tr = split.train
    perm = torch.randperm(tr.n)

    def run():
        for t in range(steps):
            idx = perm[(t * B) % (tr.n - B):][:B].unsqueeze(0)
            x, y, _ = tr.batch(idx, [0], t)
            x = x[0].contiguous(memory_format=torch.channels_last) if channels_last else x[0]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(x), y[0]).backward()
            opt.step()

    return steps * B / best_of(run, repeats=2)


def lrlab_trainer(split, width: int, downsample: str, B: int, steps: int, k: int,
                  mode: str) -> tuple[float, _Trainer]:
    model = FromModule(lambda: SmallCNN(10, width, downsample=downsample), channels_last=True)
    members = grid({"s": Constant(0.01)}, list(range(k)), data_per_seed=False)
    cfg = TrainConfig(loss="cross_entropy", steps=10**6, batch_size=B, momentum=0.9, nesterov=True,
                      weight_decay=5e-4, eval_every=10**6, mode=mode)
    tr = _Trainer(model, members, split.train, split.evals, cfg, None)
    step = iter(range(10**9))

    def run():
        for _ in range(steps):
            tr.update(next(step))

    return k * steps * B / best_of(run, repeats=2), tr


def breakdown(tr: _Trainer, steps: int = 20) -> dict[str, float]:
    """Seconds per member-step in data, forward, backward and the SGD update (loop mode)."""
    sl = slice(0, 1)
    out = {"data": 0.0, "forward": 0.0, "backward": 0.0, "update": 0.0}
    for t in range(steps):
        t0 = time.perf_counter()
        xb, yb, _ = tr._batch(t, sl)
        t1 = time.perf_counter()
        p = {k: v[sl].detach().requires_grad_(k in tr.trainable) for k, v in tr.params.items()}
        o = tr._forward(p, xb, t, sl)
        loss = losses.per_example("cross_entropy", o, yb, 10).mean(1).sum()
        t2 = time.perf_counter()
        torch.autograd.grad(loss, [p[k] for k in tr.trainable])
        t3 = time.perf_counter()
        tr.update(t)  # every member: data, forward, backward and the SGD update
        t4 = time.perf_counter()
        out["data"] += t1 - t0
        out["forward"] += t2 - t1
        out["backward"] += t3 - t2
        # one member's share of tr.update minus what was timed above is the SGD update
        out["update"] += max(0.0, (t4 - t3) / len(tr.members) - (t3 - t0))
    return {k: v / steps for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--width", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--downsample", nargs="+", default=["stride", "maxpool"])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    try:
        split = cifar10_split(Cifar10PatchConfig(n_per_class=1000, n_test_per_class=200, patch=PatchConfig()),
                              progress=True)
    except FileNotFoundError as e:
        sys.exit(f"skipped: no CIFAR-10 here ({e})")
    results = []
    for threads in a.threads:
        set_threads(threads)
        gf = matmul_gflops()
        row = {"threads": threads, "matmul_gflops": gf, "pipeline_img_s": pipeline(split),
               "pipeline_img_s_k3": pipeline(split, k=3)}
        print(f"threads={threads}: matmul {gf:.1f} GFLOP/s; patch+normalise "
              f"{row['pipeline_img_s']:.0f} img/s (1 member), {row['pipeline_img_s_k3']:.0f} img/s (3 members)")
        for ds in a.downsample:
            for w in a.width:
                fl = train_flops_per_image(w, ds)
                base = plain_loop(split, w, ds, 128, a.steps, channels_last=False)
                base_cl = plain_loop(split, w, ds, 128, a.steps, channels_last=True)
                loop, tr = lrlab_trainer(split, w, ds, 128, a.steps, 3, "loop")
                vec, _ = lrlab_trainer(split, w, ds, 128, max(5, a.steps // 3), 3, "vectorized")
                bd = breakdown(tr)
                t0 = time.perf_counter()
                tr.evaluate(0)
                ev = time.perf_counter() - t0
                n_eval = sum(d.n for d in tr.evalsets.values()) * 3
                r = {"downsample": ds, "width": w, "train_flops_per_img": fl, "plain_img_s": base,
                     "plain_channels_last_img_s": base_cl, "lrlab_loop_img_s": loop,
                     "lrlab_vmap_img_s": vec, "loop_over_plain": loop / base,
                     "loop_over_plain_channels_last": loop / base_cl, "vmap_over_loop": vec / loop,
                     "gflops": loop * fl / 1e9, "frac_of_matmul": loop * fl / 1e9 / gf,
                     "breakdown_s_per_step": bd, "eval_img_s": n_eval / ev}
                row[f"{ds}-w{w}"] = r
                print(f"  {ds} width {w}: {fl / 1e6:.1f} MFLOP/img (fwd+bwd). plain loop {base:.0f} img/s "
                      f"(channels_last {base_cl:.0f}); lrlab loop {loop:.0f} img/s ({loop / base:.2f}× plain, "
                      f"{loop / base_cl:.2f}× plain channels_last); lrlab vmap K=3 {vec:.0f} img/s "
                      f"({vec / loop:.2f}× loop). {r['gflops']:.1f} GFLOP/s = {r['frac_of_matmul']:.0%} of "
                      f"matmul. eval {r['eval_img_s']:.0f} img/s")
                print("    per step: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in bd.items()))
        results.append(row)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
