"""you2019 verdicts, from the stored tables only (no training).

Tables (each with the driver's ``job`` column first; see docs/claims/you2019.md):

* ``curves`` (part, seed, name, epoch, metric, value): part is patterns, noise, gd, sgd or
  autodecay; epoch is step / steps-per-epoch (for gd: the step);
* ``eigs`` (seed, name, i, value): top Hessian eigenvalues of every GD-trained net;
* ``gd_final_lr`` (seed, name, lr): each GD run's rate at the end;
* ``transfer`` (stage, target, method, acc, tacc, transferability, seed);
* ``autodecay_final`` (seed, name, test_acc), ``autodecay`` (seed, epochs_used, budget) and
  ``decisions`` (seed, epoch, loss, g, action) of the AutoDecay member;
* ``ps10_check`` (seed, entropy_simple, entropy_complex, reference_simple, reference_complex,
  noise_frac): the noisy PS10 draw's check, quoted by the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...stats import Verdict, verdict_defined
from ..protocol import Tables
from .config import Config, autodecay_names, gd_names, pattern_names, sgd_names

NAME = "you2019"
REGIME = "ps10+cifar"

Results = dict[tuple[str, int], dict]
"""Per (part, seed): the measurements of that job, rebuilt from the tables."""


def _curves(by: dict, part: str, seed: int, names: list[str]) -> dict[str, pd.DataFrame]:
    """Each metric of (part, seed) as a table: rows = epochs (float), columns = member names."""
    g = by[(part, seed)]
    return {m: c.pivot(index="epoch", columns="name", values="value")[names].rename_axis(index=None, columns=None)
            for m, c in g.groupby("metric", sort=False)}


def _of(tables: Tables, name: str, seed: int) -> pd.DataFrame:
    t = tables[name]
    return t[t.seed == seed].drop(columns="job", errors="ignore").reset_index(drop=True)


def results(cfg: Config, tables: Tables) -> Results:
    """Every job's measurements in the shapes the verdicts and figures read."""
    s, seeds = cfg.claim, cfg.execution.seeds
    by = {(str(p), int(sd)): g for (p, sd), g in tables["curves"].groupby(["part", "seed"], sort=False)}
    out: Results = {}
    for sd in seeds:
        for part in ("patterns", "noise"):
            names = pattern_names(getattr(s, part))
            out[(part, sd)] = {"curves": _curves(by, part, sd, names), "names": names}
        names = gd_names(s.gdsgd)
        e = _of(tables, "eigs", sd).pivot(index="name", columns="i", values="value").loc[names]
        lr = _of(tables, "gd_final_lr", sd).set_index("name").lr
        out[("gdsgd", sd)] = {"gd": _curves(by, "gd", sd, names), "sgd": _curves(by, "sgd", sd, sgd_names(s.gdsgd)),
                              "eigs": e, "gd_final_lr": {n: float(lr[n]) for n in names}}
        out[("transfer", sd)] = {"table": _of(tables, "transfer", sd)}
        names = autodecay_names(s.autodecay)
        fin = _of(tables, "autodecay_final", sd).set_index("name").test_acc
        row = _of(tables, "autodecay", sd).iloc[0]
        out[("autodecay", sd)] = {"curves": _curves(by, "autodecay", sd, names),
                                  "final": {n: float(fin[n]) for n in names},
                                  "decisions": _of(tables, "decisions", sd).drop(columns="seed"),
                                  "epochs_used": float(row.epochs_used), "budget": int(row.budget)}
    return out


def _at(curve: pd.Series, epoch: float) -> float:
    """The value at the probe nearest to ``epoch``."""
    c = curve.dropna()
    return float(c.iloc[int(np.argmin(np.abs(c.index.to_numpy() - epoch)))])


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict from the stored tables (the package docstring lists them)."""
    return judge_results(cfg, results(cfg, tables))


def judge_results(cfg: Config, res: Results) -> list[Verdict]:
    """Every verdict from the rebuilt measurements."""
    s = cfg.claim
    seeds = cfg.execution.seeds
    v: list[Verdict] = []

    def add(id_, statement, effect, values, notes="", kind="other"):  # e.g. transferability is undefined
        # when a stage leaves the source accuracy unchanged: such seeds are left out
        v.append(verdict_defined(NAME, id_, statement, effect, values, 0.0, REGIME, notes=notes, kind=kind))

    p = s.patterns
    R = [res[("patterns", sd)]["curves"] for sd in seeds]
    E1, T, w = p.milestones[0], p.epochs, p.jump_window
    simp = [c["test.simple.acc"]["decay"] for c in R]
    comp = [c["test.complex.acc"]["decay"] for c in R]
    add("a-simple-in-stage1", "PS10, step decay: simple patterns are learned in the first stage (by the "
        "first decay the simple test accuracy is within 0.05 of its final value)",
        "0.05 − (simple acc at the end − simple acc at the first decay)",
        [0.05 - (_at(c, T) - _at(c, E1)) for c in simp],
        notes="simple acc at the first decay / at the end: " + "; ".join(
            f"{_at(c, E1):.3f} / {_at(c, T):.3f}" for c in simp))
    c0 = f"constant {p.lr:g}"
    jump = [(_at(c["test.complex.acc"]["decay"], E1 + w) - _at(c["test.complex.acc"]["decay"], E1))
            - (_at(c["test.complex.acc"][c0], E1 + w) - _at(c["test.complex.acc"][c0], E1)) for c in R]
    add("a-complex-jump-after-decay", f"PS10: complex accuracy jumps in the {w} epochs after the first decay "
        f"(gain beyond the same window of the constant-{p.lr:g} control)",
        "Δ complex acc (decay) − Δ complex acc (constant at the first stage's rate)", jump,
        notes="complex acc of the decayed run at the first decay / end: " + "; ".join(
            f"{_at(c, E1):.3f} / {_at(c, T):.3f}" for c in comp))
    for lr in p.stage_lrs():
        name = f"constant {lr:g}"
        vals = [_at(c["test.complex.acc"]["decay"], T) - _at(c["test.complex.acc"][name], T) for c in R]
        add(f"a-complex-beats-constant-{lr:g}", f"PS10: step decay ends above the constant LR {lr:g} on "
            "complex patterns", f"final complex test acc (decay) − (constant {lr:g})", vals, kind="accuracy")
    q = s.noise
    N = [res[("noise", sd)]["curves"] for sd in seeds]
    small = f"constant {q.small_lr:g}"
    add("b-noise-complex", f"PS10 with {q.data.noise_frac:.0%} noisy labels: large LR + decay beats the small "
        f"constant LR {q.small_lr:g} on complex test patterns",
        f"final complex test acc (decay) − (constant {q.small_lr:g})",
        [_at(c["test.complex.acc"]["decay"], q.epochs) - _at(c["test.complex.acc"][small], q.epochs) for c in N],
        kind="accuracy")
    mem_d = [_at(c["train.noise.acc"]["decay"], q.epochs) for c in N]
    mem_s = [_at(c["train.noise.acc"][small], q.epochs) for c in N]
    mem_e1 = [_at(c["train.noise.acc"]["decay"], q.milestones[0]) for c in N]
    add("b-noise-memorizes-less", f"PS10 with noisy labels: large LR + decay memorises less of the noise than "
        f"the small constant LR {q.small_lr:g}", "noise-subset train acc (small) − (decay), at the end",
        np.asarray(mem_s) - np.asarray(mem_d),
        notes="noise memorised (acc on the noise subset against its random labels) — decay before its first "
        "decay / at the end, small constant at the end: " + "; ".join(
            f"{a:.3f} / {b:.3f}, {c:.3f}" for a, b, c in zip(mem_e1, mem_d, mem_s)))
    g = s.gdsgd
    G = [res[("gdsgd", sd)] for sd in seeds]
    gd_gain = [max(float(r["gd"]["test.acc"][n].iloc[-1]) for n in r["gd"]["test.acc"].columns if n != "constant")
               - float(r["gd"]["test.acc"]["constant"].iloc[-1]) for r in G]
    add("c-gd-decay-no-benefit", f"full-batch GD on CIFAR-10: decaying (at steps {g.gd_decay_at}) brings no "
        f"benefit over the constant LR (best decayed run beats it by < {g.gd_tol})",
        f"{g.gd_tol} − (best final test acc of the decayed GD runs − constant GD)",
        g.gd_tol - np.asarray(gd_gain),
        notes="final test acc per GD run (per seed): " + "; ".join(
            ", ".join(f"{n} {float(r['gd']['test.acc'][n].iloc[-1]):.3f}" for n in r["gd"]["test.acc"].columns)
            for r in G))
    sgd_jump = [max(float(r["sgd"]["test.acc"][n].iloc[-1]) for n in r["sgd"]["test.acc"].columns if n != "constant")
                - float(r["sgd"]["test.acc"]["constant"].max()) for r in G]
    add("c-sgd-decay-jump", "SGD on CIFAR-10: decay reaches a test accuracy the constant LR never reaches",
        "best final test acc of the decayed SGD runs − the constant run's best test acc at any epoch", sgd_jump)
    edge = [2 - r["gd_final_lr"]["constant"] * float(r["eigs"].loc["constant"].iloc[0]) for r in G]
    add("d-gd-stable-interval", f"full-batch GD: the constant run's rate η = {g.gd_lr:g} lies in the stable "
        "interval (0, 2/λ1) of its final top Hessian eigenvalue", "2 − η·λ1", edge,
        notes="top eigenvalues λ1…λ3 of the constant GD run per seed: " + "; ".join(
            ", ".join(f"{x:.2f}" for x in r["eigs"].loc["constant"].iloc[:3]) for r in G)
        + f"; 2/η = {2 / g.gd_lr:.2f}")
    tab = transfer_table(res, seeds)
    stages = sorted(tab.stage.unique())
    for (target, method), sub in tab.groupby(["target", "method"]):
        piv = sub.pivot(index="seed", columns="stage", values="transferability").reindex(seeds)
        diff = (piv[stages[-2]] - piv[stages[-1]]).to_numpy()
        add(f"transfer-{target}-{method}", f"transferability to {target} ({method}): stage {stages[-1]} transfers "
            f"worse than stage {stages[-2]}", f"T{stages[-2]} − T{stages[-1]}",
            diff,
            notes="mean transferability per stage: " + ", ".join(
                f"T{st} {piv[st].mean():.3f}" for st in stages[1:]) + "; mean source / target acc per stage: "
                + ", ".join(f"{sub[sub.stage == st].acc.mean():.3f} / {sub[sub.stage == st].tacc.mean():.3f}"
                            for st in stages))
    a = s.autodecay
    A = [res[("autodecay", sd)] for sd in seeds]
    steps = [n for n in A[0]["final"] if n != "autodecay"]
    tuned = max(steps, key=lambda n: np.mean([r["final"][n] for r in A]))
    gap = [a.acc_tol - (r["final"][tuned] - r["final"]["autodecay"]) for r in A]
    add("autodecay-accuracy", f"AutoDecay ends within {a.acc_tol * 100:g} points of the tuned step decay "
        f"({tuned}, the best of the grid by mean final test accuracy)",
        f"{a.acc_tol} − (final test acc of {tuned} − AutoDecay)", gap,
        notes="final test acc, tuned step / AutoDecay per seed: " + "; ".join(
            f"{r['final'][tuned]:.3f} / {r['final']['autodecay']:.3f}" for r in A))
    save = [1 - r["epochs_used"] / r["budget"] - a.epoch_saving for r in A]
    add("autodecay-epochs", f"AutoDecay spends at least {a.epoch_saving:.0%} fewer epochs than the step decay "
        f"({a.epochs} epochs)", f"1 − epochs(AutoDecay)/{a.epochs} − {a.epoch_saving}", save,
        notes="epochs AutoDecay used per seed: " + ", ".join(f"{r['epochs_used']:g}" for r in A)
        + "; decays: " + ", ".join(str(int((r["decisions"].action == "decay").sum())) for r in A))
    return v


def transfer_table(res: Results, seeds: list[int]) -> pd.DataFrame:
    """Every seed's transfer rows, in seed order."""
    return pd.concat([res[("transfer", sd)]["table"] for sd in seeds], ignore_index=True)
