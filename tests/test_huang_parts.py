"""Huang et al. (2020) building blocks: the deep linear network, data of controlled separability,
and the closed-form logistic-loss recurrences of the uv network on degenerate data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrlab.data.separability import (
    cifar_two_class,
    degenerate_nonseparable,
    degenerate_separable,
    gaussian_data,
    gaussian_direction,
    is_linearly_separable,
    separable_direction_margin,
)
from lrlab.models import FromModule, UVModel
from lrlab.models.linear import DeepLinear
from lrlab.probes.ntk import ntk_top_eigenvalue
from lrlab.recurrences import (
    catapult_threshold,
    degenerate_grad,
    degenerate_loss,
    logistic_recurrence,
    nonseparable_minimizer,
)

# ------------------------------------------------------------------------------ DeepLinear


def test_depth_two_is_the_uv_model():
    d, n = 6, 32
    uv = UVModel(d, n)
    params = uv.init([3])
    # same RNG stream: FromModule seeding draws W_1 then w_2 exactly like UVModel draws u then v
    stacked = FromModule(lambda: DeepLinear(d, n, depth=2)).init([3])
    assert torch.equal(stacked["weights.0"][0], params["u"][0])
    assert torch.equal(stacked["weights.1"][0], params["v"][0])
    ref = uv.to_module({k: v.double() for k, v in params.items()}, 0)
    net = DeepLinear(d, n, depth=2).double()
    with torch.no_grad():
        net.weights[0].copy_(ref.u)
        net.weights[1].copy_(ref.v)
    x = torch.randn(7, 2, 3, dtype=torch.float64)  # flattened to d = 6
    out = net(x)
    assert out.shape == (7,)
    torch.testing.assert_close(out, ref(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth, input_norm", [(2, False), (3, True), (4, False)])
def test_end_to_end_map(depth, input_norm):
    torch.manual_seed(0)
    net = DeepLinear(5, 8, depth=depth, input_norm=input_norm).double()
    assert [tuple(w.shape) for w in net.weights] == [(8, 5)] + [(8, 8)] * (depth - 2) + [(8,)]
    x = torch.randn(4, 5, dtype=torch.float64)
    beta = net.end_to_end()
    assert beta.shape == (5,)
    torch.testing.assert_close(net(x), x @ beta, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("input_norm", [False, True])
def test_init_output_variance_is_order_one_at_any_width(input_norm):
    """NTK parameterisation: E f(x)² = |x|² (or |x|²/d with input_norm) whatever the width."""
    d = 16
    x = torch.randn(1, d)
    target = float(x.square().sum()) / (d if input_norm else 1)
    for width in (8, 128):
        outs = []
        for s in range(300):
            torch.manual_seed(s)
            with torch.no_grad():
                outs.append(float(DeepLinear(d, width, depth=3, input_norm=input_norm)(x)[0]))
        assert 0.7 < np.mean(np.square(outs)) / target < 1.4, width


def test_deep_linear_errors():
    with pytest.raises(ValueError, match=r"width must be a positive integer, got 0"):
        DeepLinear(4, 0)
    with pytest.raises(ValueError, match=r"d_in must be a positive integer, got -1"):
        DeepLinear(-1, 4)
    with pytest.raises(ValueError, match=r"\(number of weight matrices\) must be an integer >= 2, got 1"):
        DeepLinear(4, 4, depth=1)
    with pytest.raises(ValueError, match=r"got 2.0"):
        DeepLinear(4, 4, depth=2.0)
    with pytest.raises(ValueError, match=r"input_norm must be a bool"):
        DeepLinear(4, 4, input_norm=1)
    with pytest.raises(ValueError, match=r"5 features after flattening, expected d_in=4"):
        DeepLinear(4, 4)(torch.randn(3, 5))


# ------------------------------------------------------------------------------ recurrences


def _uv_gd(split, width: int, eta: float, steps: int, separable: bool):
    """Plain float64 GD with autograd on a depth-2 DeepLinear, mean logistic loss over the
    training set; returns F_t (output on x̂), λ_t = (|u x̂|² + |v|²)/n, the NTK λ_0 and x̂."""
    x, y = split.train.x, split.train.y
    xhat = x[0] * y[0] if separable else x[0]
    torch.manual_seed(1)
    net = DeepLinear(x.shape[1], width, depth=2).double()
    lam_ntk = ntk_top_eigenvalue(net, x)
    u, v = net.weights
    F, lam = [], []
    for t in range(steps + 1):
        with torch.no_grad():
            F.append(float(net(xhat[None])[0]))
            lam.append(float(((u @ xhat).square().sum() + v.square().sum()) / width))
        if t == steps:
            break
        loss = torch.logaddexp(torch.zeros(()), -y * net(x)).mean()  # exact log(1 + e^{−y f})
        grads = torch.autograd.grad(loss, [u, v])
        with torch.no_grad():
            for w, gw in zip((u, v), grads):
                w -= eta * gw
    return np.array(F), np.array(lam), lam_ntk, xhat


@pytest.mark.parametrize("p, eta_rel", [(0.5, 0.5), (0.5, 1.6), (0.8, 0.5), (0.8, 1.6),
                                        (None, 1.0), (None, 20.0)])
def test_logistic_recurrence_equals_gradient_descent(p, eta_rel):
    """eta_rel: η in units of the catapult threshold 2/(p(1−p)λ0) (non-separable), or η itself
    (separable)."""
    n_ex, d, width, steps = 10, 5, 64, 150
    split = (degenerate_separable(n_ex, d, 0, dtype=torch.float64) if p is None
             else degenerate_nonseparable(n_ex, d, p, 0, dtype=torch.float64))
    _, lam_init, lam_ntk, xhat = _uv_gd(split, width, 0.0, 0, p is None)
    lam0 = float(lam_init[0])
    assert abs(float(xhat.norm()) - 1) < 1e-14
    assert lam_ntk == pytest.approx(lam0, rel=1e-10)  # rank-one NTK: its only eigenvalue is λ
    eta = eta_rel if p is None else eta_rel * catapult_threshold(p, lam0)
    F_gd, lam_gd, _, _ = _uv_gd(split, width, eta, steps, p is None)
    F, lam, loss = logistic_recurrence(F_gd[0], lam_gd[0], width, eta, steps, p)
    assert F.shape == lam.shape == loss.shape == (steps + 1,) and F.dtype == np.float64
    np.testing.assert_allclose(F, F_gd, rtol=1e-9, atol=1e-9 * np.abs(F_gd).max())
    np.testing.assert_allclose(lam, lam_gd, rtol=1e-9)
    np.testing.assert_allclose(loss, [degenerate_loss(f, p) for f in F_gd], rtol=1e-9)
    if p is None:  # separable: loss falls monotonically, no catapult
        assert np.all(np.diff(loss) < 0) and F[-1] > F[0]
    elif eta_rel < 1:  # below threshold: monotone, λ nearly constant
        assert np.all(np.diff(loss) <= 1e-15) and abs(lam[-1] / lam[0] - 1) < 0.1
        assert F[-1] == pytest.approx(nonseparable_minimizer(p), abs=1e-6)
    else:  # catapult: loss rises, λ falls until η p(1−p) λ < 2, then F → F*
        assert loss.max() > loss[0] and lam[-1] < 0.9 * lam[0]
        assert eta * p * (1 - p) * lam[-1] < 2
        assert F[-1] == pytest.approx(nonseparable_minimizer(p), abs=1e-3)


def test_minimizer_curvature_and_threshold():
    for p in (0.2, 0.5, 0.8):
        Fs = nonseparable_minimizer(p)
        assert Fs == pytest.approx(math.log(p / (1 - p)), rel=1e-14, abs=1e-15)
        assert abs(degenerate_grad(Fs, p)) < 1e-15
        h = 1e-4
        curv = (degenerate_loss(Fs + h, p) - 2 * degenerate_loss(Fs, p) + degenerate_loss(Fs - h, p)) / h**2
        assert curv == pytest.approx(p * (1 - p), rel=1e-6)
        g_fd = (degenerate_loss(0.3 + h, p) - degenerate_loss(0.3 - h, p)) / (2 * h)
        assert degenerate_grad(0.3, p) == pytest.approx(g_fd, rel=1e-7)
    assert degenerate_grad(2.0) == pytest.approx(-1 / (1 + math.exp(2.0)), rel=1e-14)
    assert catapult_threshold(0.5, 2.0) == pytest.approx(4.0)
    assert nonseparable_minimizer(0.5) == 0.0


def test_deep_gd_converges_to_the_nonseparable_minimizer():
    p = 0.7
    split = degenerate_nonseparable(20, 4, p, seed=2, dtype=torch.float64)
    x, y = split.train.x, split.train.y
    torch.manual_seed(0)
    net = DeepLinear(4, 16, depth=3).double()
    eta = 0.5 * catapult_threshold(p, ntk_top_eigenvalue(net, x))
    for _ in range(300):
        loss = torch.logaddexp(torch.zeros(()), -y * net(x)).mean()
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for w, gw in zip(net.parameters(), grads):
                w -= eta * gw
    with torch.no_grad():
        assert float(net(x[:1])[0]) == pytest.approx(nonseparable_minimizer(p), abs=1e-6)


def test_recurrence_errors():
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"p \(the fraction of \+1 labels\) must lie in \(0, 1\)"):
            nonseparable_minimizer(bad)
        with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
            logistic_recurrence(0.0, 1.0, 8, 0.1, 3, bad)
    with pytest.raises(ValueError, match=r"lam0 must be a positive finite number"):
        catapult_threshold(0.5, 0.0)
    with pytest.raises(ValueError, match=r"n \(the width\) must be a positive integer, got 0"):
        logistic_recurrence(0.0, 1.0, 0, 0.1, 3, None)
    with pytest.raises(ValueError, match=r"steps must be a non-negative integer, got -1"):
        logistic_recurrence(0.0, 1.0, 8, 0.1, -1, None)
    with pytest.raises(ValueError, match=r"eta must be non-negative"):
        logistic_recurrence(0.0, 1.0, 8, -0.1, 3, 0.5)
    F, lam, loss = logistic_recurrence(0.3, 1.0, 8, 0.1, 0, 0.5)
    assert F.tolist() == [0.3] and lam.tolist() == [1.0]
    assert loss[0] == pytest.approx(degenerate_loss(0.3, 0.5))


# ------------------------------------------------------------------------------ data sets


def _check_binary(ds, n, d):
    assert ds.x.shape == (n, d) and ds.y.shape == (n,) and ds.task == "binary"
    assert ds.group_names == ("all",) and bool((ds.group == 0).all())
    assert ds.y.dtype == ds.x.dtype and set(ds.y.tolist()) <= {-1.0, 1.0}


def test_degenerate_separable():
    sp = degenerate_separable(30, 7, seed=4)
    _check_binary(sp.train, 30, 7)
    _check_binary(sp.test, 100, 7)
    xhat = sp.train.x[0] * sp.train.y[0]
    assert float(xhat.norm()) == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(sp.train.x, sp.train.y[:, None] * xhat)
    torch.testing.assert_close(sp.test.x, sp.test.y[:, None] * xhat)
    assert separable_direction_margin(sp.train.x, sp.train.y, xhat) == pytest.approx(1.0, abs=1e-6)
    assert is_linearly_separable(sp.train.x, sp.train.y)
    again = degenerate_separable(30, 7, seed=4)
    assert torch.equal(again.train.x, sp.train.x) and torch.equal(again.test.y, sp.test.y)
    assert not torch.equal(degenerate_separable(30, 7, seed=5).train.x, sp.train.x)


@pytest.mark.parametrize("p", [0.5, 0.8, 0.33])
def test_degenerate_nonseparable(p):
    sp = degenerate_nonseparable(30, 5, p, seed=1, n_test=12)
    _check_binary(sp.train, 30, 5)
    _check_binary(sp.test, 12, 5)
    assert int((sp.train.y == 1).sum()) == round(p * 30) and int((sp.test.y == 1).sum()) == round(p * 12)
    assert bool((sp.train.x == sp.train.x[0]).all()) and torch.equal(sp.test.x[0], sp.train.x[0])
    assert not is_linearly_separable(sp.train.x, sp.train.y, lp=False)  # exact: same input, both labels
    assert not is_linearly_separable(sp.train.x, sp.train.y)
    assert torch.equal(degenerate_nonseparable(30, 5, p, seed=1, n_test=12).train.y, sp.train.y)


def test_gaussian_data_margin_flips_and_determinism():
    sp = gaussian_data(300, 10, seed=0, margin=0.2)
    _check_binary(sp.train, 300, 10)
    _check_binary(sp.test, 1000, 10)
    w = gaussian_direction(10, 0)
    assert float(w.norm()) == pytest.approx(1.0)
    assert separable_direction_margin(sp.train.x, sp.train.y, w) >= 0.2 - 1e-6
    assert separable_direction_margin(sp.test.x, sp.test.y, w) >= 0.2 - 1e-6
    assert is_linearly_separable(sp.train.x, sp.train.y, lp=False)  # found by the perceptron
    assert abs(float(sp.train.y.mean())) < 0.2  # both labels, roughly balanced
    noisy = gaussian_data(2000, 10, seed=0, margin=0.2, flip=0.1)
    clean_labels = torch.where(noisy.train.x.double() @ w >= 0, 1.0, -1.0)
    rate = float((clean_labels != noisy.train.y.double()).double().mean())
    assert abs(rate - 0.1) < 0.03
    assert separable_direction_margin(noisy.test.x, noisy.test.y, w) >= 0.2 - 1e-6  # test labels clean
    small = gaussian_data(200, 2, seed=1, flip=0.2)
    assert not is_linearly_separable(small.train.x, small.train.y)
    a, b = gaussian_data(50, 3, seed=7, flip=0.2), gaussian_data(50, 3, seed=7, flip=0.2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(gaussian_data(50, 3, seed=8).train.x, a.train.x)
    assert gaussian_data(5, 3, seed=0, dtype=torch.float64).train.x.dtype == torch.float64


def test_separability_check_on_small_cases():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    assert not is_linearly_separable(x, torch.tensor([1.0, 1.0, 1.0]))  # 0 is in their convex hull
    assert is_linearly_separable(x, torch.tensor([1.0, 1.0, -1.0]))
    assert not is_linearly_separable(torch.zeros(2, 3), torch.tensor([1.0, -1.0]))
    assert not is_linearly_separable(torch.tensor([[1.0], [-1.0]]), torch.tensor([1.0, 1.0]))
    margin = separable_direction_margin(x, torch.tensor([1.0, 1.0, -1.0]), torch.tensor([2.0, 2.0]))
    assert margin == pytest.approx(1 / math.sqrt(2))
    with pytest.raises(ValueError, match="labels must be ±1"):
        is_linearly_separable(x, torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="w must be nonzero"):
        separable_direction_margin(x, torch.ones(3), torch.zeros(2))


def test_data_errors():
    with pytest.raises(ValueError, match=r"p \(the fraction of \+1 labels\) must lie in \(0, 1\), got 1.0"):
        degenerate_nonseparable(10, 3, 1.0, 0)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\), got 0"):
        degenerate_nonseparable(10, 3, 0, 0)
    with pytest.raises(ValueError, match=r"need both labels present"):
        degenerate_nonseparable(10, 3, 0.01, 0)
    with pytest.raises(ValueError, match=r"flip \(the label-noise rate\) must lie in \[0, 0.5\), got 0.5"):
        gaussian_data(10, 3, 0, flip=0.5)
    with pytest.raises(ValueError, match=r"got -0.1"):
        gaussian_data(10, 3, 0, flip=-0.1)
    with pytest.raises(ValueError, match=r"margin must be a non-negative finite number"):
        gaussian_data(10, 3, 0, margin=-1.0)
    for make in (lambda: degenerate_separable(0, 3, 0), lambda: degenerate_nonseparable(-2, 3, 0.5, 0),
                 lambda: gaussian_data(0, 3, 0)):
        with pytest.raises(ValueError, match=r"n must be a positive integer"):
            make()
    with pytest.raises(ValueError, match=r"d must be a positive integer, got 0"):
        gaussian_data(5, 0, 0)


def test_cifar_two_class(cifar_root):
    from lrlab.data import cifar10_vectors

    sp = cifar_two_class((3, 5), n_per_class=4, test_per_class=2, seed=0, data_dir=cifar_root)
    d = 3 * 8 * 8  # pool 4: 32×32 → 8×8
    _check_binary(sp.train, 8, d)
    _check_binary(sp.test, 4, d)
    assert int((sp.train.y == 1).sum()) == 4 and int((sp.test.y == 1).sum()) == 2
    ref = cifar10_vectors(4, 2, 0, pool=4, data_dir=cifar_root)
    keep = (ref.train.y == 3) | (ref.train.y == 5)
    torch.testing.assert_close(sp.train.x, ref.train.x[keep], rtol=0, atol=0)
    torch.testing.assert_close(sp.train.y, torch.where(ref.train.y[keep] == 3, 1.0, -1.0))
    with pytest.raises(ValueError, match="two different classes"):
        cifar_two_class((1, 1), 4, 2, 0, data_dir=cifar_root)
    with pytest.raises(ValueError, match=r"classes must lie in \[0, 10\)"):
        cifar_two_class((0, 10), 4, 2, 0, data_dir=cifar_root)


# ------------------------------------------------------------------------------ population training


def test_population_of_deep_linear_nets_trains_with_logistic_loss():
    from lrlab.config import TrainConfig
    from lrlab.train import Constant, grid, train_population

    split = degenerate_nonseparable(20, 4, 0.7, seed=0)
    model = FromModule(lambda: DeepLinear(4, 16, depth=3))
    members = grid({"small": Constant(0.1)}, [0, 1], data_per_seed=False)
    cfg = TrainConfig(loss="logistic", steps=30, eval_every=10)
    res = train_population(model, members, split.train, split.test, cfg)
    loss = res.curve("train.loss")
    assert list(loss.index) == [0, 10, 20, 30] and loss.shape[1] == 2
    assert (np.diff(loss.to_numpy(), axis=0) <= 1e-7).all()
    assert (loss.iloc[-1] < loss.iloc[0] - 1e-3).all()
    floor = degenerate_loss(nonseparable_minimizer(0.7), 0.7)
    assert (loss.iloc[-1] >= floor - 1e-6).all()  # cannot beat the best constant output
