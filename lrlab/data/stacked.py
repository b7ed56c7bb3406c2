"""D datasets of equal size stacked along a leading axis, as the population trainer and its
probes consume them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .dataset import Dataset


@dataclass(frozen=True)
class StackedData:
    """D datasets of equal size stacked: x [D, n, ...], y [D, n], one-hot groups [D, n, G]."""

    x: Tensor
    y: Tensor
    onehot: Tensor
    group_names: tuple[str, ...]
    task: str
    num_classes: int

    @classmethod
    def stack(cls, datasets: Sequence[Dataset], device: str | torch.device = "cpu") -> StackedData:
        if not datasets:
            raise ValueError("need at least one dataset")
        first = datasets[0]
        for i, d in enumerate(datasets[1:], 1):
            if len(d) != len(first) or d.input_shape != first.input_shape:
                raise ValueError(
                    f"dataset {i} has {len(d)} examples of shape {d.input_shape}; dataset 0 has "
                    f"{len(first)} of shape {first.input_shape} (stacked datasets must match)"
                )
            if d.group_names != first.group_names or d.task != first.task:
                raise ValueError(f"dataset {i} has different groups or task than dataset 0")
        G = len(first.group_names)
        return cls(
            x=torch.stack([d.x for d in datasets]).to(device),
            y=torch.stack([d.y for d in datasets]).to(device),
            onehot=torch.stack([torch.nn.functional.one_hot(d.group, G) for d in datasets])
            .to(device=device, dtype=torch.float64),
            group_names=first.group_names,
            task=first.task,
            num_classes=first.num_classes,
        )

    @property
    def n(self) -> int:
        return self.x.shape[1]
