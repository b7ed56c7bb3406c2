"""Executor overhead: the Ray executor against local processes on a sweep of 16 tiny jobs.

Two measurements, each executor in this one process, best of ``--repeat``:

* **empty jobs** — 16 tasks that do nothing (``time.sleep(0)``): the executor's start-up (a
  spawned process pool, or ``ray.init`` of a local instance) and its cost per job;
* **tiny claim jobs** — a verdict map of a tiny lu2023 config, 8 points × 2 jobs = 16 jobs, each
  training a few hundred SGD steps, run end to end by ``lrlab.maps.run_map`` (reading configs,
  storing tables, judging every point) with ``--executor local`` (2 workers) and ``ray``.

    .venv/bin/python benchmarks/bench_executors.py [--repeat 3] [--json benchmarks/results_executors.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import ray
import yaml

from lrlab import maps
from lrlab.exec.local import run_tasks
from lrlab.exec.ray import RayExecutor, RayJob

JOBS = 16
TINY = {"execution": {"seeds": [0, 1]}, "claim": {
    "data": {"d": 8, "n_train": 8, "n_test": 50, "strong_frac": 0.5, "strong_norm": 1.0, "weak_norm": 0.3,
             "noise_std": 0.1},
    "model": {"filters": 2, "init_std": 0.05},
    "steps": 400, "batch_size": 1, "eval_every": 5, "test_every": 40,
    "grid": [0.05, 0.1, 0.3, 0.35], "large": 0.3, "small": 0.05, "window": [0.25, 0.4],
    "delta": 0.1, "osc_min": 0.05, "tail": 0.1, "conv_tol": 0.05, "growth": 10, "acc_gain": 0.05,
    "control": True}}
NOISES = [0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16]  # 8 points × (sweep, control)


def _quiet(_msg: str) -> None:
    pass


def empty_local(workers: int) -> float:
    t0 = time.perf_counter()
    run_tasks(time.sleep, [(0,)] * JOBS, workers, log=_quiet)
    return time.perf_counter() - t0


def empty_ray(workers: int) -> tuple[float, float, float]:
    """A fresh local Ray instance: (start-up, the 16 jobs on cold workers — which start and import
    lrlab and torch —, the same 16 jobs again on the warm workers)."""
    t0 = time.perf_counter()
    ex = RayExecutor(num_cpus=workers)
    ex.start()
    times = [time.perf_counter()]
    for _ in range(2):
        ex.run(time.sleep, [RayJob(f"j{i}", (0,)) for i in range(JOBS)], lambda i, v: None, log=_quiet)
        times.append(time.perf_counter())
    ex.shutdown()
    return times[0] - t0, times[1] - times[0], times[2] - times[1]


def tiny_map(executor: str, root: Path) -> float:
    out = root / f"out-{executor}"
    shutil.rmtree(out, ignore_errors=True)
    spec = maps.MapSpec("bench", {"claim.data.noise_std": NOISES})
    t0 = time.perf_counter()
    maps.run_map("lu2023", spec, "quick", out, workers=2, executor=executor, log=_quiet)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="lrlab-bench-exec-"))
    (root / "configs" / "lu2023").mkdir(parents=True)
    (root / "configs" / "lu2023" / "quick.yaml").write_text(yaml.safe_dump(TINY))
    os.environ["LRLAB_CONFIGS"] = str(root / "configs")
    try:
        loc = min(empty_local(args.workers) for _ in range(args.repeat))
        rays = [empty_ray(args.workers) for _ in range(args.repeat)]
        r_start, r_cold, r_warm = (min(r[k] for r in rays) for k in range(3))
        print(f"16 empty jobs, {args.workers} workers: local pool {loc:.2f} s (spawn + run); "
              f"Ray start-up {r_start:.2f} s + cold workers {r_cold:.2f} s = {r_start + r_cold:.2f} s "
              f"(× {(r_start + r_cold) / loc:.2f} of local); warm Ray workers {1e3 * r_warm / JOBS:.1f} ms per job")
        m_loc = min(tiny_map("local", root) for _ in range(args.repeat))
        m_ray = min(tiny_map("ray", root) for _ in range(args.repeat))
        print(f"tiny lu2023 map, 8 points × 2 jobs: local {m_loc:.2f} s, Ray {m_ray:.2f} s "
              f"(× {m_ray / m_loc:.2f}; {m_ray - m_loc:+.2f} s, {1e3 * (m_ray - m_loc) / JOBS:+.0f} ms per job)")
        result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "ray": ray.__version__},
                  "workers": args.workers, "repeat": args.repeat, "jobs": JOBS,
                  "empty": {"local_s": loc, "ray_start_s": r_start, "ray_cold_s": r_cold,
                            "ray_warm_per_job_ms": 1e3 * r_warm / JOBS, "ratio": (r_start + r_cold) / loc},
                  "tiny_map": {"local_s": m_loc, "ray_s": m_ray, "ratio": m_ray / m_loc,
                               "extra_per_job_ms": 1e3 * (m_ray - m_loc) / JOBS}}
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
