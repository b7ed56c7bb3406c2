"""Validate ``lrlab.lr_advice`` on small models of different kinds, against a plain sweep and
torch-lr-finder's suggestion (issue 19, part 1).

Development models (fixed before the first run of the first rule):

* **mlp**: two-moons, 2→64→2 ReLU MLP, cross-entropy, 512 train / 1,024 validation points;
* **cnn**: CIFAR-10 airplane vs automobile at 8×8 (2×2 average pool), a two-conv CNN,
  cross-entropy, 1,000 train / 1,000 validation images (needs ../shared/data or $LRLAB_DATA);
* **regression**: y = sin(3·x₁) + x₂² + 0.1·noise on 8-d Gaussian inputs, 8→64→64→1 ReLU net,
  squared loss, 512 train / 1,024 validation points.

The first rule (converged = L_T ≤ 0.1·L0, backoff 2) failed on two of them
(benchmarks/results_lr_advice_v1.json); the rule was revised after seeing that (converged = half
the sweep's best log-loss reduction, backoff √2) and validated on held-out models fixed
before the revised rule ran on anything:

* **blobs**: 4 Gaussian classes in 10-d (means ~ N(0, I), unit noise), 10→64→64→4 tanh MLP,
  cross-entropy, 512 train / 1,024 validation points;
* **cnn_catdog**: CIFAR-10 cat vs dog at 8×8, a strided conv → conv → global-average-pool CNN,
  cross-entropy, 1,000 train / 1,000 validation images;
* **regression2**: y = tanh(w·x) + 0.5·sin(x₂·x₃) + 0.05·noise on 5-d Gaussian inputs (w a fixed
  unit vector), 5→128→1 ReLU net, squared loss, 512 train / 1,024 validation points.

The second rule gave no advice on the dev CNN, where one of the five initialisations learns
little at every rate and so vetoed all of them ("converged on every seed"), and missed the margin
on regression2 by 0.02%. The third rule judges each run against its own seed's best progress
(benchmarks/results_lr_advice_v2.json has the second rule's rows). Held-out models for it, fixed
before it ran on anything:

* **spirals**: 3-arm spirals in 2-d (3 classes, 0.2 noise), 2→128→128→3 ReLU MLP,
  cross-entropy, 512 train / 1,024 validation points;
* **cnn_shiptruck**: CIFAR-10 ship vs truck at 8×8, conv → max-pool → conv → linear CNN,
  cross-entropy, 1,000 train / 1,000 validation images;
* **regression3**: y = |x₁| − x₂·x₃ + 0.1·noise on 6-d Gaussian inputs, 6→32→32→32→1 ReLU net,
  squared loss, 512 train / 1,024 validation points.

For each: ``lr_advice`` (minibatch SGD at batch 32, 5 seeds, ``--steps`` steps); then the
user's own training — a plain ``torch.optim.SGD`` loop at batch 32 from 5 *other* seeds (100…104)
— at the recommended rate and at every rate of a plain sweep (the advice's grid), and
torch-lr-finder's suggestion (its range test from 1e-5 to 10 over 100 iterations, steepest
descent of the smoothed loss) trained the same way. Reported per model: whether the recommended
rate diverged on any of the 5 seeds; its mean validation metric against the best rate of the
plain sweep (accuracy, or for regression validation loss), with the margin stated as
``--margin`` (accuracy points, or relative loss); and the same for torch-lr-finder.

    .venv/bin/python benchmarks/bench_lr_advice.py [--steps 500]
        [--models mlp,cnn,regression,blobs,cnn_catdog,regression2,spirals,cnn_shiptruck,regression3]
        [--json benchmarks/results_lr_advice.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch_lr_finder import LRFinder

import lrlab
from lrlab.data import two_moons

SEEDS_USER = [100, 101, 102, 103, 104]
BATCH = 32



def regression(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = torch.sin(3 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * torch.randn(n, generator=g)
    return x, y


def cifar_pair(n_train: int, n_val: int, classes: tuple[int, int] = (0, 1)):
    arrays = lrlab.load_cifar10()
    out = []
    for xs, ys, n in ((arrays.train_x, arrays.train_y, n_train), (arrays.test_x, arrays.test_y, n_val)):
        # two classes (airplane 0 and automobile 1 by default), n/2 of each: the stored order may be
        # sorted by class; labels 0 and 1 in the order given
        keep = np.concatenate([np.flatnonzero(ys == c)[:n // 2] for c in classes])
        x = nn.functional.avg_pool2d(torch.from_numpy(np.asarray(xs[keep])).float() / 255, 4)  # → 3×8×8
        labels = torch.from_numpy(np.asarray(ys[keep]) == classes[1]).long()
        out.append(((x - x.mean()) / x.std(), labels))
    return out


def blobs(n: int, seed: int):
    means = torch.randn(4, 10, generator=torch.Generator().manual_seed(99))  # the same in every split
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    return means[y] + torch.randn(n, 10, generator=g), y


def regression2(n: int, seed: int):
    w = torch.randn(5, generator=torch.Generator().manual_seed(7))
    w = w / w.norm()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = torch.tanh(x @ w) + 0.5 * torch.sin(x[:, 1] * x[:, 2]) + 0.05 * torch.randn(n, generator=g)
    return x, y


def spirals(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    r = torch.rand(n, generator=g)
    t = 4 * r + y * (2 * torch.pi / 3)
    x = torch.stack([r * torch.cos(t), r * torch.sin(t)], 1)
    return x + 0.2 * r.unsqueeze(1) * torch.randn(n, 2, generator=g), y


def regression3(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, x[:, 0].abs() - x[:, 1] * x[:, 2] + 0.1 * torch.randn(n, generator=g)


def mlp():
    return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))


def cnn():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 2))


def blobs_net():
    return nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 4))


def cnn2():
    return nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))


def reg_net2():
    return nn.Sequential(nn.Linear(5, 128), nn.ReLU(), nn.Linear(128, 1))


def spirals_net():
    return nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 3))


def cnn3():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(16 * 4 * 4, 2))


def reg_net3():
    return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 1))


def reg_net():
    return nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def user_sgd(factory, train, val, loss: str, lr: float, seed: int, steps: int) -> tuple[bool, float]:
    """The user's own loop: torch.optim.SGD at batch 32; (diverged, validation metric)."""
    torch.manual_seed(seed)
    net = factory()
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    x, y = train
    g = torch.Generator().manual_seed(seed)
    l0 = None
    for _ in range(steps):
        idx = torch.randint(0, len(y), (BATCH,), generator=g)
        out = net(x[idx])
        err = (nn.functional.cross_entropy(out, y[idx]) if loss == "cross_entropy"
               else 0.5 * ((out.squeeze(-1) - y[idx]) ** 2).mean())
        if not torch.isfinite(err):
            return True, math.nan
        l0 = float(err.detach()) if l0 is None else l0
        opt.zero_grad()
        err.backward()
        opt.step()
    with torch.no_grad():
        out = net(val[0])
        if loss == "cross_entropy":
            metric = float((out.argmax(1) == val[1]).float().mean())
            final = float(nn.functional.cross_entropy(net(x), y))
        else:
            metric = float(0.5 * ((out.squeeze(-1) - val[1]) ** 2).mean())
            final = float(0.5 * ((net(x).squeeze(-1) - y) ** 2).mean())
    return (not math.isfinite(final)) or final >= l0 * 10, metric


def lr_finder_suggestion(factory, train, loss: str) -> float | None:
    torch.manual_seed(0)
    net = factory()
    opt = torch.optim.SGD(net.parameters(), lr=1e-5)
    crit = nn.CrossEntropyLoss() if loss == "cross_entropy" else _HalfMSE()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=BATCH, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    finder = LRFinder(net, opt, crit, device="cpu")
    finder.range_test(loader, end_lr=10, num_iter=100)
    ax = Figure().subplots()
    _, suggested = finder.plot(ax=ax, suggest_lr=True)
    finder.reset()
    return None if suggested is None else float(suggested)


class _HalfMSE(nn.Module):
    def forward(self, out, y):
        return 0.5 * ((out.squeeze(-1) - y) ** 2).mean()


def _better(loss: str, a: float, b: float) -> bool:
    """Higher accuracy, or lower validation loss for regression."""
    return a > b if loss == "cross_entropy" else a < b


def evaluate(name: str, factory, train, val, loss: str, steps: int, margin: float) -> dict:
    t0 = time.perf_counter()
    adv = lrlab.lr_advice(factory, train, loss, batch_size=BATCH, seeds=5, steps=steps, val=val, progress=True)
    advice_s = time.perf_counter() - t0
    sweep = {}
    for eta in sorted(adv.runs.eta.unique()):
        outs = [user_sgd(factory, train, val, loss, float(eta), s, steps) for s in SEEDS_USER]
        sweep[float(eta)] = {"diverged": sum(d for d, _ in outs),
                             "metric": float(np.nanmean([m for d, m in outs if not d])) if any(not d for d, _ in outs)
                             else math.nan}
    ok = {e: r for e, r in sweep.items() if r["diverged"] == 0}
    best_eta = None
    for e, r in ok.items():
        if best_eta is None or _better(loss, r["metric"], ok[best_eta]["metric"]):
            best_eta = e

    def judged(lr: float | None) -> dict:
        if lr is None:
            return {"lr": None}
        outs = [user_sgd(factory, train, val, loss, lr, s, steps) for s in SEEDS_USER]
        div = sum(d for d, _ in outs)
        metric = float(np.nanmean([m for d, m in outs if not d])) if div < len(outs) else math.nan
        best = ok[best_eta]["metric"] if best_eta is not None else math.nan
        gap = (best - metric) if loss == "cross_entropy" else (metric - best) / best
        return {"lr": lr, "diverged_seeds": div, "metric": metric, "gap_to_best": gap,
                "within_margin": bool(div == 0 and gap <= margin)}

    return {"model": name, "loss": loss, "lam0": adv.lam0, "divergence_edge": adv.divergence_edge,
            "instability_onset": adv.instability_onset, "advice_seconds": advice_s, "notes": adv.notes,
            "criterion": adv.criterion, "best_sweep_lr": best_eta,
            "best_sweep_metric": ok[best_eta]["metric"] if best_eta is not None else None,
            "recommended": judged(adv.recommended_lr), "best_val_lr": judged(adv.best_val_lr),
            "lr_finder": judged(lr_finder_suggestion(factory, train, loss)),
            "sweep": {f"{e:.6g}": r for e, r in sweep.items()}}


def _num(v: float | None) -> str:
    return "—" if v is None else f"{v:.3g}"


def _cell(r: dict) -> str:
    """A rate and how it fared: diverged seeds, gap to the best, ✓ when within the margin."""
    if r.get("lr") is None:
        return "none"
    ok = "✓" if r["within_margin"] else "✗"
    return f"{r['lr']:.3g} ({r['diverged_seeds']}/5 diverged, gap {r['gap_to_best']:.3g}) {ok}"


def markdown_table(res: dict) -> str:
    """One row per model: λ0, the advice's rates and how each fared under the user's SGD."""
    lines = ["| model | λ0 | divergence edge | instability onset | recommended (user SGD) | best validation rate "
             "| best of the plain sweep (metric) | torch-lr-finder | gap in |", "|---" * 9 + "|"]
    for r in res["results"]:
        gap = "accuracy (fraction)" if r["loss"] == "cross_entropy" else "relative validation loss"
        best = f"{_num(r['best_sweep_lr'])} ({_num(r['best_sweep_metric'])})"
        rates = " | ".join(_num(r[k]) for k in ("lam0", "divergence_edge", "instability_onset"))
        lines.append(f"| {r['model']} | {rates} "
                     f"| {_cell(r['recommended'])} | {_cell(r['best_val_lr'])} | {best} "
                     f"| {_cell(r['lr_finder'])} | {gap} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--models", default="mlp,cnn,regression,blobs,cnn_catdog,regression2,spirals,cnn_shiptruck,"
                                        "regression3")
    ap.add_argument("--margin", type=float, default=0.02,
                    help="accuracy points (classification) or relative validation loss (regression)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--table", default=None, metavar="JSON",
                    help="print the Markdown table of a results file (benchmarks/RESULTS.md) and exit")
    args = ap.parse_args()
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())))
        return
    torch.set_num_threads(1)
    setups = {"mlp": lambda: (mlp, two_moons(512, 0), two_moons(1024, 1), "cross_entropy"),
              "cnn": lambda: (cnn, *cifar_pair(1000, 1000), "cross_entropy"),
              "regression": lambda: (reg_net, regression(512, 0), regression(1024, 1), "squared"),
              "blobs": lambda: (blobs_net, blobs(512, 0), blobs(1024, 1), "cross_entropy"),
              "cnn_catdog": lambda: (cnn2, *cifar_pair(1000, 1000, (3, 5)), "cross_entropy"),
              "regression2": lambda: (reg_net2, regression2(512, 0), regression2(1024, 1), "squared"),
              "spirals": lambda: (spirals_net, spirals(512, 0), spirals(1024, 1), "cross_entropy"),
              "cnn_shiptruck": lambda: (cnn3, *cifar_pair(1000, 1000, (8, 9)), "cross_entropy"),
              "regression3": lambda: (reg_net3, regression3(512, 0), regression3(1024, 1), "squared")}
    results = []
    for name in args.models.split(","):
        factory, train, val, loss = setups[name]()
        r = evaluate(name, factory, train, val, loss, args.steps, args.margin)
        results.append(r)
        rec, fnd = r["recommended"], r["lr_finder"]
        print(f"{name}: edge {r['divergence_edge']}, recommended {rec.get('lr')} "
              f"(diverged {rec.get('diverged_seeds')}/5, gap {rec.get('gap_to_best')}), best sweep "
              f"{r['best_sweep_lr']}, lr-finder {fnd.get('lr')} (diverged {fnd.get('diverged_seeds')}/5, "
              f"gap {fnd.get('gap_to_best')})", flush=True)
    if args.json:
        write_results(Path(args.json), results, args.steps, args.margin)


def write_results(path: Path, results: list[dict], steps: int, margin: float) -> None:
    """Write the rows to ``path``; rows of other models already there (same steps and margin)
    are kept, so models can be measured in separate runs."""
    rows = {r["model"]: r for r in results}
    if path.exists():
        old = json.loads(path.read_text())
        if (old.get("steps"), old.get("margin")) == (steps, margin):
            rows = {**{r["model"]: r for r in old["results"]}, **rows}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": platform.platform(), "torch": torch.__version__, "steps": steps,
                               "margin": margin, "results": list(rows.values())}, indent=1))
    tmp.replace(path)


if __name__ == "__main__":
    main()
