"""huang2020 jobs: per seed, the degenerate sweeps, the Gaussian sweeps and the CIFAR-10 runs, each
returned as tidy tables (docs/claims/huang2020.md lists them)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ...data import Dataset, resolve_source
from ...data.separability import cifar_two_class, degenerate_nonseparable, degenerate_separable, gaussian_data
from ...models import FromModule
from ...models.linear import DeepLinear
from ...phase import initial_curvature, phase_diagram
from ...plan import Stage
from ...seeding import seeded
from ...train import Constant, StepDecay
from ...train.schedules import lr_table
from ..protocol import Job, JobContext, Resources, config_inputs, seed_job
from .config import Config, DegenerateSettings, NetSettings, RealSettings, Settings
from .linear_gd import LinearGD, LinearGDModel

PARTS = ("real", "degenerate", "gaussian")
TRACE_EVERY = 2  # steps between λ_t probes in the degenerate sweeps (their figure)
DEPTH_PART = "depth"  # the onset sweep over depth: one job per (depth, seed), keyed depth<L>-seed<s>
MEMORY_GB = {"real": 3.0, "degenerate": 1.0, "gaussian": 0.5, DEPTH_PART: 0.5}  # rough, at paper scale (real:
# 2.06 GB peak RSS measured drawing the full-resolution split, 4500 + 500 per class; was 2.0 for pooled images)


def depth_job(depth: int, seed: int) -> Job:
    """The catapult-onset sweep at depth ``depth`` for ``seed``."""
    return Job(f"{DEPTH_PART}{depth}-seed{seed}", DEPTH_PART, {"seed": seed, "depth": depth},
               Resources(cpus=1, memory_gb=MEMORY_GB[DEPTH_PART]))


def jobs(cfg: Config) -> list[Job]:
    """One job per (part, seed): the CIFAR-10 runs, the degenerate sweeps, the Gaussian sweeps; then one
    per (depth, seed) for the onset sweep over depth (added after the others, so their keys stay)."""
    seeds = cfg.execution.seeds
    return ([seed_job(part, sd, cpus=1, memory_gb=MEMORY_GB[part]) for part in PARTS for sd in seeds]
            + [depth_job(L, sd) for L in cfg.claim.degenerate.depths for sd in seeds])


def job_inputs(cfg: Config, job: Job) -> dict:
    """What a job reads: the claim's tolerances and its own part's section (the depth sweep reads
    the degenerate one); the CIFAR-10 job also whether it runs the annealed convergence control."""
    mine = "degenerate" if job.part == DEPTH_PART else job.part
    extra = {}
    if job.part == "real":
        annealed = cfg.execution.seeds_for(cfg.claim.real.anneal_control_seeds)
        extra["anneal_control"] = int(job.params["seed"]) in annealed
    inputs = config_inputs(cfg, drop_claim=[p for p in PARTS if p != mine], **extra)
    inputs["claim"].get("real", {}).pop("anneal_control_seeds", None)  # read only through the flag above
    return inputs


def preflight(cfg: Config) -> None:
    """Checks that need no training: a readable CIFAR-10 source (classes and pooling are checked
    by the config schema)."""
    resolve_source()


# ------------------------------------------------------------------------------------ measurement
def catapult_rise(loss: np.ndarray) -> float:
    """Largest relative rise of a loss curve above its running minimum (inf if it blew up)."""
    L = np.asarray(loss, dtype=float)
    if not np.isfinite(L).all():
        return math.inf
    floor = np.maximum(np.minimum.accumulate(L), np.finfo(float).tiny)  # a separable loss may reach 0
    return float(np.max(L / floor) - 1)


def entropy(p: float) -> float:
    """Binary entropy (nats): the lowest logistic loss on degenerate data with a fraction p of +1."""
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def _factory(d: int, net: NetSettings) -> Callable[[], torch.nn.Module]:
    return lambda: DeepLinear(d, net.width, net.depth)


def _long(curves: pd.DataFrame, keys: dict, column: str = "eta") -> pd.DataFrame:
    """A steps × runs frame as long rows (keys…, column, step, value), run by run, NaN kept."""
    steps = curves.index.to_numpy(dtype=np.int64)
    runs = np.asarray(curves.columns)
    vals = curves.to_numpy().T.ravel()  # run-major
    out = pd.DataFrame({k: [v] * len(vals) for k, v in keys.items()})
    out[column] = np.repeat(runs, len(steps))
    out["step"] = np.tile(steps, len(runs))
    out["value"] = vals
    return out


class _Sweeps:
    """Collects one job's sweeps as rows of the ``sweeps``, ``runs``, ``loss`` and ``lam`` tables."""

    def __init__(self, seed: int):
        self.seed = seed
        self.sweeps: list[dict] = []
        self.runs: list[pd.DataFrame] = []
        self.loss: list[pd.DataFrame] = []
        self.lam: list[pd.DataFrame] = []

    def add(self, name: str, r: dict, p: float = math.nan, p_real: float = math.nan, theory: float = math.nan,
            best_loss: float = math.nan) -> None:
        keys = {"seed": self.seed, "sweep": name}
        self.sweeps.append({**keys, "lam0": float(r["lam0"]), "p": float(p), "p_real": float(p_real),
                            "theory": float(theory), "best_loss": float(best_loss)})
        tab = r["table"]
        self.runs.append(pd.concat([pd.DataFrame(keys, index=tab.index), tab], axis=1))
        self.loss.append(_long(r["loss"], keys))
        if r["lam"] is not None:
            self.lam.append(_long(r["lam"], keys))

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"sweeps": pd.DataFrame(self.sweeps), "runs": pd.concat(self.runs, ignore_index=True),
               "loss": pd.concat(self.loss, ignore_index=True)}
        if self.lam:
            out["lam"] = pd.concat(self.lam, ignore_index=True)
        return out


def _sweep(net: NetSettings, x, y, cs, seed: int, device: str, curvature_every: int | None = None) -> dict:
    """One vectorised full-batch GD sweep of η = c/λ0 (λ0 = NTK), with final NTK and Hessian λ
    (and λ_t every ``curvature_every`` steps); phase_diagram moves x, y to ``device``."""
    pdg = phase_diagram(_factory(x.shape[1], net), x, y, "logistic", scaled_etas=cs, steps=net.steps,
                        seed=seed, curvature="ntk", final_hessian=True, curvature_every=curvature_every,
                        device=device)
    tab = pdg.table()
    tab["rise"] = [catapult_rise(pdg.loss[e].to_numpy()) for e in pdg.etas]
    tab["max_step_rise"] = [float(np.max(np.diff(pdg.loss[e].to_numpy())) / pdg.loss[e].iloc[0])
                            if np.isfinite(pdg.loss[e].to_numpy()).all() else math.inf for e in pdg.etas]
    return {"table": tab, "loss": pdg.loss, "lam0": pdg.lam0, "lam": pdg.lam}


def _degenerate_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(a) separable, (b)/(c) one sweep per p, and (e) the divergence boundary per width."""
    g = s.degenerate
    out = _Sweeps(seed)
    sep = degenerate_separable(g.n, g.d, seed).train
    out.add("separable", _sweep(g, sep.x.to(device), sep.y.to(device), g.separable_grid, seed, device,
                                curvature_every=TRACE_EVERY))
    for p in g.ps:
        data = degenerate_nonseparable(g.n, g.d, p, seed).train
        p_real = float((data.y > 0).double().mean())
        theory = 2 / (p_real * (1 - p_real))
        r = _sweep(g, data.x.to(device), data.y.to(device), _p_grid(g, theory), seed, device,
                   curvature_every=TRACE_EVERY)
        out.add(f"p={p:g}", r, p=p, p_real=p_real, theory=theory, best_loss=entropy(p_real))
    p = g.ps[0]
    widths = []
    for w in g.widths:
        data = degenerate_nonseparable(g.n, g.d, p, seed).train
        p_real = float((data.y > 0).double().mean())
        cs = np.asarray(g.divergence_grid) * 2 / (p_real * (1 - p_real))
        r = _sweep(g.model_copy(update={"width": w}), data.x.to(device), data.y.to(device), cs, seed, device)
        conv = r["table"].final_loss - entropy(p_real) < s.conv_tol
        bad = r["table"].eta_lam0[~conv.to_numpy()]
        widths.append({"seed": seed, "width": w, "c_div": float(bad.min()) if len(bad) else math.nan,
                       "c_theory": 2 / (p_real * (1 - p_real))})
    return {**out.tables(), "widths": pd.DataFrame(widths)}


def _p_grid(g: DegenerateSettings, theory: float) -> np.ndarray:
    """The (b)/(c) grid of η·λ0 of one p: the boundary grid joined with ``flat_grid``, × theory."""
    lo, hi = g.boundary_span
    return np.unique(np.round(np.concatenate([np.linspace(lo, hi, g.boundary_points),
                                              np.asarray(g.flat_grid)]) * theory, 9))


def boundary_grid(s: Settings, theory: float) -> np.ndarray:
    """The (b) boundary grid of η·λ0: boundary_points values from boundary_span[0] to [1] × theory."""
    lo, hi = s.degenerate.boundary_span
    return np.unique(np.round(np.linspace(lo, hi, s.degenerate.boundary_points) * theory, 9))


def _depth_job(s: Settings, seed: int, depth: int, device: str) -> dict[str, pd.DataFrame]:
    """(b, depth): the degenerate non-separable sweep (p = ps[0]) over the boundary grid at depth ``depth``;
    c* is the smallest η·λ0 whose loss rises by more than rise_tol above its running minimum and still ends
    within conv_tol of the binary entropy (NaN when no run does)."""
    g = s.degenerate
    p = g.ps[0]
    data = degenerate_nonseparable(g.n, g.d, p, seed).train
    p_real = float((data.y > 0).double().mean())
    theory = 2 / (p_real * (1 - p_real))
    net = g.model_copy(update={"depth": depth})
    pdg = phase_diagram(_factory(data.x.shape[1], net), data.x.to(device), data.y.to(device), "logistic",
                        scaled_etas=boundary_grid(s, theory), steps=g.steps, seed=seed, curvature="ntk",
                        device=device)
    tab = pdg.table()
    rise = np.array([catapult_rise(pdg.loss[e].to_numpy()) for e in pdg.etas])
    fin = np.isfinite(tab.final_loss.to_numpy())
    cat = (rise > s.rise_tol) & fin
    conv = (tab.final_loss - entropy(p_real) < s.conv_tol).to_numpy()
    c = tab.eta_lam0.to_numpy()
    runs = pd.DataFrame({"seed": seed, "depth": depth, "eta": tab.eta.to_numpy(), "eta_lam0": c, "rise": rise,
                         "final_loss": tab.final_loss.to_numpy(), "lam_final": tab.lam_final.to_numpy(),
                         "converged": conv})
    row = {"seed": seed, "depth": depth, "p": float(p), "p_real": p_real, "lam0": float(pdg.lam0),
           "c_theory": theory, "c_star": float(c[cat & conv].min()) if (cat & conv).any() else math.nan,
           "c_rise": float(c[cat].min()) if cat.any() else math.nan,
           "grid_step": float(np.diff(c).min()) if len(c) > 1 else math.nan}
    return {"depths": pd.DataFrame([row]), "depth_runs": runs}


def _gaussian_job(s: Settings, seed: int, device: str) -> dict[str, pd.DataFrame]:
    """(a) separable and (c) non-separable Gaussian data."""
    g = s.gaussian
    out = _Sweeps(seed)
    for name, split in (("gaussian-separable", gaussian_data(g.n, g.d, seed, margin=g.margin)),
                        ("gaussian-nonseparable", gaussian_data(g.n, g.d, seed, flip=g.flip))):
        out.add(name, _sweep(g, split.train.x.to(device), split.train.y.to(device), g.grid, seed, device))
    return out.tables()


def real_split(r: RealSettings, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """(d) training, validation and test sets. Training: ``n_per_class`` images per class of the seed's
    draw (the images earlier versions trained on); validation: the next ``val_per_class`` of the same
    draw (a larger draw nests the smaller one), so disjoint from training and from the fixed test set."""
    small = cifar_two_class(tuple(r.classes), r.n_per_class, r.test_per_class, seed, pool=r.pool)
    big = cifar_two_class(tuple(r.classes), r.n_per_class + r.val_per_class, r.test_per_class, seed, pool=r.pool)
    seen = {row.numpy().tobytes() for row in small.train.x}
    fresh = torch.tensor([row.numpy().tobytes() not in seen for row in big.train.x])
    val = big.train.subset(torch.nonzero(fresh).squeeze(1))
    if len(val) != 2 * r.val_per_class:
        raise RuntimeError(f"{len(val)} validation images, expected {2 * r.val_per_class} (duplicate images?)")
    return small.train, val, small.test


def best_linear_loss(x: torch.Tensor, y: torch.Tensor, iters: int = 100) -> float:
    """L*: the lowest mean logistic loss of any linear map β (no bias) on (x, y), by damped Newton in
    float64 [derived: a deep linear network computes a linear map, so no run goes below it; on separable
    data the infimum 0 is only approached]."""
    x, y = x.double().flatten(1), y.double()
    beta = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    eye = torch.eye(x.shape[1], dtype=torch.float64, device=x.device)
    loss = float(F.softplus(-y * (x @ beta)).mean())
    for _ in range(iters):
        m = y * (x @ beta)
        sg = torch.sigmoid(-m)
        grad = -(x * (y * sg)[:, None]).mean(0)
        if float(grad.norm()) < 1e-12:
            break
        hess = (x.T * (sg * (1 - sg))) @ x / x.shape[0] + 1e-10 * eye
        step, a = torch.linalg.solve(hess, grad), 1.0
        while a > 1e-10:  # backtracking: Newton's step from far away may overshoot
            new = float(F.softplus(-y * (x @ (beta - a * step))).mean())
            if new <= loss - 1e-4 * a * float(grad @ step):
                break
            a /= 2
        if a <= 1e-10:
            break
        beta, loss = beta - a * step, new
    return loss


def choose_best(tab: pd.DataFrame, rise_tol: float) -> pd.DataFrame:
    """(d) the phase of each constant-rate run, the balanced candidates and the validation choice.

    The phase is measured: catapult when the loss rose above its running minimum by more than ``rise_tol``
    and the run neither diverged nor ended non-finite, lazy when it did not rise and did not diverge
    (else divergent). With k = min(#lazy, #catapult), the candidates are the k lazy runs with the largest
    c and the k catapult runs with the smallest c — the k grid points on each side of the seed's measured
    onset, the same number per phase. In each phase the candidate with the highest validation accuracy is
    chosen (ties: the smaller c). ``tab`` needs c, rise, final_loss, diverged and val_acc; returns a copy
    with columns phase, candidate and chosen."""
    t = tab.copy()
    fin = np.isfinite(t.final_loss.to_numpy(dtype=float)) & ~t.diverged.to_numpy(dtype=bool)
    rose = t.rise.to_numpy(dtype=float) > rise_tol
    t["phase"] = np.where(~fin, "divergent", np.where(rose, "catapult", "lazy"))
    t["candidate"] = False
    t["chosen"] = False
    lazy, cat = t[t.phase == "lazy"], t[t.phase == "catapult"]
    k = min(len(lazy), len(cat))
    if k == 0:
        return t
    for idx in (lazy.sort_values("c").index[-k:], cat.sort_values("c").index[:k]):
        t.loc[idx, "candidate"] = True
        cand = t.loc[idx].sort_values("c")
        ok = cand[np.isfinite(cand.val_acc.to_numpy(dtype=float))]
        if len(ok):
            t.loc[ok.val_acc.idxmax(), "chosen"] = True
    return t


def _sum_c(r: RealSettings) -> float:
    """Σ_t c_t of the annealed run over ``steps`` (λ0·Σηt)."""
    return r.anneal_from * r.anneal_at + r.anneal_to * (r.steps - r.anneal_at)


def _real_job(s: Settings, seed: int, device: str, anneal_control: bool = True) -> dict[str, pd.DataFrame]:
    """(d): every constant rate of the grid and the large-then-annealed run for ``steps``; the best rate of
    each phase chosen on the validation split (:func:`choose_best`); then, continuing the chosen runs from
    ``steps``, the controls: the chosen lazy rate until its Σηt equals the chosen catapult run's and the
    annealed run's, and the chosen lazy, chosen catapult and (with ``anneal_control``) annealed runs (the last
    at ``anneal_to``) until their training loss is within ``conv_gap`` of L* — each at most
    ``control_max_steps`` steps in all.
    Full-batch GD in closed form (:class:`LinearGD`, float64)."""
    r = s.real
    train, val, test = (d.to(device) for d in real_split(r, seed))
    x, y = train.x.double(), train.y.double()
    factory = _factory(train.x.shape[1], r)
    with seeded(seed):
        lam0, _ = initial_curvature(factory().to(device), train.x, train.y, "logistic", "ntk")
    best = best_linear_loss(x, y)
    names = [f"c={c:g}" for c in r.grid] + ["anneal"]
    cs = [float(c) for c in r.grid] + [float(r.anneal_from)]
    lrs = lr_table([Constant(c / lam0) for c in r.grid]
                   + [StepDecay(r.anneal_from / lam0, (r.anneal_at,), r.anneal_to / r.anneal_from)], r.steps)
    lrs = lrs.to(device=device, dtype=torch.float64)
    gd = LinearGD.init(train.x.shape[1], r.width, r.depth, [seed] * len(names), device=device)
    curve = [gd.gd_step(x, y, lrs[t]) for t in range(r.steps)] + [gd.loss(x, y)]
    loss = pd.DataFrame(torch.stack(curve).cpu().numpy(), columns=names)
    sets = {"train": train, "val": val, "test": test}
    acc = {k: gd.accuracy(d.x.double(), d.y.double()).cpu().numpy() for k, d in sets.items()}
    tab = pd.DataFrame({"seed": seed, "name": names, "c": cs,
                        "rise": [catapult_rise(loss[n].to_numpy()) for n in names],
                        "final_loss": loss.iloc[-1].to_numpy(), "train_acc": acc["train"], "val_acc": acc["val"],
                        "test_acc": acc["test"], "diverged": gd.diverged_step.numpy() >= 0, "lam0": float(lam0),
                        "sum_c": [c * r.steps for c in r.grid] + [_sum_c(r)], "best_loss": best})
    const = choose_best(tab.iloc[:-1], s.rise_tol)
    tab = pd.concat([const, tab.iloc[-1:].assign(phase="anneal", candidate=False, chosen=False)], ignore_index=True)
    out = {"real": tab, "real_loss": _long(loss, {"seed": seed}, column="name")}
    chosen = {ph: const[const.chosen & (const.phase == ph)] for ph in ("lazy", "catapult")}
    if any(len(v) != 1 for v in chosen.values()):  # a phase without runs: no controls (failed seeds)
        return out
    rows, curves = _controls(r, gd, sets, best, lam0, {ph: int(v.index[0]) for ph, v in chosen.items()},
                             len(names) - 1 if anneal_control else None, cs)
    return {**out, "real_controls": pd.DataFrame(rows).assign(seed=seed).pipe(_seed_first),
            "real_control_loss": pd.DataFrame(curves).assign(seed=seed).pipe(_seed_first)}


def _seed_first(t: pd.DataFrame) -> pd.DataFrame:
    return t[["seed"] + [c for c in t.columns if c != "seed"]]


def _controls(r: RealSettings, gd: LinearGD, sets: dict, best: float, lam0: float, chosen: dict[str, int],
              anneal: int | None, cs: list[float]) -> tuple[list[dict], list[dict]]:
    """The chosen lazy, chosen catapult and annealed runs continued from ``steps`` (rates c_lazy, c_catapult,
    anneal_to): rows of ``real_controls`` (the lazy run where its Σ_t c_t first reaches the catapult run's
    and the annealed run's; each run where its loss first comes within ``conv_gap`` of ``best``) and the
    continued loss curves at steps spaced ~5% apart (``real_control_loss``)."""
    runs = {"lazy": chosen["lazy"], "catapult": chosen["catapult"]}
    if anneal is not None:
        runs["anneal"] = anneal
    c_run = {"lazy": cs[chosen["lazy"]], "catapult": cs[chosen["catapult"]], "anneal": r.anneal_to}
    sum0 = {"lazy": c_run["lazy"] * r.steps, "catapult": c_run["catapult"] * r.steps, "anneal": _sum_c(r)}
    targets = {"lazy-same-time-catapult": sum0["catapult"], "lazy-same-time-anneal": sum0["anneal"]}
    keys = list(runs)
    g = gd.select([runs[k] for k in keys])
    lr = torch.tensor([c_run[k] / lam0 for k in keys], dtype=torch.float64, device=g.active.device)
    x, y = sets["train"].x.double(), sets["train"].y.double()
    rows: list[dict] = []
    curves: list[dict] = []
    gap_min = {k: math.inf for k in keys}
    pending_time = dict(targets)
    pending_conv = set(keys)
    next_log = float(r.steps)

    def row(control: str, i: int, k: str, step: int, loss: float, target: float, met: bool) -> dict:
        acc = {n: float(g.accuracy(d.x.double(), d.y.double())[i]) for n, d in sets.items()}
        return {"control": control, "run": k, "c": c_run[k], "step": step,
                "sum_c": sum0[k] + c_run[k] * (step - r.steps), "target_sum_c": target, "train_loss": loss,
                "gap": loss - best, "train_acc": acc["train"], "val_acc": acc["val"], "test_acc": acc["test"],
                "met": met}

    step, loss_now = r.steps, g.loss(x, y)
    while True:  # loss_now and the weights are at ``step``
        vals = loss_now.cpu().numpy()
        for i, k in enumerate(keys):
            if np.isfinite(vals[i]):
                gap_min[k] = min(gap_min[k], vals[i] - best)
        for name, target in list(pending_time.items()):  # the lazy run reached the target Σ c_t
            if sum0["lazy"] + c_run["lazy"] * (step - r.steps) >= target * (1 - 1e-12):
                rows.append(row(name, 0, "lazy", step, float(vals[0]), target, bool(np.isfinite(vals[0]))))
                del pending_time[name]
        for i, k in enumerate(keys):
            if k in pending_conv and vals[i] - best <= r.conv_gap:
                rows.append(row(f"{k}-converged", i, k, step, float(vals[i]), math.nan, True))
                pending_conv.discard(k)
        live = [k for k in keys if k in pending_conv or (k == "lazy" and pending_time)]
        if live and live != keys:  # a run that has nothing left to measure stops training
            idx = [keys.index(k) for k in live]
            g, lr, vals, keys = g.select(idx), lr[idx], vals[idx], live
        done = not live or step >= r.control_max_steps or not bool(g.active.any())
        if step >= next_log or done:
            curves += [{"run": k, "step": step, "sum_c": sum0[k] + c_run[k] * (step - r.steps),
                        "value": float(vals[i])} for i, k in enumerate(keys)]
            next_log = max(next_log * 1.05, step + 1.0)
        if done:
            break
        g.gd_step(x, y, lr)
        step += 1
        loss_now = g.loss(x, y)
    last = dict(zip(keys, vals))
    for name, target in pending_time.items():  # never reached within the cap: a failed seed
        rows.append({**row(name, keys.index("lazy"), "lazy", step, float(last["lazy"]), target, False),
                     "test_acc": math.nan})
    for k in sorted(pending_conv):
        rows.append({**row(f"{k}-converged", keys.index(k), k, step, float(last[k]), math.nan, False),
                     "test_acc": math.nan, "gap": gap_min[k]})
    return rows, curves


# ------------------------------------------------------------------------------------ the plan
def _theory(n: int, p: float) -> float:
    """2/(p(1−p)) at the realised fraction round(p·n)/n of +1 labels (as degenerate_nonseparable draws them)."""
    p_real = round(p * n) / n
    return 2 / (p_real * (1 - p_real))


def _sweep_stage(label: str, d: int, net: NetSettings, n: int, members: int) -> Stage:
    """One phase_diagram sweep: ``members`` rates of FromModule(DeepLinear), full-batch GD on n points."""
    return Stage(label, FromModule(_factory(d, net)), (d,), n, net.steps, members)


def job_stages(cfg: Config, job: Job) -> list[Stage]:
    """What a job trains (:mod:`lrlab.plan`), from the config alone (no data drawn or loaded): each vectorised
    sweep of rates, and for (d) the closed-form grid and its controls (capped at ``control_max_steps``; they run
    only when both phases have a chosen run)."""
    s = cfg.claim
    if job.part == DEPTH_PART:
        g, L = s.degenerate, int(job.params["depth"])
        cs = boundary_grid(s, _theory(g.n, g.ps[0]))
        return [_sweep_stage(f"depth{L}", g.d, g.model_copy(update={"depth": L}), g.n, len(cs))]
    if job.part == "degenerate":
        g = s.degenerate
        return ([_sweep_stage("separable", g.d, g, g.n, len(g.separable_grid))]
                + [_sweep_stage(f"p={p:g}", g.d, g, g.n, len(_p_grid(g, _theory(g.n, p)))) for p in g.ps]
                + [_sweep_stage(f"width{w}", g.d, g.model_copy(update={"width": w}), g.n, len(g.divergence_grid))
                   for w in g.widths])
    if job.part == "gaussian":
        g = s.gaussian
        return [_sweep_stage(name, g.d, g, g.n, len(g.grid)) for name in ("gaussian-separable",
                                                                        "gaussian-nonseparable")]
    r = s.real
    d, n = 3 * (32 // r.pool) ** 2, 2 * r.n_per_class
    model = LinearGDModel(d, r.width, r.depth, examples=n)
    anneal = int(job.params["seed"]) in cfg.execution.seeds_for(r.anneal_control_seeds)
    return [Stage("grid+anneal", model, (d,), n, r.steps, len(r.grid) + 1),
            Stage("controls", model, (d,), n, r.control_max_steps - r.steps, 3 if anneal else 2, capped=True)]


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    if job.part == DEPTH_PART:
        return _depth_job(cfg.claim, int(job.params["seed"]), int(job.params["depth"]), ctx.device)
    seed = int(job.params["seed"])
    if job.part == "real":
        anneal = seed in cfg.execution.seeds_for(cfg.claim.real.anneal_control_seeds)
        return _real_job(cfg.claim, seed, ctx.device, anneal_control=anneal)
    part = {"degenerate": _degenerate_job, "gaussian": _gaussian_job}[job.part]
    return part(cfg.claim, seed, ctx.device)
