"""Progress for steps that have no natural count (λ0, Lanczos): a spinner with the step's name
in a terminal while it runs, then one log line with its wall time."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.console import Console

_console = Console(stderr=True)


@contextlib.contextmanager
def stage(what: str, enabled: bool) -> Iterator[None]:
    """Show ``what`` with a spinner while the block runs (when ``enabled``), then
    "<what>: done in X s" on stderr."""
    if not enabled:
        yield
        return
    start = time.perf_counter()
    with _console.status(f"{what} …"):
        yield
    _console.print(f"{what}: done in {time.perf_counter() - start:.1f} s", markup=False, highlight=False)


__all__ = ["stage"]
