"""The you2019 claim: config checks, verdicts on hand-made tables, execution options reaching
every job, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lrlab import driver
from lrlab.claims import you2019 as you
from lrlab.claims.protocol import JobContext
from lrlab.claims.you2019 import experiment
from lrlab.config import ConfigError, validate
from lrlab.data import cifar10_vectors
from lrlab.driver import load_claim_config, verify
from tests.helpers import write_yaml

PS = {"kind": "ps10", "n_train": 200, "n_test": 100, "channels": 6, "image_size": 1, "noise_frac": 0.0}
PAT = {"data": PS, "width": 16, "epochs": 6, "batch_size": 50, "lr": 0.1, "milestones": [2, 4],
       "factor": 0.1, "eval_every": 1, "jump_window": 1}
TINY = {"execution": {"seeds": [0, 1]}, "claim": {
    "patterns": PAT,
    "noise": {**PAT, "data": {**PS, "noise_frac": 0.1}, "small_lr": 0.01},
    "gdsgd": {"n_per_class": 4, "test_per_class": 2, "pool": 8, "width": 8, "depth": 1, "gd_lr": 0.5,
              "gd_steps": 6, "gd_decay_at": [3], "gd_eval_every": 3, "sgd_lr": 0.1, "sgd_epochs": 3,
              "sgd_batch": 20, "sgd_decay_at": [2], "top_k": 3},
    "transfer": {"source_classes": [0, 1, 2, 3, 4], "n_per_class": 4, "test_per_class": 2, "pool": 8,
                 "width": 8, "lrs": [0.1, 0.01, 0.001], "epochs": [1, 1, 1], "batch_size": 10,
                 "ps10": {**PS, "channels": 3, "image_size": 4, "n_train": 40, "n_test": 20},
                 "finetune_epochs": 1, "finetune_lr": 0.01, "probe_epochs": 5},
    "autodecay": {"data": PS, "width": 16, "epochs": 8, "batch_size": 50, "lr": 0.1,
                  "step_grid": [[3, 6], [2, 4]], "window": 2, "max_decays": 1},
}}
IDS = {"a-simple-in-stage1", "a-complex-jump-after-decay", "a-complex-beats-constant-0.1",
       "a-complex-beats-constant-0.01", "a-complex-beats-constant-0.001", "b-noise-complex",
       "b-noise-memorizes-less", "c-gd-decay-no-benefit", "c-sgd-decay-jump", "d-gd-stable-interval",
       "autodecay-accuracy", "autodecay-epochs"} | {
    f"transfer-{t}-{m}" for t in ("cifar10-other-classes", "ps10") for m in ("fix", "finetune")}
ACCURACY = {"a-complex-beats-constant-0.1", "a-complex-beats-constant-0.01", "a-complex-beats-constant-0.001",
            "b-noise-complex"}


def _tiny() -> you.Config:
    return validate(you.Config, TINY)


def test_shipped_configs_validate(cifar_root, monkeypatch):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    for scale in ("quick", "paper"):
        cfg = load_claim_config(you.NAME, scale, seeds=2)
        assert cfg.execution.seeds == [0, 1]
        you.preflight(cfg)
    assert load_claim_config(you.NAME, "quick").execution.seeds == [0, 1, 2]
    assert load_claim_config(you.NAME, "paper").execution.seeds == [0, 1, 2, 3, 4]


def _bad(path: list[str], value):
    d = json.loads(json.dumps(TINY))
    node = d
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


@pytest.mark.parametrize("path, value, message", [
    (["claim", "patterns", "milestones"], [4, 2], "milestones must increase strictly inside"),
    (["claim", "noise", "small_lr"], 0.05, "small_lr 0.05 must be one of the stage rates"),
    (["claim", "transfer", "lrs"], [0.1, 0.01, 0.001, 0.0001], "transfer.lrs has 4 stages but transfer.epochs 3"),
    (["claim", "transfer", "ps10", "image_size"], 8, "transfer.ps10 must be 3-channel images of size 32/pool"),
    (["claim", "transfer", "source_classes"], [0, 0, 11], "source_classes must be distinct classes in 0..9"),
    (["claim", "transfer", "source_classes"], list(range(9)), "must leave at least 2 CIFAR-10 classes"),
    (["claim", "gdsgd", "pool"], 3, "pool must divide 32, got 3"),
    (["execution", "seeds"], [0], "execution.seeds needs at least 2 seeds"),
])
def test_config_errors(path, value, message):
    with pytest.raises(ConfigError, match=message):
        validate(you.Config, _bad(path, value))


def test_stage_rates_and_names():
    s = _tiny().claim
    assert s.patterns.stage_lrs() == pytest.approx([0.1, 0.01, 0.001])
    assert you.pattern_names(s.patterns) == ["decay", "constant 0.1", "constant 0.01", "constant 0.001"]
    assert you.gd_names(s.gdsgd) == ["constant", "decay@3"]
    assert you.autodecay_names(s.autodecay) == ["step@3-6", "step@2-4", "autodecay"]


def test_jobs_one_per_part_and_seed():
    js = you.jobs(_tiny())
    assert [j.key for j in js] == [f"{p}-seed{sd}" for p in you.PARTS for sd in (0, 1)]
    assert all(j.resources.cpus == 1 and j.resources.gpus == 0 for j in js)


# ------------------------------------------------------------------------------------ hand-made tables
def _curve_rows(part, seed, curves: dict[str, dict[str, list[float]]], epochs) -> list[dict]:
    return [{"part": part, "seed": seed, "name": n, "epoch": float(e), "metric": m, "value": float(v)}
            for m, by_name in curves.items() for n, vals in by_name.items() for e, v in zip(epochs, vals)]


def _tables(cfg: you.Config, holds: bool) -> dict[str, pd.DataFrame]:
    """Tables in the stored shape where every statement holds (``holds``) or is reversed."""
    s = cfg.claim
    curves, eigs, lrs, transfer, finals, ad, decisions, check = [], [], [], [], [], [], [], []
    for sd in cfg.execution.seeds:
        d = 0.01 * sd  # a little per-seed spread
        ep = range(7)
        if holds:  # simple learned by epoch 2, complex jumps after it; constants stay low; noise not memorised
            simple = [0.5, 0.85, 0.9 + d, 0.91, 0.92, 0.92, 0.92 + d]
            complex_ = [0.1, 0.15, 0.2, 0.6 + d, 0.65, 0.68, 0.7 + d]
            const = [0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3 - d]
            mem_d, mem_s = [0.1] * 6 + [0.2 + d], [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8 - d]
        else:
            simple = [0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9 + d]
            complex_ = [0.1, 0.15, 0.2, 0.2, 0.2, 0.2, 0.2 - d]
            const = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.5 + d]
            mem_d, mem_s = [0.1] * 6 + [0.8 + d], [0.1] * 6 + [0.2 - d]
        for part in ("patterns", "noise"):
            names = you.pattern_names(getattr(s, part))
            small = f"constant {s.noise.small_lr:g}"
            data = {"test.simple.acc": {n: simple if n == "decay" else simple for n in names},
                    "test.complex.acc": {n: complex_ if n == "decay" else const for n in names},
                    "train.noise.acc": {n: mem_d if n == "decay" else (mem_s if n == small else const)
                                        for n in names}}
            curves += _curve_rows(part, sd, data, ep)
        gd = {"constant": [0.1, 0.4, 0.5 + d], "decay@3": [0.1, 0.4, (0.502 if holds else 0.6) + d]}
        curves += _curve_rows("gd", sd, {"test.acc": gd}, [0, 3, 6])
        sgd = {"constant": [0.1, 0.5 + d, 0.45], "decay@2": [0.1, 0.45, (0.6 if holds else 0.4) + d]}
        curves += _curve_rows("sgd", sd, {"test.acc": sgd}, [0, 1, 2])
        lam = (3.0 if holds else 5.0) + d
        eigs += [{"seed": sd, "name": n, "i": i, "value": lam / (i + 1)} for n in you.gd_names(s.gdsgd)
                 for i in range(3)]
        lrs += [{"seed": sd, "name": "constant", "lr": 0.5}, {"seed": sd, "name": "decay@3", "lr": 0.05}]
        t2, t3 = (0.5, 0.1) if holds else (0.1, 0.5)
        for target in ("cifar10-other-classes", "ps10"):
            for method in ("fix", "finetune"):
                transfer += [{"stage": st, "target": target, "method": method, "acc": 0.2 * st, "tacc": 0.1 * st,
                              "transferability": [np.nan, 0.3, t2, t3 + d][st], "seed": sd} for st in range(4)]
        fin = {"step@3-6": 0.8 + d, "step@2-4": 0.7, "autodecay": (0.799 if holds else 0.7) + d}
        finals += [{"seed": sd, "name": n, "test_acc": v} for n, v in fin.items()]
        curves += _curve_rows("autodecay", sd, {"test.acc": {n: [0.1, v] for n, v in fin.items()}}, [0, 8])
        used = 5.0 + 0.01 * sd if holds else 8.0
        ad.append({"seed": sd, "epochs_used": used, "budget": 8})
        decisions += [{"seed": sd, "epoch": e, "loss": 1.0 / e, "g": 1.0 / e,
                       "action": "decay" if e == 3 else ("stop" if e == int(used) else "continue")}
                      for e in range(1, int(used) + 1)]
        check.append({"seed": sd, "entropy_simple": 3.2, "entropy_complex": 6.1, "reference_simple": 3.32,
                      "reference_complex": 6.64, "noise_frac": 0.1})
    out = {"curves": curves, "eigs": eigs, "gd_final_lr": lrs, "transfer": transfer, "autodecay_final": finals,
           "autodecay": ad, "decisions": decisions, "ps10_check": check}
    tables = {}
    for k, rows in out.items():
        df = pd.DataFrame(rows)
        df.insert(0, "job", "hand")
        tables[k] = df
    return tables


@pytest.mark.parametrize("holds", [True, False])
def test_judge_on_hand_made_tables(holds):
    cfg = _tiny()
    vs = {v.id: v for v in you.judge(cfg, _tables(cfg, holds))}
    assert set(vs) == IDS
    assert {k for k, v in vs.items() if v.kind == "accuracy"} == ACCURACY
    assert all(v.regime == "ps10+cifar" for v in vs.values())
    for k, v in vs.items():
        assert v.status == ("PASS" if holds else "FAIL"), (k, v.per_seed)
        assert len(v.per_seed) == 2, k
    got = {k: v.per_seed for k, v in vs.items()}
    if holds:
        assert got["a-simple-in-stage1"] == pytest.approx([0.03, 0.03])
        assert got["a-complex-jump-after-decay"] == pytest.approx([0.4, 0.41])
        assert got["a-complex-beats-constant-0.01"] == pytest.approx([0.4, 0.42])
        assert got["b-noise-memorizes-less"] == pytest.approx([0.6, 0.58])
        assert got["c-gd-decay-no-benefit"] == pytest.approx([0.008, 0.008])
        assert got["c-sgd-decay-jump"] == pytest.approx([0.1, 0.1])
        assert got["d-gd-stable-interval"] == pytest.approx([0.5, 2 - 0.5 * 3.01])
        assert got["transfer-ps10-fix"] == pytest.approx([0.4, 0.39])
        assert got["autodecay-accuracy"] == pytest.approx([0.004, 0.004])
        assert got["autodecay-epochs"] == pytest.approx([1 - 5 / 8 - 0.1, 1 - 5.01 / 8 - 0.1])
        assert "step@3-6" in vs["autodecay-accuracy"].statement
        assert "decays: 1, 1" in vs["autodecay-epochs"].notes
    else:
        assert got["autodecay-epochs"] == pytest.approx([-0.1, -0.1])
        assert got["c-gd-decay-no-benefit"] == pytest.approx([-0.09, -0.09])


def test_transfer_undefined_seed_is_left_out():
    cfg = _tiny()
    t = _tables(cfg, True)
    tr = t["transfer"]
    tr.loc[(tr.seed == 1) & (tr.stage == 3), "transferability"] = np.nan
    vs = {v.id: v for v in you.judge(cfg, t)}
    assert vs["transfer-ps10-fix"].per_seed == pytest.approx([0.4])
    assert "undefined on 1 of 2 seeds" in vs["transfer-ps10-fix"].notes


def test_report_from_hand_made_tables(tmp_path):
    cfg = _tiny()
    tables = _tables(cfg, True)
    text = you.report(cfg, tables, you.judge(cfg, tables), tmp_path, tmp_path.relative_to(tmp_path))
    assert "PS10 check (noisy variant, seed 0)" in text and "AutoDecay" in text
    assert {p.name for p in tmp_path.iterdir()} == {f"{you.NAME}-{n}.png" for n in (
        "patterns", "noise", "gd-sgd", "eigenvalues", "transfer", "autodecay")}


# ------------------------------------------------------------------------------------ execution options
class _Reached(Exception):
    pass


def test_execution_options_reach_every_part(monkeypatch, cifar_root):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    cfg = load_claim_config(you.NAME, "quick", seeds=2, device="cuda:3", threads=2)
    assert cfg.execution.seeds == [0, 1] and cfg.execution.threads == 2
    js = you.jobs(cfg)
    for part in you.PARTS:
        assert sorted(j.params["seed"] for j in js if j.part == part) == [0, 1]
    seen: list[tuple[str, str]] = []

    def train_population(model, members, train, test, tcfg, **kw):
        seen.append(("train_population", tcfg.device))
        raise _Reached

    def transfer_net(d_in, width, classes, device):
        seen.append(("transfer_net", device))
        raise _Reached

    def small_cifar(n_per_class, test_per_class, seed, pool=1):  # the fixture has 6 images per class
        return cifar10_vectors(min(n_per_class, 4), min(test_per_class, 2), seed, pool=pool)

    monkeypatch.setattr(experiment, "train_population", train_population)
    monkeypatch.setattr(experiment, "transfer_net", transfer_net)
    monkeypatch.setattr(experiment, "cifar10_vectors", small_cifar)
    for job in js:
        n = len(seen)
        with pytest.raises(_Reached):
            you.run_job(cfg, job, JobContext(device="cuda:3"))
        assert len(seen) == n + 1 and seen[-1][1] == "cuda:3", job.key
    assert {w for w, _ in seen} == {"train_population", "transfer_net"}


# ------------------------------------------------------------------------------------ end to end
def test_tiny_end_to_end(tmp_path, monkeypatch, cifar_root):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    cfgdir = tmp_path / "configs"
    (cfgdir / you.NAME).mkdir(parents=True)
    write_yaml(cfgdir / you.NAME / "quick.yaml", TINY)
    monkeypatch.setenv("LRLAB_CONFIGS", str(cfgdir))
    out = tmp_path / "out"
    vs = {v.id: v for v in verify([you.NAME], "quick", out, log=lambda m: None, workers=1)}
    assert set(vs) == IDS
    assert {k for k, v in vs.items() if v.kind == "accuracy"} == ACCURACY
    for id_, v in vs.items():  # transferability is undefined on a seed whose stage left acc unchanged
        assert len(v.per_seed) == 2 or (id_.startswith("transfer-") and len(v.per_seed) < 2), id_
    # AutoDecay's epochs are bounded by the budget: the saving lies in [−0.1, 0.9]
    assert all(-0.1 - 1e-9 <= x <= 0.9 + 1e-9 for x in vs["autodecay-epochs"].per_seed)
    assert np.isfinite(vs["d-gd-stable-interval"].per_seed).all()
    figs = {p.name for p in (out / you.NAME / "figures").iterdir()}
    assert {f"{you.NAME}-{n}.png" for n in ("patterns", "noise", "gd-sgd", "eigenvalues", "transfer",
                                              "autodecay", "effects")} <= figs
    assert "AutoDecay" in (out / "report.md").read_text()
    tables = set(p.stem for p in (out / you.NAME / "jobs" / "noise-seed0").glob("*.parquet"))
    assert tables == {"curves", "ps10_check"}
    before = (out / "verdicts.json").read_bytes()
    again = {v.id: v for v in driver.report(out, log=lambda m: None)}
    assert (out / "verdicts.json").read_bytes() == before
    assert all(again[k].per_seed == vs[k].per_seed and again[k].status == vs[k].status for k in vs)
