"""The ``lrlab`` command: run, verify, report, phase, list, show.

Bad input (missing config, unknown claim or key, wrong type, negative learning rate, zero
seeds, ...) ends with a one-line ``error: ...`` on stderr and exit code 2, before any run
directory is created.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from . import driver, experiment, maps, store
from .advice import lr_advice
from .check import check_store
from .claims import CLAIMS
from .config import ConfigError, load_config
from .exec.local import TaskError
from .exec.ray import ExecutorError
from .export import MissingExtra, export_run
from .phase import phase_diagram
from .plan import GPU_TFLOPS, fmt_hours
from .plan import summary as plan_summary
from .report import plot_phase_diagram
from .report.results import publish as publish_claim
from .report.results import readme_figures, update_readme
from .store import list_runs, load_run, write_atomic

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="lrlab: a laboratory for the large-learning-rate phase of training.")
console = Console()
err = Console(stderr=True)

SET_HELP = "Override a config key, e.g. --set train.steps=2000 (repeatable)."
DATA_HELP = ("CIFAR-10 location (a cifar-10-batches-py folder, an image-folder tree, a zip of one, or "
             "a folder holding one) for configs that do not set data.root; default $LRLAB_DATA, "
             "then ../shared/data/cifar10-jpeg.zip.")


def _fail(msg: str) -> None:
    err.print(f"error: {msg}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _guard(fn):
    """Turn expected input errors into 'error: ...' and exit code 2."""
    try:
        return fn()
    except (TaskError, ExecutorError) as e:
        err.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except (ConfigError, ValueError, FileNotFoundError, KeyError, MissingExtra) as e:
        msg = str(e).strip().strip("'\"") or type(e).__name__
        _fail(msg.splitlines()[0] if len(msg.splitlines()) == 1 else " ".join(msg.split()))


@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="YAML run config (see configs/)."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP),
    resume: Optional[str] = typer.Option(None, "--resume", help="Resume this run (name or path)."),
    restart: bool = typer.Option(False, "--restart", help="With --resume: train the run again from step 0 "
                                 "(when its checkpoint is missing or damaged)."),
    runs: Optional[Path] = typer.Option(None, "--runs", help="Runs folder (default $LRLAB_RUNS or ./runs)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ..."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    strict: bool = typer.Option(False, "--strict", help="Stop on a config warning (a schedule "
                                "milestone past the run's end) instead of printing it."),
    tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="Log the records live to "
                                               "TensorBoard under this folder (pip install 'lrlab[tensorboard]')."),
    mlflow: Optional[str] = typer.Option(None, "--mlflow", help="Log the records live to this MLflow "
                                         "tracking URI, e.g. sqlite:///mlflow.db (pip install 'lrlab[mlflow]')."),
) -> None:
    """Train the population a config describes and store it as a run directory."""
    def go():
        with warnings.catch_warnings():  # config warnings are printed once, before training
            warnings.simplefilter("ignore", experiment.ScheduleWarning)
            rd, res = start()
        console.print(f"run {rd} done: {len(res.members)} members, mode {res.mode}, "
                      f"{int(res.members.diverged.sum())} diverged, {res.wall_time:.1f} s")
        _summary(res.records, res.members)

    def start():
        if resume and (tensorboard or mlflow):
            raise ValueError("--tensorboard/--mlflow log a new run live; export a resumed run "
                             "afterwards with `lrlab export RUN`")
        if resume:
            if config is not None:
                raise ValueError("give either a config or --resume RUN, not both")
            return experiment.resume(resume, root=runs, progress=progress, data_dir=data_dir, restart=restart)
        else:
            if config is None:
                raise ValueError("missing config file (or --resume RUN)")
            if restart:
                raise ValueError("--restart goes with --resume RUN")
            over = list(set_) + ([f"train.device={device}"] if device else [])
            cfg = load_config(config, over)
            for msg in experiment.check_schedules(cfg, strict):
                err.print(f"warning: {msg}", markup=False, highlight=False)
            export = {k: v for k, v in (("tensorboard", tensorboard), ("mlflow", mlflow)) if v is not None}
            return experiment.run(cfg, root=runs, progress=progress, data_dir=data_dir, strict=strict,
                                  export=export or None)

    try:
        _guard(go)
    except experiment.RunInterrupted as e:
        err.print(f"interrupted: {_resume_hint(e.run_dir, runs)}", markup=False, highlight=False)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:  # before the run folder existed: nothing to resume
        err.print("interrupted before the run started: nothing was stored")
        raise typer.Exit(130) from None


def _resume_hint(run_dir: Path, runs: Optional[Path]) -> str:
    """The command that resumes this run: by name when the runs folder finds it, else by path."""
    if (store.runs_root(runs) / run_dir.name).resolve() == run_dir.resolve():
        target = run_dir.name + (f" --runs {runs}" if runs is not None else "")
    else:
        target = str(run_dir)
    return f"resume with `lrlab run --resume {target}`"


def _fmt(x: float, sign: bool = False) -> str:
    """Compact number: integers for large magnitudes, 3 significant digits otherwise."""
    s = f"{x:+.0f}" if sign else f"{x:.0f}"
    if abs(x) < 100 or x != x:
        s = f"{x:+.3g}" if sign else f"{x:.3g}"
    return s


def _summary(records, members) -> None:
    last = records[records.step == records.step.max()]
    have = set(last.metric)
    shown = (("batch.acc", "test.acc", "test_patched.acc", "patch_only.acc") if "batch.acc" in have
             else ("train.loss", "train.acc", "test.loss", "test.acc"))
    metrics = [m for m in shown if m in have]
    t = Table()
    for col in ("member", "name", "seed"):
        t.add_column(col, no_wrap=True, min_width=max([len(col)] + [len(str(v)) for v in members[col]]))
    for m in metrics:
        t.add_column(m, no_wrap=True, min_width=len(m))
    t.add_column("diverged")
    piv = last.pivot(index="member", columns="metric", values="value")
    for _, m in members.iterrows():
        row = piv.loc[m.member] if m.member in piv.index else None
        t.add_row(str(m.member), str(m["name"]), str(m.seed),
                  *[f"{row[k]:.4g}" if row is not None else "" for k in metrics],
                  "yes" if m.diverged else "")
    console.print(t)


def _verdict_table(vs) -> Table:
    t = Table(title="verdicts: " + ", ".join(sorted({v.claim for v in vs})))
    for col in ("claim", "regime", "id"):
        t.add_column(col, no_wrap=True)
    t.add_column("effect: mean [95% CI]", no_wrap=True)
    t.add_column("n")
    t.add_column("verdict", no_wrap=True)
    t.add_column("Holm", no_wrap=True)
    colour = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "": "white"}
    for v in vs:
        ci = v.interval
        n = str(ci.n) + (f"+{v.failed_seeds}✗" if v.failed_seeds else "")
        t.add_row(v.claim, v.regime, v.id, f"{_fmt(ci.mean, True)} [{_fmt(ci.low)}, {_fmt(ci.high)}]",
                  n, f"[{colour[v.status]}]{v.status}[/]", f"[{colour[v.status_holm]}]{v.status_holm}[/]")
    return t


def _log(m: str) -> None:
    console.print(m, markup=False, highlight=False)


@app.command()
def verify(
    claims: List[str] = typer.Argument(None, help="Claims to verify (default: all)."),
    scale: str = typer.Option("quick", "--scale", help="quick (CPU minutes) or paper (GPU)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds of every part of every claim: 0..N-1 "
                                        "(default: the config's)."),
    out: Path = typer.Option(Path("lrlab-out/verify"), "--out", help="Output folder; re-running with the same "
                             "folder skips the jobs already stored there."),
    set_: List[str] = typer.Option([], "--set", help=SET_HELP + " Keys start at the claim config's top."),
    device: Optional[str] = typer.Option(None, "--device", help="Device of every job: cpu, cuda, cuda:1, ..."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads per job (default: the config's, 1)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_HELP),
    workers: Optional[int] = typer.Option(None, "--workers",
                                          help="Local processes running jobs (default: one per core)."),
    executor: str = typer.Option("local", "--executor", help="Where jobs run: local (processes on this machine) "
                                 "or ray (Ray tasks; pip install 'lrlab[ray]')."),
    address: Optional[str] = typer.Option(None, "--address", help="With --executor ray: the cluster to join "
                                          "(auto, or HOST:PORT); default: start a local Ray instance."),
    retries: int = typer.Option(2, "--retries", help="With --executor ray: how often a job whose worker died "
                                "is run again."),
    map_: List[str] = typer.Option([], "--map", help="Verify one claim at every point of a grid: "
                                   "KEY=V1,V2,... (repeatable; the grid is their product)."),
    maps_: bool = typer.Option(False, "--maps", help="Run the verdict maps the claims' configs declare (maps:)."),
    plan_: bool = typer.Option(False, "--plan", help="Print the jobs, their resources and estimated cost "
                               "(FLOPs, measured step time, GPU-hours) without running them; the per-stage "
                               "table goes to OUT/plans/<claim>-<scale>.csv."),
    gpu_tflops: float = typer.Option(GPU_TFLOPS, "--gpu-tflops", help="With --plan and no GPU to time on: the "
                                     "sustained TFLOP/s one GPU is assumed to reach."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Train under bfloat16 autocast (mixed "
                                       "precision; probes stay float32). Default: the config's (off)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Run claims' jobs that are not stored yet, judge them, write verdicts.json, report.md and figures."""
    def go():
        names = list(claims or [])
        for n in names:
            driver.claim_config_path(n, scale)  # unknown claims and scales fail before anything runs
        if plan_:
            if map_ or maps_:
                raise ValueError("--plan plans one run of each claim; leave out --map/--maps")
            _print_plans(names or list(CLAIMS), scale, out, seeds, list(set_), device, threads, gpu_tflops)
            return
        if data_dir is not None:  # worker processes inherit it
            os.environ["LRLAB_DATA"] = str(data_dir)
        for flag, value in (("--workers", workers), ("--threads", threads)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}")
        if retries < 0:
            raise ValueError(f"--retries must be at least 0, got {retries}")
        run_opts = dict(seeds=seeds, device=device, threads=threads, workers=workers, amp=amp, executor=executor,
                        address=address, retries=retries, progress=progress, log=_log)
        if map_ or maps_:
            specs = _map_specs(names, scale, map_, maps_, set_)
            for name, spec in specs:
                maps.run_map(name, spec, scale, out, overrides=[s for s in set_ if not map_], **run_opts)
            maps.report_all(out, log=_log)
            console.print(f"wrote {len(specs)} verdict map(s) under {out / 'maps'} and {out / 'report.md'}")
            return
        vs = driver.verify(names, scale, out, overrides=list(set_), reporter=maps.report_all, **run_opts)
        console.print(_verdict_table(vs))
        console.print(f"wrote {out / 'verdicts.json'} and {out / 'report.md'}")

    try:
        _guard(go)
    except KeyboardInterrupt:
        err.print(f"interrupted: the finished jobs are stored in {out}; the same command continues from them")
        raise typer.Exit(130) from None


def _print_plans(names: list[str], scale: str, out: Path, seeds: int | None, overrides: list[str],
                 device: str | None, threads: int | None, gpu_tflops: float) -> None:
    """``verify --plan``: each claim's jobs with resources and cost, and the per-stage CSV."""
    grand = 0.0
    for name in names:
        table = driver.plan_claim(name, scale, seeds, overrides, device, threads, gpu_tflops, log=_log)
        path = out / "plans" / f"{name}-{scale}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, table.to_csv(index=False))
        per_job = plan_summary(table)
        where = table.measured_on.iloc[0] if len(table) else "?"
        t = Table(title=f"plan: {name} at {scale} scale ({len(per_job)} jobs)", caption=f"hours: measured on {where}")
        t.add_column("job", no_wrap=True)
        for col in ("CPU", "GPU", "mem GB", "stages", "steps", "TFLOP", "hours", "GPU-h"):
            t.add_column(col, no_wrap=True, justify="right")
        for r in per_job.itertuples():
            t.add_row(r.job, str(r.cpus), str(r.gpus), f"{r.memory_gb:g}", str(r.stages),
                      f"{'≤' if r.capped else ''}{r.steps:,}", _num(r.tflop), fmt_hours(r.device_hours),
                      f"{r.gpu_hours:.2g}")
        console.print(t)
        gpu_h = float(per_job.gpu_hours.sum())
        grand += gpu_h
        basis = ("measured on " + where) if str(where).startswith("cuda") else (
            f"FLOPs at an assumed {gpu_tflops:g} TFLOP/s per GPU (--gpu-tflops); "
            f"step times measured on {where}")
        hours = fmt_hours(float(per_job.device_hours.sum()))
        console.print(f"{name}: {_num(float(per_job.tflop.sum()))} TFLOP, {hours} "
                      f"on {where}, {gpu_h:.2g} GPU-hours ({basis}); training steps only, probes not counted; "
                      f"≤: a convergence control counted at its cap. Stages: {path}", markup=False)
    if len(names) > 1:
        console.print(f"all claims: {grand:.3g} GPU-hours", markup=False)


def _num(x: float) -> str:
    """A quantity in a narrow column: 3 significant digits, thousands separated."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _map_specs(names: list[str], scale: str, options: list[str], declared: bool,
               fixed: list[str]) -> list[tuple[str, maps.MapSpec]]:
    """(claim, map) pairs to run: the ad hoc map of ``--map`` (one claim), or the declared maps."""
    if options and declared:
        raise ValueError("give either --map KEY=V1,V2,... or --maps, not both")
    if options:
        if len(names) != 1:
            raise ValueError(f"--map needs exactly one claim, got {len(names)}: name it, e.g. "
                             f"`lrlab verify lu2023 --map claim.data.weak_norm=0.1,0.15`")
        return [(names[0], maps.adhoc_spec(options, fixed))]
    found = [(n, spec) for n in (names or list(CLAIMS)) for spec in maps.declared(n, scale).values()]
    if not found:
        raise ValueError(f"no verdict maps declared in the {scale} configs of {', '.join(names or list(CLAIMS))} "
                         f"(add a maps: section, or give --map KEY=V1,V2,...)")
    return found


@app.command()
def report(
    out: Path = typer.Argument(..., help="A folder written by `lrlab verify --out`."),
    claims: List[str] = typer.Option([], "--claim", help="Only these claims (default: every claim stored there)."),
) -> None:
    """Re-judge and redraw every claim and verdict map stored in OUT from its tables, without training."""
    def go():
        if not out.is_dir():
            raise FileNotFoundError(f"no verify output at {out}")
        with store.lock(out, "verify output"):
            vs = maps.report_all(out, claims or None, log=_log)
        if vs:
            console.print(_verdict_table(vs))
            console.print(f"wrote {out / 'verdicts.json'} and {out / 'report.md'}")
        else:
            console.print(f"wrote the verdict maps' tables and {out / 'report.md'}")

    _guard(go)


@app.command()
def publish(
    out: Path = typer.Argument(..., help="A folder written by `lrlab verify --out`."),
    claims: List[str] = typer.Option([], "--claim", help="Only these claims (default: every claim stored there)."),
    results: Path = typer.Option(Path("docs/results"), "--results", help="Where committed results live."),
    figures: Optional[Path] = typer.Option(Path("docs/figures"), "--figures", help="Where the README's figures live."),
    readme: Path = typer.Option(Path("README.md"), "--readme", help="README whose results blocks to regenerate."),
) -> None:
    """Copy verified claims into docs/results/ and regenerate the README's results blocks from them."""
    def go():
        names = list(claims) or driver.stored_claims(out)
        if not names and not maps.stored_maps(out):
            raise FileNotFoundError(f"no stored claims or verdict maps under {out}")
        shown = readme_figures(readme) if readme.is_file() else None
        for n in names:
            console.print(f"published {publish_claim(out, n, results, figures, shown)}")
        for mdir in maps.stored_maps(out):
            if not claims or mdir.parent.name in claims:
                console.print(f"published {maps.publish_map(mdir, results, figures)}")
        changed = update_readme(readme, results, names) + maps.update_map_blocks(readme, results)
        console.print(f"{readme}: regenerated {', '.join(changed) or 'nothing (already up to date)'}")

    _guard(go)


def _load_factory(spec: str):
    """'package.module:name' or 'path/to/file.py:name' → the callable it names."""
    if ":" not in spec:
        raise ValueError(f"model {spec!r} is not of the form module:factory or file.py:factory")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        mod_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:  # as `python -m` does: the
            sys.path.insert(0, os.getcwd())                      # current directory's modules
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ValueError(f"cannot import {where!r} for the model: {e}") from None
    if not hasattr(module, name):
        raise ValueError(f"{where} has no {name!r}")
    return getattr(module, name)


def _load_xy(path: Path):
    """x and y from a .pt file (a dict or a tuple) or an .npz file with arrays 'x' and 'y'."""
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise ValueError(f"{path} must hold arrays 'x' and 'y', has {sorted(z.files)}")
            return torch.from_numpy(z["x"]), torch.from_numpy(z["y"])
    if path.suffix == ".pt":
        obj = torch.load(path, weights_only=True)
        if isinstance(obj, dict) and "x" in obj and "y" in obj:
            return obj["x"], obj["y"]
        if isinstance(obj, (tuple, list)) and len(obj) == 2:
            return obj[0], obj[1]
        raise ValueError(f"{path} must hold a dict with 'x' and 'y' or a pair (x, y)")
    raise ValueError(f"data file {path} must be .pt or .npz")


@app.command()
def phase(
    model: str = typer.Argument(..., help="Model factory: package.module:make_net or file.py:make_net."),
    data: Path = typer.Option(..., "--data", help="Training set: .pt (dict/pair x, y) or .npz (x, y)."),
    test_data: Optional[Path] = typer.Option(
        None, "--test-data", help="Held-out set (same format): adds the final test accuracy per η."),
    loss: str = typer.Option("squared", "--loss", help="squared, logistic or cross_entropy."),
    steps: int = typer.Option(200, "--steps", help="Full-batch GD steps per learning rate."),
    points: int = typer.Option(16, "--points", help="Learning rates, geometric in η·λ0."),
    low: float = typer.Option(0.5, "--low", help="Smallest η·λ0."),
    high: float = typer.Option(16.0, "--high", help="Largest η·λ0."),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(Path("lrlab-out/phase"), "--out", help="Folder for phase.png and phase.csv."),
) -> None:
    """Phase diagram of any model: λ0, a sweep of η around 2/λ0, lazy/catapult/divergent, advice."""
    def go():
        if points < 1 or not 0 < low < high:
            raise ValueError(f"need --points >= 1 and 0 < --low < --high, got {points}, {low}, {high}")
        factory = _load_factory(model)
        x, y = _load_xy(data)
        test = _load_xy(test_data) if test_data is not None else None
        pdg = phase_diagram(factory, x, y, loss, scaled_etas=np.geomspace(low, high, points),
                            steps=steps, seed=seed, test=test, progress=True)
        out.mkdir(parents=True, exist_ok=True)
        tab = pdg.table()
        write_atomic(out / "phase.csv", tab.to_csv(index=False))
        png = out / "phase.png"
        plot_phase_diagram(pdg, png)
        t = Table(title=f"λ0 = {pdg.lam0:.4g} ({pdg.curvature})")
        for col in ("η", "η·λ0", "phase", "final loss", "η·λ_T") + (("test acc",) if test else ()):
            t.add_column(col, no_wrap=True)
        for _, r in tab.iterrows():
            t.add_row(f"{r.eta:.4g}", f"{r.eta_lam0:.3g}", r.phase, f"{r.final_loss:.3g}",
                      f"{r.eta_lam_final:.3g}", *((f"{r.test_acc:.3f}",) if test else ()))
        console.print(t)
        rec = (f"divergence edge (largest learning rate that converged under full-batch GD, one seed): "
               f"{pdg.divergence_edge:.4g}, a rate to stay below; lrlab.lr_advice finds one to train at"
               if pdg.divergence_edge else "no learning rate converged")
        if pdg.best_test_lr is not None:
            rec += f"; best final test accuracy at η = {pdg.best_test_lr:.4g}"
        console.print(f"{rec}; wrote {out / 'phase.csv'} and {png}")

    _guard(go)


def _rate(v: float | None) -> str:
    return "none" if v is None else f"{v:.4g}"


@app.command()
def advise(
    model: str = typer.Argument(..., help="Model factory: package.module:make_net or file.py:make_net."),
    data: Path = typer.Option(..., "--data", help="Training set: .pt (dict/pair x, y) or .npz (x, y)."),
    val_data: Optional[Path] = typer.Option(None, "--val-data", help="Validation set (same format): adds "
                                            "the best-generalising rate."),
    loss: str = typer.Option("cross_entropy", "--loss", help="squared, logistic or cross_entropy."),
    batch_size: int = typer.Option(32, "--batch-size", help="Your minibatch size (0 = full batch)."),
    momentum: float = typer.Option(0.0, "--momentum", help="Your SGD momentum."),
    seeds: int = typer.Option(5, "--seeds", help="Seeds per rate, trained side by side."),
    steps: int = typer.Option(500, "--steps", help="Training steps per run."),
    out: Path = typer.Option(Path("lrlab-out/advice"), "--out", help="Folder for advice.csv (one row per η, seed)."),
) -> None:
    """Learning-rate advice under your own training: divergence edge, a recommended rate, the best validation rate."""
    def go():
        factory = _load_factory(model)
        val = _load_xy(val_data) if val_data is not None else None
        adv = lr_advice(factory, _load_xy(data), loss, batch_size=batch_size or None, momentum=momentum,
                        seeds=seeds, steps=steps, val=val, progress=True)
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / "advice.csv", adv.runs.to_csv(index=False))
        t = Table(title=f"λ0 = {adv.lam0:.4g}")
        tab = adv.table()
        for col in ("η", "η·λ0", "converged", "diverged", "final loss") + (("val",) if "val" in tab else ()):
            t.add_column(col, no_wrap=True)
        for _, r in tab.iterrows():
            t.add_row(f"{r.eta:.4g}", f"{r.eta_lam0:.3g}", f"{r.converged}/{r.seeds}", f"{r.diverged}/{r.seeds}",
                      f"{r.final_loss:.3g}", *((f"{r.val:.3f}",) if "val" in tab else ()))
        console.print(t)
        console.print(f"divergence edge {_rate(adv.divergence_edge)}; recommended learning rate "
                      f"{_rate(adv.recommended_lr)}" + (f"; best validation rate {_rate(adv.best_val_lr)}"
                                                      if val is not None else ""), highlight=False)
        console.print(f"criterion: {adv.criterion}", markup=False, highlight=False)
        for note in adv.notes:
            err.print(f"note: {note}", markup=False, highlight=False)
        console.print(f"wrote {out / 'advice.csv'}", markup=False, highlight=False)

    _guard(go)


@app.command("list")
def list_(runs: Optional[Path] = typer.Option(None, "--runs", help="Runs folder.")) -> None:
    """List the runs in the runs folder."""
    df = list_runs(runs)
    if df.empty:
        console.print("no runs")
        return
    problems = df.dropna(subset=["problem"])
    # a run is named <config>-<time>: the config column only when some run's name does not say it
    named = all(r.startswith(c + "-") for r, c in zip(df.run, df.config) if isinstance(c, str))
    cols = {"run": list(df.run)}
    if not named:
        cols["config"] = [_cell(c) for c in df.config]
    cols["status"] = list(df.status)
    cols["members×steps"] = ["" if _missing(m) or _missing(n) else f"{int(m)}×{int(n)}"
                             for m, n in zip(df.members, df.steps)]
    cols["wall"] = ["" if _missing(w) else f"{float(w):.1f} s" for w in df.wall_time_s]
    cols["created"] = [_when(c) for c in df.created]
    # at a narrow terminal the least needed columns go first; every cell is shown whole
    for drop in ("created", "config", "wall", "members×steps"):
        width = sum(max(len(k), *map(len, v)) for k, v in cols.items()) + 2 * (len(cols) - 1)
        if width <= console.width:
            break
        cols.pop(drop, None)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for c in cols:
        t.add_column(c, no_wrap=True, justify="right" if c in ("members×steps", "wall") else "left")
    for row in zip(*cols.values()):
        t.add_row(*row)
    console.print(t)
    for _, r in problems.iterrows():  # below the table, unwrapped: the file to look at
        console.print(f"{r.run}: corrupt: {r.problem}", markup=False, highlight=False, soft_wrap=True)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _cell(v) -> str:
    return "" if _missing(v) else str(v)


def _when(created) -> str:
    """An ISO time stamp as 'YYYY-MM-DD HH:MM' (what a listing needs; meta.json has the rest)."""
    return "" if _missing(created) else str(created)[:16].replace("T", " ")


@app.command()
def show(run: str = typer.Argument(..., help="Run name or path."),
         runs: Optional[Path] = typer.Option(None, "--runs", help="Runs folder.")) -> None:
    """Summarise one run: status, config, final metrics per member."""
    def go():
        r = load_run(run, runs)
        m = r.meta
        console.print(f"[bold]{r.path}[/]  status={r.status}  members={m.get('n_members')}  "
                      f"steps={m.get('steps')}  mode={m.get('mode')}  wall={m.get('wall_time')} s")
        code = m.get("code", {})
        console.print(f"code: lrlab {code.get('lrlab')} commit {code.get('git_commit', '?')}"
                      + (" (dirty)" if code.get("git_dirty") else ""))
        if r.records is not None and r.members is not None:
            if r.status != "done":
                console.print(f"records up to step {int(r.records.step.max())} of {m.get('steps')} "
                              f"(the last checkpoint of a run that is {r.status})")
            _summary(r.records, r.members)
        elif r.status == "running":
            console.print("no records yet (the run has not reached its first checkpoint)")
        else:
            console.print(f"no records yet (run {r.status}: {_resume_hint(r.path, runs)})")

    _guard(go)


@app.command()
def export(run: str = typer.Argument(..., help="Run name or path."),
           tensorboard: Optional[Path] = typer.Option(None, "--tensorboard", help="TensorBoard log folder."),
           mlflow: Optional[str] = typer.Option(None, "--mlflow", help="MLflow tracking URI, e.g. "
                                                "sqlite:///mlflow.db (no server needed)."),
           experiment_name: str = typer.Option("lrlab", "--experiment", help="MLflow experiment name."),
           runs: Optional[Path] = typer.Option(None, "--runs", help="Runs folder.")) -> None:
    """Export a run's records (one TensorBoard run / MLflow child run per member)."""
    def go():
        if tensorboard is None and mlflow is None:
            raise ValueError("nothing to export to: give --tensorboard DIR and/or --mlflow URI")
        n = export_run(run, tensorboard=tensorboard, mlflow=mlflow, root=runs, experiment=experiment_name)
        where = " and ".join(x for x in (f"TensorBoard {tensorboard}" if tensorboard else "",
                                         f"MLflow {mlflow}" if mlflow else "") if x)
        console.print(f"exported {n:,} values of {run} to {where}", markup=False, highlight=False)

    _guard(go)


@app.command()
def check(runs: Optional[Path] = typer.Argument(None, help="Runs folder (default $LRLAB_RUNS or ./runs)."),
          ) -> None:
    """Read every file of every run and report damage or inconsistency (exit 1 if any); changes nothing."""
    def go():
        found = check_store(runs)
        bad = [c for c in found if not c.ok]
        for c in found:
            mark = "[green]ok[/]" if c.ok else "[red]problem[/]"
            console.print(f"{mark}  {c.path.name}  ({c.status})", highlight=False)
            for msg in c.problems:
                console.print(f"    {msg}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"{len(found)} run(s) checked, {len(bad)} with problems")
        if bad:
            raise typer.Exit(1)

    _guard(go)


def main() -> None:
    """Entry point of the ``lrlab`` console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
