"""li2019-patch report: the setup, final accuracies and the accuracy curves, from the stored tables."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from ...config import Cifar10PatchConfig, RunConfig
from ...report import epoch_curves
from ...report.figures import save, subplots
from ...stats import Verdict
from ...train.schedules import from_config
from ..protocol import Tables
from .config import Config
from .judge import NAME, RegimeOutcome, outcomes

PAPER = "Li, Wei & Ma 2019 — CIFAR-10 with a class-signature patch"
EVAL_SERIES = (("test.acc", "clean test"), ("test_patched.acc", "patched test"),
               ("patch_only.acc", "patch-only"))


def _fmt(x: pd.Series) -> str:
    return f"{x.mean():.3f} ± {x.std(ddof=1) if len(x) > 1 else 0:.3f}"


def conditioning(d: Cifar10PatchConfig) -> str:
    """What the intervals are conditional on, from the regime's data config (which the claim
    config requires to carry a patch): the data subset (``subset_seed``) and the patch
    (``patch.seed``) are drawn once, not per seed."""
    subset = bool(d.n_per_class or d.n_test_per_class)
    draws = [f"the data subset (subset_seed = {d.subset_seed}: {d.n_per_class or 'all'} training and "
             f"{d.n_test_per_class or 'all'} test images per class)"] if subset else []
    draws.append(f"the patch (patch.seed = {d.patch.seed}: z, ζ, the patchable {d.patch.patchable_frac:.0%} "
                 "of the training images and the patched and patch-only evaluation sets)")
    return ("The intervals are conditional on one draw of " + " and of ".join(draws)
            + ("" if subset else ", on all training and test images (no subset is drawn)")
            + ", the same for every seed and member (the clean control uses the same images): they cover "
            "initialisation, minibatch order and the per-use patch draws (sign, patch-only uses) only, "
            "not a new draw of the data or the patch.")


def physical_time(rc: RunConfig, schedule: str, epochs: np.ndarray) -> np.ndarray:
    """Σηt (in epochs × learning rate) a schedule of ``rc`` has spent before each epoch in ``epochs``."""
    sch = from_config(rc.population.schedules[schedule], int(max(epochs.max(), 1)))
    lr = np.array([float(sch(e)) for e in range(int(epochs.max()) + 1)])
    cum = np.concatenate([[0.0], np.cumsum(lr)])
    return cum[epochs.astype(int)]


def same_time_figure(o: RegimeOutcome, large: str, small: str, converged_acc: float | None, path: Path) -> Path:
    """Clean test and training accuracy against Σηt (log scale) for large LR, small LR, and small LR
    trained for the large schedule's Σηt (mean over the seeds each has, min–max band)."""
    fig, axes = subplots(1, 2, figsize=(10, 3.8), sharex=True)
    runs = [("patch", large, f"{large} (+ anneal)"), ("patch", small, f"{small}, {o.cfg.train.steps} epochs"),
            ("same-time", small, f"{small}, equal Σηt")]
    colors = itertools.cycle(["#e76f51", "#264653", "#2a9d8f"])
    for (data, name, label), color in zip(runs, colors):
        for ax, metric in zip(axes, ("test.acc", "batch.acc")):
            sub = o.table[(o.table.data == data) & (o.table.schedule == name) & (o.table.metric == metric)]
            if sub.empty:
                continue
            piv = sub.pivot_table(index="epoch", columns="seed", values="value").dropna(how="all")
            x = physical_time(o.cfg, name, piv.index.to_numpy())
            keep = x > 0
            ax.plot(x[keep], piv.mean(axis=1).to_numpy()[keep], color=color, label=label)
            ax.fill_between(x[keep], piv.min(axis=1).to_numpy()[keep], piv.max(axis=1).to_numpy()[keep],
                            color=color, alpha=0.15, lw=0)
    if converged_acc is not None:
        axes[1].axhline(converged_acc, color="k", lw=0.8, ls=":")
        axes[1].text(0.02, converged_acc, f" converged ({converged_acc:.0%})", transform=axes[1].get_yaxis_transform(),
                     fontsize=8, va="bottom")
    for ax, ylabel in zip(axes, ("clean test accuracy", "training accuracy (minibatch mean)")):
        ax.set_xscale("log")
        ax.set_xlabel("Σηt (epochs × learning rate)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{NAME} [{o.regime}]: the equal-Σηt control", fontsize=11)
    return save(fig, path)


def reading(o: RegimeOutcome, verdicts: list[Verdict]) -> str:
    """A plain-words reading derived from the regime's verdicts (never fixed text)."""
    st = {v.id: v.status for v in verdicts if v.regime == o.regime}

    def say(prefix: str) -> str:
        got = {status for id_, status in st.items() if id_.startswith(prefix)}
        if not got:
            return "was not tested"
        return "holds" if got == {"PASS"} else ("does not hold" if "FAIL" in got else "is unclear")

    text = (f"Reading of regime `{o.regime}`: (a) the learning order on the patch {say('a-')}; "
            f"(b) large LR + anneal ending with higher clean accuracy {say('b-')}; (c) activation "
            f"noise reproducing the large-LR behaviour {say('c-')}; (d) the clean-data control: "
            f"gap without the patch {say('d-gap')}, the patch widening it {say('d-patch')}; (e) large LR "
            f"ahead of small LR given the same Σηt {say('e-')}; (f) the runs trained to convergence "
            f"{say('f-') if any(k.endswith('-converged') for k in st) else 'was not tested'}, large LR ahead at "
            f"convergence {say('f-large-vs')}.")
    if st.get("a-small-early") == "FAIL":
        text += (" Small LR did not learn the patch early, so 'stays near chance until the "
                 "anneal' cannot tell the schedules apart here, and a clean-accuracy gain of "
                 "large LR is not evidence for the patch mechanism unless the patch widens the "
                 "gap (d).")
    return text


def report(cfg: Config, tables: Tables, verdicts: list[Verdict], figdir: Path, rel: Path) -> str:
    """The report section: setup, final accuracies, the paper's figure per schedule."""
    s = cfg.claim
    lines = [f"## {NAME}: {PAPER}", "",
             "Large LR + anneal, small LR and small LR + activation noise on CIFAR-10 (JPEG copy) "
             f"with the class-signature patch of docs/claims/{NAME}.md; large and small LR again on clean "
             "images as the control. Members with the same seed share initialisation, minibatch "
             "order and per-use patch draws, so every effect is a paired per-seed difference. Chance is "
             "10%.", ""]
    for o in outcomes(cfg, tables):
        rc = o.cfg
        d, t = rc.data, rc.train
        lines += [f"### Regime `{o.regime}`", "",
                  f"Data: {d.n_per_class or 'all'} training images per class, "
                  f"{d.n_test_per_class or 'all'} test images per class, patch {d.patch.model_dump()}. "
                  f"Model: {rc.model.model_dump()}. Training: {t.steps} epochs, batch {t.batch_size}, "
                  f"momentum {t.momentum} (Nesterov {t.nesterov}), weight decay {t.weight_decay}. "
                  "Schedules: " + ", ".join(f"`{k}` = {v.model_dump(exclude_defaults=True)}"
                                            for k, v in rc.population.schedules.items())
                  + "; activation noise: " + (", ".join(
                      f"`{k}` σ={n.sigma} until epoch {n.until}"
                      for k, n in rc.population.activation_noise.items()) or "none") + ".", "",
                  conditioning(d), "",
                  "Jobs (one run each, tables stored under `jobs/<job>/`): "
                  + ", ".join(f"`{j}`" for j in o.jobs), ""]
        rows = ["| data | schedule | epochs | clean test | patched test | patch-only | "
                f"patch-only @ epoch {s.early_epoch} | training acc |", "|---|---|---|---|---|---|---|---|"]
        for kind in ("patch", "clean", "same-time"):
            for name in sorted(o.table[o.table.data == kind].schedule.unique()):
                vals = []
                for metric in ("test.acc", "test_patched.acc", "patch_only.acc"):
                    try:
                        vals.append(_fmt(o.per_seed(kind, name, metric).dropna()))
                    except KeyError:
                        vals.append("—")
                for metric, epoch in (("patch_only.acc", s.early_epoch), ("batch.acc", None)):
                    try:
                        vals.append(_fmt(o.per_seed(kind, name, metric, epoch).dropna()))
                    except KeyError:
                        vals.append("—")
                n_ep = int(o.table[o.table.data == kind].epoch.max())
                rows.append(f"| {kind} | {name} | {n_ep} | " + " | ".join(vals) + " |")
        lines += ["Final accuracy, mean ± sd over seeds (`same-time`: small LR alone for the large schedule's "
                  f"Σηt, seeds {o.control_seeds}; training accuracy: the mean minibatch accuracy since the "
                  "previous probe):", ""] + rows + [""]
        panels = []
        for name in rc.population.schedules:
            sub = o.table[(o.table.data == "patch") & (o.table.schedule == name)]
            marks: list = list(getattr(rc.population.schedules[name], "milestones", []))
            noise = rc.population.activation_noise.get(name)
            if noise is not None and noise.until:
                marks.append((noise.until, "noise off"))
            panels.append((f"{name} (η={rc.population.schedules[name].lr})", sub, marks))
        fig = epoch_curves(panels, EVAL_SERIES, figdir / f"{NAME}-{o.regime}-accuracy.png",
                           title=f"{NAME} [{o.regime}]: accuracy over epochs (mean, min–max over seeds)")
        lines += [f"![accuracy over epochs, regime {o.regime}]({rel / fig.name})", ""]
        if s.control:
            panels = [(f"{name}, clean images", o.table[(o.table.data == "clean") & (o.table.schedule == name)],
                       list(getattr(rc.population.schedules[name], "milestones", [])))
                      for name in (s.large, s.small)]
            fig = epoch_curves(panels, EVAL_SERIES[:1], figdir / f"{NAME}-{o.regime}-control.png",
                               title=f"{NAME} [{o.regime}]: control without the patch")
            lines += [f"![control without the patch, regime {o.regime}]({rel / fig.name})", ""]
        if o.control_seeds:
            conv = cfg.verdicts.converged_acc if cfg.verdicts is not None else None
            fig = same_time_figure(o, s.large, s.small, conv, figdir / f"{NAME}-{o.regime}-same-time.png")
            lines += [f"![the equal-Σηt control, regime {o.regime}]({rel / fig.name})", ""]
        lines += [reading(o, verdicts), ""]
    return "\n".join(lines)
