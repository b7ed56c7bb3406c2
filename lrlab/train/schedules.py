"""Learning-rate schedules: each is just a function ``step -> lr`` (steps count from 0).

They are small frozen dataclasses so they print, compare and pickle; calling one gives the
rate used for the update at that step. Warm-up is a field of every schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch

from ..config import AutoDecayScheduleConfig, ConstantSchedule, CosineSchedule, ScheduleConfig, StepSchedule
from .autodecay import AutoDecaySchedule


def _check_lr(lr: float) -> None:
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning rate must be a positive finite number, got {lr!r}")


def _warm(lr: float, step: int, warmup_steps: int) -> float:
    return lr * (step + 1) / warmup_steps if step < warmup_steps else lr


@dataclass(frozen=True)
class Constant:
    """η_t = lr."""

    lr: float
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _check_lr(self.lr)

    def __call__(self, step: int) -> float:
        return _warm(self.lr, step, self.warmup_steps)


@dataclass(frozen=True)
class StepDecay:
    """η_t = lr · factor^(number of milestones ≤ t): the classic anneal."""

    lr: float
    milestones: tuple[int, ...]
    factor: float
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        ms = tuple(self.milestones)
        if any(b <= a for a, b in zip(ms, ms[1:])) or any(m <= 0 for m in ms):
            raise ValueError(f"milestones must be positive and strictly increasing, got {list(ms)}")
        if not self.factor > 0:
            raise ValueError(f"decay factor must be positive, got {self.factor!r}")
        object.__setattr__(self, "milestones", ms)

    def __call__(self, step: int) -> float:
        k = sum(1 for m in self.milestones if step >= m)
        return _warm(self.lr * self.factor**k, step, self.warmup_steps)


@dataclass(frozen=True)
class Cosine:
    """Cosine from lr to final_lr over ``steps`` steps, then final_lr."""

    lr: float
    steps: int
    final_lr: float = 0.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        _check_lr(self.lr)
        if self.steps <= 0:
            raise ValueError(f"cosine steps must be positive, got {self.steps!r}")

    def __call__(self, step: int) -> float:
        frac = min(step, self.steps) / self.steps
        value = self.final_lr + (self.lr - self.final_lr) * 0.5 * (1 + math.cos(math.pi * frac))
        return _warm(value, step, self.warmup_steps)


@dataclass(frozen=True)
class Until:
    """value before step ``until`` (None: always), 0 from then on — e.g. activation noise σ."""

    value: float
    until: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"value must be a finite number >= 0, got {self.value!r}")
        if self.until is not None and self.until <= 0:
            raise ValueError(f"until must be a positive step, got {self.until!r}")

    def __call__(self, step: int) -> float:
        return self.value if self.until is None or step < self.until else 0.0


Schedule = Union[Constant, StepDecay, Cosine, Until, Callable[[int], float]]


def from_config(cfg: ScheduleConfig, total_steps: int, steps_per_unit: int = 1) -> Schedule:
    """The schedule a config section describes; milestones, warm-up and cosine length are
    multiplied by ``steps_per_unit`` (the steps per epoch when the config counts epochs)."""
    k = steps_per_unit
    if k < 1:
        raise ValueError(f"steps_per_unit must be at least 1, got {k}")
    if isinstance(cfg, ConstantSchedule):
        return Constant(cfg.lr, cfg.warmup_steps * k)
    if isinstance(cfg, StepSchedule):
        return StepDecay(cfg.lr, tuple(m * k for m in cfg.milestones), cfg.factor, cfg.warmup_steps * k)
    if isinstance(cfg, CosineSchedule):
        return Cosine(cfg.lr, cfg.steps * k if cfg.steps else total_steps, cfg.final_lr,
                      cfg.warmup_steps * k)
    if isinstance(cfg, AutoDecayScheduleConfig):
        return AutoDecaySchedule(**cfg.model_dump(exclude={"kind"}))
    raise ValueError(f"unknown schedule {cfg!r}")  # pragma: no cover


def lr_table(schedules: Sequence[Schedule], steps: int) -> torch.Tensor:
    """η for every step and member, shape [steps, K], float64; rejects negative or non-finite η."""
    table = torch.tensor([[float(s(t)) for s in schedules] for t in range(steps)], dtype=torch.float64)
    table = table.reshape(steps, len(schedules))
    bad = ~torch.isfinite(table) | (table < 0)
    if bool(bad.any()):
        t, k = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"schedule of member {k} gives learning rate {float(table[t, k])} at step {t}")
    return table


def total_lr(schedule: Schedule, steps: int) -> float:
    """Σ_t η_t over ``steps`` steps — the 'physical time' a schedule spends."""
    return math.fsum(float(schedule(t)) for t in range(steps))


def anneal_steps(schedule: Schedule) -> tuple[int, ...]:
    """The steps at which a schedule decays (for marking figures)."""
    return tuple(getattr(schedule, "milestones", ()))


__all__ = ["Constant", "Cosine", "Schedule", "StepDecay", "Until", "anneal_steps", "from_config",
           "lr_table", "total_lr"]
