"""Fast CNN populations (issue 17): compiled and grouped SmallCNN training against loop mode, in one process.

    taskset -c 1 .venv/bin/python benchmarks/bench_cnn_population.py --threads 1 --members 3 6 \\
        [--steps 10] [--check-steps 20] [--cifar] [--json out.json]

The workload is the li2019-patch quick regime: SmallCNN width 32 (stride-2 layout) with an
ActivationNoise layer at every BN→ReLU, batch 128, SGD Nesterov 0.9 with weight decay 5e-4,
cross-entropy, members cycling through the large (lr 0.1), small (0.004) and noise (0.004,
σ = 0.4) schedules. Inputs are random 32×32×3 images (pure speed; ``--cifar`` uses the patched
10,000-image CIFAR-10 subset instead). Variants, each timed as train-step images/s per member:

1. ``loop`` — lrlab's trainer in loop mode, eager (the current default; every ratio is over this).
2. ``loop+compile`` — the same trainer with ``FromModule(..., compile=True)``: the one-member
   training forward through ``torch.compile`` (AOTAutograd compiles its backward too).
3. ``grouped`` — all K members in one network: convolutions with ``groups=K`` on [B, K·C, H, W],
   BatchNorm over K·C channels (exactly per-member BN), the final Linear as ``bmm``, and the same
   SGD arithmetic on the stacked parameters; eager and ``torch.compile``-d.

Compile time (the first step) is reported separately and excluded from the throughput. The
numerics check trains eager loop and compiled loop from the same seeds for ``--check-steps``
steps and reports the largest difference of any member's minibatch loss, and whether a second
compiled run repeats the first exactly. For scale, the same difference between two eager runs
that differ only in memory layout (NCHW against channels-last convolutions) is reported too:
training amplifies any round-off difference, step by step.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from lrlab.config import Cifar10PatchConfig, PatchConfig, TrainConfig
from lrlab.data import cifar10_split
from lrlab.data.dataset import Dataset
from lrlab.models import FromModule, SmallCNN
from lrlab.threads import set_threads
from lrlab.train import Constant
from lrlab.train.population import Member, _Trainer

B, WIDTH, CLASSES = 128, 32, 10
SCHEDULES = (("large", 0.1, 0.0), ("small", 0.004, 0.0), ("noise", 0.004, 0.4))


def members(k: int) -> list[Member]:
    """K members cycling through the three li2019-patch schedules, each with its own seed."""
    out = []
    for i in range(k):
        name, lr, sigma = SCHEDULES[i % 3]
        out.append(Member(f"{name}{i}", i, Constant(lr), 0, Constant(sigma) if sigma else None))
    return out


def random_images(n: int = 2560) -> Dataset:
    g = torch.Generator().manual_seed(0)
    return Dataset(torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, CLASSES, (n,), generator=g),
                   torch.zeros(n, dtype=torch.long), ("all",), "multiclass", CLASSES)


class Recording(FromModule):
    """FromModule that keeps each training forward's output (for the per-member loss check)."""

    outputs: list[Tensor]

    def forward(self, params: dict[str, Tensor], x: Tensor, train: bool = False) -> Tensor:
        out = super().forward(params, x, train)
        if train:
            self.outputs.append(out.detach().clone())
        return out


def trainer(train, k: int, compile: bool, record: bool = False, channels_last: bool = True) -> _Trainer:
    cls = Recording if record else FromModule
    model = cls(lambda: SmallCNN(CLASSES, WIDTH, True), channels_last=channels_last, compile=compile)
    model.outputs = []
    cfg = TrainConfig(loss="cross_entropy", steps=10**4, batch_size=B, momentum=0.9, nesterov=True,
                      weight_decay=5e-4, eval_every=10**4, mode="loop")
    return _Trainer(model, members(k), train, None, cfg, None)


# --------------------------------------------------------------------------- grouped members
def grouped_forward(p: dict[str, Tensor], x: Tensor, sigma: Tensor, K: int) -> Tensor:
    """K SmallCNNs as one network. ``x`` [K, B, 3, H, W], ``p`` stacked [K, ...] → logits [K, B, C].

    Member k's channels are the k-th block of each activation; BN over K·C channels is per-member
    BN. The noise is one H×W draw per member and layer (σ per member), as ActivationNoise.
    """
    Kb, Bb = x.shape[:2]
    h = x.transpose(0, 1).reshape(Bb, K * 3, *x.shape[-2:]).contiguous(memory_format=torch.channels_last)
    for i in (0, 2, 4):
        w = p[f"features.{i}.weight"]
        h = F.conv2d(h, w.reshape(K * w.shape[1], *w.shape[2:]), stride=2, padding=1, groups=K)
        bn = f"features.{i + 1}.bn"
        h = F.batch_norm(h, p[f"{bn}.running_mean"].view(-1), p[f"{bn}.running_var"].view(-1),
                         p[f"{bn}.weight"].reshape(-1), p[f"{bn}.bias"].reshape(-1), True, 0.1, 1e-5)
        H, W = h.shape[-2:]
        eps = torch.randn(K, 1, H, W, dtype=h.dtype)
        h = h.view(Bb, K, -1, H, W) + (sigma.view(K, 1, 1, 1) * eps)
        h = torch.relu(h.view(Bb, -1, H, W))
    feat = h.mean(dim=(-2, -1)).view(Bb, K, -1).transpose(0, 1)  # [K, B, 4w]
    return torch.baddbmm(p["fc.bias"].unsqueeze(1), feat, p["fc.weight"].transpose(1, 2))


def grouped_step(tr: _Trainer, fwd: Callable, t: int) -> Tensor:
    """One SGD step of all members through ``fwd`` (same arithmetic as ``_Trainer.update``)."""
    cfg, K = tr.cfg, len(tr.members)
    xs, ys = zip(*(tr._batch(t, slice(k, k + 1))[:2] for k in range(K)))
    x, y = torch.cat(xs), torch.cat(ys)
    p = {k: v.detach().requires_grad_(k in tr.trainable) for k, v in tr.params.items()}
    sigma = (tr.sigmas[t] if tr.sigmas is not None else torch.zeros(K)).to(x.dtype)
    out = fwd(p, x, sigma, K)
    loss = F.cross_entropy(out.reshape(-1, CLASSES), y.reshape(-1), reduction="none").view(K, -1).mean(1)
    grads = torch.autograd.grad(loss.sum(), [p[k] for k in tr.trainable])
    lr = tr.lrs[t].to(x.dtype)
    with torch.no_grad():
        for name, g in zip(tr.trainable, grads):
            w = tr.params[name]
            g.add_(w, alpha=cfg.weight_decay)
            buf = tr.momentum[name]
            buf.mul_(cfg.momentum).add_(g)
            g.add_(buf, alpha=cfg.momentum)
            w.addcmul_(lr.view((-1,) + (1,) * (w.dim() - 1)), g, value=-1.0)
    return loss.detach()


# --------------------------------------------------------------------------- timing
def rate(step: Callable[[int], object], k: int, steps: int, start: int, repeats: int = 2) -> float:
    """Best images/s per member over ``repeats`` runs of ``steps`` steps (the machine is shared)."""
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        for s in range(steps):
            step(start + r * steps + s)
        best = min(best, time.perf_counter() - t0)
    return steps * B / best


def first_step(step: Callable[[int], object]) -> float:
    t0 = time.perf_counter()
    step(0)
    return time.perf_counter() - t0


def measure(train, k: int, steps: int) -> dict:
    torch._dynamo.reset()  # every compile time below is a fresh compile in this process
    eager, comp = trainer(train, k, False), trainer(train, k, True)
    grp, grp_c = trainer(train, k, False), trainer(train, k, False)
    cgrouped = torch.compile(grouped_forward, dynamic=False, options={"fallback_random": True})
    runs = {
        "loop": lambda t: eager.update(t),
        "loop+compile": lambda t: comp.update(t),
        "grouped": lambda t: grouped_step(grp, grouped_forward, t),
        "grouped+compile": lambda t: grouped_step(grp_c, cgrouped, t),
    }
    first = {name: first_step(fn) for name, fn in runs.items()}
    rates = {name: 0.0 for name in runs}
    for rep in range(2):  # interleave the variants: load on the other core hits them alike
        for name, fn in runs.items():
            rates[name] = max(rates[name], rate(fn, k, steps, 1 + rep * 2 * steps, repeats=1))
    return {"members": k, "img_s_per_member": rates, "img_s_total": {n: k * r for n, r in rates.items()},
            "ratio_vs_loop": {n: r / rates["loop"] for n, r in rates.items()},
            "first_step_s": first,
            "compile_s": {n: first[n] - first["loop"] for n in ("loop+compile", "grouped+compile")}}


def numerics(train, k: int, steps: int) -> dict:
    """Per-member minibatch losses of eager and compiled loop mode over ``steps`` steps."""
    def losses(tr: _Trainer) -> Tensor:
        for t in range(steps):
            tr.update(t)
        out = torch.stack([o[0] for o in tr.model.outputs]).view(steps, k, B, CLASSES)
        ys = torch.stack([torch.cat([tr._batch(t, slice(j, j + 1))[1] for j in range(k)]) for t in range(steps)])
        return F.cross_entropy(out.reshape(-1, CLASSES), ys.reshape(-1), reduction="none").view(steps, k, B).mean(-1)

    e = losses(trainer(train, k, False, record=True))
    c1 = losses(trainer(train, k, True, record=True))
    c2 = losses(trainer(train, k, True, record=True))
    nchw = losses(trainer(train, k, False, record=True, channels_last=False))
    diff, ref = (e - c1).abs(), (e - nchw).abs()
    return {"members": k, "steps": steps, "max_abs_loss_diff": float(diff.max()),
            "max_abs_loss_diff_step0": float(diff[0].max()),
            "max_abs_loss_diff_first5": float(diff[:5].max()),
            "max_rel_loss_diff": float((diff / e.abs()).max()),
            "max_abs_loss_diff_by_member": diff.amax(0).tolist(),
            "eager_nchw_vs_channels_last_max_abs": float(ref.max()),
            "eager_nchw_vs_channels_last_step0": float(ref[0].max()),
            "compiled_twice_identical": bool(torch.equal(c1, c2))}


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--members", type=int, nargs="+", default=[3, 6])
    ap.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    ap.add_argument("--check-steps", type=int, default=20, help="steps of the numerics check (0: skip)")
    ap.add_argument("--cifar", action="store_true", help="the patched CIFAR-10 subset instead of random images")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.cifar:
        try:
            train = cifar10_split(Cifar10PatchConfig(n_per_class=1000, n_test_per_class=200,
                                                     patch=PatchConfig())).train
        except FileNotFoundError as e:
            sys.exit(f"skipped: no CIFAR-10 here ({e})")
    else:
        train = random_images()
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"), "cpu": _cpu_name(),
               "command": " ".join(sys.argv), "torch": torch.__version__,
               "data": "cifar10-patch" if a.cifar else "random", "runs": []}
    for threads in a.threads:
        set_threads(threads)
        for k in a.members:
            r = {"threads": threads, **measure(train, k, a.steps)}
            results["runs"].append(r)
            cells = ", ".join(f"{n} {v:.0f} img/s ({r['ratio_vs_loop'][n]:.2f}×)"
                              for n, v in r["img_s_per_member"].items())
            comp = ", ".join(f"{n} {v:.1f} s" for n, v in r["compile_s"].items())
            print(f"threads={threads} K={k}: per member {cells}; all members (loop) "
                  f"{r['img_s_total']['loop']:.0f} img/s; compile {comp}", flush=True)
    if a.check_steps:
        set_threads(a.threads[0])
        results["numerics"] = numerics(train, a.members[0], a.check_steps)
        print("numerics (eager vs compiled loop):", results["numerics"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
