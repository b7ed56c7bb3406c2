"""li2019-patch report: the setup, final accuracies and the accuracy curves, from the stored tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...config import Cifar10PatchConfig
from ...report import epoch_curves
from ...stats import Verdict
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
            f"gap without the patch {say('d-gap')}, the patch widening it {say('d-patch')}.")
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
        rows = ["| data | schedule | clean test | patched test | patch-only | "
                f"patch-only @ epoch {s.early_epoch} |", "|---|---|---|---|---|---|"]
        for kind in ("patch", "clean"):
            for name in sorted(o.table[o.table.data == kind].schedule.unique()):
                vals = []
                for metric in ("test.acc", "test_patched.acc", "patch_only.acc"):
                    try:
                        vals.append(_fmt(o.per_seed(kind, name, metric)))
                    except KeyError:
                        vals.append("—")
                try:
                    vals.append(_fmt(o.per_seed(kind, name, "patch_only.acc", s.early_epoch)))
                except KeyError:
                    vals.append("—")
                rows.append(f"| {kind} | {name} | " + " | ".join(vals) + " |")
        lines += ["Final accuracy, mean ± sd over seeds:", ""] + rows + [""]
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
        lines += [reading(o, verdicts), ""]
    return "\n".join(lines)
