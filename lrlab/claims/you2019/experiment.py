"""you2019 jobs: one per (part, seed) — patterns, noise, gdsgd, transfer, autodecay — each
returning tidy tables (see docs/claims/you2019.md for their columns)."""

from __future__ import annotations

from typing import Callable

import pandas as pd
import torch
from torch import Tensor, nn

from ...config import TrainConfig, TwoLayerConfig
from ...data import cifar10_vectors, ps10, resolve_source
from ...data.ps10 import PS10Part, ps10_arrays, ps10_info
from ...models import FromModule, make_model
from ...models.mlp import torch_mlp
from ...probes.curvature import population_top_eigs
from ...seeding import seeded
from ...train import Constant, Member, StepDecay, train_population
from ...train.autodecay import AutoDecaySchedule
from ...transfer import train_with_snapshots, transfer_stages
from ..protocol import Job, JobContext, config_inputs, seed_job
from .config import (
    GD_LARGER,
    AutoDecaySettings,
    Config,
    GDSGDSettings,
    PatternSettings,
    TransferSettings,
    autodecay_names,
    control_name,
    gd_larger_names,
    gd_names,
    pattern_names,
    sgd_names,
)

PARTS = ("gdsgd", "patterns", "noise", "transfer", "autodecay")
"""Every part; gdsgd first (the longest jobs start first)."""

MEMORY_GB = {"gdsgd": 2.0, "patterns": 1.0, "noise": 1.0, "transfer": 2.0, "autodecay": 1.0}
"""A rough upper estimate per job (the CIFAR-10 parts hold the decoded arrays)."""

PATTERN_METRICS = ("test.simple.acc", "test.complex.acc", "train.simple.acc", "train.complex.acc",
                   "train.noise.acc", "test.acc", "train.loss")
GDSGD_METRICS = ("test.acc", "train.loss", "train.acc")
GD_LARGER_METRICS = (*GDSGD_METRICS, "diverged")
AUTODECAY_METRICS = ("test.acc", "train.loss")
CURVE_COLUMNS = ["part", "seed", "name", "epoch", "metric", "value"]
MEMORISATION_COLUMNS = ["seed", "name", "when", "epoch", "n_noisy", "n_not_true", "n_noisy_label"]
NOT_TRUE, NOISY_LABEL = "noise.n_not_true", "noise.n_noisy_label"


def jobs(cfg: Config) -> list[Job]:
    """One job per (part, seed): every part runs every seed of ``execution.seeds``."""
    return [seed_job(part, sd, cpus=1, memory_gb=MEMORY_GB[part]) for part in PARTS for sd in cfg.execution.seeds]


def job_inputs(cfg: Config, job: Job) -> dict:
    """What a job reads: its own part's section of the claim."""
    return config_inputs(cfg, keep_claim=[job.part])


def preflight(cfg: Config) -> None:
    """Checks that need no training: a readable CIFAR-10 source (classes and pools are checked
    by the schema)."""
    resolve_source()


# ------------------------------------------------------------------------------------ helpers
def _two_layer(input_shape: tuple[int, ...], width: int, classes: int):
    return make_model(TwoLayerConfig(width=width), input_shape, classes)


def _curves(res, part: str, seed: int, names: list[str], metrics: tuple[str, ...], spe: int) -> pd.DataFrame:
    """Every metric's curve in long form: epoch = step / steps-per-epoch (for GD: the step)."""
    out = []
    for m in metrics:
        c = res.curve(m)
        c.columns = names
        epoch = c.index.to_numpy() / spe
        for n in names:
            out.append(pd.DataFrame({"part": part, "seed": seed, "name": n, "epoch": epoch, "metric": m,
                                     "value": c[n].to_numpy(dtype="float64")}))
    return pd.concat(out, ignore_index=True)[CURVE_COLUMNS]


def transfer_net(d_in: int, width: int, classes: int, device: str) -> Callable[[], nn.Module]:
    """The transfer part's network factory: a two-layer ReLU MLP, initialised on the CPU (so the
    weights do not depend on the device) and moved to ``device``."""
    make = torch_mlp(d_in, width, 2, classes)
    return lambda: make().to(device)


def memorisation_probes(part: PS10Part) -> dict[str, Callable]:
    """Probes counting, per member, the noisy training points (``part.noise``) whose predicted
    class (argmax) is not their true class (``NOT_TRUE``), and those predicted as their noisy
    label (``NOISY_LABEL``; a subset of the former, since a noisy label is never the true class).
    The points move to the parameters' device at the first probe."""
    m = part.noise
    cpu = (part.x[m], part.y[m], part.true_class[m])
    moved: dict[torch.device, tuple[Tensor, Tensor, Tensor]] = {}

    def predictions(model, params) -> tuple[Tensor, Tensor, Tensor]:
        w = next(iter(params.values()))
        if w.device not in moved:
            moved[w.device] = tuple(t.to(w.device) for t in cpu)
        x, noisy, true = moved[w.device]
        with torch.no_grad():
            pred = model.forward(params, x.unsqueeze(0).expand(w.shape[0], *x.shape)).argmax(-1)  # [K, n]
        return pred, noisy, true

    def not_true(model, params) -> Tensor:
        pred, _, true = predictions(model, params)
        return (pred != true).sum(-1).double()

    def noisy_label(model, params) -> Tensor:
        pred, noisy, _ = predictions(model, params)
        return (pred == noisy).sum(-1).double()

    return {NOT_TRUE: not_true, NOISY_LABEL: noisy_label}


def _memorisation(res, seed: int, names: list[str], p: PatternSettings, spe: int, n_noisy: int) -> pd.DataFrame:
    """The two counts of every member at the first decay and at the end (NaN for a diverged run)."""
    nt, nl = res.curve(NOT_TRUE), res.curve(NOISY_LABEL)
    nt.columns = nl.columns = names
    rows = []
    for when, epoch in (("first_decay", p.milestones[0]), ("end", p.epochs)):
        step = epoch * spe
        rows += [{"seed": seed, "name": n, "when": when, "epoch": float(epoch), "n_noisy": n_noisy,
                  "n_not_true": float(nt.loc[step, n]), "n_noisy_label": float(nl.loc[step, n])} for n in names]
    return pd.DataFrame(rows)[MEMORISATION_COLUMNS]


# ------------------------------------------------------------------------------------ parts
def _pattern_job(part: str, p: PatternSettings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(a) or (b): step decay and constant controls on PS10 for one seed; with ``p.control``, then
    the physical-time control (``control_name``): the small constant rate for ``control_epochs()``,
    trained as a second population (same seed: same initialisation and minibatch order)."""
    draw = ps10_arrays(p.data, seed)
    split = draw.split()
    out: dict[str, pd.DataFrame] = {}
    if part == "noise":  # the data check the report quotes
        info = ps10_info(draw)
        tr, ref = info["train"], info["reference_bits"]
        out["ps10_check"] = pd.DataFrame([{
            "seed": seed, "entropy_simple": float(tr["entropy_bits"]["simple"]),
            "entropy_complex": float(tr["entropy_bits"]["complex"]), "reference_simple": float(ref["simple"]),
            "reference_complex": float(ref["complex"]), "noise_frac": float(tr["noise_frac"])}])
    spe = len(split.train) // p.batch_size
    names = pattern_names(p)
    scheds = [StepDecay(p.lr, tuple(m * spe for m in p.milestones), p.factor)]
    scheds += [Constant(lr) for lr in p.stage_lrs()]
    members = [Member(n, seed, s) for n, s in zip(names, scheds)]
    model = _two_layer(tuple(split.train.input_shape), p.width, p.data.n_classes)
    cfg = TrainConfig(loss="cross_entropy", steps=p.epochs * spe, batch_size=p.batch_size,
                      eval_every=p.eval_every * spe, momentum=p.momentum, device=device)
    probes = every = None
    if part == "noise":  # the noisy points' predictions, at the first decay and at the end
        probes = memorisation_probes(draw.train)
        every = {k: p.milestones[0] * spe for k in probes}  # the last step is always probed too
    res = train_population(model, members, split.train, split.test, cfg, probes=probes, probe_every=every)
    out["curves"] = _curves(res, part, seed, names, PATTERN_METRICS, spe)
    if p.control:  # the physical-time control: its own population, so the one above stays as it was
        ctrl = control_name(p)
        ccfg = cfg.model_copy(update={"steps": p.control_epochs() * spe})
        cres = train_population(model, [Member(ctrl, seed, Constant(p.control_lr()))], split.train, split.test, ccfg)
        out["curves"] = pd.concat([out["curves"], _curves(cres, part, seed, [ctrl], PATTERN_METRICS, spe)],
                                  ignore_index=True)
    if part == "noise":
        out["memorisation"] = _memorisation(res, seed, names, p, spe, int(draw.train.noise.sum()))
    return out


def _gdsgd_job(g: GDSGDSettings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(c, d): GD runs (constant and decayed at each step in gd_decay_at), SGD runs, Hessian top-k; and
    (appendix A.2) GD at each ``gd_diverge_factors`` × gd_lr, same initialisation and steps, as a second
    population (curves part ``gd-larger``; a run the trainer froze reads NaN from then on)."""
    split = cifar10_vectors(g.n_per_class, g.test_per_class, seed, pool=g.pool)
    x, y = split.train.x, split.train.y
    with seeded(seed):
        model = FromModule(torch_mlp(x.shape[1], g.width, g.depth, 10))
    names = gd_names(g)
    gd = [Member(n, seed, Constant(g.gd_lr) if n == "constant" else StepDecay(g.gd_lr, (s,), g.factor))
          for n, s in zip(names, [0] + list(g.gd_decay_at))]
    res = train_population(model, gd, split.train, split.test,
                           TrainConfig(loss="cross_entropy", steps=g.gd_steps, batch_size=None,
                                       eval_every=g.gd_eval_every, device=device))
    gd_curves = _curves(res, "gd", seed, names, GDSGD_METRICS, 1)
    if g.gd_diverge_factors:  # appendix A.2: the larger rates, as their own population (the one above is unchanged)
        lnames = gd_larger_names(g)
        larger = [Member(n, seed, Constant(g.gd_lr * f)) for n, f in zip(lnames, g.gd_diverge_factors)]
        lres = train_population(model, larger, split.train, split.test,
                                TrainConfig(loss="cross_entropy", steps=g.gd_steps, batch_size=None,
                                            eval_every=g.gd_eval_every, device=device))
        gd_curves = pd.concat([gd_curves, _curves(lres, GD_LARGER, seed, lnames, GD_LARGER_METRICS, 1)],
                              ignore_index=True)
    eig = population_top_eigs(model, res.params, x.to(device), y.to(device), "cross_entropy", 10, k=g.top_k,
                              iters=max(60, 4 * g.top_k), tol=1e-4)
    eig = eig.detach().double().cpu().numpy()
    eigs = pd.DataFrame([{"seed": seed, "name": n, "i": i, "value": float(eig[j, i])}
                         for j, n in enumerate(names) for i in range(eig.shape[1])])
    spe = len(y) // g.sgd_batch
    snames = sgd_names(g)
    sgd = [Member(n, seed, Constant(g.sgd_lr) if n == "constant" else StepDecay(g.sgd_lr, (e * spe,), g.factor))
           for n, e in zip(snames, [0] + list(g.sgd_decay_at))]
    res2 = train_population(model, sgd, split.train, split.test,
                            TrainConfig(loss="cross_entropy", steps=g.sgd_epochs * spe, batch_size=g.sgd_batch,
                                        eval_every=spe, device=device))
    sgd_curves = _curves(res2, "sgd", seed, snames, GDSGD_METRICS, spe)
    final_lr = pd.DataFrame({"seed": seed, "name": names,
                             "lr": [g.gd_lr if n == "constant" else g.gd_lr * g.factor for n in names]})
    return {"curves": pd.concat([gd_curves, sgd_curves], ignore_index=True), "eigs": eigs, "gd_final_lr": final_lr}


def _transfer_job(t: TransferSettings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """Stage snapshots on the CIFAR-10 source; fix and finetune onto the other classes and PS10."""
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
    make = transfer_net(xs.shape[1], t.width, len(t.source_classes), device)
    with seeded(seed):
        net = make()

    def dev(*ts):
        return tuple(x.to(device) for x in ts)

    targets = {"cifar10-other-classes": dev(xt, yt, xt_te, yt_te),
               "ps10": dev(p.train.x.flatten(1), p.train.y, p.test.x.flatten(1), p.test.y)}
    xs, ys, xs_te, ys_te = dev(xs, ys, xs_te, ys_te)
    snaps = train_with_snapshots(net, xs, ys, lrs=list(t.lrs), epochs_per_stage=list(t.epochs),
                                 batch_size=t.batch_size, momentum=t.momentum, seed=seed)
    tab = transfer_stages(snaps, make, (xs_te, ys_te), targets, finetune_epochs=t.finetune_epochs,
                          finetune_lr=t.finetune_lr, finetune_batch=t.batch_size,
                          probe_epochs=t.probe_epochs, seed=seed)
    tab["seed"] = seed
    return {"transfer": tab}


def _autodecay_job(a: AutoDecaySettings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """Step decays from the grid and one AutoDecay member, same budget, on PS10."""
    split = ps10(a.data, seed)
    spe = len(split.train) // a.batch_size
    names = autodecay_names(a)
    scheds = [StepDecay(a.lr, tuple(m * spe for m in ms), a.factor) for ms in a.step_grid]
    scheds.append(AutoDecaySchedule(a.lr, beta=a.beta, window=a.window, tol=a.tol, drop=a.drop,
                                    factor=a.factor, max_decays=a.max_decays, stage_start=a.stage_start))
    members = [Member(n, seed, s) for n, s in zip(names, scheds)]
    model = _two_layer(tuple(split.train.input_shape), a.width, a.data.n_classes)
    cfg = TrainConfig(loss="cross_entropy", steps=a.epochs * spe, batch_size=a.batch_size,
                      eval_every=spe, momentum=a.momentum, device=device)
    res = train_population(model, members, split.train, split.test, cfg)
    curves = _curves(res, "autodecay", seed, names, AUTODECAY_METRICS, spe)
    acc = res.curve("test.acc")
    acc.columns = names
    acc.index = acc.index / spe
    stop = int(res.members.stopped_step.iloc[-1])
    final = {n: float(acc[n].dropna().iloc[-1]) for n in names}
    if stop >= 0:  # the autodecay member's accuracy when it stopped
        final["autodecay"] = float(acc["autodecay"].loc[stop / spe])
    dec = res.decisions[len(names) - 1]
    decisions = pd.DataFrame({"seed": seed, "epoch": dec.epoch.astype("int64"), "loss": dec.loss.astype("float64"),
                              "g": dec.g.astype("float64"), "action": dec.action.astype(str)})
    return {"curves": curves,
            "autodecay_final": pd.DataFrame({"seed": seed, "name": names, "test_acc": [final[n] for n in names]}),
            "autodecay": pd.DataFrame([{"seed": seed, "epochs_used": (stop / spe) if stop >= 0 else float(a.epochs),
                                        "budget": a.epochs}]),
            "decisions": decisions}


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    """One (part, seed) on ``ctx.device``."""
    s, seed, device = cfg.claim, int(job.params["seed"]), ctx.device
    if job.part in ("patterns", "noise"):
        return _pattern_job(job.part, getattr(s, job.part), seed, device)
    if job.part == "gdsgd":
        return _gdsgd_job(s.gdsgd, seed, device)
    if job.part == "transfer":
        return _transfer_job(s.transfer, seed, device)
    if job.part == "autodecay":
        return _autodecay_job(s.autodecay, seed, device)
    raise ValueError(f"{job.key}: unknown part {job.part!r}; expected one of {list(PARTS)}")
