"""Empirical NTK probes: dense matrix, matrix-free top eigenvalue, and the batched population version."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.models import NTKMLP, FromModule, UVModel
from lrlab.probes import ntk_matrix, ntk_top_eigenvalue, population_ntk_top_eigenvalue


@pytest.fixture
def float64():
    """Build modules and tensors in float64 for the duration of a test."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _uv(d: int, width: int, seed: int = 0) -> tuple[UVModel, dict[str, torch.Tensor]]:
    model = UVModel(d, width)
    return model, {k: v.double() for k, v in model.init([seed]).items()}


def _top(theta: torch.Tensor) -> float:
    return float(torch.linalg.eigvalsh(theta)[-1])


def test_uv_ntk_matches_spec_formula():
    model, params = _uv(d=3, width=40)
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    u, v = params["u"][0], params["v"][0]
    n, m = 40, 7
    expected = (v.square().sum() * (x @ x.T) + (x @ u.T) @ (u @ x.T)) / (n * m)
    theta = ntk_matrix(model.to_module(params, 0), x)
    assert theta.shape == (7, 7)
    torch.testing.assert_close(theta, expected, rtol=1e-12, atol=1e-12)


def test_ntk_matrix_restores_training_mode_and_orders_outputs(float64):
    torch.manual_seed(0)
    net = NTKMLP(3, 16, depth=1, out_dim=2).train()
    x = torch.randn(4, 3)
    theta = ntk_matrix(net, x)
    assert net.training and theta.shape == (8, 8)
    # row α·C + c is output c of example α: block (α, α) equals the NTK of example α alone, times m
    torch.testing.assert_close(theta[2:4, 2:4] * 4, ntk_matrix(net, x[1:2]), rtol=1e-10, atol=1e-12)


def test_top_eigenvalue_uv(float64):
    model, params = _uv(d=5, width=64)
    module = model.to_module(params, 0)
    x = torch.randn(12, 5)
    lam = ntk_top_eigenvalue(module, x)
    assert lam == pytest.approx(_top(ntk_matrix(module, x)), rel=1e-6)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("depth, out_dim", [(1, 1), (2, 3), (3, 2)])
def test_top_eigenvalue_mlp(float64, activation, depth, out_dim):
    torch.manual_seed(depth)
    net = NTKMLP(4, 32, depth=depth, activation=activation, out_dim=out_dim)
    x = torch.randn(10, 2, 2)
    lam = ntk_top_eigenvalue(net, x, tol=1e-10, max_iters=2000)
    assert lam == pytest.approx(_top(ntk_matrix(net, x)), rel=1e-6)


def test_top_eigenvalue_ignores_frozen_parameters(float64):
    torch.manual_seed(0)
    net = NTKMLP(3, 8, depth=1)
    x = torch.randn(5, 3)
    full = _top(ntk_matrix(net, x))
    net.readout.weight.requires_grad_(False)
    part = _top(ntk_matrix(net, x))
    assert part < full
    assert ntk_top_eigenvalue(net, x, tol=1e-10) == pytest.approx(part, rel=1e-6)


def test_lambda0_equals_top_hessian_eigenvalue_for_wide_uv():
    """Wide limit: the loss Hessian at init is the Gauss–Newton term plus O(1/√n) corrections."""
    d, n, m = 3, 256, 8
    model, params = _uv(d, n, seed=3)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(m, d, dtype=torch.float64, generator=g)
    y = torch.zeros(m, dtype=torch.float64)
    module = model.to_module(params, 0)
    lam0 = ntk_top_eigenvalue(module, x, tol=1e-10)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        u, v = theta[: n * d].reshape(n, d), theta[n * d:]
        f = (x @ u.T) @ v / math.sqrt(n)
        return 0.5 * (f - y).square().mean()

    theta0 = torch.cat([params["u"][0].reshape(-1), params["v"][0]])
    hess = torch.autograd.functional.hessian(loss, theta0, vectorize=True)
    top_hessian = float(torch.linalg.eigvalsh(hess)[-1])
    assert lam0 == pytest.approx(top_hessian, rel=0.03)


def test_population_uv_matches_member_loop(float64):
    model = UVModel(4, 48)
    params = {k: v.double() for k, v in model.init([0, 1, 2]).items()}
    x = torch.randn(9, 4)
    lams = population_ntk_top_eigenvalue(model, params, x, iters=2000, tol=1e-12)
    assert lams.shape == (3,)
    loop = [ntk_top_eigenvalue(model.to_module(params, k), x, tol=1e-12, max_iters=2000) for k in range(3)]
    torch.testing.assert_close(lams, torch.tensor(loop), rtol=1e-6, atol=0)
    # per-member inputs: member k sees its own data
    xs = torch.randn(3, 9, 4)
    lams = population_ntk_top_eigenvalue(model, params, xs, iters=2000, tol=1e-12)
    loop = [ntk_top_eigenvalue(model.to_module(params, k), xs[k], tol=1e-12, max_iters=2000) for k in range(3)]
    torch.testing.assert_close(lams, torch.tensor(loop), rtol=1e-6, atol=0)


@pytest.mark.parametrize("out_dim", [1, 3])
def test_population_mlp_matches_member_loop(float64, out_dim):
    model = FromModule(lambda: NTKMLP(6, 24, depth=2, activation="tanh", out_dim=out_dim))
    params = model.init([5, 6])
    x = torch.randn(2, 8, 6)
    lams = population_ntk_top_eigenvalue(model, params, x, iters=3000, tol=1e-12)
    loop = [ntk_top_eigenvalue(model.to_module(params, k), x[k], tol=1e-12, max_iters=3000) for k in range(2)]
    torch.testing.assert_close(lams, torch.tensor(loop), rtol=1e-6, atol=0)


def test_population_skips_frozen(float64):
    model = FromModule(lambda: NTKMLP(3, 8, depth=1), frozen=["readout.weight"])
    params = model.init([0])
    x = torch.randn(5, 3)
    module = model.to_module(params, 0)
    module.readout.weight.requires_grad_(False)
    lam = population_ntk_top_eigenvalue(model, params, x, iters=2000, tol=1e-12)
    assert float(lam[0]) == pytest.approx(_top(ntk_matrix(module, x)), rel=1e-6)


def test_errors():
    model, params = _uv(2, 4)
    module = model.to_module(params, 0)
    with pytest.raises(ValueError, match=r"tol must be positive, got 0"):
        ntk_top_eigenvalue(module, torch.randn(3, 2, dtype=torch.float64), tol=0)
    with pytest.raises(ValueError, match=r"per-member inputs must be \[K=1, m, \.\.\.\]"):
        population_ntk_top_eigenvalue(model, params, torch.randn(2, 3, 2, dtype=torch.float64), per_member=True)
    for p in module.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match=r"no trainable parameters"):
        ntk_matrix(module, torch.randn(3, 2, dtype=torch.float64))


def test_default_tolerance_accounts_for_slow_convergence(float64):
    """A small spectral gap (λ2/λ1 ≈ 0.97 here) must not stop the iteration early."""
    torch.manual_seed(2)
    net = NTKMLP(4, 32, depth=2, activation="tanh", out_dim=3)
    x = torch.randn(10, 2, 2)
    ev = torch.linalg.eigvalsh(ntk_matrix(net, x))
    assert ev[-2] / ev[-1] > 0.9
    assert ntk_top_eigenvalue(net, x) == pytest.approx(float(ev[-1]), rel=5e-6)
    with pytest.warns(RuntimeWarning, match=r"not converged to tol=1e-12 in 3 iterations"):
        ntk_top_eigenvalue(net, x, tol=1e-12, max_iters=3)
