"""Li, Wei & Ma (2019), CIFAR-10 with a class-signature patch (docs/claims/li2019-patch.md).

Three schedules train on patched CIFAR-10 — large LR + anneal, small LR, and small LR with
activation noise until the anneal epoch — and two (large, small) on clean images as the
control. Verdicts, each a paired per-seed effect with a 95% t interval and a stated test
(``bound`` for "reaches" / "stays near chance", ``superiority`` with ``claim.min_effect`` for the
comparisons; a seed whose measurement is missing or diverged is a failed seed):

* (a) small LR reaches high patch-only accuracy early; large LR stays near chance on
  patch-only images until the anneal, and learns the patch after it;
* (b) final clean test accuracy: large + anneal > small;
* (c) small LR + activation noise behaves like large LR on (a) and (b);
* (d) control: the clean-accuracy gap between the schedules without the patch, and how much
  the patch changes it.

The data subset (``data.subset_seed``) and the patch (``data.patch.seed``) are drawn once, not
per seed: the intervals are conditional on that one draw (the report says so, per regime).
"""

from .config import Config, Settings, Verdicts, anneal_epoch, same_time_epochs, same_time_seeds
from .experiment import EPOCH_COLUMNS, KINDS, epoch_table, job_key, job_stages, jobs, preflight, run_config, run_job
from .judge import CHANCE, NAME, RegimeOutcome, judge, judge_regime, outcomes
from .report import EVAL_SERIES, PAPER, conditioning, physical_time, reading, report, same_time_figure

__all__ = ["CHANCE", "Config", "EPOCH_COLUMNS", "EVAL_SERIES", "KINDS", "NAME", "PAPER", "RegimeOutcome",
           "Settings", "Verdicts", "anneal_epoch", "conditioning", "epoch_table", "job_key", "job_stages", "jobs",
           "judge", "judge_regime", "outcomes", "physical_time", "preflight", "reading", "report", "run_config",
           "run_job", "same_time_epochs", "same_time_figure", "same_time_seeds"]
