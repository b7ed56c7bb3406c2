"""Model families: TwoLayerReLU (native stacking) and FromModule (any nn.Module)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrlab.config import TwoLayerConfig
from lrlab.models import FromModule, PopulationModel, TwoLayerReLU, make_model


def test_two_layer_init_shapes_and_options():
    m = TwoLayerReLU(7, 5, out_dim=3, output_bias=True)
    p = m.init([0, 1, 2, 3])
    assert {k: tuple(v.shape) for k, v in p.items()} == {
        "W": (4, 5, 7), "a": (4, 5, 3), "b": (4, 5), "c": (4, 3)}
    assert (p["b"] == 0).all() and (p["c"] == 0).all()
    assert set(TwoLayerReLU(7, 5, bias=False).init([0])) == {"W", "a"}
    assert TwoLayerReLU(7, 5).frozen == frozenset()
    assert TwoLayerReLU(7, 5, train_second_layer=False).frozen == frozenset({"a"})
    assert isinstance(m, PopulationModel)


def test_two_layer_init_is_per_seed():
    m = TwoLayerReLU(6, 4)
    p = m.init([3, 8, 3])
    assert torch.equal(p["W"][0], p["W"][2]) and not torch.equal(p["W"][0], p["W"][1])
    alone = m.init([8])
    assert torch.equal(alone["W"][0], p["W"][1]) and torch.equal(alone["a"][0], p["a"][1])


def test_two_layer_init_scale():
    d, w = 400, 300
    p = TwoLayerReLU(d, w, init_scale=2.0).init([0])
    assert float(p["W"].std()) == pytest.approx(2.0 / d**0.5, rel=0.02)
    assert float(p["a"].std()) == pytest.approx(2.0 / w**0.5, rel=0.1)


@pytest.mark.parametrize("kw", [dict(d_in=0, width=3), dict(d_in=3, width=-1),
                                dict(d_in=3, width=2.5), dict(d_in=3, width=3, out_dim=0),
                                dict(d_in=3, width=3, init_scale=0.0)])
def test_two_layer_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        TwoLayerReLU(**kw)


@pytest.mark.parametrize("out_dim", [1, 3])
def test_two_layer_forward_matches_to_module(out_dim):
    m = TwoLayerReLU(6, 9, out_dim=out_dim, output_bias=True)
    p = m.init([0, 1, 2])
    p["b"] = torch.randn_like(p["b"])
    p["c"] = torch.randn_like(p["c"])
    x = torch.randn(3, 11, 6)
    out = m.forward(p, x)
    assert out.shape == ((3, 11) if out_dim == 1 else (3, 11, 3))
    for k in range(3):
        ref = m.to_module(p, k)(x[k])
        torch.testing.assert_close(out[k], ref.squeeze(-1) if out_dim == 1 else ref)
    # by hand: a·relu(Wx + b) + c
    manual = torch.relu(x[1] @ p["W"][1].T + p["b"][1]) @ p["a"][1] + p["c"][1]
    torch.testing.assert_close(out[1], manual.squeeze(-1) if out_dim == 1 else manual)


def test_two_layer_flattens_inputs_and_counts_flops():
    m = make_model(TwoLayerConfig(width=4), (2, 3))
    assert isinstance(m, TwoLayerReLU) and m.d_in == 6
    p = m.init([0])
    x = torch.randn(1, 5, 2, 3)
    torch.testing.assert_close(m.forward(p, x), m.forward(p, x.flatten(2)))
    assert m.flops_per_example((2, 3)) == 2 * (6 * 4 + 4 * 1)
    mc = make_model(TwoLayerConfig(width=4, bias=False, output_bias=True, train_second_layer=False),
                    (5,), out_dim=3)
    assert set(mc.init([0])) == {"W", "a", "c"} and mc.frozen == {"a"} and mc.out_dim == 3


def _mlp(d=5, width=7, out=1):
    return lambda: nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, out))


def test_from_module_init_is_seeded_and_restores_the_global_rng():
    fm = FromModule(_mlp())
    state = torch.random.get_rng_state()
    p = fm.init([4, 9])
    assert torch.equal(state, torch.random.get_rng_state())
    assert {k: tuple(v.shape) for k, v in p.items()} == {
        "0.weight": (2, 7, 5), "0.bias": (2, 7), "2.weight": (2, 1, 7), "2.bias": (2, 1)}
    torch.manual_seed(9)
    ref = _mlp()()
    assert torch.equal(p["0.weight"][1], ref[0].weight.detach())
    assert not torch.equal(p["0.weight"][0], p["0.weight"][1])
    assert not any(v.requires_grad for v in p.values())


@pytest.mark.parametrize("out", [1, 4])
def test_from_module_forward_matches_each_module(out):
    fm = FromModule(_mlp(out=out))
    seeds = [1, 2, 3]
    p = fm.init(seeds)
    x = torch.randn(3, 6, 5)
    y = fm.forward(p, x)
    assert y.shape == ((3, 6) if out == 1 else (3, 6, out))
    for k, s in enumerate(seeds):
        torch.manual_seed(s)
        ref = _mlp(out=out)()(x[k])
        torch.testing.assert_close(y[k], ref.squeeze(-1) if out == 1 else ref)


def test_from_module_flops_match_two_layer():
    assert FromModule(_mlp(5, 7)).flops_per_example((5,)) == TwoLayerReLU(5, 7).flops_per_example((5,))


def test_from_module_rejects_bad_factories():
    with pytest.raises(TypeError, match="callable"):
        FromModule(3)
    with pytest.raises(TypeError, match="nn.Module"):
        FromModule(lambda: 3)
    with pytest.raises(ValueError, match="not parameters"):
        FromModule(_mlp(), frozen=["0.weight", "nope"])
    assert FromModule(_mlp(), frozen=["2.weight"]).frozen == {"2.weight"}
