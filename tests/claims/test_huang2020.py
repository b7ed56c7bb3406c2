"""The huang2020 claim: config checks, the catapult criterion, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lrlab.claims import huang2020 as hu
from lrlab.claims import load_claim_config, verify
from lrlab.config import ConfigError, validate
from tests.helpers import write_yaml

TINY = {"claim": {
    "seeds": [0, 1],
    "degenerate": {"n": 16, "d": 3, "width": 32, "depth": 2, "steps": 60, "separable_grid": [1, 10, 100],
                   "ps": [0.5], "boundary_span": [0.5, 1.5], "boundary_points": 5, "flat_grid": [1.5, 2, 4],
                   "widths": [16, 32, 64], "divergence_grid": [2, 8, 32]},
    "gaussian": {"n": 16, "d": 3, "margin": 0.1, "flip": 0.2, "width": 32, "steps": 40, "grid": [1, 8, 64]},
    "real": {"classes": [3, 5], "n_per_class": 5, "test_per_class": 3, "pool": 8, "width": 16, "steps": 20,
             "grid": [1, 8, 64], "anneal_from": 8, "anneal_to": 1, "anneal_at": 10},
}}


def test_shipped_configs_validate(cifar_root, monkeypatch):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    for scale in ("quick", "paper"):
        cfg = load_claim_config(hu.NAME, scale, seeds=2)
        assert cfg.claim.seeds == [0, 1]
        hu.preflight(cfg)


def test_config_errors():
    bad = json.loads(json.dumps(TINY))
    bad["claim"]["degenerate"]["ps"] = [1.2]
    with pytest.raises(ConfigError, match=r"degenerate.ps must lie in \(0, 1\), got \[1.2\]"):
        validate(hu.ClaimConfig, bad)
    bad = json.loads(json.dumps(TINY))
    bad["claim"]["degenerate"]["boundary_span"] = [1.1, 1.5]
    with pytest.raises(ConfigError, match="boundary_span must bracket 1"):
        validate(hu.ClaimConfig, bad)
    bad = json.loads(json.dumps(TINY))
    bad["claim"]["real"]["classes"] = [3, 3]
    with pytest.raises(ValueError, match="two distinct CIFAR-10 classes"):
        hu.preflight(validate(hu.ClaimConfig, bad))


def test_catapult_rise_is_measured_from_the_running_minimum():
    assert hu.catapult_rise([4.0, 2.0, 1.0, 0.5]) == 0.0  # monotone: no catapult
    assert hu.catapult_rise([4.0, 1.0, 1.5, 0.2]) == pytest.approx(0.5)  # below L0, above the minimum
    assert hu.catapult_rise([1.0, math.inf]) == math.inf


def test_tiny_end_to_end(tmp_path, monkeypatch, cifar_root):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    cfgdir = tmp_path / "configs"
    (cfgdir / hu.NAME).mkdir(parents=True)
    write_yaml(cfgdir / hu.NAME / "quick.yaml", TINY)
    monkeypatch.setenv("LRLAB_CONFIGS", str(cfgdir))
    out = tmp_path / "out"
    vs = {v.id: v for v in verify([hu.NAME], "quick", out, log=lambda m: None, workers=1)}
    assert set(vs) == {"a-separable-degenerate-monotone", "a-separable-gaussian-monotone", "b-boundary-p0.5",
                       "b-curvature-falls-p0.5", "c-flatter-p0.5", "c-flatter-gaussian",
                       "d-real-catapult-beats-lazy", "d-real-anneal-beats-lazy"}
    # the exact theory holds even this small: degenerate separable data never catapults
    assert all(x > 0 for x in vs["a-separable-degenerate-monotone"].per_seed)
    for id_, v in vs.items():  # a flatness slope needs two converged catapult runs on a seed
        assert len(v.per_seed) == 2 or (id_.startswith("c-flatter") and len(v.per_seed) < 2), id_
    figs = {p.name for p in (out / "figures").iterdir()}
    assert {f"{hu.NAME}-{n}.png" for n in ("trajectories", "flatness", "real-accuracy")} <= figs
    text = (out / "report.md").read_text()
    assert "(e) divergence boundary" in text and np.isfinite(vs["b-curvature-falls-p0.5"].interval.mean)
