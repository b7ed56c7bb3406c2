"""Image datasets for the population trainer: uint8 images, normalised (and patched) per use.

Training images stay uint8 in memory (4× smaller than float); every minibatch is gathered,
normalised and — for the Li–Wei–Ma patch experiment — patched with fresh per-use draws when
it is drawn. Evaluation sets are fixed float :class:`Dataset` s (clean test, patched test,
patch-only), drawn once so every probe scores every member on the same images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import Cifar10PatchConfig
from .cifar import balanced_subset, load_cifar10
from .dataset import Dataset, Split
from .patch import GROUPS, ClassPatch

#: Per-channel mean and std (0–255 scale) of CIFAR-10 training images, as the paper's code uses.
CIFAR10_MEAN = (125.3, 123.0, 113.9)
CIFAR10_STD = (63.0, 62.1, 66.7)


def normalize(x: Tensor, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
              dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 images [..., C, H, W] → (x − mean) / std as ``dtype`` (mean/std on the 0–255 scale)."""
    c = x.shape[-3]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean/std have {len(mean)}/{len(std)} channels, images have {c}")
    m = torch.tensor(mean, dtype=dtype, device=x.device).view(c, 1, 1)
    inv = 1.0 / torch.tensor(std, dtype=dtype, device=x.device).view(c, 1, 1)
    return (x.to(dtype) - m).mul_(inv)


def _use_seed(seed: int, step: int) -> int:
    """A generator seed for the per-use draws of one member seed at one step."""
    return (seed * 0xD1B54A32D192ED03 + step * 0x8CB92BA72F3D8DD7 + 0x2545F491) % (2**63 - 1)


@dataclass(frozen=True)
class ImageStream:
    """Training images drawn by index: ``batch(idx, seeds, step)`` → (x, y, group) per member.

    ``x`` uint8 [n, C, H, W], ``y`` class indices [n]. With a ``patch``, the images where
    ``patchable`` is True get the class patch on every use, with draws that depend only on
    (member seed, step) — members sharing a seed see identical minibatches.
    """

    x: Tensor
    y: Tensor
    num_classes: int
    patch: ClassPatch | None = None
    patchable: Tensor | None = None
    mean: tuple[float, ...] = CIFAR10_MEAN
    std: tuple[float, ...] = CIFAR10_STD
    task: str = field(default="multiclass", init=False)

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(f"images must be uint8 [n, C, H, W], got {self.x.dtype} {tuple(self.x.shape)}")
        n = self.x.shape[0]
        if self.y.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(self.y.shape)}")
        if (self.patch is None) != (self.patchable is None):
            raise ValueError("give both patch and patchable, or neither")
        if self.patchable is not None and self.patchable.shape != (n,):
            raise ValueError(f"patchable must have shape ({n},), got {tuple(self.patchable.shape)}")

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def __len__(self) -> int:
        return self.n

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def group_names(self) -> tuple[str, ...]:
        return GROUPS if self.patch is not None else ("clean",)

    def to(self, device: str | torch.device) -> ImageStream:
        """The same stream with its tensors on ``device``."""
        return replace(self, x=self.x.to(device), y=self.y.to(device),
                       patchable=None if self.patchable is None else self.patchable.to(device))

    def batch(self, idx: Tensor, seeds: Sequence[int], step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Images idx [k, B] of member rows with ``seeds`` [k] at ``step``: x [k, B, C, H, W]
        float, y [k, B], group [k, B]."""
        k, B = idx.shape
        if len(seeds) != k:
            raise ValueError(f"need one seed per row of idx: {len(seeds)} seeds for {k} rows")
        x = normalize(self.x[idx], self.mean, self.std)
        y = self.y[idx]
        if self.patch is None:
            return x, y, torch.zeros_like(y)
        group = torch.empty_like(y)
        done: dict[int, int] = {}
        for r, s in enumerate(seeds):
            if s in done:  # same seed, same minibatch: reuse the patched rows
                x[r] = x[done[s]]
                group[r] = group[done[s]]
                continue
            uses = self.patch.draw_uses(B, torch.Generator().manual_seed(_use_seed(int(s), step)))
            group[r] = self.patch.apply_(x[r], y[r], self.patchable[idx[r]], uses)
            done[s] = r
        return x, y, group


@dataclass(frozen=True)
class ImageSplit:
    """A training stream and named, fixed evaluation sets (``test``, ``test_patched``, ``patch_only``)."""

    train: ImageStream
    evals: dict[str, Dataset]
    classes: tuple[str, ...]
    source: str


def _exact_mask(n: int, frac: float, g: torch.Generator) -> Tensor:
    """A boolean mask with exactly round(frac·n) True entries at random positions."""
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=g)[: round(frac * n)]] = True
    return mask


def patched_eval_sets(test_x: Tensor, test_y: Tensor, patch: ClassPatch, patchable_frac: float,
                      n_patch_only: int, num_classes: int, seed: int) -> dict[str, Dataset]:
    """The patched test set (a fixed share of test images patched once) and the patch-only set
    (zero images with random labels and their patch), drawn once from ``seed``."""
    g = torch.Generator().manual_seed(seed + 1)
    n = test_x.shape[0]
    x = normalize(test_x)
    mask = _exact_mask(n, patchable_frac, g)
    group = patch.apply_(x, test_y, mask, patch.draw_uses(n, g))
    patched = Dataset(x, test_y, group, GROUPS, "multiclass", num_classes)
    y0 = torch.randint(0, num_classes, (n_patch_only,), generator=g)
    x0 = torch.zeros(n_patch_only, *test_x.shape[1:])
    patch.apply_(x0, y0, torch.ones(n_patch_only, dtype=torch.bool), patch.draw_uses(n_patch_only, g))
    only = Dataset(x0, y0, torch.zeros_like(y0), ("patch-only",), "multiclass", num_classes)
    return {"test_patched": patched, "patch_only": only}


def cifar10_split(cfg: Cifar10PatchConfig, data_dir: str | os.PathLike | None = None,
                  progress: bool = False) -> ImageSplit:
    """CIFAR-10 as the config describes: (sub)set, optional patch, evaluation sets.

    The source is ``cfg.root``, else ``data_dir``, else ``$LRLAB_DATA``, else the development
    copy (see :func:`lrlab.data.cifar.resolve_source`). Everything is a pure function of the
    config: the subset, z, ζ, the patchable images and the evaluation draws are all seeded.
    """
    arrays = load_cifar10(cfg.root or data_dir, progress=progress)
    C = len(arrays.classes)
    tr = (balanced_subset(arrays.train_y, cfg.n_per_class, cfg.subset_seed)
          if cfg.n_per_class else np.arange(len(arrays.train_y)))
    te = (balanced_subset(arrays.test_y, cfg.n_test_per_class, cfg.subset_seed)
          if cfg.n_test_per_class else np.arange(len(arrays.test_y)))
    train_x = torch.from_numpy(np.ascontiguousarray(arrays.train_x[tr]))
    train_y = torch.from_numpy(np.asarray(arrays.train_y[tr], dtype=np.int64))
    test_x = torch.from_numpy(np.ascontiguousarray(arrays.test_x[te]))
    test_y = torch.from_numpy(np.asarray(arrays.test_y[te], dtype=np.int64))
    evals = {"test": Dataset(normalize(test_x), test_y, torch.zeros_like(test_y), ("clean",),
                             "multiclass", C)}
    if cfg.patch is None:
        stream = ImageStream(train_x, train_y, C)
    else:
        p = cfg.patch
        patch = ClassPatch.draw(p, C, tuple(train_x.shape[1:]))
        mask = _exact_mask(len(train_y), p.patchable_frac, torch.Generator().manual_seed(p.seed))
        stream = ImageStream(train_x, train_y, C, patch, mask)
        evals.update(patched_eval_sets(test_x, test_y, patch, p.patchable_frac,
                                       p.n_patch_only_eval, C, p.seed))
    return ImageSplit(stream, evals, arrays.classes, arrays.source)


def cifar10_vectors(n_per_class: int, test_per_class: int, seed: int, pool: int = 1,
                    data_dir: str | os.PathLike | None = None) -> Split:
    """Small full-batch CIFAR-10 task: class-balanced subsets (train drawn by ``seed``, test fixed),
    normalised, average-pooled by ``pool`` and flattened to vectors, labels as class indices.

    For full-batch GD experiments on a real dataset (catapult accuracy, edge of stability).
    """
    if not isinstance(pool, int) or pool < 1 or 32 % pool:
        raise ValueError(f"pool must be a positive divisor of 32, got {pool!r}")
    arr = load_cifar10(data_dir)

    def part(x, y, idx: np.ndarray) -> Dataset:
        xs = normalize(torch.from_numpy(np.ascontiguousarray(x[idx])))
        if pool > 1:
            xs = torch.nn.functional.avg_pool2d(xs, pool)
        ys = torch.from_numpy(np.asarray(y[idx])).long()
        return Dataset(xs.flatten(1), ys, torch.zeros(len(ys), dtype=torch.long), ("all",),
                       "multiclass", len(arr.classes))

    train = part(arr.train_x, arr.train_y, balanced_subset(arr.train_y, n_per_class, seed))
    test = part(arr.test_x, arr.test_y, balanced_subset(arr.test_y, test_per_class, 0))
    return Split(train, test)
