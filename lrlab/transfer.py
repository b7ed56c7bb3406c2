"""Transferability of what each stage of a step-decay run learns (You et al. 2019).

Train one network through stages of decreasing learning rate and snapshot it at
initialisation (stage 0) and at the end of every stage i = 1..n. For every snapshot measure
the source test accuracy acc_i, transfer the snapshot to a target task and measure the target
test accuracy tacc_i there, and report

    transferability_i = (tacc_i − tacc_{i−1}) / (acc_i − acc_{i−1}),   i = 1..n,

i.e. how much of the source accuracy a stage gains carries over to the target. Two transfer
methods: "fix" (a linear probe on the frozen penultimate features) and "finetune" (a new head,
then train the whole network).

    snaps = train_with_snapshots(net, x, y, lrs=[0.1, 0.01], epochs_per_stage=[30, 10],
                                 batch_size=128)
    table = transfer_stages(snaps, make_net, (x_test, y_test), {"b": (xb, yb, xb_test, yb_test)})
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch import Tensor, nn

from .losses import per_example
from .seeding import seeded
from .train.precision import autocast

TRAIN_LOSSES = ("cross_entropy", "squared")
METHODS = ("fix", "finetune")
_TINY = 1e-12  # |acc_i − acc_{i−1}| below this makes a stage's transferability undefined (NaN)


# --------------------------------------------------------------------------- training helpers
@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no autograd for a block; the previous training mode comes back after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model: nn.Module) -> torch.device:
    """Where the model's first parameter or buffer lives (CPU for a stateless model)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _check_xy(x: Tensor, y: Tensor, what: str) -> None:
    """Inputs and labels must pair up one to one (and be non-empty)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{what}: {x.shape[0]} inputs but {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: no examples")


def _sgd_epochs(model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, y: Tensor, epochs: int,
                batch_size: int, gen: torch.Generator, loss: str, tick: Callable[[], None] | None = None
                ) -> None:
    """Minibatch SGD for ``epochs`` epochs, reshuffling with ``gen`` every epoch (last batch may be short)."""
    model.train()
    dev = _device(model)
    n = x.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx].to(dev), y[idx].to(dev)
            opt.zero_grad(set_to_none=True)
            with autocast(dev):
                out = model(xb)
            per_example(loss, out.float(), yb).mean().backward()
            opt.step()
        if tick is not None:
            tick()


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A deep copy of the model's state dict (parameters and buffers), detached from autograd."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 4096) -> float:
    """Fraction of ``x`` whose argmax output equals ``y``, in eval mode (training mode restored)."""
    _check_xy(x, y, "accuracy")
    dev = _device(model)
    right = 0
    with _eval_mode(model):
        for start in range(0, x.shape[0], batch):
            out = model(x[start:start + batch].to(dev))
            right += int((out.argmax(-1).cpu() == y[start:start + batch].cpu().long()).sum())
    return right / x.shape[0]


# --------------------------------------------------------------------------- 1. staged training
def train_with_snapshots(model: nn.Module, x: Tensor, y: Tensor, *, lrs: list[float],
                         epochs_per_stage: list[int], batch_size: int, momentum: float = 0.9,
                         weight_decay: float = 0.0, seed: int = 0, loss: str = "cross_entropy",
                         progress: bool = False) -> list[dict[str, Tensor]]:
    """Train ``model`` in place by SGD through step-decay stages; return len(lrs)+1 state-dict snapshots.

    Stage i runs ``epochs_per_stage[i]`` epochs at ``lrs[i]``. One optimizer serves all stages
    (only its lr changes), so the momentum buffer carries over a decay as in an ordinary
    step-decay run. Minibatches come from a generator seeded by ``seed`` and global randomness
    (dropout) is seeded by it too, so a fixed seed and initialisation give identical snapshots.
    ``loss``: "cross_entropy" on class labels, or "squared" (one-hot targets for class labels,
    real targets when ``y`` has the output's shape). Snapshot 0 is the initialisation.
    """
    lrs, epochs_per_stage = list(lrs), list(epochs_per_stage)
    if len(lrs) != len(epochs_per_stage):
        raise ValueError(f"lrs has {len(lrs)} stages but epochs_per_stage has {len(epochs_per_stage)}")
    if not lrs:
        raise ValueError("need at least one stage (lrs is empty)")
    for i, lr in enumerate(lrs):
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lrs[{i}] must be a positive finite learning rate, got {lr}")
    for i, ep in enumerate(epochs_per_stage):
        if isinstance(ep, bool) or int(ep) != ep or ep <= 0:
            raise ValueError(f"epochs_per_stage[{i}] must be a positive integer, got {ep}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if momentum < 0:
        raise ValueError(f"momentum must be >= 0, got {momentum}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if loss not in TRAIN_LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {list(TRAIN_LOSSES)}")
    _check_xy(x, y, "train_with_snapshots")

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=momentum, weight_decay=weight_decay)
    was_training = model.training
    snaps = [_snapshot(model)]
    bar = task = None
    if progress:
        bar = Progress(transient=True)
        task = bar.add_task(f"training {len(lrs)} stages", total=sum(epochs_per_stage))
        bar.start()
    try:
        with seeded(seed):
            for i, (lr, ep) in enumerate(zip(lrs, epochs_per_stage)):
                for group in opt.param_groups:
                    group["lr"] = lr
                if bar is not None:
                    bar.update(task, description=f"stage {i + 1}/{len(lrs)} (lr {lr:g})")
                tick = (lambda: bar.advance(task)) if bar is not None else None
                _sgd_epochs(model, opt, x, y, int(ep), int(batch_size), gen, loss, tick)
                snaps.append(_snapshot(model))
    finally:
        if bar is not None:
            bar.stop()
        model.train(was_training)
    return snaps


# --------------------------------------------------------------------------- 2. features
def _head_path(model: nn.Module, head: str) -> str:
    """Dotted name of the final nn.Linear: the last child of a Sequential, a child ``fc``, or ``head``."""
    if head == "auto":
        if isinstance(model, nn.Sequential) and len(model) and isinstance(model[-1], nn.Linear):
            return [name for name, _ in model.named_children()][-1]
        if isinstance(getattr(model, "fc", None), nn.Linear):
            return "fc"
        raise ValueError(f"no final nn.Linear found in {type(model).__name__}: 'auto' needs an "
                         "nn.Sequential ending in nn.Linear or a child 'fc'; pass head='<name>'")
    try:
        layer = model.get_submodule(head)
    except AttributeError as err:
        raise ValueError(f"{type(model).__name__} has no submodule {head!r} to use as its head") from err
    if not isinstance(layer, nn.Linear):
        raise ValueError(f"head {head!r} of {type(model).__name__} is a {type(layer).__name__}, "
                         "not an nn.Linear")
    return head


def features(model: nn.Module, x: Tensor, head: str = "auto", batch: int = 4096) -> Tensor:
    """Penultimate representation of ``x``: the model's output with its final nn.Linear removed.

    An nn.Sequential ending in nn.Linear runs everything before it; otherwise (``head`` naming
    the linear layer, e.g. "fc", or "auto" finding a child ``fc``) a forward hook captures the
    head's input. Eval mode, no grad; the previous training mode is restored. Returns [N, D].
    """
    path = _head_path(model, head)
    dev = _device(model)
    chunks: list[Tensor] = []
    with _eval_mode(model):
        if isinstance(model, nn.Sequential) and model.get_submodule(path) is model[-1]:
            body = model[:-1]
            for start in range(0, x.shape[0], batch):
                chunks.append(body(x[start:start + batch].to(dev)).flatten(1).cpu())
        else:
            seen: list[Tensor] = []
            hook = model.get_submodule(path).register_forward_hook(
                lambda _m, inputs, _out: seen.append(inputs[0].detach()))
            try:
                for start in range(0, x.shape[0], batch):
                    seen.clear()
                    model(x[start:start + batch].to(dev))
                    if len(seen) != 1:
                        raise ValueError(f"head {path!r} ran {len(seen)} times in one forward pass; "
                                         "expected exactly once")
                    chunks.append(seen[0].flatten(1).cpu())
            finally:
                hook.remove()
    return torch.cat(chunks) if chunks else x.new_zeros((0, model.get_submodule(path).in_features))


# --------------------------------------------------------------------------- 3. "fix": linear probe
def linear_probe(train_feats: Tensor, train_y: Tensor, test_feats: Tensor, test_y: Tensor,
                 num_classes: int, *, epochs: int = 100, lr: float = 0.1, weight_decay: float = 1e-4,
                 seed: int = 0) -> float:
    """"fix" transfer: fit a softmax-regression head on frozen features, return its test accuracy.

    Features are standardised with the training mean and std (+1e-6, so dead units map to 0).
    The objective, mean cross-entropy + weight_decay/2·‖W‖² (bias unpenalised), is convex and
    strictly convex in W, so we start from zero and minimise it by full-batch L-BFGS with a
    strong-Wolfe line search (``epochs`` outer steps of up to 20 iterations each, ``lr`` = its
    initial step), stopping early once the loss no longer moves. Being a deterministic convex
    fit, the result does not depend on ``seed`` (kept for a uniform API).
    """
    _check_xy(train_feats, train_y, "linear_probe train")
    _check_xy(test_feats, test_y, "linear_probe test")
    if train_feats.dim() != 2 or test_feats.dim() != 2 or train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"need 2-d features of equal width, got train {tuple(train_feats.shape)} "
                         f"and test {tuple(test_feats.shape)}")
    labels_max = int(max(train_y.max(), test_y.max()))
    if num_classes <= labels_max or int(min(train_y.min(), test_y.min())) < 0:
        raise ValueError(f"labels must lie in [0, num_classes={num_classes}), max label is {labels_max}")
    if epochs <= 0 or lr <= 0 or weight_decay < 0:
        raise ValueError(f"need epochs > 0, lr > 0, weight_decay >= 0; got {epochs}, {lr}, {weight_decay}")
    del seed  # zero start + deterministic L-BFGS: nothing random to seed

    ftr = train_feats.detach().cpu().float()
    mean, std = ftr.mean(0), ftr.std(0, unbiased=False) + 1e-6
    ftr = (ftr - mean) / std
    fte = (test_feats.detach().cpu().float() - mean) / std
    ytr = train_y.cpu().long()
    w = torch.zeros(ftr.shape[1], num_classes, requires_grad=True)
    b = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=lr, max_iter=20, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> Tensor:
        opt.zero_grad()
        obj = F.cross_entropy(ftr @ w + b, ytr) + 0.5 * weight_decay * (w * w).sum()
        obj.backward()
        return obj.detach()

    with torch.enable_grad():
        prev = math.inf
        for _ in range(epochs):
            cur = float(opt.step(closure))
            if abs(prev - cur) <= 1e-10 * max(1.0, abs(cur)):
                break
            prev = cur
    with torch.no_grad():
        pred = (fte @ w + b).argmax(-1)
    return float((pred == test_y.cpu().long()).float().mean())


# --------------------------------------------------------------------------- 4. "finetune"
def _new_head(old: nn.Linear, num_classes: int, seed: int) -> nn.Linear:
    """A fresh nn.Linear(old.in_features, num_classes), PyTorch's default U(±1/√fan_in) init from ``seed``.

    Drawn from its own generator, so the global RNG stays untouched and the head is reproducible.
    """
    new = torch.nn.utils.skip_init(nn.Linear, old.in_features, num_classes, bias=True,
                                   device=old.weight.device, dtype=old.weight.dtype)
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(old.in_features)
    with torch.no_grad():
        new.weight.copy_(torch.empty(new.weight.shape).uniform_(-bound, bound, generator=gen))
        new.bias.copy_(torch.empty(new.bias.shape).uniform_(-bound, bound, generator=gen))
    return new


def replace_head(model: nn.Module, num_classes: int, *, seed: int = 0, head: str = "auto") -> nn.Module:
    """Deep copy of ``model`` whose final nn.Linear is a fresh one with ``num_classes`` outputs."""
    path = _head_path(model, head)
    out = copy.deepcopy(model)
    parent_name, _, name = path.rpartition(".")
    parent = out.get_submodule(parent_name) if parent_name else out
    setattr(parent, name, _new_head(out.get_submodule(path), num_classes, seed))
    return out


def finetune(model: nn.Module, x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, num_classes: int,
             *, epochs: int, lr: float, batch_size: int, momentum: float = 0.9, seed: int = 0,
             head: str = "auto") -> float:
    """"finetune" transfer: new head on a copy of ``model``, train all of it by SGD, return test accuracy.

    The copy's final nn.Linear becomes nn.Linear(in_features, num_classes) initialised from
    ``seed``; minibatches and dropout are seeded by it too. ``model`` itself is left untouched.
    """
    _check_xy(x, y, "finetune train")
    _check_xy(x_test, y_test, "finetune test")
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    if not (lr > 0):
        raise ValueError(f"lr must be positive, got {lr}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    if momentum < 0:
        raise ValueError(f"momentum must be >= 0, got {momentum}")
    net = replace_head(model, num_classes, seed=seed, head=head)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    with seeded(seed):
        _sgd_epochs(net, opt, x, y, int(epochs), int(batch_size), gen, "cross_entropy")
    return accuracy(net, x_test, y_test)


# --------------------------------------------------------------------------- 5. the ratio
def transferability(acc: Sequence[float], tacc: Sequence[float]) -> np.ndarray:
    """Per stage i = 1..n: (tacc_i − tacc_{i−1}) / (acc_i − acc_{i−1}); inputs start at stage 0.

    A stage that leaves the source accuracy unchanged (|Δacc| < 1e-12) gains nothing whose
    transfer could be measured, so its ratio is undefined and reported as NaN, not ±inf.
    """
    a, t = np.asarray(acc, dtype=float), np.asarray(tacc, dtype=float)
    if a.ndim != 1 or t.ndim != 1:
        raise ValueError(f"acc and tacc must be 1-d, got shapes {a.shape} and {t.shape}")
    if a.shape != t.shape:
        raise ValueError(f"acc has {a.size} stages but tacc has {t.size}")
    if a.size < 2:
        raise ValueError(f"need stage 0 and at least one more stage, got {a.size} entries")
    da, dt = np.diff(a), np.diff(t)
    out = np.full(da.shape, np.nan)
    ok = np.abs(da) >= _TINY
    out[ok] = dt[ok] / da[ok]
    return out


# --------------------------------------------------------------------------- 6. the experiment
def transfer_stages(snapshots: list[dict[str, Tensor]], make_model: Callable[[], nn.Module],
                    source_test: tuple[Tensor, Tensor],
                    targets: dict[str, tuple[Tensor, Tensor, Tensor, Tensor]], *,
                    methods: Sequence[str] = METHODS, finetune_epochs: int = 5,
                    finetune_lr: float = 0.01, finetune_batch: int = 128, probe_epochs: int = 100,
                    seed: int = 0, head: str = "auto") -> pd.DataFrame:
    """Source accuracy, target accuracy and transferability of every snapshot, per target and method.

    Each snapshot is loaded into a fresh ``make_model()``; every (stage, target, method) uses the
    same ``seed``, so stages differ only in their weights. A target's classes are
    int(max train label)+1. Returns one row per (stage, target, method) with columns stage,
    target, method, acc, tacc, transferability (NaN at stage 0, and where Δacc = 0).
    """
    if not snapshots:
        raise ValueError("no snapshots to transfer")
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"unknown or missing methods {bad or list(methods)}; "
                         f"expected some of {list(METHODS)}")
    if not targets:
        raise ValueError("no targets to transfer to")
    xs, ys = source_test
    _check_xy(xs, ys, "source_test")
    example = tuple(xs.shape[1:])
    for name, (xtr, ytr, xte, yte) in targets.items():
        _check_xy(xtr, ytr, f"target {name!r} train")
        _check_xy(xte, yte, f"target {name!r} test")
        for part, arr in (("train", xtr), ("test", xte)):
            if tuple(arr.shape[1:]) != example:
                raise ValueError(f"target {name!r} {part} examples have shape {tuple(arr.shape[1:])} but "
                                 f"source examples have shape {example}; they must match")

    acc: list[float] = []
    tacc: dict[tuple[str, str], list[float]] = {(n, m): [] for n in targets for m in methods}
    for snap in snapshots:
        model = make_model()
        model.load_state_dict(snap)
        acc.append(accuracy(model, xs, ys))
        for name, (xtr, ytr, xte, yte) in targets.items():
            k = int(ytr.max()) + 1
            if "fix" in methods:
                ftr, fte = features(model, xtr, head), features(model, xte, head)
                tacc[name, "fix"].append(linear_probe(ftr, ytr, fte, yte, k, epochs=probe_epochs, seed=seed))
            if "finetune" in methods:
                tacc[name, "finetune"].append(finetune(
                    model, xtr, ytr, xte, yte, k, epochs=finetune_epochs, lr=finetune_lr,
                    batch_size=finetune_batch, seed=seed, head=head))

    rows = []
    for (name, method), t in tacc.items():
        tr = [math.nan] + (list(transferability(acc, t)) if len(acc) > 1 else [])
        rows += [{"stage": i, "target": name, "method": method, "acc": acc[i], "tacc": t[i],
                  "transferability": tr[i]} for i in range(len(acc))]
    return pd.DataFrame(rows, columns=["stage", "target", "method", "acc", "tacc", "transferability"])
