"""Planning without running: stage arithmetic, measured step times, the plan table and CLI."""

from __future__ import annotations

import pytest
import torch

from lrlab import driver
from lrlab.claims import CLAIMS
from lrlab.claims.protocol import Job, Resources
from lrlab.config import ConfigError
from lrlab.models import TwoLayerReLU
from lrlab.plan import Stage, fmt_hours, measure_device, measure_step, plan, summary
from tests.test_cli import invoke as run


def _job(key: str = "j", gpus: int = 0) -> Job:
    return Job(key, "part", {}, Resources(cpus=1, gpus=gpus, memory_gb=2.0))


def test_stage_flops_are_three_forwards_per_example_member_and_step():
    net = TwoLayerReLU(10, 32, 1)
    st = Stage("s", net, (10,), batch=8, steps=5, members=3)
    assert st.flops == 3 * 2 * (10 * 32 + 32) * 8 * 3 * 5


@pytest.mark.parametrize("field,value", [("batch", 0), ("steps", -1), ("members", 1.5)])
def test_stage_rejects_non_positive_sizes(field, value):
    kw = {"batch": 4, "steps": 4, "members": 1, field: value}
    with pytest.raises(ValueError, match=f"stage 's': {field} must be a positive integer, got {value}"):
        Stage("s", TwoLayerReLU(2, 2, 1), (2,), **kw)


def test_measure_step_times_a_forward_and_backward():
    t = measure_step(TwoLayerReLU(50, 256, 1), (50,), 64)
    assert 0 < t < 5


def test_a_device_this_machine_lacks_is_timed_on_the_cpu():
    assert measure_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert measure_device("cuda:1") == "cpu"


def test_plan_rows_scale_with_batch_members_and_steps_and_time_each_model_once():
    net = TwoLayerReLU(20, 64, 1)
    stages = {"a": [Stage("x", net, (20,), 16, 100), Stage("y", net, (20,), 16, 50, members=4, capped=True)],
              "b": [Stage("z", net, (20,), 16, 10)]}
    timed: list[str] = []
    table = plan([_job("a", gpus=1), _job("b")], lambda j: stages[j.key], gpu_tflops=10.0, log=timed.append)
    assert len(timed) == 1  # one (model, shape, batch): timed once
    assert "s per step of" in timed[0]
    assert list(table.stage) == ["x", "y", "z"]
    step = table.step_s.to_numpy()
    assert step[1] == pytest.approx(4 * step[0]) and step[2] == pytest.approx(step[0])
    assert table.device_hours.iloc[0] == pytest.approx(step[0] * 100 / 3600)
    flops = 3 * net.flops_per_example((20,)) * 16 * 100
    assert table.tflop.iloc[0] == pytest.approx(flops / 1e12)
    assert table.gpu_hours.iloc[0] == pytest.approx(flops / 10e12 / 3600)  # no GPU here: FLOPs / throughput
    per_job = summary(table)
    assert list(per_job.job) == ["a", "b"] and list(per_job.steps) == [150, 10]
    assert list(per_job.capped) == [True, False] and list(per_job.gpus) == [1, 0]


def test_plan_times_large_batches_at_the_measure_batch_and_scales(monkeypatch):
    asked: list[int] = []

    def fake(model, shape, batch, device="cpu", reps=2):
        asked.append(batch)
        return 0.5

    monkeypatch.setattr("lrlab.plan.measure_step", fake)
    table = plan([_job()], lambda j: [Stage("big", TwoLayerReLU(8, 16, 1), (8,), 4096, 3, members=2)],
                 measure_batch=512)
    assert asked == [8]  # 0.5 s on 8 examples is long enough: no bigger batch is timed
    assert table.step_s.iloc[0] == pytest.approx(0.5 * 4096 / 8 * 2)
    assert table.device_hours.iloc[0] == pytest.approx(0.5 * 4096 / 8 * 2 * 3 / 3600)


def test_plan_grows_the_timed_batch_until_a_step_is_long_enough(monkeypatch):
    asked: list[int] = []

    def fake(model, shape, batch, device="cpu", reps=2):
        asked.append(batch)
        return batch / 1000  # 1 ms per example

    monkeypatch.setattr("lrlab.plan.measure_step", fake)
    table = plan([_job()], lambda j: [Stage("s", TwoLayerReLU(8, 16, 1), (8,), 4096, 1)], measure_batch=1024)
    assert asked == [8, 32, 128, 512]  # 0.512 s ≥ 0.25 s: stop
    assert table.step_s.iloc[0] == pytest.approx(4.096)


@pytest.mark.parametrize("kw,msg", [({"gpu_tflops": 0}, "gpu_tflops must be positive, got 0"),
                                    ({"measure_batch": 0}, "measure_batch must be at least 1, got 0")])
def test_plan_rejects_bad_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        plan([], lambda j: [], **kw)


def test_hours_read_as_minutes_hours_or_days():
    assert fmt_hours(0.5) == "30.0 min" and fmt_hours(3) == "3.0 h" and fmt_hours(72) == "3.0 d"


@pytest.mark.parametrize("name", list(CLAIMS))
def test_every_claim_can_be_planned(name):
    """Every job of every claim has stages (quick here; each claim's own plan tests check the
    paper scale and that the stages are the trainer calls a job really makes)."""
    for scale in ("quick",):
        cfg = driver.load_claim_config(name, scale)
        jobs = CLAIMS[name].jobs(cfg)
        for job in jobs:
            stages = CLAIMS[name].job_stages(cfg, job)
            assert stages and all(isinstance(s, Stage) for s in stages), f"{name} {scale} {job.key}"
            assert all(s.flops > 0 for s in stages)


def test_verify_plan_prints_jobs_resources_and_gpu_hours_and_writes_the_stages(tmp_path):
    res = run("verify", "lu2023", "--plan", "--out", tmp_path, "--gpu-tflops", "5")
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())  # the console wraps long lines
    assert "plan: lu2023 at quick scale" in text and "GPU-hours" in text
    assert "assumed 5 TFLOP/s" in text
    table = (tmp_path / "plans" / "lu2023-quick.csv").read_text()
    assert table.startswith("claim,job,part,cpus,gpus,memory_gb,stage")
    assert not (tmp_path / "lu2023").exists()  # nothing ran


def test_verify_plan_refuses_maps(tmp_path):
    res = run("verify", "lu2023", "--plan", "--maps", "--out", tmp_path)
    assert res.exit_code != 0 and "--plan plans one run of each claim" in res.output


def test_a_claim_without_job_stages_cannot_be_planned(monkeypatch):
    class Bare:
        pass
    monkeypatch.setitem(CLAIMS, "bare", Bare())
    with pytest.raises(ConfigError, match="claim 'bare' declares no job_stages"):
        driver.plan_claim("bare", "quick")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this check is for machines without CUDA")
def test_verify_on_a_missing_cuda_device_stops_before_anything_runs(tmp_path):
    res = run("verify", "lu2023", "--device", "cuda", "--out", tmp_path)
    assert res.exit_code == 2
    assert "device 'cuda': this machine has 0 CUDA device(s)" in res.output
    assert not (tmp_path / "lu2023" / "jobs").exists()
