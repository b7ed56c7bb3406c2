"""Li, Wei & Ma (2019), toy mixture: large LR + anneal vs small LR, and the order of learning.

Verdicts (each over seeds, paired by seed, 95% t interval):

* (a) large+anneal ends with higher test accuracy than small LR after the same steps —
  overall and on P-only test examples;
* (b) the same against a small-LR control trained to the same Σ η_t;
* (c) learning order: small LR fits the Q-only training group before the P-only group;
  large LR fits P-only first, and fits Q-only only after the anneal.

Each config regime (e.g. ``default`` and ``mechanism``) is run and judged separately: one job
trains the regime's schedules, another its same-Σηt control (docs/claims/li2019-toy.md).
"""

from .config import Config, Settings, anneal_step, control_config, control_name
from .experiment import RUNS, jobs, preflight, run_config, run_job, train
from .judge import CHANCE, NAME, Regime, first_fit_step, judge, judge_regime, per_seed_final, regime_of, result_of
from .report import PAPER, report

__all__ = ["CHANCE", "Config", "NAME", "PAPER", "RUNS", "Regime", "Settings", "anneal_step", "control_config",
           "control_name", "first_fit_step", "jobs", "judge", "judge_regime", "per_seed_final", "preflight",
           "regime_of", "report", "result_of", "run_config", "run_job", "train"]
