"""The Li, Wei & Ma (2019) two-pattern mixture (docs/spec.md §1a)."""

from __future__ import annotations

import pytest
import torch

from lrlab.data import li2019_mixture, make_dataset
from lrlab.data.mixture import GROUPS
from tests.helpers import tiny_data_cfg

D = 8


def _cfg(**kw):
    base = dict(d=D, n_train=500, n_test=200, margin=0.1, p_noise=1.0, q_zeta_norm=0.2,
                q_noise=0.0, q_alpha_min=0.5)
    base.update(kw)
    return tiny_data_cfg(**base)


def _hidden_w(seed: int, d: int) -> torch.Tensor:
    """P's direction, drawn first from the data generator's seeded stream (data/mixture.py)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, generator=g, dtype=torch.float64)
    return w / w.norm()


def _linearly_separable(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Exact test: is there (v, c) with y_i (v·x_i + c) >= 1 for all i? (an LP feasibility problem)"""
    optimize = pytest.importorskip("scipy.optimize")
    import numpy as np

    X = x.double().numpy()
    Y = y.double().numpy()
    A = -Y[:, None] * np.hstack([X, np.ones((len(X), 1))])
    res = optimize.linprog(np.zeros(X.shape[1] + 1), A_ub=A, b_ub=-np.ones(len(X)),
                           bounds=[(None, None)] * (X.shape[1] + 1), method="highs")
    assert res.status in (0, 2), res.message  # 0: feasible, 2: infeasible
    return res.status == 0


@pytest.mark.parametrize("n, sizes", [(500, (100, 100, 300)), (37, (7, 7, 23)), (10, (2, 2, 6))])
def test_group_sizes_are_exactly_20_20_60(n, sizes):
    sp = li2019_mixture(_cfg(n_train=n, n_test=n), 1)
    for ds in (sp.train, sp.test):
        assert ds.group_names == GROUPS == ("P-only", "Q-only", "both")
        counts = tuple(int(ds.group_mask(g).sum()) for g in GROUPS)
        assert counts == sizes


def test_custom_fractions():
    ds = li2019_mixture(_cfg(n_train=100, frac_p_only=0.5, frac_q_only=0.1), 0).train
    assert [int(ds.group_mask(g).sum()) for g in GROUPS] == [50, 10, 40]


def test_shapes_types_and_labels():
    sp = li2019_mixture(_cfg(n_train=120, n_test=60), 0)
    assert sp.train.x.shape == (120, 2 * D) and sp.test.x.shape == (60, 2 * D)
    for ds in (sp.train, sp.test):
        assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.float32
        assert ds.group.dtype == torch.long and ds.task == "binary"
        assert set(ds.y.unique().tolist()) == {-1.0, 1.0}
        assert ds.input_shape == (2 * D,)
        assert torch.isfinite(ds.x).all()
    y = li2019_mixture(_cfg(n_train=4000, n_test=10), 0).train.y
    assert abs(float(y.mean())) < 0.06  # labels uniform on {±1}


def test_deterministic_in_seed():
    a, b, c = (li2019_mixture(_cfg(), s) for s in (3, 3, 4))
    for part in ("train", "test"):
        da, db, dc = getattr(a, part), getattr(b, part), getattr(c, part)
        assert torch.equal(da.x, db.x) and torch.equal(da.y, db.y) and torch.equal(da.group, db.group)
        assert not torch.equal(da.x, dc.x)
    assert not torch.equal(a.train.x[:100], a.test.x[:100])  # train and test are different draws
    assert torch.equal(make_dataset(_cfg(), 3).train.x, a.train.x)


def test_pattern_blocks_are_zero_where_absent():
    ds = li2019_mixture(_cfg(), 0).train
    x1, x2 = ds.x[:, :D], ds.x[:, D:]
    p_only, q_only, both = (ds.group_mask(g) for g in GROUPS)
    assert (x2[p_only] == 0).all() and (x1[q_only] == 0).all()
    assert (x1[p_only].norm(dim=1) > 0).all() and (x2[q_only].norm(dim=1) > 0).all()
    assert (x1[both].norm(dim=1) > 0).all() and (x2[both].norm(dim=1) > 0).all()


@pytest.mark.parametrize("seed", [0, 5])
def test_p_has_margin_gamma_along_w(seed):
    cfg = _cfg(margin=0.3)
    ds = li2019_mixture(cfg, seed).train
    w = _hidden_w(seed, D)
    carries_p = ~ds.group_mask("Q-only")
    x1 = ds.x[carries_p, :D].double()
    y = ds.y[carries_p].double()
    margins = y * (x1 @ w)
    assert torch.allclose(margins, torch.full_like(margins, cfg.margin), atol=1e-5)
    # the rest of x1 is noise orthogonal to w, with per-coordinate scale p_noise
    noise = x1 - margins[:, None] * w[None, :] * y[:, None]
    assert torch.allclose(noise @ w, torch.zeros(len(noise), dtype=torch.float64), atol=1e-5)
    assert noise.pow(2).sum(1).mean().sqrt() == pytest.approx(cfg.p_noise * (D - 1) ** 0.5, rel=0.15)


def test_p_is_linearly_separable():
    ds = li2019_mixture(_cfg(), 0).train
    carries_p = ~ds.group_mask("Q-only")
    assert _linearly_separable(ds.x[carries_p, :D], ds.y[carries_p])


def test_q_is_not_linearly_separable():
    ds = li2019_mixture(_cfg(), 0).train
    q_only = ds.group_mask("Q-only")
    assert not _linearly_separable(ds.x[q_only, D:], ds.y[q_only])
    carries_q = ~ds.group_mask("P-only")
    assert not _linearly_separable(ds.x[carries_q, D:], ds.y[carries_q])


def test_q_geometry_class_plus_one_sits_between_the_minus_one_halves():
    """With q_noise = 0: y=+1 lies on the ray of z; y=-1 at α(z ± ζ), ‖ζ‖ = q_zeta_norm."""
    cfg = _cfg(q_zeta_norm=0.25, q_scale=2.0, n_train=400)
    ds = li2019_mixture(cfg, 2).train
    q = ~ds.group_mask("P-only")
    x2, y = ds.x[q, D:].double(), ds.y[q]
    plus, minus = x2[y > 0], x2[y < 0]
    z = plus[0] / plus[0].norm()
    along = lambda v: v @ z  # noqa: E731
    perp = lambda v: v - along(v)[:, None] * z[None, :]  # noqa: E731
    assert perp(plus).norm(dim=1).max() < 1e-5  # every +1 point is a multiple of z
    alpha_plus, alpha_minus = along(plus) / cfg.q_scale, along(minus) / cfg.q_scale
    for a in (alpha_plus, alpha_minus):
        assert a.min() >= cfg.q_alpha_min - 1e-5 and a.max() <= 1 + 1e-5
    ratio = perp(minus).norm(dim=1) / along(minus)
    assert torch.allclose(ratio, torch.full_like(ratio, cfg.q_zeta_norm), atol=1e-4)
    # both halves of class -1 are present, on opposite sides of the +1 ray
    side = perp(minus) @ perp(minus)[0]
    assert (side > 0).any() and (side < 0).any()


def test_no_linear_rule_fits_q_well():
    """Logistic regression on Q-only x2 stays near the 75% a single half-plane can reach."""
    ds = li2019_mixture(_cfg(n_train=1000, q_noise=0.01), 0).train
    q = ds.group_mask("Q-only")
    x, y = ds.x[q, D:], ds.y[q]
    x = (x - x.mean(0)) / x.std(0)
    lin = torch.nn.Linear(D, 1)
    with torch.no_grad():  # a convex problem: start at zero, independent of the global RNG
        lin.weight.zero_()
        lin.bias.zero_()
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.soft_margin_loss(lin(x).squeeze(-1), y)
        loss.backward()
        return loss

    opt.step(closure)
    acc = float(((lin(x).squeeze(-1) * y) > 0).float().mean())
    assert 0.6 < acc < 0.82


def test_noise_scales():
    ds = li2019_mixture(_cfg(q_noise=0.0, p_noise=0.0), 0).train
    x1 = ds.x[~ds.group_mask("Q-only"), :D]
    assert torch.allclose(x1.norm(dim=1), torch.full((len(x1),), 0.1), atol=1e-6)  # pure margin
