"""lu2023 jobs: the vectorised sweep over every c × seed, and the small rate at the large rate's Σ η_t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ...config import TrainConfig
from ...data import StackedData, feature_noise
from ...models import ReLU2CNN
from ...plan import Stage
from ...probes.accuracy import group_metrics
from ...probes.oscillation import benign_probes
from ...train import Constant, Member, train_population
from ..protocol import Job, JobContext
from .config import Config, Settings, lr_unit

CURVES = ("train.loss", "train.acc", "yf.strong", "yf.strong.first", "oscillating", "align.weak",
          "align.strong", "noise", "osc.weights", "test_weak.acc")


def jobs(cfg: Config) -> list[Job]:
    """The sweep, and the equal-Σηt control when configured (each one vectorised population)."""
    return [Job("sweep", "sweep")] + ([Job("control", "control")] if cfg.claim.control else [])


def preflight(cfg: Config) -> None:
    """Nothing to check beyond the config: the data are generated."""


def _train(s: Settings, seeds: list[int], cs: list[float], steps: int, eval_every: int, test_every: int,
           device: str) -> dict[str, pd.DataFrame]:
    """Every c × seed in one vectorised SGD run: the probed curves and the final accuracies."""
    data = [feature_noise(s.data, sd) for sd in seeds]
    members = [Member(f"c={c:g}", sd, Constant(c * lr_unit(s)), i) for c in cs for i, sd in enumerate(seeds)]
    model = ReLU2CNN(s.data.d, s.model.filters, s.model.init_std)
    index = [m.data_index for m in members]
    probes = benign_probes(model, data, index, s.delta, s.w_rel)
    weak = StackedData.stack([d.test_weak for d in data])
    di = torch.tensor(index)
    probes["test_weak.acc"] = lambda model_, params: group_metrics(model_, params, weak, di, "margin_squared",
                                                                   "t")["t.acc"]
    cfg = TrainConfig(loss="margin_squared", steps=steps, batch_size=s.batch_size, eval_every=eval_every,
                      device=device)
    res = train_population(model, members, [d.train for d in data], None, cfg, probes=probes,
                           probe_every={"test_weak.acc": test_every})
    like = StackedData.stack([d.test_like for d in data])

    def acc(sd: StackedData) -> np.ndarray:
        return group_metrics(model, res.params, sd, di, "margin_squared", "t")["t.acc"].cpu().numpy()

    who = pd.DataFrame({"member": range(len(members)), "c": [c for c in cs for _ in seeds],
                        "seed": [m.seed for m in members]})
    finals = who.assign(diverged=res.members.diverged.to_numpy(), weak_acc=acc(weak), like_acc=acc(like))
    finals.loc[finals.diverged, ["weak_acc", "like_acc"]] = np.nan
    rec = res.records[res.records.metric.isin(CURVES)]
    curves = rec.merge(who, on="member")[["member", "c", "seed", "step", "metric", "value"]]
    return {"finals": finals, "curves": curves.reset_index(drop=True)}


def control_steps(s: Settings) -> tuple[int, int]:
    """The control's steps (the small rate for the large rate's Σ η_t) and its probe cadence
    (an odd multiple of ``eval_every``: about as many probes, no aliasing)."""
    k = s.large / s.small
    return int(round(s.steps * k)), s.eval_every * max(1, int(k) | 1)


def job_stages(cfg: Config, job: Job) -> list[Stage]:
    """What a job trains (:mod:`lrlab.plan`): one SGD population of its rates × every seed, on
    points of 3 patches in R^d, without drawing the data."""
    s, seeds = cfg.claim, cfg.execution.seeds
    model = ReLU2CNN(s.data.d, s.model.filters, s.model.init_std)
    cs, steps = (list(s.grid), s.steps) if job.part == "sweep" else ([s.small], control_steps(s)[0])
    return [Stage(job.part, model, (3, s.data.d), s.batch_size, steps, len(cs) * len(seeds))]


def run_job(cfg: Config, job: Job, ctx: JobContext) -> dict[str, pd.DataFrame]:
    s, seeds = cfg.claim, cfg.execution.seeds
    if job.part == "sweep":
        return _train(s, seeds, list(s.grid), s.steps, s.eval_every, s.test_every, ctx.device)
    steps, every = control_steps(s)
    return _train(s, seeds, [s.small], steps, every, every * max(1, s.test_every // s.eval_every), ctx.device)
