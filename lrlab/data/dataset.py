"""The one dataset shape every experiment uses: inputs, labels and a group tag per example."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import DataLoader, SequentialSampler, TensorDataset
from torch.utils.data import Dataset as TorchDataset


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


def infer_task(y: Tensor) -> tuple[str, int]:
    """(task, number of classes) read off labels: ±1 floats are binary, other floats regression,
    integers class indices."""
    if y.is_floating_point():
        if y.numel() and bool(((y == 1) | (y == -1)).all()):
            return "binary", 2
        return "regression", 1
    return "multiclass", int(y.max()) + 1 if y.numel() else 0


def _stack_items(items, what: str) -> tuple[Tensor, Tensor]:
    """Stack (x, y) pairs or batches of pairs into two tensors."""
    xs, ys = [], []
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], Tensor)):
            raise ValueError(f"{what}: item {i} is a {type(item).__name__}, expected a pair (x, y) of tensors")
        xs.append(item[0])
        ys.append(torch.as_tensor(item[1]))
    if not xs:
        raise ValueError(f"{what} is empty")
    return xs, ys


def as_dataset(data: Any, task: str | None = None, what: str = "data") -> Dataset:
    """Your data as a :class:`Dataset`: a Dataset as it is, an ``(x, y)`` pair of tensors, a
    ``TensorDataset`` (its first two tensors), any map-style torch dataset of (x, y) items, or a
    ``DataLoader`` (read once, in its order). ``task`` ("binary", "multiclass", "regression")
    overrides what the labels suggest (:func:`infer_task`). Every example is in one group, "all"."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
    elif isinstance(data, DataLoader):
        if isinstance(data.dataset, TensorDataset) and isinstance(data.sampler, SequentialSampler):
            return as_dataset(data.dataset, task, what)
        xs, ys = _stack_items(data, what)
        x, y = torch.cat(xs), torch.cat([t.reshape(len(b)) for t, b in zip(ys, xs)])
    elif isinstance(data, TensorDataset):
        if len(data.tensors) < 2:
            raise ValueError(f"{what}: a TensorDataset needs inputs and labels, has {len(data.tensors)} tensor(s)")
        x, y = data.tensors[0], data.tensors[1]
    elif isinstance(data, TorchDataset) and hasattr(data, "__len__"):
        xs, ys = _stack_items((data[i] for i in range(len(data))), what)
        x, y = torch.stack(xs), torch.stack(ys).reshape(len(xs))
    else:
        raise ValueError(f"{what}: expected an lrlab Dataset, an (x, y) pair of tensors, a TensorDataset "
                         f"or a DataLoader, got {type(data).__name__}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    if y.dim() == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a [n, 1] target column
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{what}: y must be [n] with n = x.shape[0] = {x.shape[0]}, got {tuple(y.shape)}")
    inferred, classes = infer_task(y)
    if task is not None and task not in ("binary", "multiclass", "regression"):
        raise ValueError(f"task must be 'binary', 'multiclass' or 'regression', got {task!r}")
    if task is not None and task != inferred:
        if task == "regression":
            y, classes = y.float(), 1
        elif task == "binary":
            classes = 2  # Dataset checks the labels are ±1
        else:
            raise ValueError(f"{what}: multiclass labels must be integer class indices, got {y.dtype}")
    return Dataset(x, y, torch.zeros(len(y), dtype=torch.long, device=x.device), ("all",),
                   task or inferred, classes)


def xy_of(x: Any, y: Tensor | None, who: str) -> tuple[Tensor, Tensor]:
    """(x, y) from tensors, or from one argument holding both: an (x, y) pair, a TensorDataset,
    a DataLoader, a map-style dataset or an lrlab Dataset (see :func:`as_dataset`)."""
    if y is None:
        data = as_dataset(x, what=f"{who} data")
        return data.x, data.y
    if not (isinstance(x, Tensor) and isinstance(y, Tensor)):
        raise ValueError(f"{who}: x and y must be tensors, got {type(x).__name__} and {type(y).__name__} "
                         "(or pass one TensorDataset / DataLoader / (x, y) pair as x)")
    return x, y
