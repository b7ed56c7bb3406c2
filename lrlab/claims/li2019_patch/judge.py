"""li2019-patch verdicts, from the stored ``epochs`` table only (no training).

``epochs`` (job, regime, data, schedule, seed, epoch, metric, value, diverged) holds every
probe of every job; one :class:`RegimeOutcome` gathers a regime's rows and judges them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ...config import RunConfig
from ...stats import Verdict, verdict
from ..protocol import Tables
from .config import Config, Settings, anneal_epoch

NAME = "li2019-patch"
CHANCE = 0.1  # 10 classes


@dataclass
class RegimeOutcome:
    """One regime: every (data, schedule, seed, epoch, metric) value and the jobs it came from."""

    regime: str
    cfg: RunConfig
    table: pd.DataFrame  # columns: data, schedule, seed, epoch, metric, value, diverged
    jobs: list[str]
    anneal_epoch: int

    def per_seed(self, data: str, schedule: str, metric: str, epoch: int | None = None) -> pd.Series:
        """``metric`` per seed at ``epoch`` (default: the last one)."""
        t = self.table
        sub = t[(t.data == data) & (t.schedule == schedule) & (t.metric == metric)]
        if sub.empty:
            raise KeyError(f"no {metric!r} for {schedule!r} on {data!r} data")
        e = sub.epoch.max() if epoch is None else epoch
        sub = sub[sub.epoch == e]
        return _chance_if_diverged(sub.set_index("seed").value.sort_index(), metric)

    def max_before(self, data: str, schedule: str, metric: str, epoch: int) -> pd.Series:
        """Per seed, the largest value of ``metric`` at probes strictly before ``epoch``."""
        t = self.table
        sub = t[(t.data == data) & (t.schedule == schedule) & (t.metric == metric) & (t.epoch < epoch)]
        return _chance_if_diverged(sub.groupby("seed").value.max().sort_index(), metric)


def _chance_if_diverged(x: pd.Series, metric: str) -> pd.Series:
    """A diverged member's accuracy (recorded as NaN) is scored at chance."""
    return x.fillna(CHANCE) if metric.endswith(".acc") else x


def outcomes(cfg: Config, tables: Tables) -> list[RegimeOutcome]:
    """Every regime's rows of the ``epochs`` table, in the config's order."""
    t = tables["epochs"]
    out = []
    for regime, rc in cfg.regimes.items():
        sub = t[t.regime == regime]
        jobs = list(dict.fromkeys(sub.job)) if "job" in sub else []
        table = sub.drop(columns=[c for c in ("job", "regime") if c in sub]).reset_index(drop=True)
        out.append(RegimeOutcome(regime, rc, table, jobs, anneal_epoch(cfg, regime)))
    return out


def judge_regime(o: RegimeOutcome, s: Settings) -> list[Verdict]:
    """Every verdict of one regime (see the package docstring)."""
    v: list[Verdict] = []
    reg, L, S, N = o.regime, s.large, s.small, s.noise
    near = CHANCE + s.chance_margin
    E, A = s.early_epoch, o.anneal_epoch
    po = "patch_only.acc"

    def add(id_: str, statement: str, effect: str, values: pd.Series, min_effect: float, notes: str = "",
            kind: str = "other"):
        v.append(verdict(NAME, id_, statement, effect, values.to_numpy(dtype=float), min_effect, reg,
                         notes=notes, kind=kind))

    small_early = o.per_seed("patch", S, po, E)
    add("a-small-early", f"small LR reaches ≥ {s.patch_level:.0%} patch-only accuracy by epoch {E}",
        f"patch-only acc at epoch {E} − {s.patch_level:.2f}, {S}", small_early - s.patch_level, 0.0,
        notes=f"{S} patch-only acc at epoch {E}: " + ", ".join(f"{x:.3f}" for x in small_early))
    for arm in [L] + ([N] if N else []):
        who = "large LR" if arm == L else "small LR + noise"
        tag = "a" if arm == L else "c"
        pre = o.max_before("patch", arm, po, A)
        add(f"{tag}-{arm}-chance-before-anneal",
            f"{who} stays near chance (< {near:.0%}) on patch-only images until the anneal (epoch {A})",
            f"{near:.2f} − max patch-only acc before epoch {A}, {arm}", near - pre, 0.0,
            notes="max before the anneal: " + ", ".join(f"{x:.3f}" for x in pre))
        gap = small_early - o.per_seed("patch", arm, po, E)
        add(f"{tag}-{arm}-vs-small-early", f"at epoch {E}, small LR's patch-only accuracy exceeds {who}'s",
            f"patch-only acc at epoch {E}: {S} − {arm}", gap, s.min_effect)
        final = o.per_seed("patch", arm, "test.acc") - o.per_seed("patch", S, "test.acc")
        add(f"{'b' if arm == L else 'c'}-{arm}-clean-final",
            f"{who} ends with higher clean test accuracy than small LR",
            f"final clean test acc: {arm} − {S}", final, s.min_effect, kind="accuracy")
    learn = o.per_seed("patch", L, po) - o.per_seed("patch", L, po, A)
    add("a-large-learns-after-anneal", f"large LR learns the patch after the anneal (epoch {A})",
        f"patch-only acc: final − at epoch {A}, {L}", learn, s.min_effect)
    if s.control:
        gap_clean = o.per_seed("clean", L, "test.acc") - o.per_seed("clean", S, "test.acc")
        gap_patch = o.per_seed("patch", L, "test.acc") - o.per_seed("patch", S, "test.acc")
        add("d-gap-without-patch", "without the patch, large LR + anneal still ends with higher clean "
            "test accuracy than small LR", f"final clean test acc on clean data: {L} − {S}",
            gap_clean, s.min_effect, kind="accuracy")
        add("d-patch-widens-gap", "the patch widens the clean-accuracy gap between large and small LR",
            f"({L} − {S}) with patch − ({L} − {S}) without", gap_patch - gap_clean.loc[gap_patch.index],
            s.min_effect)
    return v


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict of every regime: (a)-(d) of the package docstring, each a paired per-seed
    effect with a 95% t interval."""
    return [v for o in outcomes(cfg, tables) for v in judge_regime(o, cfg.claim)]
