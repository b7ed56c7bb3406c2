"""li2019-toy jobs: per regime, the main population run (every schedule × seed) and the
small-LR control trained to the same Σ η_t; each is one ``lrlab.experiment`` run."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ... import experiment as runs
from ...config import RunConfig, to_yaml
from ...plan import Stage
from ...train import PopulationResult
from ...train.population import CHECKPOINT
from ..protocol import Job, JobContext, Resources
from ..runconfig_plan import run_stages
from .config import Config, control_config

RUNS = ("main", "control")
"""The two runs of a regime: ``main`` trains every schedule, ``control`` the same-Σηt small LR."""


def jobs(cfg: Config) -> list[Job]:
    """One job per (regime, run): ``<regime>-main`` and, with ``claim.control``, ``<regime>-control``."""
    parts = RUNS if cfg.claim.control else RUNS[:1]
    return [Job(f"{regime}-{part}", part, {"regime": regime}, Resources(cpus=1, memory_gb=1.0))
            for regime in cfg.regimes for part in parts]


def preflight(cfg: Config) -> None:
    """Checks that need no training (the control's length), run before anything starts."""
    if cfg.claim.control:
        for rc in cfg.regimes.values():
            control_config(rc, cfg.claim)


def run_config(cfg: Config, job: Job, ctx: JobContext) -> RunConfig:
    """The run config a job trains: its regime with the execution seeds, device and threads, or
    that regime's same-Σηt control."""
    data = cfg.regimes[job.params["regime"]].model_dump()
    data["population"]["seeds"] = list(cfg.execution.seeds)
    data["train"]["device"] = ctx.device
    data["train"]["threads"] = ctx.threads
    rc = RunConfig.model_validate(data)
    if job.part == "control":
        rc, _ = control_config(rc, cfg.claim)
    elif job.part != "main":
        raise ValueError(f"unknown li2019-toy part {job.part!r} (expected one of {list(RUNS)})")
    return rc


def job_inputs(cfg: Config, job: Job) -> dict:
    """What a job reads: exactly the run config it trains (its regime, or that regime's control)."""
    ex = cfg.execution
    return {"run": run_config(cfg, job, JobContext(ex.device, ex.threads)).model_dump(mode="json")} | (
        {"amp": True} if ex.amp else {})


def job_stages(cfg: Config, job: Job) -> list[Stage]:
    """What a job trains (:mod:`lrlab.plan`): its run config, the regime or its same-Σηt control,
    as one stage of every schedule × seed, without drawing the data."""
    ex = cfg.execution
    return run_stages(run_config(cfg, job, JobContext(ex.device, ex.threads)))


def train(rc: RunConfig, run_dir: Path, progress: bool = False) -> PopulationResult:
    """Train ``rc`` into ``run_dir``; continue from its checkpoint when an interrupted attempt
    of the same config left one there (the records are then those of an uninterrupted run)."""
    run_dir = Path(run_dir)
    cfg_file = run_dir / "config.yaml"
    if (run_dir / CHECKPOINT).is_file() and cfg_file.is_file() and cfg_file.read_text() == to_yaml(rc):
        _, res = runs.resume(run_dir, progress=progress)
        return res
    if run_dir.exists():  # nothing to continue (no checkpoint yet, or another config's): start over
        shutil.rmtree(run_dir)
    _, res = runs.run(rc, run_dir=run_dir, progress=progress)
    return res


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    """Train the job's run and return its ``records`` and ``members``, tagged with regime and run."""
    rc = run_config(cfg, job, ctx)
    if ctx.workdir is None:
        with tempfile.TemporaryDirectory(prefix="lrlab-li2019-toy-") as tmp:
            res = train(rc, Path(tmp) / "run", ctx.progress)
    else:
        res = train(rc, Path(ctx.workdir) / "run", ctx.progress)
    tag = {"regime": job.params["regime"], "run": job.part}
    return {name: df.assign(**tag)[[*tag, *df.columns]].reset_index(drop=True)
            for name, df in (("records", res.records), ("members", res.members))}
