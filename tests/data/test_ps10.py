"""PS10, the Pattern Separation 10 dataset of You et al. (2019) (docs/spec.md §4)."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from lrlab.config import ConfigError, PS10Config, RunConfig, validate
from lrlab.data import PS10_GROUPS, make_dataset, ps10
from lrlab.data.ps10 import conditional_entropy_bits, ps10_arrays, ps10_info
from tests.helpers import tiny_run_dict


def _cfg(**kw) -> PS10Config:
    base = {"n_train": 400, "n_test": 100, "image_size": 4}
    base.update(kw)
    return PS10Config(**base)


def _counts(ds) -> dict[str, int]:
    return {g: int(ds.group_mask(g).sum()) for g in PS10_GROUPS}


def test_defaults_follow_the_paper():
    cfg = PS10Config()
    assert (cfg.n_classes, cfg.n_simple, cfg.n_complex) == (10, 10, 100)
    assert (cfg.channels, cfg.image_size, cfg.noise_frac) == (6, 32, 0.1)
    assert PS10_GROUPS == ("simple", "complex", "noise")


@pytest.mark.parametrize("channels", [3, 6, 8])
def test_shapes_dtypes_and_constant_images(channels):
    sp = ps10(_cfg(channels=channels, image_size=5), 0)
    for ds, n in ((sp.train, 400), (sp.test, 100)):
        assert ds.x.shape == (n, channels, 5, 5) and ds.x.dtype == torch.float32
        assert ds.y.dtype == torch.long and ds.group.dtype == torch.long
        assert ds.task == "multiclass" and ds.num_classes == 10 and ds.group_names == PS10_GROUPS
        assert int(ds.y.min()) >= 0 and int(ds.y.max()) < 10
        assert torch.isfinite(ds.x).all()
        assert torch.equal(ds.x, ds.x[:, :, :1, :1].expand_as(ds.x))  # constant over H and W


def test_channel_layout_split():
    draw = ps10_arrays(_cfg(channels=8), 1)
    for part in (draw.train, draw.test):
        v = part.x[:, :, 0, 0]
        s, c = part.kind == 0, part.kind == 1
        assert (v[s][:, 4:] == 0).all() and (v[c][:, :4] == 0).all()  # other half empty
        assert (v[s][:, 3:4] == 0).all() and (v[c][:, 7:] == 0).all()  # padding past R^3
        assert (v[s][:, :3] != 0).all() and (v[c][:, 4:7] != 0).all()


def test_points_sit_at_their_patterns():
    draw = ps10_arrays(_cfg(feature_noise=0.0), 2)
    for part in (draw.train, draw.test):
        v = part.x[:, :, 0, 0].double()
        s, c = part.kind == 0, part.kind == 1
        want_s = draw.simple_patterns[part.true_class[s], part.pattern[s]]
        want_c = draw.complex_patterns[part.true_class[c], part.pattern[c]]
        assert torch.allclose(v[s][:, :3], want_s, atol=1e-6)
        assert torch.allclose(v[c][:, 3:], want_c, atol=1e-6)
    assert draw.simple_patterns.shape == (10, 10, 3) and draw.complex_patterns.shape == (10, 100, 3)
    # feature noise: the per-example offset from the pattern has std feature_noise·pattern_scale
    noisy = ps10_arrays(_cfg(feature_noise=0.1, pattern_scale=2.0, n_train=2000), 2)
    t = noisy.train
    s = t.kind == 0
    off = t.x[s][:, :3, 0, 0].double() - noisy.simple_patterns[t.true_class[s], t.pattern[s]]
    assert abs(float(off.std()) - 0.2) < 0.02


def test_channels_3_shares_the_channels():
    draw = ps10_arrays(_cfg(channels=3, feature_noise=0.0), 0)
    t = draw.train
    v = t.x[:, :, 0, 0].double()
    c = t.kind == 1
    assert torch.allclose(v[c], draw.complex_patterns[t.true_class[c], t.pattern[c]], atol=1e-6)


@pytest.mark.parametrize("n, noise_frac",
                         [(400, 0.1), (402, 0.1), (50, 0.3), (20, 0.0), (10, 0.99)])
def test_kinds_half_half_and_exact_noise(n, noise_frac):
    """Exactly n/2 simple-only and n/2 complex-only inputs; round(noise_frac·n) of them are
    relabelled, ⌊k/2⌋ simple-only and ⌈k/2⌉ complex-only, and tagged 'noise'."""
    draw = ps10_arrays(_cfg(n_train=n, noise_frac=noise_frac), 3)
    t = draw.train
    k = round(noise_frac * n)
    assert int((t.kind == 0).sum()) == int((t.kind == 1).sum()) == n // 2
    assert int(t.noise.sum()) == k
    assert int((t.noise & (t.kind == 0)).sum()) == k // 2
    assert _counts(t.dataset()) == {"simple": n // 2 - k // 2, "complex": n // 2 - (k - k // 2),
                                    "noise": k}
    assert torch.equal(t.group == 2, t.noise)
    assert (t.y[t.noise] != t.true_class[t.noise]).all()  # noise labels are another class
    assert torch.equal(t.y[~t.noise], t.true_class[~t.noise])
    assert torch.equal(t.group[~t.noise], t.kind[~t.noise])


def test_noise_labels_spread_over_the_other_classes():
    t = ps10_arrays(_cfg(n_train=4000, noise_frac=0.5, image_size=1), 0).train
    shift = (t.y[t.noise] - t.true_class[t.noise]) % 10
    counts = torch.bincount(shift, minlength=10)
    assert counts[0] == 0 and (counts[1:] > 150).all()  # ≈ 222 each


def test_test_split_has_no_noise():
    sp = ps10(_cfg(noise_frac=0.5), 0)
    assert _counts(sp.test) == {"simple": 50, "complex": 50, "noise": 0}
    assert _counts(sp.train)["noise"] == 200


def test_noise_frac_only_relabels():
    """The clean draw ignores noise_frac; a larger fraction relabels a superset."""
    a, b, c = (ps10_arrays(_cfg(noise_frac=f), 5) for f in (0.0, 0.1, 0.3))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.x, c.train.x)
    assert torch.equal(a.train.true_class, c.train.true_class)
    assert int(a.train.noise.sum()) == 0 and torch.equal(a.train.y, a.train.true_class)
    assert (c.train.noise | ~b.train.noise).all()
    assert torch.equal(a.test.x, c.test.x) and torch.equal(a.test.y, c.test.y)


def test_deterministic_in_seed():
    a, b, c = (ps10(_cfg(), s) for s in (7, 7, 8))
    for part in ("train", "test"):
        da, db, dc = getattr(a, part), getattr(b, part), getattr(c, part)
        assert torch.equal(da.x, db.x) and torch.equal(da.y, db.y)
        assert torch.equal(da.group, db.group)
        assert not torch.equal(da.x, dc.x)
    assert not torch.equal(a.train.x[:100], a.test.x)  # different examples
    da, dc = ps10_arrays(_cfg(), 7), ps10_arrays(_cfg(), 8)
    assert not torch.equal(da.simple_patterns, dc.simple_patterns)
    # the test set does not depend on n_train
    assert torch.equal(ps10(_cfg(n_train=40), 7).test.x, a.test.x)


def test_entropy_matches_log2_pattern_counts():
    cfg = _cfg(n_train=60000, n_test=2, image_size=1)
    info = ps10_info(ps10_arrays(cfg, 0))
    ref = info["reference_bits"]
    assert ref == {"simple": math.log2(10), "complex": math.log2(100)}
    h = info["train"]["entropy_bits"]
    # plug-in bias ≈ (k − 1) / (2 m ln 2): 0.002 bits (simple), 0.05 bits (complex)
    assert abs(h["simple"] - ref["simple"]) < 0.02
    assert abs(h["complex"] - ref["complex"]) < 0.1
    tr = info["train"]
    assert tr["n"] == 60000 and tr["kinds"] == {"simple": 30000, "complex": 30000}
    assert tr["groups"] == {"simple": 27000, "complex": 27000, "noise": 6000}
    assert tr["noise_frac"] == 0.1 and tr["noise_labels_differ"]
    assert info["test"]["groups"] == {"simple": 1, "complex": 1, "noise": 0}
    assert info["test"]["noise_frac"] == 0.0


def test_conditional_entropy_bits():
    cls = torch.tensor([0, 0, 0, 0, 1, 1])
    pat = torch.tensor([0, 1, 2, 3, 5, 5])
    assert conditional_entropy_bits(cls, pat) == pytest.approx(4 / 6 * 2.0)
    assert math.isnan(conditional_entropy_bits(cls[:0], pat[:0]))


def test_make_dataset_routes_ps10():
    cfg = _cfg()
    sp = make_dataset(cfg, 4)
    ref = ps10(cfg, 4)
    assert torch.equal(sp.train.x, ref.train.x) and torch.equal(sp.test.y, ref.test.y)
    raw = tiny_run_dict()
    raw["data"] = {"kind": "ps10", "n_train": 20, "n_test": 10, "image_size": 2}
    run = RunConfig.model_validate(raw)  # the DataConfig union knows kind: ps10
    assert isinstance(run.data, PS10Config) and run.data.n_train == 20


@pytest.mark.parametrize("kw, pattern", [
    ({"n_train": 101}, r"n_train must be even.*got 101"),
    ({"n_test": 7}, r"n_test must be even.*got 7"),
    ({"noise_frac": 1.0}, r"noise_frac[\s\S]*less than 1[\s\S]*1\.0"),
    ({"noise_frac": -0.1}, r"noise_frac[\s\S]*-0\.1"),
    ({"channels": 4}, r"channels must be 3 .*got 4"),
    ({"channels": 7}, r"channels must be 3 .*got 7"),
    ({"n_classes": 1}, r"n_classes[\s\S]*greater than or equal to 2"),
    ({"colour": 1}, r"colour"),
])
def test_config_validation(kw, pattern):
    with pytest.raises(ValidationError, match=pattern):
        PS10Config(**kw)


def test_config_error_names_the_key():
    with pytest.raises(ConfigError, match=r"noise_frac: .*less than 1.*\(got 1\.5\)"):
        validate(PS10Config, {"noise_frac": 1.5})
    with pytest.raises(ConfigError, match=r"channels: .*got 5"):
        validate(PS10Config, {"channels": 5})
