"""you2019 settings: the PS10 populations, GD/SGD on CIFAR-10, transferability and AutoDecay.

Setup facts and which values are the paper's: docs/claims/you2019.md.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from ...config import PS10Config, SmallCNNConfig, Strict, WideResNetConfig
from ..protocol import IntervalExecution

ImageModel = Annotated[Union[SmallCNNConfig, WideResNetConfig], Field(discriminator="kind")]
"""A part's network when it is not the default MLP: an image model of :func:`lrlab.models.make_model`
(``wide_resnet`` or ``small_cnn``) on 3-channel images."""

MODEL_HELP = ("the network: None (default) = the MLP of `width` hidden units; else an image model "
              "(e.g. {kind: wide_resnet, depth: 16, width: 4, dropout: 0.0}) on 3-channel images, with "
              "`width` left out")


def check_net(where: str, width: int | None, model: ImageModel | None, channels: int | None = None) -> None:
    """A part names its network by exactly one of ``width`` (the MLP) and ``model``; an image model
    needs 3-channel inputs (``channels``: the part's PS10 channels, None for CIFAR-10)."""
    if (width is None) == (model is None):
        raise ValueError(f"{where}: give exactly one of width (the MLP's hidden units) and model (an image "
                         f"model), got width={width!r}, model={model!r}")
    if model is not None and channels is not None and channels != 3:
        raise ValueError(f"{where}: model {model.kind!r} needs 3-channel PS10 images (data.channels: 3), "
                         f"got {channels} channels")


class PatternSettings(Strict):
    """A PS10 population: step decay from ``lr`` plus a constant-LR control at each stage's value."""

    data: PS10Config
    width: int | None = Field(None, gt=0, description="hidden units of the two-layer ReLU net")
    model: ImageModel | None = Field(None, description=MODEL_HELP)
    epochs: int = Field(gt=1)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    milestones: list[int] = Field(min_length=1, description="epochs of the decays")
    factor: float = Field(gt=0, lt=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    eval_every: int = Field(1, gt=0, description="epochs between probes")
    jump_window: int = Field(5, gt=0, description="epochs after a decay that count as 'the jump'")
    control: bool = Field(True, description="also train, in the same job, the physical-time control: the small "
                          "constant rate (control_lr) for control_epochs(), so that it travels the decayed run's "
                          "Σηt (sum over epochs of the rate)")

    @model_validator(mode="after")
    def _check(self) -> PatternSettings:
        check_net("noise" if hasattr(self, "small_lr") else "patterns", self.width, self.model, self.data.channels)
        m = self.milestones
        if any(b <= a for a, b in zip(m, m[1:])) or m[0] <= 0 or m[-1] >= self.epochs:
            raise ValueError(f"milestones must increase strictly inside (0, epochs={self.epochs}), got {m}")
        if m[0] % self.eval_every or (m[0] + self.jump_window) % self.eval_every:
            raise ValueError("the first milestone and milestone + jump_window must be multiples of eval_every")
        return self

    def stage_lrs(self) -> list[float]:
        """The rate of every stage: lr, lr·factor, lr·factor², …"""
        return [self.lr * self.factor**i for i in range(len(self.milestones) + 1)]

    def sum_lr_epochs(self) -> float:
        """Σηt of the step decay: the sum over epochs of its rate (in epoch units)."""
        bounds = [0, *self.milestones, self.epochs]
        return sum(lr * (b - a) for lr, a, b in zip(self.stage_lrs(), bounds, bounds[1:]))

    def control_lr(self) -> float:
        """The small constant rate of the physical-time control: lr·factor (the second stage's)."""
        return self.stage_lrs()[1]

    def control_epochs(self) -> int:
        """Epochs at ``control_lr`` that travel the step decay's Σηt: round(Σηt / control_lr), at least 1."""
        return max(1, round(self.sum_lr_epochs() / self.control_lr()))


class NoiseSettings(PatternSettings):
    """(b): the same population on noisy PS10; ``small_lr`` is the small constant LR compared."""

    small_lr: float = Field(gt=0)

    @model_validator(mode="after")
    def _small(self) -> NoiseSettings:
        if not any(math.isclose(self.small_lr, v, rel_tol=1e-9) for v in self.stage_lrs()):
            raise ValueError(f"small_lr {self.small_lr} must be one of the stage rates {self.stage_lrs()}")
        return self

    def control_lr(self) -> float:
        """(b)'s physical-time control trains ``small_lr``."""
        return self.small_lr


class GDSGDSettings(Strict):
    """(c, d): a ReLU MLP on a pooled CIFAR-10 subset, trained by full-batch GD and by SGD."""

    n_per_class: int = Field(gt=0)
    test_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    width: int | None = Field(None, gt=0, description="hidden units of each layer of the ReLU MLP")
    depth: int = Field(2, ge=1, le=4, description="hidden layers of the ReLU MLP (not read with model)")
    model: ImageModel | None = Field(None, description=MODEL_HELP)
    factor: float = Field(0.1, gt=0, lt=1)
    gd_lr: float = Field(gt=0)
    gd_steps: int = Field(gt=1)
    gd_micro_batch: int | None = Field(None, gt=0, description="full-batch GD and its Hessian in slices of this "
                                       "many images (lrlab TrainConfig.micro_batch): the same gradient in one "
                                       "slice's memory, BatchNorm statistics per slice; None = all at once")
    gd_decay_at: list[int] = Field(min_length=1, description="GD steps of the (single) decay, one run each")
    gd_eval_every: int = Field(gt=0)
    sgd_lr: float = Field(gt=0)
    sgd_epochs: int = Field(gt=1)
    sgd_batch: int = Field(gt=0)
    sgd_decay_at: list[int] = Field(min_length=1, description="SGD epochs of the decay, one run each")
    top_k: int = Field(10, gt=0, description="Hessian eigenvalues of each GD-trained net")
    gd_tol: float = Field(0.01, gt=0, description="c-gd-decay-no-benefit: the equivalence margin of 'no "
                          "benefit': the best decayed GD run's final test acc lies within ± this of constant GD's")
    gd_diverge_factors: list[float] = Field([1.5, 2.0], description="gd-diverges-<f>x (appendix A.2): the "
                                            "'mildly larger' rates, as multiples f > 1 of gd_lr; each is run "
                                            "by full-batch GD from the same initialisation for gd_steps steps "
                                            "(empty: no runs, no verdicts)")

    @model_validator(mode="after")
    def _check(self) -> GDSGDSettings:
        check_net("gdsgd", self.width, self.model)
        if 32 % self.pool:
            raise ValueError(f"pool must divide 32, got {self.pool}")
        f = self.gd_diverge_factors
        if any(x <= 1 for x in f) or len(set(f)) != len(f):
            raise ValueError(f"gd_diverge_factors must be distinct multiples of gd_lr above 1, got {f}")
        return self


class TransferSettings(Strict):
    """Source: CIFAR-10 classes ``source_classes`` (pooled); targets: the other classes and PS10."""

    source_classes: list[int] = Field(min_length=2)
    n_per_class: int = Field(gt=0)
    test_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    width: int | None = Field(None, gt=0, description="hidden units of the two-layer ReLU MLP")
    model: ImageModel | None = Field(None, description=MODEL_HELP)
    lrs: list[float] = Field(min_length=3, description="the stage rates, e.g. 0.1, 0.01, 0.001")
    epochs: list[int] = Field(min_length=3, description="epochs of each stage")
    batch_size: int = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    ps10: PS10Config
    finetune_epochs: int = Field(gt=0)
    finetune_lr: float = Field(gt=0)
    probe_epochs: int = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> TransferSettings:
        check_net("transfer", self.width, self.model)
        c = self.source_classes
        if len(set(c)) != len(c) or not all(0 <= k < 10 for k in c):
            raise ValueError(f"transfer.source_classes must be distinct classes in 0..9, got {c}")
        if len(c) > 8:
            raise ValueError("transfer.source_classes must leave at least 2 CIFAR-10 classes for the target")
        if 32 % self.pool:
            raise ValueError(f"pool must divide 32, got {self.pool}")
        if len(self.lrs) != len(self.epochs):
            raise ValueError(f"transfer.lrs has {len(self.lrs)} stages but transfer.epochs {len(self.epochs)}")
        if self.ps10.channels != 3 or self.ps10.image_size * self.pool != 32:
            raise ValueError("transfer.ps10 must be 3-channel images of size 32/pool so that its inputs "
                             f"match the pooled CIFAR-10 source (3×{32 // self.pool}×{32 // self.pool}), got "
                             f"{self.ps10.channels}×{self.ps10.image_size}×{self.ps10.image_size}")
        return self


class AutoDecaySettings(Strict):
    """AutoDecay against a grid of step decays on PS10 (same net, data and epoch budget)."""

    data: PS10Config
    width: int | None = Field(None, gt=0, description="hidden units of the two-layer ReLU net")
    model: ImageModel | None = Field(None, description=MODEL_HELP)
    epochs: int = Field(gt=1, description="the budget; step decays use all of it")
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    factor: float = Field(0.1, gt=0, lt=1)
    step_grid: list[list[int]] = Field(min_length=1, description="milestone epochs of each step decay")
    beta: float = Field(0.9, gt=0, lt=1)
    window: int = Field(5, ge=2)
    tol: float = Field(0.02, gt=0)
    drop: float = Field(0.9, gt=0, le=1)
    max_decays: int | None = Field(None, ge=0)
    stage_start: Literal["plateau", "first"] = "plateau"
    acc_tol: float = Field(0.005, gt=0, description="autodecay-accuracy: the equivalence margin, 'within 0.5 "
                           "points' of the tuned step decay (AutoDecay − tuned within ± this)")
    epoch_saving: float = Field(0.1, gt=0, lt=1, description="autodecay-epochs: the smallest share of the epoch "
                                "budget AutoDecay must save (min_effect of 1 − epochs/budget)")

    @model_validator(mode="after")
    def _check(self) -> AutoDecaySettings:
        check_net("autodecay", self.width, self.model, self.data.channels)
        return self


class Settings(Strict):
    patterns: PatternSettings
    noise: NoiseSettings
    gdsgd: GDSGDSettings
    transfer: TransferSettings
    autodecay: AutoDecaySettings


class Verdicts(Strict):
    """Thresholds only the judge reads (left out of the job fingerprint: changing one re-judges
    without training). The margins of the two equivalence verdicts and AutoDecay's epoch saving
    stay where they were (``claim.gdsgd.gd_tol``, ``claim.autodecay.acc_tol``,
    ``claim.autodecay.epoch_saving``); d-gd-stable-interval's boundary 2/η is the theory's.
    Accuracy gains use 1 point as the smallest that matters, the same size as ``gd_tol``'s
    "no benefit" margin."""

    simple_tol: float = Field(0.05, gt=0, description="a-simple-in-stage1 (bound): the simple test accuracy may "
                              "still gain at most this from the first decay to the end for the simple patterns "
                              "to count as learned in the first stage")
    complex_jump_min: float = Field(0.01, gt=0, description="a-complex-jump-after-decay: the smallest gain of "
                                    "complex test acc in the jump window beyond the constant control's that "
                                    "counts as a jump (1 point)")
    complex_gain_min: float = Field(0.01, gt=0, description="a-complex-beats-constant-*: the smallest final "
                                    "complex test acc gain, decay − constant, that matters (1 point)")
    noise_complex_gain_min: float = Field(0.01, gt=0, description="b-noise-complex, "
                                          "b-noise-complex-same-time and b-noise-complex-converged: the smallest "
                                          "complex test acc gain, decay − small constant LR (same epochs, same "
                                          "Σηt, or each at its convergence), that matters (1 point)")
    memorization_gap_min: float = Field(0.01, gt=0, description="b-noise-memorizes-less: the smallest gap in "
                                        "train acc on the noise subset, small constant − decay, that matters "
                                        "(1 point of the noise subset)")
    memorisation_excess_min: float = Field(0.05, gt=0, description="b-noise-memorisation-above-chance-small: "
                                           "the smallest excess, over the label-shuffled baseline 1/(C−1), of the "
                                           "small constant LR's rate of predicting the noisy label among the noisy "
                                           "points not predicted as their true class. Chosen before any result: "
                                           "≈ 5 binomial SDs of that rate at chance (≈ 0.01 with the ~1,000 noisy "
                                           "points of quick/paper), and ≈ 5% of the misclassified noisy points "
                                           "memorised beyond chance")
    memorisation_rate_gap_min: float = Field(0.02, gt=0, description="b-noise-memorisation-less: the smallest gap "
                                             "in that rate, small constant − decay, at the end, that matters. Chosen "
                                             "before any result: 2 points of the rate, ≈ 2 binomial SDs of one rate "
                                             "near chance with ~1,000 noisy points")
    sgd_jump_min: float = Field(0.01, gt=0, description="c-sgd-decay-jump: the smallest margin of the best "
                                "decayed SGD run's final test acc over the constant run's best that matters "
                                "(1 point)")
    same_time_margin: float = Field(0.02, gt=0, description="a-complex-vs-constant-same-time: the equivalence "
                                    "margin of 'the small constant LR, given the decayed run's Σηt, reaches its "
                                    "complex accuracy' (decay − constant same Σηt within ± this). Chosen before any "
                                    "result: twice the 1-point smallest gain of the superiority verdicts, so that "
                                    "'reaches' tolerates the 1-point gains those verdicts call meaningful; "
                                    "a-complex-vs-constant-converged uses it too (each run at its convergence)")
    transfer_drop_min: float = Field(0.05, gt=0, description="transfer-*: the smallest drop of transferability "
                                     "from the next-to-last to the last stage that matters; about half the "
                                     "smallest drop the paper reports (Sketch250 fix 0.02 → −0.06)")
    converge_train_acc: float = Field(0.99, gt=0, le=1, description="*-converged-* (trained to convergence): "
                                      "a run has converged at the first probe where its train accuracy on each "
                                      "clean training subset (simple and complex; the noisy points are left out) "
                                      "is at least this; cap: the run's own length. Chosen before any result: the "
                                      "nearest-pattern rule errs on ≈ 0.5% of complex examples at PS10's "
                                      "feature_noise 0.02, so a net that has fit the patterns reaches 0.99")
    gd_diverge_multiple: float = Field(2.0, ge=1, description="gd-diverges-* and gd-base-lr-stable: a GD run "
                                       "has diverged when its final train loss is non-finite or above this "
                                       "multiple of its initial loss L0 (it ended worse than the untrained net, "
                                       "not merely without progress)")
    gd_diverge_log_cap: float = Field(3.0, gt=0, description="gd-diverges-* and gd-base-lr-stable: log10 of "
                                      "L_end / L0 is clipped to ± this, and a non-finite L_end (the trainer froze "
                                      "the run) reads as + this, so a run that blew up is a diverged seed, not a "
                                      "failed one")

    @model_validator(mode="after")
    def _cap(self) -> Verdicts:
        if self.gd_diverge_log_cap <= math.log10(self.gd_diverge_multiple):
            raise ValueError(f"gd_diverge_log_cap {self.gd_diverge_log_cap} must exceed log10(gd_diverge_multiple) "
                             f"= {math.log10(self.gd_diverge_multiple):.3g}, or a run that blew up would not count "
                             "as diverged")
        return self


class Config(Strict):
    """The claim config (configs/you2019/*.yaml): ``execution``, the claim's ``claim`` section and
    the judge's ``verdicts`` thresholds. Every part runs every seed of ``execution.seeds``."""

    execution: IntervalExecution
    claim: Settings
    verdicts: Verdicts = Verdicts()



# ------------------------------------------------------------------------------------ member names
def pattern_names(p: PatternSettings) -> list[str]:
    """Members of a PS10 population (a) or (b): the step decay, then a constant run per stage rate."""
    return ["decay"] + [f"constant {lr:g}" for lr in p.stage_lrs()]


def control_name(p: PatternSettings) -> str:
    """The physical-time control of a PS10 part: its own population, in the same job and ``curves`` table."""
    return f"constant {p.control_lr():g} same Σηt"


def gd_names(g: GDSGDSettings) -> list[str]:
    """The GD runs: constant, then one decayed at each step of ``gd_decay_at``."""
    return ["constant"] + [f"decay@{s}" for s in g.gd_decay_at]


GD_LARGER = "gd-larger"
"""The ``curves`` part of the GD runs at the mildly larger rates (``gd_larger_names``)."""


def gd_larger_names(g: GDSGDSettings) -> list[str]:
    """The GD runs at the mildly larger rates (appendix A.2), one per ``gd_diverge_factors``."""
    return [f"lr ×{f:g}" for f in g.gd_diverge_factors]


def sgd_names(g: GDSGDSettings) -> list[str]:
    """The SGD runs: constant, then one decayed at each epoch of ``sgd_decay_at``."""
    return ["constant"] + [f"decay@{e}" for e in g.sgd_decay_at]


def autodecay_names(a: AutoDecaySettings) -> list[str]:
    """The step decays of the grid, then AutoDecay (last)."""
    return ["step@" + "-".join(map(str, ms)) for ms in a.step_grid] + ["autodecay"]
