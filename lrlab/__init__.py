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
"""

__version__ = "0.1.0"

from .config import ConfigError, RunConfig, TrainConfig, load_config  # noqa: E402
from .data import Dataset, Split, li2019_mixture, make_dataset  # noqa: E402
from .experiment import resume, run  # noqa: E402
from .models import FromModule, PopulationModel, TwoLayerReLU  # noqa: E402
from .store import list_runs, load_run  # noqa: E402
from .train import (  # noqa: E402
    Constant, Cosine, Member, PopulationResult, StepDecay, grid, total_lr, train_population,
)
from .claims import Verdict, verify  # noqa: E402

__all__ = [
    "ConfigError", "Constant", "Cosine", "Dataset", "FromModule", "Member", "PopulationModel",
    "PopulationResult", "RunConfig", "Split", "StepDecay", "TrainConfig", "TwoLayerReLU",
    "Verdict", "__version__", "grid", "li2019_mixture", "list_runs", "load_config", "load_run",
    "make_dataset", "resume", "run", "total_lr", "train_population", "verify",
]
