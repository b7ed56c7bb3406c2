"""Run several independent configs, in this process or in parallel local processes.

Each worker process trains one config at a time with the config's own thread count and
stores it as usual; the parent reads the finished run back from its directory. Results do not
depend on the number of workers: every run is a pure function of its config.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Sequence

from .. import experiment, store
from ..config import RunConfig, validate
from ..train import PopulationResult


def _worker(cfg_data: dict, root: str) -> str:
    cfg = validate(RunConfig, cfg_data, source="worker config")
    rd, _ = experiment.run(cfg, root=root, progress=False)
    return str(rd)


def _read(rd: Path) -> PopulationResult:
    r = store.load_run(rd)
    if r.records is None or r.members is None:
        raise RuntimeError(f"run {rd} finished without records")
    return PopulationResult(r.records, r.members, {}, r.meta.get("mode", "?"),
                            float(r.meta.get("wall_time", 0.0)))


def default_workers(n_jobs: int) -> int:
    """One worker per core, at most one per job."""
    return max(1, min(n_jobs, os.cpu_count() or 1))


def run_many(cfgs: Sequence[RunConfig], root: str | os.PathLike, workers: int = 1,
             progress: bool = False, log: Callable[[str], None] = print) -> list[tuple[Path, PopulationResult]]:
    """Train every config (in order of the list for the results) and return (run dir, result).

    ``workers=1`` trains in this process (with progress bars); more workers use spawned local
    processes, each training one config at a time. Results come back without parameters.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(cfgs) == 1:
        return [experiment.run(c, root=root, progress=progress) for c in cfgs]
    out: list[tuple[Path, PopulationResult] | None] = [None] * len(cfgs)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futs = {pool.submit(_worker, c.model_dump(mode="json"), str(root)): i for i, c in enumerate(cfgs)}
        try:
            for f in as_completed(futs):
                i = futs[f]
                rd = Path(f.result())
                out[i] = (rd, _read(rd))
                log(f"  finished {cfgs[i].name} ({out[i][1].wall_time:.0f} s)")
        except BaseException:
            for f in futs:
                f.cancel()
            raise
    return [o for o in out if o is not None]


def run_jobs(fn: Callable[..., object], jobs: Sequence[tuple], workers: int,
             log: Callable[[str], None] = print, label: Callable[[tuple], str] = str) -> list:
    """``fn(*job, threads)`` for every job, results in job order: in this process (threads None)
    when ``workers`` is 1, else in spawned local processes with one torch thread each. ``fn``
    must be a module-level function of picklable arguments; results do not depend on
    ``workers``. ``label(job)`` names a job in the log."""
    import time

    results: list = [None] * len(jobs)
    if workers <= 1:
        for i, job in enumerate(jobs):
            t0 = time.perf_counter()
            results[i] = fn(*job, None)
            log(f"  {label(job)} done ({time.perf_counter() - t0:.0f} s)")
        return results
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futs = {pool.submit(fn, *job, 1): i for i, job in enumerate(jobs)}
        for f in as_completed(futs):
            i = futs[f]
            results[i] = f.result()
            log(f"  {label(jobs[i])} done")
    return results
