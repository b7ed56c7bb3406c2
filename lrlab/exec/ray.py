"""Run jobs as Ray tasks: on a local Ray instance, or on an existing cluster (``address``).

Each job is one task that declares the CPUs, GPUs and memory its :class:`Resources` state, so
Ray places it on a node that has them. A task whose worker dies (killed, node lost, out of
memory) is run again up to ``retries`` times; a task that raises is not retried (the same
code and seed would raise again) and is reported with its error while the others finish.
The task returns its tables to this process, which stores them: the store needs no shared
file system, only this machine's disk.
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

INSTALL = "pip install 'lrlab[ray]'"
LOCAL_OBJECT_STORE = 512 * 2**20  # bytes: a local instance holds only small tables in flight


class ExecutorError(RuntimeError):
    """The executor cannot run the jobs at all (Ray missing, unreachable, or too small)."""


def require_ray():
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise ExecutorError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None


@dataclass(frozen=True)
class RayJob:
    """One task: ``fn(*args)`` needing ``cpus``/``gpus``/``memory_gb``; ``workdir`` receives
    an ``attempts.log`` line per start (which worker ran it, how often it was retried)."""

    label: str
    args: tuple
    cpus: int = 1
    gpus: int = 0
    memory_gb: float = 1.0
    workdir: str | None = None


def _call(fn: Callable[..., Any], workdir: str | None, *args: Any) -> Any:
    """The task body: note this attempt (process id, host, time) in the work folder, then run."""
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        with open(Path(workdir) / "attempts.log", "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {os.uname().nodename} {time.time():.3f}\n")
    return fn(*args)


def attempts(workdir: str | os.PathLike) -> int:
    """How many times a job started in ``workdir`` (0 when it never did)."""
    p = Path(workdir) / "attempts.log"
    return len(p.read_text().splitlines()) if p.is_file() else 0


def _env() -> dict[str, str]:
    """The lrlab settings of this process that tasks must see (data, cache and config paths)."""
    return {k: v for k, v in os.environ.items() if k.startswith("LRLAB_")}


def _fmt(cpus: float, gpus: float, mem_bytes: float) -> str:
    return f"{cpus:g} CPU, {gpus:g} GPU, {mem_bytes / 2**30:.1f} GiB"


class RayExecutor:
    """Jobs as Ray tasks. ``address`` is ``None`` (start a local instance with ``num_cpus``),
    ``"auto"`` (the cluster this machine belongs to) or ``HOST:PORT``."""

    name = "ray"

    def __init__(self, address: str | None = None, retries: int = 2, num_cpus: int | None = None):
        if retries < 0:
            raise ValueError(f"retries must be at least 0, got {retries}")
        self.address, self.retries, self.num_cpus = address, retries, num_cpus
        self._started = False

    # -------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        ray = require_ray()
        if ray.is_initialized():
            return
        env = {"env_vars": _env()}
        try:
            if self.address is None:
                ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         object_store_memory=LOCAL_OBJECT_STORE, runtime_env=env, configure_logging=False)
            else:
                ray.init(address=self.address, log_to_driver=False, runtime_env=env, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = "a local Ray instance" if self.address is None else f"the Ray cluster at {self.address!r}"
            raise ExecutorError(f"could not start or join {where}: {' '.join(str(e).split())}") from None
        self._started = True

    def shutdown(self) -> None:
        if self._started:
            require_ray().shutdown()
            self._started = False

    def __enter__(self) -> RayExecutor:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def describe(self) -> str:
        ray = require_ray()
        res = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        return f"Ray ({nodes} node(s): {_fmt(res.get('CPU', 0), res.get('GPU', 0), res.get('memory', 0))})"

    # -------------------------------------------------------------------------------- placement
    def check_fits(self, jobs: Sequence[RayJob]) -> None:
        """Raise :class:`ExecutorError` naming every job no node of the cluster could ever run
        (Ray would otherwise leave it pending forever)."""
        ray = require_ray()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        bad = []
        for j in jobs:
            need = {"CPU": j.cpus, "GPU": j.gpus, "memory": j.memory_gb * 2**30}
            if not any(all(n.get(k, 0) >= v for k, v in need.items() if v) for n in nodes):
                bad.append(f"{j.label} needs {_fmt(j.cpus, j.gpus, need['memory'])}")
        if bad:
            have = "; ".join(_fmt(n.get("CPU", 0), n.get("GPU", 0), n.get("memory", 0)) for n in nodes) or "none"
            where = "the local Ray instance" if self.address is None else f"the Ray cluster at {self.address}"
            hint = (" (run with --device cpu, or join a cluster with GPU nodes: --address HOST:PORT)"
                    if any(j.gpus for j in jobs) else "")
            raise ExecutorError(f"{len(bad)} job(s) cannot be scheduled on {where}, whose nodes have {have}: "
                                f"{'; '.join(bad[:3])}{' …' if len(bad) > 3 else ''}{hint}")

    # -------------------------------------------------------------------------------- running
    def run(self, fn: Callable[..., Any], jobs: Sequence[RayJob], on_result: Callable[[int, Any], None],
            log: Callable[[str], None] = print, progress: bool = False) -> dict[str, str]:
        """Run ``fn(*job.args)`` for every job as a Ray task; hand each result to
        ``on_result(index, value)`` as it arrives. Returns the failures, label → error."""
        ray = require_ray()
        self.start()
        self.check_fits(jobs)
        remote = ray.remote(_call)
        refs = {}
        for i, j in enumerate(jobs):
            opts = {"num_cpus": j.cpus, "num_gpus": j.gpus, "max_retries": self.retries,
                    "retry_exceptions": False, "name": j.label}
            if j.memory_gb:
                opts["memory"] = int(j.memory_gb * 2**30)
            refs[remote.options(**opts).remote(fn, j.workdir, *j.args)] = i
        failures: dict[str, str] = {}
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                       disable=not progress or not jobs, transient=True)
        with bar:
            tid = bar.add_task("jobs (ray)", total=len(jobs))
            pending = list(refs)
            try:
                while pending:
                    ready, pending = ray.wait(pending, num_returns=1)
                    for ref in ready:
                        i = refs[ref]
                        label = jobs[i].label
                        tries = attempts(jobs[i].workdir) if jobs[i].workdir else 1
                        again = f" (after {tries - 1} retr{'y' if tries == 2 else 'ies'})" if tries > 1 else ""
                        try:
                            value = ray.get(ref)
                        except ray.exceptions.RayTaskError as e:
                            cause = e.cause if getattr(e, "cause", None) is not None else e
                            failures[label] = f"{type(cause).__name__}: {cause}"
                            log(f"  {label} FAILED: {failures[label]}")
                        except ray.exceptions.RayError as e:  # worker lost more often than retries allow
                            failures[label] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                            log(f"  {label} FAILED{again}: {failures[label]}")
                        else:
                            on_result(i, value)
                            log(f"  {label} done{again}")
                        bar.advance(tid)
            except BaseException:  # Ctrl-C or SIGTERM: cancel what has not finished
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
        return failures
