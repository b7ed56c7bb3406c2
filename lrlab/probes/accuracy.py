"""Probe: loss and accuracy of every member, overall and by group, on a whole dataset."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .. import losses
from ..data.stacked import StackedData


def metric_names(split: str, group_names: Sequence[str]) -> list[str]:
    """Names :func:`group_metrics` returns, in order: overall then per group."""
    names = [f"{split}.loss", f"{split}.acc"]
    for g in group_names:
        names += [f"{split}.{g}.loss", f"{split}.{g}.acc"]
    return names


@torch.no_grad()
def group_metrics(model, params: dict[str, Tensor], data: StackedData, data_index: Tensor,
                  loss: str, split: str, max_elements: int = 1 << 22,
                  member_chunk: int | None = None) -> dict[str, Tensor]:
    """Mean loss and accuracy of each member on its dataset, overall and per group.

    ``data_index[k]`` says which stacked dataset member k is scored on. The forward runs in
    eval mode (BatchNorm running statistics, no noise), over chunks of at most ``member_chunk``
    members (default: as many as fit) and of examples, so that no input tensor — nor, for models
    that report their ``activation_elements`` per example, any hidden activation — exceeds
    ``max_elements`` numbers. Returns metric name -> float64 tensor [K]; groups with no
    examples give NaN.
    """
    K = data_index.shape[0]
    n = data.n
    per_example = max(1, data.x[0, 0].numel()) if n else 1
    acts = getattr(model, "activation_elements", None)
    if acts is not None and n:
        per_example = max(per_example, acts(tuple(data.x.shape[2:])))
    whole_sets = max(1, max_elements // max(1, per_example * n))  # members whose whole set fits
    mc = min(K, member_chunk or K, whole_sets)
    ec = max(1, min(n, max_elements // (per_example * mc)))
    shared = data.x.shape[0] == 1
    G = len(data.group_names)
    sums = torch.zeros(K, 2, G + 1, dtype=torch.float64, device=data.onehot.device)
    for lo in range(0, K, mc):
        sl = slice(lo, min(K, lo + mc))
        k = sl.stop - sl.start
        idx = data_index[sl]
        p = {name: v[sl] for name, v in params.items()}
        for e0 in range(0, n, ec):
            es = slice(e0, min(n, e0 + ec))
            if shared:  # one dataset for every member: a view, not k copies
                x = data.x[0:1, es].expand(k, es.stop - es.start, *data.x.shape[2:])
                y = data.y[0:1, es].expand(k, es.stop - es.start)
                oh = data.onehot[0:1, es].expand(k, es.stop - es.start, G)
            else:
                x, y, oh = data.x[idx, es], data.y[idx, es], data.onehot[idx, es]
            out = model.forward(p, x)
            le = losses.per_example(loss, out, y, data.num_classes).to(torch.float64)
            ce = losses.correct(out, y).to(torch.float64)
            both = torch.stack([le, ce], 1)  # [k, 2, b]
            sums[sl, :, 0] += both.sum(2)
            sums[sl, :, 1:] += torch.bmm(both, oh)
    # example counts per member (group sizes may differ between stacked datasets)
    own = torch.cat([torch.full((K, 1), float(n), dtype=torch.float64, device=data.onehot.device),
                     data.onehot[data_index].sum(1)], 1)
    L = sums[:, 0] / own
    A = sums[:, 1] / own
    if data.task == "regression":  # no notion of a correct prediction
        A = torch.full_like(A, float("nan"))
    out: dict[str, Tensor] = {}
    names = [""] + list(data.group_names)
    for j, g in enumerate(names):
        prefix = f"{split}." if not g else f"{split}.{g}."
        out[prefix + "loss"] = L[:, j].cpu()
        out[prefix + "acc"] = A[:, j].cpu()
    return out
