"""li2019-patch settings: which schedules play which role, the thresholds, one run config per regime.

A regime's ``population.seeds``, ``train.device`` and ``train.threads`` come from the ``execution``
section (they are filled in from it; a regime that states other values is an error), so
``--seeds``, ``--device`` and ``--threads`` reach every run.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from ...config import Cifar10PatchConfig, ConstantSchedule, RunConfig, StepSchedule, Strict
from ...train.schedules import from_config, total_lr
from ..protocol import Execution, regimes_from_execution

# (section, key) of a regime's run config -> the execution field it comes from
FROM_EXECUTION = ((("population", "seeds"), "seeds"), (("train", "device"), "device"),
                  (("train", "threads"), "threads"))


class Settings(Strict):
    """Which schedules play which role, and the thresholds the verdicts use.

    The thresholds predate the ``verdicts`` convention and stay here (moving them would change the
    stored jobs' fingerprints); the judge adds none of its own, so this claim has no ``verdicts``
    section. Changing one of them makes the driver re-run the jobs."""

    large: str = Field("large", description="schedule name of large LR + anneal")
    small: str = Field("small", description="schedule name of the small constant LR")
    noise: str | None = Field("noise", description="schedule name of small LR + activation noise")
    early_epoch: int = Field(gt=0, description="epoch at which small LR's patch-only accuracy is judged")
    patch_level: float = Field(gt=0, le=1, description="patch-only accuracy that counts as 'high': the "
                               "threshold of the bound verdict a-small-early")
    chance_margin: float = Field(0.1, ge=0, description="'near chance' = below chance + this: the threshold "
                                 "of the bound verdicts *-chance-before-anneal")
    min_effect: float = Field(0.01, gt=0, description="smallest accuracy gap that matters (fraction of "
                              "images): the min_effect of every superiority verdict (must be > 0, so "
                              "that 'no effect' can FAIL)")
    control: bool = Field(True, description="also train large and small on clean images")
    same_time_seeds: int = Field(0, ge=0, description="the equal-Σηt control: small LR trained on patched "
                                 "images for as many epochs as give it the large schedule's Σηt, on the first "
                                 "this many seeds (0: not run; at least 2 for an interval)")
    same_time_eval_every: int = Field(5, gt=0, description="probe the equal-Σηt control every this many epochs")

    @model_validator(mode="after")
    def _control_seeds(self) -> Settings:
        if self.same_time_seeds == 1:
            raise ValueError("claim.same_time_seeds = 1: an interval needs at least 2 seeds (or 0 to skip the "
                             "control)")
        return self


class Verdicts(Strict):
    """Thresholds only the judge reads (not part of any job's fingerprint: changing one re-judges
    the stored tables without training)."""

    converged_acc: float = Field(gt=0, le=1, description="'trained to convergence': the run's training accuracy "
                                 "(mean minibatch accuracy since the previous probe) reaches this")


class Config(Strict):
    """The claim config (configs/li2019-patch/*.yaml): ``execution``, the settings under ``claim``
    and one run config per regime (without seeds, device and threads: those are execution's)."""

    execution: Execution
    claim: Settings
    regimes: dict[str, RunConfig] = Field(min_length=1)
    verdicts: Verdicts | None = Field(None, description="judge-only thresholds; without them the "
                                      "trained-to-convergence verdicts (f-*) are not judged")

    @model_validator(mode="before")
    @classmethod
    def _from_execution(cls, data: Any) -> Any:
        """Fill every regime's seeds, device and threads in from ``execution``."""
        return regimes_from_execution(data, FROM_EXECUTION)

    @model_validator(mode="after")
    def _check(self) -> Config:
        s = self.claim
        for rname, rc in self.regimes.items():
            where = f"regimes.{rname}"
            if not isinstance(rc.data, Cifar10PatchConfig) or rc.data.patch is None:
                raise ValueError(f"{where}.data must be cifar10 data with a patch")
            if rc.train.unit != "epoch":
                raise ValueError(f"{where}.train.unit must be 'epoch' (the claim is stated in epochs)")
            sch = rc.population.schedules
            roles = [(s.large, StepSchedule), (s.small, ConstantSchedule)]
            if s.noise is not None:
                roles.append((s.noise, ConstantSchedule))
            for role, kind in roles:
                if role not in sch:
                    raise ValueError(f"{where}.population.schedules has no {role!r} (have {sorted(sch)})")
                if not isinstance(sch[role], kind):
                    raise ValueError(f"{where}.population.schedules.{role} must be a "
                                     f"{kind.model_fields['kind'].default!r} schedule")
            if s.noise is not None and s.noise not in rc.population.activation_noise:
                raise ValueError(f"{where}.population.activation_noise has no entry for {s.noise!r}")
            if s.early_epoch > rc.train.steps:
                raise ValueError(f"claim.early_epoch {s.early_epoch} is beyond train.steps "
                                 f"({rc.train.steps} epochs)")
        return self


def anneal_epoch(cfg: Config, regime: str) -> int:
    """The epoch of the large schedule's anneal (its first milestone)."""
    return cfg.regimes[regime].population.schedules[cfg.claim.large].milestones[0]


def same_time_epochs(rc: RunConfig, s: Settings) -> int:
    """Epochs at the small rate that give the large schedule's Σηt over ``rc.train.steps`` epochs
    (both count in epochs with the same steps per epoch, so the ratio is one of epochs)."""
    sch = rc.population.schedules
    large = total_lr(from_config(sch[s.large], rc.train.steps), rc.train.steps)
    return math.ceil(large / sch[s.small].lr - 1e-9)


def same_time_seeds(cfg: Config) -> list[int]:
    """The seeds the equal-Σηt control runs on: the first ``claim.same_time_seeds`` of execution's."""
    return list(cfg.execution.seeds[:cfg.claim.same_time_seeds])
