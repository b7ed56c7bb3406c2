"""Edge-of-stability tracking: sharpness parity with a looped reference, summaries, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from lrlab.eos import SharpnessTrace, track_sharpness
from lrlab.probes import top_hessian_eigs
from lrlab.report import plot_sharpness


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(24, 4, generator=g), torch.randn(24, generator=g)


def _net():
    return nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 1), nn.Flatten(0))


def test_sharpness_matches_a_looped_reference(tmp_path):
    x, y = _data()
    etas = [0.05, 0.2]
    tr = track_sharpness(_net, x, y, lrs=etas, steps=6, every=3, seed=1, iters=40, tol=1e-8)
    assert list(tr.sharpness.index) == [0, 3, 6]
    for eta in etas:
        torch.manual_seed(1)
        net = _net()
        for t in range(7):
            if t % 3 == 0:
                ref = top_hessian_eigs(net, x, y, "squared", k=1, tol=1e-8).values[0].item()
                assert tr.sharpness.loc[t, eta] == pytest.approx(ref, rel=1e-4)
            net.zero_grad()
            (0.5 * ((net(x) - y) ** 2).mean()).backward()
            with torch.no_grad():
                for p in net.parameters():
                    p -= eta * p.grad
    fig = plot_sharpness(tr, tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG" and len(fig.axes) == 2
    assert plot_sharpness(tr).axes[1].lines  # no path: a Figure only


def test_diverged_runs_get_no_sharpness():
    x, y = _data()
    tr = track_sharpness(_net, x, y, lrs=[0.05, 500.0], steps=10, every=5)
    assert tr.diverged.tolist() == [False, True]
    assert np.isnan(tr.sharpness[500.0].iloc[-1]) and tr.sharpness[0.05].notna().all()
    assert tr.summary().diverged.tolist() == [False, True]


def test_summary_on_a_synthetic_trace():
    steps = [0, 10, 20, 30, 40, 50]
    S = pd.DataFrame({1.0: [1.0, 1.5, 1.85, 2.1, 1.95, 2.5]}, index=steps)  # 2/η = 2
    tr = SharpnessTrace(np.array([1.0]), S, S * 0, np.array([False]))
    row = tr.summary(band=0.1).iloc[0]
    assert row.initial == pytest.approx(0.5) and row["max"] == pytest.approx(1.25)
    assert row.arrival == 20  # first S·η/2 >= 0.9
    assert row.in_band == pytest.approx(3 / 4)  # 0.925, 1.05, 0.975 in; 1.25 out
    assert row.dev_q90 == pytest.approx(np.quantile([0.075, 0.05, 0.025, 0.25], 0.9))
    with pytest.raises(ValueError, match="band must lie in"):
        tr.summary(band=1.5)


def test_errors():
    x, y = _data()
    with pytest.raises(ValueError, match="lrs must be positive"):
        track_sharpness(_net, x, y, lrs=[0.1, -1.0], steps=4, every=2)
    with pytest.raises(ValueError, match="every <= steps"):
        track_sharpness(_net, x, y, lrs=[0.1], steps=4, every=8)
    with pytest.raises(ValueError, match="deterministic model"):
        track_sharpness(lambda: nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 1), nn.Flatten(0)),
                        x, y, lrs=[0.1], steps=4, every=2)
    with pytest.raises(ValueError, match="needs the squared loss"):
        track_sharpness(_net, x, y, "logistic", lrs=[0.1], steps=4, every=2)
