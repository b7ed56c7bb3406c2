"""The population trainer with BatchNorm models, image streams, activation noise and epochs."""

from __future__ import annotations

import pytest
import torch

from lrlab import experiment
from lrlab.config import RunConfig, TrainConfig
from lrlab.experiment import prepare
from lrlab.models import FromModule, SmallCNN
from lrlab.train import StepDecay, Until, train_population
from lrlab.train.population import _Trainer
from tests.helpers import assert_records_close, interrupt_at, tiny_image_run_dict


def _prep(cifar_root, **sections):
    return prepare(RunConfig.model_validate(tiny_image_run_dict(cifar_root, **sections)))


def _train(prep, mode: str, **kw):
    cfg = prep.train_cfg.model_copy(update={"mode": mode})
    return train_population(prep.model, prep.members, prep.train, prep.test, cfg, **kw)


def test_epochs_become_steps(cifar_root):
    prep = _prep(cifar_root)
    assert prep.steps_per_epoch == 3  # 60 images, batch 20
    tc = prep.train_cfg
    assert (tc.unit, tc.steps, tc.eval_every) == ("step", 6, 3)
    large = next(m for m in prep.members if m.name == "large")
    assert large.schedule == StepDecay(0.1, (3,), 0.04)
    noisy = next(m for m in prep.members if m.name == "noise")
    assert noisy.noise == Until(0.4, 3)
    assert all(m.noise is None for m in prep.members if m.name != "noise")
    with pytest.raises(ValueError, match="in_steps"):
        train_population(prep.model, prep.members, prep.train, prep.test,
                         prep.train_cfg.model_copy(update={"unit": "epoch"}))


def test_batchnorm_vectorized_matches_loop(cifar_root):
    prep = _prep(cifar_root, population={"activation_noise": {}, "seeds": [0, 1],
                                         "schedules": {"a": {"kind": "constant", "lr": 0.05},
                                                       "b": {"kind": "constant", "lr": 0.01}}})
    vec, loop = _train(prep, "vectorized"), _train(prep, "loop")
    assert (vec.mode, loop.mode) == ("vectorized", "loop")
    for k in vec.params:
        torch.testing.assert_close(vec.params[k], loop.params[k], atol=2e-5, rtol=1e-4, msg=k)
    assert_records_close(vec.records, loop.records, atol=1e-4)
    init = prep.model.init([0])
    rm = next(k for k in vec.params if k.endswith("running_mean"))
    assert not torch.allclose(vec.params[rm][0], init[rm][0])  # running statistics were updated
    nbt = next(k for k in vec.params if k.endswith("num_batches_tracked"))
    assert vec.params[nbt].tolist() == [6, 6, 6, 6]


def test_eval_uses_running_statistics(cifar_root):
    prep = _prep(cifar_root, population={"activation_noise": {}, "seeds": [0],
                                         "schedules": {"a": {"kind": "constant", "lr": 0.05}}})
    res = _train(prep, "loop")
    mod = prep.model.to_module(res.params, 0).eval()
    test = prep.test["test"]
    with torch.no_grad():
        acc = (mod(test.x).argmax(1) == test.y).double().mean().item()
    assert res.final("test.acc").iloc[0] == pytest.approx(acc)


def test_noise_schedule_sets_sigma_and_changes_training(cifar_root):
    prep = _prep(cifar_root)
    res = _train(prep, "loop")
    sig = res.curve("noise_sigma")
    names = res.members.set_index("member").name
    noisy = [m for m in sig.columns if names[m] == "noise"]
    assert sig.loc[0, noisy].tolist() == [0.4, 0.4] and sig.loc[3, noisy].tolist() == [0.0, 0.0]
    assert (sig.drop(columns=noisy) == 0).all().all()
    small = [m for m in sig.columns if names[m] == "small"]
    acc = res.curve("test.acc")
    assert not torch.equal(torch.tensor(acc[noisy].to_numpy()), torch.tensor(acc[small].to_numpy()))
    again = _train(prep, "loop")
    assert_records_close(res.records, again.records)  # noise draws are seeded: same numbers


def test_noise_needs_noise_layers(cifar_root):
    prep = _prep(cifar_root)
    model = FromModule(lambda: SmallCNN(10, 4))  # built without ActivationNoise
    with pytest.raises(ValueError, match="no ActivationNoise layers"):
        train_population(model, prep.members, prep.train, prep.test, prep.train_cfg)


def test_running_batch_metrics_count_every_use(cifar_root):
    prep = _prep(cifar_root)
    tr = _Trainer(prep.model, prep.members, prep.train, prep.test, prep.train_cfg, None)
    for t in range(3):
        tr.update(t)
    counts = tr._running[2]
    assert counts.sum(1).tolist() == [60.0] * 6  # one epoch of 60 uses per member
    assert (counts[:, 0] == 12).all()  # the 12 unpatchable images (20% of 60) are always clean
    tr.evaluate(3)
    assert float(tr._running.abs().sum()) == 0.0
    assert tr.eval_steps == [3]
    assert all(v[1:].isnan().all() for v in tr.evals.values())  # one evaluation recorded


def test_diverged_member_is_skipped_in_loop_mode(cifar_root):
    prep = _prep(cifar_root, population={"activation_noise": {}, "seeds": [0],
                                         "schedules": {"huge": {"kind": "constant", "lr": 1e6},
                                                       "ok": {"kind": "constant", "lr": 0.01}}})
    res = _train(prep, "loop")
    m = res.members.set_index("name")
    assert bool(m.loc["huge", "diverged"]) and not bool(m.loc["ok", "diverged"])
    assert res.final("test.acc").notna().tolist() == [False, True]


def test_image_run_resumes_exactly(cifar_root, tmp_path):
    cfg = RunConfig.model_validate(tiny_image_run_dict(cifar_root, train={"checkpoint_every": 1}))
    _, full = experiment.run(cfg, root=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        experiment.run(cfg, root=tmp_path / "b", progress=interrupt_at(4))
    rd = next((tmp_path / "b").iterdir())
    _, resumed = experiment.resume(rd)
    assert_records_close(full.records, resumed.records)


def test_image_run_stores_epochs_and_source(cifar_root, tmp_path):
    cfg = RunConfig.model_validate(tiny_image_run_dict(cifar_root))
    rd, res = experiment.run(cfg, root=tmp_path)
    from lrlab.store import load_run

    meta = load_run(rd).meta
    assert meta["steps_per_epoch"] == 3 and meta["steps"] == 6
    assert meta["data_source"] == str(cifar_root)
    metrics = set(res.records.metric)
    for m in ("test.acc", "test_patched.acc", "test_patched.patch-only.acc", "patch_only.acc",
              "batch.acc", "batch.patch-only.acc", "noise_sigma"):
        assert m in metrics
    assert "train.acc" not in metrics  # streams report running minibatch metrics instead


def test_cifar_data_must_be_fixed(cifar_root):
    from lrlab.config import ConfigError, validate

    with pytest.raises(ConfigError, match="data_seed: fixed"):
        validate(RunConfig, tiny_image_run_dict(cifar_root, data_seed="member"))
    with pytest.raises(ConfigError, match=r"activation_noise names \['nope'\] are not schedules"):
        validate(RunConfig, tiny_image_run_dict(
            cifar_root, population={"activation_noise": {"nope": {"sigma": 0.1}}}))


def test_image_model_rejects_vector_data():
    from lrlab.config import SmallCNNConfig
    from lrlab.models import make_model

    with pytest.raises(ValueError, match=r"needs image inputs \[C, H, W\], got shape \(10,\)"):
        make_model(SmallCNNConfig(width=4), (10,), 2)


def test_train_config_in_steps():
    cfg = TrainConfig(steps=2, eval_every=1)
    assert cfg.in_steps(5) is cfg  # unit 'step' is already in steps
    e = TrainConfig(unit="epoch", steps=2, eval_every=1, checkpoint_every=2)
    assert e.in_steps(5).model_dump(include={"steps", "eval_every", "checkpoint_every"}) == {
        "steps": 10, "eval_every": 5, "checkpoint_every": 10}


def test_extra_probes_run_every_probe_every_steps():
    from lrlab.config import TrainConfig
    from lrlab.data import li2019_mixture
    from lrlab.models import TwoLayerReLU
    from lrlab.train import Constant, grid
    from tests.helpers import tiny_data_cfg

    split = li2019_mixture(tiny_data_cfg(), 0)
    model = TwoLayerReLU(10, 8)
    members = grid({"a": Constant(0.1)}, [0, 1], data_per_seed=False)
    cfg = TrainConfig(steps=8, eval_every=2, batch_size=16)
    calls = []

    def norm(m, p):
        calls.append(1)
        return p["W"].flatten(1).norm(dim=1)

    res = train_population(model, members, split.train, None, cfg, probes={"w_norm": norm}, probe_every=4)
    curve = res.curve("w_norm")
    assert list(curve.index) == [0, 2, 4, 6, 8]
    assert curve.loc[[2, 6]].isna().all().all() and curve.loc[[0, 4, 8]].notna().all().all()
    assert len(calls) == 3
    torch.testing.assert_close(torch.tensor(curve.loc[8].to_numpy()), res.params["W"].flatten(1).norm(dim=1).double())
    with pytest.raises(ValueError, match="probe_every must be a positive multiple of eval_every=2"):
        train_population(model, members, split.train, None, cfg, probes={"w_norm": norm}, probe_every=3)


def test_probe_every_may_set_a_cadence_per_probe():
    from lrlab.config import TrainConfig
    from lrlab.data import li2019_mixture
    from lrlab.models import TwoLayerReLU
    from lrlab.train import Constant, grid
    from tests.helpers import tiny_data_cfg

    split = li2019_mixture(tiny_data_cfg(), 0)
    model = TwoLayerReLU(10, 8)
    members = grid({"a": Constant(0.1)}, [0], data_per_seed=False)
    cfg = TrainConfig(steps=12, eval_every=2, batch_size=16)
    probes = {"w": lambda m, p: p["W"].flatten(1).norm(dim=1), "one": lambda m, p: torch.ones(1)}
    res = train_population(model, members, split.train, None, cfg, probes=probes,
                           probe_every={"w": 6})
    assert list(res.curve("w").dropna().index) == [0, 6, 12]
    assert list(res.curve("one").dropna().index) == [0, 2, 4, 6, 8, 10, 12]  # absent: every probe
    with pytest.raises(ValueError, match="'bogus', which is not a probe"):
        train_population(model, members, split.train, None, cfg, probes=probes, probe_every={"bogus": 2})
    with pytest.raises(ValueError, match=r"probe_every\['w'\] must be a positive multiple of eval_every=2"):
        train_population(model, members, split.train, None, cfg, probes=probes, probe_every={"w": 3})
