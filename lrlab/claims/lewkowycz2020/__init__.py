"""Lewkowycz et al. (2020), the catapult mechanism (docs/claims/lewkowycz2020.md): lazy, catapult
and divergent phases.

Every experiment is full-batch GD with the squared loss on random regression data, from one
initialisation per seed, at learning rates η = c/λ0 with λ0 the top eigenvalue of the
empirical NTK at initialisation. Verdicts, each over seeds with a 95% t interval:

* (a) lazy phase (c < 2): λ changes by less than ``lazy_tol`` (relative) and the loss never rises;
* (b) catapult phase (2 < c < 4): the loss first rises, then converges, and η·λ_T < 2 at the end;
* (c) uv model: divergence sets in at c = 4 (the measured boundary and its interval);
* (d) the peak loss grows with width, and the step of the peak grows like log(width);
* (e) ReLU nets of depth 1–3: the maximal stable c, against the paper's ≈ 12;
* (f) a real task (a CIFAR-10 subset, 10 classes, squared loss on one-hot targets): is the
  best final test accuracy in the catapult phase? (best catapult run − best lazy run);
* edge of stability (Cohen et al. 2021, beyond the paper; docs/claims/lewkowycz2020.md): on a
  small CIFAR-10 MLP under full-batch GD the sharpness rises to within ``band`` of 2/η and
  stays there.

Each (part, seed) is an independent job: ``core`` (the uv sweeps, the width sweep and the ReLU
maximal-rate sweeps) for every seed, ``real`` (f) and ``eos`` for their ``seed_limit`` first
seeds. Results do not depend on the number of workers.
"""

from .config import Config, EoSSettings, Grid, RealSettings, ReLUSettings, Settings, UVSettings, Verdicts
from .experiment import PARTS, jobs, preflight, regression_data, run_job
from .judge import NAME, REGIME, Measured, at, boundary, judge, measured, real_summary
from .report import PAPER, report
from .tables import phase_from_tables, phase_tables, sharpness_from_tables, sharpness_tables

__all__ = ["Config", "EoSSettings", "Grid", "Measured", "NAME", "PAPER", "PARTS", "REGIME", "ReLUSettings",
           "RealSettings", "Settings", "UVSettings", "at", "boundary", "jobs", "judge", "measured", "phase_from_tables",
           "phase_tables", "preflight", "real_summary", "regression_data", "report", "run_job",
           "sharpness_from_tables", "sharpness_tables", "Verdicts"]
