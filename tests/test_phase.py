"""Phase classification of loss curves and the phase diagram of a small model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lrlab.phase import PHASES, classify, phase_diagram, plot_phase_diagram


def test_classify_synthetic_curves():
    t = np.arange(50)
    assert classify(np.exp(-0.1 * t)) == "lazy"
    assert classify(1.0 + 0.04 * np.sin(t) * np.exp(-0.2 * t) - 0.5 * (t > 10)) == "lazy"  # wiggle < 5%
    spike = np.concatenate([[1.0, 3.0, 30.0, 8.0], np.geomspace(2.0, 1e-3, 46)])
    assert classify(spike) == "catapult"
    assert classify(np.geomspace(1.0, 1e6, 50)) == "divergent"
    assert classify([1.0, 2.0, math.inf]) == "divergent"
    assert classify([1.0, 0.5, math.nan, 0.2]) == "divergent"
    assert classify([1.0, 0.9, 0.5], diverged=True) == "divergent"
    assert classify([1.0, 1.5, 1.2]) == "divergent"  # rose and never came back below L0
    assert classify([1.0, 1.04, 0.5]) == "lazy" and classify([1.0, 1.04, 0.5], rise_tol=0.01) == "catapult"
    assert set(PHASES) == {"lazy", "catapult", "divergent"}


def test_classify_errors():
    with pytest.raises(ValueError, match="at least 2 values"):
        classify([1.0])
    with pytest.raises(ValueError, match="rise_tol must be >= 0"):
        classify([1.0, 0.5], rise_tol=-1)


def _uv_factory(width: int = 256, d: int = 5):
    from lrlab.models import UVModel

    uv = UVModel(d, width)
    return lambda: uv.to_module(uv.init([0]), 0)


def _data(m: int = 16, d: int = 5):
    g = torch.Generator().manual_seed(0)
    return torch.randn(m, d, generator=g), torch.randn(m, generator=g)


def test_uv_phase_diagram_matches_theory(tmp_path):
    """uv model: lazy below 2/λ0, catapult between 2/λ0 and 4/λ0, divergent above."""
    x, y = _data()
    pdg = phase_diagram(_uv_factory(), x, y, "squared", scaled_etas=[1.0, 1.5, 2.5, 3.0, 5.0, 6.0],
                        steps=200)
    assert pdg.curvature == "ntk" and pdg.lam0 > 0
    assert pdg.phases == ["lazy", "lazy", "catapult", "catapult", "divergent", "divergent"]
    tab = pdg.table()
    conv = tab[tab.phase != "divergent"]
    assert (conv.eta_lam_final < 2).all()  # every converged run ends below the 2/η edge
    lazy = tab[tab.phase == "lazy"]
    assert np.allclose(lazy.lam_final, pdg.lam0, rtol=0.05)  # λ barely moves in the lazy phase
    assert pdg.recommended_lr == pytest.approx(3.0 / pdg.lam0)
    png = plot_phase_diagram(pdg, tmp_path / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_phase_diagram_is_deterministic_and_rejects_bad_models():
    x, y = _data()
    a = phase_diagram(_uv_factory(64), x, y, scaled_etas=[1.0, 3.0], steps=20)
    b = phase_diagram(_uv_factory(64), x, y, scaled_etas=[1.0, 3.0], steps=20)
    assert a.phases == b.phases and a.loss.equals(b.loss)
    with pytest.raises(ValueError, match="deterministic model"):
        phase_diagram(lambda: nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 1)), x, y, steps=5)
    with pytest.raises(ValueError, match="cannot use this model"):
        phase_diagram(nn.Linear(5, 1), x, y, steps=5)
    with pytest.raises(ValueError, match="scaled_etas must be positive"):
        phase_diagram(_uv_factory(64), x, y, scaled_etas=[-1.0], steps=5)
    with pytest.raises(ValueError, match="needs the squared loss"):
        phase_diagram(_uv_factory(64), x, y, "logistic", steps=5)


def test_phase_cli(tmp_path):
    from typer.testing import CliRunner

    from lrlab.cli import app

    x, y = _data()
    torch.save({"x": x, "y": y}, tmp_path / "d.pt")
    (tmp_path / "net.py").write_text(
        "import torch\nfrom lrlab.models import NTKMLP\n\ndef make():\n    return NTKMLP(5, 64, depth=1)\n")
    r = CliRunner().invoke(app, ["phase", f"{tmp_path / 'net.py'}:make", "--data", str(tmp_path / "d.pt"),
                                 "--steps", "30", "--points", "4", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "λ0 =" in r.output and (tmp_path / "out" / "phase.png").is_file()
    assert "largest learning rate that converged" in r.output
    bad = CliRunner().invoke(app, ["phase", "nomodule", "--data", str(tmp_path / "d.pt")])
    assert bad.exit_code == 2 and "module:factory" in bad.stderr
