"""Hessian probes: parity with dense autograd Hessians, Lanczos on known spectra, populations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lrlab.models import FromModule, TwoLayerReLU
from lrlab.probes import (
    hessian_trace,
    hutchinson_trace,
    hvp,
    lanczos,
    loss_fn,
    population_top_eigs,
    power_iteration,
    top_hessian_eigs,
)
from lrlab.probes.curvature import flatten, unflatten

D = torch.float64
# torch's first forward-mode AD call loads jit-scripted decompositions (a torch-internal warning)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))  # 51 parameters


def _conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(),
                         nn.Linear(27, 1))  # 91 parameters


def _mlp_case(seed: int = 0):
    torch.manual_seed(seed)
    m = _mlp().to(D)
    x = torch.randn(20, 4, dtype=D)
    y = torch.randint(0, 3, (20,))
    return m, x, y, "cross_entropy"


def _conv_case(seed: int = 0):
    torch.manual_seed(seed)
    m = _conv().to(D)
    x = torch.randn(12, 2, 5, 5, dtype=D)
    m.train()
    with torch.no_grad():  # non-trivial running statistics, so eval and train modes differ
        for _ in range(3):
            m(x + 0.5)
    m.eval()
    y = torch.randint(0, 2, (12,)).to(D) * 2 - 1
    return m, x, y, "logistic"


def _dense(m: nn.Module, x, y, loss: str, bn_mode: str):
    f = loss_fn(m, loss, bn_mode)
    params = {n: p.detach() for n, p in m.named_parameters()}
    names = list(params)
    H = torch.autograd.functional.hessian(
        lambda flat: f(unflatten(flat, params, names), x, y), flatten(params, names))
    return H, params, names


CASES = [(_mlp_case, "eval"), (_conv_case, "eval"), (_conv_case, "train")]
IDS = ["mlp", "conv-bn-eval", "conv-bn-train"]


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("case,bn_mode", CASES, ids=IDS)
def test_hvp_eigs_trace_match_dense_hessian(case, bn_mode):
    m, x, y, loss = case()
    buffers = {n: b.clone() for n, b in m.named_buffers()}
    was_training = m.training
    H, params, names = _dense(m, x, y, loss, bn_mode)
    assert torch.allclose(H, H.T, atol=1e-12)
    f = loss_fn(m, loss, bn_mode)
    v = torch.randn(H.shape[0], dtype=D)
    hv = flatten(hvp(f, params, x, y, unflatten(v, params, names)), names)
    assert _rel(hv, H @ v) < 1e-10
    exact = torch.linalg.eigvalsh(H)
    top = top_hessian_eigs(m, x, y, loss, k=3, bn_mode=bn_mode)
    assert top.values.shape == (3,) and top.vectors.shape == (H.shape[0], 3)
    assert _rel(top.values, exact.flip(0)[:3]) < 1e-6
    assert (H @ top.vectors - top.vectors * top.values).norm(dim=0).max() < 1e-5 * exact.abs().max()
    pw = top_hessian_eigs(m, x, y, loss, k=1, method="power", bn_mode=bn_mode, tol=1e-12)
    biggest = exact[exact.abs().argmax()]
    assert abs(float(pw.values[0]) - float(biggest)) < 1e-6 * abs(float(biggest))
    est, se = hessian_trace(m, x, y, loss, samples=200, bn_mode=bn_mode)
    assert abs(est - float(H.trace())) < 3 * se
    # probes never touch the module
    assert m.training == was_training
    for n, b in m.named_buffers():
        assert torch.equal(b, buffers[n]), n


def test_bn_modes_differ():
    m, x, y, loss = _conv_case()
    He, _, _ = _dense(m, x, y, loss, "eval")
    Ht, _, _ = _dense(m, x, y, loss, "train")
    assert _rel(He, Ht) > 1e-3


@pytest.mark.parametrize("case,bn_mode", CASES[:2], ids=IDS[:2])
def test_chunked_hvp_equals_unchunked(case, bn_mode):
    m, x, y, loss = case()
    f = loss_fn(m, loss, bn_mode)
    params = {n: p.detach() for n, p in m.named_parameters()}
    v = {n: torch.randn_like(p) for n, p in params.items()}
    full = hvp(f, params, x, y, v)
    for c in (1, 7, 100):
        part = hvp(f, params, x, y, v, chunk_size=c)
        for n in full:
            assert torch.allclose(part[n], full[n], rtol=1e-10, atol=1e-13), (c, n)


def test_hutchinson_many_samples_and_diagonal():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(30, 30, generator=g, dtype=D)
    A = A + A.T
    est, se = hutchinson_trace(lambda v: A @ v, 30, samples=3000, dtype=D)
    assert se > 0 and abs(est - float(A.trace())) < 3 * se
    d = torch.randn(40, generator=g, dtype=D)
    est, se = hutchinson_trace(lambda v: d * v, 40, samples=5, dtype=D)
    assert est == pytest.approx(float(d.sum()), rel=1e-12) and se == pytest.approx(0.0, abs=1e-12)


def _sym(evals: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(evals), len(evals), generator=g, dtype=D))
    return Q @ torch.diag(evals) @ Q.T


SPECTRA = {
    "random": None,
    "clustered": torch.cat([10 - 1e-3 * torch.arange(5, dtype=D), torch.linspace(-1, 1, 75, dtype=D)]),
    "negative": torch.cat([torch.tensor([-50.0, -40.0], dtype=D), torch.linspace(-3, 2, 78, dtype=D)]),
    "repeated": torch.cat([torch.full((3,), 5.0, dtype=D), torch.linspace(0, 1, 77, dtype=D)]),
}


@pytest.mark.parametrize("name", list(SPECTRA))
def test_lanczos_matches_eigvalsh(name):
    if SPECTRA[name] is None:
        g = torch.Generator().manual_seed(3)
        A = torch.randn(80, 80, generator=g, dtype=D)
        A = A + A.T
    else:
        A = _sym(SPECTRA[name], 4)
    k = 5
    vals, vecs = lanczos(lambda v: A @ v, 80, k=k, tol=1e-10, dtype=D)
    exact = torch.linalg.eigvalsh(A).flip(0)[:k]
    assert torch.allclose(vals, exact, rtol=1e-8, atol=1e-10), (vals, exact)
    assert torch.all(vals[:-1] >= vals[1:])
    resid = (A @ vecs - vecs * vals).norm(dim=0)
    assert resid.max() < 1e-6 * exact.abs().max()
    assert torch.allclose(vecs.T @ vecs, torch.eye(k, dtype=D), atol=1e-8)


def test_lanczos_change_rule_stops_earlier_and_stays_accurate():
    """stop="change" (PyHessian's rule) needs fewer products than the residual rule at equal tol."""
    A = _sym(torch.cat([torch.tensor([10.0, 6.0], dtype=D), torch.linspace(-1, 4, 200, dtype=D)]), 7)
    counts = {}
    for stop in ("residual", "change"):
        n = 0

        def mv(v):
            nonlocal n
            n += 1
            return A @ v

        vals, _ = lanczos(mv, 202, k=2, tol=1e-3, dtype=D, stop=stop)
        counts[stop] = n
        assert torch.allclose(vals, torch.tensor([10.0, 6.0], dtype=D), rtol=1e-2), (stop, vals)
    assert counts["change"] < counts["residual"]
    with pytest.raises(ValueError, match="stop must be one of"):
        lanczos(lambda v: A @ v, 202, stop="never")


def test_lanczos_reports_every_product_to_on_iter():
    """on_iter (progress) sees 1, 2, … up to the number of operator products, against the cap."""
    A = _sym(torch.cat([torch.tensor([10.0, 6.0], dtype=D), torch.linspace(-1, 4, 200, dtype=D)]), 7)
    n, seen = 0, []

    def mv(v):
        nonlocal n
        n += 1
        return A @ v

    lanczos(mv, 202, k=2, tol=1e-3, iters=150, dtype=D, on_iter=lambda j, total: seen.append((j, total)))
    assert seen == [(j, 150) for j in range(1, n + 1)]
    model = TwoLayerReLU(4, 3)
    params = model.init([0, 1])
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randn(10)
    steps: list[int] = []
    population_top_eigs(model, params, x, y, "squared", 1, k=1, iters=9, on_iter=lambda j, total: steps.append(j))
    assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= 9


def test_power_iteration_largest_magnitude():
    A = _sym(torch.cat([torch.tensor([-7.0, 3.0], dtype=D), torch.linspace(-1, 1, 20, dtype=D)]), 5)
    lam, v, iters = power_iteration(lambda u: A @ u, 22, tol=1e-13, dtype=D)
    assert lam == pytest.approx(-7.0, rel=1e-9) and iters > 1
    assert (A @ v - lam * v).norm() < 1e-5


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 1))


def _double(params):
    return {k: v.to(D) if v.is_floating_point() else v.clone() for k, v in params.items()}


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("shared", [True, False])
def test_population_matches_per_member_fromodule(bn_mode, shared):
    model = FromModule(_bn_net)
    params = _double(model.init([0, 1, 2]))
    with torch.no_grad():  # non-trivial running statistics
        params["1.running_mean"].normal_()
        params["1.running_var"].uniform_(0.5, 2.0)
    g = torch.Generator().manual_seed(0)
    K, B = 3, 16
    x = torch.randn(B, 3, generator=g, dtype=D) if shared else torch.randn(K, B, 3, generator=g, dtype=D)
    y = (torch.randint(0, 2, x.shape[:-1], generator=g) * 2 - 1).to(D)
    before = {k: v.clone() for k, v in params.items()}
    vals = population_top_eigs(model, params, x, y, "logistic", 2, k=3, bn_mode=bn_mode)
    assert vals.shape == (K, 3)
    for k, v in params.items():
        assert torch.equal(v, before[k]), k
    for k in range(K):
        m = model.to_module(params, k).to(D)
        xk, yk = (x, y) if shared else (x[k], y[k])
        ref = top_hessian_eigs(m, xk, yk, "logistic", k=3, bn_mode=bn_mode).values
        assert _rel(vals[k], ref) < 1e-6, (k, vals[k], ref)


@pytest.mark.parametrize("train_second_layer", [True, False])
def test_population_matches_per_member_two_layer(train_second_layer):
    model = TwoLayerReLU(4, 6, out_dim=3, output_bias=True, train_second_layer=train_second_layer)
    params = _double(model.init([5, 6]))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(25, 4, generator=g, dtype=D)
    y = torch.randint(0, 3, (25,), generator=g)
    vals = population_top_eigs(model, params, x, y, "squared", 3, k=2)
    for k in range(2):
        m = model.to_module(params, k).to(D)
        if not train_second_layer:
            m[3].weight.requires_grad_(False)
        ref = top_hessian_eigs(m, x, y, "squared", k=2).values
        assert _rel(vals[k], ref) < 1e-6, (k, vals[k], ref)


def test_errors():
    m, x, y, loss = _mlp_case()
    with pytest.raises(ValueError, match="bn_mode"):
        loss_fn(m, loss, "batch")
    with pytest.raises(ValueError, match="bn_mode"):
        top_hessian_eigs(m, x, y, loss, bn_mode="Train")
    with pytest.raises(ValueError, match="k=52 is larger"):
        top_hessian_eigs(m, x, y, loss, k=52)
    with pytest.raises(ValueError, match="k=3 is larger"):
        lanczos(lambda v: v, 2, k=3)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        top_hessian_eigs(m, x, y, "hinge")
    with pytest.raises(ValueError, match="unknown loss"):
        hessian_trace(m, x, y, "hinge")
    with pytest.raises(ValueError, match="method"):
        top_hessian_eigs(m, x, y, loss, method="arnoldi")
    model = TwoLayerReLU(4, 3)
    params = model.init([0])
    with pytest.raises(ValueError, match="unknown loss"):
        population_top_eigs(model, params, x.float(), y.float(), "hinge", 2)
    with pytest.raises(ValueError, match="larger than"):
        population_top_eigs(model, params, x.float(), y.float(), "logistic", 2, k=100)


def test_batched_lanczos_sets_aside_a_member_whose_products_blow_up():
    from lrlab.probes.curvature import _lanczos_batched

    g = torch.Generator().manual_seed(0)
    A = torch.randn(3, 12, 12, generator=g, dtype=torch.float64)
    A = A @ A.transpose(1, 2)

    def matvec(v):
        out = torch.einsum("kij,kj->ki", A, v)
        out[1] = torch.inf  # member 1 has diverged
        return out

    vals, vecs, _ = _lanczos_batched(matvec, 3, 12, 2, 12, 1e-10, torch.Generator().manual_seed(1),
                                     torch.float64, "cpu")
    assert torch.isnan(vals[1]).all() and torch.isnan(vecs[1]).all()
    for k in (0, 2):
        torch.testing.assert_close(vals[k], torch.linalg.eigvalsh(A[k]).flip(0)[:2], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("shared", [True, False])
def test_population_hvp_in_slices_equals_the_whole_batch(shared):
    """chunk_size: the HVP of a per-example mean loss, added up over slices of 7 examples (the
    last one short), gives the eigenvalues of the whole batch (eval-mode BatchNorm included)."""
    model = FromModule(_bn_net)
    params = _double(model.init([0, 1]))
    g = torch.Generator().manual_seed(3)
    K, B = 2, 30
    x = torch.randn(B, 3, generator=g, dtype=D) if shared else torch.randn(K, B, 3, generator=g, dtype=D)
    y = (torch.randint(0, 2, x.shape[:-1], generator=g) * 2 - 1).to(D)
    whole = population_top_eigs(model, params, x, y, "logistic", 2, k=2)
    sliced = population_top_eigs(model, params, x, y, "logistic", 2, k=2, chunk_size=7)
    assert _rel(sliced, whole) < 1e-9
    with pytest.raises(ValueError, match="chunk_size must be at least 1, got 0"):
        population_top_eigs(model, params, x, y, "logistic", 2, k=2, chunk_size=0)
