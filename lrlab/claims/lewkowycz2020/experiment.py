"""lewkowycz2020 jobs: per seed, the uv and ReLU sweeps (core), the CIFAR-10 accuracy sweep with the
validation-chosen rate of each phase and its controls (real), and the edge-of-stability runs (eos),
each returning tidy tables (see docs/claims/lewkowycz2020.md)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import TrainConfig
from ...data import Dataset, StackedData, balanced_subset, cifar10_vectors, load_cifar10, resolve_source
from ...eos import track_sharpness
from ...models import NTKMLP, FromModule, UVModel
from ...models.mlp import torch_mlp
from ...phase import PhaseDiagram, classify, initial_curvature, phase_diagram
from ...plan import Stage
from ...probes.accuracy import group_metrics
from ...probes.curvature import top_hessian_eigs
from ...probes.ntk import population_ntk_top_eigenvalue
from ...seeding import seeded
from ...train import Constant, Member, train_population
from ..protocol import Job, JobContext, config_inputs, seed_job
from .config import Config, RealSettings, Settings
from .selection import check_balanced, choose, equal_sum_steps, grid_phases
from .tables import phase_tables, sharpness_tables

PARTS = ("core", "real", "eos")


def regression_data(d: int, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I/d) (so |x| ≈ 1) and y ~ N(0, 1), from ``seed``."""
    g = torch.Generator().manual_seed(10_000 + seed)
    return torch.randn(m, d, generator=g) / d**0.5, torch.randn(m, generator=g)


def least_squares_floor(x: Tensor, y: Tensor) -> float:
    """min_w (1/2m)|x w − y|²: the smallest loss of any linear map, which the uv model (f = wᵀx with
    w = uᵀv/√n) can reach at every width, so its global minimum [derived]."""
    xd, yd = x.double(), y.double()
    w = torch.linalg.lstsq(xd, yd.unsqueeze(1)).solution.squeeze(1)
    return float(0.5 * ((xd @ w - yd) ** 2).mean())


def _uv_factory(d: int, width: int, seed: int) -> Callable[[], nn.Module]:
    uv = UVModel(d, width)
    params = uv.init([seed])
    return lambda: uv.to_module(params, 0)


def _mlp_factory(d: int, width: int, depth: int) -> Callable[[], nn.Module]:
    return lambda: NTKMLP(d, width, depth=depth, activation="relu")


def preflight(cfg: Config) -> None:
    """Checks that need no training: valid grids and depths, and a readable CIFAR-10 source."""
    s = cfg.claim
    s.uv.boundary.values()
    s.relu.grid.values()
    if any(dep not in (1, 2, 3) for dep in s.relu.depths):
        raise ValueError(f"claim.relu.depths must lie in 1..3, got {s.relu.depths}")
    if any(c <= 0 for c in s.real.grid) or sorted(s.real.grid) != list(s.real.grid):
        raise ValueError(f"claim.real.grid must be increasing positive η·λ0 values, got {s.real.grid}")
    check_balanced(s.real.grid, s.real.catapult_max)
    if any(v <= 0 for v in s.eos.stability):
        raise ValueError(f"claim.eos.stability must be positive, got {s.eos.stability}")
    for part in (s.real, s.eos):
        if 32 % part.pool:
            raise ValueError(f"pool must divide 32, got {part.pool}")
    resolve_source()  # names the paths it tried when CIFAR-10 is missing


def jobs(cfg: Config) -> list[Job]:
    """One job per (part, seed): core for every seed; real and eos for their stated prefix of seeds."""
    return ([seed_job("core", sd, cpus=1, memory_gb=1.0) for sd in cfg.execution.seeds]
            + [seed_job("real", sd, cpus=1, memory_gb=1.5) for sd in cfg.real_seeds()]
            + [seed_job("eos", sd, cpus=1, memory_gb=1.5) for sd in cfg.eos_seeds()])


SECTIONS = {"core": ("uv", "relu"), "real": ("real",), "eos": ("eos",)}
"""The claim sections each part reads (besides the tolerances)."""


def job_inputs(cfg: Config, job: Job) -> dict:
    """What a job reads: the claim's tolerances and its own part's sections (less ``seed_limit``,
    which decides only which seeds have a job)."""
    inputs = config_inputs(cfg, drop_claim=[k for p, ks in SECTIONS.items() if p != job.part for k in ks])
    for section in SECTIONS[job.part]:
        inputs["claim"][section].pop("seed_limit", None)
    return inputs


def _core_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """The uv sweeps (boundary grid and widths) and the ReLU maximal-rate sweeps of one seed."""
    u = s.uv
    cs = _uv_cs(s)
    x, y = regression_data(u.d, u.m, seed)  # phase_diagram moves the data to ``device``
    uv = phase_diagram(_uv_factory(u.d, u.width, seed), x, y, "squared", scaled_etas=cs, steps=u.steps,
                       seed=seed, rise_tol=s.rise_tol, curvature_every=u.curvature_every, device=device)
    rows, relu_rows = [], []
    for width in u.widths:
        pdg = phase_diagram(_uv_factory(u.d, width, seed), x, y, "squared", scaled_etas=[u.catapult_c],
                            steps=u.steps, seed=seed, rise_tol=s.rise_tol, device=device)
        c = pdg.loss.iloc[:, 0]
        rows.append({"seed": seed, "width": width, "peak_loss": float(c.max() / c.iloc[0]),
                     "peak_step": int(c.idxmax()), "phase": pdg.phases[0]})
    xr, yr = regression_data(s.relu.d, s.relu.m, seed)
    for depth in s.relu.depths:
        pdg = phase_diagram(_mlp_factory(s.relu.d, s.relu.width, depth), xr, yr, "squared",
                            scaled_etas=s.relu.grid.values(), steps=s.relu.steps, seed=seed,
                            rise_tol=s.rise_tol, device=device)
        conv = [c for c, ph in zip(pdg.etas * pdg.lam0, pdg.phases) if ph != "divergent"]
        relu_rows.append({"seed": seed, "depth": depth, "c_max": max(conv) if conv else np.nan,
                          "lam0": pdg.lam0})
    tabs = {f"uv_{k}": v for k, v in phase_tables(uv, seed).items()}
    tabs["uv_floor"] = pd.DataFrame({"seed": [seed], "loss_star": [least_squares_floor(x, y)]})
    tabs["uv_widths"] = pd.DataFrame(rows, columns=["seed", "width", "peak_loss", "peak_step", "phase"])
    tabs["relu_max"] = pd.DataFrame(relu_rows, columns=["seed", "depth", "c_max", "lam0"]).astype(
        {"c_max": np.float64, "lam0": np.float64})
    return tabs


def real_data(r: RealSettings, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """(f): the training subset of ``seed`` (as :func:`cifar10_vectors` draws it), a validation set
    of ``val_per_class`` further training images per class and the fixed test subset.

    Each class takes a prefix of one seeded permutation (:func:`balanced_subset`), so the first
    ``n_per_class`` of the ``n_per_class + val_per_class`` drawn are the training subset and the
    rest, disjoint from it (and from the test images, another pool), validate."""
    both = cifar10_vectors(r.n_per_class + r.val_per_class, r.test_per_class, seed, pool=r.pool)
    labels = load_cifar10().train_y
    idx = balanced_subset(labels, r.n_per_class + r.val_per_class, seed)  # the rows of both.train, in order
    is_train = torch.from_numpy(np.isin(idx, balanced_subset(labels, r.n_per_class, seed)))

    def rows(mask: Tensor) -> Dataset:
        t = both.train
        return Dataset(t.x[mask], t.y[mask], t.group[mask], t.group_names, t.task, t.num_classes)

    return rows(is_train), rows(~is_train), both.test


@torch.no_grad()
def _accuracy(model, params: dict[str, Tensor], data: StackedData) -> Tensor:
    """Accuracy [K] of every member of a population on ``data`` (NaN parameters give 0)."""
    K = next(iter(params.values())).shape[0]
    return group_metrics(model, params, data, torch.zeros(K, dtype=torch.long), "squared", "eval")["eval.acc"]


def real_sweep(factory: Callable[[], nn.Module], train: Dataset, evals: dict[str, Dataset], cs: list[float],
               steps: int, seed: int, rise_tol: float, every: int,
               device: str) -> tuple[PhaseDiagram, dict[str, np.ndarray]]:
    """Full-batch GD at η = c/λ0 for every c, from one initialisation (as :func:`phase_diagram`),
    with the accuracy on every set of ``evals`` (e.g. val, test) every ``every`` steps and at the
    end. Returns the PhaseDiagram (``test_acc`` from ``evals['test']``) and the final accuracy of
    every member on every set (NaN for diverged members)."""
    x, y = train.x.to(device), train.y.to(device)
    model = FromModule(factory)
    with seeded(seed):
        module = factory().to(device)
    lam0, kind = initial_curvature(module, x, y, "squared")
    etas = np.asarray(cs, dtype=float) / lam0
    members = [Member(f"eta={eta:.6g}", seed, Constant(float(eta))) for eta in etas]
    cfg = TrainConfig(loss="squared", steps=steps, batch_size=None, eval_every=1, mode="vectorized",
                      device=str(device))
    sets = {name: StackedData.stack([d.to(device)], device=device) for name, d in evals.items()}
    probes = {name: (lambda m, p, data=data: _accuracy(m, p, data)) for name, data in sets.items()}
    res = train_population(model, members, train.to(device), None, cfg, probes=probes,
                           probe_every={name: every for name in sets})
    curve = res.curve("train.loss")
    curve.columns = etas
    diverged = res.members.diverged.to_numpy()
    phases = [classify(curve[e].to_numpy(), bool(d), rise_tol) for e, d in zip(etas, diverged)]
    params = {k: torch.where(torch.isfinite(v), v, torch.zeros_like(v)).to(device) if v.is_floating_point()
              else v.to(device) for k, v in res.params.items()}
    lam_final = population_ntk_top_eigenvalue(model, params, x).detach().double().cpu().numpy()
    lam_final[diverged] = np.nan
    acc_curves, final = {}, {}
    for name, data in sets.items():
        acc = res.curve(name).dropna(how="all")
        acc.columns = etas
        acc.loc[steps] = _accuracy(model, params, data).double().cpu().numpy()
        acc.loc[:, diverged] = np.nan
        acc_curves[name], final[name] = acc, acc.loc[steps].to_numpy(dtype=float)
    ok = [e for e, p in zip(etas, phases) if p != "divergent"]
    pdg = PhaseDiagram(lam0, kind, etas, phases, curve, lam_final, float(max(ok)) if ok else None,
                       test_acc=acc_curves.get("test"))
    return pdg, final


@torch.no_grad()
def _net_accuracy(net: nn.Module, data: Dataset) -> float:
    return float((net(data.x).argmax(-1) == data.y).double().mean())


def control_run(factory: Callable[[], nn.Module], seed: int, eta: float, train: Dataset,
                evals: dict[str, Dataset], *, eq_steps: int | None, loss_frac: float, max_steps: int,
                every: int, device: str) -> tuple[dict, pd.DataFrame]:
    """Full-batch GD of one net (the sweep's initialisation: ``factory()`` under ``seed``) at rate
    ``eta`` on the squared loss of one-hot targets, with the step of :class:`train_population`
    (plain SGD, no momentum), until

    * the training loss is at most ``loss_frac``·L0 (trained to convergence; it counts only at or
      before ``max_steps``) or ``max_steps`` passed, and
    * ``eq_steps`` steps are done (the equal-Σηt control; None: no such step).

    Returns one row (L0, the step and the loss, test and validation accuracy at convergence and
    at ``eq_steps``, steps run, diverged) and the curve (step, loss, accuracy on every set) every
    ``every`` steps and at the steps that matter."""
    train = train.to(device)
    sets = {name: d.to(device) for name, d in evals.items()}
    with seeded(seed):
        net = factory().to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    target = F.one_hot(train.y, train.num_classes).to(train.x.dtype)
    row: dict = {"L0": math.nan, "conv_step": -1, "conv_loss": math.nan, "eq_steps": eq_steps or -1,
                 "eq_loss": math.nan, "diverged": False}
    row.update({f"{at}_{name}_acc": math.nan for at in ("conv", "eq") for name in sets})
    curve = []
    end = max(eq_steps or 0, 0)
    t = 0
    while True:
        loss = 0.5 * ((net(train.x) - target) ** 2).sum(-1).mean()
        value = float(loss.detach())
        if t == 0:
            row["L0"] = value
        if not math.isfinite(value):
            row["diverged"] = True
            break
        acc: dict[str, float] = {}
        met = row["conv_step"] < 0 and t <= max_steps and value <= loss_frac * row["L0"]
        if met or t == eq_steps or t % every == 0:
            acc = {name: _net_accuracy(net, d) for name, d in sets.items()}
            curve.append({"step": t, "loss": value, **{f"{name}_acc": a for name, a in acc.items()}})
        if met:
            row.update(conv_step=t, conv_loss=value, **{f"conv_{name}_acc": a for name, a in acc.items()})
        if t == eq_steps:
            row.update(eq_loss=value, **{f"eq_{name}_acc": a for name, a in acc.items()})
        if t >= end and (row["conv_step"] >= 0 or t >= max_steps):
            break
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.sub_(eta * g)
        t += 1
    row["steps_run"] = t
    cols = ["step", "loss", *(f"{name}_acc" for name in sets)]
    return row, pd.DataFrame(curve, columns=cols).drop_duplicates("step")


def _real_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(f): one seed's sweep of η·λ0 on the CIFAR-10 subset (final validation and test accuracy),
    the rate of each phase chosen on the validation split, and their controls: the chosen lazy
    rate trained to the chosen catapult run's Σηt, and both chosen rates trained to convergence."""
    r = s.real
    train, val, test = real_data(r, seed)
    d, C = train.x.shape[1], train.num_classes

    def factory() -> nn.Module:
        return NTKMLP(d, r.width, depth=r.depth, activation="relu", out_dim=C)

    evals = {"val": val, "test": test}
    pdg, final = real_sweep(factory, train, evals, list(r.grid), r.steps, seed, s.rise_tol, r.test_every, device)
    tabs = {f"real_{k}": v for k, v in phase_tables(pdg, seed).items()}
    tabs["real_sweep"]["val_acc"] = final["val"]
    picked = choose(r.grid, final["val"], r.catapult_max)
    rows, curves = [], []
    for run, i in picked.items():
        if i is None:  # every candidate of the phase diverged: no control (a failed seed in the judge)
            continue
        j = picked["catapult" if run == "lazy" else "lazy"]
        # the lazy rate runs on to the chosen catapult run's Σηt: steps · c_catapult / c_lazy steps
        eq = equal_sum_steps(r.steps, r.grid[j], r.grid[i]) if run == "lazy" and j is not None else None
        row, curve = control_run(factory, seed, float(pdg.etas[i]), train, evals, eq_steps=eq,
                                 loss_frac=r.conv_loss_frac, max_steps=r.conv_max_steps, every=r.test_every,
                                 device=device)
        rows.append({"seed": seed, "run": run, "member": i, "eta_lam0": float(r.grid[i]),
                     "eta": float(pdg.etas[i]), **row})
        curve.insert(0, "run", run)
        curve.insert(0, "seed", seed)
        curves.append(curve)
    tabs["real_controls"] = pd.DataFrame(rows, columns=CONTROL_COLUMNS).astype(
        {"seed": np.int64, "member": np.int64, "conv_step": np.int64, "eq_steps": np.int64, "steps_run": np.int64,
         "diverged": bool})
    tabs["real_control_curves"] = (pd.concat(curves, ignore_index=True) if curves
                                   else pd.DataFrame(columns=CURVE_COLUMNS)).astype({"seed": np.int64,
                                                                                     "step": np.int64})
    return tabs


CONTROL_COLUMNS = ["seed", "run", "member", "eta_lam0", "eta", "L0", "conv_step", "conv_loss", "eq_steps",
                   "eq_loss", "diverged", "conv_val_acc", "conv_test_acc", "eq_val_acc", "eq_test_acc",
                   "steps_run"]
CURVE_COLUMNS = ["seed", "run", "step", "loss", "val_acc", "test_acc"]


def _eos_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """Edge of stability: one seed's sharpness traces at η = 2/(s·λ0) for each s."""
    e = s.eos
    train = cifar10_vectors(e.n_per_class, 1, seed, pool=e.pool).train.to(device)  # λ0 uses it directly
    x, y = train.x, train.y
    factory = torch_mlp(x.shape[1], e.width, e.depth, train.num_classes, "tanh")
    with seeded(seed):
        lam0 = float(top_hessian_eigs(factory().to(device), x, y, "squared", k=1).values[0])
    lrs = [2 / (k * lam0) for k in e.stability]
    trace = track_sharpness(factory, x, y, "squared", lrs=lrs, steps=e.steps, every=e.every, seed=seed,
                            device=device)
    return {f"eos_{k}": v for k, v in sharpness_tables(trace, seed, lam0, e.stability).items()}


_JOBS = {"core": _core_job, "real": _real_job, "eos": _eos_job}

CIFAR_CLASSES = 10


def _cifar_input(pool: int) -> tuple[int]:
    """One CIFAR-10 image average-pooled by ``pool`` and flattened, as :func:`cifar10_vectors` gives it."""
    return (3 * (32 // pool) ** 2,)


def _uv_cs(s: Settings) -> np.ndarray:
    """The uv sweep's η·λ0: the lazy and catapult rates and the boundary grid."""
    u = s.uv
    return np.unique(np.concatenate([[u.lazy_c, u.catapult_c], u.boundary.values()]))


def lazy_control_cap(r: RealSettings) -> int:
    """The most steps the lazy control can run: the longest equal-Σηt run over every (lazy, catapult) pair of
    candidates the validation split may choose, or ``conv_max_steps`` when longer."""
    ph = grid_phases(r.grid, r.catapult_max)
    eq = [equal_sum_steps(r.steps, cc, cl) for cl, pl in zip(r.grid, ph) if pl == "lazy"
          for cc, pc in zip(r.grid, ph) if pc == "catapult"]
    return max([r.conv_max_steps, *eq])


def job_stages(cfg: Config, job: Job) -> list[Stage]:
    """What a job trains (:mod:`lrlab.plan`), from the config alone (no data loaded): each phase_diagram,
    sweep or sharpness-tracking population and the two (f) controls, whose steps are caps (convergence)."""
    s, seed = cfg.claim, int(job.params["seed"])
    if job.part == "core":
        u, rl = s.uv, s.relu
        return ([Stage("uv", FromModule(_uv_factory(u.d, u.width, seed)), (u.d,), u.m, u.steps, len(_uv_cs(s)))]
                + [Stage(f"uv-width{w}", FromModule(_uv_factory(u.d, w, seed)), (u.d,), u.m, u.steps, 1)
                   for w in u.widths]
                + [Stage(f"relu-depth{dep}", FromModule(_mlp_factory(rl.d, rl.width, dep)), (rl.d,), rl.m, rl.steps,
                         len(rl.grid.values())) for dep in rl.depths])
    if job.part == "real":
        r = s.real
        shape, n = _cifar_input(r.pool), CIFAR_CLASSES * r.n_per_class
        model = FromModule(lambda: NTKMLP(shape[0], r.width, depth=r.depth, activation="relu", out_dim=CIFAR_CLASSES))
        return [Stage("sweep", model, shape, n, r.steps, len(r.grid)),
                Stage("lazy-control", model, shape, n, lazy_control_cap(r), 1, capped=True),
                Stage("catapult-control", model, shape, n, r.conv_max_steps, 1, capped=True)]
    e = s.eos
    shape = _cifar_input(e.pool)
    return [Stage("eos", FromModule(torch_mlp(shape[0], e.width, e.depth, CIFAR_CLASSES, "tanh")), shape,
                  CIFAR_CLASSES * e.n_per_class, e.steps, len(e.stability))]


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    """One (part, seed) job on ``ctx.device``: its tidy tables."""
    return _JOBS[job.part](cfg.claim, int(job.params["seed"]), ctx.device)
