"""you2019 report: the setup, the PS10 check and six figures, from the stored tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ...report.figures import save, subplots
from ...stats import Verdict
from ..protocol import Tables
from .config import Config, gd_larger_names
from .judge import NAME, Results, converged, gd_log_loss_ratio, results, transfer_table

PAPER = "You, Long, Wang & Jordan 2019 — how does learning-rate decay help?"


def report(cfg: Config, tables: Tables, verdicts: list[Verdict], figdir: Path, rel: Path) -> str:
    """The report section: setup and the paper's figures."""
    res = results(cfg, tables)
    s, seeds = cfg.claim, cfg.execution.seeds
    figs = [(pattern_figure(cfg, res, "patterns"), "patterns", "PS10: simple and complex accuracy by schedule"),
            (pattern_figure(cfg, res, "noise"), "noise", "PS10 with noisy labels"),
            (gdsgd_figure(cfg, res), "gd-sgd", "GD against SGD"),
            (eig_figure(cfg, res), "eigenvalues", "top Hessian eigenvalues of GD-trained nets"),
            (gd_larger_figure(cfg, res), "gd-larger", "full-batch GD at the rate used and at mildly larger rates"),
            (transfer_figure(cfg, res), "transfer", "transferability per stage"),
            (autodecay_figure(cfg, res), "autodecay", "AutoDecay's smoothed loss and decisions")]
    p, g, t, a = s.patterns, s.gdsgd, s.transfer, s.autodecay
    lines = [f"## {NAME}: {PAPER}", "",
             f"Seeds {seeds}. PS10 (docs/claims/you2019.md; {p.data.channels} channels, image size "
             f"{p.data.image_size}, {p.data.n_train} training examples): two-layer ReLU net of width {p.width}, SGD "
             f"with momentum {p.momentum}, batch {p.batch_size}, {p.epochs} epochs, step decay ×{p.factor} at epochs "
             f"{p.milestones} from {p.lr}, controls at constant {', '.join(f'{x:g}' for x in p.stage_lrs())}. "
             f"Noisy variant: {s.noise.data.noise_frac:.0%} of training labels replaced.", "",
             f"GD/SGD: CIFAR-10, {g.n_per_class} images per class pooled by {g.pool}, ReLU MLP depth "
             f"{g.depth} width {g.width}; GD at {g.gd_lr} for {g.gd_steps} steps, decayed ×{g.factor} at "
             f"steps {g.gd_decay_at}; SGD at {g.sgd_lr}, batch {g.sgd_batch}, {g.sgd_epochs} epochs, decayed at "
             f"epochs {g.sgd_decay_at}.", "",
             f"Transferability: source CIFAR-10 classes {t.source_classes} ({t.n_per_class} per class), stages "
             f"{t.lrs} for {t.epochs} epochs; targets: the other CIFAR-10 classes and PS10 rendered as "
             f"3×{t.ps10.image_size}×{t.ps10.image_size} (same input shape as the pooled source). "
             f"fix = logistic regression on frozen penultimate features; finetune = new head, "
             f"{t.finetune_epochs} epochs at {t.finetune_lr}.", "",
             f"AutoDecay: PS10, step-decay grid {a.step_grid} over {a.epochs} epochs against AutoDecay "
             f"(β {a.beta}, W {a.window}, tol {a.tol}, ζ {a.drop}, ×{a.factor}); the tuned step decay is "
             "chosen on the same test accuracy it is compared by, which favours it.", ""]
    chk = tables["ps10_check"]
    info = chk[chk.seed == seeds[0]].iloc[0]
    lines += [f"PS10 check (noisy variant, seed {seeds[0]}): class-conditional entropy of the pattern "
              f"index {info.entropy_simple:.2f} bits for simple and {info.entropy_complex:.2f} "
              f"for complex training examples (log2 {p.data.n_simple} = {info.reference_simple:.2f}, log2 "
              f"{p.data.n_complex} = {info.reference_complex:.2f}; the plug-in estimate reads low with few examples "
              f"per pattern); noise share {info.noise_frac:.3f}.", ""]
    for part in ("patterns", "noise"):  # the physical-time controls (same Σηt as the decayed run)
        q = getattr(s, part)
        ctl = [res[(part, sd)].get("control") for sd in seeds]
        if not q.control or any(c is None for c in ctl):
            continue
        dec = np.mean([float(res[(part, sd)]["curves"]["test.complex.acc"]["decay"].iloc[-1]) for sd in seeds])
        con = np.mean([float(c["test.complex.acc"].iloc[:, 0].dropna().iloc[-1]) for c in ctl])
        lines += [f"Physical-time control ({part}): constant {q.control_lr():g} for {q.control_epochs()} epochs "
                  f"travels the step decay's Σηt = {q.sum_lr_epochs():.4g} epoch-units; final complex test acc "
                  f"(seed mean) {con:.3f}, against {dec:.3f} for the step decay after {q.epochs} epochs.", ""]
    lines += convergence_lines(cfg, res)
    lines += gd_larger_lines(cfg, res)
    if "memorisation" in tables:
        m = tables["memorisation"]
        m = m[m.seed.isin(seeds)]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = (m.n_noisy_label / m.n_not_true.where(m.n_not_true > 0)).groupby([m.name, m.when]).mean()
        chance = 1 / (s.noise.data.n_classes - 1)
        lines += ["Noise memorisation against chance (seed mean): among the noisy training points not predicted "
                  "as their true class, the share predicted as their noisy label — "
                  + ", ".join(f"{n} {rate.get((n, 'first_decay'), np.nan):.3f} at the first decay / "
                              f"{rate.get((n, 'end'), np.nan):.3f} at the end" for n in dict.fromkeys(m.name))
                  + f"; the label-shuffled baseline 1/(C−1) is {chance:.3f}.", ""]
    for fig, name, alt in figs:
        f = save(fig, figdir / f"{NAME}-{name}.png")
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


def _num(x: float, fmt: str) -> str:
    return format(x, fmt) if np.isfinite(x) else "never"


def convergence_lines(cfg: Config, res: Results) -> list[str]:
    """The trained-to-convergence controls of (a) and (b) as a table: per run and seed, the first
    epoch meeting the criterion and the complex test accuracy there."""
    s, seeds, level = cfg.claim, cfg.execution.seeds, cfg.verdicts.converge_train_acc
    rows = []
    for part in ("patterns", "noise"):
        q = getattr(s, part)
        if not q.control:
            continue
        conv = converged(res, part, q, seeds, level)
        for who, name, cap in (("decay", "step decay", q.epochs),
                               ("control", f"constant {q.control_lr():g} (same Σηt)", q.control_epochs())):
            first, acc = conv[f"first_{who}"], conv[f"acc_{who}"]
            rows.append(f"| {part} | {name} | {cap} | {', '.join(_num(e, 'g') for e in first)} | "
                        f"{', '.join(_num(a, '.3f') if np.isfinite(e) else '—' for e, a in zip(first, acc))} |")
    if not rows:
        return []
    return [f"Trained to convergence: a run has converged at the first probe where its train accuracy on each clean "
            f"training subset (simple, complex) is at least {level:g}, within its own length (the cap). Per seed "
            f"{seeds}:", "", "| part | run | cap (epochs) | first converged epoch | complex test acc there |",
            "|---|---|---|---|---|", *rows, ""]


def gd_larger_lines(cfg: Config, res: Results) -> list[str]:
    """Full-batch GD at the rate used and at the larger rates: L_end/L0 per seed, as a table."""
    g, t, seeds = cfg.claim.gdsgd, cfg.verdicts, cfg.execution.seeds
    if not g.gd_diverge_factors:
        return []
    G = [res[("gdsgd", sd)] for sd in seeds]
    runs = [(f"{g.gd_lr:g} (used)", [r["gd"].get("train.loss", {}).get("constant") for r in G])]
    runs += [(f"{f * g.gd_lr:g} (×{f:g})", [None if r["gd_larger"] is None else r["gd_larger"]["train.loss"][n]
                                             for r in G]) for f, n in zip(g.gd_diverge_factors, gd_larger_names(g))]
    rows = []
    for label, curves in runs:
        vals = [gd_log_loss_ratio(c, g.gd_steps, t.gd_diverge_log_cap) for c in curves]
        ends = [c is not None and not np.isfinite(_end(c, g.gd_steps)) for c in curves]
        rows.append(f"| {label} | " + ", ".join(
            ("non-finite" if e else f"{10 ** r:.3g}") for (r, _), e in zip(vals, ends)) + " | "
            + ", ".join(f"{pk:.3g}" for _, pk in vals) + " |")
    return [f"GD at mildly larger rates (appendix A.2): {g.gd_steps} full-batch steps from the same initialisation; "
            f"a run has diverged when L_end/L0 is non-finite or above {t.gd_diverge_multiple:g}. Per seed {seeds}:",
            "", "| rate | L_end / L0 | peak finite loss / L0 |", "|---|---|---|", *rows, ""]


def _end(loss: pd.Series, steps: int) -> float:
    idx = loss.index.to_numpy(dtype=np.float64)
    return float(loss.iloc[int(np.argmin(np.abs(idx - steps)))])


def gd_larger_figure(cfg: Config, res: Results) -> Figure:
    """Train loss / L0 of full-batch GD at the rate used and at each larger rate, every seed (log
    scale); a run the trainer froze (non-finite loss) ends with a cross at its last finite probe."""
    g, t, seeds = cfg.claim.gdsgd, cfg.verdicts, cfg.execution.seeds
    fig, ax = subplots(figsize=(6.4, 3.6))
    runs = [(f"η = {g.gd_lr:g} (used)", lambda r: r["gd"].get("train.loss", {}).get("constant"))]
    runs += [(f"η = {f * g.gd_lr:g} (×{f:g})", lambda r, n=n: None if r["gd_larger"] is None
              else r["gd_larger"]["train.loss"][n]) for f, n in zip(g.gd_diverge_factors, gd_larger_names(g))]
    for i, (label, get) in enumerate(runs):
        color = f"C{i}"
        for j, sd in enumerate(seeds):
            c = get(res[("gdsgd", sd)])
            if c is None or not np.isfinite(c.iloc[0]) or c.iloc[0] <= 0:
                continue
            y = c / c.iloc[0]
            ax.plot(y.index, y.to_numpy(), color=color, lw=1, alpha=0.8, label=label if j == 0 else None)
            if not np.isfinite(_end(c, g.gd_steps)) and y.notna().any():
                last = y.dropna()
                ax.plot(last.index[-1], last.iloc[-1], "x", color=color, ms=7)
    ax.axhline(1, color="0.5", lw=0.7, ls=":")
    ax.axhline(t.gd_diverge_multiple, color="k", lw=0.8, ls="--", label=f"diverged: above {t.gd_diverge_multiple:g}·L0")
    ax.set_yscale("log")
    ax.set_xlabel("GD step")
    ax.set_ylabel("train loss / L0")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (appendix A.2): GD at larger rates, one line per seed (×: loss went non-finite)",
                 fontsize=10)
    return fig


def _stage_marks(ax, milestones) -> None:
    for m in milestones:
        ax.axvline(m, color="0.5", lw=0.7, ls=":")


def pattern_figure(cfg: Config, res: Results, part: str) -> Figure:
    """Simple and complex test accuracy (and for ``noise`` the memorised noise) per schedule, seed mean."""
    p = getattr(cfg.claim, part)
    groups = ["test.simple.acc", "test.complex.acc"] + (["train.noise.acc"] if part == "noise" else [])
    fig, axes = subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    seeds = cfg.execution.seeds
    for ax, metric in zip(axes[0], groups):
        for name in res[(part, seeds[0])]["names"]:
            mean = pd.concat([res[(part, sd)]["curves"][metric][name] for sd in seeds], axis=1).mean(axis=1)
            ax.plot(mean.index, mean.to_numpy(), lw=1.4 if name == "decay" else 1, label=name)
        _stage_marks(ax, p.milestones)
        ax.set_title(metric.replace("train.noise.acc", "noise memorised (train)"), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (seed mean)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    title = "PS10" if part == "patterns" else f"PS10 with {p.data.noise_frac:.0%} noisy labels"
    fig.suptitle(f"{NAME}: {title} (dotted: decays)", fontsize=10)
    return fig


def gdsgd_figure(cfg: Config, res: Results) -> Figure:
    """Test accuracy of every GD and SGD run, seed mean."""
    g, seeds = cfg.claim.gdsgd, cfg.execution.seeds
    fig, axes = subplots(1, 2, figsize=(10, 3.4))
    for ax, kind, marks, unit in ((axes[0], "gd", g.gd_decay_at, "step"), (axes[1], "sgd", g.sgd_decay_at, "epoch")):
        cols = res[("gdsgd", seeds[0])][kind]["test.acc"].columns
        for name in cols:
            mean = pd.concat([res[("gdsgd", sd)][kind]["test.acc"][name] for sd in seeds], axis=1).mean(axis=1)
            ax.plot(mean.index, mean.to_numpy(), lw=1, label=name)
        _stage_marks(ax, marks)
        ax.set_title("full-batch GD" if kind == "gd" else "SGD", fontsize=9)
        ax.set_xlabel(unit)
        ax.set_ylabel("test accuracy (seed mean)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (c): GD against SGD on a CIFAR-10 subset (dotted: decays)", fontsize=10)
    return fig


def eig_figure(cfg: Config, res: Results) -> Figure:
    """Top Hessian eigenvalues of the GD-trained nets of the first seed and their stable intervals."""
    seeds = cfg.execution.seeds
    eigs = res[("gdsgd", seeds[0])]["eigs"]
    fig, axes = subplots(1, 2, figsize=(10, 3.4))
    k = eigs.shape[1]
    width = 0.8 / len(eigs)
    for i, (name, row) in enumerate(eigs.iterrows()):
        axes[0].bar(np.arange(k) + i * width, row.to_numpy(), width, label=name)
        axes[1].bar(np.arange(k) + i * width, 2 / row.to_numpy(), width, label=name)
    g = cfg.claim.gdsgd
    axes[1].axhline(g.gd_lr, color="k", ls=":", lw=0.8, label=f"η = {g.gd_lr:g} (constant run)")
    axes[1].axhline(g.gd_lr * g.factor, color="k", ls="--", lw=0.8,
                    label=f"η = {g.gd_lr * g.factor:g} (decayed runs, at the end)")
    axes[0].set_ylabel("Hessian eigenvalue λ_i")
    axes[1].set_ylabel("stable interval upper end 2/λ_i")
    for ax in axes:
        ax.set_xlabel("i")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (d): top-{k} Hessian eigenvalues of the GD-trained nets, seed {seeds[0]}", fontsize=10)
    return fig


def transfer_figure(cfg: Config, res: Results) -> Figure:
    """Transferability of every stage per (target, method): mean ± sd over seeds."""
    tab = transfer_table(res, cfg.execution.seeds)
    tab = tab[tab.stage > 0]
    combos = list(tab.groupby(["target", "method"]).groups)
    stages = sorted(tab.stage.unique())
    fig, ax = subplots(figsize=(7, 3.6))
    width = 0.8 / len(stages)
    for j, st in enumerate(stages):
        vals = [tab[(tab.target == t) & (tab.method == m) & (tab.stage == st)].transferability for t, m in combos]
        ax.bar(np.arange(len(combos)) + j * width, [v.mean() for v in vals], width,
               yerr=[v.std() for v in vals], label=f"stage {st}")
    ax.set_xticks(np.arange(len(combos)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{t}\n{m}" for t, m in combos], fontsize=7)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_ylabel("transferability Δtacc/Δacc")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{NAME}: transferability of what each stage learns (mean ± sd over seeds)", fontsize=10)
    return fig


def autodecay_figure(cfg: Config, res: Results) -> Figure:
    """AutoDecay's epoch loss, smoothed ĝ and decisions, and every run's test accuracy, first seed."""
    seeds = cfg.execution.seeds
    r = res[("autodecay", seeds[0])]
    d = r["decisions"]
    fig, (a, b) = subplots(1, 2, figsize=(10, 3.4))
    a.plot(d.epoch, d.loss, color="0.6", lw=0.8, label="epoch training loss")
    a.plot(d.epoch, d.g, color="#264653", lw=1.4, label="smoothed ĝ (bias-corrected)")
    for _, row in d[d.action != "continue"].iterrows():
        a.axvline(row.epoch, color="#e76f51" if row.action == "stop" else "#e9c46a", lw=1)
        a.text(row.epoch, a.get_ylim()[1], f" {row.action}", fontsize=7, va="top")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    a.legend(fontsize=7)
    for name, c in r["curves"]["test.acc"].items():
        b.plot(c.index, c.to_numpy(), lw=1.4 if name == "autodecay" else 0.9, label=name)
    b.set_xlabel("epoch")
    b.set_ylabel("test accuracy")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME}: AutoDecay on PS10, seed {seeds[0]}", fontsize=10)
    return fig
