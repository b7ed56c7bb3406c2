"""lrlab — a laboratory for the large-learning-rate phase of neural-network training.

The curated public API::

    import lrlab
    cfg = lrlab.load_config("configs/li2019-toy/run.yaml", ["train.steps=2000"])
    split = lrlab.li2019_mixture(cfg.data, seed=0)                 # x, y, group
    model = lrlab.TwoLayerReLU(d_in=split.train.x.shape[1], width=256)
    members = lrlab.grid({"large": lrlab.StepDecay(0.1, (1000,), 0.04),
                          "small": lrlab.Constant(0.004)}, seeds=[0, 1, 2])
    res = lrlab.train_population(model, members, split.train, split.test, cfg.train)
    res.records            # one row per (member, step, metric)
    lrlab.verify(["li2019-toy"], "quick", Path("out"))            # a claim with verdicts
    split = lrlab.cifar10_split(cfg_cifar)                         # patched CIFAR-10 stream
    pdg = lrlab.phase_diagram(make_net, x, y, "squared", test=(xt, yt))  # lazy/catapult/divergent
    adv = lrlab.lr_advice(make_net, (x, y), "cross_entropy", batch_size=32)  # a rate to train at
    trace = lrlab.track_sharpness(make_net, x, y, lrs=[0.05, 0.1])  # edge of stability
    sched = lrlab.AutoDecay(optimizer)       # in your own loop: sched.step(epoch_loss); sched.should_stop
    fn = lrlab.feature_noise(FeatureNoiseConfig(), seed=0)       # Lu et al.'s weak/strong features
    model = lrlab.ReLU2CNN(d=64, filters=8)                        # their ReLU² CNN, F₊ − F₋
"""

from ._version import __version__
from .advice import LRAdvice, lr_advice
from .config import ConfigError, RunConfig, TrainConfig, load_config
from .data import (
    Dataset,
    ImageStream,
    Split,
    cifar10_split,
    cifar10_vectors,
    feature_noise,
    li2019_mixture,
    load_cifar10,
    make_dataset,
    ps10,
)
from .driver import verify
from .eos import SharpnessTrace, track_sharpness
from .experiment import resume, run
from .models import (
    NTKMLP,
    ActivationNoise,
    DeepLinear,
    FromModule,
    PopulationModel,
    ReLU2CNN,
    SmallCNN,
    TwoLayerReLU,
    UVModel,
    WideResNet,
)
from .phase import PhaseDiagram, phase_diagram
from .report import plot_phase_diagram, plot_sharpness
from .stats import Verdict
from .store import list_runs, load_run
from .train import (
    AutoDecay,
    AutoDecayRule,
    AutoDecaySchedule,
    Constant,
    Cosine,
    Member,
    PopulationResult,
    StepDecay,
    Until,
    grid,
    total_lr,
    train_population,
)
from .transfer import train_with_snapshots, transfer_stages, transferability

__all__ = [
    "ActivationNoise", "ConfigError", "Constant", "Cosine", "Dataset", "FromModule", "ImageStream",
    "Member", "PopulationModel", "PopulationResult", "RunConfig", "SmallCNN", "Split", "StepDecay",
    "TrainConfig", "TwoLayerReLU", "Until", "Verdict", "WideResNet", "__version__", "cifar10_split",
    "grid", "li2019_mixture", "list_runs", "load_cifar10", "load_config", "load_run",
    "make_dataset", "resume", "run", "total_lr", "train_population", "verify",
    "NTKMLP", "PhaseDiagram", "UVModel", "phase_diagram", "plot_phase_diagram",
    "SharpnessTrace", "cifar10_vectors", "plot_sharpness", "track_sharpness",
    "AutoDecay", "AutoDecayRule", "AutoDecaySchedule", "ps10", "train_with_snapshots",
    "transfer_stages", "transferability", "DeepLinear", "ReLU2CNN", "feature_noise",
    "LRAdvice", "lr_advice",
]
