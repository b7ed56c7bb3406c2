"""Run a config end to end: datasets, model, member grid, population trainer, run directory."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import store
from .config import Cifar10PatchConfig, RunConfig, TrainConfig, read_yaml, to_yaml, validate
from .data import Dataset, ImageStream, cifar10_split, make_dataset
from .export import Exporter, check_export
from .losses import check_loss
from .models import make_model
from .resources import check_memory, schedule_tables
from .threads import set_threads
from .train import Member, PopulationResult, Until, from_config, grid, train_population
from .train.population import CHECKPOINT, load_checkpoint


@dataclass
class Prepared:
    """Everything a run needs, built (and so validated) before any directory is created.

    ``train_cfg`` is ``cfg.train`` counted in steps (epochs converted once the training set
    size is known).
    """

    cfg: RunConfig
    train: list[Dataset] | ImageStream
    test: list[Dataset] | dict[str, Dataset]
    model: object
    members: list[Member]
    train_cfg: TrainConfig
    steps_per_epoch: int
    data_source: str | None = None


class ScheduleWarning(UserWarning):
    """A schedule that cannot do what it says within the run (a milestone past the last step)."""


def check_schedules(cfg: RunConfig, strict: bool = False) -> list[str]:
    """Milestones at or beyond ``train.steps`` never anneal: a :class:`ScheduleWarning` for each
    (a ValueError with ``strict``). Returns the messages."""
    unit = "epochs" if cfg.train.unit == "epoch" else "steps"
    msgs = [f"population.schedules.{name}: milestone {m} is not before the run's end "
            f"(train.steps = {cfg.train.steps} {unit}), so it never anneals"
            for name, sch in cfg.population.schedules.items()
            for m in getattr(sch, "milestones", ()) if m >= cfg.train.steps]
    if msgs and strict:
        raise ValueError(msgs[0] + (f" (and {len(msgs) - 1} more)" if len(msgs) > 1 else ""))
    for msg in msgs:
        warnings.warn(msg, ScheduleWarning, stacklevel=3)
    return msgs


def prepare(cfg: RunConfig, data_dir: str | os.PathLike | None = None,
            progress: bool = False, strict: bool = False) -> Prepared:
    """Build datasets, model and members; raises on anything inconsistent.

    Also applies ``train.threads`` (so the stored metadata records the count used) and checks
    that ``train.device`` exists on this machine. ``data_dir`` locates image data when the
    config does not (see :func:`lrlab.data.cifar10_split`). A milestone past the run's end is a
    :class:`ScheduleWarning`, or with ``strict`` an error.
    """
    check_schedules(cfg, strict)
    try:
        torch.empty(0, device=cfg.train.device)
    except (RuntimeError, AssertionError) as e:
        raise ValueError(f"train.device {cfg.train.device!r} is not available here ({e})") from None
    set_threads(cfg.train.threads)
    try:
        return _build(cfg, data_dir, progress)
    except MemoryError:
        raise ValueError(f"{_sizes(cfg)}: more memory than this machine has") from None
    except RuntimeError as e:
        if "alloc" not in str(e).lower():
            raise
        raise ValueError(f"{_sizes(cfg)}: more memory than this machine has ({str(e).splitlines()[0]})") from None


def _sizes(cfg: RunConfig) -> str:
    """The sizes that set a run's memory, as the config states them (for an out-of-memory error)."""
    d = {k: v for k, v in cfg.data.model_dump().items() if k.startswith(("n_", "d")) and isinstance(v, int)}
    m = {k: v for k, v in cfg.model.model_dump().items() if k in ("width", "depth")}
    return ("the data (" + ", ".join(f"data.{k} = {v:,}" for k, v in d.items()) + ") and model ("
            + ", ".join(f"model.{k} = {v:,}" for k, v in m.items()) + f") of {cfg.name!r} need")


def _param_bytes(model, seed: int) -> int | None:
    """Bytes of one member's parameters, from their shapes on the meta device (nothing allocated);
    None when the model cannot say."""
    try:
        with torch.device("meta"):
            params = model.init([seed])
        return sum(v.numel() * v.element_size() for v in params.values())
    except Exception:  # noqa: BLE001 - an estimate only: the real allocation still fails cleanly
        return None


def _build(cfg: RunConfig, data_dir: str | os.PathLike | None, progress: bool) -> Prepared:
    """Datasets, model and members of ``cfg`` (see :func:`prepare`)."""
    seeds = cfg.population.seeds
    source = None
    if isinstance(cfg.data, Cifar10PatchConfig):
        split = cifar10_split(cfg.data, data_dir, progress=progress)
        train: list[Dataset] | ImageStream = split.train
        test: list[Dataset] | dict[str, Dataset] = split.evals
        source = split.source
        first = split.train
    else:
        seeds_data = seeds if cfg.data_seed == "member" else [0]
        size = [getattr(cfg.data, k, None) for k in ("n_train", "n_test", "d")]
        if all(isinstance(x, int) for x in size):  # float32 inputs of every draw, before drawing them
            check_memory(4 * (size[0] + size[1]) * size[2] * len(seeds_data),
                         f"the data of {cfg.name!r} (data.n_train + data.n_test = {size[0] + size[1]:,} points of "
                         f"dimension data.d = {size[2]:,}, {len(seeds_data)} draw(s))")
        splits = [make_dataset(cfg.data, s) for s in seeds_data]
        train, test = [s.train for s in splits], [s.test for s in splits]
        first = splits[0].train
    check_loss(cfg.train.loss, first.task)
    out_dim = 1 if first.task == "binary" else first.num_classes
    noisy = bool(cfg.population.activation_noise)
    model = make_model(cfg.model, first.input_shape, out_dim, activation_noise=noisy)
    B = cfg.train.batch_size
    if B is not None and B > len(first):
        raise ValueError(f"train.batch_size {B} is larger than the training set ({len(first)} examples)")
    spe = len(first) // (B or len(first))
    train_cfg = cfg.train.in_steps(spe)
    k = spe if cfg.train.unit == "epoch" else 1
    schedules = {name: from_config(s, train_cfg.steps, k) for name, s in cfg.population.schedules.items()}
    noise = {name: Until(n.sigma, None if n.until is None else n.until * k)
             for name, n in cfg.population.activation_noise.items()}
    members = grid(schedules, seeds, data_per_seed=cfg.data_seed == "member", noise=noise)
    width = getattr(cfg.model, "width", None) or 1
    inputs = math.prod(first.input_shape)
    rough = 12 * width * max(width, inputs) * max(getattr(cfg.model, "depth", 1) or 1, 1) * len(members)
    per_member = _param_bytes(model, seeds[0]) if rough > 1e9 else None  # the exact count costs ~2 s once
    if per_member is not None:  # weights, momentum and gradients of every member
        check_memory(3 * per_member * len(members), f"the model of {cfg.name!r} ({cfg.model.kind}, "
                     + ", ".join(f"model.{k} = {v:,}" for k, v in cfg.model.model_dump().items()
                                 if k in ("width", "depth") and isinstance(v, int)) + f") with {len(members)} members")
    check_memory(schedule_tables(train_cfg.steps, len(members)),  # before any run folder exists
                 f"train.steps = {cfg.train.steps:,} ({train_cfg.steps:,} steps) with {len(members)} members")
    return Prepared(cfg, train, test, model, members, train_cfg, spe, source)


def _train(prep: Prepared, run_dir: Path | None, resume: bool,
           progress: bool | Callable[[int, int], None], exporter: Exporter | None = None) -> PopulationResult:
    live = None if exporter is None else (lambda res: exporter.write(res.records, res.members))
    res = train_population(prep.model, prep.members, prep.train, prep.test, prep.train_cfg,
                           run_dir=run_dir, resume=resume, progress=progress, on_checkpoint=live)
    if exporter is not None:
        exporter.write(res.records, res.members)
        exporter.close(res.members)
    return res


def _exporter(rd: Path, cfg: RunConfig, export: dict | None) -> Exporter | None:
    """A live exporter for the run, from ``export={"tensorboard": DIR, "mlflow": URI}``."""
    if not export:
        return None
    return Exporter(rd.name, **export, params={"config": cfg.name, "steps": cfg.train.steps,
                                               "unit": cfg.train.unit, "loss": cfg.train.loss})


def _finish(run_dir: Path, res: PopulationResult, started: float) -> None:
    store.write_parquet(run_dir / "records.parquet", res.records)
    store.write_parquet(run_dir / "members.parquet", res.members)
    store.write_meta(run_dir, status="done", mode=res.mode,
                     wall_time=round(time.perf_counter() - started, 3),
                     diverged=int(res.members.diverged.sum()))


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a stored run; ``run_dir`` names the run to resume."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(f"run {run_dir} interrupted")
        self.run_dir = Path(run_dir)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a scheduler) during a run: handled like Ctrl-C."""


@contextlib.contextmanager
def terminate_as_interrupt():
    """While training in the main thread, SIGTERM raises :class:`Terminated`, so the run is marked
    interrupted and keeps its last checkpoint, as after Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _heartbeat(run_dir: Path, every: float = store.HEARTBEAT_EVERY_S):
    """While the block runs, a background thread records every ``every`` seconds that the run is
    alive (what tells a live run owned by another host from a dead one)."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            with contextlib.suppress(store.StoreError, OSError):
                store.beat(run_dir)
            if stop.wait(every):
                return

    t = threading.Thread(target=loop, name="lrlab-heartbeat", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def _record(run_dir: Path, **fields) -> None:
    """Record an end state; when even that cannot be written (a full disk), the run's dead owner
    makes it read as ``stale`` on the next look."""
    with contextlib.suppress(store.StoreError, OSError):
        store.write_meta(run_dir, **fields)


def _guarded(run_dir: Path, fn: Callable[[], PopulationResult]) -> PopulationResult:
    """Train and store the final records; every way out records the run's status: ``done``,
    ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` with the error (including one while writing
    the final records)."""
    started = time.perf_counter()
    try:
        with terminate_as_interrupt(), _heartbeat(run_dir):
            res = fn()
            _finish(run_dir, res, started)
    except KeyboardInterrupt as e:
        _record(run_dir, status="interrupted")
        if isinstance(e, RunInterrupted):
            raise
        raise RunInterrupted(run_dir) from e
    except BaseException as e:
        _record(run_dir, status="failed", error=f"{type(e).__name__}: {e}")
        raise
    return res


def run(cfg: RunConfig, *, root: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None,
        progress: bool | Callable[[int, int], None] = False,
        data_dir: str | os.PathLike | None = None, strict: bool = False,
        export: dict | None = None) -> tuple[Path, PopulationResult]:
    """Train the population a config describes and store it; returns (run dir, result).

    The run directory is created only after the config, data and model were built, so bad
    input leaves nothing behind. Ctrl-C marks the run ``interrupted``; resume it with
    :func:`resume`. ``data_dir`` locates image data the config does not locate itself.
    ``strict`` turns warnings about the config (a milestone past the end) into errors.
    ``export={"tensorboard": DIR, "mlflow": URI}`` (either or both) logs the records live, at
    every checkpoint (see :mod:`lrlab.export`).
    """
    check_export(export)
    prep = prepare(cfg, data_dir, progress=bool(progress), strict=strict)
    if run_dir is None:
        rd = store.new_run_dir(root, cfg.name)
    else:
        rd = Path(run_dir)
        rd.mkdir(parents=True, exist_ok=False)
    with store.lock(rd):
        store.write_atomic(rd / "config.yaml", to_yaml(cfg))
        store.write_meta(rd, name=cfg.name, status="running", created=store._now(), owner=store.owner(),
                         code=store.code_version(), environment=store.environment(),
                         seeds=cfg.population.seeds, schedules=list(cfg.population.schedules),
                         n_members=len(prep.members), steps=prep.train_cfg.steps,
                         steps_per_epoch=prep.steps_per_epoch, data_source=prep.data_source,
                         device=cfg.train.device)
        return rd, _guarded(rd, lambda: _train(prep, rd, False, progress, _exporter(rd, cfg, export)))


def resume(run: str | os.PathLike, *, root: str | os.PathLike | None = None,
           progress: bool | Callable[[int, int], None] = False,
           data_dir: str | os.PathLike | None = None, restart: bool = False) -> tuple[Path, PopulationResult]:
    """Continue an interrupted, failed or killed (``stale``) run from its last checkpoint. A run
    without a usable checkpoint is an error unless ``restart`` is set, which trains it again from
    step 0; a run another process is writing is an error naming that process."""
    rd = store.resolve_run(run, root)
    cfg_path = rd / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{rd} is not an lrlab run (no config.yaml)")
    with store.lock(rd):
        cfg = validate(RunConfig, read_yaml(cfg_path), source=str(cfg_path))
        store.read_meta(rd / "meta.json")  # a damaged meta.json is named before anything runs
        ckpt = rd / CHECKPOINT
        again = f"`lrlab run --resume {rd.name} --restart` trains it again from step 0"
        if not restart:
            if not ckpt.is_file():
                raise store.StoreError(f"{ckpt}: missing, so there is nothing to resume from; {again}")
            try:
                load_checkpoint(ckpt)
            except ValueError as e:
                raise store.StoreError(f"{e}; {again}") from None
        prep = prepare(cfg, data_dir, progress=bool(progress))
        if restart:
            ckpt.unlink(missing_ok=True)
        store.write_meta(rd, status="running", resumed=store._now(), owner=store.owner(), error=None)
        return rd, _guarded(rd, lambda: _train(prep, rd, not restart, progress))
