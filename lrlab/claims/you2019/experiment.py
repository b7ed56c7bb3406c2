"""you2019 jobs: one per (part, seed) — patterns, noise, gdsgd, transfer, autodecay — each
returning tidy tables (see docs/claims/you2019.md for their columns)."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import pandas as pd
import torch
from torch import Tensor, nn

from ...config import PS10Config, TrainConfig, TwoLayerConfig
from ...data import cifar10_vectors, ps10, resolve_source
from ...data.dataset import Split
from ...data.ps10 import PS10Part, ps10_arrays, ps10_info
from ...models import FromModule, make_model
from ...models.mlp import torch_mlp
from ...plan import Stage
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
    ImageModel,
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
    """What a job reads: its own part's section of the claim. ``model`` is left out while it is
    None (the default MLP), so jobs stored before the field existed keep their fingerprints."""
    data = config_inputs(cfg, keep_claim=[job.part])
    section = data["claim"][job.part]
    for key in ("model", "gd_micro_batch"):  # unset: left out, as before these options existed
        if key in section and section[key] is None:
            del section[key]
    return data


def preflight(cfg: Config) -> None:
    """Checks that need no training: a readable CIFAR-10 source (classes and pools are checked
    by the schema)."""
    resolve_source()


# ------------------------------------------------------------------------------------ helpers
def ps10_net(p: PatternSettings | AutoDecaySettings):
    """A PS10 part's network: the two-layer ReLU net of ``p.width``, or the image model ``p.model``."""
    return make_model(p.model or TwoLayerConfig(width=p.width), ps10_shape(p.data), p.data.n_classes)


def ps10_shape(data: PS10Config) -> tuple[int, int, int]:
    """One PS10 example: channels × image_size × image_size."""
    return (data.channels, data.image_size, data.image_size)


def cifar_shape(pool: int, model: ImageModel | None) -> tuple[int, ...]:
    """One pooled CIFAR-10 example as a part's network reads it: a vector of 3·(32/pool)² numbers
    for the MLP, a 3×(32/pool)×(32/pool) image for an image model."""
    s = 32 // pool
    return (3 * s * s,) if model is None else (3, s, s)


def as_images(split: Split, pool: int) -> Split:
    """The flattened vectors of :func:`cifar10_vectors` as 3×(32/pool)×(32/pool) images."""
    s = 32 // pool

    def images(ds):
        return dataclasses.replace(ds, x=ds.x.unflatten(1, (3, s, s)))

    return Split(images(split.train), images(split.test))


def gdsgd_net(g: GDSGDSettings, seed: int):
    """(c, d)'s network: the ReLU MLP of ``depth`` × ``width`` (built under ``seed``), or ``g.model``."""
    if g.model is None:
        with seeded(seed):
            return FromModule(torch_mlp(cifar_shape(g.pool, None)[0], g.width, g.depth, 10))
    return make_model(g.model, cifar_shape(g.pool, g.model), 10)


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


def transfer_net(d_in: int | tuple[int, ...], width: int | None, classes: int, device: str,
                 model: ImageModel | None = None) -> Callable[[], nn.Module]:
    """The transfer part's network factory: a two-layer ReLU MLP on vectors of ``d_in`` numbers, or
    with ``model`` that image model on images of shape ``d_in``; initialised on the CPU (so the
    weights do not depend on the device) and moved to ``device``."""
    if model is None:
        make = torch_mlp(int(d_in), width, 2, classes)
    else:
        make = make_model(model, tuple(d_in), classes).factory
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
    model = ps10_net(p)
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
    if g.model is not None:
        split = as_images(split, g.pool)
    x, y = split.train.x, split.train.y
    model = gdsgd_net(g, seed)
    names = gd_names(g)
    gd = [Member(n, seed, Constant(g.gd_lr) if n == "constant" else StepDecay(g.gd_lr, (s,), g.factor))
          for n, s in zip(names, [0] + list(g.gd_decay_at))]
    res = train_population(model, gd, split.train, split.test,
                           TrainConfig(loss="cross_entropy", steps=g.gd_steps, batch_size=None,
                                       micro_batch=g.gd_micro_batch, eval_every=g.gd_eval_every, device=device))
    gd_curves = _curves(res, "gd", seed, names, GDSGD_METRICS, 1)
    if g.gd_diverge_factors:  # appendix A.2: the larger rates, as their own population (the one above is unchanged)
        lnames = gd_larger_names(g)
        larger = [Member(n, seed, Constant(g.gd_lr * f)) for n, f in zip(lnames, g.gd_diverge_factors)]
        lres = train_population(model, larger, split.train, split.test,
                                TrainConfig(loss="cross_entropy", steps=g.gd_steps, batch_size=None,
                                            micro_batch=g.gd_micro_batch, eval_every=g.gd_eval_every,
                                            device=device))
        gd_curves = pd.concat([gd_curves, _curves(lres, GD_LARGER, seed, lnames, GD_LARGER_METRICS, 1)],
                              ignore_index=True)
    eig = population_top_eigs(model, res.params, x.to(device), y.to(device), "cross_entropy", 10, k=g.top_k,
                              iters=max(60, 4 * g.top_k), tol=1e-4, chunk_size=g.gd_micro_batch)
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
    if t.model is not None:
        split = as_images(split, t.pool)
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
    if t.model is None:
        make = transfer_net(xs.shape[1], t.width, len(t.source_classes), device)
    else:
        make = transfer_net(tuple(xs.shape[1:]), t.width, len(t.source_classes), device, model=t.model)
    with seeded(seed):
        net = make()

    def dev(*ts):
        return tuple(x.to(device) for x in ts)

    px, px_te = (p.train.x.flatten(1), p.test.x.flatten(1)) if t.model is None else (p.train.x, p.test.x)
    targets = {"cifar10-other-classes": dev(xt, yt, xt_te, yt_te), "ps10": dev(px, p.train.y, px_te, p.test.y)}
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
    model = ps10_net(a)
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


# ------------------------------------------------------------------------------------ the plan
def _pattern_stages(p: PatternSettings) -> list[Stage]:
    """(a)/(b): the population (step decay + a constant run per stage rate), then the control."""
    spe = p.data.n_train // p.batch_size  # the trainer drops a last partial batch
    shape, model = ps10_shape(p.data), ps10_net(p)
    out = [Stage("population", model, shape, p.batch_size, p.epochs * spe, len(pattern_names(p)))]
    if p.control:
        out.append(Stage("same-Σηt control", model, shape, p.batch_size, p.control_epochs() * spe, 1))
    return out


def _gdsgd_stages(g: GDSGDSettings, seed: int) -> list[Stage]:
    """(c, d): full-batch GD, GD at the larger rates, SGD (the Hessian probe is not training)."""
    n, shape, model = 10 * g.n_per_class, cifar_shape(g.pool, g.model), gdsgd_net(g, seed)
    out = [Stage("GD", model, shape, n, g.gd_steps, len(gd_names(g)))]
    if g.gd_diverge_factors:
        out.append(Stage("GD larger rates", model, shape, n, g.gd_steps, len(g.gd_diverge_factors)))
    out.append(Stage("SGD", model, shape, g.sgd_batch, g.sgd_epochs * (n // g.sgd_batch), len(sgd_names(g))))
    return out


def _transfer_stages(t: TransferSettings) -> list[Stage]:
    """The staged source training, then one finetune per (snapshot, target); lrlab.transfer's SGD
    keeps a last partial batch. The "fix" linear probes (L-BFGS on frozen features) are not counted."""
    shape, b = cifar_shape(t.pool, t.model), t.batch_size
    k_src = len(t.source_classes)

    def net(classes: int) -> FromModule:
        d_in = shape[0] if t.model is None else shape
        return FromModule(transfer_net(d_in, t.width, classes, "cpu", model=t.model))

    out = [Stage("source stages", net(k_src), shape, b, sum(t.epochs) * math.ceil(t.n_per_class * k_src / b))]
    targets = [("cifar10-other-classes", t.n_per_class * (10 - k_src), 10 - k_src),
               ("ps10", t.ps10.n_train, t.ps10.n_classes)]
    nets = {name: net(k) for name, _, k in targets}
    for i in range(len(t.lrs) + 1):
        out += [Stage(f"finetune stage {i} → {name}", nets[name], shape, b, t.finetune_epochs * math.ceil(n / b))
                for name, n, _ in targets]
    return out


def _autodecay_stages(a: AutoDecaySettings) -> list[Stage]:
    """The step-decay grid and AutoDecay in one population. Not capped: the trainer stops early only
    when every member is adaptive, so the step decays keep it to the budget (a stopped AutoDecay
    member trains on at rate 0)."""
    spe = a.data.n_train // a.batch_size
    return [Stage("step-decay grid + AutoDecay", ps10_net(a), ps10_shape(a.data), a.batch_size, a.epochs * spe,
                  len(autodecay_names(a)))]


def job_stages(cfg: Config, job: Job) -> list[Stage]:
    """What a job trains (:mod:`lrlab.plan`), each training call as one stage, without loading data."""
    s, seed = cfg.claim, int(job.params["seed"])
    if job.part in ("patterns", "noise"):
        return _pattern_stages(getattr(s, job.part))
    if job.part == "gdsgd":
        return _gdsgd_stages(s.gdsgd, seed)
    if job.part == "transfer":
        return _transfer_stages(s.transfer)
    if job.part == "autodecay":
        return _autodecay_stages(s.autodecay)
    raise ValueError(f"{job.key}: unknown part {job.part!r}; expected one of {list(PARTS)}")
