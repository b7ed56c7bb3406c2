"""Tracking export: TensorBoard events and MLflow metrics read back equal the run's records,
live logging equals exporting afterwards, and a missing extra is a one-line error."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from lrlab import experiment
from lrlab.cli import app
from lrlab.export import MissingExtra, export_run
from lrlab.store import load_run
from lrlab.train.population import member_label
from tests.helpers import tiny_run_cfg, tiny_run_dict, write_yaml


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def finite(records: pd.DataFrame) -> pd.DataFrame:
    return records[np.isfinite(records.value)]


def tensorboard_values(log_dir) -> pd.DataFrame:
    """Every scalar under ``log_dir`` as (label, metric, step, value), the tag read back to a metric name."""
    rows = []
    for sub in sorted(p for p in log_dir.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(sub), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            rows += [(sub.name, tag.replace("/", ".", 1), e.step, e.value) for e in acc.Scalars(tag)]
    return pd.DataFrame(rows, columns=["label", "metric", "step", "value"])


def expected(records: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    labels = {int(r.member): member_label(r["name"], r.seed) for _, r in members.iterrows()}
    out = finite(records).assign(label=lambda d: d.member.map(labels))[["label", "metric", "step", "value"]]
    return out.astype({"metric": str}).sort_values(["label", "metric", "step"]).reset_index(drop=True)


def as_sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.astype({"metric": str}).sort_values(["label", "metric", "step"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    rd, _ = experiment.run(tiny_run_cfg(), root=root)
    return rd


def test_tensorboard_export_holds_every_finite_record_once_per_member(done_run, tmp_path):
    run = load_run(done_run)
    n = export_run(done_run, tensorboard=tmp_path / "tb")
    assert n == len(finite(run.records))
    got = tensorboard_values(tmp_path / "tb" / done_run.name)
    assert sorted(got.label.unique()) == ["large-seed0", "large-seed1", "small-seed0", "small-seed1"]
    want = expected(run.records, run.members)
    pd.testing.assert_frame_equal(as_sorted(got)[["label", "metric", "step"]], want[["label", "metric", "step"]])
    np.testing.assert_allclose(as_sorted(got).value, want.value, rtol=1e-6)  # events hold float32


def test_live_tensorboard_logging_equals_exporting_afterwards(tmp_path):
    rd, res = experiment.run(tiny_run_cfg(), root=tmp_path / "runs", export={"tensorboard": tmp_path / "live"})
    live = as_sorted(tensorboard_values(tmp_path / "live" / rd.name))
    pd.testing.assert_frame_equal(live[["label", "metric", "step"]],
                                  expected(res.records, res.members)[["label", "metric", "step"]])
    export_run(rd, tensorboard=tmp_path / "after")
    after = as_sorted(tensorboard_values(tmp_path / "after" / rd.name))
    pd.testing.assert_frame_equal(live, after)


def test_mlflow_export_to_a_sqlite_store_reads_back(done_run, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    r = invoke("export", done_run, "--mlflow", uri, "--experiment", "tiny-test")
    assert r.exit_code == 0, r.output
    run = load_run(done_run)
    assert f"exported {len(finite(run.records)):,} values of {done_run}" in " ".join(r.stdout.split())
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny-test")
    found = client.search_runs([exp.experiment_id])
    parent = [x for x in found if "mlflow.parentRunId" not in x.data.tags]
    children = {x.info.run_name: x for x in found if "mlflow.parentRunId" in x.data.tags}
    assert [p.info.run_name for p in parent] == [done_run.name]
    assert sorted(children) == ["large-seed0", "large-seed1", "small-seed0", "small-seed1"]
    child = children["large-seed1"]
    assert child.data.params["seed"] == "1" and child.data.params["name"] == "large"
    assert child.info.status == "FINISHED" and "total_lr" in child.data.params
    member = int(child.data.tags["lrlab.member"])
    want = finite(run.records)
    want = want[(want.member == member) & (want.metric == "test.loss")]
    history = client.get_metric_history(child.info.run_id, "test.loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(zip(want.step, want.value))


def test_export_errors_are_one_line(done_run, tmp_path, monkeypatch):
    r = invoke("export", done_run)
    assert r.exit_code == 2 and "error: nothing to export to" in r.stderr
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    r = invoke("export", done_run, "--mlflow", "sqlite:///x.db")
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        "error: mlflow export needs mlflow, which is not installed (pip install 'lrlab[mlflow]')"]
    with pytest.raises(MissingExtra):
        experiment.run(tiny_run_cfg(), root=tmp_path / "runs", export={"mlflow": "sqlite:///x.db"})
    assert not (tmp_path / "runs").exists()  # checked before a run folder exists
    cfg = write_yaml(tmp_path / "c.yaml", tiny_run_dict())
    r = invoke("run", "--resume", done_run, "--tensorboard", tmp_path / "tb")
    assert r.exit_code == 2 and "export a resumed run afterwards" in r.stderr
    r = invoke("run", cfg, "--runs", tmp_path / "runs", "--no-progress", "--tensorboard", tmp_path / "tb")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "tb").is_dir()
