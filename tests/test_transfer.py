"""Stage-wise transferability (You et al. 2019): snapshots, features, probe, finetune, the ratio."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from lrlab.transfer import (
    accuracy,
    features,
    finetune,
    linear_probe,
    replace_head,
    train_with_snapshots,
    transfer_stages,
    transferability,
)


def blobs(n: int, centers: Tensor, seed: int, noise: float = 0.5) -> tuple[Tensor, Tensor]:
    """``n`` points per centre, Gaussian around each of ``centers`` [C, D]; labels = centre index."""
    g = torch.Generator().manual_seed(seed)
    c, d = centers.shape
    y = torch.arange(c).repeat_interleave(n)
    x = centers[y] + noise * torch.randn(c * n, d, generator=g)
    return x, y


def mlp(d_in: int = 4, width: int = 16, out: int = 4, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, out))


SOURCE_CENTERS = 2.0 * torch.eye(4)
TARGET_CENTERS = torch.tensor([[1.5, 1.5, 0.0, 0.0], [0.0, 0.0, 1.5, 1.5], [1.5, 0.0, 0.0, -1.5]])


class NamedHead(nn.Module):
    """A non-Sequential model whose head is the child ``out`` (features = tanh(body(x)))."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.tanh(self.body(x)))


class NoHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.unsqueeze(1)).flatten(1)


def same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------- transferability
def test_transferability_hand_computed():
    got = transferability([0.1, 0.6, 0.8], [0.2, 0.45, 0.5])
    np.testing.assert_allclose(got, [0.25 / 0.5, 0.05 / 0.2])
    # a stage that lowers both accuracies still has a positive ratio; one that lowers only tacc is negative
    np.testing.assert_allclose(transferability([0.5, 0.4, 0.9], [0.5, 0.3, 0.2]), [2.0, -0.2])


def test_transferability_nan_where_source_accuracy_does_not_move():
    got = transferability([0.1, 0.1, 0.3, 0.3 + 1e-13], [0.1, 0.2, 0.4, 0.5])
    assert math.isnan(got[0]) and math.isnan(got[2])
    assert got[1] == pytest.approx(1.0)


@pytest.mark.parametrize("acc, tacc, match", [
    ([0.1, 0.2, 0.3], [0.1, 0.2], "3 stages but tacc has 2"),
    ([0.1], [0.2], "at least one more stage"),
    ([], [], "at least one more stage"),
])
def test_transferability_errors(acc, tacc, match):
    with pytest.raises(ValueError, match=match):
        transferability(acc, tacc)


# ------------------------------------------------------------------------------- staged training
@pytest.fixture(scope="module")
def source():
    return blobs(40, SOURCE_CENTERS, seed=1), blobs(25, SOURCE_CENTERS, seed=2)


def test_snapshots_count_init_and_change(source):
    (x, y), _ = source
    model = mlp()
    init = copy.deepcopy(model.state_dict())
    snaps = train_with_snapshots(model, x, y, lrs=[0.1, 0.01, 0.001], epochs_per_stage=[2, 1, 1],
                                 batch_size=32)
    assert len(snaps) == 4
    assert same(snaps[0], init)
    for a, b in zip(snaps, snaps[1:]):
        assert not same(a, b)
    assert same(snaps[-1], model.state_dict())  # trained in place
    # snapshots are copies: later changes to the model do not reach them
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not same(snaps[-1], model.state_dict())
    assert model.training


def test_snapshots_deterministic_for_a_seed(source):
    (x, y), _ = source
    kw = dict(lrs=[0.1, 0.01], epochs_per_stage=[2, 1], batch_size=16)
    a = train_with_snapshots(mlp(), x, y, **kw, seed=3)
    b = train_with_snapshots(mlp(), x, y, **kw, seed=3)
    c = train_with_snapshots(mlp(), x, y, **kw, seed=4)
    assert all(same(p, q) for p, q in zip(a, b))
    assert not same(a[-1], c[-1])  # the seed sets the minibatch order


def test_one_sgd_step_per_stage_by_hand():
    """1 parameter, 1 example, squared loss ½(w·x − t)²: each stage is one step at its own lr."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.5)
    x, t = torch.tensor([[2.0]]), torch.tensor([[3.0]])
    lrs, mom, wd = [0.1, 0.01], 0.9, 0.05
    snaps = train_with_snapshots(model, x, t, lrs=lrs, epochs_per_stage=[1, 1], batch_size=1,
                                 momentum=mom, weight_decay=wd, loss="squared")
    w0 = 0.5
    g1 = (w0 * 2 - 3) * 2 + wd * w0
    w1 = w0 - lrs[0] * g1
    g2 = (w1 * 2 - 3) * 2 + wd * w1
    w2 = w1 - lrs[1] * (mom * g1 + g2)  # momentum buffer carries over the decay
    got = [s["weight"].item() for s in snaps]
    assert got == pytest.approx([w0, w1, w2], rel=1e-6)


def test_tiny_lr_stage_moves_weights_less(source):
    (x, y), _ = source
    snaps = train_with_snapshots(mlp(), x, y, lrs=[0.1, 1e-5], epochs_per_stage=[1, 1], batch_size=32)
    dist = [sum(float((b[k] - a[k]).norm() ** 2) for k in a) ** 0.5 for a, b in zip(snaps, snaps[1:])]
    assert dist[1] < 1e-3 * dist[0]


@pytest.mark.parametrize("kw, match", [
    (dict(lrs=[0.1, 0.01], epochs_per_stage=[1]), "lrs has 2 stages but epochs_per_stage has 1"),
    (dict(lrs=[], epochs_per_stage=[]), "at least one stage"),
    (dict(lrs=[0.1, -0.2], epochs_per_stage=[1, 1]), r"lrs\[1\].*-0.2"),
    (dict(lrs=[0.1], epochs_per_stage=[0]), r"epochs_per_stage\[0\].*got 0"),
    (dict(lrs=[0.1], epochs_per_stage=[1], batch_size=0), "batch_size.*got 0"),
    (dict(lrs=[0.1], epochs_per_stage=[1], momentum=-0.5), "momentum.*-0.5"),
    (dict(lrs=[0.1], epochs_per_stage=[1], loss="hinge"), "unknown loss 'hinge'"),
])
def test_snapshots_bad_arguments(source, kw, match):
    (x, y), _ = source
    kw = {"batch_size": 8, **kw}
    with pytest.raises(ValueError, match=match):
        train_with_snapshots(mlp(), x, y, **kw)


def test_snapshots_progress_bar_runs(source):
    (x, y), _ = source
    assert len(train_with_snapshots(mlp(), x, y, lrs=[0.1], epochs_per_stage=[1], batch_size=64,
                                    progress=True)) == 2


# ------------------------------------------------------------------------------- features
def test_features_of_a_sequential_match_manual():
    model = mlp()
    model.train()
    x = torch.randn(10, 4)
    got = features(model, x, batch=3)
    # batches of 3 round differently from one product over all 10 rows: float32 tolerance
    torch.testing.assert_close(got, torch.relu(model[0](x)).detach())
    assert got.shape == (10, 16) and not got.requires_grad
    assert model.training  # mode restored


def test_named_sequential_head_is_found_and_replaced():
    from collections import OrderedDict

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(body=nn.Linear(4, 5), act=nn.ReLU(), fc=nn.Linear(5, 2)))
    x = torch.randn(6, 4)
    assert torch.allclose(features(model, x), torch.relu(model.body(x)))
    assert replace_head(model, 7)(x).shape == (6, 7)


def test_features_hook_on_named_head():
    torch.manual_seed(0)
    model = NamedHead().eval()
    x = torch.randn(7, 4)
    got = features(model, x, head="out", batch=4)
    assert torch.allclose(got, torch.tanh(model.body(x)))
    assert not model.training
    assert not model.out._forward_hooks  # hook removed


def test_features_auto_finds_fc_child():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk, self.fc = nn.Linear(4, 5), nn.Linear(5, 2)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(torch.relu(self.trunk(x)))

    net, x = Net(), torch.randn(6, 4)
    assert torch.allclose(features(net, x), torch.relu(net.trunk(x)))


@pytest.mark.parametrize("model, head, match", [
    (NoHead(), "auto", "no final nn.Linear found in NoHead"),
    (NamedHead(), "auto", "no final nn.Linear found"),
    (NamedHead(), "missing", "no submodule 'missing'"),
    (nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "auto", "no final nn.Linear"),
    (nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "1", "is a ReLU, not an nn.Linear"),
])
def test_features_without_a_final_linear(model, head, match):
    with pytest.raises(ValueError, match=match):
        features(model, torch.randn(3, 4), head=head)


# ------------------------------------------------------------------------------- linear probe
def test_linear_probe_separates_separable_features():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(10, 3, generator=g)
    f = 5.0 * torch.randn(600, 10, generator=g) + 2.0  # unstandardised on purpose
    scores = (f - 2.0) @ w
    top2 = scores.topk(2, -1).values
    keep = (top2[:, 0] - top2[:, 1] > 5.0).nonzero().squeeze(1)[:300]  # a clear margin
    f, y = f[keep], scores[keep].argmax(-1)
    assert len(y) == 300 and y.bincount().min() > 50
    assert linear_probe(f[:200], y[:200], f[200:], y[200:], 3) == 1.0
    assert linear_probe(f[:200], y[:200], f[:200], y[:200], 3) == 1.0


def test_linear_probe_on_random_labels_is_near_chance():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(800, 20, generator=g)
    y = torch.randint(0, 2, (800,), generator=g)
    assert abs(linear_probe(f[:200], y[:200], f[200:], y[200:], 2) - 0.5) < 0.08


def test_linear_probe_label_check():
    f = torch.randn(5, 2)
    with pytest.raises(ValueError, match="num_classes=2"):
        linear_probe(f, torch.tensor([0, 1, 2, 0, 1]), f, torch.zeros(5), 2)


# ------------------------------------------------------------------------------- finetune
def test_finetune_leaves_model_alone_and_beats_untrained_head(source):
    (x, y), _ = source
    model = mlp()
    train_with_snapshots(model, x, y, lrs=[0.1], epochs_per_stage=[3], batch_size=16)
    model.eval()
    before = copy.deepcopy(model.state_dict())
    (tx, ty), (ttx, tty) = blobs(40, TARGET_CENTERS, seed=3), blobs(25, TARGET_CENTERS, seed=4)
    untrained = accuracy(replace_head(model, 3, seed=0), ttx, tty)
    tuned = finetune(model, tx, ty, ttx, tty, 3, epochs=5, lr=0.05, batch_size=16, seed=0)
    assert same(model.state_dict(), before) and not model.training
    assert model[-1].out_features == 4
    assert tuned > 0.9 and tuned > untrained + 0.2
    assert tuned == finetune(model, tx, ty, ttx, tty, 3, epochs=5, lr=0.05, batch_size=16, seed=0)


def test_replace_head_on_a_named_child_keeps_original():
    torch.manual_seed(0)
    model = NamedHead()
    new = replace_head(model, 5, seed=2, head="out")
    assert new.out.out_features == 5 and model.out.out_features == 3
    assert new(torch.randn(2, 4)).shape == (2, 5)
    assert torch.equal(new.out.weight, replace_head(model, 5, seed=2, head="out").out.weight)
    assert torch.equal(new.body.weight, model.body.weight) and new.body.weight is not model.body.weight


# ------------------------------------------------------------------------------- transfer_stages
def test_transfer_stages_table(source):
    (x, y), test = source
    model = mlp()
    snaps = train_with_snapshots(model, x, y, lrs=[0.1, 0.01], epochs_per_stage=[2, 2], batch_size=16)
    targets = {"blobs3": (*blobs(30, TARGET_CENTERS, seed=5), *blobs(20, TARGET_CENTERS, seed=6))}
    tab = transfer_stages(snaps, mlp, test, targets, finetune_epochs=2, finetune_lr=0.05,
                          finetune_batch=16, probe_epochs=20)
    assert isinstance(tab, pd.DataFrame)
    assert list(tab.columns) == ["stage", "target", "method", "acc", "tacc", "transferability"]
    assert len(tab) == 3 * 1 * 2
    assert sorted(zip(tab.stage, tab.method)) == [(s, m) for s in range(3) for m in ("finetune", "fix")]
    acc = tab.groupby("stage").acc.first()
    assert acc[0] < 0.5 and acc[2] > 0.9  # 4 classes: chance 0.25
    assert tab[tab.stage == 0].transferability.isna().all()
    assert tab.tacc.between(0, 1).all()
    for _, grp in tab.groupby("method"):
        grp = grp.sort_values("stage")
        np.testing.assert_allclose(grp.transferability.to_numpy()[1:],
                                   transferability(grp.acc.to_numpy(), grp.tacc.to_numpy()))


def test_transfer_stages_shape_mismatch(source):
    (x, y), test = source
    snaps = [mlp().state_dict()]
    tx, ty = torch.randn(8, 5), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match=r"shape \(5,\).*source examples have shape \(4,\)"):
        transfer_stages(snaps, mlp, test, {"wide": (tx, ty, tx, ty)})
    with pytest.raises(ValueError, match="unknown or missing methods"):
        transfer_stages(snaps, mlp, test, {"t": (x, y, x, y)}, methods=("probe",))
