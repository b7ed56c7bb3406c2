"""li2019-toy report: per regime the setup, the final-accuracy table, the accuracy-by-group
figure and a plain-words reading of the verdicts, from the stored tables."""

from __future__ import annotations

from pathlib import Path

from ...data.mixture import GROUPS
from ...report import group_curves
from ...stats import Verdict
from ..protocol import Tables
from .config import Config, control_name
from .experiment import jobs
from .judge import NAME, Regime, per_seed_final, regime_of

PAPER = "Li, Wei & Ma 2019 — toy P/Q mixture"


def _reading(regime: str, verdicts: list[Verdict]) -> str:
    """A plain-words reading of this regime's verdicts (derived from them, never fixed text)."""
    st = {v.id: v.status for v in verdicts if v.regime == regime}

    def say(ids: list[str]) -> str:
        got = {st[i] for i in ids if i in st}
        return "holds" if got == {"PASS"} else ("does not hold" if "FAIL" in got else "is unclear")

    parts = [f"Reading of regime `{regime}`: the accuracy gain of large LR + anneal at equal "
             f"steps {say(['a-overall', 'a-P-only'])}"]
    if "b-overall" in st:
        parts.append(f"against small LR trained to the same Σηt it {say(['b-overall', 'b-P-only'])}")
    parts.append(f"small LR fitting Q-only before P-only {say(['c-small-order'])}; large LR fitting "
                 f"P-only first and Q-only only after the anneal "
                 f"{say(['c-large-order', 'c-large-after-anneal'])}")
    parts.append(f"the crossover of test accuracy {say(['c-crossover-before-anneal', 'a-overall'])} "
                 f"(small LR ahead just before the anneal: {say(['c-crossover-before-anneal'])}; large LR "
                 f"ahead at the end: {say(['a-overall'])}).")
    return "; ".join(parts)


def _stored(cfg: Config, regime: str, figdir: Path, rel: Path) -> list[Path]:
    """Where the driver stored this regime's job tables (relative to the output folder), for
    the jobs whose folder exists next to ``figdir``."""
    return [rel.parent / "jobs" / j.key for j in jobs(cfg)
            if j.params["regime"] == regime and (figdir.parent / "jobs" / j.key).is_dir()]


def report(cfg: Config, tables: Tables, verdicts: list[Verdict], figdir: Path, rel: Path) -> str:
    """The report section: setup per regime, final accuracies, figures."""
    s = cfg.claim
    C = control_name(s)
    lines = [f"## {NAME}: {PAPER}", "",
             "Large LR + anneal against small LR on the two-pattern mixture (docs/claims/li2019-toy.md). "
             "Members with the same seed share data, initialisation and minibatch order, so "
             "every effect is a paired per-seed difference. 'Fit' means "
             f"≥ {s.fit_threshold:.0%} training accuracy on a group. All constants are in the "
             "config (our choices where the paper gives none).", ""]
    for regime in cfg.regimes:
        o: Regime = regime_of(cfg, tables, regime)
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
                  ""]
        stored = _stored(cfg, regime, figdir, rel)
        if stored:
            lines += ["Stored tables (under the output folder): " + ", ".join(f"`{p}`" for p in stored), ""]
        rows = ["| schedule | test acc | test P-only | test Q-only | test both | train P-only | train Q-only |",
                "|---|---|---|---|---|---|---|"]
        runs = [(o.main, n) for n in rc.population.schedules]
        if o.control is not None:
            runs.append((o.control, C))
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
                           o.control.members, C, []))
        fig = group_curves(panels, GROUPS, figdir / f"{NAME}-{o.regime}-accuracy.png",
                           title=f"{NAME} [{o.regime}]: accuracy by group (dashed train, solid test)")
        lines += [f"![accuracy by group, regime {o.regime}]({rel / fig.name})", ""]
        lines += [_reading(o.regime, verdicts), ""]
    return "\n".join(lines)
