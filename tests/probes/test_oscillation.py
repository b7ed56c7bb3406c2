"""Benign-oscillation probes: the oscillation indicator, feature alignment, noise memorisation."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.config import FeatureNoiseConfig
from lrlab.data import feature_noise
from lrlab.models import ReLU2CNN
from lrlab.probes.oscillation import (
    benign_probes,
    feature_alignment,
    margins,
    noise_memorisation,
    oscillating,
    oscillation_fraction,
)


def test_oscillation_indicator_on_a_synthetic_trace():
    # a period-2 orbit around 1 that settles after step 4: |yf − 1| = 0.3 then 0.01
    trace = torch.tensor([1.3, 0.7, 1.3, 0.7, 1.01, 0.99, 1.01, 0.99])
    hit = oscillating(trace, 0.1)
    assert hit.tolist() == [True] * 4 + [False] * 4
    both = torch.stack([trace, torch.ones(8)], -1)[:, None, :]  # [T, K=1, n=2 points]
    assert oscillation_fraction(both, 0.1).tolist() == [pytest.approx(0.25)]
    assert oscillation_fraction(both, 0.1, start=4).tolist() == [0.0]
    assert oscillating(torch.tensor([1.1]), 0.1).item()  # the boundary counts: |y·f − 1| ≥ δ


def test_oscillation_fraction_leaves_out_nan_rows_and_checks_input():
    t = torch.tensor([[1.5], [math.nan], [1.0]])[:, None, :]
    assert oscillation_fraction(t, 0.1).tolist() == [pytest.approx(0.5)]
    with pytest.raises(ValueError, match="delta must be positive"):
        oscillating(torch.ones(2), 0.0)
    with pytest.raises(ValueError, match="start 3 is outside"):
        oscillation_fraction(t, 0.1, start=3)


def test_alignment_and_noise_memorisation_by_hand():
    W = torch.zeros(1, 2, 2, 3)
    W[0, 0, 0] = torch.tensor([2.0, 0.0, 0.0])   # class + filter along +e0
    W[0, 1, 1] = torch.tensor([-3.0, 1.0, 0.0])  # class − filter along −e0 (and e1)
    v = torch.tensor([0.5, 0.0, 0.0])
    assert feature_alignment(W, v).tolist() == [[2.0, 3.0]]
    xi = torch.tensor([[[0.0, 4.0, 0.0], [0.0, 0.0, 2.0]]])  # two points, labels +1 and −1
    y = torch.tensor([[1.0, -1.0]])
    # point 0 (class +): max_r ⟨w+r, ê1⟩ = 0; point 1 (class −): max_r ⟨w−r, ê2⟩ = 0 → mean 0
    assert noise_memorisation(W, xi, y).tolist() == [0.0]
    W[0, 0, 1] = torch.tensor([0.0, 5.0, 0.0])
    assert noise_memorisation(W, xi, y).tolist() == [2.5]


def test_benign_probes_match_direct_measurements():
    data = [feature_noise(FeatureNoiseConfig(d=12, n_train=8, n_test=10), s) for s in (0, 1)]
    model = ReLU2CNN(d=12, filters=4, init_std=0.3)
    params = model.init([0, 1, 2])
    index = [0, 1, 1]
    probes = benign_probes(model, data, index, delta=0.1)
    for k, i in enumerate(index):
        tr = data[i].train
        s = tr.group_mask("strong")
        yf = margins(model, params["W"][k:k + 1], tr.x[s][None], tr.y[s][None])[0]
        assert probes["yf.strong"](model, params)[k] == pytest.approx(float(yf.mean()), abs=1e-6)
        assert probes["yf.strong.first"](model, params)[k] == pytest.approx(float(yf[0]), abs=1e-6)
        assert probes["oscillating"](model, params)[k] == pytest.approx(float(((yf - 1).abs() >= 0.1).double().mean()))
        al = feature_alignment(params["W"][k:k + 1], data[i].v)[0].mean()
        assert probes["align.weak"](model, params)[k] == pytest.approx(float(al), abs=1e-6)
