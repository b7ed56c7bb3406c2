"""The one dataset shape every experiment uses: inputs, labels and a group tag per example."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor


@dataclass(frozen=True)
class Dataset:
    """Tensors ``x`` [n, ...], ``y`` [n] and ``group`` [n] (index into ``group_names``).

    ``task="binary"`` means ``y`` holds ±1 floats and the model emits one logit;
    ``task="multiclass"`` means ``y`` holds class indices and the model emits ``num_classes``;
    ``task="regression"`` means ``y`` holds real targets (squared loss; accuracy is NaN).
    """

    x: Tensor
    y: Tensor
    group: Tensor
    group_names: tuple[str, ...]
    task: Literal["binary", "multiclass", "regression"] = "binary"
    num_classes: int = 2

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.y.shape != (n,) or self.group.shape != (n,):
            raise ValueError(
                f"x, y and group must share the first dimension: x {tuple(self.x.shape)}, "
                f"y {tuple(self.y.shape)}, group {tuple(self.group.shape)}"
            )
        if n and (int(self.group.min()) < 0 or int(self.group.max()) >= len(self.group_names)):
            raise ValueError(f"group tags must lie in [0, {len(self.group_names)})")
        if self.task == "binary" and n and not bool(((self.y == 1) | (self.y == -1)).all()):
            raise ValueError("binary task needs labels in {-1, +1}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def group_mask(self, name: str) -> Tensor:
        """Boolean mask of the examples in group ``name``."""
        if name not in self.group_names:
            raise KeyError(f"no group {name!r}; groups are {list(self.group_names)}")
        return self.group == self.group_names.index(name)

    def subset(self, index: Tensor) -> Dataset:
        return Dataset(self.x[index], self.y[index], self.group[index], self.group_names,
                       self.task, self.num_classes)

    def to(self, device: str | torch.device) -> Dataset:
        return Dataset(self.x.to(device), self.y.to(device), self.group.to(device),
                       self.group_names, self.task, self.num_classes)


@dataclass(frozen=True)
class Split:
    """A training set and a test set drawn from the same generator."""

    train: Dataset
    test: Dataset
