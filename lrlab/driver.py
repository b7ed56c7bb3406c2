"""One driver for every claim: jobs → executor → stored tables → judge → report.

``verify`` runs the jobs of each claim that are not stored yet (a job is stored once its
``done.json`` is written, after all its tables), then judges and reports from the stored
tables. ``report`` only re-judges and redraws from what is stored. The output folder::

    OUT/verdicts.json, OUT/report.md          every claim stored under OUT
    OUT/<claim>/config.yaml                   the resolved claim config the jobs ran with
    OUT/<claim>/claim.json                    scale and the command-line options
    OUT/<claim>/jobs/<job>/<table>.parquet    each job's tidy tables, and done.json
    OUT/<claim>/work/<job>/                   a job's scratch space (checkpoints) while it runs
    OUT/<claim>/verdicts.json, figures/       the claim's verdicts and figures

A job whose ``done.json`` holds a different fingerprint (the config changed) runs again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch
import yaml

from . import claims as _claims
from . import experiment, store
from .claims.protocol import Job, JobContext, Resources, default_workers
from .config import ConfigError, apply_overrides, config_dir, read_yaml, to_yaml, validate
from .exec.local import TaskError, run_tasks
from .exec.ray import RayExecutor, RayJob, attempts, require_ray
from .plan import GPU_TFLOPS
from .plan import plan as plan_jobs
from .report import verdict_bars, write_report
from .report.html import write_html_report
from .stats import Verdict, holm, verdict_from_dict
from .store import StoreError, code_version, now, read_parquet, write_atomic, write_parquet
from .threads import set_threads
from .train.precision import mixed_precision

SCALES = ("quick", "paper")
EXECUTORS = ("local", "ray")
Log = Callable[[str], None]


def _claim(name: str):
    if name not in _claims.CLAIMS:
        raise ConfigError(f"unknown claim {name!r}; known claims: {', '.join(_claims.CLAIMS)}")
    return _claims.CLAIMS[name]


def claim_config_path(name: str, scale: str) -> Path:
    """configs/<claim>/<scale>.yaml (``$LRLAB_CONFIGS`` replaces configs/)."""
    _claim(name)
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; expected one of {list(SCALES)}")
    return config_dir() / name / f"{scale}.yaml"


def _set_every(node: Any, key: str, value: Any) -> None:
    """Set ``key`` to ``value`` in every mapping of a nested config that has it."""
    if isinstance(node, dict):
        for k in list(node):
            if k == key:
                node[k] = value
            else:
                _set_every(node[k], key, value)
    elif isinstance(node, list):
        for item in node:
            _set_every(item, key, value)


def load_claim_config(name: str, scale: str, seeds: int | None = None, overrides: Sequence[str] = (),
                      device: str | None = None, threads: int | None = None, workers: int | None = None,
                      amp: bool | None = None):
    """A claim's typed config for ``scale`` with the execution options applied to every part:
    ``seeds`` replaces every seed list by 0..N−1 (and lifts every part's ``seed_limit``),
    ``device``/``threads``/``workers``/``amp`` set the ``execution`` section all jobs read."""
    path = claim_config_path(name, scale)
    raw = read_yaml(path)
    raw.pop("maps", None)  # the verdict maps this config declares (lrlab.maps), not a setting of any job
    ex = raw.setdefault("execution", {})
    if not isinstance(ex, dict):
        raise ConfigError(f"{path}: execution must be a section")
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        _set_every(raw, "seeds", list(range(seeds)))
        _set_every(raw, "seed_limit", None)
        ex["seeds"] = list(range(seeds))
    for key, value in (("device", device), ("threads", threads), ("workers", workers), ("amp", amp)):
        if value is not None:
            ex[key] = value
    raw = apply_overrides(raw, list(overrides))
    return validate(_claim(name).Config, raw, source=str(path))


# ------------------------------------------------------------------------------------ the store
def claim_dir(out: Path, name: str) -> Path:
    return Path(out) / name


def _claim_of(cfg: Any):
    """The claim package whose Config ``cfg`` is (None for a config of no claim)."""
    return next((m for m in _claims.CLAIMS.values() if isinstance(cfg, m.Config)), None)


def job_inputs(cfg: Any, job: Job) -> dict[str, Any]:
    """What ``job`` reads of ``cfg``: the claim's ``job_inputs`` when it declares one, else the
    whole config but the worker count and the judge-only ``verdicts`` section."""
    mod = _claim_of(cfg)
    if mod is not None and hasattr(mod, "job_inputs"):
        return mod.job_inputs(cfg, job)
    data = cfg.model_dump(mode="json")
    ex = data.get("execution", {})
    ex.pop("workers", None)
    if not ex.get("amp"):
        ex.pop("amp", None)  # off is the default: configs stored before the option keep their fingerprint
    data.pop("verdicts", None)
    return data


def fingerprint(cfg: Any, job: Job, jobs_version: int | None = None) -> str:
    """What makes a stored job reusable: what it reads of the config (:func:`job_inputs`), the
    job, and the claim's ``JOBS_VERSION`` when it declares one (bumped when its jobs' tables
    change). Thresholds only the judge reads are left out, so changing one re-judges without
    training; so are the settings of a claim's other parts when it declares ``job_inputs``."""
    ident = {"config": job_inputs(cfg, job), "key": job.key, "part": job.part, "params": job.params}
    if jobs_version is not None:
        ident["jobs_version"] = jobs_version
    text = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jobs_version(name: str) -> int | None:
    return getattr(_claim(name), "JOBS_VERSION", None)


def job_dir(out: Path, name: str, job: Job) -> Path:
    return claim_dir(out, name) / "jobs" / job.key


def is_done(out: Path, name: str, cfg: Any, job: Job) -> bool:
    """Whether ``job`` is stored with this config's fingerprint."""
    p = job_dir(out, name, job) / "done.json"
    if not p.is_file():
        return False
    try:
        return json.loads(p.read_text()).get("fingerprint") == fingerprint(cfg, job, _jobs_version(name))
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def store_job(out: Path, name: str, cfg: Any, job: Job, tables: dict[str, pd.DataFrame],
              wall: float, attempts: int = 1) -> None:
    """Write a job's tables into a fresh folder, then swap it in: a crash leaves either the old
    job or none, never a mixture."""
    final = job_dir(out, name, job)
    tmp = final.parent / f".{job.key}.incoming"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for tname, df in tables.items():
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"{name} job {job.key}: table {tname!r} is a {type(df).__name__}, not a DataFrame")
        write_parquet(tmp / f"{tname}.parquet", df)
    write_atomic(tmp / "done.json", json.dumps({
        "fingerprint": fingerprint(cfg, job, _jobs_version(name)), "job": job.key, "part": job.part,
        "params": job.params,
        "tables": sorted(tables), "wall_time_s": round(wall, 3), "attempts": attempts, "code": code_version()},
        indent=2, default=str))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def load_tables(out: Path, name: str, cfg: Any, jobs: Sequence[Job]) -> dict[str, pd.DataFrame]:
    """Every stored table of ``jobs``, concatenated over jobs with a ``job`` column first."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for job in jobs:
        d = job_dir(out, name, job)
        if not is_done(out, name, cfg, job):
            raise StoreError(f"{d}: job {job.key} of {name} is not stored for this config "
                             f"(run `lrlab verify {name} --out {out}` to compute it)")
        done = json.loads((d / "done.json").read_text())
        for tname in done["tables"]:
            df = read_parquet(d / f"{tname}.parquet")
            df.insert(0, "job", job.key)
            parts.setdefault(tname, []).append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


def _job_walls(out: Path, name: str, jobs: Sequence[Job]) -> float:
    return sum(float(json.loads((job_dir(out, name, j) / "done.json").read_text()).get("wall_time_s", 0))
               for j in jobs)


# ------------------------------------------------------------------------------------ running jobs
def compute_job(name: str, cfg_data: dict, job: Job, workdir: str, progress: bool = False) -> tuple[dict, float]:
    """Run one job (in this process, a local worker or a Ray task): its tables and wall time."""
    mod = _claim(name)
    cfg = mod.Config.model_validate(cfg_data)
    ex = cfg.execution
    Path(workdir).mkdir(parents=True, exist_ok=True)
    before = set_threads(ex.threads)
    t0 = time.perf_counter()
    try:
        with mixed_precision(ex.amp):
            tables = mod.run_job(cfg, job, JobContext(ex.device, ex.threads, Path(workdir), progress))
    finally:
        set_threads(before)
    return tables, time.perf_counter() - t0


def work_dir(out: Path, name: str, job: Job) -> Path:
    """A job's scratch folder (checkpoints) while it runs; removed once its tables are stored."""
    return claim_dir(Path(out), name) / "work" / job.key


def run_one(name: str, cfg_data: dict, job: Job, out: str, progress: bool = False) -> float:
    """Run one job and store its tables (in this process or a worker); returns its wall time."""
    work = work_dir(Path(out), name, job)
    tables, wall = compute_job(name, cfg_data, job, str(work), progress)
    store_job(Path(out), name, _claim(name).Config.model_validate(cfg_data), job, tables, wall)
    shutil.rmtree(work, ignore_errors=True)
    return wall


def _run_indexed(name: str, cfg_data: dict, job: Job, out: str, _index: int) -> float:
    """:func:`run_one` in a local worker (the index only names the task in logs)."""
    return run_one(name, cfg_data, job, out)


def job_resources(cfg: Any, job: Job) -> Resources:
    """What ``job`` asks of an executor: its declared resources, at least ``execution.threads``
    CPUs, and a GPU when the claim runs on ``cuda``."""
    r, ex = job.resources, cfg.execution
    gpus = max(r.gpus, 1 if str(ex.device).startswith("cuda") else 0)
    return Resources(cpus=max(r.cpus, ex.threads), gpus=gpus, memory_gb=r.memory_gb)


def plan_claim(name: str, scale: str, seeds: int | None = None, overrides: Sequence[str] = (),
               device: str | None = None, threads: int | None = None, gpu_tflops: float = GPU_TFLOPS,
               log: Log | None = None) -> pd.DataFrame:
    """The plan of a claim's jobs (:mod:`lrlab.plan`) without running them: one row per (job,
    stage) with the resources the executor would ask for, FLOPs, measured step time and hours."""
    mod = _claim(name)
    if not hasattr(mod, "job_stages"):
        raise ConfigError(f"claim {name!r} declares no job_stages(cfg, job): it cannot be planned")
    cfg = load_claim_config(name, scale, seeds, overrides, device, threads)
    jobs = [dataclasses.replace(j, resources=job_resources(cfg, j)) for j in mod.jobs(cfg)]
    set_threads(cfg.execution.threads)
    table = plan_jobs(jobs, lambda j: mod.job_stages(cfg, j), str(cfg.execution.device), gpu_tflops, log=log)
    table.insert(0, "claim", name)
    return table


Item = tuple[str, Any, Job, Path]
"""One job to run: (claim name, its config, the job, the output folder that stores it)."""


def check_local_device(cfg: Any, executor: str) -> None:
    """With the local executor the jobs run here, so their device must exist here (a Ray
    cluster's workers may have GPUs the driver machine lacks: they are not checked)."""
    dev = str(cfg.execution.device)
    if executor != "local":
        return
    if dev.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(dev.split(":", 1)[1]) if ":" in dev else 0
        if index >= count:
            raise ConfigError(f"device {dev!r}: this machine has {count} CUDA device(s) (torch "
                              f"{torch.__version__}); use --device cpu, or --executor ray with a GPU cluster")
    elif dev == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps': this machine has no Apple MPS device; use --device cpu")


def make_executor(executor: str = "local", address: str | None = None, retries: int = 2,
                  num_cpus: int | None = None) -> RayExecutor | None:
    """The executor ``--executor`` names: None for local processes, else a :class:`RayExecutor`."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; expected one of {list(EXECUTORS)}")
    if executor == "local":
        if address is not None:
            raise ConfigError(f"--address {address} needs --executor ray")
        return None
    require_ray()
    return RayExecutor(address, retries=retries, num_cpus=num_cpus)


def run_jobs(items: Sequence[Item], workers: int, executor: RayExecutor | None = None, log: Log = print,
             progress: bool = False, labels: Sequence[str] | None = None) -> None:
    """Run and store ``items``: in ``workers`` local processes, or as Ray tasks. Every job that
    finishes is stored whatever the others do; :class:`TaskError` then names every failure
    (by ``labels``, default "<claim> <job>")."""
    names = list(labels) if labels is not None else [f"{n} {j.key}" for n, _, j, _ in items]
    if executor is None:
        tasks = [(n, c.model_dump(mode="json"), j, str(o), i) for i, (n, c, j, o) in enumerate(items)]
        run_tasks(_run_indexed, tasks, workers, log=log, label=lambda t: names[t[4]], progress=progress)
        return
    rjobs = []
    for (n, c, j, o), name in zip(items, names):
        r = job_resources(c, j)
        work = str(work_dir(Path(o).resolve(), n, j))
        rjobs.append(RayJob(name, (n, c.model_dump(mode="json"), j, work), r.cpus, r.gpus, r.memory_gb, work))

    def stored(i: int, value: tuple[dict, float]) -> None:
        n, c, j, o = items[i]
        store_job(Path(o), n, c, j, value[0], value[1], attempts=max(1, attempts(rjobs[i].workdir)))
        shutil.rmtree(work_dir(Path(o), n, j), ignore_errors=True)

    failures = executor.run(compute_job, rjobs, stored, log=log, progress=progress)
    if failures:
        raise TaskError(failures)


def _write_claim_files(out: Path, name: str, cfg: Any, scale: str, options: dict) -> None:
    d = claim_dir(out, name)
    d.mkdir(parents=True, exist_ok=True)
    write_atomic(d / "config.yaml", to_yaml(cfg))
    sessions = []
    if (d / "claim.json").is_file():
        try:
            sessions = json.loads((d / "claim.json").read_text()).get("sessions", [])
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            sessions = []
    write_atomic(d / "claim.json", json.dumps({"claim": name, "scale": scale, **options, "sessions": sessions},
                                              indent=2))


def _log_session(out: Path, name: str, jobs_run: int, workers: int, wall: float) -> None:
    """Append one verify invocation's wall time to claim.json (how long the jobs took to run)."""
    p = claim_dir(out, name) / "claim.json"
    meta = json.loads(p.read_text())
    meta.setdefault("sessions", []).append({"at": now(), "jobs_run": jobs_run, "workers": workers,
                                            "wall_s": round(wall, 1)})
    write_atomic(p, json.dumps(meta, indent=2))


def verify(names: Sequence[str], scale: str, out: Path, seeds: int | None = None,
           overrides: Sequence[str] = (), progress: bool = False, log: Log = print,
           workers: int | None = None, device: str | None = None,
           threads: int | None = None, executor: str = "local", address: str | None = None,
           retries: int = 2, reporter: Callable[..., list[Verdict]] | None = None,
           amp: bool | None = None) -> list[Verdict]:
    """Run the named claims (default: all) into ``out``: jobs not stored yet, on local processes
    or Ray (``executor``), then judge and report every claim stored under ``out`` (with
    ``reporter``, default :func:`report`; the CLI's also reports stored verdict maps). Returns the
    verdicts of the named claims."""
    names = list(names) or list(_claims.CLAIMS)
    cfgs = {n: load_claim_config(n, scale, seeds, overrides, device, threads, workers, amp) for n in names}
    for n in names:  # everything is validated before anything runs
        check_local_device(cfgs[n], executor)
        _claim(n).preflight(cfgs[n])
    ex = make_executor(executor, address, retries)
    out = Path(out)
    # one writer per output folder; SIGTERM ends the run like Ctrl-C (the workers are stopped)
    with store.lock(out, "verify output"), experiment.terminate_as_interrupt():
        try:
            options = {"seeds": seeds, "overrides": list(overrides), "device": device, "threads": threads,
                       **({"amp": amp} if amp is not None else {})}
            for n in names:
                mod, cfg = _claim(n), cfgs[n]
                _write_claim_files(out, n, cfg, scale, options)
                jobs = mod.jobs(cfg)
                todo = [j for j in jobs if not is_done(out, n, cfg, j)]
                nw = cfg.execution.workers or default_workers(len(todo))
                where = f"{nw} worker(s)" if ex is None else ex.describe() if todo else "Ray"
                log(f"[{n}] {len(jobs)} jobs, {len(jobs) - len(todo)} already stored; running {len(todo)} "
                    f"on {where}, device {cfg.execution.device}, {cfg.execution.threads} thread(s) each")
                t0 = time.perf_counter()
                try:
                    run_jobs([(n, cfg, j, out) for j in todo], nw, ex, log=log, progress=progress)
                finally:
                    if todo:
                        _log_session(out, n, len(todo), nw if ex is None else 0, time.perf_counter() - t0)
        finally:
            if ex is not None:
                ex.shutdown()
        judged = (reporter or report)(out, log=log)
        return [v for v in judged if v.claim in names]


# ------------------------------------------------------------------------------------ judging
def stored_claims(out: Path) -> list[str]:
    """The claims stored under ``out``, in the registry's order."""
    return [n for n in _claims.CLAIMS if (claim_dir(out, n) / "config.yaml").is_file()]


def _stored_config(out: Path, name: str):
    path = claim_dir(out, name) / "config.yaml"
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise StoreError(f"{path}: not a readable config ({type(e).__name__})") from None
    return validate(_claim(name).Config, raw, source=str(path))


def judge_claim(out: Path, name: str) -> tuple[Any, list[Verdict], str, float, str]:
    """Re-judge one stored claim: (config, verdicts, report section, job wall time, scale)."""
    mod, cfg = _claim(name), _stored_config(out, name)
    jobs = mod.jobs(cfg)
    tables = load_tables(out, name, cfg, jobs)
    verdicts = holm(mod.judge(cfg, tables))
    figdir = claim_dir(out, name) / "figures"
    figdir.mkdir(exist_ok=True)
    section = mod.report(cfg, tables, verdicts, figdir, Path(name) / "figures")
    rows = [(f"{v.regime}: {v.id}", v.interval.mean, v.interval.low, v.interval.high, v.status)
            for v in verdicts if v.kind == "accuracy"]
    if rows:
        bars = verdict_bars(rows, figdir / f"{name}-effects.png", title=f"{name}: accuracy effects")
        section += f"\n![accuracy effects]({Path(name) / 'figures' / bars.name})\n"
    meta = json.loads((claim_dir(out, name) / "claim.json").read_text())
    return cfg, verdicts, section, _job_walls(out, name, jobs), meta.get("scale", "?")


def _dump(verdicts: Sequence[Verdict], **head: Any) -> str:
    return json.dumps({**head, "verdicts": [v.to_dict() for v in verdicts]}, indent=2)


def report(out: Path, names: Sequence[str] | None = None, log: Log = print,
           extra_sections: Sequence[str] = ()) -> list[Verdict]:
    """Judge and report every claim stored under ``out`` (or ``names``) from its stored tables:
    writes ``<claim>/verdicts.json``, the figures, and OUT/verdicts.json, OUT/report.md and
    OUT/report.html, the same report as one self-contained page (``extra_sections``, e.g. verdict
    maps, close the report)."""
    out = Path(out)
    names = list(names) if names else stored_claims(out)
    if not names and not extra_sections:
        raise StoreError(f"{out}: no stored claims (run `lrlab verify --out {out}` first)")
    verdicts: list[Verdict] = []
    sections, scales, wall = [], set(), 0.0
    for n in names:
        _, vs, section, w, scale = judge_claim(out, n)
        write_atomic(claim_dir(out, n) / "verdicts.json", _dump(vs, claim=n, scale=scale,
                                                               job_wall_time_s=round(w, 1)))
        verdicts += vs
        sections.append(section)
        scales.add(scale)
        wall += w
    if extra_sections:
        sections += ["## Verdict maps", "", *extra_sections]
    scale = "/".join(sorted(scales))
    if names:
        write_atomic(out / "verdicts.json", _dump(verdicts, scale=scale, claims=names,
                                                  job_wall_time_s=round(wall, 1)))
        intro = (f"Claims {', '.join(f'`{n}`' for n in names)} at scale `{scale}`; the jobs took "
                 f"{wall:.0f} s of compute (summed over jobs). Regenerate with `lrlab report {out}`.")
    else:
        intro = f"Verdict maps only (no claim verified at its own settings). Regenerate with `lrlab report {out}`."
    write_report(out / "report.md", "lrlab verification report", intro, verdicts, sections)
    _, missing = write_html_report(out / "report.md")
    for src in missing:
        log(f"report.html: figure {src} is missing, shown as such")
    log(f"judged {len(verdicts)} verdicts of {len(names)} claim(s) from the tables under {out} "
        f"(report.md, report.html)")
    return verdicts


def read_verdicts(path: Path) -> list[Verdict]:
    """Verdicts from a verdicts.json written by :func:`report`."""
    return [verdict_from_dict(d) for d in json.loads(Path(path).read_text())["verdicts"]]
