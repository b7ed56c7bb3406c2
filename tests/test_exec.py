"""Local-process execution: the same configs give the same records with 1 or 2 workers."""

from __future__ import annotations

import pandas as pd
import pytest

from lrlab.exec import run_many
from tests.helpers import tiny_run_cfg


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
