"""What this machine can hold: checks made before work starts, so an impossible config stops with
a clear error instead of stalling, swapping or crashing half-way."""

from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes of memory available for new allocations (Linux ``MemAvailable``; else the total)."""
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no way to tell: do not block
        return 1 << 62


def _gb(n: float) -> str:
    return f"{n / 1e9:,.3g} GB"


def check_memory(nbytes: float, what: str) -> None:
    """A ValueError when ``what`` needs more than the memory available now."""
    have = available_memory()
    if nbytes > have:
        raise ValueError(f"{what} needs about {_gb(nbytes)}; this machine has {_gb(have)} available")


def schedule_tables(steps: int, members: int) -> int:
    """Bytes of the per-step learning-rate table (and, with activation noise, σ table) of a
    population: float64 per step and member."""
    return 2 * 8 * int(steps) * int(members)
