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

The paper watches a training loss. ``mode="max"`` watches a metric that should grow (an
accuracy): the plateau test is the same, and the significant change is a rise by 1/ζ,
(ĝ(0) + ε) / (ĝ(t) + ε) ≤ ζ. Both tests compare relative changes, so the metric must be ≥ 0.

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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

CONTINUE, DECAY, STOP = "continue", "decay", "stop"
STAGE_STARTS = ("plateau", "first")
MODES = ("min", "max")
_REL_ROUNDING = 1e-12  # a decay landing on min_lr up to float rounding is still allowed


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _validate(beta: Any, window: Any, tol: Any, drop: Any, eps: Any, factor: Any, min_lr: Any,
              max_decays: Any, lr: Any, stage_start: Any = "plateau", mode: Any = "min") -> None:
    """Raise ValueError naming the first bad parameter, its value and what was expected."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
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
    mode: str = "min"
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

    def observe(self, loss: float, may_decay: bool | None = None) -> str:
        """Take one epoch's training loss (or the watched metric); return "continue", "decay" or
        "stop". ``may_decay`` (if given) replaces the ``min_lr`` check: a caller holding several
        rates says whether all of them may still decay."""
        if self.stopped:
            raise RuntimeError(f"AutoDecay already stopped training at epoch {self.epoch}; "
                               "no further losses can be observed")
        value = float(loss)
        what = "training loss" if self.mode == "min" else "metric"
        if not math.isfinite(value):
            raise ValueError(f"{what} must be finite, got {value!r} at epoch {self.epoch + 1}")
        if value < 0:
            raise ValueError(f"{what} must be >= 0 (AutoDecay compares relative changes), got "
                             f"{value!r} at epoch {self.epoch + 1}")
        self.epoch += 1
        self.t += 1
        self.f = self.beta * self.f + (1 - self.beta) * value
        self.g = g = value if self.t == 1 else self.f / (1 - self.beta**self.t)
        if self.g_start is None:  # the first stage, or every stage with stage_start="first"
            self.g_start = g
        self.recent = (self.recent + [g])[-self.window:]
        action = self._decide(may_decay)
        self.history.append({"epoch": self.epoch, "loss": value, "g": g, "action": action})
        return action

    def _decide(self, may_decay: bool | None) -> str:
        if len(self.recent) < self.window:
            return CONTINUE
        lo, hi = min(self.recent), max(self.recent)
        if not (hi - lo) / (lo + self.eps) < self.tol:
            return CONTINUE
        assert self.g is not None and self.g_start is not None
        now, start = self.g + self.eps, self.g_start + self.eps
        dropped = (now / start if self.mode == "min" else start / now) <= self.drop
        new_lr = self.current_lr * self.factor
        if may_decay is None:
            may_decay = new_lr >= self.min_lr * (1 - _REL_ROUNDING)
        allowed = (self.max_decays is None or self.decays < self.max_decays) and may_decay
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
        """Restore what :meth:`state_dict` returned; the keys must match exactly (a state saved
        before ``mode`` existed is read as ``mode="min"``)."""
        names = {f.name for f in fields(self)}
        if "mode" not in state:
            state = {**state, "mode": "min"}
        missing, unknown = sorted(names - set(state)), sorted(set(state) - names)
        if missing or unknown:
            raise ValueError(f"AutoDecayRule state has missing keys {missing} "
                             f"and unknown keys {unknown}")
        _validate(**{k: state[k] for k in self.params()})
        for name in names:
            setattr(self, name, copy.deepcopy(state[name]))


class AutoDecay(LRScheduler):
    """AutoDecay as a drop-in torch scheduler, used like ``ReduceLROnPlateau``: call
    ``step(train_loss)`` once per epoch and end the loop when :attr:`should_stop` is True.

    A decay multiplies every param group's rate by ``factor``. ``min_lr`` (one value, or one per
    param group) is a floor: a decay that would take any group below its floor stops training
    instead. ``mode="max"`` watches a metric that should grow, such as an accuracy.

    It composes with other schedulers: ``step()`` without a value only counts the epoch (so a
    warm-up in ``SequentialLR``, or Lightning calling ``step()`` on epochs without the monitored
    metric, leaves it alone), and ``step(value)`` after the stop warns once and changes nothing.
    """

    def __init__(self, optimizer: Optimizer, beta: float = 0.9, window: int = 5, tol: float = 0.02,
                 drop: float = 0.9, eps: float = 1e-8, factor: float = 0.1,
                 min_lr: float | Sequence[float] = 0.0, max_decays: int | None = None,
                 stage_start: str = "plateau", mode: str = "min") -> None:
        n_groups = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 0
        self.min_lrs = _group_floors(min_lr, n_groups)
        self._warned_stopped = False
        super().__init__(optimizer)  # runs step() once without a value: a no-op
        lrs = [float(lr) for lr in self.base_lrs]  # the rates before any scheduler touched them
        bad = [(i, lr) for i, lr in enumerate(lrs) if not (math.isfinite(lr) and lr > 0)]
        if bad:
            i, lr = bad[0]
            raise ValueError(f"AutoDecay needs a positive learning rate in every param group, "
                             f"got lr={lr!r} in group {i}")
        self.rule = AutoDecayRule(beta=beta, window=window, tol=tol, drop=drop, eps=eps,
                                  factor=factor, min_lr=min(self.min_lrs), max_decays=max_decays,
                                  lr=min(lrs), stage_start=stage_start, mode=mode)

    def _lrs(self) -> list[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def _may_decay(self) -> bool:
        """Whether every group's rate stays at or above its floor after one more decay."""
        if len(self.min_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"AutoDecay was given {len(self.min_lrs)} min_lr values but the "
                             f"optimizer now has {len(self.optimizer.param_groups)} param groups")
        return all(lr * self.rule.factor >= floor * (1 - _REL_ROUNDING)
                   for lr, floor in zip(self._lrs(), self.min_lrs))

    def step(self, metrics: float | torch.Tensor | None = None) -> None:  # type: ignore[override]
        """Observe one epoch's training loss (``mode="max"``: the watched metric), a float or
        one-element tensor, and maybe decay. Without a value, only count the epoch."""
        self._step_count += 1
        self.last_epoch += 1
        if metrics is None or self.should_stop:
            if metrics is not None and not self._warned_stopped:
                self._warned_stopped = True
                warnings.warn(f"AutoDecay stopped training at epoch {self.rule.epoch}; "
                              "step() now leaves the learning rate alone (end the training loop "
                              "once scheduler.should_stop is True)", UserWarning, stacklevel=2)
            self._last_lr = self._lrs()
            return
        if isinstance(metrics, torch.Tensor):
            if metrics.numel() != 1:
                raise ValueError(f"the value passed to AutoDecay.step must be a scalar, got a "
                                 f"tensor of shape {tuple(metrics.shape)}")
            metrics = metrics.item()
        self.rule.current_lr = min(self._lrs())  # the optimizer's rates are the truth
        action = self.rule.observe(metrics, may_decay=self._may_decay())
        if action == DECAY:
            for group in self.optimizer.param_groups:
                new = float(group["lr"]) * self.rule.factor
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(new)
                else:
                    group["lr"] = new
        self._last_lr = self._lrs()

    def _update_lr(self, epoch: int | None = None) -> None:
        """SequentialLR hands over to a scheduler with ``_update_lr(0)``: AutoDecay then starts
        from the base rates (times the decays it has made), not where a warm-up left them."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if epoch is not None:
            scale = self.rule.factor ** self.rule.decays
            for group, base in zip(self.optimizer.param_groups, self.base_lrs):
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(float(base) * scale)
                else:
                    group["lr"] = float(base) * scale
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
        rule = getattr(self, "rule", None)
        return rule is not None and rule.stopped

    @property
    def decays(self) -> int:
        return self.rule.decays

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.rule.history

    def state_dict(self) -> dict[str, Any]:
        """Rule state, rates, floors and epoch count as plain Python values; never the optimizer."""
        return {"rule": self.rule.state_dict(), "last_lr": list(self._last_lr),
                "base_lrs": [float(lr) for lr in self.base_lrs], "last_epoch": self.last_epoch,
                "step_count": self._step_count, "min_lrs": list(self.min_lrs)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` and write its rates into the optimizer's param groups."""
        expected = {"rule", "last_lr", "base_lrs", "last_epoch", "step_count", "min_lrs"}
        state_dict = {"min_lrs": list(self.min_lrs), **state_dict}  # states saved before min_lrs
        if set(state_dict) != expected:
            raise ValueError(f"AutoDecay state has keys {sorted(state_dict)}, "
                             f"expected {sorted(expected)}")
        groups = self.optimizer.param_groups
        if len(state_dict["last_lr"]) != len(groups):
            raise ValueError(f"AutoDecay state holds {len(state_dict['last_lr'])} learning rates "
                             f"but the optimizer has {len(groups)} param groups")
        self.min_lrs = _group_floors(state_dict["min_lrs"], len(groups))
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


def _group_floors(min_lr: Any, n_groups: int) -> list[float]:
    """``min_lr`` as one floor per param group, checked (a ValueError names the bad value)."""
    if isinstance(min_lr, (list, tuple)):
        if len(min_lr) != n_groups:
            raise ValueError(f"min_lr has {len(min_lr)} values but the optimizer has {n_groups} "
                             "param groups: give one value, or one per group")
        floors = list(min_lr)
    else:
        floors = [min_lr] * n_groups
    for i, floor in enumerate(floors):
        if not _number(f"min_lr[{i}]", floor) >= 0:
            raise ValueError(f"min_lr must be >= 0, got {floor!r}")
    return [float(f) for f in floors]


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
        params = self._rule.params()
        del params["mode"]  # always "min": the trainer feeds training losses
        return AutoDecaySchedule(**params)

    def state_dict(self) -> dict[str, Any]:
        return self._rule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rule.load_state_dict(state)

    def __repr__(self) -> str:
        params = self._rule.params()
        lr = params.pop("lr")
        if params["mode"] == "min":  # the population feeds losses: the paper's mode, left implicit
            del params["mode"]
        rest = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"AutoDecaySchedule(lr={lr!r}, {rest})"


__all__ = ["AutoDecay", "AutoDecayRule", "AutoDecaySchedule"]
