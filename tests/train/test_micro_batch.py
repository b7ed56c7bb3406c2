"""Micro-batches: a step's gradient summed over slices of its batch equals the whole batch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lrlab.config import TrainConfig
from lrlab.data import Dataset
from lrlab.models import FromModule, TwoLayerReLU
from lrlab.train import Constant, Member, train_population


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 3))


def _data(n: int = 30) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    return Dataset(x, y, torch.zeros(n, dtype=torch.long), ("all",), "multiclass", 3)


def _train(model, micro_batch: int | None, mode: str, batch_size: int | None = None, **kw):
    members = [Member("a", 0, Constant(0.3)), Member("b", 1, Constant(0.1))]
    cfg = TrainConfig(loss="cross_entropy", steps=12, batch_size=batch_size, eval_every=4, mode=mode,
                      micro_batch=micro_batch, momentum=0.9, **kw)
    return train_population(model, members, _data(), None, cfg)


@pytest.mark.parametrize("mode", ["vectorized", "loop"])
@pytest.mark.parametrize("batch_size", [None, 20])
def test_micro_batches_give_the_whole_batch_step(mode, batch_size):
    whole = _train(FromModule(_net), None, mode, batch_size)
    sliced = _train(FromModule(_net), 7, mode, batch_size)  # slices of 7, the last one short
    for k, v in whole.params.items():
        torch.testing.assert_close(sliced.params[k], v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sliced.curve("train.loss").to_numpy(), whole.curve("train.loss").to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_micro_batches_keep_the_two_layer_net_off_the_fused_step():
    model = TwoLayerReLU(5, 8, 1)
    members = [Member("a", 0, Constant(0.1))]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 5, generator=g)
    data = Dataset(x, x[:, 0], torch.zeros(30, dtype=torch.long), ("all",), "regression", 1)
    fused = train_population(model, members, data, None,
                             TrainConfig(loss="squared", steps=3, eval_every=3))
    sliced = train_population(model, members, data, None,
                              TrainConfig(loss="squared", steps=3, eval_every=3, micro_batch=10))
    assert fused.mode == "fused" and sliced.mode != "fused"
    for k, v in fused.params.items():
        torch.testing.assert_close(sliced.params[k], v, rtol=1e-5, atol=1e-6)


def test_micro_batches_refuse_a_stochastic_model():
    drop = FromModule(lambda: nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 3)))
    with pytest.raises(ValueError, match="micro_batch 7 needs a deterministic model"):
        _train(drop, 7, "auto")


def test_unset_micro_batch_leaves_the_config_dump_as_it_was():
    assert "micro_batch" not in TrainConfig(steps=1, eval_every=1).model_dump()
    assert TrainConfig(steps=1, eval_every=1, micro_batch=4).model_dump()["micro_batch"] == 4
