"""Example: what would a claim cost at the paper's scale? Plan it before booking GPUs.

Run from the repository root:  .venv/bin/python examples/plan_paper_scale.py   (under a minute)
The same as `lrlab verify you2019 --scale paper --plan`, from Python: every job's training
stages with FLOPs, a step time measured on this machine and the GPU-hours at an assumed
sustained throughput (pass gpu_tflops= for your GPU), as a pandas table. Nothing is trained.
"""

from lrlab.driver import plan_claim
from lrlab.plan import fmt_hours, summary

stages = plan_claim("you2019", "paper", gpu_tflops=25.0)
per_job = summary(stages)
print(stages[["job", "stage", "model", "input", "batch", "members", "steps", "tflop"]].head(8).to_string())
print(per_job.groupby("part")[["tflop", "gpu_hours"]].sum().round(2).to_string())
print(f"you2019 at paper scale: {per_job.gpu_hours.sum():.1f} GPU-hours "
      f"(this CPU would take {fmt_hours(float(per_job.device_hours.sum()))})")
