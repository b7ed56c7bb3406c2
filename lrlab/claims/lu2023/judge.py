"""lu2023 verdicts, from the stored tables only (no training).

Tables: ``finals`` (job, member, c, seed, diverged, weak_acc, like_acc) and ``curves`` (job,
member, c, seed, step, metric, value) for the jobs ``sweep`` and ``control``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ...stats import Verdict, t_interval, verdict
from ..protocol import Tables
from .config import Config, Settings

NAME = "lu2023"
REGIME = "feature-noise"


@dataclass
class Run:
    """One job's tables: final accuracies per member, and each curve as steps × members."""

    finals: pd.DataFrame
    curves: dict[str, pd.DataFrame]


def run_of(tables: Tables, job: str) -> Run | None:
    """The tables of job ``sweep`` or ``control`` (None when that job is not part of the claim)."""
    f = tables["finals"]
    f = f[f.job == job].drop(columns="job").reset_index(drop=True)
    if f.empty:
        return None
    c = tables["curves"]
    c = c[c.job == job]
    curves = {m: g.pivot(index="step", columns="member", values="value") for m, g in c.groupby("metric")}
    return Run(f, curves)


def _members(r: Run, c: float, seeds: list[int]) -> list[int]:
    """Member ids of rate c, in seed order."""
    t = r.finals
    return [int(t[(t.c == c) & (t.seed == sd)].member.iloc[0]) for sd in seeds]


def measures(r: Run, c: float, s: Settings, seeds: list[int]) -> pd.DataFrame:
    """Per seed at rate c: oscillation share in function and weight space (first and second half;
    NaN where the weight-space curve is missing), tail-mean loss, final train
    accuracy, weak/strong alignment at start and end, noise memorisation, weak-only accuracy."""
    rows = []
    cv, t = r.curves, r.finals.set_index("member")
    for sd, k in zip(seeds, _members(r, c, seeds)):
        osc = cv["oscillating"][k].dropna()
        half = osc.index.max() / 2
        ow = cv["osc.weights"][k].dropna() if "osc.weights" in cv else pd.Series(dtype=float)
        loss = cv["train.loss"][k].dropna()
        tail = loss[loss.index >= (1 - s.tail) * loss.index.max()]
        aw, au = cv["align.weak"][k], cv["align.strong"][k]
        ok = not bool(t.loc[k, "diverged"])
        rows.append({"seed": sd, "diverged": not ok,
                     "osc_first": float(osc[osc.index < half].mean()) if ok else math.nan,
                     "osc_second": float(osc[osc.index >= half].mean()) if ok else math.nan,
                     "oscw_first": float(ow[ow.index < half].mean()) if ok else math.nan,
                     "oscw_second": float(ow[ow.index >= half].mean()) if ok else math.nan,
                     "tail_loss": float(tail.mean()) if ok else math.nan,
                     "train_acc": float(cv["train.acc"][k].dropna().iloc[-1]) if ok else math.nan,
                     "weak0": float(aw.iloc[0]), "weakT": float(aw.dropna().iloc[-1]) if ok else math.nan,
                     "strong0": float(au.iloc[0]), "strongT": float(au.dropna().iloc[-1]) if ok else math.nan,
                     "noiseT": float(cv["noise"][k].dropna().iloc[-1]) if ok else math.nan,
                     "weak_acc": float(t.loc[k, "weak_acc"])})
    m = pd.DataFrame(rows)
    m["growth"] = np.where(m.weak0 > 0, m.weakT / m.weak0, np.nan)  # undefined if no filter started aligned
    return m


def window_summary(r: Run) -> pd.DataFrame:
    """Per rate c: seed-mean weak-only accuracy, its 95% interval, and how many seeds diverged."""
    rows = []
    for c, g in r.finals.groupby("c"):
        acc = g.weak_acc.dropna().to_numpy()
        ci = t_interval(acc) if len(acc) else None
        rows.append({"c": c, "weak_acc": ci.mean if ci else math.nan, "low": ci.low if ci else math.nan,
                     "high": ci.high if ci else math.nan, "diverged": int(g.diverged.sum()), "seeds": len(g)})
    return pd.DataFrame(rows).sort_values("c").reset_index(drop=True)


def effect_window(r: Run, s: Settings) -> tuple[float, float]:
    """Smallest c whose seed-mean weak-only accuracy beats the best below the window by ``acc_gain``
    (NaN: none), and the smallest c at which any seed diverged (NaN: none)."""
    w = window_summary(r)
    base = w[w.c < s.window[0]].weak_acc.max()
    gain = w[(w.weak_acc >= base + s.acc_gain) & (w.diverged == 0)]
    div = w[w.diverged > 0]
    return (float(gain.c.min()) if len(gain) else math.nan, float(div.c.min()) if len(div) else math.nan)


def _log10(x) -> np.ndarray:
    """log10 of a positive quantity; NaN (a failed seed) where it is not positive or not defined."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x > 0)
    out[ok] = np.log10(x[ok])
    return out


def _failures(**runs: pd.DataFrame) -> str:
    """Per seed, why a measurement failed: a diverged run, or a weak alignment that is not positive
    (no log growth or log ratio); '' when none did. ``runs`` maps a label to a :func:`measures` table."""
    out = []
    for label, m in runs.items():
        for r in m.itertuples():
            if r.diverged:
                out.append(f"seed {r.seed}: {label} diverged")
            elif not (r.weak0 > 0 and r.weakT > 0):
                out.append(f"seed {r.seed}: {label} weak alignment start {r.weak0:.3g}, end {r.weakT:.3g} (not > 0)")
    return "; ".join(out)


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """(a) oscillation and convergence, (b) weak-feature learning, (c) weak-only accuracy, (d) the
    window — each a per-seed effect with a 95% t interval. (a) and the (b) growth verdicts are
    bound tests (the effect is threshold − measure or measure − threshold, thresholds in ``claim``;
    the weight-space (a) verdicts' threshold in ``verdicts.w_osc_min``);
    b-large-vs-small, (c) and (d) are superiority tests with min_effect from ``verdicts``. A diverged
    run, a weak alignment that is not positive where its log is taken, or a missing weight-space
    curve gives a NaN effect: a failed seed."""
    s, vt, seeds = cfg.claim, cfg.verdicts, cfg.execution.seeds
    v: list[Verdict] = []

    def add(id_, statement, effect, values, test, min_effect=0.0, notes="", failed="", kind="other"):
        if failed:
            notes += f"{'; ' if notes else ''}failed: {failed}"
        control_of = id_.removesuffix("-same-time") if id_.endswith("-same-time") else ""
        v.append(verdict(NAME, id_, statement, effect, np.asarray(values, dtype=np.float64), min_effect, REGIME,
                         notes=notes, kind=kind, test=test, control_of=control_of))

    def diverged(**runs: pd.DataFrame) -> str:
        return "; ".join(f"seed {r.seed}: {label} diverged" for label, m in runs.items()
                         for r in m.itertuples() if r.diverged)

    def no_weights(**runs: pd.DataFrame) -> str:
        return "; ".join(f"seed {r.seed}: {label} diverged" if r.diverged else
                         f"seed {r.seed}: {label} has no weight-space share in the second half"
                         for label, m in runs.items() for r in m.itertuples()
                         if r.diverged or not np.isfinite(r.oscw_second))

    sw, ctrl = run_of(tables, "sweep"), run_of(tables, "control")
    L, S = measures(sw, s.large, s, seeds), measures(sw, s.small, s, seeds)
    C = measures(ctrl, s.small, s, seeds) if ctrl is not None else None
    lg = f"large rate (c = {s.large:g})"
    sm = f"small rate (c = {s.small:g})"
    add("a-large-oscillates", f"{lg}: strong points oscillate (|y·f − 1| ≥ {s.delta:g}) through the second half "
        f"of training, in more than {s.osc_min:.0%} of (probe, point) pairs",
        f"share of oscillating pairs in steps ≥ T/2 − {s.osc_min:g}", (L.osc_second - s.osc_min).to_numpy(), "bound",
        notes="share in the first / second half per seed: " + ", ".join(
            f"{a:.2f} / {b:.2f}" for a, b in zip(L.osc_first, L.osc_second)), failed=diverged(large=L))
    add("a-large-converges", f"{lg}: training still converges — the training loss averaged over the last "
        f"{s.tail:.0%} of the steps is below {s.conv_tol:g}", f"{s.conv_tol:g} − tail-mean training loss",
        (s.conv_tol - L.tail_loss).to_numpy(), "bound",
        notes="tail-mean loss per seed: " + ", ".join(f"{x:.2g}" for x in L.tail_loss)
        + "; final training accuracy: " + ", ".join(f"{x:.2f}" for x in L.train_acc), failed=diverged(large=L))
    add("a-small-smooth", f"{sm}: strong points do not oscillate in the second half (at most {s.osc_min:.0%} of "
        "(probe, point) pairs)", f"{s.osc_min:g} − share of oscillating pairs in steps ≥ T/2",
        (s.osc_min - S.osc_second).to_numpy(), "bound",
        notes="share per seed: " + ", ".join(f"{x:.3f}" for x in S.osc_second), failed=diverged(small=S))
    wdef = (f"(filter, probe) pairs whose strong component ⟨w, u⟩/‖u‖ reverses its motion between consecutive "
            f"probes (Δ_prev·Δ_next < 0, both moves ≥ {s.w_rel:g}·|a|)")
    add("a-large-oscillates-weights", f"{lg}: the iterates oscillate in weight space through the second half of "
        f"training — more than {100 * vt.w_osc_min:.3g}% of {wdef}",
        f"share of reversing (filter, probe) pairs in steps ≥ T/2 − {vt.w_osc_min:g}",
        (L.oscw_second - vt.w_osc_min).to_numpy(), "bound",
        notes="weight-space share in the first / second half per seed: " + ", ".join(
            f"{a:.2f} / {b:.2f}" for a, b in zip(L.oscw_first, L.oscw_second)), failed=no_weights(large=L))
    add("a-small-smooth-weights", f"{sm}: the iterates do not oscillate in weight space in the second half — at "
        f"most {100 * vt.w_osc_min:.3g}% of {wdef}", f"{vt.w_osc_min:g} − share of reversing (filter, probe) pairs in "
        "steps ≥ T/2", (vt.w_osc_min - S.oscw_second).to_numpy(), "bound",
        notes="weight-space share per seed: " + ", ".join(f"{x:.3f}" for x in S.oscw_second),
        failed=no_weights(small=S))
    lf = math.log10(s.growth)
    add("b-large-learns-weak", f"{lg}: the weak-feature alignment max_r ⟨w, v⟩/‖v‖ grows by more than "
        f"{s.growth:g}×", f"log10(alignment T / alignment 0) − log10({s.growth:g})",
        _log10(L.weakT) - _log10(L.weak0) - lf, "bound",
        notes="alignment start → end per seed: " + ", ".join(f"{a:.3f} → {b:.2f}" for a, b in zip(L.weak0, L.weakT)),
        failed=_failures(large=L))
    for label, M, when in (("b-small-does-not", S, "at equal steps"),
                           ("b-small-does-not-same-time", C, "at the large rate's Σ η_t")):
        if M is None:
            continue
        add(label, f"{sm} {when}: the weak-feature alignment grows by less than {s.growth:g}×",
            f"log10({s.growth:g}) − log10(alignment T / alignment 0)", lf - (_log10(M.weakT) - _log10(M.weak0)),
            "bound", notes="alignment start → end per seed: " + ", ".join(
                f"{a:.3f} → {b:.2f}" for a, b in zip(M.weak0, M.weakT))
            + "; strong-feature alignment at the end: " + ", ".join(f"{x:.2f}" for x in M.strongT),
            failed=_failures(small=M))
    add("b-large-vs-small", f"the {lg} ends with a larger weak-feature alignment than the {sm} (equal steps), "
        f"by at least 10^{vt.b_log_ratio_min:g} ≈ {10 ** vt.b_log_ratio_min:.2g}×",
        "log10(alignment T, large / alignment T, small)", _log10(L.weakT) - _log10(S.weakT), "superiority",
        vt.b_log_ratio_min, notes="strong-feature alignment at the end, large / small: " + ", ".join(
            f"{a:.2f} / {b:.2f}" for a, b in zip(L.strongT, S.strongT)),
        failed="; ".join(x for x in (_failures(large=L), _failures(small=S)) if x))
    for label, M, when in (("c-weak-test-acc", S, "the small rate at equal steps"),
                           ("c-weak-test-acc-same-time", C, "the small rate at the large rate's Σ η_t")):
        if M is None:
            continue
        add(label, f"weak-only test accuracy: the {lg} beats {when} by at least {vt.c_acc_min:g} "
            "(paper: 99.38% against 93.75%)", "weak-only test accuracy (large − small)",
            (L.weak_acc - M.weak_acc).to_numpy(), "superiority", vt.c_acc_min,
            notes=f"large {L.weak_acc.mean():.4f}, small {M.weak_acc.mean():.4f} (seed means)",
            failed=diverged(large=L, small=M), kind="accuracy")
    lo, hi = s.window
    t = sw.finals
    inside, below, none = [], [], []
    for sd in seeds:
        g = t[t.seed == sd]
        win, low = g[(g.c >= lo) & (g.c <= hi)].weak_acc, g[g.c < lo].weak_acc
        inside.append(float(win.max()))  # NaN (a failed seed) when every rate on that side diverged
        below.append(float(low.max()))
        none += [f"seed {sd}: every rate {side} the window diverged"
                 for side, a in (("inside", win), ("below", low)) if a.isna().all()]
    onset, div = effect_window(sw, s)
    add("d-window", f"across the sweep the best weak-only accuracy inside the window [{lo:g}, {hi:g}]·m/‖u‖² beats "
        f"the best below it by at least {vt.d_acc_min:g}", "max acc (c in window) − max acc (c below window)",
        np.asarray(inside) - np.asarray(below), "superiority", vt.d_acc_min, kind="accuracy",
        notes=f"the gain of ≥ {s.acc_gain:g} sets in at c = {onset:g} and the first divergence is at c = {div:g} "
        f"(paper's window {lo:g}–{hi:g})", failed="; ".join(none))
    return v
