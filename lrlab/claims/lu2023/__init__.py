"""Lu, Wu, Yang & Zou (2023), benign oscillation: large-LR SGD learns weak features.

The feature-noise data of :mod:`lrlab.data.feature_noise`, the ReLU² CNN of
:mod:`lrlab.models.relu2_cnn`, the loss (y·f − 1)² and plain SGD (batch 1 by default).
Learning rates are c · m/‖u‖²; with this loss a strong point's fit y·f = 1 turns unstable at
c = 1/4, the lower end of the paper's window [1/4, 2/5] (``tests/claims/test_lu2023.py``).

Jobs: one vectorised population trains every c of the grid × every seed (each seed its own
dataset; the members of one seed share initialisation and sample order); a second trains the
small rate for the same Σ η_t as the large one (the physical-time control). Verdicts, each a
per-seed effect with a 95% t interval:

* (a) the large rate oscillates — the share of (probe, strong point) pairs with |y·f − 1| ≥ δ
  over the second half of training exceeds ``osc_min`` — and training still converges: the
  training loss averaged over the last ``tail`` of the steps is below ``conv_tol``; the small
  rate does not oscillate; the same in weight space — the share of (filter, probe) pairs whose
  strong component ⟨w, u⟩/‖u‖ reverses its motion between consecutive probes (both moves at
  least ``w_rel`` of its size) over the second half exceeds ``verdicts.w_osc_min`` at the large
  rate and stays below it at the small rate;
* (b) the weak-feature alignment max_r ⟨w, v⟩/‖v‖ grows by more than ``growth`` × under the
  large rate, and by less under the small rate (at equal steps and at equal Σ η_t);
* (c) weak-only test accuracy: large minus small (equal steps, and equal Σ η_t);
* (d) across the sweep: the best weak-only accuracy inside the paper's window minus the best
  below it; the report gives where the gain sets in and where training diverges.
"""

from .config import Config, Settings, lr_unit
from .experiment import CURVES, control_steps, job_stages, jobs, preflight, run_job
from .judge import NAME, Run, effect_window, judge, measures, run_of, window_summary
from .report import PAPER, report

JOBS_VERSION = 2  # 2: the curves table gains the weight-space oscillation share 'osc.weights'

__all__ = ["CURVES", "Config", "JOBS_VERSION", "NAME", "PAPER", "Run", "Settings", "control_steps", "effect_window",
           "job_stages", "jobs", "judge", "lr_unit", "measures", "preflight", "report", "run_job", "run_of",
           "window_summary"]
