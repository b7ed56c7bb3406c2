"""lewkowycz2020 settings: the uv and ReLU sweeps, the CIFAR-10 parts and every tolerance, and the
judge-only thresholds (``verdicts``)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ...config import Strict
from ..protocol import IntervalExecution


class Grid(Strict):
    """Evenly spaced η·λ0 values from ``low`` to ``high``."""

    low: float = Field(gt=0)
    high: float = Field(gt=0)
    points: int = Field(ge=2)

    def values(self) -> np.ndarray:
        """The grid, rejecting low >= high."""
        if not self.low < self.high:
            raise ValueError(f"grid low {self.low} must be below high {self.high}")
        return np.linspace(self.low, self.high, self.points)


class UVSettings(Strict):
    """The uv-model sweeps: data size, width, the lazy and catapult rates, boundary grid, widths."""

    d: int = Field(gt=0, description="input dimension")
    m: int = Field(gt=0, description="training examples")
    width: int = Field(gt=0)
    steps: int = Field(gt=1)
    lazy_c: float = Field(gt=0, lt=2, description="η·λ0 of the lazy run")
    catapult_c: float = Field(gt=2, lt=4, description="η·λ0 of the catapult run")
    boundary: Grid
    widths: list[int] = Field(min_length=3)
    curvature_every: int = Field(gt=0)


class ReLUSettings(Strict):
    """The ReLU-net sweeps for the maximal stable rate, per depth."""

    d: int = Field(gt=0)
    m: int = Field(gt=0)
    width: int = Field(gt=0)
    depths: list[int] = Field(min_length=1)
    grid: Grid
    steps: int = Field(gt=1)
    paper_max: float = Field(12.0, gt=0, description="the paper's maximal stable η·λ0")


class RealSettings(Strict):
    """(f): full-batch GD of an NTK-parameterised ReLU net on a CIFAR-10 subset, per η·λ0; the best
    rate of each phase chosen on a validation split, and the controls of the chosen rates (equal
    Σηt, trained to convergence)."""

    seed_limit: int | None = Field(None, ge=2, description="run the first this many of execution.seeds "
                                   "(data subset and initialisation seeds; None: all)")
    n_per_class: int = Field(gt=0, description="training images per class")
    val_per_class: int = Field(gt=0, description="validation images per class: CIFAR-10 training images "
                               "outside the seed's training subset (disjoint from it and from the test set)")
    test_per_class: int = Field(gt=0, description="test images per class (a fixed subset)")
    pool: int = Field(4, gt=0, description="average-pool the 32×32 images by this factor")
    width: int = Field(gt=0)
    depth: int = Field(ge=1, le=3)
    steps: int = Field(gt=1)
    grid: list[float] = Field(min_length=3, description="η·λ0 values, λ0 the top NTK eigenvalue; as many "
                              "below 2 (lazy) as in (2, catapult_max] (catapult)")
    catapult_max: float = Field(12.0, gt=2, description="the largest η·λ0 that is a catapult candidate: the "
                                "paper's maximal stable rate of ReLU nets; grid points above it are no "
                                "candidate of either phase [paper]")
    test_every: int = Field(gt=0)
    conv_loss_frac: float = Field(gt=0, lt=1, description="trained to convergence: the first step at which "
                                  "the training loss is at most this fraction of L0")
    conv_max_steps: int = Field(gt=1, description="the step cap of the convergence runs: a run that has not "
                                "met the criterion by then never converged (a failed seed)")


class EoSSettings(Strict):
    """Edge of stability: a tanh MLP (PyTorch's default init) on a CIFAR-10 subset, squared loss."""

    seed_limit: int | None = Field(None, ge=2, description="run the first this many of execution.seeds "
                                   "(None: all)")
    n_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    width: int = Field(gt=0)
    depth: int = Field(ge=1, le=3)
    steps: int = Field(gt=1)
    every: int = Field(gt=0, description="measure the sharpness every this many steps")
    stability: list[float] = Field(min_length=1, description="2/η in units of the initial "
                                   "sharpness λ0: η = 2/(s·λ0), so s > 1 needs sharpening")
    band: float = Field(0.1, gt=0, lt=1, description="'at 2/η' means within this relative band")


class Settings(Strict):
    """The sweep families and the tolerances that predate ``Verdicts`` (where later judge-only
    thresholds live)."""

    lazy_tol: float = Field(gt=0, description="largest relative change of λ that counts as lazy")
    rise_tol: float = Field(0.05, ge=0, description="a catapult's loss rises above (1 + rise_tol)·L0")
    boundary_tol: float = Field(gt=0, description="|c* − 4| below this counts as 'at 4/λ0'")
    max_tol: float = Field(gt=0, description="|c_max − paper_max| below this counts as '≈ 12'")
    uv: UVSettings
    relu: ReLUSettings
    real: RealSettings
    eos: EoSSettings


class Verdicts(Strict):
    """Thresholds only the judge reads (the driver leaves this section out of the jobs'
    fingerprint, so changing one re-judges the stored tables without training). The tolerances
    that predate this section (``claim.lazy_tol``, ``rise_tol``, ``boundary_tol``, ``max_tol``,
    ``eos.band``) stay where they are."""

    monotone_tol: float = Field(1e-6, gt=0, description="a-lazy-monotone: a one-step rise of the lazy loss "
                                "up to this fraction of L0 still counts as 'never rises' (float round-off "
                                "of a converged loss) [ours]")
    edge: float = Field(2.0, gt=0, description="b-catapult-edge: a catapult ends with η·λ_T below this; 2 is "
                        "the edge of the lazy phase [paper]")
    uv_boundary: float = Field(4.0, gt=0, description="c-uv-boundary: the η·λ0 at which the uv model "
                               "diverges, 4 [paper]; the margin is claim.boundary_tol")
    peak_slope_min: float = Field(0.25, gt=0, description="d-peak-grows-with-width: the smallest log-log slope "
                                  "of the peak loss against width that matters, 0.25 (the peak at least "
                                  "doubles per 16-fold width); the uv model's peak ∝ width gives ≈ 1 [ours]")
    step_slope_min: float = Field(0.25, gt=0, description="d-peak-step-log-width: the smallest slope of the "
                                  "peak step against ln(width) that matters, 0.25 steps (one step more per "
                                  "e^4 ≈ 55-fold width; the peak step is an integer); the loss growing "
                                  "(c − 1)²-fold per step up to L ~ width suggests 1/ln((c − 1)²) ≈ 0.72 "
                                  "at c = 3 [ours]")
    settle_excess: float = Field(0.01, gt=0, lt=1, description="b-catapult-settles: the catapult run's final "
                                 "excess loss over the least-squares floor L* is at most this share of "
                                 "L0 − L* [ours]")
    settle_window: int = Field(20, gt=0, description="b-catapult-settles: the loss has settled when it moves "
                               "by at most settle_tol (relative to L_T) over the last this many steps [ours]")
    settle_tol: float = Field(1e-3, gt=0, description="b-catapult-settles: see settle_window [ours]")
    flat_ratio_min: float = Field(1.1, gt=1, description="b-catapult-flatter, f-real-catapult-flatter: the "
                                  "smallest ratio λ_T(lazy)/λ_T(catapult) of paired runs that matters, 10% "
                                  "flatter (judged as its log) [ours]")
    real_gap_min: float = Field(0.01, gt=0, description="f-real-*: the smallest test-accuracy gain of the "
                                "catapult rate over the lazy rate (each chosen on the validation split) that "
                                "matters, at equal steps, at equal Σηt and at convergence: one percentage "
                                "point [ours]")
    stay_quantile: float = Field(0.9, gt=0, le=1, description="eos-stays-*: this share of the probes after "
                                 "arrival must lie within claim.eos.band of 2/η (the quantile of "
                                 "|S·η/2 − 1| that is tested) [ours]")


class Config(Strict):
    """The claim config (configs/lewkowycz2020/*.yaml): ``execution``, the claim's ``claim`` section
    and the judge-only ``verdicts`` thresholds."""

    execution: IntervalExecution
    claim: Settings
    verdicts: Verdicts = Verdicts()

    def real_seeds(self) -> list[int]:
        """The seeds of the CIFAR-10 accuracy sweep (f)."""
        return self.execution.seeds_for(self.claim.real.seed_limit)

    def eos_seeds(self) -> list[int]:
        """The seeds of the edge-of-stability runs."""
        return self.execution.seeds_for(self.claim.eos.seed_limit)
