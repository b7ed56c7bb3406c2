"""li2019-patch jobs: one population run per (regime, data kind, seed), as tidy tables.

Each job trains every schedule of its regime for one seed, on patched images (``patch``); for
the controls, large and small LR on clean images (``clean``), and small LR alone on patched images
for as many epochs as give it the large schedule's Σηt (``same-time``, on the first
``claim.same_time_seeds`` seeds); with
:func:`lrlab.experiment.run` in the job's work folder; a job interrupted after a checkpoint
continues from it (:func:`lrlab.experiment.resume`). Tables of a job:

* ``records`` (member, step, metric, value): every probe of the run, as the trainer recorded it;
* ``members`` (member, name, seed, data_index, schedule, total_lr, diverged, diverged_step,
  stopped_step, decays): the run's members;
* ``epochs`` (regime, data, schedule, seed, epoch, metric, value, diverged): the records by
  schedule name and epoch (step // steps per epoch), what judge and report read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from ... import experiment
from ...config import RunConfig, to_yaml
from ...data.cifar import load_cifar10
from ...plan import Stage
from ...store import load_run
from ...train.population import CHECKPOINT
from ..protocol import Job, JobContext, Resources
from ..runconfig_plan import run_stages
from .config import Config, Settings, same_time_epochs, same_time_seeds

KINDS = ("patch", "clean", "same-time")
EPOCH_COLUMNS = ["regime", "data", "schedule", "seed", "epoch", "metric", "value", "diverged"]


def job_key(regime: str, kind: str, seed: int) -> str:
    return f"{regime}-{kind}-seed{seed}"


def _resources(cfg: Config, rc: RunConfig) -> Resources:
    """One core; host memory grows with the images held (float copies of the subset); a GPU
    when the jobs run on CUDA."""
    d = rc.data
    images = 10 * ((d.n_per_class or 5000) + (d.n_test_per_class or 1000))
    gpus = 1 if cfg.execution.device.startswith("cuda") else 0
    return Resources(cpus=1, gpus=gpus, memory_gb=round(1.0 + images * 3072 * 4 * 3 / 1e9, 1))


def jobs(cfg: Config) -> list[Job]:
    """Per regime and seed: the patched run, then (with ``claim.control``) the clean run; the
    equal-Σηt runs (the longest) first, so that they do not end the session alone."""
    kinds = KINDS[:2] if cfg.claim.control else KINDS[:1]
    control = [Job(job_key(regime, "same-time", seed), "same-time", {"regime": regime, "seed": seed},
                   _resources(cfg, rc))
               for regime, rc in cfg.regimes.items() for seed in same_time_seeds(cfg)]
    return control + [Job(job_key(regime, kind, seed), kind, {"regime": regime, "seed": seed},
                          _resources(cfg, rc))
                      for regime, rc in cfg.regimes.items() for seed in cfg.execution.seeds for kind in kinds]


def preflight(cfg: Config) -> None:
    """Locate (and if needed decode and cache) the image data before any worker starts; the
    workers find it again through ``data.root`` or ``$LRLAB_DATA`` (``--data-dir`` sets it)."""
    for rc in cfg.regimes.values():
        load_cifar10(rc.data.root, progress=True)


def run_config(rc: RunConfig, s: Settings, kind: str, seed: int, device: str = "cpu",
               threads: int = 1) -> RunConfig:
    """The run of one job: ``rc`` for one seed; for ``clean`` without the patch, the noise arm
    and the activation noise; for ``same-time`` the small schedule alone, for the epochs that give
    it the large schedule's Σηt, probed every ``same_time_eval_every`` epochs."""
    d = rc.model_dump()
    d["population"]["seeds"] = [seed]
    d["train"]["device"] = device
    d["train"]["threads"] = threads
    if kind == "patch":
        d["name"] = f"{rc.name}-seed{seed}"
    elif kind == "clean":
        d["name"] = f"{rc.name}-clean-seed{seed}"
        d["data"]["patch"] = None
        d["population"]["schedules"] = {k: v for k, v in d["population"]["schedules"].items()
                                        if k in (s.large, s.small)}
        d["population"]["activation_noise"] = {}
    elif kind == "same-time":
        d["name"] = f"{rc.name}-same-time-seed{seed}"
        d["population"]["schedules"] = {s.small: d["population"]["schedules"][s.small]}
        d["population"]["activation_noise"] = {}
        d["train"]["steps"] = same_time_epochs(rc, s)
        d["train"]["eval_every"] = s.same_time_eval_every
    else:
        raise ValueError(f"unknown data kind {kind!r}; expected one of {list(KINDS)}")
    return RunConfig.model_validate(d)


def job_stages(cfg: Config, job: Job) -> list[Stage]:
    """What a job trains (:mod:`lrlab.plan`): its run config (patched, clean or equal-Σηt) as one
    stage of its schedules for its seed, without reading the images."""
    rc = run_config(cfg.regimes[job.params["regime"]], cfg.claim, job.part, job.params["seed"],
                    cfg.execution.device, cfg.execution.threads)
    return run_stages(rc)


def _train(rc: RunConfig, rd: Path, progress: bool):
    """Train ``rc`` into ``rd``; continue from the checkpoint of an interrupted attempt of the
    same run config, start afresh otherwise."""
    same = (rd / "config.yaml").is_file() and (rd / "config.yaml").read_text() == to_yaml(rc)
    if same and (rd / CHECKPOINT).is_file():
        return experiment.resume(rd, progress=progress)
    if rd.exists():
        shutil.rmtree(rd)
    return experiment.run(rc, run_dir=rd, progress=progress)


def epoch_table(regime: str, kind: str, rd: Path, records: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """The records by schedule name, seed and epoch (long form)."""
    spe = int(load_run(rd).meta.get("steps_per_epoch") or 1)
    t = records.merge(members[["member", "name", "seed", "diverged"]], on="member")
    t = t.rename(columns={"name": "schedule"})
    t["epoch"] = t.step // spe
    t["data"] = kind
    t["regime"] = regime
    return t[EPOCH_COLUMNS].reset_index(drop=True)


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    regime, seed = job.params["regime"], job.params["seed"]
    rc = run_config(cfg.regimes[regime], cfg.claim, job.part, seed, ctx.device, ctx.threads)
    with tempfile.TemporaryDirectory(prefix="lrlab-li2019-patch-") as tmp:
        work = Path(ctx.workdir) if ctx.workdir is not None else Path(tmp)
        rd, res = _train(rc, work / "run", ctx.progress)
        epochs = epoch_table(regime, job.part, rd, res.records, res.members)
    return {"records": res.records.reset_index(drop=True), "members": res.members.reset_index(drop=True),
            "epochs": epochs}
