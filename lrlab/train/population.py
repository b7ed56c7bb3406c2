"""The population trainer: K members (schedules × seeds) trained together.

Parameters are stacked along a leading member axis; one step computes every member's
minibatch loss with the model's batched forward, differentiates their sum (members share no
parameters, so each gets exactly its own gradient) and applies SGD with momentum, Nesterov and
weight decay with each member's own learning rate — the same arithmetic as
``torch.optim.SGD``. A member whose loss turns inf/NaN is frozen and marked diverged.

``mode="loop"`` runs the same step for one member at a time (for models too large for
batched products to pay); ``mode="auto"`` picks by a fixed cost model, so the choice — and
therefore the numbers — depend only on the config.

Read one step top to bottom in :meth:`_Trainer.update`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from ..config import TrainConfig
from ..data.dataset import Dataset
from ..probes.accuracy import StackedData, group_metrics
from . import losses
from .schedules import Schedule, lr_table

# Forward FLOPs per member per step above which loop mode beats batched products on CPU
# (measured: benchmarks/bench_population.py, see benchmarks/RESULTS.md).
LOOP_THRESHOLD_FLOPS = 16e6

CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class Member:
    """One member of a population: a named schedule, a seed, and which dataset it trains on.

    Members with the same seed share their initialisation and minibatch order (common random
    numbers), so schedule comparisons at one seed are paired.
    """

    name: str
    seed: int
    schedule: Schedule
    data_index: int = 0


def grid(schedules: Mapping[str, Schedule], seeds: Sequence[int], data_per_seed: bool = True) -> list[Member]:
    """Every schedule × every seed; with ``data_per_seed`` member data_index = seed position."""
    if not schedules:
        raise ValueError("need at least one schedule")
    if len(seeds) == 0:
        raise ValueError("need at least one seed (got 0 seeds)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    return [
        Member(name, int(s), sch, i if data_per_seed else 0)
        for name, sch in schedules.items()
        for i, s in enumerate(seeds)
    ]


@dataclass
class PopulationResult:
    """What a population run produced.

    ``records``: one row per (member, step, metric) with columns member, step, metric, value.
    ``members``: one row per member (name, seed, data_index, diverged, diverged_step, total_lr).
    """

    records: pd.DataFrame
    members: pd.DataFrame
    params: dict[str, Tensor]
    mode: str
    wall_time: float

    def curve(self, metric: str) -> pd.DataFrame:
        """A metric as a table: rows = steps, columns = members."""
        sub = self.records[self.records.metric == metric]
        if sub.empty:
            known = sorted(self.records.metric.unique())
            raise KeyError(f"no metric {metric!r}; recorded metrics are {known}")
        return sub.pivot(index="step", columns="member", values="value")

    def final(self, metric: str) -> pd.Series:
        """A metric at the last recorded step, per member."""
        c = self.curve(metric)
        return c.iloc[-1]


def _batch_seed(seed: int, epoch: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 0x94D049BB) % (2**63 - 1)


def choose_mode(model, input_shape: tuple[int, ...], batch: int, members: int, mode: str) -> str:
    """Resolve ``auto`` with the cost model; pass ``vectorized``/``loop`` through."""
    if mode not in ("auto", "vectorized", "loop"):
        raise ValueError(f"mode must be 'auto', 'vectorized' or 'loop', got {mode!r}")
    if mode != "auto":
        return mode
    if members == 1:
        return "vectorized"
    flops = model.flops_per_example(input_shape) * batch
    return "loop" if flops > LOOP_THRESHOLD_FLOPS else "vectorized"


class _Trainer:
    def __init__(self, model, members: Sequence[Member], train: Sequence[Dataset],
                 test: Sequence[Dataset] | None, cfg: TrainConfig, run_dir: Path | None) -> None:
        self.model, self.members, self.cfg = model, list(members), cfg
        dev = torch.device(cfg.device)
        self.device = dev
        K = len(self.members)
        D = len(train)
        if D == 1:  # one dataset: every member trains on it, whatever its data_index
            self.members = [Member(m.name, m.seed, m.schedule, 0) for m in self.members]
        for m in self.members:
            if not 0 <= m.data_index < D:
                raise ValueError(f"member {m.name}/seed {m.seed} has data_index {m.data_index}; "
                                 f"there are {D} training sets")
        losses.check_loss(cfg.loss, train[0].task)
        self.train = StackedData.stack(train, dev)
        self.test = StackedData.stack(test, dev) if test else None
        n = self.train.n
        B = cfg.batch_size or n
        if B > n:
            raise ValueError(f"batch_size {B} is larger than the training set ({n} examples)")
        self.B, self.n = B, n
        self.batches_per_epoch = n // B
        self.full_batch = B == n
        self.data_index = torch.tensor([m.data_index for m in self.members], device=dev)
        self.seeds = [m.seed for m in self.members]
        self.lrs = lr_table([m.schedule for m in self.members], cfg.steps).to(dev)
        self.mode = choose_mode(model, tuple(self.train.x.shape[2:]), B, K, cfg.mode)
        self.chunks = [slice(0, K)] if self.mode == "vectorized" else [slice(k, k + 1) for k in range(K)]
        self.run_dir = run_dir
        # state
        self.params = {k: v.to(dev) for k, v in model.init(self.seeds).items()}
        self.trainable = [k for k in self.params if k not in model.frozen]
        self.momentum = ({k: torch.zeros_like(self.params[k]) for k in self.trainable}
                         if cfg.momentum else {})
        self.active = torch.ones(K, dtype=torch.bool, device=dev)
        self.diverged_step = torch.full((K,), -1, dtype=torch.long)
        self.step = 0
        self.evals: dict[str, list[Tensor]] = {}
        self.eval_steps: list[int] = []
        self._perm_epoch = -1
        self._perm: Tensor | None = None

    # ------------------------------------------------------------------ data order
    def _indices(self, t: int) -> Tensor | None:
        """Minibatch indices [K, B] for step t: each seed its own permutation per epoch."""
        if self.full_batch:
            return None
        epoch, j = divmod(t, self.batches_per_epoch)
        if epoch != self._perm_epoch:
            perms = {}
            for s in set(self.seeds):
                g = torch.Generator().manual_seed(_batch_seed(s, epoch))
                perms[s] = torch.randperm(self.n, generator=g)
            self._perm = torch.stack([perms[s] for s in self.seeds]).to(self.device)
            self._perm_epoch = epoch
        return self._perm[:, j * self.B:(j + 1) * self.B]

    def _batch(self, t: int, sl: slice) -> tuple[Tensor, Tensor]:
        idx = self._indices(t)
        di = self.data_index[sl]
        if idx is None:
            if self.train.x.shape[0] == 1:  # one shared dataset: a view, no per-step copy
                k = di.shape[0]
                return (self.train.x.expand(k, *self.train.x.shape[1:]),
                        self.train.y.expand(k, *self.train.y.shape[1:]))
            return self.train.x[di], self.train.y[di]
        idx = idx[sl]
        if self.train.x.shape[0] == 1:
            return self.train.x[0][idx], self.train.y[0][idx]
        return self.train.x[di.unsqueeze(1), idx], self.train.y[di.unsqueeze(1), idx]

    # ------------------------------------------------------------------ one SGD step
    def update(self, t: int) -> None:
        cfg = self.cfg
        lr_t = self.lrs[t].to(self.params[self.trainable[0]].dtype)
        for sl in self.chunks:
            xb, yb = self._batch(t, sl)
            p = {k: v[sl].detach().requires_grad_(k in self.trainable) for k, v in self.params.items()}
            out = self.model.forward(p, xb)
            loss = losses.per_example(cfg.loss, out, yb, self.train.num_classes).mean(1)  # [k]
            finite = torch.isfinite(loss)
            grads = torch.autograd.grad(torch.where(finite, loss, 0.0).sum(), [p[k] for k in self.trainable])
            ok = self.active[sl] & finite
            all_ok = bool(ok.all())
            lr_eff = lr_t[sl] if all_ok else torch.where(ok, lr_t[sl], 0.0)
            with torch.no_grad():
                for name, g in zip(self.trainable, grads):
                    # g is a fresh tensor from autograd: update it in place (no extra allocations)
                    w = self.params[name][sl]
                    shape = (-1,) + (1,) * (w.dim() - 1)
                    if not all_ok:  # a frozen member's gradient may hold inf/NaN: zero it
                        g = torch.where(ok.view(shape), g, 0.0)
                    if cfg.weight_decay:
                        g.add_(w, alpha=cfg.weight_decay)
                    if cfg.momentum:
                        buf = self.momentum[name][sl]
                        buf.mul_(cfg.momentum).add_(g)
                        g = g.add_(buf, alpha=cfg.momentum) if cfg.nesterov else buf
                    w.addcmul_(lr_eff.view(shape), g, value=-1.0)
                newly = self.active[sl] & ~finite
                if bool(newly.any()):
                    ks = torch.arange(sl.start, sl.stop)[newly.cpu()]
                    self.diverged_step[ks] = t
                self.active[sl] = ok

    # ------------------------------------------------------------------ probes
    def evaluate(self, t: int) -> None:
        metrics: dict[str, Tensor] = {}
        for split, data in (("train", self.train), ("test", self.test)):
            if data is None:
                continue
            di = self.data_index if data.x.shape[0] > 1 else torch.zeros_like(self.data_index)
            metrics.update(group_metrics(self.model, self.params, data, di, self.cfg.loss, split))
        dead = (~self.active).cpu()
        for k in list(metrics):
            metrics[k] = torch.where(dead, torch.nan, metrics[k])
        metrics["lr"] = self.lrs[min(t, self.cfg.steps - 1)].cpu()
        metrics["diverged"] = dead.to(torch.float64)
        for k, v in metrics.items():
            self.evals.setdefault(k, []).append(v.to(torch.float64))
        self.eval_steps.append(t)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {
            "step": self.step, "params": self.params, "momentum": self.momentum,
            "active": self.active, "diverged_step": self.diverged_step,
            "evals": self.evals, "eval_steps": self.eval_steps, "mode": self.mode,
            "n_members": len(self.members),
        }

    def load_state(self, st: dict) -> None:
        if st["n_members"] != len(self.members):
            raise ValueError(f"checkpoint has {st['n_members']} members, this run {len(self.members)}")
        self.step = st["step"]
        self.params = {k: v.to(self.device) for k, v in st["params"].items()}
        self.momentum = {k: v.to(self.device) for k, v in st["momentum"].items()}
        self.active = st["active"].to(self.device)
        self.diverged_step = st["diverged_step"]
        self.evals, self.eval_steps, self.mode = st["evals"], st["eval_steps"], st["mode"]
        K = len(self.members)
        self.chunks = [slice(0, K)] if self.mode == "vectorized" else [slice(k, k + 1) for k in range(K)]

    def save_checkpoint(self) -> None:
        if self.run_dir is None:
            return
        path = self.run_dir / CHECKPOINT
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool | Callable[[int, int], None] = False) -> PopulationResult:
        cfg = self.cfg
        T, E = cfg.steps, cfg.eval_every
        ckpt = cfg.checkpoint_every or E
        next_ckpt = (self.step // ckpt + 1) * ckpt
        t0 = time.perf_counter()
        bar = _progress(progress, T, self.step, self.mode, len(self.members))
        try:
            t = self.step
            if not self.eval_steps or self.eval_steps[-1] != t:
                self.evaluate(t)
            while t < T:
                self.update(t)
                t += 1
                self.step = t
                if t % E == 0 or t == T:
                    self.evaluate(t)
                    if self.run_dir is not None and (t >= next_ckpt or t == T):
                        self.save_checkpoint()
                        next_ckpt = (t // ckpt + 1) * ckpt
                bar(t)
        finally:
            bar(None)
        return self.result(time.perf_counter() - t0)

    def result(self, wall: float) -> PopulationResult:
        steps = np.asarray(self.eval_steps, dtype=np.int64)
        K = len(self.members)
        frames = []
        for name, vals in self.evals.items():
            arr = torch.stack(vals).numpy()  # [n_evals, K]
            frames.append(pd.DataFrame({
                "member": np.tile(np.arange(K), len(steps)),
                "step": np.repeat(steps, K),
                "metric": name,
                "value": arr.reshape(-1),
            }))
        records = pd.concat(frames, ignore_index=True)
        records["metric"] = records["metric"].astype("string")
        lrs = self.lrs.sum(0).cpu().numpy()
        members = pd.DataFrame({
            "member": np.arange(K),
            "name": [m.name for m in self.members],
            "seed": [m.seed for m in self.members],
            "data_index": [m.data_index for m in self.members],
            "schedule": [repr(m.schedule) for m in self.members],
            "total_lr": lrs,
            "diverged": (~self.active).cpu().numpy(),
            "diverged_step": self.diverged_step.numpy(),
        })
        params = {k: v.detach().cpu() for k, v in self.params.items()}
        return PopulationResult(records, members, params, self.mode, wall)


def _progress(progress, total: int, start: int, mode: str, k: int):
    """A callable ``bar(step)`` (``bar(None)`` closes); rich bar when ``progress`` is True."""
    if callable(progress):
        return lambda t: progress(t, total) if t is not None else None
    if not progress:
        return lambda t: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(f"training {k} members ({mode})"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn(), transient=True)
    task = bar.add_task("train", total=total, completed=start)
    bar.start()
    every = max(1, total // 200)

    def update(t):
        if t is None:
            bar.stop()
        elif t % every == 0 or t == total:
            bar.update(task, completed=t)

    return update


def train_population(model, members: Sequence[Member], train: Dataset | Sequence[Dataset],
                     test: Dataset | Sequence[Dataset] | None, cfg: TrainConfig, *,
                     run_dir: str | os.PathLike | None = None, resume: bool = False,
                     progress: bool | Callable[[int, int], None] = False) -> PopulationResult:
    """Train every member together; probe loss and accuracy by group every ``cfg.eval_every``.

    ``train``/``test`` are one dataset shared by all members or a list indexed by each
    member's ``data_index``. With ``run_dir`` the trainer checkpoints there (atomically);
    ``resume=True`` continues from that checkpoint and yields the records an uninterrupted
    run would have.
    """
    if not members:
        raise ValueError("a population needs at least one member")
    trains = [train] if isinstance(train, Dataset) else list(train)
    tests = None if test is None else ([test] if isinstance(test, Dataset) else list(test))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rd = Path(run_dir) if run_dir is not None else None
    tr = _Trainer(model, members, trains, tests, cfg, rd)
    if resume:
        if rd is None or not (rd / CHECKPOINT).is_file():
            raise FileNotFoundError(f"no checkpoint to resume from in {rd}")
        tr.load_state(torch.load(rd / CHECKPOINT, weights_only=False))
    return tr.run(progress)
