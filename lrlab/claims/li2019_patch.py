"""Li, Wei & Ma (2019), CIFAR-10 with a class-signature patch (SPEC §1b).

Three schedules train on patched CIFAR-10 — large LR + anneal, small LR, and small LR with
activation noise until the anneal epoch — and two (large, small) on clean images as the
control. Verdicts, each a paired per-seed effect with a 95% t interval:

* (a) small LR reaches high patch-only accuracy early; large LR stays near chance on
  patch-only images until the anneal, and learns the patch after it;
* (b) final clean test accuracy: large + anneal > small;
* (c) small LR + activation noise behaves like large LR on (a) and (b);
* (d) control: the clean-accuracy gap between the schedules without the patch, and how much
  the patch changes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from pydantic import Field, model_validator

from ..config import Cifar10PatchConfig, ConstantSchedule, RunConfig, StepSchedule, Strict
from ..exec.local import default_workers, run_many
from ..store import load_run
from .stats import Verdict, verdict

NAME = "li2019-patch"
CHANCE = 0.1  # 10 classes
PAPER = "Li, Wei & Ma 2019 — CIFAR-10 with a class-signature patch"
EVAL_SERIES = (("test.acc", "clean test"), ("test_patched.acc", "patched test"),
               ("patch_only.acc", "patch-only"))


class Settings(Strict):
    """Which schedules play which role, and the thresholds the verdicts use."""

    large: str = Field("large", description="schedule name of large LR + anneal")
    small: str = Field("small", description="schedule name of the small constant LR")
    noise: str | None = Field("noise", description="schedule name of small LR + activation noise")
    early_epoch: int = Field(gt=0, description="epoch at which small LR's patch-only accuracy is judged")
    patch_level: float = Field(gt=0, le=1, description="patch-only accuracy that counts as 'high'")
    chance_margin: float = Field(0.1, ge=0, description="'near chance' = below chance + this")
    min_effect: float = Field(0.01, ge=0, description="smallest accuracy gap that matters")
    control: bool = Field(True, description="also train large and small on clean images")


class ClaimConfig(Strict):
    """The claim config (configs/li2019-patch/*.yaml): settings plus one run config per regime."""

    claim: Settings
    regimes: dict[str, RunConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "ClaimConfig":
        s = self.claim
        for rname, rc in self.regimes.items():
            where = f"regimes.{rname}"
            if not isinstance(rc.data, Cifar10PatchConfig) or rc.data.patch is None:
                raise ValueError(f"{where}.data must be cifar10 data with a patch")
            if rc.train.unit != "epoch":
                raise ValueError(f"{where}.train.unit must be 'epoch' (the claim is stated in epochs)")
            sch = rc.population.schedules
            roles = [(s.large, StepSchedule), (s.small, ConstantSchedule)]
            if s.noise is not None:
                roles.append((s.noise, ConstantSchedule))
            for role, kind in roles:
                if role not in sch:
                    raise ValueError(f"{where}.population.schedules has no {role!r} (have {sorted(sch)})")
                if not isinstance(sch[role], kind):
                    raise ValueError(f"{where}.population.schedules.{role} must be a "
                                     f"{kind.model_fields['kind'].default!r} schedule")
            if s.noise is not None and s.noise not in rc.population.activation_noise:
                raise ValueError(f"{where}.population.activation_noise has no entry for {s.noise!r}")
            if s.early_epoch > rc.train.steps:
                raise ValueError(f"claim.early_epoch {s.early_epoch} is beyond train.steps "
                                 f"({rc.train.steps} epochs)")
        return self


@dataclass
class RegimeOutcome:
    """One regime: every (data, schedule, seed, epoch, metric) value and the verdicts."""

    regime: str
    cfg: RunConfig
    table: pd.DataFrame  # columns: data, schedule, seed, epoch, metric, value
    run_dirs: list[Path]
    anneal_epoch: int
    verdicts: list[Verdict] = field(default_factory=list)

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


def per_seed_configs(rc: RunConfig, s: Settings) -> list[tuple[str, RunConfig]]:
    """One job per seed and data kind (patched; clean control without the noise arm)."""
    jobs = []
    for seed in rc.population.seeds:
        d = rc.model_dump()
        d["name"] = f"{rc.name}-seed{seed}"
        d["population"]["seeds"] = [seed]
        jobs.append(("patch", RunConfig.model_validate(d)))
        if s.control:
            c = rc.model_dump()
            c["name"] = f"{rc.name}-clean-seed{seed}"
            c["data"]["patch"] = None
            c["population"]["seeds"] = [seed]
            c["population"]["schedules"] = {k: v for k, v in c["population"]["schedules"].items()
                                            if k in (s.large, s.small)}
            c["population"]["activation_noise"] = {}
            jobs.append(("clean", RunConfig.model_validate(c)))
    return jobs


def _table(kind: str, rd: Path, records: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    spe = int(load_run(rd).meta.get("steps_per_epoch") or 1)
    t = records.merge(members[["member", "name", "seed", "diverged"]], on="member")
    t = t.rename(columns={"name": "schedule"})
    t["epoch"] = t.step // spe
    t["data"] = kind
    return t[["data", "schedule", "seed", "epoch", "metric", "value", "diverged"]]


def judge(o: RegimeOutcome, s: Settings) -> list[Verdict]:
    """Every verdict of one regime (see the module docstring)."""
    v: list[Verdict] = []
    reg, L, S, N = o.regime, s.large, s.small, s.noise
    near = CHANCE + s.chance_margin
    E, A = s.early_epoch, o.anneal_epoch
    po = "patch_only.acc"

    def add(id_: str, statement: str, effect: str, values: pd.Series, min_effect: float, notes: str = ""):
        v.append(verdict(NAME, id_, statement, effect, values.to_numpy(dtype=float), min_effect, reg,
                         notes=notes))

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
            f"final clean test acc: {arm} − {S}", final, s.min_effect)
    learn = o.per_seed("patch", L, po) - o.per_seed("patch", L, po, A)
    add("a-large-learns-after-anneal", f"large LR learns the patch after the anneal (epoch {A})",
        f"patch-only acc: final − at epoch {A}, {L}", learn, s.min_effect)
    if s.control:
        gap_clean = o.per_seed("clean", L, "test.acc") - o.per_seed("clean", S, "test.acc")
        gap_patch = o.per_seed("patch", L, "test.acc") - o.per_seed("patch", S, "test.acc")
        add("d-gap-without-patch", "without the patch, large LR + anneal still ends with higher clean "
            "test accuracy than small LR", f"final clean test acc on clean data: {L} − {S}",
            gap_clean, s.min_effect)
        add("d-patch-widens-gap", "the patch widens the clean-accuracy gap between large and small LR",
            f"({L} − {S}) with patch − ({L} − {S}) without", gap_patch - gap_clean.loc[gap_patch.index],
            s.min_effect)
    return v


def preflight(cfg: ClaimConfig) -> None:
    """Locate (and if needed decode and cache) the image data before any worker starts."""
    from ..data.cifar import load_cifar10

    for rc in cfg.regimes.values():
        load_cifar10(rc.data.root, progress=True)


def run(cfg: ClaimConfig, out: Path, progress: bool = False,
        log: Callable[[str], None] = print, workers: int | None = None) -> list[RegimeOutcome]:
    """Train every regime's per-seed runs (spread over local processes) and judge them."""
    s = cfg.claim
    outcomes = []
    for regime, rc in cfg.regimes.items():
        jobs = per_seed_configs(rc, s)
        log(f"[{NAME}] regime {regime}: {len(rc.population.seeds)} seeds × "
            f"{len(rc.population.schedules)} schedules on patched images"
            + (", 2 on clean images" if s.control else "") + f", {rc.train.steps} epochs")
        done = run_many([c for _, c in jobs], out / "runs", workers or default_workers(len(jobs)),
                        progress, log)
        table = pd.concat([_table(kind, rd, res.records, res.members)
                           for (kind, _), (rd, res) in zip(jobs, done)], ignore_index=True)
        anneal = rc.population.schedules[s.large].milestones[0]
        o = RegimeOutcome(regime, rc, table, [rd for rd, _ in done], anneal)
        o.verdicts = judge(o, s)
        outcomes.append(o)
    return outcomes


def _fmt(x: pd.Series) -> str:
    return f"{x.mean():.3f} ± {x.std(ddof=1) if len(x) > 1 else 0:.3f}"


def _reading(o: RegimeOutcome) -> str:
    """A plain-words reading derived from the verdicts (never fixed text)."""
    st = {v.id: v.status for v in o.verdicts}

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


def section(cfg: ClaimConfig, outcomes: list[RegimeOutcome], figdir: Path, rel: Path) -> str:
    """The report section: setup, final accuracies, the paper's figure per schedule."""
    from ..report import epoch_curves

    s = cfg.claim
    lines = [f"## {NAME}: {PAPER}", "",
             "Large LR + anneal, small LR and small LR + activation noise on CIFAR-10 (JPEG copy) "
             "with the class-signature patch of SPEC §1b; large and small LR again on clean "
             "images as the control. Members with the same seed share initialisation, minibatch "
             "order and patch draws, so every effect is a paired per-seed difference. Chance is "
             "10%.", ""]
    for o in outcomes:
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
                  "Runs: " + ", ".join(f"`{p}`" for p in o.run_dirs), ""]
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
        lines += [_reading(o), ""]
    return "\n".join(lines)
