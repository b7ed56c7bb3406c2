"""Run independent tasks in this process or in spawned local processes.

Every task is a module-level function of picklable arguments, and its result does not depend
on where it ran. Each task stores its own results (the claims driver's jobs write their tables
before they return), so an interrupted batch keeps every task that finished.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import experiment, store
from ..config import RunConfig, validate
from ..train import PopulationResult


class TaskError(RuntimeError):
    """Some tasks raised; the others finished. ``failures`` maps each label to its error."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        super().__init__(f"{len(failures)} job(s) failed: " + "; ".join(f"{k}: {v}" for k, v in failures.items()))


def _progress(total: int, enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled or total == 0, transient=True)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> None:
    """Worker initializer: on Linux, ask the kernel to send this worker SIGTERM when the process that
    started it (pid ``parent``, passed from the parent itself) dies, however it dies (kill -9
    included), so no worker trains on as an orphan. A job in a worker meets SIGTERM as an interrupt
    (its run is marked interrupted and keeps its checkpoint).

    ``parent`` must come from the parent: a spawned worker imports for seconds before this runs,
    and if the parent died meanwhile, ``os.getppid()`` here would already name the reaper."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the parent's own cleanup remains
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (running jobs included) and reap them."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=10)
        if proc.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
            proc.kill()


def run_tasks(fn: Callable[..., Any], tasks: Sequence[tuple], workers: int, *,
              log: Callable[[str], None] = print, label: Callable[[tuple], str] = str,
              progress: bool = False) -> list[Any]:
    """``fn(*task)`` for every task, results in task order: in this process when ``workers``
    is 1, else in that many spawned processes. A task that raises is logged and the others run
    on; :class:`TaskError` then names every failure."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    results: list[Any] = [None] * len(tasks)
    failures: dict[str, str] = {}
    with _progress(len(tasks), progress) as bar:
        tid = bar.add_task("jobs", total=len(tasks))

        def done(i: int, value: Any = None, error: BaseException | None = None, wall: float | None = None):
            name = label(tasks[i])
            if error is not None:
                failures[name] = f"{type(error).__name__}: {error}"
                log(f"  {name} FAILED: {type(error).__name__}: {error}")
            else:
                results[i] = value
                log(f"  {name} done" + (f" ({wall:.0f} s)" if wall is not None else ""))
            bar.advance(tid)

        if workers == 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                t0 = time.perf_counter()
                try:
                    value = fn(*task)
                except Exception as e:  # noqa: BLE001 - recorded, the batch goes on
                    done(i, error=e)
                    continue
                done(i, value, wall=time.perf_counter() - t0)
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                     initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
                futs = {pool.submit(fn, *task): i for i, task in enumerate(tasks)}
                try:
                    for f in as_completed(futs):
                        err = f.exception()
                        done(futs[f], None if err else f.result(), err)
                except BaseException:  # Ctrl-C, SIGTERM (as an interrupt), a crash: no worker outlives us
                    # no Future.cancel() first: the pool's manager thread fails every pending future
                    # once its workers are gone, and on a cancelled one it raises (and prints) an
                    # InvalidStateError
                    _stop_workers(pool)
                    raise
    if failures:
        raise TaskError(failures)
    return results


# ------------------------------------------------------------------------------------ run configs
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


def run_many(cfgs: Sequence[RunConfig], root: str | os.PathLike, workers: int = 1,
             progress: bool = False, log: Callable[[str], None] = print) -> list[tuple[Path, PopulationResult]]:
    """Train every run config and return (run dir, result) in the order given; ``workers=1``
    trains in this process (with progress bars), more use spawned processes."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(cfgs) == 1:
        return [experiment.run(c, root=root, progress=progress) for c in cfgs]
    dirs = run_tasks(_worker, [(c.model_dump(mode="json"), str(root)) for c in cfgs], workers, log=log,
                     label=lambda t: str(t[0]["name"]))
    return [(Path(d), _read(Path(d))) for d in dirs]
