"""Device plumbing and mixed precision, checked on CPU (no GPU here).

Every tensor the shared training and probe paths create must name its device, or be one of
the few CPU-by-design tensors listed below; a factory call without ``device=`` anywhere else
would put a tensor on the CPU while a job runs on ``cuda``. A recording torch-function mode
finds such calls while the real code paths run.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from lrlab import driver, experiment
from lrlab.claims import CLAIMS
from lrlab.eos import track_sharpness
from lrlab.models import FromModule
from lrlab.phase import phase_diagram
from lrlab.probes.curvature import population_top_eigs, top_hessian_eigs
from lrlab.train import Constant, Member, train_population
from lrlab.train.precision import amp_enabled, autocast, mixed_precision
from lrlab.transfer import train_with_snapshots
from tests.helpers import tiny_run_cfg

FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.arange, torch.randn, torch.rand,
             torch.randint, torch.randperm, torch.tensor, torch.eye, torch.linspace, torch.as_tensor,
             torch.normal}

CPU_BY_DESIGN = {
    # bookkeeping read on the host every probe (diverged / stopped steps, evaluation records)
    ("train/population.py", "__init__", "full"),
    ("train/population.py", "_record", "full"),
    # minibatch orders drawn by a CPU generator (the same batches on every device), then moved
    ("train/population.py", "_indices", "randperm"),
    ("transfer.py", "_sgd_epochs", "randperm"),
    ("train/population.py", "evaluate", "full"),
    # the learning-rate table is built on the host, then moved
    ("train/schedules.py", "lr_table", "tensor"),
    # a probe's value computed in NumPy becomes a record (records live on the host)
    ("phase.py", "<lambda>", "as_tensor"),
    # power-iteration start vectors drawn by a CPU generator (the same on every device), then moved
    ("probes/ntk.py", "ntk_top_eigenvalue", "randn"),
    ("probes/ntk.py", "population_ntk_top_eigenvalue", "randn"),
}
"""(file under lrlab/, function, factory) of tensors deliberately created on the CPU. Data
generators and model initialisation are CPU by design too (the same numbers on any device, then
moved); they are outside the checked files."""

CHECKED = ("train/", "phase.py", "eos.py", "probes/", "transfer.py")


class FactoryRecorder(TorchFunctionMode):
    """Records (file, function, factory) of every tensor factory that lrlab's training and probe
    code calls directly without ``device=`` (torch's own calls, e.g. inside ``nn.Linear``, are
    model construction: on the CPU by design, then moved)."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            f = sys._getframe(1)
            if "/lrlab/" in f.f_code.co_filename:
                rel = f.f_code.co_filename.split("/lrlab/", 1)[1]
                if rel.startswith(CHECKED):
                    self.sites[(rel, f.f_code.co_name, func.__name__)] += 1
        return func(*args, **kwargs)


def _check(rec: FactoryRecorder) -> None:
    stray = {site: n for site, n in rec.sites.items() if site not in CPU_BY_DESIGN}
    assert not stray, ("tensor factories without device= in the training/probe path (a CUDA job would "
                       f"create these on the CPU): {stray}")


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))


def _xy(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randn(n, generator=g)


def test_population_training_names_the_device_everywhere(tmp_path):
    rec = FactoryRecorder()
    with rec:
        experiment.run(tiny_run_cfg(), root=tmp_path, progress=False)
    assert rec.sites, "the recorder saw no factory calls: it is not hooked in"
    _check(rec)


def test_phase_diagram_and_probes_name_the_device_everywhere():
    x, y = _xy()
    rec = FactoryRecorder()
    with rec:
        phase_diagram(_mlp, x, y, "squared", scaled_etas=[0.5, 3.0], steps=5, curvature_every=2, device="cpu")
        track_sharpness(_mlp, x, y, "squared", lrs=[0.05], steps=4, every=2, device="cpu")
        top_hessian_eigs(_mlp(), x, y, "squared", k=2)
        model = FromModule(_mlp)
        population_top_eigs(model, model.init([0, 1]), x, y, "squared", 1, k=1, iters=10)
    _check(rec)


def test_transfer_training_names_the_device_everywhere():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    rec = FactoryRecorder()
    with rec:
        train_with_snapshots(net, x, y, lrs=[0.1, 0.01], epochs_per_stage=[1, 1], batch_size=8, seed=0)
    _check(rec)


def test_the_recorder_catches_a_factory_without_a_device():
    """The check can fail: a CPU tensor made in a checked file is reported."""
    rec = FactoryRecorder()
    code = compile("torch.zeros(3)", str(Path("/x/lrlab/train/made_up.py")), "exec")
    with rec:
        exec(code, {"torch": torch})
    assert rec.sites == Counter({("train/made_up.py", "<module>", "zeros"): 1})
    with pytest.raises(AssertionError, match="made_up.py"):
        _check(rec)


# ------------------------------------------------------------------------------ mixed precision
def test_mixed_precision_is_off_by_default_and_scoped():
    assert not amp_enabled()
    with mixed_precision():
        assert amp_enabled()
        with mixed_precision(False):
            assert not amp_enabled()
        assert amp_enabled()
    assert not amp_enabled()


class _DtypeSpy(nn.Module):
    seen: list[torch.dtype] = []

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lin(x)
        _DtypeSpy.seen.append(out.dtype)
        return out


def _train_spy(steps: int = 30):
    x, y = _xy()
    from lrlab.data import Dataset
    data = Dataset(x, y, torch.zeros(len(y), dtype=torch.long), ("all",), "regression", 1)
    from lrlab.config import TrainConfig
    cfg = TrainConfig(loss="squared", steps=steps, eval_every=10)
    return train_population(FromModule(_DtypeSpy), [Member("m", 0, Constant(0.05))], data, None, cfg)


def test_amp_trains_under_bfloat16_autocast_and_stays_close_to_float32():
    _DtypeSpy.seen.clear()
    full = _train_spy()
    assert set(_DtypeSpy.seen) == {torch.float32}
    _DtypeSpy.seen.clear()
    with mixed_precision():
        mixed = _train_spy()
    assert torch.bfloat16 in _DtypeSpy.seen  # the training forward ran in bfloat16 ...
    loss_f = full.curve("train.loss").iloc[-1, 0]
    loss_m = mixed.curve("train.loss").iloc[-1, 0]
    assert loss_f != loss_m  # ... so the numbers differ a little, not a lot
    assert loss_m == pytest.approx(loss_f, rel=0.05)


def test_amp_keeps_the_two_layer_net_off_the_fused_float32_step(tmp_path):
    cfg = tiny_run_cfg(train={"momentum": 0.0})  # plain SGD: the fused step's case
    plain, _ = experiment.run(cfg, root=tmp_path / "a", progress=False)
    with mixed_precision():
        mixed, _ = experiment.run(cfg, root=tmp_path / "b", progress=False)
    from lrlab import store
    assert store.load_run(plain).meta["mode"] == "fused"
    assert store.load_run(mixed).meta["mode"] != "fused"


def test_autocast_context_names_the_device_type():
    with mixed_precision():
        with autocast("cpu"):
            assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast("cpu"):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("name", list(CLAIMS))
def test_amp_reaches_every_jobs_inputs_only_when_on(name):
    """--amp changes what a job computes, so it is in every job's fingerprint; off (the default) it
    is absent, so results stored before the option existed stay valid."""
    off = driver.load_claim_config(name, "quick")
    on = driver.load_claim_config(name, "quick", amp=True)
    assert on.execution.amp and not off.execution.amp
    for job in CLAIMS[name].jobs(off):
        assert "\"amp\":" not in json.dumps(driver.job_inputs(off, job)), job.key
        assert '"amp": true' in json.dumps(driver.job_inputs(on, job)), job.key
        assert driver.fingerprint(on, job) != driver.fingerprint(off, job)


def test_verify_amp_end_to_end_runs_stores_and_never_mixes_with_full_precision(tmp_path, monkeypatch):
    """`lrlab verify --amp`: the jobs train under autocast, claim.json records the option, and a
    later run without it trains again instead of reusing the mixed-precision jobs."""
    from tests.test_driver import _tiny_lu

    _tiny_lu(tmp_path, monkeypatch)
    out = tmp_path / "out"
    seen: list[bool] = []
    real = driver.compute_job

    def spy(*a, **k):
        tables, wall = real(*a, **k)
        seen.append(bool(CLAIMS["lu2023"].Config.model_validate(a[1]).execution.amp))
        return tables, wall

    monkeypatch.setattr(driver, "compute_job", spy)
    driver.verify(["lu2023"], "quick", out, workers=1, log=lambda m: None, amp=True)
    assert seen == [True, True]
    assert json.loads((out / "lu2023" / "claim.json").read_text())["amp"] is True
    driver.verify(["lu2023"], "quick", out, workers=1, log=lambda m: None)
    assert seen == [True, True, False, False]  # different fingerprints: both jobs ran again
