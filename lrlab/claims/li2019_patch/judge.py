"""li2019-patch verdicts, from the stored ``epochs`` table only (no training).

``epochs`` (job, regime, data, schedule, seed, epoch, metric, value, diverged) holds every
probe of every job; one :class:`RegimeOutcome` gathers a regime's rows and judges them.

The controls: (e) large LR against small LR trained for the same Σηt (the ``same-time`` runs, on
the first ``claim.same_time_seeds`` seeds); (f) with ``verdicts.converged_acc``, whether each run is
trained to convergence (its training accuracy, the trainer's mean minibatch accuracy since the
previous probe, reaches the criterion), and large LR against small LR at the probe where the
equal-Σηt run first meets it.

Every verdict states its test (``lrlab.stats``): the "reaches" / "stays near chance" statements
are ``bound`` tests whose threshold (``claim.patch_level``, chance + ``claim.chance_margin``) is
inside the effect; the comparisons are ``superiority`` tests with ``claim.min_effect`` as the
smallest accuracy gap that matters. A seed whose measurement is missing (a diverged member's
accuracies are NaN in the tables; a run absent from the tables) gives a NaN effect: a failed
seed, never a value filled in, and the verdict's notes say per seed what happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...config import RunConfig
from ...stats import Verdict, verdict
from ..protocol import Tables
from .config import Config, Settings, anneal_epoch

NAME = "li2019-patch"
CHANCE = 0.1  # 10 classes: the accuracy of a guess (a fact of CIFAR-10, not a threshold)

Input = tuple[str, str, str]  # (data, schedule, metric) a verdict reads


@dataclass
class RegimeOutcome:
    """One regime: every (data, schedule, seed, epoch, metric) value and the jobs it came from."""

    regime: str
    cfg: RunConfig
    table: pd.DataFrame  # columns: data, schedule, seed, epoch, metric, value, diverged
    jobs: list[str]
    anneal_epoch: int
    same_time_seeds: int = 0

    @property
    def seeds(self) -> list[int]:
        """The regime's seeds (the config's): every per-seed series is indexed by them."""
        return list(self.cfg.population.seeds)

    def _rows(self, data: str, schedule: str, metric: str) -> pd.DataFrame:
        t = self.table
        sub = t[(t.data == data) & (t.schedule == schedule) & (t.metric == metric)]
        if sub.empty:
            raise KeyError(f"no {metric!r} for {schedule!r} on {data!r} data")
        return sub

    @property
    def control_seeds(self) -> list[int]:
        """The seeds of the equal-Σηt control: the first ``same_time_seeds`` of the regime's."""
        return self.seeds[:self.same_time_seeds]

    def has(self, data: str, schedule: str, metric: str) -> bool:
        t = self.table
        return bool(((t.data == data) & (t.schedule == schedule) & (t.metric == metric)).any())

    def first_reaching(self, data: str, schedule: str, metric: str, level: float, read: str) -> pd.Series:
        """Per seed, ``read`` at the first probe where ``metric`` ≥ ``level``; NaN for a seed that
        never gets there (or has no run)."""
        out = pd.Series(np.nan, index=pd.Index(self.seeds, name="seed"))
        if not self.has(data, schedule, metric):
            return out
        crit = self._rows(data, schedule, metric)
        for seed, rows in crit.groupby("seed"):
            hit = rows[rows.value.astype(float) >= level].epoch
            if not hit.empty and seed in out.index:
                out.loc[seed] = self.per_seed(data, schedule, read, int(hit.min())).loc[seed]
        return out

    def per_seed(self, data: str, schedule: str, metric: str, epoch: int | None = None) -> pd.Series:
        """``metric`` per seed at ``epoch`` (default: the last one); NaN for a seed without a
        value there (a diverged member, or no run)."""
        sub = self._rows(data, schedule, metric)
        e = sub.epoch.max() if epoch is None else epoch
        return sub[sub.epoch == e].set_index("seed").value.astype(float).reindex(self.seeds)

    def max_before(self, data: str, schedule: str, metric: str, epoch: int) -> pd.Series:
        """Per seed, the largest value of ``metric`` at probes strictly before ``epoch``; NaN
        when any of them is NaN (the member diverged before ``epoch``) or there is none."""
        sub = self._rows(data, schedule, metric)
        sub = sub[sub.epoch < epoch]
        return (sub.groupby("seed").value.agg(lambda x: x.astype(float).max(skipna=False))
                .reindex(self.seeds))

    def failure(self, data: str, schedule: str, metric: str, seed: int) -> str:
        """Why ``seed`` has no finite ``metric`` of ``schedule`` ("" when every value is finite)."""
        t = self.table
        rows = t[(t.data == data) & (t.schedule == schedule) & (t.metric == metric) & (t.seed == seed)]
        if rows.empty:
            return f"no {schedule} run on {data} data"
        bad = rows[~np.isfinite(rows.value.astype(float))]
        if bad.empty:
            return ""
        what = "diverged" if bool(rows.diverged.any()) else "non-finite"
        return f"{schedule} on {data} data {what} ({metric} non-finite from epoch {int(bad.epoch.min())})"


def _failed_notes(o: RegimeOutcome, effect: pd.Series, inputs: list[Input]) -> str:
    """Per failed seed (non-finite effect), what happened to the values the verdict reads."""
    out = []
    for seed, x in effect.items():
        if np.isfinite(x):
            continue
        why = [w for d, s, m in inputs if (w := o.failure(d, s, m, int(seed)))]
        out.append(f"seed {seed}: " + ("; ".join(dict.fromkeys(why)) or "no value at the epoch judged"))
    return ". ".join(out)


def outcomes(cfg: Config, tables: Tables) -> list[RegimeOutcome]:
    """Every regime's rows of the ``epochs`` table, in the config's order."""
    t = tables["epochs"]
    out = []
    for regime, rc in cfg.regimes.items():
        sub = t[t.regime == regime]
        jobs = list(dict.fromkeys(sub.job)) if "job" in sub else []
        table = sub.drop(columns=[c for c in ("job", "regime") if c in sub]).reset_index(drop=True)
        out.append(RegimeOutcome(regime, rc, table, jobs, anneal_epoch(cfg, regime), cfg.claim.same_time_seeds))
    return out


def _vals(x: pd.Series) -> str:
    return ", ".join(f"{v:.3f}" for v in x)


def judge_regime(o: RegimeOutcome, s: Settings, converged_acc: float | None = None) -> list[Verdict]:
    """Every verdict of one regime (see the package docstring); the trained-to-convergence ones
    (f-*) only with a ``converged_acc`` criterion."""
    v: list[Verdict] = []
    reg, L, S, N = o.regime, s.large, s.small, s.noise
    near = CHANCE + s.chance_margin
    E, A, m = s.early_epoch, o.anneal_epoch, s.min_effect
    po = "patch_only.acc"

    def add(id_: str, statement: str, effect: str, values: pd.Series, test: str, inputs: list[Input],
            notes: str = "", kind: str = "other", control_of: str = ""):
        min_effect = m if test == "superiority" else 0.0
        why = _failed_notes(o, values, inputs)
        notes = "; ".join(x for x in (notes, why) if x)
        v.append(verdict(NAME, id_, statement, effect, values.to_numpy(dtype=float), min_effect, reg,
                         notes=notes, kind=kind, test=test, control_of=control_of))

    small_early = o.per_seed("patch", S, po, E)
    add("a-small-early", f"small LR reaches ≥ {s.patch_level:.0%} patch-only accuracy by epoch {E}",
        f"patch-only acc at epoch {E} − {s.patch_level:.2f}, {S}", small_early - s.patch_level, "bound",
        [("patch", S, po)], notes=f"{S} patch-only acc at epoch {E}: {_vals(small_early)}")
    for arm in [L] + ([N] if N else []):
        who = "large LR" if arm == L else "small LR + noise"
        tag = "a" if arm == L else "c"
        pre = o.max_before("patch", arm, po, A)
        add(f"{tag}-{arm}-chance-before-anneal",
            f"{who} stays near chance (< {near:.0%}) on patch-only images until the anneal (epoch {A})",
            f"{near:.2f} − max patch-only acc before epoch {A}, {arm}", near - pre, "bound",
            [("patch", arm, po)], notes=f"max before the anneal: {_vals(pre)}")
        gap = small_early - o.per_seed("patch", arm, po, E)
        add(f"{tag}-{arm}-vs-small-early",
            f"at epoch {E}, small LR's patch-only accuracy exceeds {who}'s by ≥ {m:g}",
            f"patch-only acc at epoch {E}: {S} − {arm}", gap, "superiority", [("patch", S, po), ("patch", arm, po)])
        final = o.per_seed("patch", arm, "test.acc") - o.per_seed("patch", S, "test.acc")
        add(f"{'b' if arm == L else 'c'}-{arm}-clean-final",
            f"{who} ends with higher clean test accuracy than small LR, by ≥ {m:g}",
            f"final clean test acc: {arm} − {S}", final, "superiority",
            [("patch", arm, "test.acc"), ("patch", S, "test.acc")], kind="accuracy")
    learn = o.per_seed("patch", L, po) - o.per_seed("patch", L, po, A)
    add("a-large-learns-after-anneal",
        f"large LR learns the patch after the anneal (epoch {A}): patch-only accuracy rises by ≥ {m:g}",
        f"patch-only acc: final − at epoch {A}, {L}", learn, "superiority", [("patch", L, po)])
    if s.control:
        gap_clean = o.per_seed("clean", L, "test.acc") - o.per_seed("clean", S, "test.acc")
        gap_patch = o.per_seed("patch", L, "test.acc") - o.per_seed("patch", S, "test.acc")
        clean_in = [("clean", L, "test.acc"), ("clean", S, "test.acc")]
        add("d-gap-without-patch", "without the patch, large LR + anneal still ends with higher clean "
            f"test accuracy than small LR, by ≥ {m:g}", f"final clean test acc on clean data: {L} − {S}",
            gap_clean, "superiority", clean_in, kind="accuracy")
        add("d-patch-widens-gap", f"the patch widens the clean-accuracy gap between large and small LR by ≥ {m:g}",
            f"({L} − {S}) with patch − ({L} − {S}) without", gap_patch - gap_clean, "superiority",
            [("patch", L, "test.acc"), ("patch", S, "test.acc")] + clean_in)
    ctrl, ST = o.control_seeds, "same-time"

    def at_ctrl(x: pd.Series) -> pd.Series:
        return x.reindex(ctrl)

    def final(data: str, schedule: str, metric: str) -> pd.Series:
        """The last value per seed; NaN on every seed when there is no such run."""
        if not o.has(data, schedule, metric):
            return pd.Series(np.nan, index=pd.Index(o.seeds, name="seed"))
        return o.per_seed(data, schedule, metric)

    if ctrl:
        small_st = at_ctrl(final(ST, S, "test.acc"))
        n_ep = o.table[o.table.data == ST].epoch.max() if o.has(ST, S, "test.acc") else "?"
        gap = at_ctrl(final("patch", L, "test.acc") - final(ST, S, "test.acc"))
        add("e-large-vs-small-same-time", f"large LR + anneal ends with higher clean test accuracy than small LR "
            f"trained for the same Σηt ({n_ep} epochs), by ≥ {m:g}", f"final clean test acc: {L} − {S} at equal Σηt",
            gap, "superiority", [("patch", L, "test.acc"), (ST, S, "test.acc")], kind="accuracy",
            control_of=f"b-{L}-clean-final",
            notes=f"seeds {ctrl} (the equal-Σηt control's); {S} at equal Σηt: {_vals(small_st)}")
    if converged_acc is not None:
        c = converged_acc
        tr = "batch.acc"
        for arm in [L, S] + ([N] if N else []):
            acc = final("patch", arm, tr)
            add(f"f-{arm}-converged", f"{arm} is trained to convergence: its final training accuracy is ≥ {c:.0%}",
                f"final training acc − {c:g}, {arm}", acc - c, "bound", [("patch", arm, tr)],
                notes=f"final training acc: {_vals(acc)}",
                control_of=f"c-{N}-clean-final" if arm == N else f"b-{L}-clean-final")
        if ctrl:
            acc = at_ctrl(final(ST, S, tr))
            add("f-small-same-time-converged", f"small LR trained for the same Σηt is trained to convergence: its "
                f"final training accuracy is ≥ {c:.0%}", f"final training acc − {c:g}, {S} at equal Σηt", acc - c,
                "bound", [(ST, S, tr)], notes=f"seeds {ctrl}; final training acc: {_vals(acc)}",
                control_of=f"b-{L}-clean-final")
            at_conv = at_ctrl(o.first_reaching(ST, S, tr, c, "test.acc"))
            gap = at_ctrl(final("patch", L, "test.acc")) - at_conv
            never = [int(k) for k, x in at_conv.items() if not np.isfinite(x)]
            add("f-large-vs-small-converged", f"large LR + anneal ends with higher clean test accuracy than small LR "
                f"at convergence (the first probe of the equal-Σηt run with training accuracy ≥ {c:.0%}), by ≥ {m:g}",
                f"clean test acc: {L} final − {S} at convergence", gap, "superiority",
                [("patch", L, "test.acc"), (ST, S, "test.acc")], kind="accuracy", control_of=f"b-{L}-clean-final",
                notes=f"seeds {ctrl}" + (f"; never converged within the equal-Σηt run: seeds {never}" if never else ""))
    return v


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict of every regime: (a)-(d) of the package docstring, each a paired per-seed
    effect with a 95% t interval and an explicit test (bound or superiority)."""
    conv = cfg.verdicts.converged_acc if cfg.verdicts is not None else None
    return [v for o in outcomes(cfg, tables) for v in judge_regime(o, cfg.claim, conv)]
