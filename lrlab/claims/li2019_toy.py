"""Li, Wei & Ma (2019), toy mixture: large LR + anneal vs small LR, and the order of learning.

Verdicts (each over seeds, paired by seed, 95% t interval):

* (a) large+anneal ends with higher test accuracy than small LR after the same steps —
  overall and on P-only test examples;
* (b) the same against a small-LR control trained to the same Σ η_t;
* (c) learning order: small LR fits the Q-only training group before the P-only group;
  large LR fits P-only first, and fits Q-only only after the anneal.

Each config regime (e.g. ``default`` and ``mechanism``) is run and judged separately.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from ..exec.local import default_workers, run_many
from ..config import ConstantSchedule, RunConfig, StepSchedule, Strict
from ..train import PopulationResult, from_config, total_lr
from .stats import Verdict, verdict

NAME = "li2019-toy"
CHANCE = 0.5  # accuracy a diverged member is scored at (binary task)
PAPER = "Li, Wei & Ma 2019 — toy P/Q mixture"


class Settings(Strict):
    large: str = Field("large", description="schedule name of the large LR + anneal member")
    small: str = Field("small", description="schedule name of the small constant LR member")
    fit_threshold: float = Field(0.9, gt=0, le=1, description="train accuracy that counts as 'fit'")
    min_effect: float = Field(0.01, ge=0, description="smallest accuracy gap that matters")
    control: bool = Field(True, description="also train small LR to the same Σ η_t")
    control_max_steps: int = Field(200_000, gt=0, description="refuse controls longer than this")


class ClaimConfig(Strict):
    claim: Settings
    regimes: dict[str, RunConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _schedules(self) -> "ClaimConfig":
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


@dataclass
class RegimeOutcome:
    """What one regime produced: runs, per-schedule curves and verdicts."""

    regime: str
    cfg: RunConfig
    main: PopulationResult
    main_dir: Path
    control: PopulationResult | None
    control_dir: Path | None
    control_steps: int | None
    anneal_step: int
    verdicts: list[Verdict] = field(default_factory=list)


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
    data["population"]["schedules"] = {f"{s.small}-same-sum-lr": small_cfg.model_dump()}
    return RunConfig.model_validate(data), steps


def per_seed_final(res: PopulationResult, name: str, metric: str, diverged: float = np.nan) -> pd.Series:
    """Final value of ``metric`` for the members of schedule ``name``, indexed by seed;
    members that diverged get ``diverged`` (NaN unless the caller chooses a value)."""
    m = res.members[res.members.name == name]
    fin = res.final(metric).loc[m.member].to_numpy()
    fin = np.where(m.diverged.to_numpy(), diverged, fin)
    return pd.Series(fin, index=m.seed.to_numpy())


def _diverged_note(*parts: tuple[PopulationResult, str]) -> str:
    n = sum(int(r.members[r.members.name == name].diverged.sum()) for r, name in parts)
    return f"{n} diverged member(s) scored at chance accuracy (0.5)" if n else ""


def first_fit_step(res: PopulationResult, name: str, metric: str, threshold: float) -> pd.Series:
    """Per seed: the first probed step at which ``metric`` ≥ threshold (censored: last step +
    eval interval when never reached)."""
    c = res.curve(metric)
    steps = c.index.to_numpy()
    censor = int(steps[-1] + (steps[-1] - steps[-2] if len(steps) > 1 else 1))
    m = res.members[res.members.name == name]
    out = {}
    for member, seed in zip(m.member, m.seed):
        hit = np.nonzero(c[member].to_numpy() >= threshold)[0]
        out[int(seed)] = int(steps[hit[0]]) if hit.size else censor
    return pd.Series(out)


def judge(o: RegimeOutcome, s: Settings) -> list[Verdict]:
    """All verdicts of one regime."""
    v: list[Verdict] = []
    L, S = s.large, s.small
    reg = o.regime
    for metric, label in (("test.acc", "overall"), ("test.P-only.acc", "P-only")):
        large = per_seed_final(o.main, L, metric, CHANCE)
        diff = large - per_seed_final(o.main, S, metric, CHANCE)
        v.append(verdict(NAME, f"a-{label}", f"large LR + anneal ends with higher {label} test "
                         f"accuracy than small LR after the same {o.cfg.train.steps} steps",
                         f"final {metric}: {L} − {S}", diff.to_numpy(), s.min_effect, reg,
                         notes=_diverged_note((o.main, L), (o.main, S))))
        if o.control is not None:
            ctrl = per_seed_final(o.control, f"{S}-same-sum-lr", metric, CHANCE)
            diff = large - ctrl.loc[large.index]
            v.append(verdict(NAME, f"b-{label}", f"large LR + anneal ends with higher {label} test "
                             f"accuracy than small LR trained to the same Σηt ({o.control_steps} steps)",
                             f"final {metric}: {L} − {S}@same Σηt", diff.to_numpy(), s.min_effect, reg,
                             notes=_diverged_note((o.main, L), (o.control, f"{S}-same-sum-lr"))))
    thr = s.fit_threshold
    tq_s = first_fit_step(o.main, S, "train.Q-only.acc", thr)
    tp_s = first_fit_step(o.main, S, "train.P-only.acc", thr)
    tq_l = first_fit_step(o.main, L, "train.Q-only.acc", thr)
    tp_l = first_fit_step(o.main, L, "train.P-only.acc", thr)
    step_unit = float(o.cfg.train.eval_every)
    v.append(verdict(NAME, "c-small-order", f"small LR reaches {thr:.0%} train accuracy on Q-only "
                     "before P-only", "steps-to-fit(P-only) − steps-to-fit(Q-only), small LR",
                     (tp_s - tq_s).to_numpy(), step_unit, reg))
    v.append(verdict(NAME, "c-large-order", f"large LR reaches {thr:.0%} train accuracy on P-only "
                     "before Q-only", "steps-to-fit(Q-only) − steps-to-fit(P-only), large LR",
                     (tq_l - tp_l).to_numpy(), step_unit, reg))
    v.append(verdict(NAME, "c-large-after-anneal", f"large LR fits Q-only (≥{thr:.0%} train "
                     f"accuracy) only after the anneal at step {o.anneal_step}",
                     "steps-to-fit(Q-only) − anneal step, large LR",
                     (tq_l - o.anneal_step).to_numpy(), step_unit, reg,
                     notes="steps-to-fit is censored at the end of training when never reached"))
    return v


def preflight(cfg: ClaimConfig) -> None:
    """Checks that need no training (e.g. the control's length), run before anything starts."""
    if cfg.claim.control:
        for rc in cfg.regimes.values():
            control_config(rc, cfg.claim)


def run(cfg: ClaimConfig, out: Path, progress: bool = False,
        log: Callable[[str], None] = print, workers: int | None = None) -> list[RegimeOutcome]:
    """Train every regime and its same-Σηt control (independent runs, spread over ``workers``
    local processes; default one per core), judge them, and return the outcomes."""
    s = cfg.claim
    jobs: list[RunConfig] = []
    plan = []
    for regime, rc in cfg.regimes.items():
        ctrl_cfg, ctrl_steps = control_config(rc, s) if s.control else (None, None)
        log(f"[{NAME}] regime {regime}: {len(rc.population.seeds)} seeds × "
            f"{len(rc.population.schedules)} schedules, {rc.train.steps} steps"
            + (f"; same-Σηt control {ctrl_steps} steps" if ctrl_steps else ""))
        plan.append((regime, rc, len(jobs), ctrl_steps))
        jobs.append(rc)
        if ctrl_cfg is not None:
            jobs.append(ctrl_cfg)
    done = run_many(jobs, out / "runs", workers or default_workers(len(jobs)), progress, log)
    outcomes = []
    for regime, rc, i, ctrl_steps in plan:
        main_dir, main = done[i]
        cdir, control = done[i + 1] if ctrl_steps else (None, None)
        anneal = rc.population.schedules[s.large].milestones[0]
        o = RegimeOutcome(regime, rc, main, main_dir, control, cdir, ctrl_steps, anneal)
        o.verdicts = judge(o, s)
        outcomes.append(o)
    return outcomes


def _reading(o: RegimeOutcome) -> str:
    """A plain-words reading of this regime's verdicts (derived from them, never fixed text)."""
    st = {v.id: v.status for v in o.verdicts}

    def say(ids: list[str]) -> str:
        got = {st[i] for i in ids if i in st}
        return "holds" if got == {"PASS"} else ("does not hold" if "FAIL" in got else "is unclear")

    parts = [f"Reading of regime `{o.regime}`: the accuracy gain of large LR + anneal at equal "
             f"steps {say(['a-overall', 'a-P-only'])}"]
    if "b-overall" in st:
        parts.append(f"against small LR trained to the same Σηt it {say(['b-overall', 'b-P-only'])}")
    parts.append(f"small LR fitting Q-only before P-only {say(['c-small-order'])}; large LR fitting "
                 f"P-only first and Q-only only after the anneal "
                 f"{say(['c-large-order', 'c-large-after-anneal'])}.")
    return "; ".join(parts)


def section(cfg: ClaimConfig, outcomes: list[RegimeOutcome], figdir: Path, rel: Path) -> str:
    """The report section: setup per regime, final accuracies, figures."""
    from ..data.mixture import GROUPS
    from ..report import group_curves

    s = cfg.claim
    lines = [f"## {NAME}: {PAPER}", "",
             "Large LR + anneal against small LR on the two-pattern mixture (SPEC §1a). "
             "Members with the same seed share data, initialisation and minibatch order, so "
             "every effect is a paired per-seed difference. 'Fit' means "
             f"≥ {s.fit_threshold:.0%} training accuracy on a group. All constants are in the "
             "config (our choices where the paper gives none).", ""]
    for o in outcomes:
        rc = o.cfg
        d = rc.data
        lines += [f"### Regime `{o.regime}`", "",
                  f"Data: d={d.d} per block, n_train={d.n_train}, n_test={d.n_test}, margin γ={d.margin}, "
                  f"P noise σ_P={d.p_noise}, ‖ζ‖={d.q_zeta_norm}, Q noise σ_Q={d.q_noise}, "
                  f"α~U[{d.q_alpha_min}, 1], Q scale {d.q_scale}. Model: two-layer ReLU, width "
                  f"{rc.model.width}. Training: {rc.train.loss} loss, {rc.train.steps} steps, batch "
                  f"{rc.train.batch_size or 'full'}, momentum {rc.train.momentum}. Schedules: "
                  + ", ".join(f"`{k}` = {v.model_dump(exclude_defaults=True)}"
                              for k, v in rc.population.schedules.items())
                  + (f"; control: `{s.small}` for {o.control_steps} steps (same Σηt)." if o.control_steps else "."),
                  "", f"Runs: `{o.main_dir}`" + (f", `{o.control_dir}`" if o.control_dir else ""), ""]
        rows = ["| schedule | test acc | test P-only | test Q-only | test both | train P-only | train Q-only |",
                "|---|---|---|---|---|---|---|"]
        runs = [(o.main, n) for n in rc.population.schedules]
        if o.control is not None:
            runs.append((o.control, f"{s.small}-same-sum-lr"))
        for res, name in runs:
            vals = []
            for metric in ("test.acc", "test.P-only.acc", "test.Q-only.acc", "test.both.acc",
                           "train.P-only.acc", "train.Q-only.acc"):
                x = per_seed_final(res, name, metric)
                vals.append(f"{x.mean():.3f} ± {x.std(ddof=1) if len(x) > 1 else 0:.3f}")
            rows.append(f"| {name} | " + " | ".join(vals) + " |")
        lines += ["Final accuracy, mean ± sd over seeds:", ""] + rows + [""]
        panels = [(f"{name} (η={rc.population.schedules[name].lr})", o.main.records, o.main.members,
                   name, list(getattr(rc.population.schedules[name], "milestones", [])))
                  for name in rc.population.schedules]
        if o.control is not None:
            panels.append((f"{s.small}, same Σηt ({o.control_steps} steps)", o.control.records,
                           o.control.members, f"{s.small}-same-sum-lr", []))
        fig = group_curves(panels, GROUPS, figdir / f"{NAME}-{o.regime}-accuracy.png",
                           title=f"{NAME} [{o.regime}]: accuracy by group (dashed train, solid test)")
        lines += [f"![accuracy by group, regime {o.regime}]({rel / fig.name})", ""]
        lines += [_reading(o), ""]
    return "\n".join(lines)
