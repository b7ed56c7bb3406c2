"""Lu et al.'s feature-noise data: patches, proportions, orthogonality, determinism, errors."""

from __future__ import annotations

import pytest
import torch

from lrlab.config import ConfigError, FeatureNoiseConfig, validate
from lrlab.data import FEATURE_NOISE_GROUPS, feature_noise, make_dataset
from lrlab.data.feature_noise import NOISE, STRONG, WEAK

CFG = FeatureNoiseConfig(d=16, n_train=20, n_test=400, strong_frac=0.3, strong_norm=2.0, weak_norm=0.5,
                         noise_std=0.1)


def test_patches_carry_the_features_the_paper_describes():
    fn = feature_noise(CFG, seed=3)
    tr = fn.train
    assert tr.x.shape == (20, 3, 16) and tr.group_names == FEATURE_NOISE_GROUPS and tr.task == "binary"
    y = tr.y[:, None]
    assert torch.allclose(tr.x[:, WEAK], y * fn.v)  # the weak feature in every point
    strong = tr.group_mask("strong")
    assert int(strong.sum()) == round(0.3 * 20)  # an exact share, not a draw
    assert torch.allclose(tr.x[strong, STRONG], y[strong] * fn.u)
    assert (tr.x[~strong, STRONG] == 0).all()
    assert fn.u.norm() == pytest.approx(2.0) and fn.v.norm() == pytest.approx(0.5)
    assert abs(float(fn.u @ fn.v)) < 1e-6
    # the noise is projected off both features
    xi = torch.cat([tr.x[:, NOISE], fn.test_weak.x[:, NOISE]])
    assert (xi @ fn.u).abs().max() < 1e-5 and (xi @ fn.v).abs().max() < 1e-5
    assert xi.std() == pytest.approx(0.1, rel=0.1)


def test_test_sets():
    fn = feature_noise(CFG, seed=0)
    weak, like = fn.test_weak, fn.test_like
    assert len(weak) == len(like) == 400
    assert (weak.x[:, STRONG] == 0).all() and not weak.group_mask("strong").any()
    share = float(like.group_mask("strong").double().mean())
    assert 0.2 < share < 0.4  # strong with probability ρ = 0.3
    assert 0.4 < float((weak.y > 0).double().mean()) < 0.6
    assert make_dataset(CFG, 0).test is not None and torch.equal(make_dataset(CFG, 0).test.x, weak.x)


def test_pure_function_of_config_and_seed():
    a, b, c = feature_noise(CFG, 5), feature_noise(CFG, 5), feature_noise(CFG, 6)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test_like.y, b.test_like.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_at_least_one_strong_point():
    fn = feature_noise(CFG.model_copy(update={"n_train": 2, "strong_frac": 0.1}), 0)
    assert int(fn.train.group_mask("strong").sum()) == 1


def test_config_errors_name_the_value():
    with pytest.raises(ConfigError, match="weak_norm 2.0 must be below strong_norm 1.0"):
        validate(FeatureNoiseConfig, {"weak_norm": 2.0, "strong_norm": 1.0})
    with pytest.raises(ConfigError, match="strong_frac"):
        validate(FeatureNoiseConfig, {"strong_frac": 1.0})
