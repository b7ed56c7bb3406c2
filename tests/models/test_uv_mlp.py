"""The uv model (forward, init, closed-form catapult recurrence) and the NTK-parameterised MLP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrlab.models import NTKMLP, UVModel, uv_recurrence

# ------------------------------------------------------------------------------ uv model


def test_uv_shapes_and_to_module_parity():
    model = UVModel(d_in=6, width=32)
    params = model.init([0, 1, 2])
    assert params["u"].shape == (3, 32, 6) and params["v"].shape == (3, 32)
    x = torch.randn(3, 5, 2, 3)  # flattened to d_in = 6
    out = model.forward(params, x)
    assert out.shape == (3, 5)
    for k in range(3):
        module = model.to_module(params, k)
        torch.testing.assert_close(module(x[k]), out[k], rtol=1e-6, atol=1e-6)
        u, v = params["u"][k], params["v"][k]
        torch.testing.assert_close(out[k], (x[k].flatten(1) @ u.T @ v) / math.sqrt(32), rtol=1e-5, atol=1e-5)
    assert model.flops_per_example((6,)) == 2 * (32 * 6 + 6)
    assert model.frozen == frozenset()


def test_uv_init_deterministic_in_seed_and_standard_normal():
    model = UVModel(d_in=4, width=500)
    a, b = model.init([7, 8]), model.init([8, 7])
    torch.testing.assert_close(a["u"][0], b["u"][1], rtol=0, atol=0)
    torch.testing.assert_close(a["v"][1], b["v"][0], rtol=0, atol=0)
    assert not torch.equal(a["u"][0], a["u"][1])
    assert abs(float(a["u"].std()) - 1.0) < 0.05 and abs(float(a["v"].std()) - 1.0) < 0.1


def test_uv_errors():
    with pytest.raises(ValueError, match=r"width must be a positive integer, got 0"):
        UVModel(3, 0)
    model = UVModel(3, 8)
    params = model.init([0, 1])
    with pytest.raises(ValueError, match=r"4 features, expected d_in=3"):
        model.forward(params, torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"inputs must be \[K=2, B, \.\.\.\]"):
        model.forward(params, torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"steps must be a non-negative integer, got -1"):
        uv_recurrence(1.0, 2.0, 0.5, 10, -1)


def _gd_on_one_example(width: int, eta: float, steps: int, seed: int = 0):
    """Plain full-batch GD on L = f(1)²/2 for a float64 uv model; returns f_t, λ_t for t = 0..steps."""
    params = {k: v.double() for k, v in UVModel(1, width).init([seed]).items()}
    u = params["u"][0].clone().requires_grad_(True)  # [n, 1]
    v = params["v"][0].clone().requires_grad_(True)
    x = torch.ones(1, 1, dtype=torch.float64)
    fs, lams = [], []
    for t in range(steps + 1):
        f = ((x @ u.T) @ v / math.sqrt(width))[0]
        fs.append(float(f.detach()))
        lams.append(float((u.detach().square().sum() + v.detach().square().sum()) / width))
        if t == steps:
            break
        loss = 0.5 * f**2
        gu, gv = torch.autograd.grad(loss, (u, v))
        with torch.no_grad():
            u -= eta * gu
            v -= eta * gv
    return np.array(fs), np.array(lams)


@pytest.mark.parametrize("eta_lam0, steps", [(1.0, 50), (1.9, 50), (2.5, 50), (3.5, 50), (4.5, 6)])
def test_uv_recurrence_equals_gradient_descent(eta_lam0, steps):
    width = 256
    f_gd, lam_gd = _gd_on_one_example(width, eta=0.0, steps=0)
    eta = eta_lam0 / lam_gd[0]
    f_gd, lam_gd = _gd_on_one_example(width, eta=eta, steps=steps)
    f_rec, lam_rec = uv_recurrence(f_gd[0], lam_gd[0], eta, width, steps)
    assert f_rec.shape == lam_rec.shape == (steps + 1,)
    assert np.all(np.isfinite(f_gd)) and np.all(np.isfinite(f_rec))
    scale = np.abs(f_gd).max()
    np.testing.assert_allclose(f_rec, f_gd, rtol=1e-10, atol=1e-10 * scale)
    np.testing.assert_allclose(lam_rec, lam_gd, rtol=1e-10)
    if eta_lam0 < 2:  # lazy: λ barely moves, f decays
        assert abs(lam_gd[-1] / lam_gd[0] - 1) < 0.1 and abs(f_gd[-1]) < 1e-3 * abs(f_gd[0]) + 1e-12
    elif eta_lam0 < 4:  # catapult: loss grows, λ falls below 2/η, then training converges
        assert np.abs(f_gd).max() > 2 * abs(f_gd[0]) and lam_gd[-1] < lam_gd[0]
        assert eta * lam_gd[-1] < 2 and abs(f_gd[-1]) < 1e-3
    else:  # divergent: |f| and λ both grow
        assert abs(f_gd[-1]) > 10 * abs(f_gd[0]) and lam_gd[-1] > lam_gd[0]


# ------------------------------------------------------------------------------ NTK MLP


def test_mlp_validation():
    with pytest.raises(ValueError, match=r"depth .* must be 1, 2 or 3, got 0"):
        NTKMLP(4, 16, depth=0)
    with pytest.raises(ValueError, match=r"depth .* must be 1, 2 or 3, got 4"):
        NTKMLP(4, 16, depth=4)
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'tanh'\], got 'gelu'"):
        NTKMLP(4, 16, activation="gelu")
    with pytest.raises(ValueError, match=r"width must be a positive integer, got 0"):
        NTKMLP(4, 0)
    with pytest.raises(ValueError, match=r"expected d_in=4"):
        NTKMLP(4, 8)(torch.randn(2, 5))


@pytest.mark.parametrize("activation, sigma_w", [("relu", math.sqrt(2)), ("tanh", 1.0)])
def test_mlp_init_scale_and_preactivation_variance(activation, sigma_w):
    torch.manual_seed(0)
    net = NTKMLP(20, 1024, depth=3, activation=activation, out_dim=3)
    assert net.sigma_w == pytest.approx(sigma_w) and net.sigma_b == 0.1
    for name, p in net.named_parameters():
        if p.numel() >= 1000:
            assert abs(float(p.detach().std()) - 1.0) < 0.05, name
            assert abs(float(p.detach().mean())) < 0.05, name
    x = torch.randn(256, 4, 5)  # unit-variance inputs, flattened to 20 features
    with torch.no_grad():
        pre = net.preactivations(x)
    assert [tuple(z.shape) for z in pre] == [(256, 1024)] * 3 + [(256, 3)]
    assert net(x).shape == (256, 3)
    for z in pre[:-1]:
        assert 0.2 < float(z.var()) < 5.0  # order 1 at every hidden layer
    # first layer: var = σ_w² E[x²] + σ_b² for inputs with E[x²] = 1
    expected = sigma_w**2 * float(x.square().mean()) + 0.01
    assert float(pre[0].var()) == pytest.approx(expected, rel=0.1)


def test_mlp_sigma_arguments_scale_layers():
    torch.manual_seed(1)
    a = NTKMLP(3, 8, depth=2, activation="tanh", sigma_w=2.0, sigma_b=0.0)
    torch.manual_seed(1)
    b = NTKMLP(3, 8, depth=2, activation="tanh", sigma_w=1.0, sigma_b=0.0)
    x = torch.randn(4, 3)
    torch.testing.assert_close(a.preactivations(x)[0], 2 * b.preactivations(x)[0])
