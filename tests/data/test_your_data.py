"""Bring your own data: (x, y) pairs, TensorDatasets, DataLoaders and map-style datasets read as
lrlab Datasets, and the trainer, phase diagram and sharpness tracker give the same numbers for
every form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrlab
from lrlab.config import TrainConfig
from lrlab.data import Dataset, as_dataset, infer_task, two_moons
from lrlab.probes import hessian_trace, ntk_top_eigenvalue, top_hessian_eigs
from lrlab.train import Constant, Member


class Pairs(torch.utils.data.Dataset):
    """A map-style dataset of (x, y) items, as a user would write one."""

    def __init__(self, x, y) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_every_form_reads_as_the_same_dataset():
    x, y = two_moons(40, 0)
    ref = as_dataset((x, y))
    assert (ref.task, ref.num_classes, ref.group_names) == ("multiclass", 2, ("all",))
    forms = [TensorDataset(x, y), DataLoader(TensorDataset(x, y), batch_size=7),
             DataLoader(Pairs(x, y), batch_size=9), Pairs(x, y), ref]
    for form in forms:
        d = as_dataset(form)
        assert torch.equal(d.x, x) and torch.equal(d.y, y) and d.task == "multiclass", type(form)
    shuffled = as_dataset(DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                                     generator=torch.Generator().manual_seed(1)))
    order = torch.argsort(shuffled.x[:, 0])  # the same examples, in the loader's order
    assert torch.equal(shuffled.x[order], x[torch.argsort(x[:, 0])])


def test_tasks_are_read_from_the_labels_or_given():
    x = torch.randn(6, 3)
    assert infer_task(torch.tensor([1.0, -1, 1, 1, -1, -1])) == ("binary", 2)
    assert infer_task(torch.randn(6)) == ("regression", 1)
    assert infer_task(torch.tensor([0, 2, 1, 0, 0, 1])) == ("multiclass", 3)
    reg = as_dataset((x, torch.randn(6, 1)))  # a [n, 1] target column
    assert reg.task == "regression" and reg.y.shape == (6,)
    forced = as_dataset((x, torch.tensor([0, 1, 2, 3, 4, 5])), task="regression")
    assert forced.task == "regression" and forced.y.dtype == torch.float32


@pytest.mark.parametrize("data, message", [
    (torch.randn(4, 2), r"data: expected an lrlab Dataset, an \(x, y\) pair of tensors, a TensorDataset or "
                        r"a DataLoader, got Tensor"),
    ((torch.randn(4, 2), torch.randn(5)), r"data: y must be \[n\] with n = x.shape\[0\] = 4, got \(5,\)"),
    (TensorDataset(torch.randn(4, 2)), "data: a TensorDataset needs inputs and labels, has 1 tensor"),
    (DataLoader([torch.randn(2)] * 3), "data: item 0 is a Tensor, expected a pair"),
    (DataLoader(TensorDataset(torch.randn(0, 2), torch.randn(0))), "data is empty"),
])
def test_bad_data_is_named(data, message):
    with pytest.raises(ValueError, match=message):
        as_dataset(data)


def test_bad_task_overrides_are_named():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="multiclass labels must be integer class indices, got torch.float32"):
        as_dataset((x, torch.randn(4)), task="multiclass")
    with pytest.raises(ValueError, match=r"task must be 'binary', 'multiclass' or 'regression', got 'ranking'"):
        as_dataset((x, torch.randn(4)), task="ranking")
    with pytest.raises(ValueError, match=r"binary task needs labels in \{-1, \+1\}"):
        as_dataset((x, torch.tensor([0, 1, 0, 1])), task="binary")


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))


def test_train_population_gives_the_same_records_for_every_form():
    x, y = two_moons(64, 0)
    xt, yt = two_moons(32, 1)
    members = [Member("big", 0, Constant(0.5)), Member("small", 1, Constant(0.05))]
    cfg = TrainConfig(loss="cross_entropy", steps=12, batch_size=16, eval_every=4)
    model = lrlab.FromModule(net)
    ref = lrlab.train_population(model, members, Dataset(x, y, torch.zeros(64, dtype=torch.long), ("all",),
                                                         "multiclass", 2),
                                 as_dataset((xt, yt)), cfg)
    for train, test in [((x, y), (xt, yt)), (TensorDataset(x, y), DataLoader(TensorDataset(xt, yt), batch_size=5)),
                        ([(x, y)], {"test": [TensorDataset(xt, yt)]})]:
        res = lrlab.train_population(model, members, train, test, cfg)
        pd.testing.assert_frame_equal(res.records, ref.records, check_exact=True)
    assert res.members.name.tolist() == ["big", "small"]
    with pytest.raises(ValueError, match=r"test\['test'\]\[0\]: expected an lrlab Dataset"):
        lrlab.train_population(model, members, (x, y), {"test": [xt]}, cfg)


def test_phase_diagram_and_sharpness_take_a_tensor_dataset_or_loader():
    x, y = two_moons(32, 0)
    xt, yt = two_moons(16, 1)
    kw = dict(scaled_etas=[0.5, 4.0], steps=6, seed=2)
    ref = lrlab.phase_diagram(net, x, y, "cross_entropy", test=(xt, yt), **kw)
    other = lrlab.phase_diagram(net, DataLoader(TensorDataset(x, y), batch_size=10), loss="cross_entropy",
                                test=TensorDataset(xt, yt), **kw)
    assert other.lam0 == ref.lam0 and other.phases == ref.phases
    pd.testing.assert_frame_equal(other.table(), ref.table())
    a = lrlab.track_sharpness(net, x, y, "cross_entropy", lrs=[0.1], steps=4, every=2, seed=1)
    b = lrlab.track_sharpness(net, TensorDataset(x, y), loss="cross_entropy", lrs=[0.1], steps=4, every=2, seed=1)
    np.testing.assert_array_equal(a.sharpness.to_numpy(), b.sharpness.to_numpy())
    with pytest.raises(ValueError, match="phase_diagram: x and y must be tensors, got Tensor and list"):
        lrlab.phase_diagram(net, x, [0, 1], loss="cross_entropy", **kw)


def test_records_name_their_members():
    x, y = two_moons(32, 0)
    members = [Member("big", 0, Constant(0.5)), Member("small", 3, Constant(0.05))]
    res = lrlab.train_population(lrlab.FromModule(net), members, (x, y), None,
                                 TrainConfig(loss="cross_entropy", steps=4, eval_every=2))
    assert res.labels == {0: "big-seed0", 1: "small-seed3"}
    named = res.named("train.loss")
    assert list(named.columns) == ["member", "name", "seed", "label", "step", "metric", "value"]
    assert named.groupby("label").size().to_dict() == {"big-seed0": 3, "small-seed3": 3}
    pd.testing.assert_frame_equal(named.pivot(index="step", columns="label", values="value"),
                                  res.curve("train.loss").rename(columns=res.labels), check_names=False)
    assert len(res.named()) == len(res.records)


def test_a_callable_criterion_trains_like_the_named_loss():
    x, y = two_moons(48, 0)
    members = [Member("big", 0, Constant(0.5)), Member("small", 1, Constant(0.05))]
    cfg = TrainConfig(loss="cross_entropy", steps=10, batch_size=16, eval_every=5)
    model = lrlab.FromModule(net)
    named = lrlab.train_population(model, members, (x, y), (x, y), cfg)
    ce = nn.CrossEntropyLoss()  # reduction "mean": lrlab takes a per-example copy
    own = lrlab.train_population(model, members, (x, y), (x, y), cfg, criterion=ce)
    assert ce.reduction == "mean"  # the user's module is left as it was
    pd.testing.assert_frame_equal(own.records, named.records, check_exact=False, rtol=1e-5, atol=1e-6)
    smooth = lrlab.train_population(model, members, (x, y), None, cfg,
                                    criterion=nn.CrossEntropyLoss(label_smoothing=0.2))
    assert not np.allclose(smooth.final("train.loss"), named.final("train.loss"))
    with pytest.raises(ValueError, match=r"one loss per example \(reduction='none'\): given 96 examples it "
                                         r"returned \(\)"):
        lrlab.train_population(model, members, (x, y), None, cfg,
                               criterion=lambda out, t: nn.functional.cross_entropy(out, t))


def test_a_criterion_module_gives_the_named_loss_numbers_in_every_tool():
    x, y = two_moons(32, 0)
    kw = dict(scaled_etas=[0.5, 4.0], steps=6, seed=2)
    named = lrlab.phase_diagram(net, x, y, "cross_entropy", **kw)
    own = lrlab.phase_diagram(net, x, y, nn.CrossEntropyLoss(), **kw)
    assert own.curvature == named.curvature == "hessian" and own.phases == named.phases
    np.testing.assert_allclose(own.lam0, named.lam0, rtol=1e-4)
    np.testing.assert_allclose(own.table().final_loss, named.table().final_loss, rtol=1e-5)
    a = lrlab.track_sharpness(net, x, y, "cross_entropy", lrs=[0.1], steps=4, every=2, seed=1)
    b = lrlab.track_sharpness(net, x, y, nn.CrossEntropyLoss(), lrs=[0.1], steps=4, every=2, seed=1)
    np.testing.assert_allclose(a.sharpness.to_numpy(), b.sharpness.to_numpy(), rtol=1e-4)
    adv = dict(batch_size=16, seeds=2, steps=10, scaled_etas=[0.5, 2.0], max_extend=0)
    p = lrlab.lr_advice(net, (x, y), "cross_entropy", **adv)
    q = lrlab.lr_advice(net, (x, y), nn.CrossEntropyLoss(), **adv)
    np.testing.assert_allclose(p.runs.final_loss, q.runs.final_loss, rtol=1e-5)


def test_the_probes_take_a_tensor_dataset_or_loader():
    x, y = two_moons(24, 0)
    torch.manual_seed(0)
    model = net()
    ref = top_hessian_eigs(model, x, y, "cross_entropy", k=2).values
    got = top_hessian_eigs(model, DataLoader(TensorDataset(x, y), batch_size=5), loss="cross_entropy", k=2).values
    torch.testing.assert_close(got, ref)
    own = top_hessian_eigs(model, TensorDataset(x, y), loss=nn.CrossEntropyLoss(), k=2).values
    torch.testing.assert_close(own, ref, rtol=1e-4, atol=1e-6)
    assert hessian_trace(model, (x, y), loss="cross_entropy", samples=4) == hessian_trace(
        model, x, y, "cross_entropy", samples=4)
    assert ntk_top_eigenvalue(model, TensorDataset(x, y)) == ntk_top_eigenvalue(model, x)
    with pytest.raises(ValueError, match="top_hessian_eigs needs a loss"):
        top_hessian_eigs(model, TensorDataset(x, y))
