"""You, Long, Wang & Jordan (2019), how learning-rate decay helps (docs/claims/you2019.md).

Five experiments, each judged over seeds (paired per seed, 95% t interval):

* (a) PS10 without noise: with step decay the simple patterns are learned in the first stage and
  the complex ones jump after the first decay; constant-LR runs at each stage's value are the
  controls, and none of them reaches the decayed run's complex accuracy;
* (b) PS10 with noisy labels: large LR + decay beats a small constant LR on complex patterns
  and memorises less of the noise (accuracy on the noise subset against its random labels; and,
  restated against chance, the rate of predicting the noisy label among the noisy points not
  predicted as their true class, whose label-shuffled baseline is 1/(C−1)), while the small
  constant LR memorises above that baseline;
* (c) GD against SGD on a CIFAR-10 subset: with full-batch GD, decaying (at any of several
  steps) gives no benefit over not decaying; with SGD, decay gives a jump the constant LR never
  reaches; (d) the top Hessian eigenvalues of the GD-trained nets and their stable intervals;
* transferability: snapshots at the end of each stage of a step-decay run on CIFAR-10 classes
  0–4, transferred to classes 5–9 and to PS10 by "fix" (linear probe) and "finetune"; stage 3
  should transfer worse than stage 2;
* AutoDecay against the best of a grid of step decays on PS10: final test accuracy within
  ``acc_tol`` while spending at least ``epoch_saving`` fewer epochs.

Physical-time controls of (a) and (b): the step decay travels Σηt (the sum over epochs of its
rate) far beyond a constant small rate trained for the same epochs, so each PS10 job also trains
the small constant rate for round(Σηt / rate) epochs (``control_name``); (a) asks whether it then
reaches the decayed run's complex accuracy (equivalence, the paper's Fig. 9), (b) whether decay
still beats it on noisy PS10 (superiority).

Trained-to-convergence controls of (a) and (b), from the same records (no extra training): a run
has converged at the first probe where its train accuracy on each clean training subset (simple,
complex) reaches ``verdicts.converge_train_acc``, within its own length; ``<a|b>-converged-decay``
and ``-control`` check that both compared runs get there (a run that never does is a failed
seed), and ``a-complex-vs-constant-converged`` / ``b-noise-complex-converged`` compare their
complex test accuracy each at its first converged epoch.

Appendix A.2 (GD cannot take a larger initial rate): the gdsgd job also runs full-batch GD at
``gd_diverge_factors`` × gd_lr from the same initialisation; ``gd-diverges-<f>x`` (bound) asks
that each ends non-finite or at least ``verdicts.gd_diverge_multiple`` × its initial loss, and
``gd-base-lr-stable`` that gd_lr itself does not.

Each statement is a superiority, bound or equivalence test (``lrlab.stats``) with its threshold
in the config (``verdicts``, or ``claim`` for ``gd_tol``, ``acc_tol`` and ``epoch_saving``).

Every (part, seed) is an independent job (patterns, noise, gdsgd, transfer, autodecay), so
results do not depend on the number of workers.
"""

from .config import (
    GD_LARGER,
    AutoDecaySettings,
    Config,
    GDSGDSettings,
    ImageModel,
    NoiseSettings,
    PatternSettings,
    Settings,
    TransferSettings,
    Verdicts,
    autodecay_names,
    control_name,
    gd_larger_names,
    gd_names,
    pattern_names,
    sgd_names,
)
from .experiment import PARTS, job_inputs, job_stages, jobs, preflight, run_job, transfer_net
from .judge import NAME, REGIME, judge, judge_results, results
from .report import PAPER, report

JOBS_VERSION = 4
"""2: the noise jobs also store the `memorisation` table (predictions on the noisy points).
3: the patterns and noise jobs also train the physical-time control (``control_name``: the small
constant rate for the decayed run's Σηt) and store its curves in ``curves``.
4: the gdsgd jobs also train full-batch GD at ``gd_diverge_factors`` × gd_lr (``curves`` part
``gd-larger``, ``gd_larger_names``)."""

__all__ = ["AutoDecaySettings", "Config", "GDSGDSettings", "ImageModel", "JOBS_VERSION", "NAME", "NoiseSettings",
           "PAPER", "PARTS", "PatternSettings", "REGIME", "Settings", "TransferSettings", "Verdicts", "autodecay_names",
           "control_name", "GD_LARGER", "gd_larger_names", "gd_names", "job_inputs", "job_stages", "jobs", "judge",
           "judge_results", "pattern_names", "preflight", "report", "results", "run_job", "sgd_names", "transfer_net"]
