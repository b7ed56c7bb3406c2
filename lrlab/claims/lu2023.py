"""Lu, Wu, Yang & Zou (2023), benign oscillation: large-LR SGD learns weak features (SPEC §5).

The feature-noise data of :mod:`lrlab.data.feature_noise`, the ReLU² CNN of
:mod:`lrlab.models.relu2_cnn`, the loss (y·f − 1)² and plain SGD (batch 1 by default).
Learning rates are c · m/‖u‖²; with this loss a strong point's fit y·f = 1 turns unstable at
c = 1/4, the lower end of the paper's window [1/4, 2/5] [derived: ``tests/test_lu2023_parts``].

One vectorised population trains every c of the grid × every seed (each seed its own dataset,
the members of one seed share initialisation and sample order); a second run trains the small
rate for the same Σ η_t as the large one (the physical-time control). Verdicts, each a
per-seed effect with a 95% t interval:

* (a) the large rate oscillates — the share of (probe, strong point) pairs with |y·f − 1| ≥ δ
  over the second half of training exceeds ``osc_min`` — and training still converges: the
  training loss averaged over the last ``tail`` of the steps is below ``conv_tol``; the small
  rate does not oscillate;
* (b) the weak-feature alignment max_r ⟨w, v⟩/‖v‖ grows by more than ``growth`` × under the
  large rate, and by less under the small rate (at equal steps and at equal Σ η_t);
* (c) weak-only test accuracy: large minus small (equal steps, and equal Σ η_t);
* (d) across the sweep: the best weak-only accuracy inside the paper's window minus the best
  below it; the report gives where the gain sets in and where training diverges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator

from ..config import FeatureNoiseConfig, ReLU2CNNConfig, Strict
from .stats import Verdict, t_interval, verdict_defined

NAME = "lu2023"
PAPER = "Lu, Wu, Yang & Zou 2023 — benign oscillation of SGD with large learning rates"
CURVES = ("train.loss", "train.acc", "yf.strong", "yf.strong.first", "oscillating", "align.weak",
          "align.strong", "noise", "test_weak.acc")


class Settings(Strict):
    seeds: list[int] = Field(min_length=2)
    data: FeatureNoiseConfig
    model: ReLU2CNNConfig
    steps: int = Field(gt=0, description="SGD steps of the sweep")
    batch_size: int = Field(1, gt=0, description="SGD minibatch (the paper: 1)")
    eval_every: int = Field(gt=0, description="probe cadence in steps (odd: a period-2 oscillation is "
                            "not sampled at one phase only)")
    test_every: int = Field(gt=0, description="weak-only test accuracy cadence (a multiple of eval_every)")
    grid: list[float] = Field(min_length=3, description="learning rates c in units of m/‖u‖²")
    large: float = Field(gt=0, description="c of the large rate in (a)-(c); one of grid")
    small: float = Field(gt=0, description="c of the small rate in (a)-(c); one of grid")
    window: list[float] = Field(min_length=2, max_length=2, description="the paper's window of c")
    delta: float = Field(gt=0, description="oscillation: |y·f − 1| ≥ delta")
    osc_min: float = Field(gt=0, lt=1, description="(a) 'oscillates': share above this")
    tail: float = Field(gt=0, le=0.5, description="(a) share of the last steps the convergence is averaged over")
    conv_tol: float = Field(gt=0, description="(a) converged: tail-mean training loss below this")
    growth: float = Field(gt=1, description="(b) 'learns the weak feature': alignment grows by more than this")
    acc_gain: float = Field(gt=0, description="(d) a rate 'gains' when its seed-mean weak-only accuracy beats "
                            "the best below the window by this much")
    control: bool = Field(True, description="also train the small rate to the large rate's Σ η_t")

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        for name in ("large", "small"):
            if getattr(self, name) not in self.grid:
                raise ValueError(f"{name} = {getattr(self, name)} must be one of grid {self.grid}")
        if not self.small < self.large:
            raise ValueError(f"small ({self.small}) must be below large ({self.large})")
        lo, hi = self.window
        if not 0 < lo < hi:
            raise ValueError(f"window must be increasing and positive, got {self.window}")
        if not any(c < lo for c in self.grid) or not any(lo <= c <= hi for c in self.grid):
            raise ValueError(f"grid {self.grid} needs rates below and inside the window {self.window}")
        if self.test_every % self.eval_every:
            raise ValueError(f"test_every {self.test_every} must be a multiple of eval_every {self.eval_every}")
        return self


class ClaimConfig(Strict):
    """The claim config (configs/lu2023/*.yaml): everything lives under ``claim``."""

    claim: Settings


@dataclass
class Outcome:
    cfg: ClaimConfig
    results: dict[str, dict]
    verdicts: list[Verdict] = field(default_factory=list)
    regime: str = "feature-noise"


def preflight(cfg: ClaimConfig) -> None:
    """Nothing to check beyond the config: the data are generated."""


# ------------------------------------------------------------------------------------ runs
def lr_unit(s: Settings) -> float:
    """m/‖u‖², the unit of every c in the config."""
    return s.model.filters / s.data.strong_norm ** 2


def _train(s: Settings, cs: list[float], steps: int, eval_every: int, test_every: int) -> dict:
    """Every c × seed in one vectorised SGD run; curves (rows steps, columns members) and finals."""
    from ..config import TrainConfig
    from ..data import feature_noise
    from ..models import ReLU2CNN
    from ..probes.accuracy import StackedData, group_metrics
    from ..probes.oscillation import benign_probes
    from ..train import Constant, Member, train_population

    data = [feature_noise(s.data, sd) for sd in s.seeds]
    members = [Member(f"c={c:g}", sd, Constant(c * lr_unit(s)), i)
               for c in cs for i, sd in enumerate(s.seeds)]
    model = ReLU2CNN(s.data.d, s.model.filters, s.model.init_std)
    index = [m.data_index for m in members]
    probes = benign_probes(model, data, index, s.delta)
    weak = StackedData.stack([d.test_weak for d in data])
    di = torch.tensor(index)
    probes["test_weak.acc"] = lambda model_, params: group_metrics(model_, params, weak, di, "margin_squared",
                                                                   "t")["t.acc"]
    cfg = TrainConfig(loss="margin_squared", steps=steps, batch_size=s.batch_size, eval_every=eval_every)
    res = train_population(model, members, [d.train for d in data], None, cfg, probes=probes,
                           probe_every={"test_weak.acc": test_every})
    curves = {m: res.curve(m) for m in CURVES}
    like = StackedData.stack([d.test_like for d in data])

    def acc(sd: StackedData) -> np.ndarray:
        return group_metrics(model, res.params, sd, di, "margin_squared", "t")["t.acc"].numpy()

    table = pd.DataFrame({"member": range(len(members)), "c": [c for c in cs for _ in s.seeds],
                          "seed": [m.seed for m in members], "diverged": res.members.diverged.to_numpy(),
                          "weak_acc": acc(weak), "like_acc": acc(like)})
    table.loc[table.diverged, ["weak_acc", "like_acc"]] = np.nan
    return {"table": table, "curves": curves}


def _run_job(cfg_data: dict, part: str, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    s = ClaimConfig.model_validate(cfg_data).claim
    if part == "sweep":
        return _train(s, list(s.grid), s.steps, s.eval_every, s.test_every)
    k = s.large / s.small  # the small rate for the large rate's Σ η_t
    steps = int(round(s.steps * k))
    every = s.eval_every * max(1, int(k) | 1)  # an odd multiple: about as many probes, no aliasing
    return _train(s, [s.small], steps, every, every * max(1, s.test_every // s.eval_every))


def run(cfg: ClaimConfig, out: Path, progress: bool = False, log: Callable[[str], None] = print,
        workers: int | None = None) -> list[Outcome]:
    """The sweep and the equal-Σηt control (in this process or two local processes), then verdicts."""
    from ..exec.local import default_workers, run_jobs

    s = cfg.claim
    parts = ["sweep"] + (["control"] if s.control else [])
    n = workers if workers is not None else default_workers(len(parts))
    log(f"[{NAME}] {len(s.grid)} rates × seeds {s.seeds} in one vectorised run"
        + (", and the small rate at the large rate's Σ η_t" if s.control else "") + f", on {n} worker(s)")
    data = cfg.model_dump(mode="json")
    done = run_jobs(_run_job, [(data, part) for part in parts], n, log, label=lambda job: job[1])
    o = Outcome(cfg, dict(zip(parts, done)))
    o.verdicts = judge(o)
    return [o]


# ------------------------------------------------------------------------------------ verdicts
def _members(r: dict, c: float, seeds: list[int]) -> list[int]:
    """Member ids of rate c, in seed order."""
    t = r["table"]
    return [int(t[(t.c == c) & (t.seed == sd)].member.iloc[0]) for sd in seeds]


def measures(r: dict, c: float, s: Settings) -> pd.DataFrame:
    """Per seed at rate c: oscillation share (first and second half), tail-mean loss, final train
    accuracy, weak/strong alignment at start and end, noise memorisation, weak-only accuracy."""
    rows = []
    cv, t = r["curves"], r["table"].set_index("member")
    for sd, k in zip(s.seeds, _members(r, c, s.seeds)):
        osc = cv["oscillating"][k].dropna()
        half = osc.index.max() / 2
        loss = cv["train.loss"][k].dropna()
        tail = loss[loss.index >= (1 - s.tail) * loss.index.max()]
        aw, au = cv["align.weak"][k], cv["align.strong"][k]
        ok = not bool(t.loc[k, "diverged"])
        rows.append({"seed": sd, "diverged": not ok,
                     "osc_first": float(osc[osc.index < half].mean()) if ok else math.nan,
                     "osc_second": float(osc[osc.index >= half].mean()) if ok else math.nan,
                     "tail_loss": float(tail.mean()) if ok else math.nan,
                     "train_acc": float(cv["train.acc"][k].dropna().iloc[-1]) if ok else math.nan,
                     "weak0": float(aw.iloc[0]), "weakT": float(aw.dropna().iloc[-1]) if ok else math.nan,
                     "strong0": float(au.iloc[0]), "strongT": float(au.dropna().iloc[-1]) if ok else math.nan,
                     "noiseT": float(cv["noise"][k].dropna().iloc[-1]) if ok else math.nan,
                     "weak_acc": float(t.loc[k, "weak_acc"])})
    m = pd.DataFrame(rows)
    m["growth"] = np.where(m.weak0 > 0, m.weakT / m.weak0, np.nan)  # undefined if no filter started aligned
    return m


def window_summary(r: dict, s: Settings) -> pd.DataFrame:
    """Per rate c: seed-mean weak-only accuracy, its 95% interval, and how many seeds diverged."""
    rows = []
    for c, g in r["table"].groupby("c"):
        acc = g.weak_acc.dropna().to_numpy()
        ci = t_interval(acc) if len(acc) else None
        rows.append({"c": c, "weak_acc": ci.mean if ci else math.nan, "low": ci.low if ci else math.nan,
                     "high": ci.high if ci else math.nan, "diverged": int(g.diverged.sum()), "seeds": len(g)})
    return pd.DataFrame(rows).sort_values("c").reset_index(drop=True)


def judge(o: Outcome) -> list[Verdict]:
    """Every verdict from the sweep and the control (module docstring)."""
    s = o.cfg.claim
    v: list[Verdict] = []

    def add(id_, statement, effect, values, notes="", min_effect=0.0):
        v.append(verdict_defined(NAME, id_, statement, effect, values, min_effect, o.regime, notes=notes))

    sw = o.results["sweep"]
    L, S = measures(sw, s.large, s), measures(sw, s.small, s)
    C = measures(o.results["control"], s.small, s) if "control" in o.results else None
    lg = f"large rate (c = {s.large:g})"
    sm = f"small rate (c = {s.small:g})"
    add("a-large-oscillates", f"{lg}: strong points oscillate (|y·f − 1| ≥ {s.delta:g}) through the second half "
        f"of training, in more than {s.osc_min:.0%} of (probe, point) pairs",
        f"share of oscillating pairs in steps ≥ T/2 − {s.osc_min:g}", (L.osc_second - s.osc_min).to_numpy(),
        notes="share in the first / second half per seed: " + ", ".join(
            f"{a:.2f} / {b:.2f}" for a, b in zip(L.osc_first, L.osc_second)))
    add("a-large-converges", f"{lg}: training still converges — the training loss averaged over the last "
        f"{s.tail:.0%} of the steps is below {s.conv_tol:g}", f"{s.conv_tol:g} − tail-mean training loss",
        (s.conv_tol - L.tail_loss).to_numpy(),
        notes="tail-mean loss per seed: " + ", ".join(f"{x:.2g}" for x in L.tail_loss)
        + "; final training accuracy: " + ", ".join(f"{x:.2f}" for x in L.train_acc))
    add("a-small-smooth", f"{sm}: strong points do not oscillate in the second half",
        f"{s.osc_min:g} − share of oscillating pairs in steps ≥ T/2", (s.osc_min - S.osc_second).to_numpy(),
        notes="share per seed: " + ", ".join(f"{x:.3f}" for x in S.osc_second))
    lf = math.log10(s.growth)
    add("b-large-learns-weak", f"{lg}: the weak-feature alignment max_r ⟨w, v⟩/‖v‖ grows by more than "
        f"{s.growth:g}×", f"log10(alignment T / alignment 0) − log10({s.growth:g})",
        (np.log10(L.growth) - lf).to_numpy(),
        notes="alignment start → end per seed: " + ", ".join(f"{a:.3f} → {b:.2f}" for a, b in zip(L.weak0, L.weakT)))
    for label, M, when in (("b-small-does-not", S, "at equal steps"),
                           ("b-small-does-not-same-time", C, "at the large rate's Σ η_t")):
        if M is None:
            continue
        add(label, f"{sm} {when}: the weak-feature alignment grows by less than {s.growth:g}×",
            f"log10({s.growth:g}) − log10(alignment T / alignment 0)", (lf - np.log10(M.growth)).to_numpy(),
            notes="alignment start → end per seed: " + ", ".join(
                f"{a:.3f} → {b:.2f}" for a, b in zip(M.weak0, M.weakT))
            + "; strong-feature alignment at the end: " + ", ".join(f"{x:.2f}" for x in M.strongT))
    add("b-large-vs-small", f"the {lg} ends with a larger weak-feature alignment than the {sm} (equal steps)",
        "log10(alignment T, large / alignment T, small)", (np.log10(L.weakT) - np.log10(S.weakT)).to_numpy(),
        notes="strong-feature alignment at the end, large / small: " + ", ".join(
            f"{a:.2f} / {b:.2f}" for a, b in zip(L.strongT, S.strongT)))
    for label, M, when in (("c-weak-test-acc", S, "the small rate at equal steps"),
                           ("c-weak-test-acc-same-time", C, "the small rate at the large rate's Σ η_t")):
        if M is None:
            continue
        add(label, f"weak-only test accuracy: the {lg} beats {when} (paper: 99.38% against 93.75%)",
            "weak-only test accuracy (large − small)", (L.weak_acc - M.weak_acc).to_numpy(),
            notes=f"large {L.weak_acc.mean():.4f}, small {M.weak_acc.mean():.4f} (seed means)", min_effect=0.01)
    lo, hi = s.window
    t = sw["table"]
    inside, below = [], []
    for sd in s.seeds:
        g = t[t.seed == sd]
        inside.append(float(g[(g.c >= lo) & (g.c <= hi)].weak_acc.max()))
        below.append(float(g[g.c < lo].weak_acc.max()))
    onset, div = effect_window(sw, s)
    add("d-window", f"across the sweep the best weak-only accuracy inside the window [{lo:g}, {hi:g}]·m/‖u‖² beats "
        "the best below it", "max acc (c in window) − max acc (c below window)",
        np.asarray(inside) - np.asarray(below), min_effect=0.01,
        notes=f"the gain of ≥ {s.acc_gain:g} sets in at c = {onset:g} and the first divergence is at c = {div:g} "
        f"(paper's window {lo:g}–{hi:g})")
    return v


def effect_window(r: dict, s: Settings) -> tuple[float, float]:
    """Smallest c whose seed-mean weak-only accuracy beats the best below the window by ``acc_gain``
    (NaN: none), and the smallest c at which any seed diverged (NaN: none)."""
    w = window_summary(r, s)
    base = w[w.c < s.window[0]].weak_acc.max()
    gain = w[(w.weak_acc >= base + s.acc_gain) & (w.diverged == 0)]
    div = w[w.diverged > 0]
    return (float(gain.c.min()) if len(gain) else math.nan, float(div.c.min()) if len(div) else math.nan)


# ------------------------------------------------------------------------------------ report
def section(cfg: ClaimConfig, outcomes: list[Outcome], figdir: Path, rel: Path) -> str:
    """The report section: setup, the per-rate table, and the figures."""
    o = outcomes[0]
    s = cfg.claim
    d = s.data
    w = window_summary(o.results["sweep"], s)
    lines = [f"## {NAME}: {PAPER}", "",
             f"Feature-noise data (SPEC §5): d = {d.d}, n = {d.n_train} training points, ‖u‖ = {d.strong_norm:g}, "
             f"‖v‖ = {d.weak_norm:g}, noise σ_p = {d.noise_std:g} (‖ξ‖ ≈ {d.noise_std * math.sqrt(d.d - 2):.2f}), "
             f"strong share ρ = {d.strong_frac:g}; ReLU² CNN with m = {s.model.filters} filters per class, "
             f"init σ0 = {s.model.init_std:g}; loss (y·f − 1)², SGD batch {s.batch_size}, {s.steps} steps; "
             f"seeds {s.seeds}. Rates are c·m/‖u‖² (large c = {s.large:g}, small c = {s.small:g}); the "
             f"paper's window is c ∈ [{s.window[0]:g}, {s.window[1]:g}].", "",
             "| c | weak-only test acc (seed mean) | 95% interval | diverged seeds |", "|---|---|---|---|"]
    for _, row in w.iterrows():
        lines.append(f"| {row.c:g} | {row.weak_acc:.4f} | [{row.low:.4f}, {row.high:.4f}] | "
                     f"{int(row.diverged)}/{int(row.seeds)} |")
    lines.append("")
    for f, alt in ((_margin_figure(o, figdir), "y·f on strong points, large and small rate"),
                   (_alignment_figure(o, figdir), "feature alignments and noise memorisation over steps"),
                   (_sweep_figure(o, figdir), "weak-only test accuracy against the learning rate")):
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


def _margin_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    s = o.cfg.claim
    r = o.results["sweep"]
    sd = s.seeds[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, c, title in ((axes[0], s.large, "large"), (axes[1], s.small, "small")):
        k = _members(r, c, [sd])[0]
        for metric, lab, lw in (("yf.strong.first", "one strong point", 0.6), ("yf.strong", "mean over strong points", 1.2)):
            col = r["curves"][metric][k]
            ax.plot(col.index, col.to_numpy(), lw=lw, label=lab)
        ax.axhspan(1 - s.delta, 1 + s.delta, color="0.85", zorder=0, label=f"|y·f − 1| < {s.delta:g}")
        ax.set_title(f"{title} rate c = {c:g}, seed {sd}", fontsize=9)
        ax.set_xlabel("SGD step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("y·f on strong training points")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{NAME}: oscillation of strong points", fontsize=10)
    return save(fig, figdir / f"{NAME}-margins.png")


def _alignment_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    s = o.cfg.claim
    runs = [(o.results["sweep"], s.large, "large", "C3", "-")]
    if "control" in o.results:
        runs.append((o.results["control"], s.small, "small, same Σηt", "C2", "-"))
    runs.append((o.results["sweep"], s.small, "small", "C0", "--"))  # last: drawn over its own control
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, metric, title in zip(axes, ("align.weak", "align.strong", "noise"),
                                 ("weak feature max_r⟨w, v⟩/‖v‖", "strong feature max_r⟨w, u⟩/‖u‖",
                                  "noise memorisation max_r⟨w, ξ_i⟩/‖ξ_i‖")):
        for r, c, lab, col, ls in runs:
            ks = _members(r, c, s.seeds)
            cur = r["curves"][metric][ks]
            t = cur.index.to_numpy() * (c * lr_unit(s))  # physical time Σ η_t
            ax.plot(t, cur.mean(axis=1).to_numpy(), color=col, lw=1.2, ls=ls, label=f"{lab} (c = {c:g})")
            ax.fill_between(t, cur.min(axis=1).to_numpy(), cur.max(axis=1).to_numpy(), color=col, alpha=0.15)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("Σ η_t")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{NAME}: what each rate learns (seed mean, band: min–max over seeds)", fontsize=10)
    return save(fig, figdir / f"{NAME}-alignment.png")


def _sweep_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    s = o.cfg.claim
    w = window_summary(o.results["sweep"], s)
    t = o.results["sweep"]["table"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.axvspan(*s.window, color="#e9c46a", alpha=0.3, label="paper's window")
    ax.scatter(t.c, t.weak_acc, s=8, color="0.5", label="one seed")
    ax.plot(w.c, w.weak_acc, color="C3", lw=1.4, marker="o", ms=3, label="seed mean (band: 95% interval)")
    ax.fill_between(w.c, w.low.clip(0, 1), w.high.clip(0, 1), color="C3", alpha=0.15)
    for _, row in w[w.diverged > 0].iterrows():
        ax.annotate(f"{int(row.diverged)}/{int(row.seeds)} diverged", (row.c, 0.42), rotation=90, fontsize=6,
                    ha="center", va="bottom")
    ax.set_ylim(0.4, 1.02)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate c = η·‖u‖²/m")
    ax.set_ylabel("weak-only test accuracy")
    ax.set_title(f"{NAME}: weak-only test accuracy against η", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, figdir / f"{NAME}-sweep.png")
