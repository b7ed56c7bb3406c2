"""Probe: loss and accuracy of every member, overall and by group, on a whole dataset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..data.dataset import Dataset
from ..train import losses


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
    def stack(cls, datasets: Sequence[Dataset], device: str | torch.device = "cpu") -> "StackedData":
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


def metric_names(split: str, group_names: Sequence[str]) -> list[str]:
    """Names :func:`group_metrics` returns, in order: overall then per group."""
    names = [f"{split}.loss", f"{split}.acc"]
    for g in group_names:
        names += [f"{split}.{g}.loss", f"{split}.{g}.acc"]
    return names


@torch.no_grad()
def group_metrics(model, params: dict[str, Tensor], data: StackedData, data_index: Tensor,
                  loss: str, split: str, max_elements: int = 1 << 24) -> dict[str, Tensor]:
    """Mean loss and accuracy of each member on its dataset, overall and per group.

    ``data_index[k]`` says which stacked dataset member k is scored on. Members are processed
    in chunks so that no input tensor exceeds ``max_elements`` numbers.
    Returns metric name -> float64 tensor [K]; groups with no examples give NaN.
    """
    K = data_index.shape[0]
    per_member = max(1, data.x[0].numel())
    chunk = max(1, min(K, max_elements // per_member))
    loss_sum, acc_sum = [], []
    for lo in range(0, K, chunk):
        sl = slice(lo, min(K, lo + chunk))
        idx = data_index[sl]
        x = data.x[idx]
        y = data.y[idx]
        out = model.forward({k: v[sl] for k, v in params.items()}, x)
        le = losses.per_example(loss, out, y, data.num_classes).to(torch.float64)
        ce = losses.correct(out, y).to(torch.float64)
        oh = data.onehot[idx]  # [k, n, G]
        loss_sum.append(torch.cat([le.sum(1, keepdim=True), torch.bmm(le.unsqueeze(1), oh).squeeze(1)], 1))
        acc_sum.append(torch.cat([ce.sum(1, keepdim=True), torch.bmm(ce.unsqueeze(1), oh).squeeze(1)], 1))
    # example counts per member (group sizes may differ between stacked datasets)
    own = torch.cat([torch.full((K, 1), float(data.n), dtype=torch.float64, device=data.onehot.device),
                     data.onehot[data_index].sum(1)], 1)
    L = torch.cat(loss_sum) / own
    A = torch.cat(acc_sum) / own
    out: dict[str, Tensor] = {}
    names = [""] + list(data.group_names)
    for j, g in enumerate(names):
        prefix = f"{split}." if not g else f"{split}.{g}."
        out[prefix + "loss"] = L[:, j].cpu()
        out[prefix + "acc"] = A[:, j].cpu()
    return out
