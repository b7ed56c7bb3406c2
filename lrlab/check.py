"""``lrlab check``: read every file of every run in a store and report what is damaged or
inconsistent, without changing anything.

A run folder passes when its config.yaml is a valid run config, its meta.json is the JSON
object lrlab writes, its tables (when present) are readable with the expected columns, its
checkpoint (when present) loads without running code (``weights_only=True``) and holds the
run's member count, and the step counts agree: a finished run's records end at its last step,
an unfinished run's checkpoint lies before it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError, RunConfig, read_yaml, validate
from .store import CHECKPOINT_FILE, StoreError, effective_status, read_meta, read_tables, runs_root
from .train.population import load_checkpoint


@dataclass
class RunCheck:
    """What ``check_run`` found in one run folder: its status and every problem, each naming a file."""

    path: Path
    status: str = "unknown"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_run(path: Path) -> RunCheck:
    """Every file of one run folder, read and cross-checked (module docstring)."""
    path = Path(path)
    out = RunCheck(path)

    def bad(msg: str) -> None:
        out.problems.append(msg)

    try:
        meta = read_meta(path / "meta.json")
        out.status = effective_status(meta, path)
    except StoreError as e:
        meta = {}
        out.status = "corrupt"
        bad(str(e))
    try:
        validate(RunConfig, read_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
    except (ConfigError, StoreError) as e:
        bad(str(e))
    steps = meta.get("steps")
    n_members = meta.get("n_members")
    tables, problems = read_tables(path, meta)
    out.problems += problems
    rec = tables.get("records")
    finished = meta.get("status") == "done"  # records of a run in progress end at its checkpoint
    if (finished and rec is not None and isinstance(steps, int) and len(rec)
            and int(rec.step.max()) != steps):
        bad(f"{path / 'records.parquet'}: ends at step {int(rec.step.max())}, the run has {steps} steps")
    mem = tables.get("members")
    if mem is not None and isinstance(n_members, int) and len(mem) != n_members:
        bad(f"{path / 'members.parquet'}: {len(mem)} members, meta.json says {n_members}")
    ckpt = path / CHECKPOINT_FILE
    if ckpt.is_file():
        try:
            st = load_checkpoint(ckpt)
        except ValueError as e:
            bad(str(e))
        else:
            if isinstance(n_members, int) and st.get("n_members") != n_members:
                bad(f"{ckpt}: {st.get('n_members')} members, meta.json says {n_members}")
            if isinstance(steps, int) and not 0 <= int(st.get("step", -1)) <= steps:
                bad(f"{ckpt}: step {st.get('step')} outside the run's 0..{steps}")
            elif meta.get("status") == "done" and isinstance(steps, int) and int(st["step"]) != steps:
                bad(f"{ckpt}: at step {st['step']}, but the run is done at step {steps}")
    elif out.status in ("interrupted", "stale", "failed"):
        bad(f"{ckpt}: missing, so the run cannot resume (`lrlab run --resume {path.name} --restart` "
            "trains it again from step 0)")
    return out


def check_store(root: str | os.PathLike | None = None) -> list[RunCheck]:
    """``check_run`` for every run folder (a folder with a config.yaml) under the runs root."""
    base = runs_root(root)
    if not base.is_dir():
        raise FileNotFoundError(f"no runs folder at {base}")
    return [check_run(p) for p in sorted(base.iterdir()) if p.is_dir() and (p / "config.yaml").exists()]
