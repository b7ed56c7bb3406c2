"""Huang, Du, Xu & Liu (2020), deep linear networks with logistic loss at large learning rates
(docs/claims/huang2020.md).

Full-batch GD on the logistic loss with NTK-parameterised linear networks (``DeepLinear``),
η = c/λ0 with λ0 the top eigenvalue of the empirical NTK at initialisation. A run is a
catapult when its loss rises above its running minimum by more than ``rise_tol`` (relative);
it converged when it ends within ``conv_tol`` of the best loss it could reach. Verdicts, each
over seeds with a 95% t interval under lrlab.stats's rule (test type per verdict in the doc; the
judge-only thresholds in the config's ``verdicts`` section):

* (a) separable data (degenerate x = y·x̂, and Gaussian data with a margin): the loss never
  rises for any c up to the grid's largest (100);
* (b) degenerate non-separable data with a fraction p of +1 labels: the catapult sets in at
  c = 2/(p(1−p)) (the measured boundary against the formula), and every converged catapult
  run ends with η·p(1−p)·λ_T < 2;
* (c) flatter minima: through the catapult phase the final top eigenvalue of the loss Hessian
  falls as η grows (slope of log λ_H against log c), on degenerate and on Gaussian
  non-separable data;
* (d) two CIFAR-10 classes (non-separable by a linear map at this size): the catapult-phase run, and a
  large-then-annealed run, against the lazy-phase run in test accuracy, the best of each phase chosen on a
  validation split among equally many candidates per phase; with its controls: the lazy rate trained to
  the same Σηt, both trained until the loss is within ``real.conv_gap`` of the best linear loss, and a
  check that they got there (full-batch GD in closed form, :mod:`.linear_gd`);
* (b, depth) the same onset for deep linear networks of every depth L in ``degenerate.depths``
  (p = ps[0]): in units of η·λ0, with λ0 the depth-L NTK at init, it stays at 2/(p(1−p));
* (e) the divergence boundary c_div against width (reported with its log-log slope).

Jobs: one per (part, seed) for the parts ``real``, ``degenerate`` and ``gaussian``, and one per
(depth, seed) for the onset sweep over depth (part ``depth``, key ``depth<L>-seed<s>``).
"""

from .config import Config, DegenerateSettings, GaussianSettings, NetSettings, RealSettings, Settings, Verdicts
from .experiment import (
                         DEPTH_PART,
                         PARTS,
                         TRACE_EVERY,
                         best_linear_loss,
                         boundary_grid,
                         catapult_rise,
                         choose_best,
                         depth_job,
                         entropy,
                         job_inputs,
                         job_stages,
                         jobs,
                         preflight,
                         real_split,
                         run_job,
)
from .judge import (
                         EDGE,
                         NAME,
                         Sweep,
                         chosen_of,
                         controls_of,
                         curves_of,
                         depths_of,
                         judge,
                         real_of,
                         sweep_of,
                         width_scaling,
)
from .linear_gd import LinearGD, LinearGDModel
from .report import PAPER, depth_figure, flatness_figure, real_figure, report, trajectory_figure

JOBS_VERSION = 3  # 2: the onset sweep over depth (jobs depth<L>-seed<s>, tables depths and depth_runs);
# 3: (d) validation split, balanced candidates, closed-form GD, the controls (tables real_controls, real_control_loss)

__all__ = ["Config", "DEPTH_PART", "DegenerateSettings", "EDGE", "GaussianSettings", "JOBS_VERSION", "LinearGD",
           "LinearGDModel", "NAME", "NetSettings", "PAPER", "PARTS", "RealSettings", "Settings", "Sweep",
           "TRACE_EVERY", "Verdicts", "best_linear_loss", "boundary_grid", "catapult_rise", "choose_best",
           "chosen_of", "controls_of", "curves_of", "depth_figure", "depth_job", "depths_of", "entropy",
           "flatness_figure", "job_inputs", "job_stages", "jobs", "judge", "preflight", "real_figure", "real_of",
           "real_split", "report", "run_job", "sweep_of", "trajectory_figure", "width_scaling"]
