"""The population trainer: K members (schedules × seeds) trained together.

Parameters are stacked along a leading member axis; one step computes every member's
minibatch loss with the model's batched forward, differentiates their sum (members share no
parameters, so each gets exactly its own gradient) and applies SGD with momentum, Nesterov and
weight decay with each member's own learning rate — the same arithmetic as
``torch.optim.SGD``. A member whose loss turns inf/NaN is frozen and marked diverged.

``mode="loop"`` runs the same step for one member at a time (for models too large for
batched products to pay); ``mode="fused"`` runs the hand-written step of :mod:`.fused` (the
two-layer ReLU net under plain SGD) in cache-sized chunks of members; ``mode="auto"`` picks
fused where it applies and otherwise a fixed cost model, so the choice — and therefore the
numbers — depend only on the config.

Read one step top to bottom in :meth:`_Trainer.update`.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from .. import losses
from ..config import TrainConfig
from ..data.dataset import Dataset, as_dataset
from ..data.images import ImageStream
from ..data.stacked import StackedData
from ..probes.accuracy import group_metrics
from ..resources import check_memory, schedule_tables
from ..store import CHECKPOINT_FILE, MEMBERS_FILE, RECORDS_FILE, write_atomic, write_parquet
from ..threads import set_threads
from . import fused
from .precision import amp_enabled, autocast
from .schedules import Schedule, lr_table

# Forward FLOPs per member per step above which loop mode beats batched products on CPU
# (measured: benchmarks/bench_population.py, see benchmarks/RESULTS.md). Used for models that
# cannot say how many activations they hold; TwoLayerReLU switches on those instead.
LOOP_THRESHOLD_FLOPS = 16e6
# Hidden activations per member per step (batch × width) above which loop mode beats one batched
# product over all members: measured between 66k (vectorized faster) and 131k (loop faster).
LOOP_THRESHOLD_ACTIVATIONS = 1e5
MODES = ("auto", "fused", "vectorized", "loop")

CHECKPOINT = CHECKPOINT_FILE


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
    noise: Schedule | None = None  # activation-noise σ per step (None: no noise)


def grid(schedules: Mapping[str, Schedule], seeds: Sequence[int], data_per_seed: bool = True,
         noise: Mapping[str, Schedule] | None = None) -> list[Member]:
    """Every schedule × every seed; with ``data_per_seed`` member data_index = seed position.

    ``noise`` maps schedule names to an activation-noise σ schedule for those members.
    """
    if not schedules:
        raise ValueError("need at least one schedule")
    if len(seeds) == 0:
        raise ValueError("need at least one seed (got 0 seeds)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    noise = dict(noise or {})
    unknown = sorted(set(noise) - set(schedules))
    if unknown:
        raise ValueError(f"noise schedules {unknown} name no schedule (have {sorted(schedules)})")
    return [
        Member(name, int(s), sch, i if data_per_seed else 0, noise.get(name))
        for name, sch in schedules.items()
        for i, s in enumerate(seeds)
    ]


@dataclass
class PopulationResult:
    """What a population run produced.

    ``records``: one row per (member, step, metric) with columns member, step, metric, value.
    ``members``: one row per member (name, seed, data_index, diverged, diverged_step, total_lr,
    and for adaptive schedules such as AutoDecay: stopped_step (−1: never stopped) and decays).
    ``decisions``: per adaptive member, one row per epoch (epoch, loss, g = smoothed loss, action).
    """

    records: pd.DataFrame
    members: pd.DataFrame
    params: dict[str, Tensor]
    mode: str
    wall_time: float
    decisions: dict[int, pd.DataFrame] = field(default_factory=dict)

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

    @property
    def labels(self) -> dict[int, str]:
        """Each member's label, "<schedule>-seed<k>" (as the tracking export names them)."""
        return {int(r.member): member_label(r["name"], r.seed) for _, r in self.members.iterrows()}

    def named(self, metric: str | None = None) -> pd.DataFrame:
        """The records with each member's schedule name, seed and label beside its number (one
        metric's rows, or all); ``curve(metric).rename(columns=res.labels)`` names a curve."""
        rec = self.records if metric is None else self.records[self.records.metric == metric]
        who = self.members[["member", "name", "seed"]].assign(label=lambda d: d.member.map(self.labels))
        return rec.merge(who, on="member", how="left")[["member", "name", "seed", "label", "step",
                                                         "metric", "value"]]


def member_label(name: str, seed: int) -> str:
    """A member's label in tables and exports: its schedule name and seed."""
    return f"{name}-seed{int(seed)}"


def _batch_seed(seed: int, epoch: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + 0x94D049BB) % (2**63 - 1)


def choose_mode(model, input_shape: tuple[int, ...], batch: int, members: int, mode: str,
                fused_blocker: str | None = "not checked") -> str:
    """Resolve ``auto``: ``fused`` when ``fused_blocker`` is None (nothing stops the fused step),
    else the cost model; check an explicit mode is possible and pass it through.

    The cost model: loop mode once a member's step holds more than LOOP_THRESHOLD_ACTIVATIONS
    hidden activations (models with ``activation_elements``) or LOOP_THRESHOLD_FLOPS forward
    FLOPs (any other model); one batched step over all members below.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
    if mode == "fused" and fused_blocker is not None:
        raise ValueError(f"mode 'fused' cannot train this run: {fused_blocker}; use mode 'auto'")
    if mode != "auto":
        return mode
    if fused_blocker is None:
        return "fused"
    if members == 1:
        return "vectorized"
    acts = getattr(model, "activation_elements", None)
    if acts is not None:
        return "loop" if acts(input_shape) * batch > LOOP_THRESHOLD_ACTIVATIONS else "vectorized"
    flops = model.flops_per_example(input_shape) * batch
    return "loop" if flops > LOOP_THRESHOLD_FLOPS else "vectorized"


class _Trainer:
    def __init__(self, model, members: Sequence[Member], train, test, cfg: TrainConfig,
                 run_dir: Path | None, probes: Mapping[str, Callable] | None = None,
                 probe_every: int | None = None, criterion: Callable | None = None) -> None:
        self.model, self.members, self.cfg = model, list(members), cfg
        self.probes = dict(probes or {})
        self.probe_every = probe_every
        dev = torch.device(cfg.device)
        self.device = dev
        K = len(self.members)
        self.stream = train.to(dev) if isinstance(train, ImageStream) else None
        if self.stream is None:
            train = _as_list(train)
        D = 1 if self.stream is not None else len(train)
        if D == 1:  # one dataset: every member trains on it, whatever its data_index
            self.members = [replace(m, data_index=0) for m in self.members]
        for m in self.members:
            if not 0 <= m.data_index < D:
                raise ValueError(f"member {m.name}/seed {m.seed} has data_index {m.data_index}; "
                                 f"there are {D} training sets")
        first = self.stream if self.stream is not None else train[0]
        self.loss = cfg.loss if criterion is None else losses.criterion(criterion)
        losses.check_loss(self.loss, first.task)
        self.num_classes = first.num_classes
        self.group_names = first.group_names
        self.train = None if self.stream is not None else StackedData.stack(train, dev)
        self.evalsets = {name: StackedData.stack(ds, dev) for name, ds in _eval_sets(test).items()}
        n = len(first)
        B = cfg.batch_size or n
        if B > n:
            raise ValueError(f"batch_size {B} is larger than the training set ({n} examples)")
        self.B, self.n = B, n
        self.batches_per_epoch = n // B
        self.full_batch = B == n and self.stream is None
        self.data_index = torch.tensor([m.data_index for m in self.members], device=dev)
        self.seeds = [m.seed for m in self.members]
        check_memory(schedule_tables(cfg.steps, len(self.members)),
                     f"the learning-rate table of {len(self.members)} members over {cfg.steps:,} steps")
        self.lrs = lr_table([m.schedule for m in self.members], cfg.steps).to(dev)
        self.run_dir = run_dir
        self._started = time.perf_counter()  # the wall time stored with a checkpoint counts from here
        self.on_checkpoint: Callable[[PopulationResult], None] | None = None
        # state: parameters and buffers (BatchNorm statistics, noise σ) in one stacked dict
        self.params = {k: v.to(dev) for k, v in model.init(self.seeds).items()}
        buffers = getattr(model, "buffer_names", frozenset())
        self.trainable = [k for k in self.params if k not in model.frozen and k not in buffers]
        self.noise_names = tuple(getattr(model, "noise_buffers", ()))
        self.sigmas = self._noise_table()
        self.stochastic = bool(getattr(model, "stochastic", False))
        self.fused_blocker = fused.eligible(model, cfg, self.stochastic, self.stream is not None)
        if self.fused_blocker is None and criterion is not None:
            self.fused_blocker = "a callable criterion (the fused step has its losses written out)"
        if self.fused_blocker is None and amp_enabled():
            self.fused_blocker = "mixed precision (--amp) trains through autograd"
        if self.fused_blocker is None and cfg.micro_batch:
            self.fused_blocker = f"micro_batch {cfg.micro_batch} (the fused step takes the whole batch)"
        if cfg.micro_batch and self.stochastic:
            raise ValueError(f"micro_batch {cfg.micro_batch} needs a deterministic model: this one draws "
                             "random numbers (dropout, activation noise), which micro-batches would repeat")
        self._set_mode(choose_mode(model, tuple(first.input_shape), B, K, cfg.mode, self.fused_blocker))
        # optimizer state: SGD's momentum buffers, or Adam's first (in `momentum`) and second moments
        adam = cfg.optimizer in ("adam", "adamw")
        self.momentum = ({k: torch.zeros_like(self.params[k]) for k in self.trainable}
                         if cfg.momentum or adam else {})
        self.second = {k: torch.zeros_like(self.params[k]) for k in self.trainable} if adam else {}
        self.active = torch.ones(K, dtype=torch.bool, device=dev)
        self.diverged_step = torch.full((K,), -1, dtype=torch.long)
        # adaptive schedules (AutoDecay): each member its own copy, fed the mean training loss
        # of every epoch; a decision rewrites the member's future column of the LR table
        self.adaptive = {k: m.schedule.fresh() for k, m in enumerate(self.members)
                         if getattr(m.schedule, "adaptive", False)}
        self.stopped_step = torch.full((K,), -1, dtype=torch.long)
        self._epoch_loss = torch.zeros(K, dtype=torch.float64, device=dev)
        self.step = 0
        # probe records: one preallocated [evaluations, K] table per metric. Appending many small
        # tensors between the large temporaries of training steps fragments the C heap (RSS grew
        # by megabytes per evaluation); a few long-lived tables do not.
        self.evals: dict[str, Tensor] = {}
        self.eval_steps: list[int] = []
        self._perm_epoch = -1
        self._perm: Tensor | None = None
        G = len(self.group_names)
        # running minibatch loss / correct / count by group since the last probe (streams only)
        self._running = torch.zeros(3, K, G, dtype=torch.float64, device=dev)

    def _set_mode(self, mode: str) -> None:
        """Adopt a resolved mode: its member chunks and, for ``fused``, the step's buffers."""
        K = len(self.members)
        self.mode, self.fused, self._full_x = mode, None, None
        if mode == "fused":
            if self.fused_blocker is not None:
                raise ValueError(f"this run cannot use mode 'fused': {self.fused_blocker}")
            size = fused.chunk_size(K, self.B, self.model.width)
            self.chunks = [slice(lo, min(K, lo + size)) for lo in range(0, K, size)]
            w = self.params["W"]
            self.fused = fused.TwoLayerSGD(self.model, self.cfg.loss, size, self.B, self.cfg.weight_decay,
                                           w.dtype, self.device)
            self._trainable_set = frozenset(self.trainable)
            self._x_flat = self.train.x.flatten(2).reshape(-1, self.model.d_in)
            self._y_flat = self.train.y.reshape(-1)
            if self.full_batch:  # every step trains on the whole set: gather each chunk's inputs once
                self._full_x = [self._gather_rows(sl, None) for sl in self.chunks]
        elif mode == "vectorized":
            self.chunks = [slice(0, K)]
        else:
            self.chunks = [slice(k, k + 1) for k in range(K)]

    def _noise_table(self) -> Tensor | None:
        """σ for every step and member [T, K], or None when no member has noise."""
        if not any(m.noise is not None for m in self.members):
            return None
        if not self.noise_names:
            raise ValueError("members have activation-noise schedules but the model has no "
                             "ActivationNoise layers (build it with activation_noise=True)")
        zero = lambda t: 0.0  # noqa: E731
        return lr_table([m.noise or zero for m in self.members], self.cfg.steps).to(self.device)

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

    def _batch(self, t: int, sl: slice) -> tuple[Tensor, Tensor, Tensor | None]:
        """Inputs, labels and (for streams) group tags of the members in ``sl`` at step t."""
        idx = self._indices(t)
        if self.stream is not None:
            return self.stream.batch(idx[sl], self.seeds[sl], t)
        di = self.data_index[sl]
        if idx is None:
            if self.train.x.shape[0] == 1:  # one shared dataset: a view, no per-step copy
                k = di.shape[0]
                return (self.train.x.expand(k, *self.train.x.shape[1:]),
                        self.train.y.expand(k, *self.train.y.shape[1:]), None)
            return self.train.x[di], self.train.y[di], None
        idx = idx[sl]
        if self.train.x.shape[0] == 1:
            return self.train.x[0][idx], self.train.y[0][idx], None
        return self.train.x[di.unsqueeze(1), idx], self.train.y[di.unsqueeze(1), idx], None

    def _forward(self, p: dict[str, Tensor], xb: Tensor, t: int, sl: slice) -> Tensor:
        """Training-mode forward; a stochastic model draws from a generator seeded by (seed, t)."""
        if not self.stochastic:
            return self.model.forward(p, xb, train=True)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_batch_seed(self.seeds[sl.start], t) ^ 0x5DEECE66D)
            return self.model.forward(p, xb, train=True)

    # ------------------------------------------------------------------ one SGD step
    def _fused_update(self, t: int, lr_t: Tensor) -> None:
        """The hand-written step (mode 'fused'), chunk by chunk, inputs gathered into its buffers."""
        idx = self._indices(t)
        for j, sl in enumerate(self.chunks):
            if not bool(self.active[sl].any()):
                continue  # every member of the chunk has diverged: nothing to compute
            if self._full_x is not None:
                xb, yb = self._full_x[j]
            else:
                xb, yb = self._gather_rows(sl, idx, self.fused.x)
            loss, ok = self.fused.step(self.params, sl, xb, yb, lr_t[sl], self.active[sl], self._trainable_set)
            if self.adaptive:
                self._epoch_loss[sl] += loss.to(torch.float64)
            newly = self.active[sl] & ~ok
            if bool(newly.any()):
                ks = torch.arange(sl.start, sl.stop)[newly.cpu()]
                self.diverged_step[ks] = t
            self.active[sl] = ok

    def _gather_rows(self, sl: slice, idx: Tensor | None, buf: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Inputs [k, B, d] and labels [k, B] of members ``sl`` (minibatch ``idx``, or every example),
        gathered into ``buf`` when given (no allocation), else into fresh tensors."""
        k, n = sl.stop - sl.start, self.train.x.shape[1]
        rows = (self.data_index[sl] * n).unsqueeze(1)
        rows = (rows + (idx[sl] if idx is not None else torch.arange(n, device=self.device))).reshape(-1)
        if buf is None:
            xb = self._x_flat.index_select(0, rows).view(k, self.B, -1)
        else:
            xb = buf[:k]
            torch.index_select(self._x_flat, 0, rows, out=xb.view(k * self.B, -1))
        return xb, self._y_flat[rows].view(k, self.B)

    def update(self, t: int) -> None:
        cfg = self.cfg
        lr_t = self.lrs[t].to(self.params[self.trainable[0]].dtype)
        if self.fused is not None:
            self._fused_update(t, lr_t)
            return
        if self.sigmas is not None:
            for name in self.noise_names:
                self.params[name].copy_(self.sigmas[t].to(self.params[name].dtype))
        for sl in self.chunks:
            if sl.stop - sl.start == 1 and not bool(self.active[sl.start]):
                continue  # loop mode: a frozen (diverged) member costs nothing
            xb, yb, gb = self._batch(t, sl)
            p = {k: v[sl].detach().requires_grad_(k in self.trainable) for k, v in self.params.items()}
            out, per_ex, loss, grads = self._loss_and_grads(p, xb, yb, t, sl)
            finite = torch.isfinite(loss)
            if self.adaptive:
                self._epoch_loss[sl] += loss.detach().to(torch.float64)
            ok = self.active[sl] & finite
            all_ok = bool(ok.all())
            lr_eff = lr_t[sl] if all_ok else torch.where(ok, lr_t[sl], 0.0)
            with torch.no_grad():
                if gb is not None:
                    self._track(sl, per_ex, out, yb, gb)
                for name, g in zip(self.trainable, grads):
                    # g is a fresh tensor from autograd: update it in place (no extra allocations)
                    w = self.params[name][sl]
                    shape = (-1,) + (1,) * (w.dim() - 1)
                    if not all_ok:  # a frozen member's gradient may hold inf/NaN: zero it
                        g = torch.where(ok.view(shape), g, 0.0)
                    if self.second:
                        self._adam_step(name, sl, w, g, lr_eff.view(shape), t + 1)
                        continue
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

    def _adam_step(self, name: str, sl: slice, w: Tensor, g: Tensor, lr: Tensor, step: int) -> None:
        """One Adam/AdamW step of parameter ``name`` for the members in ``sl``, each at its own
        rate ``lr`` (shaped to broadcast), in torch.optim.Adam's arithmetic (no amsgrad)."""
        cfg = self.cfg
        b1, b2 = cfg.betas
        if cfg.weight_decay:
            if cfg.optimizer == "adamw":
                w.mul_(1 - lr * cfg.weight_decay)
            else:
                g.add_(w, alpha=cfg.weight_decay)
        m, v = self.momentum[name][sl], self.second[name][sl]
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (v.sqrt() / math.sqrt(1 - b2**step)).add_(cfg.eps)
        w.addcdiv_(m * (lr / (1 - b1**step)), denom, value=-1.0)

    def _loss_and_grads(self, p: dict[str, Tensor], xb: Tensor, yb: Tensor, t: int, sl: slice
                        ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """Outputs, per-example losses [k, B], mean losses [k] and the gradients of the mean loss,
        in one forward/backward, or with ``cfg.micro_batch`` in slices of that many examples whose
        gradients add up to the whole batch's (memory of one slice; BatchNorm statistics per slice).
        A member whose loss is not finite contributes a zero gradient."""
        cfg, B = self.cfg, xb.shape[1]
        size = cfg.micro_batch if cfg.micro_batch and cfg.micro_batch < B else B
        if size == B:  # one slice: the mean loss's gradient directly
            with autocast(self.device):
                out = self._forward(p, xb, t, sl)
            per_ex = losses.per_example(self.loss, out.float(), yb, self.num_classes)  # float32 under AMP
            loss = per_ex.mean(1)
            grads = torch.autograd.grad(torch.where(torch.isfinite(loss), loss, 0.0).sum(),
                                        [p[k] for k in self.trainable])
            return out, per_ex, loss, list(grads)
        outs, pers, grads = [], [], None
        for start in range(0, B, size):
            with autocast(self.device):
                out = self._forward(p, xb[:, start:start + size], t, sl)
            per = losses.per_example(self.loss, out.float(), yb[:, start:start + size], self.num_classes)
            part = per.sum(1) / B  # this slice's share of the mean loss, [k]
            g = torch.autograd.grad(torch.where(torch.isfinite(part), part, 0.0).sum(),
                                    [p[k] for k in self.trainable])
            grads = list(g) if grads is None else [a.add_(b) for a, b in zip(grads, g)]
            outs.append(out.detach())
            pers.append(per.detach())
        per_ex = torch.cat(pers, 1)
        return torch.cat(outs, 1), per_ex, per_ex.mean(1), grads

    def _track(self, sl: slice, per_ex: Tensor, out: Tensor, yb: Tensor, gb: Tensor) -> None:
        """Add this minibatch's loss and correct counts by group to the running sums."""
        oh = torch.nn.functional.one_hot(gb, len(self.group_names)).to(torch.float64)  # [k, B, G]
        le = per_ex.detach().to(torch.float64).unsqueeze(1)
        ce = losses.correct(out.detach(), yb).to(torch.float64).unsqueeze(1)
        self._running[0, sl] += torch.bmm(le, oh).squeeze(1)
        self._running[1, sl] += torch.bmm(ce, oh).squeeze(1)
        self._running[2, sl] += oh.sum(1)

    # ------------------------------------------------------------------ probes
    def evaluate(self, t: int) -> None:
        metrics: dict[str, Tensor] = {}
        sets = dict(self.evalsets)
        if self.train is not None:
            sets = {"train": self.train, **sets}
        member_chunk = 1 if self.mode == "loop" else None
        for split, data in sets.items():
            di = self.data_index if data.x.shape[0] > 1 else torch.zeros_like(self.data_index)
            metrics.update(group_metrics(self.model, self.params, data, di, self.loss, split,
                                         member_chunk=member_chunk))
        if self.stream is not None:  # NaN at step 0: no minibatch seen yet
            metrics.update(self._running_metrics())
        for name, probe in self.probes.items():  # extra probes: NaN between their own steps
            every = (self.probe_every.get(name) if isinstance(self.probe_every, Mapping)
                     else self.probe_every)
            due = every is None or t % every == 0 or t == self.cfg.steps
            metrics[name] = (probe(self.model, self.params).detach().double().cpu() if due
                             else torch.full((len(self.members),), torch.nan, dtype=torch.float64))
        dead = (~self.active).cpu()
        for k in list(metrics):
            metrics[k] = torch.where(dead, torch.nan, metrics[k])
        metrics["lr"] = self.lrs[min(t, self.cfg.steps - 1)].cpu()
        if self.sigmas is not None:
            metrics["noise_sigma"] = self.sigmas[min(t, self.cfg.steps - 1)].cpu()
        metrics["diverged"] = dead.to(torch.float64)
        for k, v in metrics.items():
            self._record(k, v)
        self.eval_steps.append(t)

    def _record(self, name: str, value: Tensor) -> None:
        """Store one evaluation's [K] values of ``name`` in its row of the metric's table."""
        row = len(self.eval_steps)
        table = self.evals.get(name)
        if table is None or row >= table.shape[0]:
            cfg = self.cfg
            rows = max(row + 1, cfg.steps // cfg.eval_every + 2, 2 * (0 if table is None else table.shape[0]))
            grown = torch.full((rows, len(self.members)), torch.nan, dtype=torch.float64)
            if table is not None:
                grown[:table.shape[0]] = table
            self.evals[name] = table = grown
        table[row] = value.to(torch.float64)

    def _running_metrics(self) -> dict[str, Tensor]:
        """Mean minibatch loss and accuracy since the last probe ('batch.*'), overall and by group."""
        L, A, N = (r.cpu() for r in self._running)
        out = {"batch.loss": L.sum(1) / N.sum(1), "batch.acc": A.sum(1) / N.sum(1)}
        for j, g in enumerate(self.group_names):
            out[f"batch.{g}.loss"] = L[:, j] / N[:, j]
            out[f"batch.{g}.acc"] = A[:, j] / N[:, j]
        self._running.zero_()
        return out

    # ------------------------------------------------------------------ adaptive schedules
    def adapt(self, t: int) -> bool:
        """End of an epoch at step t: feed each adaptive member its mean training loss and apply
        its decision to the LR table from step t on. True when no member is left training."""
        mean = (self._epoch_loss / self.batches_per_epoch).cpu()
        self._epoch_loss.zero_()
        T = self.lrs.shape[0]
        for k, sch in self.adaptive.items():
            if sch.stopped or not bool(self.active[k]) or not math.isfinite(float(mean[k])):
                continue
            action = sch.observe(float(mean[k]))
            if action == "stop":
                self.stopped_step[k] = t
            if action != "continue" and t < T:
                self.lrs[t:, k] = 0.0 if action == "stop" else sch.current_lr
        if len(self.adaptive) < len(self.members):
            return False
        return all(sch.stopped or not bool(self.active[k]) for k, sch in self.adaptive.items())

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {
            "step": self.step, "params": self.params, "momentum": self.momentum,
            **({"second": self.second} if self.second else {}),
            "active": self.active, "diverged_step": self.diverged_step,
            "evals": {k: v[:len(self.eval_steps)].clone() for k, v in self.evals.items()},
            "eval_steps": self.eval_steps, "mode": self.mode,
            "running": self._running,
            "n_members": len(self.members),
            "lrs": self.lrs, "stopped_step": self.stopped_step, "epoch_loss": self._epoch_loss,
            "adaptive": {k: sch.state_dict() for k, sch in self.adaptive.items()},
        }

    def load_state(self, st: dict) -> None:
        if st["n_members"] != len(self.members):
            raise ValueError(f"checkpoint has {st['n_members']} members, this run {len(self.members)}")
        self.step = st["step"]
        self.params = {k: v.to(self.device) for k, v in st["params"].items()}
        self.momentum = {k: v.to(self.device) for k, v in st["momentum"].items()}
        if self.second:
            if "second" not in st:
                raise ValueError(f"checkpoint has no Adam moments, this run uses optimizer {self.cfg.optimizer}")
            self.second = {k: v.to(self.device) for k, v in st["second"].items()}
        self.active = st["active"].to(self.device)
        self.diverged_step = st["diverged_step"]
        self.eval_steps = list(st["eval_steps"])
        self._set_mode(st["mode"])  # resume in the mode the run started in
        self.evals = {}
        for k, v in st["evals"].items():  # older checkpoints hold lists of [K] tensors
            table = torch.stack(v) if isinstance(v, list) else v
            rows = max(len(self.eval_steps), self.cfg.steps // self.cfg.eval_every + 2)
            self.evals[k] = torch.full((rows, len(self.members)), torch.nan, dtype=torch.float64)
            self.evals[k][:table.shape[0]] = table
        self._running = st["running"].to(self.device)
        if "lrs" in st:  # adaptive schedules may have rewritten the table
            self.lrs = st["lrs"].to(self.device)
            self.stopped_step = st["stopped_step"]
            self._epoch_loss = st["epoch_loss"].to(self.device)
            for k, sd in st["adaptive"].items():
                self.adaptive[k].load_state_dict(sd)

    def save_checkpoint(self) -> None:
        """The checkpoint, then the records so far (so ``lrlab show`` reads a run in progress)."""
        if self.run_dir is None:
            return
        buf = io.BytesIO()
        torch.save(self.state(), buf)
        write_atomic(self.run_dir / CHECKPOINT, buf.getvalue())  # a unique temp file, fsync, rename
        res = self.result(time.perf_counter() - self._started)
        write_parquet(self.run_dir / RECORDS_FILE, res.records)
        write_parquet(self.run_dir / MEMBERS_FILE, res.members)
        if self.on_checkpoint is not None:
            self.on_checkpoint(res)

    # ------------------------------------------------------------------ the loop
    def run(self, progress: bool | Callable[[int, int], None] = False) -> PopulationResult:
        cfg = self.cfg
        T, E = cfg.steps, cfg.eval_every
        ckpt = cfg.checkpoint_every or E
        next_ckpt = (self.step // ckpt + 1) * ckpt
        t0 = self._started = time.perf_counter()
        bar = _progress(progress, T, self.step, self.mode, len(self.members))
        try:
            t = self.step
            if not self.eval_steps or self.eval_steps[-1] != t:
                self.evaluate(t)
            while t < T:
                self.update(t)
                t += 1
                self.step = t
                done = self.adaptive and t % self.batches_per_epoch == 0 and self.adapt(t)
                if t % E == 0 or t == T or done:
                    self.evaluate(t)
                    if self.run_dir is not None and (t >= next_ckpt or t == T):
                        self.save_checkpoint()
                        next_ckpt = (t // ckpt + 1) * ckpt
                bar(t)
                if done:  # every member has stopped (AutoDecay) or diverged: nothing left to train
                    break
        finally:
            bar(None)
        return self.result(time.perf_counter() - t0)

    def result(self, wall: float) -> PopulationResult:
        steps = np.asarray(self.eval_steps, dtype=np.int64)
        K = len(self.members)
        frames = []
        for name, vals in self.evals.items():
            arr = vals[:len(steps)].numpy()  # [n_evals, K]
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
            "stopped_step": self.stopped_step.numpy(),
            "decays": [self.adaptive[k].decays if k in self.adaptive else 0 for k in range(K)],
        })
        params = {k: v.detach().cpu() for k, v in self.params.items()}
        decisions = {k: pd.DataFrame(sch.history, columns=["epoch", "loss", "g", "action"])
                     for k, sch in self.adaptive.items()}
        return PopulationResult(records, members, params, self.mode, wall, decisions)


def _progress(progress, total: int, start: int, mode: str, k: int):
    """A callable ``bar(step)`` (``bar(None)`` closes); rich bar when ``progress`` is True."""
    if callable(progress):
        return lambda t: progress(t, total) if t is not None else None
    if not progress:
        return lambda t: None
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


def _as_list(d, what: str = "train") -> list[Dataset]:
    """One dataset, or a list of them (one per ``data_index``); each may be anything
    :func:`lrlab.data.as_dataset` reads, e.g. an (x, y) pair of tensors or a DataLoader."""
    is_pair = isinstance(d, tuple) and len(d) == 2 and all(isinstance(t, Tensor) for t in d)
    if isinstance(d, (list, tuple)) and not is_pair:
        return [as_dataset(x, what=f"{what}[{i}]") for i, x in enumerate(d)]
    return [as_dataset(d, what=what)]


def _eval_sets(test) -> dict[str, list[Dataset]]:
    """Evaluation sets by name: a dataset or list is 'test'; a mapping names its own."""
    if test is None:
        return {}
    if isinstance(test, Mapping):
        return {str(k): _as_list(v, f"test[{k!r}]") for k, v in test.items()}
    return {"test": _as_list(test, "test")}


def train_population(model, members: Sequence[Member],
                     train: Dataset | Sequence[Dataset] | ImageStream,
                     test: Dataset | Sequence[Dataset] | Mapping[str, Dataset | Sequence[Dataset]] | None,
                     cfg: TrainConfig, *, run_dir: str | os.PathLike | None = None,
                     resume: bool = False,
                     progress: bool | Callable[[int, int], None] = False,
                     probes: Mapping[str, Callable] | None = None,
                     probe_every: int | Mapping[str, int] | None = None,
                     on_checkpoint: Callable[[PopulationResult], None] | None = None,
                     criterion: Callable[[Tensor, Tensor], Tensor] | None = None) -> PopulationResult:
    """Train every member together; probe loss and accuracy by group every ``cfg.eval_every``.

    ``train`` is one dataset shared by all members (an lrlab :class:`Dataset`, an ``(x, y)``
    tuple of tensors, a ``TensorDataset`` or a ``DataLoader``: see :func:`lrlab.data.as_dataset`),
    a list of them indexed by each member's ``data_index``, or an :class:`ImageStream`
    (minibatches normalised and transformed per use; its probes report the running minibatch
    metrics ``batch.*`` instead of a full pass
    over the training set). ``test`` is a dataset (or list) probed as ``test.*``, or a mapping
    name → dataset of several evaluation sets probed as ``<name>.*``. With ``run_dir`` the
    trainer checkpoints there (atomically); ``resume=True`` continues from that checkpoint and
    yields the records an uninterrupted run would have. ``probes`` maps metric names to extra
    measurements ``probe(model, params) -> Tensor [K]`` (e.g. the top NTK eigenvalue), taken at
    probes whose step is a multiple of ``probe_every`` (default: every probe) and NaN between;
    ``probe_every`` may also map a probe's name to its own cadence (absent names: every probe).
    ``on_checkpoint(result)`` (with ``run_dir``) sees the records so far at every checkpoint,
    e.g. a live :class:`lrlab.export.Exporter`. ``criterion`` replaces ``cfg.loss`` with your own
    loss: a torch loss module (``nn.CrossEntropyLoss()``) or ``fn(outputs, targets) -> [N]``.
    """
    if not members:
        raise ValueError("a population needs at least one member")
    if cfg.unit != "step":
        raise ValueError("train_population counts in steps: pass cfg.in_steps(steps_per_epoch)")
    set_threads(cfg.threads)
    rd = Path(run_dir) if run_dir is not None else None
    cadences = (probe_every.items() if isinstance(probe_every, Mapping)
                else [("probe_every", probe_every)] if probe_every is not None else [])
    for name, every in cadences:
        if name != "probe_every" and name not in (probes or {}):
            raise ValueError(f"probe_every names {name!r}, which is not a probe; probes are "
                             f"{sorted(probes or {})}")
        if not isinstance(every, int) or every < 1 or every % cfg.eval_every:
            raise ValueError(f"probe_every[{name!r}] must be a positive multiple of eval_every="
                             f"{cfg.eval_every}, got {every!r}" if name != "probe_every" else
                             f"probe_every must be a positive multiple of eval_every={cfg.eval_every}, "
                             f"got {every!r}")
    tr = _Trainer(model, members, train, test, cfg, rd, probes, probe_every, criterion)
    tr.on_checkpoint = on_checkpoint
    if resume:
        if rd is None or not (rd / CHECKPOINT).is_file():
            raise FileNotFoundError(f"no checkpoint to resume from in {rd}")
        tr.load_state(load_checkpoint(rd / CHECKPOINT))
    return tr.run(progress)


def load_checkpoint(path: Path) -> dict:
    """A trainer checkpoint, loaded with ``weights_only=True`` so the file can never run code;
    anything else (a pickled object, a damaged file) is a ValueError naming the file."""
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file makes the unpickler raise nearly anything
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: not a loadable lrlab checkpoint ({first}); nothing in it was run") from None
    if not isinstance(state, dict) or "n_members" not in state:
        raise ValueError(f"{path}: not an lrlab checkpoint (no trainer state)")
    return state
