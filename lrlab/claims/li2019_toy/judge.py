"""li2019-toy verdicts, from the stored tables only (no training): every verdict is a
superiority test (docs/claims/li2019-toy.md, "Verdicts"); a seed whose measurement failed (a
diverged member, a group never fitted where the statement needs the fit, a non-finite accuracy)
is a failed seed (NaN or −inf).

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
from .config import Config, Settings, Verdicts, anneal_step, control_config, control_name

NAME = "li2019-toy"


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
    members that diverged get ``diverged`` (NaN: no final value)."""
    m = res.members[res.members.name == name]
    fin = res.final(metric).loc[m.member].to_numpy()
    fin = np.where(m.diverged.to_numpy(), diverged, fin)
    return pd.Series(fin, index=m.seed.to_numpy())


def diverged_seeds(res: PopulationResult, name: str) -> dict[int, str]:
    """The seeds whose member of schedule ``name`` diverged, with a few words on when."""
    m = res.members[(res.members.name == name) & res.members.diverged.astype(bool)]
    at = m.diverged_step if "diverged_step" in m else pd.Series([None] * len(m), index=m.index)
    return {int(seed): f"{name} diverged" + (f" at step {int(s)}" if pd.notna(s) else "")
            for seed, s in zip(m.seed, at)}


def _notes(per_seed: dict[int, list[str]]) -> str:
    return "; ".join(f"seed {seed}: " + ", ".join(words) for seed, words in sorted(per_seed.items()) if words)


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


def _fit(res: PopulationResult, name: str, group: str, threshold: float) -> tuple[pd.Series, pd.Series]:
    """Per seed: steps-to-fit of ``group`` (train accuracy ≥ threshold; :func:`first_fit_step`)
    and whether it was censored (never reached within the run)."""
    metric = f"train.{group}.acc"
    at = first_fit_step(res, name, metric, threshold)
    return at.astype(float), at > res.curve(metric).index.max()


def _order(res: PopulationResult, name: str, first: str, second: str, threshold: float,
           ) -> tuple[np.ndarray, str]:
    """Per seed: steps-to-fit(``second``) − steps-to-fit(``first``) for schedule ``name``, with
    notes. One group censored: the order is seen and the censored value (last step + one probe)
    bounds the lead (from below when ``second`` is the censored one, so the bound is
    conservative; from above when ``first`` is, a lead that is already negative). Both censored
    (the order is not seen) or the member diverged: NaN, a failed seed."""
    t1, c1 = _fit(res, name, first, threshold)
    t2, c2 = _fit(res, name, second, threshold)
    div = diverged_seeds(res, name)
    eff = t2 - t1
    notes: dict[int, list[str]] = {}
    for seed in map(int, eff.index):
        words = notes.setdefault(seed, [])
        if seed in div:
            eff.loc[seed] = np.nan
            words.append(f"{div[seed]}: failed seed")
        elif c1.loc[seed] and c2.loc[seed]:
            eff.loc[seed] = np.nan
            words.append(f"{name} fits neither {first} nor {second}: order not seen, failed seed")
        elif c2.loc[seed]:
            words.append(f"{name} never fits {second}: censored at step {int(t2.loc[seed])}, "
                         "so the lead is at least the value shown")
        elif c1.loc[seed]:
            words.append(f"{name} never fits {first}: censored at step {int(t1.loc[seed])} ({second} first)")
    return eff.to_numpy(), _notes(notes)


def judge_regime(o: Regime, s: Settings, vs: Verdicts) -> list[Verdict]:
    """All verdicts of one regime (docs/claims/li2019-toy.md, "Verdicts")."""
    v: list[Verdict] = []
    L, S = s.large, s.small
    C = control_name(s)
    reg = o.regime
    div_l = diverged_seeds(o.main, L)
    for metric, label in (("test.acc", "overall"), ("test.P-only.acc", "P-only")):
        large = per_seed_final(o.main, L, metric)
        small = per_seed_final(o.main, S, metric)
        v.append(verdict(NAME, f"a-{label}", f"large LR + anneal ends with {label} test accuracy higher by "
                         f"at least {s.min_effect} than small LR after the same {o.cfg.train.steps} steps",
                         f"final {metric}: {L} − {S}", (large - small.loc[large.index]).to_numpy(),
                         s.min_effect, reg, notes=_accuracy_notes(large.index, div_l, diverged_seeds(o.main, S)),
                         kind="accuracy", test="superiority"))
        if o.control is not None:
            ctrl = per_seed_final(o.control, C, metric)
            v.append(verdict(NAME, f"b-{label}", f"large LR + anneal ends with {label} test accuracy higher "
                             f"by at least {s.min_effect} than small LR trained to the same Σηt "
                             f"({o.control_steps} steps)",
                             f"final {metric}: {L} − {S}@same Σηt", (large - ctrl.loc[large.index]).to_numpy(),
                             s.min_effect, reg,
                             notes=_accuracy_notes(large.index, div_l, diverged_seeds(o.control, C)),
                             kind="accuracy", test="superiority", control_of=f"a-{label}"))
    thr, lead = s.fit_threshold, float(vs.min_lead_steps)
    eff, notes = _order(o.main, S, "Q-only", "P-only", thr)
    v.append(verdict(NAME, "c-small-order", f"small LR reaches {thr:.0%} train accuracy on Q-only at least "
                     f"{lead:g} steps before P-only", "steps-to-fit(P-only) − steps-to-fit(Q-only), small LR",
                     eff, lead, reg, notes=notes, test="superiority"))
    eff, notes = _order(o.main, L, "P-only", "Q-only", thr)
    v.append(verdict(NAME, "c-large-order", f"large LR reaches {thr:.0%} train accuracy on P-only at least "
                     f"{lead:g} steps before Q-only", "steps-to-fit(Q-only) − steps-to-fit(P-only), large LR",
                     eff, lead, reg, notes=notes, test="superiority"))
    tq, cq = _fit(o.main, L, "Q-only", thr)
    eff = tq - o.anneal_step
    words: dict[int, list[str]] = {}
    for seed in map(int, eff.index):
        if seed in div_l:
            eff.loc[seed] = np.nan
            words[seed] = [f"{div_l[seed]}: failed seed"]
        elif cq.loc[seed]:
            eff.loc[seed] = -np.inf
            words[seed] = [f"{L} never fits Q-only before the end of training (no fit after the anneal): "
                           "failed seed"]
    v.append(verdict(NAME, "c-large-after-anneal", f"large LR fits Q-only (≥{thr:.0%} train accuracy) only "
                     f"after the anneal at step {o.anneal_step}: at least {lead:g} steps after it",
                     "steps-to-fit(Q-only) − anneal step, large LR", eff.to_numpy(), lead, reg,
                     notes=_notes(words), test="superiority"))
    v.append(crossover_before_anneal(o, s, vs))
    return v


def window_steps(res: PopulationResult, anneal: int, window: int, metric: str = "test.acc") -> list[int]:
    """The last ``window`` probed steps with 0 < step ≤ ``anneal``: a probe at step t follows t
    updates, so the one at the anneal step is the last trained wholly at the large rate (step 0,
    before any update, is left out). Fewer when the run has fewer probes before the anneal."""
    steps = [int(t) for t in res.curve(metric).index if 0 < t <= anneal]
    return steps[-window:]


def crossover_before_anneal(o: Regime, s: Settings, vs: Verdicts) -> Verdict:
    """c-crossover-before-anneal: the first half of the Li–Wei–Ma crossover. Per seed, test.acc of
    small − large averaged over the last ``vs.crossover_window`` probes before the anneal
    (:func:`window_steps`); the second half, large ahead at the end, is a-overall. A member that
    diverged, or a non-finite value in the window, makes the seed a failed seed (NaN)."""
    L, S, metric = s.large, s.small, "test.acc"
    steps = window_steps(o.main, o.anneal_step, vs.crossover_window, metric)
    if not steps:
        raise ValueError(f"{NAME}: regime {o.regime!r} has no probe at 0 < step ≤ the anneal step "
                         f"{o.anneal_step}: no crossover window")
    c = o.main.curve(metric).loc[steps]
    mem = o.main.members

    def window_mean(name: str) -> pd.Series:
        m = mem[mem.name == name]
        vals = c[m.member.to_numpy()].to_numpy(dtype=float)  # [steps, members]
        mean = np.where(np.isfinite(vals).all(axis=0), vals.mean(axis=0), np.nan)
        return pd.Series(mean, index=m.seed.to_numpy())

    small, large = window_mean(S), window_mean(L)
    eff = small - large.loc[small.index]
    div = {name: diverged_seeds(o.main, name) for name in (L, S)}
    words: dict[int, list[str]] = {}
    for seed in map(int, eff.index):
        gone = [d[seed] for d in div.values() if seed in d]
        if gone:
            eff.loc[seed] = np.nan
            words[seed] = [*gone, "failed seed"]
        elif not np.isfinite(eff.loc[seed]):
            words[seed] = [f"non-finite {metric} in the window: failed seed"]
    span = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}–{steps[-1]}"
    short = len(steps) < vs.crossover_window
    notes = _notes(words)
    if short:
        notes = "; ".join(x for x in (f"only {len(steps)} probes before the anneal "
                                      f"(verdicts.crossover_window = {vs.crossover_window})", notes) if x)
    return verdict(NAME, "c-crossover-before-anneal",
                   f"before the anneal at step {o.anneal_step}, small LR has higher test accuracy than large LR "
                   f"by at least {vs.crossover_min_effect}, averaged over the {len(steps)} probes at {span} "
                   "(the first half of the crossover; large LR ahead at the end is a-overall)",
                   f"mean {metric} over {span}: {S} − {L}", eff.to_numpy(), vs.crossover_min_effect, o.regime,
                   notes=notes, kind="accuracy", test="superiority")


def _accuracy_notes(seeds: pd.Index, *diverged: dict[int, str]) -> str:
    """Per seed, the members of an accuracy comparison that diverged (no final accuracy, so the
    paired difference is NaN: a failed seed)."""
    notes = {}
    for seed in map(int, seeds):
        gone = [d[seed] for d in diverged if seed in d]
        notes[seed] = [*gone, "no final accuracy, failed seed"] if gone else []
    return _notes(notes)


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every regime's verdicts, regime by regime in config order."""
    return [v for regime in cfg.regimes
            for v in judge_regime(regime_of(cfg, tables, regime), cfg.claim, cfg.verdicts)]
