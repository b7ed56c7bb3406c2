"""The Dataset container."""

from __future__ import annotations

import pytest
import torch

from lrlab.data import Dataset

NAMES = ("a", "b")


def _ds(n=6):
    return Dataset(x=torch.arange(n * 3, dtype=torch.float32).reshape(n, 3),
                   y=torch.tensor([1.0, -1.0] * (n // 2)), group=torch.tensor([0, 1] * (n // 2)),
                   group_names=NAMES)


def test_basic_accessors():
    ds = _ds()
    assert len(ds) == 6 and ds.input_shape == (3,)
    assert ds.group_mask("b").tolist() == [False, True] * 3
    with pytest.raises(KeyError, match="no group 'c'"):
        ds.group_mask("c")
    sub = ds.subset(torch.tensor([1, 3]))
    assert len(sub) == 2 and sub.group.tolist() == [1, 1] and sub.group_names == NAMES
    assert torch.equal(sub.x, ds.x[[1, 3]])
    assert torch.equal(ds.to("cpu").x, ds.x)


def test_validation():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="first dimension"):
        Dataset(x, torch.ones(3), torch.zeros(4, dtype=torch.long), NAMES)
    with pytest.raises(ValueError, match="group tags"):
        Dataset(x, torch.ones(4), torch.tensor([0, 1, 2, 0]), NAMES)
    with pytest.raises(ValueError, match="-1, \\+1"):
        Dataset(x, torch.tensor([1.0, 0.0, 1.0, -1.0]), torch.zeros(4, dtype=torch.long), NAMES)
    mc = Dataset(x, torch.tensor([0, 1, 2, 1]), torch.zeros(4, dtype=torch.long), NAMES,
                 task="multiclass", num_classes=3)
    assert mc.num_classes == 3


def test_regression_task_takes_real_targets_and_needs_squared_loss():
    import torch

    from lrlab.losses import check_loss

    ds = Dataset(torch.randn(4, 2), torch.tensor([0.3, -2.0, 5.0, 0.0]), torch.zeros(4, dtype=torch.long),
                 ("all",), "regression", 1)
    assert ds.task == "regression"
    check_loss("squared", "regression")
    with pytest.raises(ValueError, match=r"regression task \(real targets\) needs the squared loss, not 'logistic'"):
        check_loss("logistic", "regression")
