"""huang2020 settings: the degenerate, Gaussian and CIFAR-10 sweeps and every tolerance
(docs/claims/huang2020.md says which values are the paper's and which are ours)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ...config import Strict
from ..protocol import IntervalExecution


class NetSettings(Strict):
    """A deep linear network (NTK parameterisation) and the GD budget."""

    width: int = Field(gt=0)
    depth: int = Field(2, ge=2, description="weight matrices; 2 is the uv model")
    steps: int = Field(gt=1)


class DegenerateSettings(NetSettings):
    """(a), (b), (c) on degenerate data (every input ±x̂) and (e) on its width sweep."""

    n: int = Field(gt=1)
    d: int = Field(gt=0)
    separable_grid: list[float] = Field(min_length=2, description="c values for (a)")
    ps: list[float] = Field(min_length=1, description="label fractions p for (b)")
    boundary_span: list[float] = Field(min_length=2, max_length=2, description="(b) grid of c from "
                                       "span[0]·c_theory to span[1]·c_theory")
    boundary_points: int = Field(ge=3)
    flat_grid: list[float] = Field(min_length=3, description="(c) c values in units of c_theory")
    widths: list[int] = Field(min_length=3, description="(e) widths of the divergence sweep (p = ps[0])")
    divergence_grid: list[float] = Field(min_length=3, description="(e) c values in units of c_theory")
    depths: list[int] = Field(min_length=1, description="(b, depth) depths L of the onset sweep (p = ps[0], "
                              "the boundary grid; every other setting as above)")


class GaussianSettings(NetSettings):
    """(a) separable and (c) non-separable Gaussian data in d dimensions."""

    n: int = Field(gt=1)
    d: int = Field(gt=0)
    margin: float = Field(gt=0, description="margin of the separable variant")
    flip: float = Field(gt=0, lt=0.5, description="label-flip rate of the non-separable variant")
    grid: list[float] = Field(min_length=3, description="c values")


class RealSettings(NetSettings):
    """(d) two CIFAR-10 classes, pooled and flattened: the best rate of each phase chosen on a validation
    split, test accuracy at the chosen rates, and the equal-Σηt and trained-to-convergence controls."""

    classes: list[int] = Field(min_length=2, max_length=2)
    n_per_class: int = Field(gt=0)
    val_per_class: int = Field(gt=0, description="validation images per class: the next ones of the seed's "
                               "draw from the CIFAR-10 training set (disjoint from training and test)")
    test_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    grid: list[float] = Field(min_length=3, description="c values (constant rates)")
    anneal_from: float = Field(gt=0, description="c of the large-then-annealed run")
    anneal_to: float = Field(gt=0, description="c after the anneal")
    anneal_at: int = Field(gt=0, description="step of the anneal")
    conv_gap: float = Field(gt=0, description="trained to convergence: the training loss within this of L*, "
                            "the lowest logistic loss of any linear map on the training set")
    control_max_steps: int = Field(gt=0, description="step cap of the controls (equal Σηt and convergence); "
                                   "a control not reached by then is a failed seed")
    anneal_control_seeds: int = Field(ge=2, description="the annealed run is trained to convergence (at anneal_to) "
                                      "on the first this many seeds only (it costs up to control_max_steps)")

    @model_validator(mode="after")
    def _check(self) -> RealSettings:
        if len(set(self.classes)) != 2 or not all(0 <= c < 10 for c in self.classes):
            raise ValueError(f"real.classes must be two distinct CIFAR-10 classes in 0..9, got {self.classes}")
        if 32 % self.pool:
            raise ValueError(f"real.pool must divide 32, got {self.pool}")
        return self


class Settings(Strict):
    rise_tol: float = Field(1e-3, gt=0, description="catapult: the loss rises above its running minimum by more")
    conv_tol: float = Field(1e-3, gt=0, description="converged: final loss within this of the best reachable")
    boundary_tol: float = Field(0.1, gt=0, description="(b) |c* − c_theory|/c_theory below this counts")
    degenerate: DegenerateSettings
    gaussian: GaussianSettings
    real: RealSettings

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not all(0 < p < 1 for p in self.degenerate.ps):
            raise ValueError(f"degenerate.ps must lie in (0, 1), got {self.degenerate.ps}")
        depths = self.degenerate.depths
        if any(L < 2 for L in depths) or len(set(depths)) != len(depths):
            raise ValueError(f"degenerate.depths must be distinct integers >= 2, got {depths}")
        lo, hi = self.degenerate.boundary_span
        if not 0 < lo < 1 < hi:
            raise ValueError(f"degenerate.boundary_span must bracket 1, got {[lo, hi]}")
        if self.real.anneal_at >= self.real.steps:
            raise ValueError(f"real.anneal_at {self.real.anneal_at} must be below real.steps {self.real.steps}")
        if self.real.control_max_steps <= self.real.steps:
            raise ValueError(f"real.control_max_steps {self.real.control_max_steps} must exceed real.steps "
                             f"{self.real.steps}")
        return self


class Verdicts(Strict):
    """Thresholds only the judge reads (left out of the job fingerprint: changing one re-judges the
    stored tables without training). The tolerances the jobs or the figures also read
    (``rise_tol``, ``conv_tol``, ``boundary_tol``) stay in ``claim``."""

    monotone_tol: float = Field(1e-6, ge=0, description=(
        "(a) bound: the largest one-step loss rise (L_{t+1} − L_t)/L0 that still counts as 'the loss "
        "never rises' (float32 rounding once the separable loss is near 0); the effect is this minus "
        "the largest rise [ours]"))
    min_flat_slope: float = Field(0.1, gt=0, description=(
        "(c) superiority: the smallest −slope of log λ_H(T) against log η·λ0 that counts as 'flatter "
        "minima' (0.1: a tenfold η lowers the final sharpness by at least 21%) [ours]"))
    gaussian_loss_band: float = Field(0.05, gt=0, description=(
        "(c, Gaussian) the catapult runs whose final loss is within this of the sweep's lowest finite "
        "final loss enter the slope (runs that reached the same loss level) [ours]"))
    min_acc_gain: float = Field(0.01, gt=0, description=(
        "(d) superiority: the smallest test-accuracy gain over the best lazy-phase run that matters "
        "(one point on a two-class problem) [ours]"))


class Config(Strict):
    """The claim config (configs/huang2020/*.yaml): ``execution`` (every part runs every seed), the
    claim's ``claim`` section and the judge's ``verdicts`` thresholds."""

    execution: IntervalExecution
    claim: Settings
    verdicts: Verdicts = Verdicts()

