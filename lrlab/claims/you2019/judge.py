"""you2019 verdicts, from the stored tables only (no training).

Tables (each with the driver's ``job`` column first; see docs/claims/you2019.md):

* ``curves`` (part, seed, name, epoch, metric, value): part is patterns, noise, gd, sgd or
  autodecay; epoch is step / steps-per-epoch (for gd: the step); patterns and noise also hold
  the physical-time control ``constant <lr> same Σηt`` (``control_name``), trained longer;
  part ``gd-larger`` holds the GD runs at ``gd_diverge_factors`` × gd_lr (``gd_larger_names``;
  metrics also ``diverged``), NaN from the probe where the trainer froze a run;
* ``eigs`` (seed, name, i, value): top Hessian eigenvalues of every GD-trained net;
* ``gd_final_lr`` (seed, name, lr): each GD run's rate at the end;
* ``transfer`` (stage, target, method, acc, tacc, transferability, seed);
* ``autodecay_final`` (seed, name, test_acc), ``autodecay`` (seed, epochs_used, budget) and
  ``decisions`` (seed, epoch, loss, g, action) of the AutoDecay member;
* ``memorisation`` (seed, name, when, epoch, n_noisy, n_not_true, n_noisy_label): per member of
  the noisy PS10 population, at the first decay (when = first_decay) and at the end (end), how
  many noisy training points are not predicted as their true class and how many are predicted
  as their noisy label;
* ``ps10_check`` (seed, entropy_simple, entropy_complex, reference_simple, reference_complex,
  noise_frac): the noisy PS10 draw's check, quoted by the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...stats import Verdict, verdict
from ..protocol import Tables
from .config import (
    GD_LARGER,
    Config,
    PatternSettings,
    autodecay_names,
    control_name,
    gd_larger_names,
    gd_names,
    pattern_names,
    sgd_names,
)

NAME = "you2019"
REGIME = "ps10+cifar"

Results = dict[tuple[str, int], dict]
"""Per (part, seed): the measurements of that job, rebuilt from the tables."""


def _curves(by: dict, part: str, seed: int, names: list[str]) -> dict[str, pd.DataFrame]:
    """Each metric of (part, seed) as a table: rows = epochs (float), columns = member names."""
    g = by[(part, seed)]
    g = g[g.name.isin(names)]
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
            ctrl = control_name(getattr(s, part))  # the physical-time control; None if not stored
            have = (part, sd) in by and (by[(part, sd)].name == ctrl).any()
            out[(part, sd)]["control"] = _curves(by, part, sd, [ctrl]) if have else None
        out[("noise", sd)]["memorisation"] = memorisation_rates(tables, sd)
        names = gd_names(s.gdsgd)
        e = _of(tables, "eigs", sd).pivot(index="name", columns="i", values="value").loc[names]
        lr = _of(tables, "gd_final_lr", sd).set_index("name").lr
        larger = gd_larger_names(s.gdsgd)  # their curves: None when not stored (jobs before JOBS_VERSION 4)
        have = bool(larger) and (GD_LARGER, sd) in by and set(larger) <= set(by[(GD_LARGER, sd)].name)
        out[("gdsgd", sd)] = {"gd": _curves(by, "gd", sd, names), "sgd": _curves(by, "sgd", sd, sgd_names(s.gdsgd)),
                              "eigs": e, "gd_final_lr": {n: float(lr[n]) for n in names},
                              "gd_larger": _curves(by, GD_LARGER, sd, larger) if have else None}
        out[("transfer", sd)] = {"table": _of(tables, "transfer", sd)}
        names = autodecay_names(s.autodecay)
        fin = _of(tables, "autodecay_final", sd).set_index("name").test_acc
        row = _of(tables, "autodecay", sd).iloc[0]
        out[("autodecay", sd)] = {"curves": _curves(by, "autodecay", sd, names),
                                  "final": {n: float(fin[n]) for n in names},
                                  "decisions": _of(tables, "decisions", sd).drop(columns="seed"),
                                  "epochs_used": float(row.epochs_used), "budget": int(row.budget)}
    return out


def memorisation_rates(tables: Tables, seed: int) -> dict[tuple[str, str], tuple[float, float]]:
    """(name, when) -> (rate, n_not_true): the share of the noisy points not predicted as their
    true class that are predicted as their noisy label. NaN when no noisy point is predicted
    off its true class (the rate is undefined) or a count is not finite (a diverged run); an
    empty mapping when the table is absent (jobs stored before it existed)."""
    if "memorisation" not in tables:
        return {}
    t = _of(tables, "memorisation", seed)
    out = {}
    for r in t.itertuples(index=False):
        nt, nl = float(r.n_not_true), float(r.n_noisy_label)
        out[(str(r.name), str(r.when))] = (nl / nt if nt > 0 else np.nan, nt)
    return out


def _at(curve: pd.Series, epoch: float) -> float:
    """The value at the probe nearest to ``epoch``; NaN when that probe is NaN (e.g. a diverged
    run), which makes the seed's effect a failed seed instead of reading an earlier probe."""
    idx = curve.index.to_numpy(dtype=np.float64)
    return float(curve.iloc[int(np.argmin(np.abs(idx - epoch)))])


def first_converged(curves: dict[str, pd.DataFrame], name: str, level: float) -> float:
    """The first probe epoch at which run ``name`` has train accuracy ≥ ``level`` on each clean
    training subset (simple and complex); NaN if it never does (or its curves are missing)."""
    if "train.simple.acc" not in curves or "train.complex.acc" not in curves:
        return np.nan
    both = pd.concat([curves["train.simple.acc"][name], curves["train.complex.acc"][name]], axis=1)
    both = both.min(axis=1, skipna=False)  # a NaN probe (a diverged run) never meets it
    hit = both.index[(both >= level).to_numpy()]
    return float(hit[0]) if len(hit) else np.nan


def converged(res: Results, part: str, p: PatternSettings, seeds: list[int], level: float) -> dict[str, np.ndarray]:
    """Per seed, for the decayed run and the physical-time control of ``part``: the first epoch at
    which each meets the convergence criterion (NaN: never, within its own length) and its complex
    test accuracy there (NaN when it never converged)."""
    out: dict[str, list[float]] = {"first_decay": [], "first_control": [], "acc_decay": [], "acc_control": []}
    for sd in seeds:
        r = res[(part, sd)]
        for who, curves, name in (("decay", r["curves"], "decay"), ("control", r.get("control"), control_name(p))):
            e = np.nan if curves is None else first_converged(curves, name, level)
            acc = np.nan if not np.isfinite(e) else _at(curves["test.complex.acc"][name], e)
            out[f"first_{who}"].append(e)
            out[f"acc_{who}"].append(acc)
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def gd_log_loss_ratio(loss: pd.Series | None, steps: int, cap: float) -> tuple[float, float]:
    """(log10(L_end / L0), peak finite loss / L0) of one GD run's ``train.loss`` curve, L0 its
    loss at step 0 and L_end at step ``steps``: the log ratio clipped to ±``cap``, and a non-finite
    L_end (the trainer froze the run) read as +``cap``. NaN when the curve is missing or L0 is not
    a finite positive number."""
    if loss is None:
        return np.nan, np.nan
    l0, end = _at(loss, 0), _at(loss, steps)
    if not (np.isfinite(l0) and l0 > 0):
        return np.nan, np.nan
    peak = float(np.nanmax(loss.to_numpy(dtype=np.float64))) / l0 if loss.notna().any() else np.nan
    if not np.isfinite(end):
        return cap, peak
    with np.errstate(divide="ignore"):
        return float(np.clip(np.log10(end / l0), -cap, cap)), peak


def _failed(seeds: list[int], values, why: str) -> str:
    """A note naming the seeds whose effect is not finite, and why ("" when there are none)."""
    bad = [sd for sd, x in zip(seeds, np.asarray(values, dtype=np.float64)) if not np.isfinite(x)]
    return f"failed seeds {bad}: {why}" if bad else ""


def _first_one(flag: pd.DataFrame | None, name: str) -> float:
    """The first probe step at which the ``diverged`` flag of run ``name`` is set (NaN: never)."""
    if flag is None:
        return np.nan
    hit = flag.index[(flag[name] > 0).to_numpy()]
    return float(hit[0]) if len(hit) else np.nan


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def judge(cfg: Config, tables: Tables) -> list[Verdict]:
    """Every verdict from the stored tables (the package docstring lists them)."""
    return judge_results(cfg, results(cfg, tables))


def judge_results(cfg: Config, res: Results) -> list[Verdict]:
    """Every verdict from the rebuilt measurements. Every threshold comes from the config:
    ``verdicts`` (judge-only) or, for the margins that were there first, ``claim``."""
    s, t = cfg.claim, cfg.verdicts
    seeds = cfg.execution.seeds
    v: list[Verdict] = []
    diverged = "a run's accuracy is not finite at the probe read (e.g. the run diverged)"

    def add(id_, statement, effect, values, test, min_effect, notes="", kind="other", why=diverged, control_of=""):
        values = np.asarray(values, dtype=np.float64)
        v.append(verdict(NAME, id_, statement, effect, values, min_effect, REGIME,
                         notes=_join(notes, _failed(seeds, values, why)), kind=kind, test=test,
                         control_of=control_of))

    crit = (f"train accuracy ≥ {t.converge_train_acc:g} on each clean training subset, simple and complex, "
            "within the run's own length")
    never = ("a run never met the convergence criterion within its own length (or its curves are missing: jobs "
             "stored before JOBS_VERSION 3)")

    def add_converged(letter: str, part: str, q: PatternSettings, control_of: str) -> dict[str, np.ndarray]:
        """The two '<letter>-converged-*' verdicts of ``part`` (controls of ``control_of``); returns the
        per-seed measurements."""
        conv = converged(res, part, q, seeds, t.converge_train_acc)
        for who, name, cap in (("decay", "the step decay", q.epochs),
                               ("control", f"the small constant LR {q.control_lr():g} (the same-Σηt control)",
                                q.control_epochs())):
            first = conv[f"first_{who}"]
            add(f"{letter}-converged-{who}", f"PS10{' with noisy labels' if part == 'noise' else ''}: {name} is "
                f"trained to convergence ({crit}: {cap} epochs)", f"{cap} − first epoch meeting the criterion",
                cap - first, "bound", 0.0, why=never, control_of=control_of,
                notes="first converged epoch per seed: " + ", ".join(f"{e:g}" for e in first))
        return conv

    def conv_notes(conv: dict[str, np.ndarray]) -> str:
        return "first converged epoch / complex test acc there, decay; constant: " + "; ".join(
            f"{a:g} / {b:.3f}; {c:g} / {d:.3f}" for a, b, c, d in
            zip(conv["first_decay"], conv["acc_decay"], conv["first_control"], conv["acc_control"]))

    p = s.patterns
    R = [res[("patterns", sd)]["curves"] for sd in seeds]
    E1, T, w = p.milestones[0], p.epochs, p.jump_window
    simp = [c["test.simple.acc"]["decay"] for c in R]
    comp = [c["test.complex.acc"]["decay"] for c in R]
    add("a-simple-in-stage1", "PS10, step decay: simple patterns are learned in the first stage (by the "
        f"first decay the simple test accuracy is within {t.simple_tol:g} of its final value)",
        f"{t.simple_tol:g} − (simple acc at the end − simple acc at the first decay)",
        [t.simple_tol - (_at(c, T) - _at(c, E1)) for c in simp], "bound", 0.0,
        notes="simple acc at the first decay / at the end: " + "; ".join(
            f"{_at(c, E1):.3f} / {_at(c, T):.3f}" for c in simp))
    c0 = f"constant {p.lr:g}"
    jump = [(_at(c["test.complex.acc"]["decay"], E1 + w) - _at(c["test.complex.acc"]["decay"], E1))
            - (_at(c["test.complex.acc"][c0], E1 + w) - _at(c["test.complex.acc"][c0], E1)) for c in R]
    add("a-complex-jump-after-decay", f"PS10: complex accuracy jumps in the {w} epochs after the first decay "
        f"(gain beyond the same window of the constant-{p.lr:g} control, at least {t.complex_jump_min:g})",
        "Δ complex acc (decay) − Δ complex acc (constant at the first stage's rate)", jump,
        "superiority", t.complex_jump_min,
        notes="complex acc of the decayed run at the first decay / end: " + "; ".join(
            f"{_at(c, E1):.3f} / {_at(c, T):.3f}" for c in comp))
    for lr in p.stage_lrs():
        name = f"constant {lr:g}"
        vals = [_at(c["test.complex.acc"]["decay"], T) - _at(c["test.complex.acc"][name], T) for c in R]
        add(f"a-complex-beats-constant-{lr:g}", f"PS10: step decay ends above the constant LR {lr:g} on "
            f"complex patterns (by at least {t.complex_gain_min:g})",
            f"final complex test acc (decay) − (constant {lr:g})", vals, "superiority", t.complex_gain_min,
            kind="accuracy")
    no_ctrl = ("the physical-time control's final complex test acc (or the decayed run's) is missing or not "
               "finite (no control curves: jobs stored before JOBS_VERSION 3; or a diverged run)")

    def ctrl_final(part: str, sd: int, epochs: int) -> float:
        c = res[(part, sd)].get("control")
        return np.nan if c is None else _at(c["test.complex.acc"].iloc[:, 0], epochs)

    if p.control:
        ce, dec = p.control_epochs(), [_at(c["test.complex.acc"]["decay"], T) for c in R]
        ctl = [ctrl_final("patterns", sd, ce) for sd in seeds]
        add("a-complex-vs-constant-same-time", f"PS10: the small constant LR {p.control_lr():g}, trained for "
            f"{ce} epochs so that it travels the step decay's Σηt = {p.sum_lr_epochs():.4g} epoch-units, reaches "
            f"the decayed run's final complex test accuracy (the two within ±{t.same_time_margin:g})",
            f"final complex test acc (decay, {T} epochs) − (constant {p.control_lr():g}, {ce} epochs)",
            np.asarray(dec) - np.asarray(ctl), "equivalence", t.same_time_margin,
            notes="final complex test acc, decay / constant same Σηt: " + "; ".join(
                f"{a:.3f} / {b:.3f}" for a, b in zip(dec, ctl)), why=no_ctrl)
        conv = add_converged("a", "patterns", p, "a-complex-vs-constant-same-time")
        add("a-complex-vs-constant-converged", f"PS10: trained to convergence ({crit}), the small constant LR "
            f"{p.control_lr():g} reaches the decayed run's complex test accuracy (each read at its first converged "
            f"epoch; the two within ±{t.same_time_margin:g})",
            f"complex test acc at convergence, decay − constant {p.control_lr():g}",
            conv["acc_decay"] - conv["acc_control"], "equivalence", t.same_time_margin,
            notes=conv_notes(conv), why=never, control_of="a-complex-vs-constant-same-time")
    q = s.noise
    N = [res[("noise", sd)]["curves"] for sd in seeds]
    small = f"constant {q.small_lr:g}"
    add("b-noise-complex", f"PS10 with {q.data.noise_frac:.0%} noisy labels: large LR + decay beats the small "
        f"constant LR {q.small_lr:g} on complex test patterns (by at least {t.noise_complex_gain_min:g})",
        f"final complex test acc (decay) − (constant {q.small_lr:g})",
        [_at(c["test.complex.acc"]["decay"], q.epochs) - _at(c["test.complex.acc"][small], q.epochs) for c in N],
        "superiority", t.noise_complex_gain_min, kind="accuracy")
    if q.control:
        ce, dec = q.control_epochs(), [_at(c["test.complex.acc"]["decay"], q.epochs) for c in N]
        ctl = [ctrl_final("noise", sd, ce) for sd in seeds]
        add("b-noise-complex-same-time", f"PS10 with {q.data.noise_frac:.0%} noisy labels: large LR + decay beats "
            f"the small constant LR {q.small_lr:g} on complex test patterns also when the latter travels the same "
            f"Σηt = {q.sum_lr_epochs():.4g} epoch-units ({ce} epochs; by at least {t.noise_complex_gain_min:g})",
            f"final complex test acc (decay, {q.epochs} epochs) − (constant {q.small_lr:g}, {ce} epochs)",
            np.asarray(dec) - np.asarray(ctl), "superiority", t.noise_complex_gain_min, kind="accuracy",
            notes="final complex test acc, decay / constant same Σηt: " + "; ".join(
                f"{a:.3f} / {b:.3f}" for a, b in zip(dec, ctl)), why=no_ctrl, control_of="b-noise-complex")
        conv = add_converged("b", "noise", q, "b-noise-complex")
        add("b-noise-complex-converged", f"PS10 with {q.data.noise_frac:.0%} noisy labels: trained to convergence "
            f"({crit}), large LR + decay beats the small constant LR {q.small_lr:g} on complex test patterns (each "
            f"read at its first converged epoch; by at least {t.noise_complex_gain_min:g})",
            f"complex test acc at convergence, decay − constant {q.small_lr:g}",
            conv["acc_decay"] - conv["acc_control"], "superiority", t.noise_complex_gain_min, kind="accuracy",
            notes=conv_notes(conv), why=never, control_of="b-noise-complex")
    mem_d = [_at(c["train.noise.acc"]["decay"], q.epochs) for c in N]
    mem_s = [_at(c["train.noise.acc"][small], q.epochs) for c in N]
    mem_e1 = [_at(c["train.noise.acc"]["decay"], q.milestones[0]) for c in N]
    add("b-noise-memorizes-less", f"PS10 with noisy labels: large LR + decay memorises less of the noise than "
        f"the small constant LR {q.small_lr:g} (by at least {t.memorization_gap_min:g})",
        "noise-subset train acc (small) − (decay), at the end",
        np.asarray(mem_s) - np.asarray(mem_d), "superiority", t.memorization_gap_min,
        notes="noise memorised (acc on the noise subset against its random labels) — decay before its first "
        "decay / at the end, small constant at the end: " + "; ".join(
            f"{a:.3f} / {b:.3f}, {c:.3f}" for a, b, c in zip(mem_e1, mem_d, mem_s)))
    chance = 1.0 / (q.data.n_classes - 1)
    M = [res[("noise", sd)].get("memorisation", {}) for sd in seeds]

    def rate(m: dict, name: str, when: str) -> float:
        return m.get((name, when), (np.nan, np.nan))[0]

    r_s = np.array([rate(m, small, "end") for m in M])
    r_d = np.array([rate(m, "decay", "end") for m in M])
    r_d1 = np.array([rate(m, "decay", "first_decay") for m in M])
    undefined = ("the rate is undefined: no memorisation table, no noisy point predicted off its true class "
                 "(n_not_true = 0), or a count is not finite (e.g. a diverged run)")
    counts = "; ".join(f"{m.get((small, 'end'), (0, np.nan))[1]:g} / {m.get(('decay', 'end'), (0, np.nan))[1]:g}"
                       for m in M)
    add("b-noise-memorisation-above-chance-small", f"PS10 with noisy labels: the small constant LR {q.small_lr:g} "
        "memorises the noise — among the noisy training points it does not predict as their true class, it "
        f"predicts the noisy label more often than the label-shuffled baseline 1/(C−1) = {chance:.3f} (by at "
        f"least {t.memorisation_excess_min:g})",
        f"rate of the noisy label among noisy points not predicted as their true class (constant {q.small_lr:g}, "
        "end) − 1/(C−1)", r_s - chance, "superiority", t.memorisation_excess_min,
        notes=f"rate (small constant, end) per seed: {', '.join(f'{x:.3f}' for x in r_s)}; noisy points not "
        f"predicted as their true class, small constant / decay, at the end: {counts}", why=undefined)
    with np.errstate(invalid="ignore"):  # inf − inf: a failed seed either way
        gap = r_s - r_d
    add("b-noise-memorisation-less", "PS10 with noisy labels: large LR + decay memorises less of the noise than "
        f"the small constant LR {q.small_lr:g} — its rate of predicting the noisy label among the noisy points "
        f"not predicted as their true class is lower at the end (by at least {t.memorisation_rate_gap_min:g}; "
        f"chance is {chance:.3f})",
        f"noisy-label rate among noisy points not predicted as their true class, (constant {q.small_lr:g}) − "
        "(decay), at the end", gap, "superiority", t.memorisation_rate_gap_min,
        notes="noisy-label rate — decay at its first decay / at the end, small constant at the end: " + "; ".join(
            f"{a:.3f} / {b:.3f}, {c:.3f}" for a, b, c in zip(r_d1, r_d, r_s)) + f"; chance 1/(C−1) = {chance:.3f}",
        why=undefined)
    g = s.gdsgd
    G = [res[("gdsgd", sd)] for sd in seeds]

    def best_decayed(acc: pd.DataFrame) -> float:  # NaN if any decayed run's final value is NaN
        return float(np.max([float(acc[n].iloc[-1]) for n in acc.columns if n != "constant"]))

    gd_gain = [best_decayed(r["gd"]["test.acc"]) - float(r["gd"]["test.acc"]["constant"].iloc[-1]) for r in G]
    add("c-gd-decay-no-benefit", f"full-batch GD on CIFAR-10: decaying (at steps {g.gd_decay_at}) brings no "
        f"benefit over the constant LR (the best decayed run ends within ±{g.gd_tol:g} of it)",
        "best final test acc of the decayed GD runs − constant GD", gd_gain, "equivalence", g.gd_tol,
        notes="final test acc per GD run (per seed): " + "; ".join(
            ", ".join(f"{n} {float(r['gd']['test.acc'][n].iloc[-1]):.3f}" for n in r["gd"]["test.acc"].columns)
            for r in G))
    sgd_jump = [best_decayed(r["sgd"]["test.acc"]) - float(r["sgd"]["test.acc"]["constant"].to_numpy().max())
                for r in G]
    add("c-sgd-decay-jump", "SGD on CIFAR-10: decay reaches a test accuracy the constant LR never reaches "
        f"(by at least {t.sgd_jump_min:g})",
        "best final test acc of the decayed SGD runs − the constant run's best test acc at any epoch", sgd_jump,
        "superiority", t.sgd_jump_min)
    lam1 = np.array([float(r["eigs"].loc["constant"].iloc[0]) for r in G])
    eta = np.array([r["gd_final_lr"]["constant"] for r in G])
    with np.errstate(divide="ignore", invalid="ignore"):  # λ1 ≤ 0 or not finite: a failed seed
        edge = np.log10(2.0) - np.log10(eta * lam1)
    add("d-gd-stable-interval", f"full-batch GD: the constant run's rate η = {g.gd_lr:g} lies in the stable "
        "interval (0, 2/λ1) of its final top Hessian eigenvalue", "log10(2 / (η·λ1))", edge, "bound", 0.0,
        notes="top eigenvalues λ1…λ3 of the constant GD run per seed: " + "; ".join(
            ", ".join(f"{x:.2f}" for x in r["eigs"].loc["constant"].iloc[:3]) for r in G)
        + f"; 2/η = {2 / g.gd_lr:.2f}",
        why="λ1 of the constant GD run is not a finite positive number, so (0, 2/λ1) is not an interval")
    m, cap = t.gd_diverge_multiple, t.gd_diverge_log_cap
    clip = f"L_end/L0 clipped to 10^±{cap:g}, a non-finite L_end read as 10^{cap:g}"
    no_loss = ("L0 (the run's train loss at step 0) is not a finite positive number, or the run's curves are "
               "missing (jobs stored before JOBS_VERSION 4)")

    def loss_notes(rows: list[tuple[float, float]]) -> str:
        return "L_end/L0 (after clipping) / peak finite loss/L0 per seed: " + "; ".join(
            f"{10 ** r:.3g} / {pk:.3g}" for r, pk in rows)

    base = [gd_log_loss_ratio(r["gd"]["train.loss"]["constant"] if "train.loss" in r["gd"] else None, g.gd_steps,
                              cap) for r in G]
    add("gd-base-lr-stable", f"full-batch GD: the rate used, {g.gd_lr:g}, does not diverge (final train loss "
        f"after {g.gd_steps} steps finite and below {m:g}× the initial loss L0)",
        f"log10({m:g}) − log10(L_end/L0), constant GD at {g.gd_lr:g} ({clip})",
        [np.log10(m) - r for r, _ in base], "bound", 0.0, notes=loss_notes(base), why=no_loss)
    for f, name in zip(g.gd_diverge_factors, gd_larger_names(g)):
        rows = [gd_log_loss_ratio(None if r["gd_larger"] is None else r["gd_larger"]["train.loss"][name],
                                  g.gd_steps, cap) for r in G]
        when = [np.nan if r["gd_larger"] is None else _first_one(r["gd_larger"].get("diverged"), name) for r in G]
        add(f"gd-diverges-{f:g}x", f"full-batch GD (appendix A.2): a mildly larger rate, {f:g} × {g.gd_lr:g} = "
            f"{f * g.gd_lr:g}, diverges from the same initialisation within {g.gd_steps} steps (final train loss "
            f"non-finite or above {m:g}× the initial loss L0)",
            f"log10(L_end/L0) − log10({m:g}), GD at {f * g.gd_lr:g} ({clip})",
            [r - np.log10(m) for r, _ in rows], "bound", 0.0, why=no_loss,
            notes=loss_notes(rows) + "; step the trainer froze the run (non-finite loss; — never): " + ", ".join(
                "—" if not np.isfinite(w) else f"{w:g}" for w in when))
    tab = transfer_table(res, seeds)
    stages = sorted(tab.stage.unique())
    last, prev = stages[-1], stages[-2]
    for (target, method), sub in tab.groupby(["target", "method"]):
        piv = sub.pivot(index="seed", columns="stage", values="transferability").reindex(seeds)
        diff = (piv[prev] - piv[last]).to_numpy()
        add(f"transfer-{target}-{method}", f"transferability to {target} ({method}): stage {last} transfers "
            f"worse than stage {prev} (by at least {t.transfer_drop_min:g})", f"T{prev} − T{last}",
            diff, "superiority", t.transfer_drop_min,
            notes="mean transferability per stage (over the seeds where it is defined): " + ", ".join(
                f"T{st} {piv[st].mean():.3f}" for st in stages[1:]) + "; mean source / target acc per stage: "
                + ", ".join(f"{sub[sub.stage == st].acc.mean():.3f} / {sub[sub.stage == st].tacc.mean():.3f}"
                            for st in stages),
            why=f"T{prev} or T{last} is undefined (NaN: the stage left the source accuracy unchanged, so "
                "Δtacc/Δacc has no value), which counts as a failed seed")
    a = s.autodecay
    A = [res[("autodecay", sd)] for sd in seeds]
    steps = [n for n in A[0]["final"] if n != "autodecay"]

    def mean_final(n: str) -> float:  # a step decay with a non-finite final accuracy is never the tuned one
        m = float(np.mean([r["final"][n] for r in A]))
        return m if np.isfinite(m) else -np.inf

    tuned = max(steps, key=mean_final)
    gap = [r["final"]["autodecay"] - r["final"][tuned] for r in A]
    add("autodecay-accuracy", f"AutoDecay ends within {a.acc_tol * 100:g} points of the tuned step decay "
        f"({tuned}, the best of the grid by mean final test accuracy)",
        f"final test acc of AutoDecay − {tuned}", gap, "equivalence", a.acc_tol,
        notes="final test acc, tuned step / AutoDecay per seed: " + "; ".join(
            f"{r['final'][tuned]:.3f} / {r['final']['autodecay']:.3f}" for r in A))
    save = [1 - r["epochs_used"] / r["budget"] for r in A]
    add("autodecay-epochs", f"AutoDecay spends at least {a.epoch_saving:.0%} fewer epochs than the step decay "
        f"({a.epochs} epochs)", f"1 − epochs(AutoDecay)/{a.epochs}", save, "superiority", a.epoch_saving,
        notes="epochs AutoDecay used per seed: " + ", ".join(f"{r['epochs_used']:g}" for r in A)
        + "; decays: " + ", ".join(str(int((r["decisions"].action == "decay").sum())) for r in A),
        why="the number of epochs AutoDecay used is not finite")
    return v


def transfer_table(res: Results, seeds: list[int]) -> pd.DataFrame:
    """Every seed's transfer rows, in seed order."""
    return pd.concat([res[("transfer", sd)]["table"] for sd in seeds], ignore_index=True)
