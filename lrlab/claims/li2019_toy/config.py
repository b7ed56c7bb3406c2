"""li2019-toy settings: the claim's roles and tolerances, one run config per regime, and the
same-Σηt control derived from a regime (docs/claims/li2019-toy.md)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from ...config import ConstantSchedule, RunConfig, StepSchedule, Strict
from ...train import from_config, total_lr
from ..protocol import Execution


class Settings(Strict):
    large: str = Field("large", description="schedule name of the large LR + anneal member")
    small: str = Field("small", description="schedule name of the small constant LR member")
    fit_threshold: float = Field(0.9, gt=0, le=1, description="train accuracy that counts as 'fit'")
    min_effect: float = Field(0.01, ge=0, description="smallest accuracy gap that matters")
    control: bool = Field(True, description="also train small LR to the same Σ η_t")
    control_max_steps: int = Field(200_000, gt=0, description="refuse controls longer than this")


class Config(Strict):
    """The claim config (configs/li2019-toy/{quick,paper}.yaml): ``execution``, the claim's
    ``claim`` settings and one run config per regime. Every regime runs ``execution.seeds``:
    its ``population.seeds`` are filled from there (a stated list must be the same)."""

    execution: Execution
    claim: Settings
    regimes: dict[str, RunConfig] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _seeds_from_execution(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        ex, regimes = data.get("execution"), data.get("regimes")
        if not (isinstance(ex, dict) and "seeds" in ex and isinstance(regimes, dict)):
            return data
        seeds = ex["seeds"]
        filled = {}
        for rname, rc in regimes.items():
            if isinstance(rc, dict):
                pop = rc.get("population")
                if isinstance(pop, dict):
                    if "seeds" in pop and pop["seeds"] != seeds:
                        raise ValueError(f"regimes.{rname}.population.seeds {pop['seeds']} differ from "
                                         f"execution.seeds {seeds}: every regime runs execution.seeds "
                                         "(leave population.seeds out)")
                    rc = {**rc, "population": {**pop, "seeds": seeds}}
            filled[rname] = rc
        return {**data, "regimes": filled}

    @model_validator(mode="after")
    def _schedules(self) -> Config:
        for rname, rc in self.regimes.items():
            sch = rc.population.schedules
            for role, kind in ((self.claim.large, StepSchedule), (self.claim.small, ConstantSchedule)):
                if role not in sch:
                    raise ValueError(f"regimes.{rname}.population.schedules has no {role!r} "
                                     f"(have {sorted(sch)})")
                if not isinstance(sch[role], kind):
                    raise ValueError(f"regimes.{rname}.population.schedules.{role} must be a "
                                     f"{kind.model_fields['kind'].default!r} schedule")
        return self


def control_name(s: Settings) -> str:
    """The schedule name of the small-LR member in the same-Σηt control run."""
    return f"{s.small}-same-sum-lr"


def control_config(rc: RunConfig, s: Settings) -> tuple[RunConfig, int]:
    """The small-LR control trained to the Σ η_t of the large+anneal schedule."""
    large = from_config(rc.population.schedules[s.large], rc.train.steps)
    small_cfg = rc.population.schedules[s.small]
    steps = math.ceil(total_lr(large, rc.train.steps) / small_cfg.lr - 1e-9)
    if steps > s.control_max_steps:
        raise ValueError(f"the same-Σηt control would need {steps} steps "
                         f"(> claim.control_max_steps={s.control_max_steps})")
    n_evals = max(1, rc.train.steps // rc.train.eval_every)
    data = rc.model_dump()
    data["name"] = f"{rc.name}-control"
    data["train"]["steps"] = steps
    data["train"]["eval_every"] = max(1, steps // n_evals)
    data["train"]["checkpoint_every"] = None
    data["population"]["schedules"] = {control_name(s): small_cfg.model_dump()}
    return RunConfig.model_validate(data), steps


def anneal_step(rc: RunConfig, s: Settings) -> int:
    """The step of the large schedule's (first) anneal."""
    return rc.population.schedules[s.large].milestones[0]
