"""Learning-rate advice: the three rates obey their definitions, the grid extends at its edges,
blown-up but finite runs count as diverged, bad settings are named, and results repeat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import lrlab
from lrlab.advice import _judge, lr_advice
from lrlab.cli import app
from lrlab.data import two_moons


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))


@pytest.fixture(scope="module")
def advice():
    return lr_advice(net, two_moons(64, 0), "cross_entropy", val=two_moons(64, 1), batch_size=16, seeds=3,
                     steps=60, scaled_etas=2.0 ** np.arange(-2, 7.0), max_extend=0)


def test_the_three_rates_follow_their_definitions(advice):
    runs, tab = advice.runs, advice.table()
    assert len(runs) == 9 * 3 and tab.seeds.eq(3).all()
    by_eta = runs.groupby("eta")
    assert advice.divergence_edge == by_eta.diverged.any().idxmax()  # the smallest η with a diverged seed
    assert advice.divergence_edge is not None and advice.recommended_lr is not None
    assert by_eta.converged.all()[advice.recommended_lr]  # converged on every seed
    limit = min(advice.divergence_edge, advice.instability_onset or np.inf) / np.sqrt(2)
    assert advice.recommended_lr <= limit * (1 + 1e-9)
    above = tab[(tab.eta > advice.recommended_lr) & (tab.eta <= limit * (1 + 1e-9))]
    assert (above.converged < 3).all()  # nothing larger within the limit converged everywhere
    assert not by_eta.diverged.any()[advice.best_val_lr]
    assert advice.best_val_lr == tab[tab.diverged == 0].set_index("eta").val.idxmax()
    # converged: not diverged and at least half the log-loss reduction its seed reached at its best rate
    l_star = runs[~runs.diverged].groupby("seed").final_loss.min()
    share = np.log(runs.l0 / runs.final_loss) / np.log(runs.l0 / runs.seed.map(l_star))
    assert runs.converged.equals(~runs.diverged & (share >= 0.5))
    assert runs.converged.any() and (~runs.converged & ~runs.diverged).any()  # the rule cuts somewhere
    assert "log(L0/L_T) ≥ 0.5·log(L0/L*)" in advice.criterion
    assert "after 60 steps of SGD at batch 16" in advice.criterion
    with pytest.raises(AttributeError):
        advice.recommended  # noqa: B018 — the names say what each rate is


def test_a_short_budget_still_gets_a_recommendation():
    """Ten steps reach nowhere near a tenfold loss reduction; convergence is judged against what
    the best rate reached in the same budget, so there is still a rate to recommend."""
    a = lr_advice(net, two_moons(64, 0), "cross_entropy", batch_size=16, seeds=2, steps=10,
                  scaled_etas=2.0 ** np.arange(-2, 7.0), max_extend=0)
    assert (a.runs.final_loss > 0.1 * a.runs.l0).all()
    assert a.recommended_lr is not None and a.runs[a.runs.eta == a.recommended_lr].converged.all()


def test_a_slow_seed_is_judged_against_its_own_best():
    """One initialisation that learns little at every rate still converges where it does its best,
    so it does not veto every rate (the dev CNN of benchmarks/bench_lr_advice.py)."""
    runs = pd.DataFrame({"eta": [0.1, 0.2, 0.4] * 2, "seed": [0] * 3 + [1] * 3, "l0": [0.7] * 6,
                         "final_loss": [0.2, 0.05, 0.9, 0.6, 0.5, 0.65],
                         "diverged": [False, False, True, False, False, False]})
    judged = _judge(runs, 0.5)
    # seed 0: best 0.05, needs L_T ≤ 0.7·(0.05/0.7)^0.5 = 0.187; seed 1: best 0.5, needs ≤ 0.592
    assert judged.converged.tolist() == [False, True, False, False, True, False]


def test_blown_up_but_finite_runs_count_as_diverged():
    a = lr_advice(net, two_moons(64, 0), "cross_entropy", batch_size=None, seeds=[0], steps=30,
                  scaled_etas=[1.0, 8.0, 24.0], blowup=1.01, max_extend=0)
    rows = a.runs
    assert np.isfinite(rows.final_loss).all() and np.isfinite(rows.peak_ratio).all()  # nothing inf/NaN
    assert (rows.peak_ratio > 1.01).any() and rows[rows.peak_ratio > 1.01].diverged.all()
    assert not rows[rows.peak_ratio <= 1.01].diverged.any()


def test_the_grid_extends_where_the_answer_sits_at_its_edge():
    a = lr_advice(net, two_moons(64, 0), "cross_entropy", batch_size=16, seeds=2, steps=30,
                  scaled_etas=[0.01, 0.02], extend=2, max_extend=1)
    assert sorted(a.runs.eta.unique() * a.lam0) == pytest.approx([0.01, 0.02, 0.04, 0.08])
    assert a.notes[0].startswith("the largest rate, η = ") and "grid extended to" in a.notes[0]


@pytest.mark.parametrize("kw, message", [
    ({"converge": 1.5}, r"converge 1.5 is out of range"),
    ({"converge": 0.0}, r"converge 0.0 is out of range"),
    ({"backoff": 0.5}, r"backoff 0.5 is out of range"),
    ({"batch_size": 65}, r"batch_size 65 must lie in 1..64"),
    ({"seeds": []}, "seeds must name at least one seed"),
    ({"scaled_etas": [1.0]}, r"scaled_etas must be at least two positive numbers, got \[1.0\]"),
])
def test_bad_settings_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        lr_advice(net, two_moons(64, 0), "cross_entropy", **{"steps": 10, **kw})


def test_advice_repeats_exactly():
    kw = dict(batch_size=16, seeds=2, steps=20, scaled_etas=[0.5, 2.0, 8.0], max_extend=0)
    a = lr_advice(net, two_moons(64, 0), "cross_entropy", **kw)
    b = lrlab.lr_advice(net, two_moons(64, 0), "cross_entropy", **kw)
    pd.testing.assert_frame_equal(a.runs, b.runs, check_exact=True)
    assert (a.divergence_edge, a.recommended_lr) == (b.divergence_edge, b.recommended_lr)


def test_cli_advise_prints_the_three_rates_and_writes_the_runs(tmp_path):
    (tmp_path / "net.py").write_text("from torch import nn\n\n\ndef make_net():\n"
                                     "    return nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))\n")
    for name, seed in (("train", 0), ("val", 1)):
        x, y = two_moons(64, seed)
        torch.save({"x": x, "y": y}, tmp_path / f"{name}.pt")
    r = CliRunner().invoke(app, ["advise", f"{tmp_path / 'net.py'}:make_net", "--data", str(tmp_path / "train.pt"),
                                 "--val-data", str(tmp_path / "val.pt"), "--batch-size", "16", "--seeds", "2",
                                 "--steps", "20", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    text = " ".join(r.stdout.split())
    assert "divergence edge" in text and "recommended learning rate" in text and "best validation rate" in text
    assert "criterion: converged:" in text
    runs = pd.read_csv(tmp_path / "out" / "advice.csv")
    assert {"eta", "seed", "diverged", "converged", "val"} <= set(runs.columns) and set(runs.seed) == {0, 1}
