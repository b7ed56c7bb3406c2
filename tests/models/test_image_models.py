"""Image models for the patch experiment: WideResNet, SmallCNN and ActivationNoise."""

from __future__ import annotations

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from lrlab.models.cnn import SmallCNN
from lrlab.models.noise import ActivationNoise, set_activation_noise
from lrlab.models.wide_resnet import WideResNet


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------ shapes and counts


def test_output_shapes():
    torch.manual_seed(0)
    assert WideResNet(10, 1, num_classes=7)(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert WideResNet(10, 1, dropout=0.3, activation_noise=True)(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    for downsample in ("stride", "maxpool"):
        for width in (8, 16):
            m = SmallCNN(num_classes=5, width=width, downsample=downsample)
            assert m(torch.randn(3, 3, 32, 32)).shape == (3, 5)
    with pytest.raises(ValueError, match=r"images \[B, 3, H, W\], got shape \(2, 1, 32, 32\)"):
        SmallCNN()(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"images \[B, 3, H, W\]"):
        WideResNet(10, 1)(torch.randn(3, 32, 32))


def test_wrn_16_10_parameter_count():
    """The count the reference code reports for WRN-16-10 on 10 classes."""
    assert _n_params(WideResNet(16, 10, num_classes=10)) == 17_116_634
    # Noise adds buffers only, and dropout nothing.
    assert _n_params(WideResNet(10, 2, activation_noise=True, dropout=0.2)) == _n_params(WideResNet(10, 2))


def test_wrn_layout():
    m = WideResNet(22, 2)
    assert [len(s) for s in m.stages] == [3, 3, 3]
    shortcuts = [b.shortcut is not None for s in m.stages for b in s]
    assert shortcuts == [True, False, False] * 3
    # Width 1: the first stage keeps 16 channels at stride 1, so its first block is an identity skip.
    assert WideResNet(10, 1).stages[0][0].shortcut is None
    assert all(c.bias is None for c in m.modules() if isinstance(c, nn.Conv2d))


@pytest.mark.parametrize("make, match", [
    (lambda: WideResNet(depth=15), "depth must be 6n\\+4 .* got depth=15"),
    (lambda: WideResNet(depth=4), "depth must be an integer >= 10, got 4"),
    (lambda: WideResNet(depth=16.0), "depth must be an integer >= 10, got 16.0"),
    (lambda: WideResNet(width=0), "width must be an integer >= 1, got 0"),
    (lambda: WideResNet(num_classes=0), "num_classes must be an integer >= 1, got 0"),
    (lambda: WideResNet(dropout=1.0), r"dropout must be a float in \[0, 1\), got 1.0"),
    (lambda: WideResNet(dropout=-0.1), r"dropout must be a float in \[0, 1\), got -0.1"),
    (lambda: WideResNet(10, 1, noise_site="after_relu"), "noise_site must be one of .*'after_relu'"),
    (lambda: SmallCNN(width=0), "width must be an integer >= 1, got 0"),
    (lambda: SmallCNN(num_classes=True), "num_classes must be an integer >= 1, got True"),
    (lambda: SmallCNN(downsample="avg"), "downsample must be one of .*'avg'"),
    (lambda: ActivationNoise(-1.0), "sigma must be a non-negative float, got -1.0"),
])
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------------------------------- noise


def test_activation_noise_eval_is_identity_and_zero_sigma_is_identity():
    x = torch.randn(4, 3, 5, 6)
    noise = ActivationNoise(0.7).eval()
    assert noise(x) is x
    noise = ActivationNoise().train()
    assert torch.equal(noise(x), x)


def test_activation_noise_is_shared_over_batch_and_channels_with_std_sigma():
    torch.manual_seed(0)
    sigma, x = 0.5, torch.randn(4, 3, 8, 8)
    noise = ActivationNoise(sigma).train()
    draws = []
    for _ in range(20):
        added = noise(x) - x
        assert torch.allclose(added, added[:1, :1].expand_as(added), atol=1e-6)
        draws.append(added[0, 0])
    draws = torch.stack(draws)  # 20 draws of 8×8
    assert not torch.allclose(draws[0], draws[1])  # a fresh draw per call
    assert abs(draws.mean().item()) < 0.05
    assert draws.std().item() == pytest.approx(sigma, rel=0.1)
    assert set_activation_noise(nn.Sequential(noise, ActivationNoise()), 0.25) == 2
    assert noise.sigma.item() == 0.25


def _call_order(model: nn.Module, x: torch.Tensor) -> list[type]:
    """Types of the leaf modules in the order a forward pass calls them."""
    order: list[type] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(type(mod)))
             for m in model.modules() if not list(m.children())]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return order


@pytest.mark.parametrize("noise_site", ["before_bn", "after_bn"])
@pytest.mark.parametrize("make", [lambda **kw: WideResNet(10, 1, dropout=0.1, **kw),
                                  lambda **kw: SmallCNN(width=8, **kw),
                                  lambda **kw: SmallCNN(width=8, downsample="maxpool", **kw)])
def test_noise_at_every_bn_relu(make, noise_site):
    model = make(activation_noise=True, noise_site=noise_site).train()
    order = _call_order(model, torch.randn(2, 3, 16, 16))
    without_noise = [t for t in order if t is not ActivationNoise]  # what the network does without noise
    bn_relu = [i for i, t in enumerate(order) if t is nn.BatchNorm2d
               and [u for u in order[i + 1:] if u is not ActivationNoise][:1] == [nn.ReLU]]
    pairs = itertools.pairwise(without_noise)
    assert len(bn_relu) == sum(a is nn.BatchNorm2d and b is nn.ReLU for a, b in pairs)
    n_noise = sum(isinstance(m, ActivationNoise) for m in model.modules())
    assert n_noise == len(bn_relu) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    expected = ([ActivationNoise, nn.BatchNorm2d, nn.ReLU] if noise_site == "before_bn"
                else [nn.BatchNorm2d, ActivationNoise, nn.ReLU])
    for i in bn_relu:
        start = i - 1 if noise_site == "before_bn" else i
        assert order[start:start + 3] == expected
    assert sum(t is ActivationNoise for t in order) == n_noise  # each called exactly once
    assert not any(isinstance(m, ActivationNoise) for m in make().modules())


# ----------------------------------------------------------------------------- init and seeding


def test_init_statistics():
    torch.manual_seed(0)
    m = WideResNet(10, 4)
    wide = m.stages[2][0].conv2  # 256 -> 256, 3×3: 590k weights
    assert wide.weight.std().item() == pytest.approx(math.sqrt(2 / (3 * 3 * 256)), rel=0.02)
    assert abs(wide.weight.mean().item()) < 1e-3
    shortcut = m.stages[2][0].shortcut  # 1×1, fan-out n = 256
    assert shortcut.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.03)
    cnn_conv = [c for c in SmallCNN(width=64).modules() if isinstance(c, nn.Conv2d)][-1]  # 128 -> 256
    assert cnn_conv.weight.std().item() == pytest.approx(math.sqrt(2 / (3 * 3 * 256)), rel=0.02)
    for model in (m, SmallCNN()):
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                assert torch.equal(mod.weight, torch.ones_like(mod.weight))
                assert torch.equal(mod.bias, torch.zeros_like(mod.bias))
            if isinstance(mod, nn.Linear):
                assert torch.equal(mod.bias, torch.zeros_like(mod.bias))
                bound = 1 / math.sqrt(mod.in_features)  # PyTorch's default weight init, as the reference
                assert mod.weight.abs().max().item() <= bound


def test_same_seed_same_parameters():
    for make in (lambda: WideResNet(10, 1, activation_noise=True), lambda: SmallCNN(width=8)):
        states = []
        for seed in (3, 3, 4):
            torch.manual_seed(seed)
            states.append(make().state_dict())
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
        assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


# ------------------------------------------------------------------------- population via vmap


def _stack(modules: list[nn.Module]) -> tuple[dict, dict]:
    """Members' parameters (as one leaf tensor each, requiring grad) and buffers, stacked on dim 0."""
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in modules]).requires_grad_()
              for n, _ in modules[0].named_parameters()}
    buffers = {n: torch.stack([dict(m.named_buffers())[n].clone() for m in modules])
               for n, _ in modules[0].named_buffers()}
    return params, buffers


def _population_vs_loop(make, K: int, x: torch.Tensor, y: torch.Tensor, sigma: torch.Tensor | None = None):
    """One train-mode step and one eval-mode pass, stacked under vmap and member by member."""
    modules = []
    for k in range(K):
        torch.manual_seed(100 + k)
        modules.append(make())
    base = copy.deepcopy(modules[0]).to("meta")
    params, buffers = _stack(modules)
    if sigma is not None:
        for name in buffers:
            if name.endswith("noise.sigma"):
                buffers[name] = sigma.clone()
    pop = vmap(lambda p, b, xk: functional_call(base, (p, b), (xk,)), randomness="different")

    base.train()
    out = pop(params, buffers, x)
    loss = sum(F.cross_entropy(out[k], y[k]) for k in range(K))
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    base.eval()
    with torch.no_grad():
        out_eval = pop(params, buffers, x)

    loop_out, loop_grads, loop_eval = [], [], []
    for k, m in enumerate(modules):
        m.train()
        o = m(x[k])
        F.cross_entropy(o, y[k]).backward()
        loop_out.append(o.detach())
        loop_grads.append({n: p.grad for n, p in m.named_parameters()})
        m.eval()
        with torch.no_grad():
            loop_eval.append(m(x[k]))
    return (out.detach(), grads, buffers, out_eval), (modules, loop_out, loop_grads, loop_eval)


@pytest.mark.parametrize("downsample", ["stride", "maxpool"])
def test_vmap_matches_loop(downsample):
    """Outputs, gradients and BN running statistics of a stacked population equal K separate modules."""
    K = 3
    torch.manual_seed(0)
    x, y = torch.randn(K, 4, 3, 16, 16), torch.randint(0, 10, (K, 4))
    (out, grads, buffers, out_eval), (modules, loop_out, loop_grads, loop_eval) = _population_vs_loop(
        lambda: SmallCNN(width=8, activation_noise=True, downsample=downsample), K, x, y)
    for k, m in enumerate(modules):
        torch.testing.assert_close(out[k], loop_out[k], atol=1e-5, rtol=1e-5)
        for n in grads:
            torch.testing.assert_close(grads[n][k], loop_grads[k][n], atol=1e-5, rtol=1e-5)
        for n, b in m.named_buffers():  # running_mean/var updated in place, num_batches_tracked 1
            torch.testing.assert_close(buffers[n][k], b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out_eval[k], loop_eval[k], atol=1e-5, rtol=1e-5)
    rm = "features.1.bn.running_mean"
    assert not torch.equal(buffers[rm][0], torch.zeros(8)) and not torch.equal(buffers[rm][0], buffers[rm][1])
    assert buffers["features.1.bn.num_batches_tracked"].tolist() == [1] * K


def test_vmap_per_member_sigma_and_wrn():
    """A batched σ buffer reaches each member: σ = 0 members match the loop, the σ > 0 one does not."""
    K = 3
    torch.manual_seed(1)
    x, y = torch.randn(K, 2, 3, 16, 16), torch.randint(0, 10, (K, 2))
    (out, grads, buffers, out_eval), (_, loop_out, loop_grads, loop_eval) = _population_vs_loop(
        lambda: WideResNet(10, 1, activation_noise=True), K, x, y, sigma=torch.tensor([0.0, 0.5, 0.0]))
    for k in (0, 2):
        torch.testing.assert_close(out[k], loop_out[k], atol=1e-5, rtol=1e-5)
        for n in ("stem.weight", "fc.weight"):
            torch.testing.assert_close(grads[n][k], loop_grads[k][n], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out_eval[k], loop_eval[k], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[1], loop_out[1], atol=1e-3)
    assert not torch.allclose(buffers["head_act.bn.running_mean"][1], torch.zeros(64))
