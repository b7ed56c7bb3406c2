"""The lrlab command: bad input ends with one 'error: ...' line, exit code 2, nothing written."""

from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

from lrlab import experiment
from lrlab.cli import app
from lrlab.store import load_run
from tests.helpers import tiny_run_cfg, tiny_run_dict, write_yaml


def invoke(*args, env=None):
    return CliRunner(env=env).invoke(app, [str(a) for a in args])


def assert_input_error(result, *words):
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in result.output


@pytest.fixture
def cfg_path(tmp_path):
    return write_yaml(tmp_path / "tiny.yaml", tiny_run_dict())


def _nothing_under(path):
    return not path.exists() or not any(path.iterdir())


def test_run_missing_config_file(tmp_path):
    r = invoke("run", tmp_path / "nope.yaml", "--runs", tmp_path / "runs", "--no-progress")
    assert_input_error(r, "config file not found", "nope.yaml")
    assert _nothing_under(tmp_path / "runs")


def test_run_without_config_or_resume(tmp_path):
    assert_input_error(invoke("run", "--runs", tmp_path / "runs"), "missing config")
    assert _nothing_under(tmp_path / "runs")


@pytest.mark.parametrize("override, words", [
    ("population.schedules.small.lr=-0.1", ["population.schedules.small", "lr", "greater than 0"]),
    ("population.schedules.small.lr=.inf", ["small", "lr", "finite"]),
    ("population.schedules.large.milestones=[10, 5]", ["milestones", "strictly increasing"]),
    ("population.seeds=[]", ["population.seeds", "at least 1"]),
    ("train.steps=abc", ["train.steps", "integer"]),
    ("train.stepz=3", ["train.stepz", "Extra inputs"]),
    ("train.steps.x=3", ["train.steps", "not a section"]),
    ("train.batch_size=1000", ["batch_size", "larger than the training set"]),
    ("train.nesterov=true", ["nesterov"]),
])
def test_run_bad_config_values(tmp_path, cfg_path, override, words):
    extra = ["--set", "train.momentum=0.0"] if "nesterov" in override else []
    r = invoke("run", cfg_path, "--set", override, *extra, "--runs", tmp_path / "runs",
               "--no-progress")
    assert_input_error(r, *words)
    assert _nothing_under(tmp_path / "runs")


def test_run_config_and_resume_together(tmp_path, cfg_path):
    assert_input_error(invoke("run", cfg_path, "--resume", "x", "--runs", tmp_path), "not both")


def test_resume_unknown_run(tmp_path):
    assert_input_error(invoke("run", "--resume", "ghost", "--runs", tmp_path), "no run 'ghost'")


def test_verify_unknown_claim(tmp_path):
    out = tmp_path / "out"
    assert_input_error(invoke("verify", "no-such-claim", "--out", out), "unknown claim",
                       "no-such-claim", "li2019-toy")
    assert not out.exists()


def test_verify_zero_seeds(tmp_path):
    out = tmp_path / "out"
    assert_input_error(invoke("verify", "li2019-toy", "--seeds", "0", "--out", out), "seeds", "0")
    assert not out.exists()


def test_verify_unknown_scale_and_bad_override(tmp_path):
    out = tmp_path / "out"
    assert_input_error(invoke("verify", "--scale", "huge", "--out", out), "unknown scale", "huge")
    assert_input_error(invoke("verify", "li2019-toy", "--set", "regimes.default.train.steps=abc",
                              "--out", out), "regimes.default.train.steps", "integer")
    assert_input_error(invoke("verify", "li2019-toy", "--set", "claim.nope=1", "--out", out),
                       "claim.nope")
    assert not out.exists()


def test_run_list_show(tmp_path, cfg_path):
    runs = tmp_path / "runs"
    r = invoke("run", cfg_path, "--runs", runs, "--no-progress")
    assert r.exit_code == 0, r.output
    (rd,) = runs.iterdir()
    assert f"run{rd}done:4members" in "".join(r.stdout.split())  # Rich may wrap a long path anywhere
    assert load_run(rd).status == "done"
    listed = invoke("list", "--runs", runs)
    assert listed.exit_code == 0 and "done" in listed.stdout and "tiny" in listed.stdout
    shown = invoke("show", rd.name, "--runs", runs, env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "status=done" in shown.stdout and "members=4" in shown.stdout
    assert "large" in shown.stdout and "small" in shown.stdout and "test.acc" in shown.stdout
    by_path = invoke("show", rd)
    assert by_path.exit_code == 0 and "status=done" in by_path.stdout


def test_list_empty_and_show_missing(tmp_path):
    r = invoke("list", "--runs", tmp_path / "none")
    assert r.exit_code == 0 and "no runs" in r.stdout
    assert_input_error(invoke("show", "ghost", "--runs", tmp_path), "no run 'ghost'")


def test_show_and_resume_an_interrupted_run(tmp_path):
    runs = tmp_path / "runs"

    def stop(t, total):
        if t == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        experiment.run(tiny_run_cfg(), root=runs, progress=stop)
    (rd,) = runs.iterdir()
    shown = invoke("show", rd.name, "--runs", runs)
    assert shown.exit_code == 0 and "status=interrupted" in shown.stdout
    ckpt_step = load_run(rd).records.step.max()  # the records of the last checkpoint, shown
    assert 0 < ckpt_step < 12
    assert (f"records up to step {ckpt_step} of 20 (the last checkpoint of a run that is interrupted)"
            in " ".join(shown.stdout.split()))
    assert "large" in shown.stdout and "test.acc" in shown.stdout
    r = invoke("run", "--resume", rd.name, "--runs", runs, "--no-progress")
    assert r.exit_code == 0, r.output
    assert load_run(rd).status == "done"


def test_ctrl_c_during_a_run_names_the_run_to_resume(tmp_path, cfg_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "_train", interrupted)
    runs = tmp_path / "runs"
    r = invoke("run", cfg_path, "--runs", runs, "--no-progress")
    (rd,) = runs.iterdir()
    hint = " ".join(r.stderr.split())
    assert r.exit_code == 130 and f"interrupted: resume with `lrlab run --resume {rd.name} --runs {runs}`" in hint
    monkeypatch.setattr(experiment, "run", interrupted)  # before a run folder exists
    r = invoke("run", cfg_path, "--runs", runs, "--no-progress")
    assert r.exit_code == 130 and "interrupted before the run started: nothing was stored" in r.stderr


def test_list_shows_full_run_names_at_80_columns(tmp_path):
    runs = tmp_path / "runs"
    rd, _ = experiment.run(tiny_run_cfg(), root=runs)
    long_rd, _ = experiment.run(tiny_run_cfg(name="a-much-longer-config-name"), root=runs)
    r = invoke("list", "--runs", runs, env={"COLUMNS": "80"})
    lines = r.stdout.splitlines()
    assert r.exit_code == 0 and all(len(line) <= 80 for line in lines)
    for run in (rd, long_rd):  # one line per run, nothing wrapped: name, status, size, wall time
        (line,) = [line for line in lines if run.name in line]
        assert line.split()[:3] == [run.name, "done", "4×20"] and line.rstrip().endswith(" s")
    wide = invoke("list", "--runs", runs, env={"COLUMNS": "160"}).stdout
    assert "created" in wide and load_run(rd).meta["created"][:16].replace("T", " ") in wide


def test_run_loss_task_mismatch_writes_nothing(tmp_path, cfg_path):
    r = invoke("run", cfg_path, "--set", "train.loss=cross_entropy", "--runs", tmp_path / "runs",
               "--no-progress")
    assert_input_error(r, "cross_entropy")
    assert _nothing_under(tmp_path / "runs")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_run_unavailable_device(tmp_path, cfg_path):
    r = invoke("run", cfg_path, "--device", "cuda", "--runs", tmp_path / "runs", "--no-progress")
    assert_input_error(r, "cuda")
    assert _nothing_under(tmp_path / "runs")


def test_run_images_with_data_dir(tmp_path, cifar_root):
    from tests.helpers import tiny_image_run_dict

    raw = tiny_image_run_dict(cifar_root, train={"steps": 1})
    raw["population"]["schedules"]["large"]["milestones"] = []  # one epoch: nothing to anneal
    raw["data"]["root"] = None  # the location comes from --data-dir
    cfg = write_yaml(tmp_path / "img.yaml", raw)
    missing = invoke("run", cfg, "--data-dir", tmp_path / "nowhere", "--runs", tmp_path / "runs",
                     "--no-progress")
    assert_input_error(missing, "CIFAR-10 not found", "nowhere")
    assert _nothing_under(tmp_path / "runs")
    r = invoke("run", cfg, "--data-dir", cifar_root.parent, "--runs", tmp_path / "runs", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "test_patched.acc" in r.output and "noise" in r.output
    (rd,) = (tmp_path / "runs").iterdir()
    assert load_run(rd).meta["data_source"] == str(cifar_root)


def test_phase_writes_table_and_figure(tmp_path):
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n\ndef make_net():\n"
        "    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))\n")
    g = torch.Generator().manual_seed(0)
    torch.save({"x": torch.randn(12, 3, generator=g), "y": torch.randn(12, generator=g)}, tmp_path / "d.pt")
    out = tmp_path / "out"
    r = invoke("phase", f"{tmp_path / 'net.py'}:make_net", "--data", tmp_path / "d.pt", "--steps", 5,
               "--points", 3, "--out", out)
    assert r.exit_code == 0, (r.output, r.exception)
    assert (out / "phase.png").read_bytes()[:4] == b"\x89PNG"
    assert len((out / "phase.csv").read_text().strip().splitlines()) == 4  # header + 3 learning rates
    assert str(out / "phase.png") in "".join(r.output.split())  # Rich may wrap a long path anywhere


def test_a_milestone_past_the_end_warns_or_with_strict_stops(tmp_path):
    late = {"schedules": {"large": {"kind": "step", "lr": 0.2, "milestones": [10, 20, 25], "factor": 0.1},
                          "small": {"kind": "constant", "lr": 0.02}}}
    cfg_path = write_yaml(tmp_path / "late.yaml", tiny_run_dict(population=late))
    runs = tmp_path / "runs"
    msg = ("population.schedules.large: milestone 20 is not before the run's end (train.steps = 20 "
           "steps), so it never anneals")
    r = invoke("run", cfg_path, "--runs", runs, "--no-progress")
    text = " ".join(r.stderr.split())
    assert r.exit_code == 0 and f"warning: {msg}" in text and "milestone 25" in text
    assert text.count("warning:") == 2  # printed once each, before training
    r = invoke("run", cfg_path, "--runs", runs, "--no-progress", "--strict")
    assert r.exit_code == 2 and f"error: {msg} (and 1 more)" in " ".join(r.stderr.split())
    assert len(list(runs.iterdir())) == 1  # the strict run stored nothing
    with pytest.warns(experiment.ScheduleWarning) as caught:
        experiment.check_schedules(tiny_run_cfg(population=late))
    assert [str(w.message) for w in caught] == [msg, msg.replace("milestone 20", "milestone 25")]
    assert experiment.check_schedules(tiny_run_cfg()) == []


def test_phase_finds_a_module_in_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "lrlab_test_mynet.py").write_text(
        "from torch import nn\n\n\ndef make_net():\n"
        "    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))\n")
    g = torch.Generator().manual_seed(0)
    torch.save({"x": torch.randn(12, 3, generator=g), "y": torch.randn(12, generator=g)}, tmp_path / "d.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    r = invoke("phase", "lrlab_test_mynet:make_net", "--data", "d.pt", "--steps", 3, "--points", 2,
               "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "phase.csv").is_file()
    assert_input_error(invoke("phase", "lrlab_test_nothere:make_net", "--data", "d.pt"),
                       "cannot import 'lrlab_test_nothere'")
