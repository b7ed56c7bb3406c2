"""li2019-toy verdicts, from the stored tables only (no training).

Tables: ``records`` (job, regime, run, member, step, metric, value) and ``members`` (job,
regime, run, member, name, seed, data_index, schedule, total_lr, diverged, diverged_step,
stopped_step, decays), where ``run`` is ``main`` or ``control`` and ``member`` numbers the
members within one run. The control's length and the anneal step come from the config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...config import RunConfig
from ...stats import Verdict, verdict
from ...train import PopulationResult
from ..protocol import Tables
from .config import Config, Settings, anneal_step, control_config, control_name

NAME = "li2019-toy"
CHANCE = 0.5  # accuracy a diverged member is scored at (binary task)


@dataclass
class Regime:
    """One regime's stored runs (as population results without parameters) and its setup."""

    regime: str
    cfg: RunConfig
    main: PopulationResult
    control: PopulationResult | None
    control_steps: int | None
    anneal_step: int


def result_of(tables: Tables, regime: str, run: str) -> PopulationResult | None:
    """The stored records and members of one run (None when the run is not in the tables)."""
    rec, mem = tables["records"], tables["members"]
    mem = mem[(mem.regime == regime) & (mem.run == run)]
    if mem.empty:
        return None
    rec = rec[(rec.regime == regime) & (rec.run == run)]
    drop = ["job", "regime", "run"]
    return PopulationResult(rec.drop(columns=drop, errors="ignore").reset_index(drop=True),
                            mem.drop(columns=drop, errors="ignore").reset_index(drop=True), {}, "stored", 0.0)


def regime_of(cfg: Config, tables: Tables, regime: str) -> Regime:
    """A regime's runs from the tables, with its control length and anneal step from the config."""
    rc, s = cfg.regimes[regime], cfg.claim
    main = result_of(tables, regime, "main")
    if main is None:
        raise ValueError(f"{NAME}: the tables hold no main run of regime {regime!r}")
    control = result_of(tables, regime, "control") if s.control else None
    steps = control_config(rc, s)[1] if control is not None else None
    return Regime(regime, rc, main, control, steps, anneal_step(rc, s))


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


def judge_regime(o: Regime, s: Settings) -> list[Verdict]:
    """All verdicts of one regime."""
    v: list[Verdict] = []
    L, S = s.large, s.small
    C = control_name(s)
    reg = o.regime
    for metric, label in (("test.acc", "overall"), ("test.P-only.acc", "P-only")):
        large = per_seed_final(o.main, L, metric, CHANCE)
        diff = large - per_seed_final(o.main, S, metric, CHANCE)
        v.append(verdict(NAME, f"a-{label}", f"large LR + anneal ends with higher {label} test "
                         f"accuracy than small LR after the same {o.cfg.train.steps} steps",
                         f"final {metric}: {L} − {S}", diff.to_numpy(), s.min_effect, reg,
                         notes=_diverged_note((o.main, L), (o.main, S)), kind="accuracy"))
        if o.control is not None:
            ctrl = per_seed_final(o.control, C, metric, CHANCE)
            diff = large - ctrl.loc[large.index]
            v.append(verdict(NAME, f"b-{label}", f"large LR + anneal ends with higher {label} test "
                             f"accuracy than small LR trained to the same Σηt ({o.control_steps} steps)",
                             f"final {metric}: {L} − {S}@same Σηt", diff.to_numpy(), s.min_effect, reg,
                             notes=_diverged_note((o.main, L), (o.control, C)), kind="accuracy"))
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


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every regime's verdicts, regime by regime in config order."""
    return [v for regime in cfg.regimes for v in judge_regime(regime_of(cfg, tables, regime), cfg.claim)]
