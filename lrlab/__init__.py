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
    trace = lrlab.track_sharpness(make_net, x, y, lrs=[0.05, 0.1])  # edge of stability
    sched = lrlab.AutoDecay(optimizer)       # in your own loop: sched.step(epoch_loss); sched.should_stop
    fn = lrlab.feature_noise(FeatureNoiseConfig(), seed=0)       # Lu et al.'s weak/strong features
    model = lrlab.ReLU2CNN(d=64, filters=8)                        # their ReLU² CNN, F₊ − F₋
"""

__version__ = "0.1.0"

from .config import ConfigError, RunConfig, TrainConfig, load_config  # noqa: E402
from .data import (  # noqa: E402
    Dataset, ImageStream, Split, cifar10_split, li2019_mixture, load_cifar10, make_dataset,
)
from .experiment import resume, run  # noqa: E402
from .models import (  # noqa: E402
    NTKMLP, ActivationNoise, DeepLinear, FromModule, PopulationModel, SmallCNN, TwoLayerReLU,
    UVModel, WideResNet,
)
from .store import list_runs, load_run  # noqa: E402
from .train import (  # noqa: E402
    Constant, Cosine, Member, PopulationResult, StepDecay, Until, grid, total_lr, train_population,
)
from .claims import Verdict, verify  # noqa: E402
from .phase import PhaseDiagram, phase_diagram, plot_phase_diagram  # noqa: E402
from .eos import SharpnessTrace, plot_sharpness, track_sharpness  # noqa: E402
from .data import cifar10_vectors, feature_noise, ps10  # noqa: E402
from .models import ReLU2CNN  # noqa: E402
from .train.autodecay import AutoDecay, AutoDecayRule, AutoDecaySchedule  # noqa: E402
from .transfer import train_with_snapshots, transfer_stages, transferability  # noqa: E402

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
]
