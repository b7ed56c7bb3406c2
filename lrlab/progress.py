"""Progress for steps that have no natural count (λ0, Lanczos): a spinner with the step's name
in a terminal while it runs (and, where the step reports one, its iteration), then one log line
with its wall time."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console

_console = Console(stderr=True)


def _ignore(step: int, total: int) -> None:
    """The iteration callback of a stage shown nowhere."""


@contextlib.contextmanager
def stage(what: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """Show ``what`` with a spinner while the block runs (when ``enabled``), then
    "<what>: done in X s" on stderr. The block gets a callback ``(step, total)`` that shows
    "iteration step of at most total" beside the spinner (Lanczos passes it as ``on_iter``)."""
    if not enabled:
        yield _ignore
        return
    start = time.perf_counter()
    with _console.status(f"{what} …") as status:
        def iteration(step: int, total: int) -> None:
            status.update(f"{what} … iteration {step} of at most {total}")
        yield iteration
    _console.print(f"{what}: done in {time.perf_counter() - start:.1f} s", markup=False, highlight=False)


__all__ = ["stage"]
