"""The claims driver: the protocol every claim follows, stored tables, resume after kill -9,
re-judging without training, and execution options reaching every job."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from lrlab import driver
from lrlab.claims import CLAIMS, Claim, Execution, Job
from lrlab.config import ConfigError
from lrlab.store import StoreError
from tests.claims.test_lu2023 import TINY
from tests.helpers import write_yaml


def _tiny_lu(tmp_path: Path, monkeypatch, **claim) -> Path:
    cfgdir = tmp_path / "configs"
    (cfgdir / "lu2023").mkdir(parents=True)
    cfg = json.loads(json.dumps(TINY))
    cfg["claim"].update(claim)
    write_yaml(cfgdir / "lu2023" / "quick.yaml", cfg)
    monkeypatch.setenv("LRLAB_CONFIGS", str(cfgdir))
    return cfgdir


def _quiet(_msg: str) -> None:
    pass


@pytest.mark.parametrize("name", list(CLAIMS))
def test_every_claim_follows_the_protocol(name):
    mod = CLAIMS[name]
    assert isinstance(mod, Claim), f"{name} misses part of the claim protocol"
    assert mod.NAME == name
    cfg = driver.load_claim_config(name, "quick")
    assert isinstance(cfg.execution, Execution)
    jobs = mod.jobs(cfg)
    assert jobs and all(isinstance(j, Job) for j in jobs)
    assert len({j.key for j in jobs}) == len(jobs), "job keys must be unique"


@pytest.mark.parametrize("name", list(CLAIMS))
def test_execution_options_reach_the_execution_section(name):
    cfg = driver.load_claim_config(name, "quick", seeds=2, device="cuda:3", threads=2, workers=3)
    assert (cfg.execution.seeds, cfg.execution.device, cfg.execution.threads, cfg.execution.workers) == (
        [0, 1], "cuda:3", 2, 3)

    def seed_lists(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "seeds":
                    yield f"{path}.{k}", v
                else:
                    yield from seed_lists(v, f"{path}.{k}")

    for where, seeds in seed_lists(cfg.model_dump()):
        assert seeds == [0, 1], f"{name}: --seeds did not reach {where}"


def test_bad_options_are_named():
    with pytest.raises(ConfigError, match="--seeds must be at least 1, got 0"):
        driver.load_claim_config("lu2023", "quick", seeds=0)
    with pytest.raises(ConfigError, match="unknown claim 'nope'"):
        driver.load_claim_config("nope", "quick")
    with pytest.raises(ConfigError, match="unknown scale 'huge'"):
        driver.load_claim_config("lu2023", "huge")
    with pytest.raises(ConfigError, match="execution.threads"):
        driver.load_claim_config("lu2023", "quick", threads=0)


class _Page(HTMLParser):
    """Table rows (cells with their class) and images of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str | None, str]]] = []
        self.images: list[dict[str, str | None]] = []
        self._cell: list[str] | None = None
        self._class: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell, self._class = [], a.get("class")
        elif tag == "img":
            self.images.append(a)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append((self._class, "".join(self._cell).strip()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def check_html_report(out: Path, verdicts) -> None:
    """report.html inlines every figure report.md names and shows every verdict, coloured by status."""
    page = _Page()
    page.feed((out / "report.html").read_text())
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "report.md").read_text())
    assert figures and sorted(i["data-source"] for i in page.images) == sorted(figures)
    for img in page.images:
        data = img["src"].removeprefix("data:image/png;base64,")
        assert base64.b64decode(data) == (out / img["data-source"]).read_bytes()
    for v in verdicts:
        (row,) = [r for r in page.rows if len(r) > 3 and r[2][1].lstrip("↳ ") == v.id and r[1][1] == v.regime]
        assert row[3][1] == v.statement and (v.status, v.status) in row  # the cell's class is its status


def test_verify_stores_tables_and_report_rejudges_without_training(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch)
    out = tmp_path / "out"
    first = driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet)
    jobs = out / "lu2023" / "jobs"
    assert sorted(p.name for p in jobs.iterdir()) == ["control", "sweep"]
    finals = pd.read_parquet(jobs / "sweep" / "finals.parquet")
    assert {"member", "c", "seed", "diverged", "weak_acc"} <= set(finals.columns)
    before = {p: p.read_bytes() for p in (out / "verdicts.json", out / "report.md", out / "report.html")}
    check_html_report(out, first)

    def no_training(*a, **k):
        raise AssertionError("report must not train")

    monkeypatch.setattr(driver, "run_one", no_training)
    again = driver.report(out, log=_quiet)
    assert [v.to_dict() for v in again] == [v.to_dict() for v in first]
    assert {p: p.read_bytes() for p in before} == before  # verdicts.json and both reports reproduced
    # verify on a finished folder trains nothing either
    assert [v.to_dict() for v in driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet)] == \
        [v.to_dict() for v in first]
    assert driver.read_verdicts(out / "verdicts.json")[0].to_dict() == first[0].to_dict()


def test_a_changed_config_reruns_the_jobs(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch)
    out = tmp_path / "out"
    driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet)
    ran: list[str] = []
    real = driver.run_one
    monkeypatch.setattr(driver, "run_one", lambda *a, **k: ran.append(a[2].key) or real(*a, **k))
    driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet, overrides=["claim.steps=150"])
    assert sorted(ran) == ["control", "sweep"]
    ran.clear()
    driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet, overrides=["claim.steps=150"])
    assert ran == []


def test_a_corrupt_table_is_reported_not_a_traceback(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch, control=False)
    out = tmp_path / "out"
    driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet)
    (out / "lu2023" / "jobs" / "sweep" / "curves.parquet").write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="curves.parquet: stored table is unreadable"):
        driver.report(out, log=_quiet)
    with pytest.raises(StoreError, match="no stored claims"):
        driver.report(tmp_path / "empty", log=_quiet)


def test_job_keys_must_be_file_names():
    with pytest.raises(ValueError, match="plain, non-empty file name"):
        Job("../escape", "x")


def test_kill_9_mid_verify_resumes_without_redoing_finished_jobs(tmp_path, monkeypatch):
    """Kill the verify process once its first job is stored; the re-run keeps that job and ends
    with the verdicts of an uninterrupted run."""
    # the control trains 30× the sweep's steps, so the kill lands while it runs
    cfgdir = _tiny_lu(tmp_path, monkeypatch, grid=[0.01, 0.1, 0.3, 0.35], small=0.01)
    env = {**os.environ, "LRLAB_CONFIGS": str(cfgdir)}
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lrlab.cli", "verify", "lu2023", "--out", str(out), "--workers", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = out / "lu2023" / "jobs" / "sweep" / "done.json"
    deadline = time.monotonic() + 120
    while not done.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert done.exists() and proc.poll() is None, "the first job should be stored while the second runs"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "lu2023" / "jobs" / "control" / "done.json").exists()
    stamp = done.stat().st_mtime_ns
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 already stored; running 1" in rerun.stdout
    assert done.stat().st_mtime_ns == stamp  # the finished job was not redone
    clean = driver.verify(["lu2023"], "quick", tmp_path / "clean", workers=1, log=_quiet)
    resumed = driver.read_verdicts(out / "verdicts.json")
    assert [v.to_dict() for v in resumed] == [v.to_dict() for v in clean]


def test_cli_report_rejudges_a_stored_folder_and_names_a_missing_one(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lrlab.cli import app

    _tiny_lu(tmp_path, monkeypatch, control=False)
    out = tmp_path / "out"
    n = len(driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet))
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    assert f"judged {n} verdicts of 1 claim(s)" in r.output and "PASS" in r.output
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no verify output at" in r.output


def test_a_bumped_jobs_version_reruns_the_jobs(tmp_path, monkeypatch):
    _tiny_lu(tmp_path, monkeypatch, control=False)
    out = tmp_path / "out"
    driver.verify(["lu2023"], "quick", out, workers=1, log=_quiet)
    cfg = driver.load_claim_config("lu2023", "quick")
    job = CLAIMS["lu2023"].jobs(cfg)[0]
    assert driver.is_done(out, "lu2023", cfg, job)
    version = getattr(CLAIMS["lu2023"], "JOBS_VERSION", None)
    assert driver.fingerprint(cfg, job, version) != driver.fingerprint(cfg, job, (version or 1) + 1)
    monkeypatch.setattr(CLAIMS["lu2023"], "JOBS_VERSION", (version or 1) + 1, raising=False)
    assert not driver.is_done(out, "lu2023", cfg, job)


def _children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killing_verify_ends_its_workers_and_a_second_verify_is_refused(tmp_path, monkeypatch, sig):
    """`lrlab verify` killed (kill -9) or terminated while its workers train: no worker keeps
    running; while it runs, a second verify on the same --out stops at once naming it."""
    cfgdir = _tiny_lu(tmp_path, monkeypatch, grid=[0.01, 0.1, 0.3, 0.35], small=0.01)
    env = {**os.environ, "LRLAB_CONFIGS": str(cfgdir)}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lrlab.cli", "verify", "lu2023", "--out", str(out), "--workers", "2",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
            workers = {p for p in _children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()}
            time.sleep(0.05)
        assert len(workers) >= 2, "verify should have started its 2 workers"
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"this verify output is in use by pid {proc.pid}" in second.stderr
        assert all(_alive(p) for p in workers) and proc.poll() is None, "the jobs should still be running"
        proc.send_signal(sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in workers), "a worker outlived verify"
        assert not (out / "lu2023" / "jobs" / "control" / "done.json").exists()  # it was cut short
        if sig == signal.SIGTERM:
            stderr = proc.stderr.read().decode()
            assert proc.returncode == 130 and "interrupted" in stderr
            assert "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
