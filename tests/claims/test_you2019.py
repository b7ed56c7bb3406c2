"""The you2019 claim: config checks, verdict arithmetic and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrlab.claims import load_claim_config, verify
from lrlab.claims import you2019 as you
from lrlab.config import ConfigError, validate
from tests.helpers import write_yaml

PS = {"kind": "ps10", "n_train": 200, "n_test": 100, "channels": 6, "image_size": 1, "noise_frac": 0.0}
PAT = {"data": PS, "width": 16, "epochs": 6, "batch_size": 50, "lr": 0.1, "milestones": [2, 4],
       "factor": 0.1, "eval_every": 1, "jump_window": 1}
TINY = {"claim": {
    "seeds": [0, 1],
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


def test_shipped_configs_validate(cifar_root, monkeypatch):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    for scale in ("quick", "paper"):
        cfg = load_claim_config(you.NAME, scale, seeds=2)
        assert cfg.claim.seeds == [0, 1]
        you.preflight(cfg)


def _bad(path: list[str], value):
    d = json.loads(json.dumps(TINY))
    node = d["claim"]
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return d


def test_config_errors():
    with pytest.raises(ConfigError, match="milestones must increase strictly inside"):
        validate(you.ClaimConfig, _bad(["patterns", "milestones"], [4, 2]))
    with pytest.raises(ConfigError, match="small_lr 0.05 must be one of the stage rates"):
        validate(you.ClaimConfig, _bad(["noise", "small_lr"], 0.05))
    with pytest.raises(ConfigError, match="transfer.lrs has 4 stages but transfer.epochs 3"):
        validate(you.ClaimConfig, _bad(["transfer", "lrs"], [0.1, 0.01, 0.001, 0.0001]))
    with pytest.raises(ConfigError, match="transfer.ps10 must be 3-channel images of size 32/pool"):
        validate(you.ClaimConfig, _bad(["transfer", "ps10", "image_size"], 8))
    with pytest.raises(ValueError, match="source_classes must be distinct classes in 0..9"):
        you.preflight(validate(you.ClaimConfig, _bad(["transfer", "source_classes"], [0, 0, 11])))


def test_stage_rates():
    p = validate(you.ClaimConfig, TINY).claim.patterns
    assert p.stage_lrs() == pytest.approx([0.1, 0.01, 0.001])


def test_tiny_end_to_end(tmp_path, monkeypatch, cifar_root):
    monkeypatch.setenv("LRLAB_DATA", str(cifar_root))
    cfgdir = tmp_path / "configs"
    (cfgdir / you.NAME).mkdir(parents=True)
    write_yaml(cfgdir / you.NAME / "quick.yaml", TINY)
    monkeypatch.setenv("LRLAB_CONFIGS", str(cfgdir))
    out = tmp_path / "out"
    vs = {v.id: v for v in verify([you.NAME], "quick", out, log=lambda m: None, workers=1)}
    expected = {"a-simple-in-stage1", "a-complex-jump-after-decay", "a-complex-beats-constant-0.1",
                "a-complex-beats-constant-0.01", "a-complex-beats-constant-0.001", "b-noise-complex",
                "b-noise-memorizes-less", "c-gd-decay-no-benefit", "c-sgd-decay-jump", "d-gd-stable-interval",
                "autodecay-accuracy", "autodecay-epochs"}
    expected |= {f"transfer-{t}-{m}" for t in ("cifar10-other-classes", "ps10") for m in ("fix", "finetune")}
    assert set(vs) == expected
    for id_, v in vs.items():  # transferability is undefined on a seed whose stage left acc unchanged
        assert len(v.per_seed) == 2 or (id_.startswith("transfer-") and len(v.per_seed) < 2), id_
    # AutoDecay's epochs are bounded by the budget: the saving lies in [−0.1, 0.9]
    assert all(-0.1 - 1e-9 <= x <= 0.9 + 1e-9 for x in vs["autodecay-epochs"].per_seed)
    assert np.isfinite(vs["d-gd-stable-interval"].per_seed).all()
    figs = {p.name for p in (out / "figures").iterdir()}
    assert {f"{you.NAME}-{n}.png" for n in ("patterns", "noise", "gd-sgd", "eigenvalues", "transfer",
                                              "autodecay")} <= figs
    assert "AutoDecay" in (out / "report.md").read_text()
