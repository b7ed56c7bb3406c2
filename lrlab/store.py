"""Run directories: resolved config, records (Parquet), members, metadata — written atomically.

A run directory holds::

    config.yaml       the resolved config that produced it
    meta.json         status, code version, package versions, seeds, wall time, mode
    members.parquet   one row per member
    records.parquet   one row per (member, step, metric)
    checkpoint.pt     the trainer's last checkpoint (for ``lrlab run --resume``)

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written file under its real name.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata as _md
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ._version import __version__

try:  # POSIX advisory locks; without them (Windows) a second writer is not detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

RUNS_ENV = "LRLAB_RUNS"


class StoreError(ValueError):
    """A stored file that is missing, unreadable or not what lrlab wrote; the message names it."""

STATUSES = ("running", "interrupted", "failed", "done", "stale", "corrupt")
LOCK = ".lock"
CHECKPOINT_FILE = "checkpoint.pt"  # written by the trainer (lrlab.train.population.CHECKPOINT)
RECORDS_FILE = "records.parquet"  # one row per (member, step, metric); rewritten at every checkpoint
MEMBERS_FILE = "members.parquet"  # one row per member
HEARTBEAT = "heartbeat"  # the time a running run last proved alive (for owners on other hosts)
HEARTBEAT_EVERY_S = 60.0
STALE_AFTER_S = 600.0  # an owner on another host silent this long is taken for gone


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """Where runs live: ``root``, else ``$LRLAB_RUNS``, else ``./runs``."""
    return Path(root or os.environ.get(RUNS_ENV) or "runs")


def _file_mode() -> int:
    """The mode a new file gets under the process's umask (what ``open`` would give it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` durably: a new uniquely named temporary file in the same folder
    (created with ``O_EXCL``, so it never follows or reuses a planted path), flushed to disk, given
    the mode the user's umask asks for, then renamed over ``path``. On any failure the temporary
    file is removed and ``path`` keeps its previous content; a full disk or a read-only folder is a
    :class:`StoreError` naming the file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise StoreError(f"{path}: cannot write ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StoreError(f"{path}: cannot write ({e.strerror or e}); the previous file, if any, is "
                             "unchanged") from None
        raise


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    write_atomic(path, buf.getvalue())


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """A stored table, or :class:`StoreError` naming the file when it is missing or corrupt."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise StoreError(f"{path}: stored table is missing") from None
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise StoreError(f"{path}: stored table is unreadable ({type(e).__name__}: {e})") from None


def code_version() -> dict[str, Any]:
    """lrlab's version and, in a git checkout, the commit and whether the tree was dirty."""
    info: dict[str, Any] = {"lrlab": __version__}
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if sha.returncode == 0:
            info["git_commit"] = sha.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=here, capture_output=True, text=True, timeout=5)
            info["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def environment() -> dict[str, Any]:
    """Python, platform and the versions of the packages lrlab uses."""
    pkgs = {}
    for name in ("torch", "numpy", "pandas", "pyarrow", "pydantic", "matplotlib", "scipy"):
        try:
            pkgs[name] = _md.version(name)
        except _md.PackageNotFoundError:
            pkgs[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": pkgs, "torch_threads": torch.get_num_threads()}


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _now()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_dir(root: str | os.PathLike | None, name: str) -> Path:
    """Create a fresh, uniquely named run directory under ``root``."""
    base = runs_root(root)
    base.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
    for i in range(1000):
        p = base / (f"{safe}-{stamp}" + (f"-{i}" if i else ""))
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a unique run directory under {base}")  # pragma: no cover


RECORD_COLUMNS = ("member", "step", "metric", "value")


def read_meta(path: Path) -> dict[str, Any]:
    """A run's meta.json ({} when absent), or :class:`StoreError` naming the file when it is not
    the UTF-8 JSON object lrlab writes."""
    if not path.is_file():
        return {}
    text = read_text(path)
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise StoreError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: expected a JSON object, found a {type(meta).__name__}")
    return meta


def read_text(path: Path) -> str:
    """A stored text file, or :class:`StoreError` naming it when it is unreadable or not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise StoreError(f"{path}: not UTF-8 text ({e})") from None
    except OSError as e:
        raise StoreError(f"{path}: unreadable ({e.strerror or e})") from None


def write_meta(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into meta.json (atomically) and return the result."""
    path = run_dir / "meta.json"
    meta = read_meta(path)
    meta.update(fields)
    meta["updated"] = _now()
    write_atomic(path, json.dumps(meta, indent=2, default=str))
    return meta


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), to tell a live owner from
    a later process that reuses its pid; None where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def owner() -> dict[str, Any]:
    """Who is writing a run: host, pid, the process's start mark and the wall-clock start."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "process_start": _process_start(os.getpid()),
            "since": _now()}


def owner_alive(o: Any) -> bool | None:
    """Whether the process that owns a run still lives: None when that cannot be told here (no
    owner recorded, or another host)."""
    if not isinstance(o, dict) or o.get("host") != socket.gethostname() or not isinstance(o.get("pid"), int):
        return None
    try:
        os.kill(o["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    mark = o.get("process_start")
    return mark is None or _process_start(o["pid"]) in (None, mark)


def beat(run_dir: Path) -> None:
    """Record that the run in ``run_dir`` is alive now (its own small file, never meta.json, so a
    heartbeat can never overwrite a status)."""
    write_atomic(Path(run_dir) / HEARTBEAT, _now())


def silent_for(run_dir: Path) -> float | None:
    """Seconds since the run's last heartbeat; None when it has none (or it is unreadable)."""
    try:
        last = _dt.datetime.fromisoformat((Path(run_dir) / HEARTBEAT).read_text().strip())
    except (OSError, ValueError):
        return None
    return (_dt.datetime.now(_dt.timezone.utc) - last).total_seconds()


def effective_status(meta: dict[str, Any], run_dir: Path | None = None) -> str:
    """The recorded status, except that a ``running`` run whose owner is gone is ``stale``: it was
    killed (or its machine lost power) before it could record anything; resume it. An owner on
    this host is gone when its process is; one on another host when its heartbeat (``run_dir``'s)
    has been silent for :data:`STALE_AFTER_S`."""
    status = meta.get("status", "unknown")
    if status != "running":
        return status
    alive = owner_alive(meta.get("owner"))
    if alive is None and run_dir is not None:
        quiet = silent_for(run_dir)
        alive = None if quiet is None else quiet < STALE_AFTER_S
    return "stale" if alive is False else status


@contextlib.contextmanager
def lock(folder: Path, what: str = "run"):
    """Hold an exclusive lock on ``folder`` (a run, or a verify output) for the block; a second
    writer stops at once with a :class:`StoreError` naming the holder. The lock dies with its
    process, so a killed writer never leaves it behind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), _file_mode())
    except OSError as e:
        raise StoreError(f"{path}: cannot open the lock ({e.strerror or e})") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
                except ValueError:
                    holder = {}
                raise StoreError(f"{folder}: this {what} is in use by pid {holder.get('pid', '?')} on "
                                 f"{holder.get('host', '?')} since {holder.get('since', '?')}; wait for it to "
                                 "finish or stop that process") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(owner()).encode(), 0)
        yield
    finally:
        os.close(fd)


@dataclass
class StoredRun:
    """A run directory read back: config text, metadata, members and records."""

    path: Path
    config_yaml: str
    meta: dict[str, Any]
    members: pd.DataFrame | None
    records: pd.DataFrame | None

    @property
    def status(self) -> str:
        """The recorded status, or ``stale`` for a ``running`` run whose owner is gone."""
        return effective_status(self.meta, self.path)


def resolve_run(run: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A run given by path or by name under the runs root."""
    p = Path(run)
    if p.is_dir():
        return p
    q = runs_root(root) / str(run)
    if q.is_dir():
        return q
    raise FileNotFoundError(f"no run {str(run)!r} (looked at {p} and {q})")


def read_tables(run_dir: Path, meta: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """A run's ``records`` and ``members`` tables (those present and readable) and every problem
    found reading them, each naming its file: unreadable, wrong columns, or missing from a run
    meta.json calls done."""
    tables: dict[str, pd.DataFrame] = {}
    problems: list[str] = []
    for name, needed in (("records", list(RECORD_COLUMNS)), ("members", ["member"])):
        f = Path(run_dir) / f"{name}.parquet"
        if not f.is_file():
            if meta.get("status") == "done":
                problems.append(f"{f}: missing, though meta.json says the run is done (the run folder was "
                                "altered; rerun it)")
            continue
        try:
            df = read_parquet(f)
        except StoreError as e:
            problems.append(str(e))
            continue
        exact = name == "records"  # records have exactly these columns; members at least these
        if (list(df.columns) != needed) if exact else not set(needed) <= set(df.columns):
            problems.append(f"{f}: columns {list(df.columns)}, expected {needed}")
            continue
        tables[name] = df
    return tables, problems


def load_run(run: str | os.PathLike, root: str | os.PathLike | None = None) -> StoredRun:
    """Read a run directory; records and members are those of the last checkpoint while a run has
    not finished (None before its first checkpoint). A file
    that is damaged, of the wrong shape, or missing from a finished run is a :class:`StoreError`
    naming it."""
    p = resolve_run(run, root)
    cfg = p / "config.yaml"
    if not cfg.is_file():
        raise FileNotFoundError(f"{p} is not an lrlab run (no config.yaml)")
    meta = read_meta(p / "meta.json")
    tables, problems = read_tables(p, meta)
    if problems:
        raise StoreError(problems[0])
    records, members = tables.get("records"), tables.get("members")
    return StoredRun(path=p, config_yaml=read_text(cfg), meta=meta, members=members, records=records)


LIST_COLUMNS = ["run", "config", "status", "created", "members", "steps", "wall_time_s", "problem"]


def list_runs(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run directory under the root: name, status, created, members, wall time. A run
    whose meta.json is damaged is listed as ``corrupt`` with the problem named; the others are
    unaffected."""
    base = runs_root(root)
    rows = []
    if base.is_dir():
        for p in sorted(base.iterdir()):
            if not (p / "config.yaml").is_file():
                continue
            try:
                meta, problem = read_meta(p / "meta.json"), None
            except StoreError as e:
                meta, problem = {"status": "corrupt"}, str(e)
            rows.append({"run": p.name, "config": meta.get("name"), "status": effective_status(meta, p),
                         "created": meta.get("created"), "members": meta.get("n_members"),
                         "steps": meta.get("steps"), "wall_time_s": meta.get("wall_time"), "problem": problem})
    return pd.DataFrame(rows, columns=LIST_COLUMNS)
