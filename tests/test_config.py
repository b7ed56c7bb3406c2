"""Typed configs: loading, overrides, and errors that name the key."""

from __future__ import annotations

import pytest
import yaml

from lrlab.config import (
    ConfigError,
    RunConfig,
    TrainConfig,
    apply_overrides,
    config_dir,
    load_config,
    parse_override,
    read_yaml,
    to_yaml,
    validate,
)
from tests.helpers import tiny_run_dict, write_yaml


@pytest.fixture
def cfg_path(tmp_path):
    return write_yaml(tmp_path / "run.yaml", tiny_run_dict())


def _error(path, overrides=(), raw=None) -> str:
    with pytest.raises(ConfigError) as e:
        if raw is not None:
            validate(RunConfig, raw, "cfg")
        else:
            load_config(path, list(overrides))
    return str(e.value)


def test_load_valid_config(cfg_path):
    cfg = load_config(cfg_path)
    assert isinstance(cfg, RunConfig)
    assert cfg.train.steps == 20 and cfg.train.batch_size == 16 and cfg.train.momentum == 0.9
    assert cfg.population.seeds == [0, 1]
    assert cfg.population.schedules["large"].milestones == [10]
    assert cfg.data.frac_p_only == 0.2 and cfg.data.frac_q_only == 0.2  # defaults from docs/spec.md §1a
    assert cfg.data_seed == "member" and cfg.train.mode == "auto"


def test_yaml_round_trip(cfg_path):
    cfg = load_config(cfg_path, ["train.batch_size=null", "population.schedules.cos={kind: cosine, lr: 0.5}"])
    again = validate(RunConfig, yaml.safe_load(to_yaml(cfg)))
    assert again == cfg
    assert again.population.schedules["cos"].steps is None


def test_dotted_overrides(cfg_path):
    cfg = load_config(cfg_path, ["train.steps=7", "population.seeds=[3, 4, 5]",
                                 "population.schedules.small.lr=0.5", "model.width=3",
                                 "train.nesterov=true"])
    assert cfg.train.steps == 7 and cfg.population.seeds == [3, 4, 5]
    assert cfg.population.schedules["small"].lr == 0.5 and cfg.model.width == 3
    assert cfg.train.nesterov is True
    assert load_config(cfg_path, ["train.steps=1", "train.steps=9"]).train.steps == 9  # last wins


def test_apply_overrides_copies_and_creates_sections():
    raw = {"a": {"b": 1}}
    out = apply_overrides(raw, ["a.c=2", "x.y.z=[1, 2]"])
    assert out == {"a": {"b": 1, "c": 2}, "x": {"y": {"z": [1, 2]}}}
    assert raw == {"a": {"b": 1}}


def test_parse_override():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=hello") == (["a"], "hello")
    assert parse_override("a=") == (["a"], None)
    assert parse_override("a=x=y") == (["a"], "x=y")
    for bad in ("train.steps", "=3", ".a=1", "a..b=1"):
        with pytest.raises(ConfigError, match="override"):
            parse_override(bad)


def test_override_into_a_value_is_an_error(cfg_path):
    msg = _error(cfg_path, ["train.steps.x=3"])
    assert "train.steps" in msg and "not a section" in msg


def test_unknown_key_is_named(cfg_path, tmp_path):
    assert "train.stepz" in _error(cfg_path, ["train.stepz=3"])
    raw = tiny_run_dict()
    raw["model"]["widht"] = 4
    msg = _error(write_yaml(tmp_path / "typo.yaml", raw))
    assert "model.two_layer_relu.widht" in msg or "model.widht" in msg
    assert "Extra inputs" in msg
    assert "nonsense" in _error(cfg_path, ["nonsense=1"])


@pytest.mark.parametrize("override, key, expected", [
    ("train.steps=abc", "train.steps", "integer"),
    ("train.steps=12.5", "train.steps", "integer"),
    ("train.steps=12.0", "train.steps", "integer"),
    ("train.momentum=fast", "train.momentum", "number"),
    ("train.nesterov=[1]", "train.nesterov", "boolean"),
    ("population.seeds=3", "population.seeds", "list"),
    ("model.width=wide", "model.two_layer_relu.width", "integer"),
])
def test_wrong_type_names_key_and_type(cfg_path, override, key, expected):
    msg = _error(cfg_path, [override])
    assert key in msg and expected in msg.lower()
    assert msg.startswith(str(cfg_path))


@pytest.mark.parametrize("override, key, words", [
    ("population.schedules.small.lr=-0.1", "population.schedules.small.constant.lr", "greater than 0"),
    ("population.schedules.small.lr=0", "population.schedules.small.constant.lr", "greater than 0"),
    ("population.schedules.large.milestones=[10, 5]", "milestones", "strictly increasing"),
    ("population.schedules.large.milestones=[0, 5]", "milestones", "positive"),
    ("population.schedules.large.factor=0", "factor", "greater than 0"),
    ("population.seeds=[]", "population.seeds", "at least 1"),
    ("population.seeds=[1, 1]", "population.seeds", "distinct"),
    ("population.schedules={}", "population.schedules", "at least 1"),
    ("population.schedules.small.kind=linear", "population.schedules.small", "linear"),
    ("train.steps=0", "train.steps", "greater than 0"),
    ("train.momentum=1.0", "train.momentum", "less than 1"),
    ("train.loss=hinge", "train.loss", "logistic"),
    ("train.nesterov=true", "train", "nesterov=true needs momentum > 0"),
    ("data.frac_p_only=0.9", "data", "must be <= 1"),
])
def test_invalid_values_are_rejected(cfg_path, override, key, words):
    overrides = [override] + (["train.momentum=0.0"] if "nesterov" in override else [])
    msg = _error(cfg_path, overrides)
    assert key in msg and words in msg


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        TrainConfig(steps=1, eval_every=1, nesterov=True)
    assert TrainConfig(steps=1, eval_every=1, nesterov=True, momentum=0.5).nesterov


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path)  # a directory is not a config file
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)
    with pytest.raises(ConfigError, match="mapping"):
        validate(RunConfig, [1, 2])


def test_missing_required_section_is_named():
    raw = tiny_run_dict()
    del raw["train"]
    msg = _error(None, raw=raw)
    assert msg.startswith("cfg: ") and "train" in msg and "Field required" in msg


def test_config_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LRLAB_CONFIGS", str(tmp_path))
    assert config_dir() == tmp_path
    monkeypatch.delenv("LRLAB_CONFIGS")
    assert (config_dir() / "li2019-toy" / "quick.yaml").is_file()


def test_scientific_notation_learning_rate(cfg_path):
    assert load_config(cfg_path, ["population.schedules.small.lr=1e-3"]).population.schedules[
        "small"].lr == pytest.approx(1e-3)


def test_non_finite_numbers_are_rejected(cfg_path):
    for override in ("data.margin=.inf", "population.schedules.small.lr=.inf", "train.weight_decay=.inf"):
        _error(cfg_path, [override])
