"""The class-signature patch: exact window values, per-use statistics, streams and eval sets."""

from __future__ import annotations

import pytest
import torch

from lrlab.config import Cifar10PatchConfig, PatchConfig
from lrlab.data import ClassPatch, ImageStream, cifar10_split, normalize
from lrlab.data.images import CIFAR10_MEAN, CIFAR10_STD
from lrlab.data.patch import GROUPS

W = slice(12, 19)


def _patch(**kw) -> ClassPatch:
    return ClassPatch.draw(PatchConfig(**kw), 10, (3, 32, 32))


def test_patterns_are_seeded_and_scaled():
    a, b, c = _patch(seed=0), _patch(seed=0), _patch(seed=1)
    torch.testing.assert_close(a.z, b.z)
    torch.testing.assert_close(a.zeta, b.zeta)
    assert not torch.equal(a.z, c.z)
    assert a.z.shape == (3, 7, 7) and a.zeta.shape == (10, 3, 7, 7)
    assert a.zeta.abs().max() <= 0.1
    big = ClassPatch.draw(PatchConfig(size=30, start=0), 10, (3, 32, 32))  # 2,700 draws of z
    assert big.z.std().item() == pytest.approx(1.25, rel=0.06)
    assert big.zeta.min() < -0.09 and big.zeta.max() > 0.09


def test_window_must_fit():
    with pytest.raises(ValueError, match=r"patch window \[30, 37\) does not fit in images of size 32×32"):
        _patch(start=30)


def test_apply_writes_the_exact_patch_and_tags():
    p = _patch()
    n = 400
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    patchable = torch.rand(n, generator=g) < 0.8
    uses = p.draw_uses(n, g)
    x = x0.clone()
    group = p.apply_(x, y, patchable, uses)
    po = uses.patch_only & patchable
    assert torch.equal(group, torch.where(patchable, 1 + po.long(), 0))
    for i in range(n):
        s = float(uses.sign[i])
        if not patchable[i]:
            assert torch.equal(x[i], x0[i])
            continue
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[W, W] = False
        if po[i]:
            want = p.z + s * 1.75 * float(uses.u[i]) * p.zeta[y[i]]
            assert torch.all(x[i][:, outside] == 0)
        else:
            want = p.z + s * p.zeta[y[i]]
            assert torch.equal(x[i][:, outside], x0[i][:, outside])
        torch.testing.assert_close(x[i][:, W, W], want)


def test_use_statistics():
    p = _patch()
    uses = p.draw_uses(40_000, torch.Generator().manual_seed(0))
    assert set(uses.sign.tolist()) == {-1, 1}
    assert uses.sign.float().mean().abs() < 0.02
    assert uses.patch_only.float().mean().item() == pytest.approx(0.2, abs=0.01)
    assert uses.u.min() >= 0 and uses.u.max() < 1
    assert uses.u.mean().item() == pytest.approx(0.5, abs=0.01)


def test_normalize_matches_the_formula():
    x = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    want = (x.float() - torch.tensor(CIFAR10_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR10_STD).view(3, 1, 1)
    torch.testing.assert_close(normalize(x), want)
    with pytest.raises(ValueError, match="channels"):
        normalize(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def _split(root, **patch):
    return cifar10_split(Cifar10PatchConfig(root=str(root), patch=PatchConfig(**patch)))


def test_fixed_patchable_share_and_eval_sets(cifar_root):
    sp = _split(cifar_root, n_patch_only_eval=50)
    tr = sp.train
    assert tr.n == 60 and int(tr.patchable.sum()) == 48  # exactly 80%
    assert set(sp.evals) == {"test", "test_patched", "patch_only"}
    clean, patched, only = sp.evals["test"], sp.evals["test_patched"], sp.evals["patch_only"]
    assert len(clean) == len(patched) == 30 and len(only) == 50
    assert patched.group_names == GROUPS
    assert int((patched.group > 0).sum()) == 24
    torch.testing.assert_close(patched.x[patched.group == 0], clean.x[patched.group == 0])
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[W, W] = False
    assert torch.all(only.x[:, :, outside] == 0)
    assert only.y.min() >= 0 and only.y.max() < 10
    again = _split(cifar_root, n_patch_only_eval=50)  # a pure function of the config
    for name in sp.evals:
        torch.testing.assert_close(sp.evals[name].x, again.evals[name].x)
    assert torch.equal(tr.patchable, again.train.patchable)


def test_stream_draws_fresh_uses_per_step_and_pairs_seeds(cifar_root):
    tr = _split(cifar_root).train
    idx = torch.arange(20).repeat(3, 1)
    x, y, g = tr.batch(idx, [0, 0, 1], step=5)
    assert x.shape == (3, 20, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x[0], x[1]) and torch.equal(g[0], g[1])  # same seed: same draws
    assert not torch.equal(x[0], x[2])
    x2, _, g2 = tr.batch(idx, [0, 0, 1], step=5)
    assert torch.equal(x, x2) and torch.equal(g, g2)  # deterministic in (seed, step)
    x3, _, _ = tr.batch(idx, [0, 0, 1], step=6)
    assert not torch.equal(x[0], x3[0])  # fresh sign / patch-only draw on every use
    unpatchable = ~tr.patchable[:20]
    torch.testing.assert_close(x[0][unpatchable], normalize(tr.x[:20][unpatchable]))
    assert torch.all(g[:, unpatchable] == 0) and torch.all(g[:, ~unpatchable] > 0)


def test_stream_patch_only_share_over_many_uses(cifar_root):
    tr = _split(cifar_root).train
    idx = torch.arange(60).unsqueeze(0)
    tags = torch.cat([tr.batch(idx, [7], step=t)[2][0] for t in range(200)])
    patched = tags[tags > 0]
    assert (patched == 2).float().mean().item() == pytest.approx(0.2, abs=0.02)


def test_stream_validates_shapes():
    with pytest.raises(ValueError, match="uint8"):
        ImageStream(torch.zeros(4, 3, 32, 32), torch.zeros(4, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="both patch and patchable"):
        ImageStream(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 10,
                    patch=_patch())
    tr = ImageStream(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="one seed per row"):
        tr.batch(torch.zeros(2, 2, dtype=torch.long), [0], 0)


def test_subsets_are_class_balanced(cifar_root):
    sp = cifar10_split(Cifar10PatchConfig(root=str(cifar_root), n_per_class=2, n_test_per_class=1))
    assert torch.bincount(sp.train.y, minlength=10).tolist() == [2] * 10
    assert torch.bincount(sp.evals["test"].y, minlength=10).tolist() == [1] * 10
    assert sp.train.patch is None and set(sp.evals) == {"test"}
