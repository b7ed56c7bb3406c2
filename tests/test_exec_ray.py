"""The Ray executor on a local 2-CPU Ray instance: the same records as local processes, a
killed worker retried to the same numbers, a raising job recorded while the others finish,
resources reaching Ray, and a clear error without Ray."""

from __future__ import annotations

import importlib
import json
import math
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray

from lrlab import driver, maps
from lrlab.exec.ray import ExecutorError, RayExecutor, RayJob
from tests.test_driver import _quiet, _tiny_lu


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20,
             configure_logging=False, runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                                                if k.startswith("LRLAB_")}})
    yield
    ray.shutdown()


def _tables(out: Path, claim: str = "lu2023") -> dict[str, pd.DataFrame]:
    return {f"{p.parent.name}/{p.name}": pd.read_parquet(p)
            for p in sorted((out / claim / "jobs").glob("*/*.parquet"))}


def _assert_same_tables(a: Path, b: Path) -> None:
    ta, tb = _tables(a), _tables(b)
    assert ta.keys() == tb.keys() and ta
    for k in ta:
        pd.testing.assert_frame_equal(ta[k], tb[k], check_exact=True, obj=k)


def test_ray_gives_the_records_of_local_processes(tmp_path, monkeypatch, local_ray):
    _tiny_lu(tmp_path, monkeypatch)
    local = driver.verify(["lu2023"], "quick", tmp_path / "local", workers=1, log=_quiet)
    seen: list[str] = []
    remote = driver.verify(["lu2023"], "quick", tmp_path / "ray", executor="ray", log=seen.append)
    _assert_same_tables(tmp_path / "local", tmp_path / "ray")
    assert [v.to_dict() for v in remote] == [v.to_dict() for v in local]
    assert any("on Ray (1 node(s): 2 CPU" in m for m in seen)
    done = json.loads((tmp_path / "ray" / "lu2023" / "jobs" / "sweep" / "done.json").read_text())
    assert done["attempts"] == 1
    assert not (tmp_path / "ray" / "lu2023" / "work" / "sweep").exists()  # scratch removed once stored
    # re-running on Ray trains nothing
    seen.clear()
    driver.verify(["lu2023"], "quick", tmp_path / "ray", executor="ray", log=seen.append)
    assert any("2 already stored; running 0" in m for m in seen)


def test_a_map_on_ray_equals_the_local_map(tmp_path, monkeypatch, local_ray):
    _tiny_lu(tmp_path, monkeypatch, control=False)
    spec = maps.MapSpec("noise", {"claim.data.noise_std": [0.05, 0.2]})
    local = maps.run_map("lu2023", spec, "quick", tmp_path / "local", workers=1, log=_quiet)
    remote = maps.run_map("lu2023", spec, "quick", tmp_path / "ray", executor="ray", log=_quiet)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)


def _kill_first_attempt(workdir: Path, killed: list[int]) -> None:
    """Wait for the job to start in ``workdir``, then SIGKILL its worker process."""
    log = workdir / "attempts.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.is_file() and log.read_text().strip():
            pid = int(log.read_text().split()[0])
            time.sleep(0.5)  # let it get into training
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


def test_a_killed_worker_is_retried_and_gives_the_undisturbed_records(tmp_path, monkeypatch, local_ray):
    _tiny_lu(tmp_path, monkeypatch, control=False, steps=3000)
    driver.verify(["lu2023"], "quick", tmp_path / "calm", workers=1, log=_quiet)
    out = tmp_path / "killed"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_attempt, args=((out / "lu2023" / "work" / "sweep").resolve(), killed))
    killer.start()
    seen: list[str] = []
    driver.verify(["lu2023"], "quick", out, executor="ray", retries=2, log=seen.append)
    killer.join()
    assert killed, "the job finished before it could be killed"
    done = json.loads((out / "lu2023" / "jobs" / "sweep" / "done.json").read_text())
    assert done["attempts"] == 2
    assert any("sweep done (after 1 retry)" in m for m in seen)
    _assert_same_tables(tmp_path / "calm", out)


def test_a_raising_task_is_recorded_and_the_others_finish(local_ray):
    got: dict[int, float] = {}
    failures = RayExecutor().run(math.sqrt, [RayJob("four", (4.0,)), RayJob("minus", (-1.0,)),
                                             RayJob("nine", (9.0,))], got.__setitem__, log=_quiet)
    assert got == {0: 2.0, 2: 3.0}
    assert failures == {"minus": "ValueError: math domain error"}


def test_a_gpu_job_on_a_cpu_cluster_is_unschedulable_not_hung(tmp_path, monkeypatch, local_ray):
    with pytest.raises(ExecutorError, match=r"1 job\(s\) cannot be scheduled on the local Ray instance, whose nodes "
                                            r"have 2 CPU, 0 GPU.*gpu-job needs 1 CPU, 1 GPU, 2.0 GiB.*--device cpu"):
        RayExecutor().check_fits([RayJob("cpu-job", (), cpus=1), RayJob("gpu-job", (), cpus=1, gpus=1, memory_gb=2)])
    with pytest.raises(ExecutorError, match="needs 64 CPU"):
        RayExecutor().check_fits([RayJob("big", (), cpus=64)])
    # through verify: a cuda device asks every job for a GPU, and nothing is half-run
    _tiny_lu(tmp_path, monkeypatch)
    with pytest.raises(ExecutorError, match=r"2 job\(s\) cannot be scheduled.*lu2023 sweep needs 1 CPU, 1 GPU"):
        driver.verify(["lu2023"], "quick", tmp_path / "o", executor="ray", device="cuda", log=_quiet)
    assert not list((tmp_path / "o" / "lu2023").glob("jobs/*/done.json"))


def test_resources_follow_the_config():
    cfg = driver.load_claim_config("huang2020", "quick", device="cuda:1", threads=2)
    job = driver._claim("huang2020").jobs(cfg)[0]
    r = driver.job_resources(cfg, job)
    assert (r.cpus, r.gpus, r.memory_gb) == (2, 1, job.resources.memory_gb)
    r = driver.job_resources(driver.load_claim_config("huang2020", "quick"), job)
    assert (r.cpus, r.gpus) == (1, 0)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch):
    real = importlib.import_module

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", no_ray)
    with pytest.raises(ExecutorError, match=r"^--executor ray needs Ray, which is not installed: "
                                            r"pip install 'lrlab\[ray\]'$"):
        driver.make_executor("ray")
