"""You, Long, Wang & Jordan (2019), how learning-rate decay helps (SPEC §4).

Five experiments, each judged over seeds (paired per seed, 95% t interval):

* (a) PS10 without noise: with step decay the simple patterns are learned in the first stage and
  the complex ones jump after the first decay; constant-LR runs at each stage's value are the
  controls, and none of them reaches the decayed run's complex accuracy;
* (b) PS10 with noisy labels: large LR + decay beats a small constant LR on complex patterns
  and memorises less of the noise (accuracy on the noise subset against its random labels);
* (c) GD against SGD on a CIFAR-10 subset: with full-batch GD, decaying (at any of several
  steps) gives no benefit over not decaying; with SGD, decay gives a jump the constant LR never
  reaches; (d) the top Hessian eigenvalues of the GD-trained nets and their stable intervals;
* transferability: snapshots at the end of each stage of a step-decay run on CIFAR-10 classes
  0–4, transferred to classes 5–9 and to PS10 by "fix" (linear probe) and "finetune"; stage 3
  should transfer worse than stage 2;
* AutoDecay against the best of a grid of step decays on PS10: final test accuracy within
  ``acc_tol`` while spending at least ``epoch_saving`` fewer epochs.

Every (part, seed) is an independent job, run in local processes with one thread each when
more than one worker is available. Results do not depend on the number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator

from ..config import PS10Config, Strict
from ..models.mlp import torch_mlp
from .stats import Verdict, verdict_defined

NAME = "you2019"
PAPER = "You, Long, Wang & Jordan 2019 — how does learning-rate decay help?"


class PatternSettings(Strict):
    """A PS10 population: step decay from ``lr`` plus a constant-LR control at each stage's value."""

    data: PS10Config
    width: int = Field(gt=0, description="hidden units of the two-layer ReLU net")
    epochs: int = Field(gt=1)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    milestones: list[int] = Field(min_length=1, description="epochs of the decays")
    factor: float = Field(gt=0, lt=1)
    momentum: float = Field(0.9, ge=0, lt=1)
    eval_every: int = Field(1, gt=0, description="epochs between probes")
    jump_window: int = Field(5, gt=0, description="epochs after a decay that count as 'the jump'")

    @model_validator(mode="after")
    def _check(self) -> "PatternSettings":
        m = self.milestones
        if any(b <= a for a, b in zip(m, m[1:])) or m[0] <= 0 or m[-1] >= self.epochs:
            raise ValueError(f"milestones must increase strictly inside (0, epochs={self.epochs}), got {m}")
        if m[0] % self.eval_every or (m[0] + self.jump_window) % self.eval_every:
            raise ValueError("the first milestone and milestone + jump_window must be multiples of eval_every")
        return self

    def stage_lrs(self) -> list[float]:
        """The rate of every stage: lr, lr·factor, lr·factor², …"""
        return [self.lr * self.factor**i for i in range(len(self.milestones) + 1)]


class NoiseSettings(PatternSettings):
    """(b): the same population on noisy PS10; ``small_lr`` is the small constant LR compared."""

    small_lr: float = Field(gt=0)

    @model_validator(mode="after")
    def _small(self) -> "NoiseSettings":
        if not any(math.isclose(self.small_lr, v, rel_tol=1e-9) for v in self.stage_lrs()):
            raise ValueError(f"small_lr {self.small_lr} must be one of the stage rates {self.stage_lrs()}")
        return self


class GDSGDSettings(Strict):
    """(c, d): a ReLU MLP on a pooled CIFAR-10 subset, trained by full-batch GD and by SGD."""

    n_per_class: int = Field(gt=0)
    test_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    width: int = Field(gt=0)
    depth: int = Field(2, ge=1, le=4)
    factor: float = Field(0.1, gt=0, lt=1)
    gd_lr: float = Field(gt=0)
    gd_steps: int = Field(gt=1)
    gd_decay_at: list[int] = Field(min_length=1, description="GD steps of the (single) decay, one run each")
    gd_eval_every: int = Field(gt=0)
    sgd_lr: float = Field(gt=0)
    sgd_epochs: int = Field(gt=1)
    sgd_batch: int = Field(gt=0)
    sgd_decay_at: list[int] = Field(min_length=1, description="SGD epochs of the decay, one run each")
    top_k: int = Field(10, gt=0, description="Hessian eigenvalues of each GD-trained net")
    gd_tol: float = Field(0.01, gt=0, description="'no benefit': decayed GD beats constant GD by < this")


class TransferSettings(Strict):
    """Source: CIFAR-10 classes ``source_classes`` (pooled); targets: the other classes and PS10."""

    source_classes: list[int] = Field(min_length=2)
    n_per_class: int = Field(gt=0)
    test_per_class: int = Field(gt=0)
    pool: int = Field(4, gt=0)
    width: int = Field(gt=0)
    lrs: list[float] = Field(min_length=3, description="the stage rates, e.g. 0.1, 0.01, 0.001")
    epochs: list[int] = Field(min_length=3, description="epochs of each stage")
    batch_size: int = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    ps10: PS10Config
    finetune_epochs: int = Field(gt=0)
    finetune_lr: float = Field(gt=0)
    probe_epochs: int = Field(gt=0)

    @model_validator(mode="after")
    def _check(self) -> "TransferSettings":
        if len(self.lrs) != len(self.epochs):
            raise ValueError(f"transfer.lrs has {len(self.lrs)} stages but transfer.epochs {len(self.epochs)}")
        if self.ps10.channels != 3 or self.ps10.image_size * self.pool != 32:
            raise ValueError("transfer.ps10 must be 3-channel images of size 32/pool so that its inputs "
                             f"match the pooled CIFAR-10 source (3×{32 // self.pool}×{32 // self.pool}), got "
                             f"{self.ps10.channels}×{self.ps10.image_size}×{self.ps10.image_size}")
        return self


class AutoDecaySettings(Strict):
    """AutoDecay against a grid of step decays on PS10 (same net, data and epoch budget)."""

    data: PS10Config
    width: int = Field(gt=0)
    epochs: int = Field(gt=1, description="the budget; step decays use all of it")
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    factor: float = Field(0.1, gt=0, lt=1)
    step_grid: list[list[int]] = Field(min_length=1, description="milestone epochs of each step decay")
    beta: float = Field(0.9, gt=0, lt=1)
    window: int = Field(5, ge=2)
    tol: float = Field(0.02, gt=0)
    drop: float = Field(0.9, gt=0, le=1)
    max_decays: int | None = Field(None, ge=0)
    stage_start: Literal["plateau", "first"] = "plateau"
    acc_tol: float = Field(0.005, gt=0, description="'within 0.5 points' of the tuned step decay")
    epoch_saving: float = Field(0.1, ge=0, lt=1, description="at least this share of epochs saved")


class Settings(Strict):
    seeds: list[int] = Field(min_length=2)
    patterns: PatternSettings
    noise: NoiseSettings
    gdsgd: GDSGDSettings
    transfer: TransferSettings
    autodecay: AutoDecaySettings


class ClaimConfig(Strict):
    """The claim config (configs/you2019/*.yaml): everything lives under ``claim``."""

    claim: Settings


@dataclass
class Outcome:
    """Per (part, seed) measurements and the verdicts judged from them."""

    cfg: ClaimConfig
    results: dict[tuple[str, int], dict]
    verdicts: list[Verdict] = field(default_factory=list)
    regime: str = "ps10+cifar"


def preflight(cfg: ClaimConfig) -> None:
    """Checks that need no training: class lists and a readable CIFAR-10 source."""
    from ..data import resolve_source

    t = cfg.claim.transfer
    if len(set(t.source_classes)) != len(t.source_classes) or not all(0 <= c < 10 for c in t.source_classes):
        raise ValueError(f"transfer.source_classes must be distinct classes in 0..9, got {t.source_classes}")
    if len(t.source_classes) > 8:
        raise ValueError("transfer.source_classes must leave at least 2 CIFAR-10 classes for the target")
    for p in (cfg.claim.gdsgd.pool, t.pool):
        if 32 % p:
            raise ValueError(f"pool must divide 32, got {p}")
    resolve_source()


# ------------------------------------------------------------------------------------ jobs
def _two_layer(input_shape: tuple[int, ...], width: int, classes: int):
    from ..config import TwoLayerConfig
    from ..models import make_model

    return make_model(TwoLayerConfig(width=width), input_shape, classes)


def _curves(res, members: list[str], metrics: list[str], spe: int) -> dict[str, pd.DataFrame]:
    """Each metric as a table: rows = epochs (float), columns = member names."""
    out = {}
    for m in metrics:
        c = res.curve(m)
        c.columns = members
        c.index = c.index / spe
        out[m] = c
    return out


def _pattern_job(p: PatternSettings, seed: int) -> dict:
    """(a) or (b): step decay and constant controls on PS10 for one seed."""
    from ..config import TrainConfig
    from ..data import ps10
    from ..train import Constant, Member, StepDecay, train_population

    split = ps10(p.data, seed)
    spe = len(split.train) // p.batch_size
    names = ["decay"] + [f"constant {lr:g}" for lr in p.stage_lrs()]
    scheds = [StepDecay(p.lr, tuple(m * spe for m in p.milestones), p.factor)]
    scheds += [Constant(lr) for lr in p.stage_lrs()]
    members = [Member(n, seed, s) for n, s in zip(names, scheds)]
    model = _two_layer(tuple(split.train.input_shape), p.width, p.data.n_classes)
    cfg = TrainConfig(loss="cross_entropy", steps=p.epochs * spe, batch_size=p.batch_size,
                      eval_every=p.eval_every * spe, momentum=p.momentum)
    res = train_population(model, members, split.train, split.test, cfg)
    metrics = ["test.simple.acc", "test.complex.acc", "train.simple.acc", "train.complex.acc",
               "train.noise.acc", "test.acc", "train.loss"]
    return {"curves": _curves(res, names, metrics, spe), "names": names}


def _gdsgd_job(g: GDSGDSettings, seed: int) -> dict:
    """(c, d): GD runs (constant and decayed at each step in gd_decay_at), SGD runs, Hessian top-k."""
    from ..config import TrainConfig
    from ..data import cifar10_vectors
    from ..models import FromModule
    from ..probes.curvature import population_top_eigs
    from ..train import Constant, Member, StepDecay, train_population

    split = cifar10_vectors(g.n_per_class, g.test_per_class, seed, pool=g.pool)
    x, y = split.train.x, split.train.y
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FromModule(torch_mlp(x.shape[1], g.width, g.depth, 10))
    gd_names = ["constant"] + [f"decay@{s}" for s in g.gd_decay_at]
    gd = [Member(n, seed, Constant(g.gd_lr) if n == "constant" else StepDecay(g.gd_lr, (s,), g.factor))
          for n, s in zip(gd_names, [0] + list(g.gd_decay_at))]
    res = train_population(model, gd, split.train, split.test,
                           TrainConfig(loss="cross_entropy", steps=g.gd_steps, batch_size=None,
                                       eval_every=g.gd_eval_every))
    gd_curves = _curves(res, gd_names, ["test.acc", "train.loss", "train.acc"], 1)
    eig = population_top_eigs(model, res.params, x, y, "cross_entropy", 10, k=g.top_k, iters=max(60, 4 * g.top_k),
                              tol=1e-4)
    spe = len(y) // g.sgd_batch
    sgd_names = ["constant"] + [f"decay@{e}" for e in g.sgd_decay_at]
    sgd = [Member(n, seed, Constant(g.sgd_lr) if n == "constant" else StepDecay(g.sgd_lr, (e * spe,), g.factor))
           for n, e in zip(sgd_names, [0] + list(g.sgd_decay_at))]
    res2 = train_population(model, sgd, split.train, split.test,
                            TrainConfig(loss="cross_entropy", steps=g.sgd_epochs * spe, batch_size=g.sgd_batch,
                                        eval_every=spe))
    sgd_curves = _curves(res2, sgd_names, ["test.acc", "train.loss", "train.acc"], spe)
    final_lr = {n: (g.gd_lr if n == "constant" else g.gd_lr * g.factor) for n in gd_names}
    return {"gd": gd_curves, "sgd": sgd_curves, "eigs": pd.DataFrame(eig.double().numpy(), index=gd_names),
            "gd_final_lr": final_lr}


def _transfer_job(t: TransferSettings, seed: int) -> dict:
    """Stage snapshots on the CIFAR-10 source; fix and finetune onto the other classes and PS10."""
    from ..data import cifar10_vectors, ps10
    from ..transfer import train_with_snapshots, transfer_stages

    split = cifar10_vectors(t.n_per_class, t.test_per_class, seed, pool=t.pool)
    src = torch.tensor(t.source_classes)
    others = [c for c in range(10) if c not in t.source_classes]

    def part(ds, classes):
        keep = torch.isin(ds.y, torch.tensor(classes))
        relabel = torch.full((10,), -1, dtype=torch.long)
        relabel[torch.tensor(classes)] = torch.arange(len(classes))
        return ds.x[keep], relabel[ds.y[keep]]

    xs, ys = part(split.train, src.tolist())
    xs_te, ys_te = part(split.test, src.tolist())
    xt, yt = part(split.train, others)
    xt_te, yt_te = part(split.test, others)
    p = ps10(t.ps10, seed)
    targets = {"cifar10-other-classes": (xt, yt, xt_te, yt_te),
               "ps10": (p.train.x.flatten(1), p.train.y, p.test.x.flatten(1), p.test.y)}
    make = torch_mlp(xs.shape[1], t.width, 2, len(t.source_classes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = make()
    snaps = train_with_snapshots(net, xs, ys, lrs=list(t.lrs), epochs_per_stage=list(t.epochs),
                                 batch_size=t.batch_size, momentum=t.momentum, seed=seed)
    tab = transfer_stages(snaps, make, (xs_te, ys_te), targets, finetune_epochs=t.finetune_epochs,
                          finetune_lr=t.finetune_lr, finetune_batch=t.batch_size,
                          probe_epochs=t.probe_epochs, seed=seed)
    tab["seed"] = seed
    return {"table": tab}


def _autodecay_job(a: AutoDecaySettings, seed: int) -> dict:
    """Step decays from the grid and one AutoDecay member, same budget, on PS10."""
    from ..config import TrainConfig
    from ..data import ps10
    from ..train import Member, StepDecay, train_population
    from ..train.autodecay import AutoDecaySchedule

    split = ps10(a.data, seed)
    spe = len(split.train) // a.batch_size
    names = ["step@" + "-".join(map(str, ms)) for ms in a.step_grid] + ["autodecay"]
    scheds = [StepDecay(a.lr, tuple(m * spe for m in ms), a.factor) for ms in a.step_grid]
    scheds.append(AutoDecaySchedule(a.lr, beta=a.beta, window=a.window, tol=a.tol, drop=a.drop,
                                    factor=a.factor, max_decays=a.max_decays, stage_start=a.stage_start))
    members = [Member(n, seed, s) for n, s in zip(names, scheds)]
    model = _two_layer(tuple(split.train.input_shape), a.width, a.data.n_classes)
    cfg = TrainConfig(loss="cross_entropy", steps=a.epochs * spe, batch_size=a.batch_size,
                      eval_every=spe, momentum=a.momentum)
    res = train_population(model, members, split.train, split.test, cfg)
    curves = _curves(res, names, ["test.acc", "train.loss"], spe)
    stop = int(res.members.stopped_step.iloc[-1])
    final = {n: float(curves["test.acc"][n].dropna().iloc[-1]) for n in names}
    if stop >= 0:  # the autodecay member's accuracy when it stopped
        final["autodecay"] = float(curves["test.acc"]["autodecay"].loc[stop / spe])
    return {"curves": curves, "final": final, "decisions": res.decisions[len(names) - 1],
            "epochs_used": (stop / spe) if stop >= 0 else float(a.epochs), "budget": a.epochs}


def _run_job(cfg_data: dict, part: str, seed: int, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    s = ClaimConfig.model_validate(cfg_data).claim
    jobs = {"patterns": lambda: _pattern_job(s.patterns, seed), "noise": lambda: _pattern_job(s.noise, seed),
            "gdsgd": lambda: _gdsgd_job(s.gdsgd, seed), "transfer": lambda: _transfer_job(s.transfer, seed),
            "autodecay": lambda: _autodecay_job(s.autodecay, seed)}
    return jobs[part]()


PARTS = ("patterns", "noise", "gdsgd", "transfer", "autodecay")


def run(cfg: ClaimConfig, out: Path, progress: bool = False, log: Callable[[str], None] = print,
        workers: int | None = None) -> list[Outcome]:
    """Every (part, seed) job, in this process or over local processes, then the verdicts."""
    from ..exec.local import default_workers, run_jobs

    s = cfg.claim
    jobs = [(part, sd) for part in ("gdsgd",) + tuple(p for p in PARTS if p != "gdsgd") for sd in s.seeds]
    n = workers if workers is not None else default_workers(len(jobs))
    log(f"[{NAME}] {len(jobs)} jobs ({', '.join(PARTS)} × seeds {s.seeds}) on {n} worker(s)")
    data = cfg.model_dump(mode="json")
    done = run_jobs(_run_job, [(data, part, sd) for part, sd in jobs], n, log,
                    label=lambda job: f"{job[1]} seed {job[2]}")
    results = dict(zip(jobs, done))
    o = Outcome(cfg, results)
    o.verdicts = judge(o)
    return [o]


# ------------------------------------------------------------------------------------ verdicts
def _at(curve: pd.Series, epoch: float) -> float:
    """The value at the probe nearest to ``epoch``."""
    c = curve.dropna()
    return float(c.iloc[int(np.argmin(np.abs(c.index.to_numpy() - epoch)))])


def judge(o: Outcome) -> list[Verdict]:
    """Every verdict from the measured runs (module docstring)."""
    s = o.cfg.claim
    seeds = s.seeds
    v: list[Verdict] = []

    def add(id_, statement, effect, values, notes=""):  # e.g. transferability is undefined when a
        # stage leaves the source accuracy unchanged: such seeds are left out
        v.append(verdict_defined(NAME, id_, statement, effect, values, 0.0, o.regime, notes=notes))

    p = s.patterns
    R = [o.results[("patterns", sd)]["curves"] for sd in seeds]
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
            "complex patterns", f"final complex test acc (decay) − (constant {lr:g})", vals)
    q = s.noise
    N = [o.results[("noise", sd)]["curves"] for sd in seeds]
    small = f"constant {q.small_lr:g}"
    add("b-noise-complex", f"PS10 with {q.data.noise_frac:.0%} noisy labels: large LR + decay beats the small "
        f"constant LR {q.small_lr:g} on complex test patterns",
        f"final complex test acc (decay) − (constant {q.small_lr:g})",
        [_at(c["test.complex.acc"]["decay"], q.epochs) - _at(c["test.complex.acc"][small], q.epochs) for c in N])
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
    G = [o.results[("gdsgd", sd)] for sd in seeds]
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
    tab = pd.concat([o.results[("transfer", sd)]["table"] for sd in seeds], ignore_index=True)
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
    A = [o.results[("autodecay", sd)] for sd in seeds]
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


# ------------------------------------------------------------------------------------ report
def section(cfg: ClaimConfig, outcomes: list[Outcome], figdir: Path, rel: Path) -> str:
    """The report section: setup and the paper's figures."""
    o = outcomes[0]
    s = cfg.claim
    figs = [(_pattern_figure(o, "patterns", figdir), "PS10: simple and complex accuracy by schedule"),
            (_pattern_figure(o, "noise", figdir), "PS10 with noisy labels"),
            (_gdsgd_figure(o, figdir), "GD against SGD"),
            (_eig_figure(o, figdir), "top Hessian eigenvalues of GD-trained nets"),
            (_transfer_figure(o, figdir), "transferability per stage"),
            (_autodecay_figure(o, figdir), "AutoDecay's smoothed loss and decisions")]
    p, g, t, a = s.patterns, s.gdsgd, s.transfer, s.autodecay
    lines = [f"## {NAME}: {PAPER}", "",
             f"Seeds {s.seeds}. PS10 (SPEC §4; {p.data.channels} channels, image size {p.data.image_size}, "
             f"{p.data.n_train} training examples): two-layer ReLU net of width {p.width}, SGD with momentum "
             f"{p.momentum}, batch {p.batch_size}, {p.epochs} epochs, step decay ×{p.factor} at epochs "
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
    from ..data.ps10 import ps10_arrays, ps10_info

    info = ps10_info(ps10_arrays(s.noise.data, s.seeds[0]))
    tr, ref = info["train"], info["reference_bits"]
    lines += [f"PS10 check (noisy variant, seed {s.seeds[0]}): class-conditional entropy of the pattern "
              f"index {tr['entropy_bits']['simple']:.2f} bits for simple and {tr['entropy_bits']['complex']:.2f} "
              f"for complex training examples (log2 {p.data.n_simple} = {ref['simple']:.2f}, log2 "
              f"{p.data.n_complex} = {ref['complex']:.2f}; the plug-in estimate reads low with few examples "
              f"per pattern); noise share {tr['noise_frac']:.3f}.", ""]
    for f, alt in figs:
        lines += [f"![{alt}]({rel / f.name})", ""]
    return "\n".join(lines)


def _stage_marks(ax, milestones) -> None:
    for m in milestones:
        ax.axvline(m, color="0.5", lw=0.7, ls=":")


def _pattern_figure(o: Outcome, part: str, figdir: Path) -> Path:
    from ..report.figures import plt, save

    p = getattr(o.cfg.claim, part)
    groups = ["test.simple.acc", "test.complex.acc"] + (["train.noise.acc"] if part == "noise" else [])
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.4), squeeze=False)
    seeds = o.cfg.claim.seeds
    for ax, metric in zip(axes[0], groups):
        for name in o.results[(part, seeds[0])]["names"]:
            mean = pd.concat([o.results[(part, sd)]["curves"][metric][name] for sd in seeds], axis=1).mean(axis=1)
            ax.plot(mean.index, mean.to_numpy(), lw=1.4 if name == "decay" else 1, label=name)
        _stage_marks(ax, p.milestones)
        ax.set_title(metric.replace("train.noise.acc", "noise memorised (train)"), fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (seed mean)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    title = "PS10" if part == "patterns" else f"PS10 with {p.data.noise_frac:.0%} noisy labels"
    fig.suptitle(f"{NAME}: {title} (dotted: decays)", fontsize=10)
    return save(fig, figdir / f"{NAME}-{part}.png")


def _gdsgd_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    g, seeds = o.cfg.claim.gdsgd, o.cfg.claim.seeds
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, kind, marks, unit in ((axes[0], "gd", g.gd_decay_at, "step"), (axes[1], "sgd", g.sgd_decay_at, "epoch")):
        cols = o.results[("gdsgd", seeds[0])][kind]["test.acc"].columns
        for name in cols:
            mean = pd.concat([o.results[("gdsgd", sd)][kind]["test.acc"][name] for sd in seeds], axis=1).mean(axis=1)
            ax.plot(mean.index, mean.to_numpy(), lw=1, label=name)
        _stage_marks(ax, marks)
        ax.set_title("full-batch GD" if kind == "gd" else "SGD", fontsize=9)
        ax.set_xlabel(unit)
        ax.set_ylabel("test accuracy (seed mean)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{NAME} (c): GD against SGD on a CIFAR-10 subset (dotted: decays)", fontsize=10)
    return save(fig, figdir / f"{NAME}-gd-sgd.png")


def _eig_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    seeds = o.cfg.claim.seeds
    eigs = o.results[("gdsgd", seeds[0])]["eigs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    k = eigs.shape[1]
    width = 0.8 / len(eigs)
    for i, (name, row) in enumerate(eigs.iterrows()):
        axes[0].bar(np.arange(k) + i * width, row.to_numpy(), width, label=name)
        axes[1].bar(np.arange(k) + i * width, 2 / row.to_numpy(), width, label=name)
    g = o.cfg.claim.gdsgd
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
    return save(fig, figdir / f"{NAME}-eigenvalues.png")


def _transfer_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    seeds = o.cfg.claim.seeds
    tab = pd.concat([o.results[("transfer", sd)]["table"] for sd in seeds], ignore_index=True)
    tab = tab[tab.stage > 0]
    combos = list(tab.groupby(["target", "method"]).groups)
    stages = sorted(tab.stage.unique())
    fig, ax = plt.subplots(figsize=(7, 3.6))
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
    return save(fig, figdir / f"{NAME}-transfer.png")


def _autodecay_figure(o: Outcome, figdir: Path) -> Path:
    from ..report.figures import plt, save

    seeds = o.cfg.claim.seeds
    r = o.results[("autodecay", seeds[0])]
    d = r["decisions"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
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
    return save(fig, figdir / f"{NAME}-autodecay.png")
