"""Lewkowycz et al. (2020), the catapult mechanism (docs/claims/lewkowycz2020.md): lazy, catapult
and divergent phases.

Every experiment is full-batch GD with the squared loss on random regression data, from one
initialisation per seed, at learning rates η = c/λ0 with λ0 the top eigenvalue of the
empirical NTK at initialisation. Verdicts, each over seeds with a 95% t interval:

* (a) lazy phase (c < 2): λ changes by less than ``lazy_tol`` (relative) and the loss never rises;
* (b) catapult phase (2 < c < 4): the loss first rises, then converges (below L0; and settled at the
  least-squares floor), η·λ_T < 2 at the end, and the minimum is flatter than the paired lazy run's;
* (c) uv model: divergence sets in at c = 4 (the measured boundary and its interval);
* (d) the peak loss grows with width, and the step of the peak grows like log(width);
* (e) ReLU nets of depth 1–3: the maximal stable c, against the paper's ≈ 12;
* (f) a real task (a CIFAR-10 subset, 10 classes, squared loss on one-hot targets): the rate of
  each phase (lazy η·λ0 < 2, catapult 2 < η·λ0 ≤ catapult_max, as many grid points each) chosen on
  a validation split; the test accuracy at the chosen catapult rate against the chosen lazy rate at
  equal steps, against the lazy rate trained to the same Σηt, and with both trained to convergence
  (a stated train-loss criterion, which each run must meet); and the paired runs' flatness;
* edge of stability (Cohen et al. 2021, beyond the paper; docs/claims/lewkowycz2020.md): on a
  small CIFAR-10 MLP under full-batch GD the sharpness rises to within ``band`` of 2/η and
  stays there.

Each (part, seed) is an independent job: ``core`` (the uv sweeps, the width sweep and the ReLU
maximal-rate sweeps) for every seed, ``real`` (f, with its controls) and ``eos`` for their
``seed_limit`` first seeds. Results do not depend on the number of workers.
"""

from .config import Config, EoSSettings, Grid, RealSettings, ReLUSettings, Settings, UVSettings, Verdicts
from .experiment import (
           PARTS,
           control_run,
           job_inputs,
           job_stages,
           jobs,
           lazy_control_cap,
           least_squares_floor,
           preflight,
           real_data,
           regression_data,
           run_job,
)
from .judge import NAME, REGIME, Measured, at, boundary, judge, measured, real_summary
from .report import PAPER, report
from .selection import choose, grid_phases
from .tables import phase_from_tables, phase_tables, sharpness_from_tables, sharpness_tables

JOBS_VERSION = 2  # 2: real gains the validation split, the balanced grid and its controls; core gains uv_floor

__all__ = ["Config", "EoSSettings", "Grid", "JOBS_VERSION", "Measured", "NAME", "PAPER", "PARTS", "REGIME",
           "ReLUSettings", "RealSettings", "Settings", "UVSettings", "Verdicts", "at", "boundary", "choose",
           "control_run", "grid_phases", "job_inputs", "job_stages", "jobs", "judge", "lazy_control_cap",
           "least_squares_floor", "measured",
           "phase_from_tables", "phase_tables", "preflight", "real_data", "real_summary", "regression_data",
           "report", "run_job",
           "sharpness_from_tables", "sharpness_tables"]
