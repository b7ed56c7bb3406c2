"""Export a run's records to TensorBoard or MLflow, after the run or live while it trains.

Every member becomes one TensorBoard run (``DIR/<run>/<schedule>-seed<k>``, so the members of a
population overlay in one chart per metric) or one MLflow child run under a parent run named
after the lrlab run (params: schedule, seed, total Σηt; metrics: every record). Values that are
NaN (a probe not taken at that step, a diverged member) are left out. An :class:`Exporter` keeps
the last step it wrote, so feeding it the records of each checkpoint writes each value once.

TensorBoard and MLflow are optional extras: ``pip install 'lrlab[tensorboard]'`` or
``pip install 'lrlab[mlflow]'``. MLflow 3 refuses its old file store by default; a local
``sqlite:///path/mlflow.db`` store needs no server.
"""

from __future__ import annotations

import importlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .store import load_run
from .train.population import member_label


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message says how to install it."""


def _require(module: str, extra: str) -> Any:
    """Import an optional dependency, or stop with the one line that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f"{extra} export needs {extra}, which is not installed "
                           f"(pip install 'lrlab[{extra}]')") from None


def check_export(export: dict | None) -> None:
    """Check an ``export`` mapping before a run starts: known keys, installed extras."""
    if not export:
        return
    unknown = sorted(set(export) - {"tensorboard", "mlflow"})
    if unknown:
        raise ValueError(f"export takes 'tensorboard' and 'mlflow', got {unknown}")
    if export.get("tensorboard") is not None:
        _require("torch.utils.tensorboard", "tensorboard")
    if export.get("mlflow") is not None:
        _require("mlflow", "mlflow")


class Exporter:
    """Writes records to TensorBoard (``tensorboard=DIR``) and/or MLflow (``mlflow=URI``).

    ``write(records, members)`` sends every value at a step after the last one written; call it
    with the growing records of a run (at each checkpoint) or once with a finished run's.
    """

    def __init__(self, run_name: str, *, tensorboard: str | os.PathLike | None = None,
                 mlflow: str | None = None, experiment: str = "lrlab",
                 params: dict[str, Any] | None = None) -> None:
        if tensorboard is None and mlflow is None:
            raise ValueError("nothing to export to: give tensorboard=DIR and/or mlflow=URI")
        self.run_name = run_name
        self.last_step = -1
        self._tb_dir = Path(tensorboard) / run_name if tensorboard is not None else None
        self._tb_module = _require("torch.utils.tensorboard", "tensorboard") if tensorboard is not None else None
        self._writers: dict[int, Any] = {}
        self._ml = None
        if mlflow is not None:
            ml = _require("mlflow", "mlflow")
            self._ml = ml.MlflowClient(tracking_uri=mlflow)
            self._metric = importlib.import_module("mlflow.entities").Metric
            exp = self._ml.get_experiment_by_name(experiment)
            self._experiment = exp.experiment_id if exp is not None else self._ml.create_experiment(experiment)
            parent = self._ml.create_run(self._experiment, run_name=run_name, tags={"lrlab.run": run_name})
            self.mlflow_run_id = parent.info.run_id
            for k, v in (params or {}).items():
                self._ml.log_param(self.mlflow_run_id, k, str(v)[:6000])
            self._children: dict[int, str] = {}

    def _tb_writer(self, member: int, label: str):
        if member not in self._writers:
            self._writers[member] = self._tb_module.SummaryWriter(log_dir=str(self._tb_dir / label))
        return self._writers[member]

    def _ml_child(self, member: int, row: pd.Series) -> str:
        if member not in self._children:
            label = member_label(row["name"], row["seed"])
            child = self._ml.create_run(self._experiment, run_name=label,
                                        tags={"mlflow.parentRunId": self.mlflow_run_id, "lrlab.run": self.run_name,
                                              "lrlab.member": str(member)})
            for key in ("name", "seed", "schedule", "data_index"):
                if key in row.index:
                    self._ml.log_param(child.info.run_id, key, str(row[key]))
            self._children[member] = child.info.run_id
        return self._children[member]

    def write(self, records: pd.DataFrame, members: pd.DataFrame) -> int:
        """Send the values at steps after the last written; returns how many were sent."""
        new = records[(records.step > self.last_step) & np.isfinite(records.value.to_numpy(float))]
        if new.empty:
            return 0
        by_member = members.set_index("member")
        now = int(time.time() * 1000)
        for member, rows in new.groupby("member", sort=True):
            row = by_member.loc[member]
            if self._tb_module is not None:
                w = self._tb_writer(int(member), member_label(row["name"], row["seed"]))
                for metric, step, value in zip(rows.metric, rows.step, rows.value):
                    w.add_scalar(str(metric).replace(".", "/", 1), float(value), int(step))
                w.flush()
            if self._ml is not None:
                run_id = self._ml_child(int(member), row)
                metrics = [self._metric(str(m), float(v), now, int(s))
                           for m, s, v in zip(rows.metric, rows.step, rows.value)]
                for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 per batch
                    self._ml.log_batch(run_id, metrics=metrics[i:i + 1000])
        self.last_step = int(new.step.max())
        return len(new)

    def close(self, members: pd.DataFrame | None = None, status: str = "FINISHED") -> None:
        """Flush and close; with the final members table, MLflow gets each member's Σηt and
        whether it diverged."""
        for w in self._writers.values():
            w.close()
        self._writers.clear()
        if self._ml is None:
            return
        if members is not None:
            for _, row in members.iterrows():
                run_id = self._ml_child(int(row["member"]), row)
                for key in ("total_lr", "diverged"):
                    if key in row.index:
                        self._ml.log_param(run_id, key, str(row[key]))
        for run_id in self._children.values():
            self._ml.set_terminated(run_id, status)
        self._ml.set_terminated(self.mlflow_run_id, status)


def export_run(run: str | os.PathLike, *, tensorboard: str | os.PathLike | None = None,
               mlflow: str | None = None, root: str | os.PathLike | None = None,
               experiment: str = "lrlab") -> int:
    """Export a stored run (finished, or up to its last checkpoint); returns the values sent."""
    stored = load_run(run, root)
    if stored.records is None or stored.members is None:
        raise ValueError(f"run {stored.path.name} has no records yet (it has not reached a checkpoint)")
    meta = stored.meta
    ex = Exporter(stored.path.name, tensorboard=tensorboard, mlflow=mlflow, experiment=experiment,
                  params={"config": meta.get("name"), "status": stored.status, "steps": meta.get("steps"),
                          "n_members": meta.get("n_members")})
    try:
        n = ex.write(stored.records, stored.members)
    except BaseException:
        ex.close(status="FAILED")
        raise
    ex.close(stored.members, "FINISHED" if stored.status == "done" else "KILLED")
    return n


__all__ = ["Exporter", "MissingExtra", "check_export", "export_run"]
