"""Benign-oscillation probes: the oscillation indicator, feature alignment, noise memorisation."""

from __future__ import annotations

import math

import pytest
import torch

from lrlab.config import FeatureNoiseConfig
from lrlab.data import feature_noise
from lrlab.models import ReLU2CNN
from lrlab.probes.oscillation import (
    WeightOscillation,
    benign_probes,
    feature_alignment,
    margins,
    noise_memorisation,
    oscillating,
    oscillation_fraction,
    strong_components,
    weight_oscillation_fraction,
    weight_reversals,
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
        a = strong_components(params["W"][k:k + 1], data[i].u)
        assert torch.allclose(a.amax(-1) * torch.tensor([1.0, 0.0]) - a.amin(-1) * torch.tensor([0.0, 1.0]),
                              feature_alignment(params["W"][k:k + 1], data[i].u))
    assert torch.isnan(probes["osc.weights"](model, params)).all()  # stateful: NaN until a triple


def _two_step_orbit(steps: int, amp: float = 0.2, drift: float = 0.0) -> torch.Tensor:
    """Hand-built iterates W(t) [steps, K=1, 2, m=2, d=3]: every filter's component along e0 is
    base + drift·t + amp·(−1)^t (a period-2 oscillation of the iterates, optionally drifting)."""
    base = torch.tensor([[1.0, 0.5], [-2.0, 0.0]])  # [2, m]; one filter at 0 (relative move: any size)
    W = torch.zeros(steps, 1, 2, 2, 3)
    for t in range(steps):
        W[t, 0, :, :, 0] = base + drift * t + amp * (-1) ** t
        W[t, 0, :, :, 1] = 3.0 + t  # motion orthogonal to the feature is not seen
    return W


@pytest.mark.parametrize("every, share", [(1, 1.0), (3, 1.0), (5, 1.0), (2, 0.0), (4, 0.0)])
def test_weight_probe_sees_a_period_two_orbit_only_at_an_odd_cadence(every, share):
    """Probe parity: sampled every odd number of steps a period-2 orbit alternates between its two
    phases (every filter reverses at every probe); an even cadence sees one phase only (Δ = 0)."""
    W = _two_step_orbit(41)
    u = torch.tensor([2.0, 0.0, 0.0])
    probe = WeightOscillation(u, rel=0.02)
    out = [probe(None, {"W": W[t]}) for t in range(0, 41, every)]
    assert all(torch.isnan(o).all() for o in out[:2])  # no triple yet
    assert [float(o) for o in out[2:]] == [share] * (len(out) - 2)
    comps = torch.stack([strong_components(W[t], u) for t in range(0, 41, every)])
    assert weight_oscillation_fraction(comps, 0.02).tolist() == [share]


def test_weight_reversals_leave_out_drift_and_small_jitter():
    u = torch.tensor([1.0, 0.0, 0.0])
    comps = torch.stack([strong_components(W, u) for W in _two_step_orbit(12, amp=0.0, drift=0.1)])
    assert weight_oscillation_fraction(comps, 0.0).tolist() == [0.0]  # monotone drift never reverses
    # a drift of 0.1 per step under an orbit of amplitude 0.2: moves +0.5, −0.3 alternate → all reverse
    comps = torch.stack([strong_components(W, u) for W in _two_step_orbit(12, amp=0.2, drift=0.1)])
    assert weight_oscillation_fraction(comps, 0.0).tolist() == [1.0]
    # jitter: ±0.01 around a = 1 reverses, but a move of 0.02 = 2% is below rel = 0.05 of |a|
    a = torch.tensor([1.0, 1.02, 1.0, 1.02])[:, None, None]
    assert weight_oscillation_fraction(a, 0.05).tolist() == [0.0]
    assert weight_oscillation_fraction(a, 0.01).tolist() == [1.0]
    assert weight_oscillation_fraction(a, 0.01, start=2).tolist() == [1.0]
    # one of two filters oscillates, from the second half on: share 0.25 over the whole trace
    two = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.2, 1.0], [1.0, 1.0], [1.2, 1.0]])[:, None, :]
    assert weight_oscillation_fraction(two, 0.02).tolist() == [pytest.approx(0.25)]
    assert weight_oscillation_fraction(two, 0.02, start=3).tolist() == [0.5]  # middles t = 3, 4


def test_weight_reversals_check_input_and_mark_nan_members():
    a = torch.tensor([[1.0, 1.0], [1.2, math.nan], [1.0, 1.0]])[:, :, None]  # [T, K=2, 1 filter]
    out = weight_reversals(a[0], a[1], a[2], 0.02)
    assert out[0] == 1.0 and torch.isnan(out[1])
    with pytest.raises(ValueError, match="rel must be non-negative"):
        weight_reversals(a[0], a[1], a[2], -1.0)
    with pytest.raises(ValueError, match="no probe triple"):
        weight_oscillation_fraction(a[:2], 0.02)
    with pytest.raises(ValueError, match="component trace is"):
        weight_oscillation_fraction(torch.ones(3, 2), 0.02)
