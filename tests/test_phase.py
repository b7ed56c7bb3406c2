"""Phase classification of loss curves and the phase diagram of a small model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lrlab.phase import PHASES, classify, phase_diagram
from lrlab.report import plot_phase_diagram, subplots


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
    fig = plot_phase_diagram(pdg, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes) == 2
    own, axes = subplots(2, 1)
    assert plot_phase_diagram(pdg, axes=axes) is own  # draws into given axes, saves nothing
    assert axes[0].lines and axes[1].collections
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


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
    assert "divergence edge (largest learning rate that converged under full-batch GD" in " ".join(r.output.split())
    bad = CliRunner().invoke(app, ["phase", "nomodule", "--data", str(tmp_path / "d.pt")])
    assert bad.exit_code == 2 and "module:factory" in bad.stderr


def _classes(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    return x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()


def _tanh_net():
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 4))


def test_phase_diagram_test_accuracy_matches_a_plain_gd_loop():
    """The final test accuracy per η equals that of the same net trained by a hand-written GD loop."""
    x, y = _classes(32, 0)
    xt, yt = _classes(64, 1)
    pdg = phase_diagram(_tanh_net, x, y, "squared", scaled_etas=[0.5, 1.5], steps=15, seed=3,
                        test=(xt, yt), test_every=5)
    assert list(pdg.test_acc.index) == [0, 5, 10, 15]
    for eta, acc in zip(pdg.etas, pdg.table().test_acc):
        torch.manual_seed(3)
        net = _tanh_net()
        for _ in range(15):
            net.zero_grad()
            out = net(x)
            loss = 0.5 * ((out - nn.functional.one_hot(y, 4).float()) ** 2).sum(1).mean()
            loss.backward()
            with torch.no_grad():
                for p in net.parameters():
                    p -= eta * p.grad
        with torch.no_grad():
            expect = (net(xt).argmax(1) == yt).double().mean().item()
        assert acc == pytest.approx(expect)
    assert pdg.best_test_lr == pdg.etas[int(np.argmax(pdg.table().test_acc))]


def test_phase_diagram_test_set_errors():
    x, y = _classes(16, 0)
    with pytest.raises(ValueError, match="test_every needs a test set"):
        phase_diagram(_tanh_net, x, y, steps=4, test_every=2)
    with pytest.raises(ValueError, match=r"does not match the training set \(multiclass, inputs \(5,\)\)"):
        phase_diagram(_tanh_net, x, y, steps=4, test=(torch.randn(8, 3), y[:8]))
    with pytest.raises(ValueError, match=r"test: expected an lrlab Dataset, an \(x, y\) pair of tensors, "
                       "a TensorDataset or a DataLoader, got Tensor"):
        phase_diagram(_tanh_net, x, y, steps=4, test=x)
    pdg = phase_diagram(_tanh_net, x, y, scaled_etas=[1.0], steps=4)
    assert pdg.test_acc is None and pdg.best_test_lr is None and "test_acc" not in pdg.table()


def test_phase_cli_with_a_test_set(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from lrlab.cli import app

    x, y = _classes(32, 0)
    xt, yt = _classes(40, 1)
    np.savez(tmp_path / "train.npz", x=x.numpy(), y=y.numpy())
    np.savez(tmp_path / "test.npz", x=xt.numpy(), y=yt.numpy())
    (tmp_path / "net.py").write_text("from torch import nn\n\ndef make():\n"
                                     "    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 4))\n")
    r = CliRunner().invoke(app, ["phase", f"{tmp_path / 'net.py'}:make", "--data", str(tmp_path / "train.npz"),
                                 "--test-data", str(tmp_path / "test.npz"), "--steps", "10", "--points", "3",
                                 "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "best final test accuracy at η =" in " ".join(r.output.split())
    tab = pd.read_csv(tmp_path / "out" / "phase.csv")
    assert "test_acc" in tab and tab.test_acc.between(0, 1).all()


def test_progress_names_the_slow_steps_and_their_time(capsys):
    x, y = _classes(16, 0)
    phase_diagram(_tanh_net, x, y, scaled_etas=[1.0], steps=4, progress=True)
    err = " ".join(capsys.readouterr().err.split())
    assert "λ0 of the model at initialisation (auto curvature): done in" in err
    assert "final curvature of 1 runs (batched NTK): done in" in err
    phase_diagram(_tanh_net, x, y, scaled_etas=[1.0], steps=4, progress=True, final_hessian=True)
    err = " ".join(capsys.readouterr().err.split())
    assert "final Hessian top eigenvalue of 1 runs (batched Lanczos): done in" in err
    phase_diagram(_tanh_net, x, y, scaled_etas=[1.0], steps=4)
    assert capsys.readouterr().err == ""  # quiet unless asked
