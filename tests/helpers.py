"""Small builders shared by the tests: tiny configs, a multiclass dataset, reference SGD."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from lrlab.config import Li2019MixtureConfig, RunConfig, TrainConfig
from lrlab.data import Dataset
from lrlab.train.population import _batch_seed

TINY_RUN = {
    "name": "tiny",
    "data": {"kind": "li2019_mixture", "d": 5, "n_train": 64, "n_test": 32, "margin": 0.1,
             "p_noise": 1.0, "q_zeta_norm": 0.2, "q_noise": 0.01},
    "model": {"kind": "two_layer_relu", "width": 8},
    "train": {"loss": "logistic", "steps": 20, "batch_size": 16, "momentum": 0.9,
              "eval_every": 5, "checkpoint_every": 5},
    "population": {
        "seeds": [0, 1],
        "schedules": {
            "large": {"kind": "step", "lr": 0.2, "milestones": [10], "factor": 0.1},
            "small": {"kind": "constant", "lr": 0.02},
        },
    },
}


def tiny_data_cfg(**kw) -> Li2019MixtureConfig:
    base = dict(d=5, n_train=64, n_test=32, margin=0.1, p_noise=1.0, q_zeta_norm=0.2,
                q_noise=0.01)
    base.update(kw)
    return Li2019MixtureConfig(**base)


def tiny_run_dict(**sections) -> dict:
    """TINY_RUN with whole keys or sections updated (``train={"steps": 30}`` merges)."""
    return merge_sections(copy.deepcopy(TINY_RUN), sections)


def merge_sections(raw: dict, sections: dict) -> dict:
    """Update ``raw`` in place: dict values merge into dict sections, others replace."""
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return raw


def tiny_run_cfg(**sections) -> RunConfig:
    return RunConfig.model_validate(tiny_run_dict(**sections))


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def multiclass_dataset(n: int = 48, d: int = 6, num_classes: int = 3, seed: int = 0) -> Dataset:
    """Gaussian blobs around random class means; labels are class indices (long)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, d, generator=g)
    y = torch.arange(n) % num_classes
    x = means[y] + 0.5 * torch.randn(n, d, generator=g)
    group = (torch.arange(n) % 2).long()
    return Dataset(x=x, y=y.long(), group=group, group_names=("even", "odd"), task="multiclass",
                   num_classes=num_classes)


def reference_loss(loss: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean minibatch loss written with torch's own functional losses."""
    if loss == "logistic":
        return F.soft_margin_loss(out, y)  # mean log(1 + exp(-y·out))
    if loss == "cross_entropy":
        return F.cross_entropy(out, y)
    if loss == "squared":
        if out.dim() == 1:
            return 0.5 * F.mse_loss(out, y)
        target = F.one_hot(y, out.shape[-1]).to(out.dtype)
        return 0.5 * F.mse_loss(out, target, reduction="sum") / out.shape[0]
    raise ValueError(loss)


def minibatch(seed: int, t: int, n: int, batch: int | None) -> torch.Tensor:
    """The examples the trainer uses at step t: a fresh permutation per epoch, drop-last."""
    if batch is None or batch == n:
        return torch.arange(n)
    nb = n // batch
    epoch, j = divmod(t, nb)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_batch_seed(seed, epoch)))
    return perm[j * batch:(j + 1) * batch]


def reference_sgd(model, members, trains: Sequence[Dataset], cfg: TrainConfig,
                  use_scheduler: bool = False) -> list[torch.nn.Module]:
    """Train each member alone with ``torch.optim.SGD`` (or ``Adam``/``AdamW``, as ``cfg.optimizer``
    says) on the trainer's minibatch order.

    ``use_scheduler`` drives step decay through ``MultiStepLR`` (every member must then be a
    warm-up-free StepDecay); otherwise the param-group lr is set from the schedule each step.
    """
    init = model.init([m.seed for m in members])
    modules = []
    for k, m in enumerate(members):
        mod = model.to_module(init, k)
        if "a" in model.frozen:
            mod[3].weight.requires_grad_(False)
        data = trains[m.data_index]
        params = [p for p in mod.parameters() if p.requires_grad]
        if cfg.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=float(m.schedule(0)), momentum=cfg.momentum,
                                  nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        else:
            adam = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
            opt = adam(params, lr=float(m.schedule(0)), betas=cfg.betas, eps=cfg.eps,
                       weight_decay=cfg.weight_decay)
        sched = (torch.optim.lr_scheduler.MultiStepLR(opt, list(m.schedule.milestones),
                                                      gamma=m.schedule.factor)
                 if use_scheduler else None)
        for t in range(cfg.steps):
            idx = minibatch(m.seed, t, len(data), cfg.batch_size)
            if sched is None:
                for group in opt.param_groups:
                    group["lr"] = float(m.schedule(t))
            opt.zero_grad()
            out = mod(data.x[idx])
            if out.shape[-1] == 1:
                out = out.squeeze(-1)
            reference_loss(cfg.loss, out, data.y[idx]).backward()
            opt.step()
            if sched is not None:
                sched.step()
        modules.append(mod)
    return modules


def module_params(mod: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A ``to_module`` Sequential's weights under TwoLayerReLU's parameter names."""
    out = {"W": mod[1].weight.detach(), "a": mod[3].weight.detach().T}
    if mod[1].bias is not None:
        out["b"] = mod[1].bias.detach()
    if mod[3].bias is not None:
        out["c"] = mod[3].bias.detach()
    return out


def assert_records_close(a: pd.DataFrame, b: pd.DataFrame, atol: float = 0.0) -> None:
    """Same (member, step, metric) rows; values equal up to ``atol`` with NaN in the same places."""
    keys = ["member", "step", "metric"]
    pd.testing.assert_frame_equal(a[keys].reset_index(drop=True), b[keys].reset_index(drop=True))
    va, vb = a["value"].to_numpy(), b["value"].to_numpy()
    nan_a, nan_b = pd.isna(va), pd.isna(vb)
    assert (nan_a == nan_b).all(), "NaN in different places"
    if atol == 0:
        assert (va[~nan_a] == vb[~nan_b]).all(), f"max diff {abs(va[~nan_a] - vb[~nan_b]).max()}"
    else:
        diff = abs(va[~nan_a] - vb[~nan_b])
        assert diff.max(initial=0.0) <= atol, f"max diff {diff.max()}"


def finite(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x)


def interrupt_at(step: int, exc: type[BaseException] = KeyboardInterrupt):
    """A trainer progress callback that raises ``exc`` when training reaches ``step``."""

    def progress(t, total):
        if t == step:
            raise exc

    return progress


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


def write_cifar_pickles(root: Path, n_train_per_class: int = 6, n_test_per_class: int = 3,
                        seed: int = 0) -> Path:
    """A tiny official-format ``cifar-10-batches-py`` folder of random 32×32 images (10 classes)."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n_train = 10 * n_train_per_class
    train_y = np.tile(np.arange(10), n_train_per_class)
    train_x = rng.integers(0, 256, (n_train, 3072), dtype=np.uint8)
    for i, part in enumerate(np.array_split(np.arange(n_train), 5), 1):
        with open(root / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": train_x[part], b"labels": [int(v) for v in train_y[part]]}, f)
    test_y = np.tile(np.arange(10), n_test_per_class)
    test_x = rng.integers(0, 256, (len(test_y), 3072), dtype=np.uint8)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": test_x, b"labels": [int(v) for v in test_y]}, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR_CLASSES]}, f)
    return root


def tiny_image_run_dict(root: Path, **sections) -> dict:
    """A small patched-CIFAR run on a ``write_cifar_pickles`` folder: SmallCNN width 4."""
    raw = {
        "name": "tiny-images",
        "data_seed": "fixed",
        "data": {"kind": "cifar10", "root": str(root), "patch": {"n_patch_only_eval": 20}},
        "model": {"kind": "small_cnn", "width": 4},
        "train": {"unit": "epoch", "loss": "cross_entropy", "steps": 2, "batch_size": 20,
                  "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "eval_every": 1,
                  "mode": "loop", "threads": 1},
        "population": {
            "seeds": [0, 1],
            "schedules": {"large": {"kind": "step", "lr": 0.1, "milestones": [1], "factor": 0.04},
                          "small": {"kind": "constant", "lr": 0.004},
                          "noise": {"kind": "constant", "lr": 0.004}},
            "activation_noise": {"noise": {"sigma": 0.4, "until": 1}},
        },
    }
    return merge_sections(raw, sections)


def model_key(model) -> tuple:
    """A population model's family and its parameter and buffer shapes (one member): what a plan
    stage and a recorded trainer call must agree on."""
    return type(model).__name__, tuple(sorted((k, tuple(v.shape)) for k, v in model.init([0]).items()))


def stage_key(st) -> tuple:
    """A plan stage as (members, batch, steps, input shape, model key)."""
    return st.members, st.batch, st.steps, tuple(st.input_shape), model_key(st.model)
