"""Plan a claim's jobs before running them: what each trains, what it needs, what it costs.

A claim that can be planned declares ``job_stages(cfg, job) -> list[Stage]``: the training each
job does, as stages of one model family, input shape, minibatch, member count and step count
(a stage that stops at a criterion gives its cap and says so). :func:`plan` turns the stages
into a table with

* FLOPs: 3 × the model's forward FLOPs per example (forward + backward, the usual rule) ×
  batch × members × steps, from ``flops_per_example`` (``FlopCounterMode`` for module models);
* a **measured** per-step time: one forward + backward of one member of the stage's model,
  timed on the plan's device (after a warm-up step) on a growing batch — from 8 examples, ×4
  until a step takes a quarter second or reaches the stage's batch (at most ``measure_batch``) —
  then scaled linearly to the stage's batch and member count (a WRN step on a CPU is timed on a
  few examples, not a whole minibatch);
* GPU-hours: on a CUDA device, the measured time; elsewhere the FLOPs at an assumed sustained
  GPU throughput (``gpu_tflops``, stated in the output, so a reader can rescale it).

Probes (evaluations, Hessian and NTK eigenvalues) are not counted: they add a claim-dependent
share on top of the training the table shows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pandas as pd
import torch

GPU_TFLOPS = 25.0
"""Assumed sustained throughput (TFLOP/s) of one data-centre GPU on these small fp32/TF32 jobs
when no GPU is there to measure: about a quarter of an A100's TF32 peak."""


@dataclass(frozen=True)
class Stage:
    """One stretch of training inside a job: ``steps`` optimizer steps of ``members`` models of
    one family (a :class:`lrlab.models.PopulationModel`) on minibatches of ``batch`` examples of
    ``input_shape`` (full-batch GD: the training-set size). ``capped``: ``steps`` is a cap; the
    stage stops earlier once its criterion is met (convergence controls)."""

    label: str
    model: Any
    input_shape: tuple[int, ...]
    batch: int
    steps: int
    members: int = 1
    capped: bool = False

    def __post_init__(self) -> None:
        for name in ("batch", "steps", "members"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"stage {self.label!r}: {name} must be a positive integer, got {value!r}")

    @property
    def flops(self) -> float:
        """Training FLOPs: forward + backward ≈ 3 forwards per example."""
        return 3.0 * self.model.flops_per_example(tuple(self.input_shape)) * self.batch * self.members * self.steps


def _loss_of(out: torch.Tensor) -> torch.Tensor:
    return out.float().square().mean()


def measure_step(model: Any, input_shape: Sequence[int], batch: int, device: str = "cpu", reps: int = 2) -> float:
    """Seconds of one forward + backward of one member of ``model`` on ``batch`` examples on
    ``device`` (the median of ``reps`` timed steps after one warm-up step)."""
    params = {k: v.to(device) for k, v in model.init([0]).items()}
    trainable = [k for k in params if k not in model.frozen and k not in getattr(model, "buffer_names", ())
                 and params[k].is_floating_point()]
    for k in trainable:
        params[k].requires_grad_(True)
    x = torch.randn(1, batch, *input_shape, device=device)
    times = []
    for i in range(reps + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        loss = _loss_of(model.forward(params, x, train=True))
        torch.autograd.grad(loss, [params[k] for k in trainable], allow_unused=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return float(sorted(times)[len(times) // 2])


def measure_device(device: str) -> str:
    """The device the plan times steps on: ``device`` when this machine has it, else the CPU."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "cpu"
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "cpu"
    return device


def plan(jobs: Sequence[Any], stages_of: Callable[[Any], list[Stage]], device: str = "cpu",
         gpu_tflops: float = GPU_TFLOPS, measure_batch: int = 1024,
         log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (job, stage): the job's resources, the stage's size, FLOPs, the measured
    seconds per step on ``measure_device(device)`` and the estimated hours (see the module
    docstring). Steps of the same (model, shape, batch) are timed once."""
    if not gpu_tflops > 0:
        raise ValueError(f"gpu_tflops must be positive, got {gpu_tflops}")
    if measure_batch < 1:
        raise ValueError(f"measure_batch must be at least 1, got {measure_batch}")
    where = measure_device(device)
    timed: dict[tuple, float] = {}
    rows = []
    for job in jobs:
        for st in stages_of(job):
            top = min(st.batch, measure_batch)
            key = (type(st.model).__name__, repr(_model_key(st.model)), tuple(st.input_shape), top)
            if key not in timed:
                timed[key] = _time_growing(st.model, st.input_shape, top, where)
                if log is not None:
                    log(f"  timed {model_name(st.model)} on {list(st.input_shape)}: "
                        f"{timed[key][0]:.3g} s per step of {timed[key][1]} ({where})")
            seconds, timed_batch = timed[key]
            step_s = seconds * st.batch / timed_batch * st.members
            hours = step_s * st.steps / 3600
            flops = st.flops
            rows.append({
                "job": job.key, "part": job.part, "cpus": job.resources.cpus, "gpus": job.resources.gpus,
                "memory_gb": job.resources.memory_gb, "stage": st.label, "model": model_name(st.model),
                "input": "×".join(map(str, st.input_shape)) or "scalar", "batch": st.batch,
                "members": st.members, "steps": st.steps, "capped": st.capped, "tflop": flops / 1e12,
                "step_s": step_s, "measured_on": where, "device_hours": hours,
                "gpu_hours": hours if where.startswith("cuda") else flops / (gpu_tflops * 1e12) / 3600,
            })
    return pd.DataFrame(rows)


def _time_growing(model: Any, input_shape: Sequence[int], top: int, device: str,
                  enough: float = 0.25) -> tuple[float, int]:
    """(seconds, batch): one step timed on 8, 32, 128, … examples until a step takes ``enough``
    seconds or the batch reaches ``top``."""
    batch = min(8, top)
    while True:
        seconds = measure_step(model, input_shape, batch, device)
        if batch >= top or seconds >= enough:
            return seconds, batch
        batch = min(4 * batch, top)


def model_name(model: Any) -> str:
    """The network's class name (a wrapped module's, e.g. WideResNet inside FromModule)."""
    base = getattr(model, "base", None)
    return type(base if isinstance(base, torch.nn.Module) else model).__name__


def _model_key(model: Any) -> Any:
    """What identifies a model's cost: its parameter shapes (one member)."""
    try:
        return sorted((k, tuple(v.shape)) for k, v in model.init([0]).items())
    except Exception:  # noqa: BLE001 - a model without a cheap init is timed per stage
        return id(model)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per job: its resources, stages, steps, TFLOP and hours (capped stages counted at their cap)."""
    if table.empty:
        return table
    g = table.groupby("job", sort=False)
    out = g.agg(part=("part", "first"), cpus=("cpus", "first"), gpus=("gpus", "first"),
                memory_gb=("memory_gb", "first"), stages=("stage", "size"), steps=("steps", "sum"),
                capped=("capped", "any"), tflop=("tflop", "sum"), device_hours=("device_hours", "sum"),
                gpu_hours=("gpu_hours", "sum"))
    return out.reset_index()


def fmt_hours(h: float) -> str:
    """Hours for people: minutes below one hour, days above two."""
    if not math.isfinite(h):
        return "?"
    if h < 1:
        return f"{h * 60:.1f} min"
    if h > 48:
        return f"{h / 24:.1f} d"
    return f"{h:.1f} h"
