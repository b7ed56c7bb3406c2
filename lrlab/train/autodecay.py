"""AutoDecay (You, Long, Wang & Jordan 2019, appendix A.1): decay the learning rate when the
training loss has plateaued after a significant drop, and stop training when it plateaus without one.

The rule sees one training loss ℓ̂(t) per epoch, t = 1, 2, … counted within the current stage:

    f(0) = 0,   f(t) = β f(t−1) + (1−β) ℓ̂(t),   ĝ(t) = f(t) / (1 − β^t)      (so ĝ(1) = ℓ̂(1))

* stable:  the stage holds at least W values of ĝ and its last W values G satisfy
  (max G − min G) / (min G + ε) < tol;
* on stable, if (ĝ(t) + ε) / (ĝ(0) + ε) ≤ ζ (a significant drop since the stage began) the rate
  is multiplied by ``factor`` and the stage restarts (t = 0 and f = 0, so the bias correction
  restarts too); otherwise training stops. Optional ``max_decays`` and ``min_lr`` turn a decay
  beyond them into a stop.

Our reading: f(0) = 0 leaves ĝ(0), "the loss when the stage began", undefined. The first stage
uses ĝ(1). For later stages ``stage_start="plateau"`` (default) takes the smoothed loss of the
plateau that triggered the decay — the level the stage starts from, so the drop that a decay
causes counts as progress of the new stage; ``stage_start="first"`` takes ĝ(1) of the new
stage instead, which already contains most of that drop and so stops training after the first
decay far more often (measured on PS10: see the you2019 report).

Three front ends share the rule: :class:`AutoDecayRule` (plain Python), :class:`AutoDecay` (a
torch scheduler used like ``ReduceLROnPlateau``) and :class:`AutoDecaySchedule` (one member of
lrlab's population trainer).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

CONTINUE, DECAY, STOP = "continue", "decay", "stop"
STAGE_STARTS = ("plateau", "first")
_REL_ROUNDING = 1e-12  # a decay landing on min_lr up to float rounding is still allowed


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _validate(beta: Any, window: Any, tol: Any, drop: Any, eps: Any, factor: Any, min_lr: Any,
              max_decays: Any, lr: Any, stage_start: Any = "plateau") -> None:
    """Raise ValueError naming the first bad parameter, its value and what was expected."""
    if stage_start not in STAGE_STARTS:
        raise ValueError(f"stage_start must be one of {list(STAGE_STARTS)}, got {stage_start!r}")
    if not 0 < _number("beta", beta) < 1:
        raise ValueError(f"beta must be in (0, 1), got {beta!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    if not _number("tol", tol) > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if not 0 < _number("drop", drop) <= 1:
        raise ValueError(f"drop (zeta) must be in (0, 1], got {drop!r}")
    if not _number("eps", eps) >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if not 0 < _number("factor", factor) < 1:
        raise ValueError(f"factor must be in (0, 1), got {factor!r}")
    if not _number("min_lr", min_lr) >= 0:
        raise ValueError(f"min_lr must be >= 0, got {min_lr!r}")
    if max_decays is not None and (isinstance(max_decays, bool) or not isinstance(max_decays, int)
                                   or max_decays < 0):
        raise ValueError(f"max_decays must be None or an integer >= 0, got {max_decays!r}")
    if not _number("lr", lr) > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")


@dataclass
class AutoDecayRule:
    """The AutoDecay state machine: feed it one training loss per epoch with :meth:`observe`.

    ``lr`` is the initial rate it controls; ``current_lr`` follows the decays and is what
    ``min_lr`` is checked against (a caller that owns the real rate may overwrite it).
    """

    beta: float = 0.9
    window: int = 5
    tol: float = 0.02
    drop: float = 0.9
    eps: float = 1e-8
    factor: float = 0.1
    min_lr: float = 0.0
    max_decays: int | None = None
    lr: float = 1.0
    stage_start: str = "plateau"
    # state
    t: int = field(default=0, init=False)
    f: float = field(default=0.0, init=False)
    g: float | None = field(default=None, init=False)
    g_start: float | None = field(default=None, init=False)
    recent: list[float] = field(default_factory=list, init=False)
    decays: int = field(default=0, init=False)
    stopped: bool = field(default=False, init=False)
    epoch: int = field(default=0, init=False)
    current_lr: float = field(default=0.0, init=False)
    history: list[dict[str, Any]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        _validate(**self.params())
        self.current_lr = float(self.lr)

    def params(self) -> dict[str, Any]:
        """The constructor parameters, e.g. to build an unobserved copy."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init}

    def observe(self, loss: float) -> str:
        """Take one epoch's training loss; return "continue", "decay" or "stop"."""
        if self.stopped:
            raise RuntimeError(f"AutoDecay already stopped training at epoch {self.epoch}; "
                               "no further losses can be observed")
        value = float(loss)
        if not math.isfinite(value):
            raise ValueError(f"training loss must be finite, got {value!r} at epoch {self.epoch + 1}")
        self.epoch += 1
        self.t += 1
        self.f = self.beta * self.f + (1 - self.beta) * value
        self.g = g = value if self.t == 1 else self.f / (1 - self.beta**self.t)
        if self.g_start is None:  # the first stage, or every stage with stage_start="first"
            self.g_start = g
        self.recent = (self.recent + [g])[-self.window:]
        action = self._decide()
        self.history.append({"epoch": self.epoch, "loss": value, "g": g, "action": action})
        return action

    def _decide(self) -> str:
        if len(self.recent) < self.window:
            return CONTINUE
        lo, hi = min(self.recent), max(self.recent)
        if not (hi - lo) / (lo + self.eps) < self.tol:
            return CONTINUE
        assert self.g is not None and self.g_start is not None
        dropped = (self.g + self.eps) / (self.g_start + self.eps) <= self.drop
        new_lr = self.current_lr * self.factor
        allowed = ((self.max_decays is None or self.decays < self.max_decays)
                   and new_lr >= self.min_lr * (1 - _REL_ROUNDING))
        if not (dropped and allowed):
            self.stopped = True
            return STOP
        self.decays += 1
        self.current_lr = new_lr
        # the next stage's reference level ĝ(0): the plateau just left, or that stage's ĝ(1)
        self.g_start = self.g if self.stage_start == "plateau" else None
        self.t, self.f, self.recent = 0, 0.0, []
        return DECAY

    def state_dict(self) -> dict[str, Any]:
        """Parameters and state as plain Python values (JSON-serialisable)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the keys must match exactly."""
        names = {f.name for f in fields(self)}
        missing, unknown = sorted(names - set(state)), sorted(set(state) - names)
        if missing or unknown:
            raise ValueError(f"AutoDecayRule state has missing keys {missing} "
                             f"and unknown keys {unknown}")
        _validate(**{k: state[k] for k in self.params()})
        for name in names:
            setattr(self, name, copy.deepcopy(state[name]))


class AutoDecay(LRScheduler):
    """AutoDecay as a torch scheduler: call ``step(train_loss)`` once per epoch, like
    ``ReduceLROnPlateau``, and end the loop when :attr:`should_stop` is True.

    A decay multiplies every param group's rate by ``factor``; ``min_lr`` is checked against the
    smallest group rate.
    """

    def __init__(self, optimizer: Optimizer, beta: float = 0.9, window: int = 5, tol: float = 0.02,
                 drop: float = 0.9, eps: float = 1e-8, factor: float = 0.1, min_lr: float = 0.0,
                 max_decays: int | None = None, stage_start: str = "plateau") -> None:
        super().__init__(optimizer)  # runs step() once without a loss: a no-op
        self.rule = AutoDecayRule(beta=beta, window=window, tol=tol, drop=drop, eps=eps,
                                  factor=factor, min_lr=min_lr, max_decays=max_decays,
                                  lr=self._min_lr_now(), stage_start=stage_start)

    def _lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def _min_lr_now(self) -> float:
        return min(self._lrs())

    def step(self, loss: float | torch.Tensor | None = None) -> None:  # type: ignore[override]
        """Observe one epoch's training loss (a float or one-element tensor) and maybe decay."""
        self._step_count += 1
        if loss is None:
            if self._is_initial:  # LRScheduler.__init__'s own call
                self.last_epoch = 0
                self._last_lr = self._lrs()
                return
            raise TypeError("AutoDecay.step needs the epoch's training loss: scheduler.step(loss)")
        if self.should_stop:
            raise RuntimeError(f"AutoDecay already stopped training at epoch {self.rule.epoch}; "
                               "end the training loop once scheduler.should_stop is True")
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise ValueError(f"loss must be a scalar, got a tensor of shape {tuple(loss.shape)}")
            loss = loss.item()
        self.rule.current_lr = self._min_lr_now()  # the optimizer's rates are the truth
        action = self.rule.observe(loss)
        if action == DECAY:
            for group in self.optimizer.param_groups:
                new = float(group["lr"]) * self.rule.factor
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(new)
                else:
                    group["lr"] = new
        self.last_epoch += 1
        self._last_lr = self._lrs()

    def get_lr(self) -> list[float]:
        """The optimizer's current rates (AutoDecay has no closed form)."""
        return self._lrs()

    def get_last_lr(self) -> list[float]:
        """The rates after the latest step."""
        return list(self._last_lr)

    @property
    def should_stop(self) -> bool:
        """True once a plateau without a significant drop (or past max_decays/min_lr) was seen."""
        return self.rule.stopped

    @property
    def decays(self) -> int:
        return self.rule.decays

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.rule.history

    def state_dict(self) -> dict[str, Any]:
        """Rule state, rates and epoch count as plain Python values; never the optimizer."""
        return {"rule": self.rule.state_dict(), "last_lr": list(self._last_lr),
                "base_lrs": [float(lr) for lr in self.base_lrs], "last_epoch": self.last_epoch,
                "step_count": self._step_count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and write its rates into the optimizer's param groups."""
        expected = {"rule", "last_lr", "base_lrs", "last_epoch", "step_count"}
        if set(state_dict) != expected:
            raise ValueError(f"AutoDecay state has keys {sorted(state_dict)}, "
                             f"expected {sorted(expected)}")
        groups = self.optimizer.param_groups
        if len(state_dict["last_lr"]) != len(groups):
            raise ValueError(f"AutoDecay state holds {len(state_dict['last_lr'])} learning rates "
                             f"but the optimizer has {len(groups)} param groups")
        self.rule.load_state_dict(state_dict["rule"])
        for group, lr in zip(groups, state_dict["last_lr"]):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(float(lr))
            else:
                group["lr"] = float(lr)
        self._last_lr = self._lrs()
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = int(state_dict["last_epoch"])
        self._step_count = int(state_dict["step_count"])


class AutoDecaySchedule:
    """One population member's AutoDecay rate: the trainer calls :meth:`observe` once per epoch
    and reads ``current_lr``; calling it like a fixed schedule gives the current rate."""

    adaptive = True

    def __init__(self, lr: float, beta: float = 0.9, window: int = 5, tol: float = 0.02,
                 drop: float = 0.9, eps: float = 1e-8, factor: float = 0.1, min_lr: float = 0.0,
                 max_decays: int | None = None, stage_start: str = "plateau") -> None:
        self._rule = AutoDecayRule(beta=beta, window=window, tol=tol, drop=drop, eps=eps,
                                   factor=factor, min_lr=min_lr, max_decays=max_decays, lr=lr,
                                   stage_start=stage_start)

    @property
    def lr(self) -> float:
        """The initial rate."""
        return self._rule.lr

    @property
    def current_lr(self) -> float:
        return self._rule.current_lr

    @property
    def stopped(self) -> bool:
        return self._rule.stopped

    @property
    def decays(self) -> int:
        return self._rule.decays

    @property
    def history(self) -> list[dict[str, Any]]:
        return self._rule.history

    def observe(self, loss: float) -> str:
        """Take one epoch's training loss; return "continue", "decay" or "stop"."""
        return self._rule.observe(loss)

    def __call__(self, step: int) -> float:
        return self._rule.current_lr

    def fresh(self) -> AutoDecaySchedule:
        """A new, unobserved schedule with the same parameters."""
        return AutoDecaySchedule(**self._rule.params())

    def state_dict(self) -> dict[str, Any]:
        return self._rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rule.load_state_dict(state)

    def __repr__(self) -> str:
        params = self._rule.params()
        lr = params.pop("lr")
        rest = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"AutoDecaySchedule(lr={lr!r}, {rest})"


__all__ = ["AutoDecay", "AutoDecayRule", "AutoDecaySchedule"]
