"""Local-process execution: the same configs give the same records with 1 or 2 workers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from lrlab.exec import run_many
from lrlab.exec.local import die_with_parent
from tests.helpers import tiny_run_cfg
from tests.test_driver import _children


def test_parallel_workers_give_the_serial_records(tmp_path):
    a = tiny_run_cfg()
    b = tiny_run_cfg()
    b.name = "tiny-b"
    b.train.steps = 30
    serial = run_many([a, b], tmp_path / "serial", workers=1)
    parallel = run_many([a, b], tmp_path / "parallel", workers=2, log=lambda m: None)
    assert [rd.parent for rd, _ in parallel] == [tmp_path / "parallel"] * 2
    for (_, s), (_, p) in zip(serial, parallel):
        pd.testing.assert_frame_equal(s.records.reset_index(drop=True), p.records.reset_index(drop=True),
                                      check_dtype=False)
        assert list(s.members.name) == list(p.members.name)
    assert parallel[1][1].records.step.max() == 30  # results come back in the order given


def test_workers_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        run_many([tiny_run_cfg()], tmp_path, workers=0)


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ArithmeticError("three is bad")
    return x * x


def test_run_tasks_keeps_order_and_reports_every_failure_after_the_others_finish():
    from lrlab.exec.local import TaskError, run_tasks

    assert run_tasks(_square_or_fail, [(1,), (2,)], 1, log=lambda m: None) == [1, 4]
    assert run_tasks(_square_or_fail, [(1,), (2,), (4,)], 2, log=lambda m: None) == [1, 4, 16]
    seen: list[str] = []
    with pytest.raises(TaskError, match="1 job\\(s\\) failed: 3: ArithmeticError: three is bad") as e:
        run_tasks(_square_or_fail, [(3,), (5,)], 1, log=seen.append, label=lambda t: str(t[0]))
    assert e.value.failures == {"3": "ArithmeticError: three is bad"}
    assert "  5 done" in " ".join(seen)  # the task after the failure still ran


def _orphan_probe(parent: int) -> None:
    die_with_parent(parent)
    time.sleep(30)  # only reached if the initializer let an orphan live


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_a_worker_whose_parent_died_before_its_initializer_ends_itself():
    """The race behind a worker outliving `kill -9`: the parent dies while the spawned worker is
    still importing. The initializer gets the parent's pid from the parent, sees another parent
    (the reaper) and stops the worker instead of training on as an orphan."""
    not_my_parent = os.getpid() + 10**6  # no process has it, so the worker's parent differs
    proc = mp.get_context("spawn").Process(target=_orphan_probe, args=(not_my_parent,))
    proc.start()
    proc.join(timeout=25)
    assert proc.exitcode == -signal.SIGTERM


_INTERRUPTED_BATCH = """
import sys, time
from lrlab.exec.local import run_tasks
from lrlab.experiment import terminate_as_interrupt
try:
    with terminate_as_interrupt():
        run_tasks(time.sleep, [(60,)] * 6, workers=2, log=lambda m: None)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
def test_terminating_a_batch_with_queued_jobs_prints_no_traceback():
    """SIGTERM while 2 jobs run and 4 wait: the workers stop, the queued jobs are dropped, and the
    pool's manager thread prints nothing (it used to raise InvalidStateError on cancelled futures)."""
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_BATCH], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "interrupted" in stderr
    assert "Traceback" not in stderr, stderr
