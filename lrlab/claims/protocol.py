"""The claim protocol: what every paper's claim package provides, so one driver runs them all.

A claim is a package ``lrlab/claims/<paper>/`` whose ``__init__`` exposes::

    NAME       the claim's name on the command line, e.g. "lu2023"
    PAPER      the paper, as the report cites it
    Config     the pydantic settings schema of configs/<NAME>/<scale>.yaml; it has an
               ``execution`` section (:class:`Execution`) and the claim's own sections
    preflight(cfg)                  checks that need no training (raise ValueError)
    jobs(cfg) -> list[Job]          independent units of work
    run_job(cfg, job, ctx) -> Tables  one job's measurements as tidy tables
    judge(cfg, tables) -> list[Verdict]  pure: verdicts from the stored tables, no training
    report(cfg, tables, verdicts, figdir, rel) -> str  figures + the Markdown section

Optionally ``JOBS_VERSION`` (an int): bump it when the jobs' code changes what they store, so
stored jobs of the same config run again; and ``job_inputs(cfg, job) -> dict``, the part of the
config one job reads (default: all of it but the judge-only ``verdicts``); and
``job_stages(cfg, job) -> list[lrlab.plan.Stage]``, the training a job does, which
``lrlab verify --plan`` prices without running it. A stored job is reused
while its inputs are unchanged, so changing one part's settings re-runs that part only, and the
points of a verdict map share the jobs their knobs do not touch.

The driver (:mod:`lrlab.driver`) runs the jobs that are not stored yet, stores each job's
tables under ``OUT/<claim>/jobs/<job key>/``, concatenates every table over the jobs (adding
a ``job`` column) and hands them to ``judge`` and ``report``. Because judge and report see
only stored tables, ``lrlab report OUT`` re-judges and redraws without training.
See docs/adding-a-claim.md for a worked example.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import pandas as pd
from pydantic import AfterValidator, Field

from ..config import Device, Strict, Threads
from ..stats import Verdict

Tables = Mapping[str, pd.DataFrame]
"""Named tidy tables: one row per (job, seed, η, step, metric, …) with plain columns."""


class Execution(Strict):
    """Where and how a claim's jobs run; ``--seeds``, ``--device``, ``--threads`` and
    ``--workers`` set these for every part of every claim."""

    seeds: list[int] = Field(min_length=1, description="seeds of every part (a part may run a "
                             "stated prefix of them, see its config)")
    device: Device = Field("cpu", description="torch device of every job: cpu, cuda, cuda:1, mps")
    threads: Threads = Field(1, description="torch threads per job (1: jobs run side by side)")
    workers: int | None = Field(None, gt=0, description="local processes running jobs (None: one per core)")
    amp: bool = Field(False, description="train under bfloat16 autocast (lrlab.train.precision); probes stay "
                      "float32. Off, it is left out of job fingerprints, so stored results stay valid")

    def seeds_for(self, limit: int | None) -> list[int]:
        """The first ``limit`` seeds (all when None): parts that cost more run fewer seeds."""
        return list(self.seeds if limit is None else self.seeds[:limit])


def _two_seeds(ex: Execution) -> Execution:
    if len(ex.seeds) < 2:
        raise ValueError(f"execution.seeds needs at least 2 seeds for an interval, got {ex.seeds}")
    return ex


IntervalExecution = Annotated[Execution, AfterValidator(_two_seeds)]
"""An execution section with at least two seeds (every verdict is an interval over seeds)."""


def regimes_from_execution(data: Any, fields: Sequence[tuple[tuple[str, str], str]]) -> Any:
    """For claims whose parts are run configs (``regimes:``): raw config ``data`` with each
    regime's ``(section, key)`` filled from ``execution.<field>``. A regime that states another
    value is an error, so seeds, device and threads have one source."""
    if not isinstance(data, dict):
        return data
    ex, regimes = data.get("execution"), data.get("regimes")
    if not isinstance(ex, dict) or not isinstance(regimes, dict) or "seeds" not in ex:
        return data  # the field validation reports what is missing
    data = {**data, "regimes": copy.deepcopy(regimes)}
    for rname, rc in data["regimes"].items():
        if not isinstance(rc, dict):
            continue
        for (section, key), name in fields:
            value = ex.get(name, Execution.model_fields[name].default)
            sec = rc.setdefault(section, {})
            if not isinstance(sec, dict):
                continue
            if key in sec and sec[key] != value:
                raise ValueError(f"regimes.{rname}.{section}.{key} = {sec[key]!r} differs from "
                                 f"execution.{name}: a regime must not differ from execution.{name} "
                                 f"{value!r} (leave it out of the regime)")
            sec[key] = value
    return data


@dataclass(frozen=True)
class Resources:
    """What one job needs, so an executor can place it (local processes use ``cpus`` only)."""

    cpus: int = 1
    gpus: int = 0
    memory_gb: float = 1.0


@dataclass(frozen=True)
class Job:
    """One independent unit of work: ``part`` names what it runs, ``params`` (JSON values,
    typically the seed) pick its slice of the claim config. ``key`` names it in the store."""

    key: str
    part: str
    params: dict[str, Any] = field(default_factory=dict)
    resources: Resources = Resources()

    def __post_init__(self) -> None:
        if not self.key or any(c in self.key for c in "/\\") or self.key.startswith("."):
            raise ValueError(f"job key {self.key!r} must be a plain, non-empty file name")


@dataclass
class JobContext:
    """What the driver hands a running job: the execution settings and a work folder that
    survives interruptions (for checkpoints)."""

    device: str = "cpu"
    threads: int = 1
    workdir: Path | None = None
    progress: bool = False
    log: Callable[[str], None] = print


@runtime_checkable
class Claim(Protocol):
    """The module-level interface of a claim package (a module satisfies it structurally)."""

    NAME: str
    PAPER: str
    Config: type

    def preflight(self, cfg: Any) -> None: ...

    def jobs(self, cfg: Any) -> list[Job]: ...

    def run_job(self, cfg: Any, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]: ...

    def judge(self, cfg: Any, tables: Tables) -> list[Verdict]: ...

    def report(self, cfg: Any, tables: Tables, verdicts: list[Verdict], figdir: Path, rel: Path) -> str: ...


def config_inputs(cfg: Any, keep_claim: Sequence[str] | None = None, drop_claim: Sequence[str] = (),
                  **extra: Any) -> dict[str, Any]:
    """A ``job_inputs`` slice: the device and threads, the ``claim`` section (only the keys in
    ``keep_claim`` when given, less those in ``drop_claim``) and ``extra``. Seeds are left out:
    a job reads its own seed from its params, not the list of every seed."""
    data = cfg.model_dump(mode="json")
    claim = data["claim"]
    if keep_claim is not None:
        claim = {k: claim[k] for k in keep_claim}
    ex = data["execution"]
    execution = {"device": ex["device"], "threads": ex["threads"]} | ({"amp": True} if ex.get("amp") else {})
    return {"execution": execution,
            "claim": {k: v for k, v in claim.items() if k not in drop_claim}, **extra}


def default_workers(n_jobs: int) -> int:
    """One worker per core, at most one per job."""
    return max(1, min(n_jobs, os.cpu_count() or 1))


def seed_job(part: str, seed: int, **resources: Any) -> Job:
    """The common job shape: one part for one seed, keyed ``<part>-seed<seed>``."""
    return Job(f"{part}-seed{seed}", part, {"seed": seed}, Resources(**resources))
