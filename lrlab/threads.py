"""One way to set torch's thread count, with the count checked first."""

from __future__ import annotations

import operator

import torch

from .config import check_threads


def set_threads(n: int | None) -> int:
    """Use ``n`` intra-op threads in torch (a positive integer); ``None`` keeps the current count.

    Returns the count in force before the call, so a caller can restore it. Raises
    :class:`ValueError` for anything but a positive integer or ``None``.
    """
    before = torch.get_num_threads()
    if n is None:
        return before
    if isinstance(n, bool):
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    try:
        count = operator.index(n)
    except TypeError:
        raise ValueError(f"threads must be a positive integer, got {n!r}") from None
    if count < 1:
        raise ValueError(f"threads must be at least 1, got {count}")
    check_threads(count)
    if count != before:
        torch.set_num_threads(count)
    return before
