"""Per-example losses and correctness for population outputs [K, B] or [K, B, C]."""

from __future__ import annotations

import copy
from typing import Callable, Literal, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossName = Literal["logistic", "cross_entropy", "squared", "margin_squared"]
LOSSES = ("logistic", "cross_entropy", "squared", "margin_squared")


Loss = Union[str, Callable[[Tensor, Tensor], Tensor]]


def criterion(fn: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """A user's criterion made per-example: a torch loss module (``nn.CrossEntropyLoss()``, …)
    is copied with ``reduction="none"``; any other callable must already return one loss per
    example. The mean over a batch is then the criterion's usual mean."""
    if isinstance(fn, nn.modules.loss._Loss) and fn.reduction != "none":
        fn = copy.copy(fn)
        fn.reduction = "none"
    return fn


def split_loss(loss: Loss) -> tuple[str, Callable[[Tensor, Tensor], Tensor] | None]:
    """(the name a TrainConfig holds, the criterion or None): a callable travels beside the
    config, which keeps a placeholder name the trainer then ignores."""
    if callable(loss):
        return "squared", criterion(loss)
    return loss, None


def check_loss(loss: Loss, task: str) -> None:
    """Reject loss/task pairs that make no sense, naming both (a callable criterion is the
    caller's to match to the task)."""
    if callable(loss):
        return
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {list(LOSSES)}")
    if task == "regression" and loss != "squared":
        raise ValueError(f"a regression task (real targets) needs the squared loss, not {loss!r}")
    if loss in ("logistic", "margin_squared") and task != "binary":
        raise ValueError(f"{loss} loss needs a binary task (labels ±1, one output)")
    if loss == "cross_entropy" and task != "multiclass":
        raise ValueError("cross_entropy needs a multiclass task; use logistic for ±1 labels")


def per_example(loss: Loss, out: Tensor, y: Tensor, num_classes: int = 2) -> Tensor:
    """Loss of each example, shape [K, B]; ``y`` is [K, B] (±1 floats or class indices).

    ``squared`` is ½(f − y)²; ``margin_squared`` is (y·f − 1)² on ±1 labels (Lu et al. 2023),
    the same curve without the ½, so its gradient is twice the squared loss's. A callable
    ``loss(outputs [N, C] or [N], targets [N]) -> [N]`` (see :func:`criterion`) is applied to
    the K·B examples at once.
    """
    if callable(loss):
        K, B = y.shape[:2]
        flat = criterion(loss)(out.reshape(K * B, *out.shape[2:]), y.reshape(K * B))
        if not isinstance(flat, Tensor) or flat.shape != (K * B,):
            got = tuple(flat.shape) if isinstance(flat, Tensor) else type(flat).__name__
            raise ValueError(f"a criterion must return one loss per example (reduction='none'): "
                             f"given {K * B} examples it returned {got}")
        return flat.reshape(K, B)
    if loss == "logistic":
        return F.softplus(-y * out)
    if loss == "margin_squared":
        return (y * out - 1) ** 2
    if loss == "cross_entropy":
        return torch.logsumexp(out, -1) - out.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)
    if loss == "squared":
        if out.dim() == y.dim():
            return 0.5 * (out - y) ** 2
        target = F.one_hot(y.long(), out.shape[-1]).to(out.dtype)
        return 0.5 * ((out - target) ** 2).sum(-1)
    raise ValueError(f"unknown loss {loss!r}; expected one of {list(LOSSES)}")


def correct(out: Tensor, y: Tensor) -> Tensor:
    """Whether each prediction is right, [K, B]: sign for one output, argmax otherwise."""
    if out.dim() == y.dim():
        return (out * y) > 0
    return out.argmax(-1) == y.long()
