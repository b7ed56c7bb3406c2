"""The accuracy/loss probe: per-member, per-group means on whole datasets."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.data import Dataset, StackedData
from lrlab.models import TwoLayerReLU
from lrlab.probes import group_metrics, metric_names


def test_metric_names_order():
    assert metric_names("test", ("g1", "g2")) == [
        "test.loss", "test.acc", "test.g1.loss", "test.g1.acc", "test.g2.loss", "test.g2.acc"]


def _data(seed, groups):
    g = torch.Generator().manual_seed(seed)
    n = len(groups)
    return Dataset(torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g).float() * 2 - 1,
                   torch.tensor(groups), ("x", "y", "empty"))


@pytest.mark.parametrize("max_elements", [1 << 24, 1])
def test_group_metrics_by_hand(max_elements):
    datasets = [_data(0, [0, 0, 1, 0, 1, 1, 1]), _data(1, [1, 1, 1, 0, 0, 0, 0])]
    data = StackedData.stack(datasets)
    model = TwoLayerReLU(4, 6)
    params = model.init([0, 1, 2])
    di = torch.tensor([0, 1, 1])
    m = group_metrics(model, params, data, di, "logistic", "train", max_elements=max_elements)
    assert list(m) == metric_names("train", ("x", "y", "empty"))
    for k in range(3):
        ds = datasets[int(di[k])]
        out = model.forward({n: v[k:k + 1] for n, v in params.items()}, ds.x[None])[0]
        loss = torch.nn.functional.softplus(-ds.y * out).double()
        acc = ((out * ds.y) > 0).double()
        assert m["train.loss"][k] == pytest.approx(float(loss.mean()), rel=1e-6)
        assert m["train.acc"][k] == pytest.approx(float(acc.mean()))
        for gi, name in enumerate(("x", "y")):
            mask = ds.group == gi
            assert m[f"train.{name}.acc"][k] == pytest.approx(float(acc[mask].mean()))
            assert m[f"train.{name}.loss"][k] == pytest.approx(float(loss[mask].mean()), rel=1e-6)
        assert math.isnan(m["train.empty.acc"][k]) and math.isnan(m["train.empty.loss"][k])
    assert all(v.dtype == torch.float64 for v in m.values())
