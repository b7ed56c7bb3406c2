"""Li, Wei & Ma (2019), toy mixture: large LR + anneal vs small LR, and the order of learning.

Verdicts (each over seeds, paired by seed, 95% t interval):

* (a) large+anneal ends with higher test accuracy than small LR after the same steps —
  overall and on P-only test examples;
* (b) the same against a small-LR control trained to the same Σ η_t;
* (c) learning order: small LR fits the Q-only training group before the P-only group;
  large LR fits P-only first, and fits Q-only only after the anneal; and the first half of the
  test-accuracy crossover: just before the anneal small LR is ahead (c-crossover-before-anneal;
  the second half, large ahead at the end, is (a) overall).

All are superiority tests: (a), (b) by at least ``claim.min_effect`` in accuracy, the learning
order by at least ``verdicts.min_lead_steps`` training steps, the crossover by at least
``verdicts.crossover_min_effect`` in accuracy over the last ``verdicts.crossover_window`` probes.

Each config regime (e.g. ``default`` and ``mechanism``) is run and judged separately: one job
trains the regime's schedules, another its same-Σηt control (docs/claims/li2019-toy.md).
"""

from .config import Config, Settings, Verdicts, anneal_step, control_config, control_name
from .experiment import RUNS, job_inputs, job_stages, jobs, preflight, run_config, run_job, train
from .judge import NAME, Regime, first_fit_step, judge, judge_regime, per_seed_final, regime_of, result_of, window_steps
from .report import PAPER, report

JOBS_VERSION = 2  # 2: the two-layer net trains in mode auto → fused (the hand-written step; float round-off only)

__all__ = ["Config", "JOBS_VERSION", "NAME", "PAPER", "RUNS", "Regime", "Settings", "Verdicts", "anneal_step",
           "control_config",
           "control_name", "first_fit_step", "job_inputs", "job_stages", "jobs", "judge", "judge_regime",
           "per_seed_final", "preflight", "regime_of", "report", "result_of", "run_config", "run_job", "train",
           "window_steps"]
