"""Plain PyTorch MLP factories."""

from __future__ import annotations

import pytest
import torch


def test_torch_mlp_factory_builds_plain_mlps():
    from torch import nn

    from lrlab.models import torch_mlp

    make = torch_mlp(5, 8, 2, 3, "tanh")
    torch.manual_seed(0)
    a = make()
    torch.manual_seed(0)
    b = make()
    assert [type(m) for m in a] == [nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Linear]
    assert a(torch.randn(4, 5)).shape == (4, 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="activation must be one of"):
        torch_mlp(5, 8, 2, 3, "gelu")
