"""Mixed precision for training steps, set once per job: ``lrlab verify --amp``.

The driver enters :func:`mixed_precision` around a job; the trainers (the population trainer's
autograd step, the transfer experiments' SGD) run their training forward passes under
:func:`autocast`. bfloat16 keeps float32's exponent range, so no loss scaling is needed and
the same code runs on CPU and CUDA. Probes (losses, accuracies, Hessian and NTK eigenvalues)
stay in float32, and the hand-written two-layer step and huang2020's exact float64 GD are left
as they are (the former is not chosen while mixed precision is on).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import torch

AMP_DTYPE = torch.bfloat16

_ENABLED: ContextVar[bool] = ContextVar("lrlab_mixed_precision", default=False)


@contextmanager
def mixed_precision(enabled: bool = True) -> Iterator[None]:
    """Train under bfloat16 autocast inside this block (or not, with ``enabled=False``)."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def amp_enabled() -> bool:
    """Whether training steps run under mixed precision here."""
    return _ENABLED.get()


def autocast(device: torch.device | str) -> torch.autocast:
    """The autocast context of a training forward pass on ``device`` (off unless enabled)."""
    kind = torch.device(device).type
    return torch.autocast(device_type=kind, dtype=AMP_DTYPE, enabled=amp_enabled() and kind in ("cpu", "cuda"))
