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

import datetime as _dt
import io
import json
import os
import platform
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

RUNS_ENV = "LRLAB_RUNS"


class StoreError(ValueError):
    """A stored file that is missing, unreadable or not what lrlab wrote; the message names it."""

STATUSES = ("running", "interrupted", "failed", "done")


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


def write_meta(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into meta.json (atomically) and return the result."""
    path = run_dir / "meta.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.update(fields)
    meta["updated"] = _now()
    write_atomic(path, json.dumps(meta, indent=2, default=str))
    return meta


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
        return self.meta.get("status", "unknown")


def resolve_run(run: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """A run given by path or by name under the runs root."""
    p = Path(run)
    if p.is_dir():
        return p
    q = runs_root(root) / str(run)
    if q.is_dir():
        return q
    raise FileNotFoundError(f"no run {str(run)!r} (looked at {p} and {q})")


def load_run(run: str | os.PathLike, root: str | os.PathLike | None = None) -> StoredRun:
    """Read a run directory; records and members are None while a run has not finished."""
    p = resolve_run(run, root)
    cfg = p / "config.yaml"
    if not cfg.is_file():
        raise FileNotFoundError(f"{p} is not an lrlab run (no config.yaml)")
    meta_p = p / "meta.json"
    meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}
    rec = p / "records.parquet"
    mem = p / "members.parquet"
    return StoredRun(
        path=p, config_yaml=cfg.read_text(), meta=meta,
        members=pd.read_parquet(mem) if mem.is_file() else None,
        records=pd.read_parquet(rec) if rec.is_file() else None,
    )


def list_runs(root: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per run directory under the root: name, status, created, members, wall time."""
    base = runs_root(root)
    rows = []
    if base.is_dir():
        for p in sorted(base.iterdir()):
            if not (p / "config.yaml").is_file():
                continue
            meta_p = p / "meta.json"
            meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}
            rows.append({"run": p.name, "config": meta.get("name"), "status": meta.get("status"),
                         "created": meta.get("created"), "members": meta.get("n_members"),
                         "steps": meta.get("steps"), "wall_time_s": meta.get("wall_time")})
    return pd.DataFrame(rows, columns=["run", "config", "status", "created", "members", "steps",
                                       "wall_time_s"])
