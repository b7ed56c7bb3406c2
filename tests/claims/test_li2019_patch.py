"""The li2019-patch claim: config checks, one job per run, execution options, verdict arithmetic on
hand-made tables, resuming an interrupted job, end to end through the driver."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lrlab import experiment
from lrlab.claims import li2019_patch as patch
from lrlab.claims.protocol import JobContext
from lrlab.config import ConfigError, validate
from lrlab.driver import load_claim_config, report, verify
from lrlab.stats import FAIL, PASS
from lrlab.train import population
from tests.helpers import tiny_image_run_dict, write_yaml

SETTINGS = {"early_epoch": 2, "patch_level": 0.5}
ALL_IDS = {"a-small-early", "a-large-chance-before-anneal", "a-large-vs-small-early", "b-large-clean-final",
           "c-noise-chance-before-anneal", "c-noise-vs-small-early", "c-noise-clean-final",
           "a-large-learns-after-anneal", "d-gap-without-patch", "d-patch-widens-gap"}
ACCURACY = {"b-large-clean-final", "c-noise-clean-final", "d-gap-without-patch"}


def _claim(root, seeds=(0, 1), **settings) -> dict:
    rc = tiny_image_run_dict(root)
    del rc["population"]["seeds"], rc["train"]["threads"]
    return {"execution": {"seeds": list(seeds)}, "claim": {**SETTINGS, **settings}, "regimes": {"tiny": rc}}


@pytest.mark.parametrize("scale", ["quick", "paper"])
def test_shipped_configs_validate(scale):
    cfg = load_claim_config(patch.NAME, scale, seeds=2)
    assert cfg.execution.seeds == [0, 1]
    for rc in cfg.regimes.values():
        assert rc.population.seeds == [0, 1]
        assert rc.data.patch is not None and rc.train.unit == "epoch"


def test_claim_config_checks(cifar_root):
    cfg = validate(patch.Config, _claim(cifar_root))
    assert cfg.regimes["tiny"].population.seeds == [0, 1]
    assert (cfg.regimes["tiny"].train.device, cfg.regimes["tiny"].train.threads) == ("cpu", 1)
    bad = _claim(cifar_root)
    del bad["regimes"]["tiny"]["population"]["activation_noise"]["noise"]
    with pytest.raises(ConfigError, match="activation_noise has no entry for 'noise'"):
        validate(patch.Config, bad)
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["data"]["patch"] = None
    with pytest.raises(ConfigError, match="cifar10 data with a patch"):
        validate(patch.Config, bad)
    with pytest.raises(ConfigError, match=r"early_epoch 9 is beyond train.steps \(2 epochs\)"):
        validate(patch.Config, _claim(cifar_root, early_epoch=9))
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["population"]["schedules"]["large"] = {"kind": "constant", "lr": 0.1}
    with pytest.raises(ConfigError, match="schedules.large must be a 'step' schedule"):
        validate(patch.Config, bad)
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["population"]["seeds"] = [5]
    with pytest.raises(ConfigError, match=r"regimes.tiny.population.seeds = \[5\] differs from execution.seeds"):
        validate(patch.Config, bad)
    bad = _claim(cifar_root)
    bad["regimes"]["tiny"]["train"]["device"] = "cuda"
    with pytest.raises(ConfigError, match="regimes.tiny.train.device = 'cuda' differs from execution.device"):
        validate(patch.Config, bad)
    same = _claim(cifar_root)
    same["regimes"]["tiny"]["population"]["seeds"] = [0, 1]  # a stored config states them: fine
    validate(patch.Config, same)


def test_one_job_per_run_and_clean_control(cifar_root):
    cfg = validate(patch.Config, _claim(cifar_root))
    js = patch.jobs(cfg)
    assert [j.key for j in js] == ["tiny-patch-seed0", "tiny-clean-seed0", "tiny-patch-seed1", "tiny-clean-seed1"]
    assert all(j.resources.cpus == 1 and j.resources.gpus == 0 for j in js)
    for j in js:
        rc = patch.run_config(cfg.regimes["tiny"], cfg.claim, j.part, j.params["seed"], "cpu", 1)
        assert rc.population.seeds == [j.params["seed"]]
        if j.part == "clean":
            assert rc.data.patch is None and set(rc.population.schedules) == {"large", "small"}
            assert rc.population.activation_noise == {}
            assert rc.name == f"tiny-images-clean-seed{j.params['seed']}"
        else:
            assert set(rc.population.schedules) == {"large", "small", "noise"}
            assert rc.name == f"tiny-images-seed{j.params['seed']}"
    no_ctrl = validate(patch.Config, _claim(cifar_root, control=False))
    assert [j.part for j in patch.jobs(no_ctrl)] == ["patch"] * 2
    on_gpu = _claim(cifar_root)
    on_gpu["execution"]["device"] = "cuda:1"
    assert all(j.resources.gpus == 1 for j in patch.jobs(validate(patch.Config, on_gpu)))


class _Reached(Exception):
    pass


def test_execution_options_reach_every_job(monkeypatch):
    """--seeds, --device and --threads reach the run of every job."""
    cfg = load_claim_config(patch.NAME, "quick", seeds=2, device="cuda:3", threads=2)
    assert cfg.execution.seeds == [0, 1]
    assert all(rc.population.seeds == [0, 1] for rc in cfg.regimes.values())
    js = patch.jobs(cfg)
    for regime in cfg.regimes:
        for kind in patch.KINDS:
            assert sorted(j.params["seed"] for j in js if j.params["regime"] == regime and j.part == kind) == [0, 1]
    seen = {}

    def recorder(rc, **kw):
        seen[rc.name] = (rc.train.device, rc.train.threads, rc.population.seeds)
        raise _Reached

    monkeypatch.setattr(experiment, "run", recorder)
    monkeypatch.setattr(experiment, "resume", recorder)
    for j in js:
        with pytest.raises(_Reached):
            patch.run_job(cfg, j, JobContext(device="cuda:3", threads=2))
    assert len(seen) == len(js) == 4
    assert sorted(seen.values()) == [("cuda:3", 2, [0])] * 2 + [("cuda:3", 2, [1])] * 2


# ------------------------------------------------------------------------------------ judge on hand-made tables
def _epochs(curves: dict[tuple[str, str], dict[str, list[float]]], seeds=(0, 1, 2), regime="tiny") -> dict:
    rows = []
    for (data, sched), metrics in curves.items():
        for metric, values in metrics.items():
            for seed in seeds:
                for epoch, v in enumerate(values):
                    rows.append((f"{regime}-{data}-seed{seed}", regime, data, sched, seed, epoch, metric,
                                 v + 0.001 * seed, False))
    return {"epochs": pd.DataFrame(rows, columns=["job"] + patch.EPOCH_COLUMNS)}


def _cfg(root, **settings):
    """A claim config whose large schedule anneals at epoch 4 (the hand-made curves' anneal)."""
    raw = _claim(root, seeds=(0, 1, 2), **settings)
    rc = raw["regimes"]["tiny"]
    rc["train"]["steps"] = 6
    rc["population"]["schedules"]["large"]["milestones"] = [4]
    return validate(patch.Config, raw)


def test_judge_on_the_papers_picture(cifar_root):
    """Curves shaped like the paper's figure give PASS on every statement."""
    cfg = _cfg(cifar_root)
    chance = [0.1] * 4
    tables = _epochs({
        ("patch", "small"): {"patch_only.acc": [0.1, 0.6, 0.9, 0.9, 0.9, 0.9], "test.acc": [0.1] + [0.5] * 5},
        ("patch", "large"): {"patch_only.acc": chance + [0.7, 0.8], "test.acc": [0.1] + [0.6] * 5},
        ("patch", "noise"): {"patch_only.acc": chance + [0.7, 0.8], "test.acc": [0.1] + [0.58] * 5},
        ("clean", "small"): {"test.acc": [0.1] + [0.55] * 5},
        ("clean", "large"): {"test.acc": [0.1] + [0.6] * 5},
    })
    verdicts = patch.judge(cfg, tables)
    vs = {v.id: v for v in verdicts}
    assert set(vs) == ALL_IDS and len(verdicts) == len(ALL_IDS)
    assert all(v.status == PASS for v in vs.values()), {k: v.status for k, v in vs.items()}
    assert {k for k, v in vs.items() if v.kind == "accuracy"} == ACCURACY
    assert {v.regime for v in verdicts} == {"tiny"}
    np.testing.assert_allclose(vs["a-small-early"].per_seed, [0.4, 0.401, 0.402])
    np.testing.assert_allclose(vs["a-large-chance-before-anneal"].per_seed, [0.1, 0.099, 0.098])
    np.testing.assert_allclose(vs["a-large-vs-small-early"].per_seed, [0.8] * 3)
    np.testing.assert_allclose(vs["a-large-learns-after-anneal"].per_seed, [0.1] * 3)
    np.testing.assert_allclose(vs["b-large-clean-final"].per_seed, [0.1] * 3)
    np.testing.assert_allclose(vs["c-noise-clean-final"].per_seed, [0.08] * 3)
    np.testing.assert_allclose(vs["c-noise-vs-small-early"].per_seed, [0.8] * 3)
    np.testing.assert_allclose(vs["c-noise-chance-before-anneal"].per_seed, [0.1, 0.099, 0.098])
    np.testing.assert_allclose(vs["d-gap-without-patch"].per_seed, [0.05] * 3)
    np.testing.assert_allclose(vs["d-patch-widens-gap"].per_seed, [0.05] * 3)
    assert "epoch 2" in vs["a-small-early"].statement and "50%" in vs["a-small-early"].statement
    assert "(epoch 4)" in vs["a-large-learns-after-anneal"].statement


def test_judge_reports_the_opposite_as_fail(cifar_root):
    cfg = _cfg(cifar_root)
    tables = _epochs({
        ("patch", "small"): {"patch_only.acc": [0.1] * 6, "test.acc": [0.1] + [0.6] * 5},
        ("patch", "large"): {"patch_only.acc": [0.1, 0.9, 0.9, 0.9, 0.9, 0.9], "test.acc": [0.1] + [0.5] * 5},
        ("patch", "noise"): {"patch_only.acc": [0.1, 0.9, 0.9, 0.9, 0.9, 0.9], "test.acc": [0.1] + [0.5] * 5},
        ("clean", "small"): {"test.acc": [0.1] + [0.55] * 5},
        ("clean", "large"): {"test.acc": [0.1] + [0.5] * 5},
    })
    verdicts = patch.judge(cfg, tables)
    vs = {v.id: v for v in verdicts}
    assert set(vs) == ALL_IDS
    assert all(v.status == FAIL for v in vs.values()), {k: v.status for k, v in vs.items()}
    np.testing.assert_allclose(vs["a-large-learns-after-anneal"].per_seed, [0.0] * 3, atol=1e-12)
    np.testing.assert_allclose(vs["d-gap-without-patch"].per_seed, [-0.05] * 3)
    np.testing.assert_allclose(vs["d-patch-widens-gap"].per_seed, [-0.05] * 3)
    [o] = patch.outcomes(cfg, tables)
    reading = patch.reading(o, verdicts)
    assert "(b) large LR + anneal ending with higher clean accuracy does not hold" in reading
    assert "did not learn the patch early" in reading and "(d) the clean-data control" in reading
    no_ctrl = _cfg(cifar_root, control=False)
    assert not any(v.id.startswith("d-") for v in patch.judge(no_ctrl, tables))


def test_diverged_members_score_chance(cifar_root):
    cfg = _cfg(cifar_root)
    tables = _epochs({("patch", "small"): {"patch_only.acc": [0.1, np.nan, np.nan]}})
    [o] = patch.outcomes(cfg, tables)
    assert o.per_seed("patch", "small", "patch_only.acc").tolist() == [0.1] * 3
    assert o.jobs == ["tiny-patch-seed0", "tiny-patch-seed1", "tiny-patch-seed2"]


# ------------------------------------------------------------------------------------ training
def test_an_interrupted_job_resumes_from_its_checkpoint(cifar_root, tmp_path, monkeypatch):
    """A job stopped after its first epoch's checkpoint continues there and gives the tables of an
    uninterrupted run."""
    cfg = validate(patch.Config, _claim(cifar_root, seeds=(0,)))
    job = patch.jobs(cfg)[0]
    whole = patch.run_job(cfg, job, JobContext(workdir=tmp_path / "whole"))
    assert set(whole) == {"records", "members", "epochs"}
    assert list(whole["epochs"].columns) == patch.EPOCH_COLUMNS
    assert list(whole["records"].columns) == ["member", "step", "metric", "value"]

    save = population._Trainer.save_checkpoint

    def stop_after_first(self):
        save(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(population._Trainer, "save_checkpoint", stop_after_first)
    work = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        patch.run_job(cfg, job, JobContext(workdir=work))
    meta = json.loads((work / "run" / "meta.json").read_text())
    assert meta["status"] == "interrupted" and not (work / "run" / "records.parquet").exists()
    monkeypatch.setattr(population._Trainer, "save_checkpoint", save)
    resumed = []
    real_resume = experiment.resume
    monkeypatch.setattr(experiment, "resume", lambda *a, **k: resumed.append(a) or real_resume(*a, **k))
    again = patch.run_job(cfg, job, JobContext(workdir=work))
    assert len(resumed) == 1
    for name in whole:
        pd.testing.assert_frame_equal(again[name], whole[name])


def test_verify_end_to_end(cifar_root, tmp_path, monkeypatch):
    cfgdir = tmp_path / "configs"
    (cfgdir / patch.NAME).mkdir(parents=True)
    write_yaml(cfgdir / patch.NAME / "quick.yaml", _claim(cifar_root, early_epoch=1))
    monkeypatch.setenv("LRLAB_CONFIGS", str(cfgdir))
    out = tmp_path / "out"
    verdicts = verify([patch.NAME], "quick", out, log=lambda m: None, workers=1)
    assert {v.id for v in verdicts} == ALL_IDS and len(verdicts) == 10
    payload = json.loads((out / patch.NAME / "verdicts.json").read_text())
    assert {v["claim"] for v in payload["verdicts"]} == {patch.NAME}
    assert all(len(v["per_seed"]) == 2 for v in payload["verdicts"])
    names = {p.name for p in (out / patch.NAME / "figures").iterdir()}
    assert {f"{patch.NAME}-tiny-accuracy.png", f"{patch.NAME}-tiny-control.png", f"{patch.NAME}-effects.png"} <= names
    text = (out / "report.md").read_text()
    assert "Reading of regime `tiny`" in text and "patch-only @ epoch 1" in text
    assert "`tiny-clean-seed1`" in text  # the stored jobs, not the run folders (removed after each job)
    assert "Runs:" not in text and str(out / patch.NAME / "work") not in text
    jobs = sorted(p.name for p in (out / patch.NAME / "jobs").iterdir())
    assert jobs == ["tiny-clean-seed0", "tiny-clean-seed1", "tiny-patch-seed0", "tiny-patch-seed1"]
    assert not any((out / patch.NAME / "work").iterdir())
    first = (out / "verdicts.json").read_bytes()
    report(out, log=lambda m: None)  # judged again from the stored tables alone
    assert (out / "verdicts.json").read_bytes() == first


def test_preflight_finds_the_data_through_config_or_environment(cifar_root, tmp_path, monkeypatch):
    raw = _claim(cifar_root)
    patch.preflight(validate(patch.Config, raw))  # data.root
    raw["regimes"]["tiny"]["data"]["root"] = None
    cfg = validate(patch.Config, raw)
    monkeypatch.setenv("LRLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        patch.preflight(cfg)
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))  # what --data-dir sets; spawned workers inherit it
    patch.preflight(cfg)
