"""The plan of one run config (:class:`lrlab.config.RunConfig`) without loading its data.

For claims whose jobs train run configs through :func:`lrlab.experiment.run`: the model is
built as :mod:`lrlab.experiment` builds it, the input shape, training-set size and output size
come from the data config alone, and the step count is the trainer's (``unit: epoch`` counts
``n // batch`` steps per epoch: a last partial batch is dropped). One trainer call, one stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import (
    AutoDecayScheduleConfig,
    Cifar10PatchConfig,
    DataConfig,
    FeatureNoiseConfig,
    Li2019MixtureConfig,
    PS10Config,
    RunConfig,
)
from ..models import make_model
from ..plan import Stage

CIFAR10_TRAIN_PER_CLASS = 5000
"""Training images per class of CIFAR-10 (all 50,000 when ``data.n_per_class`` is None)."""
CIFAR10_CLASSES = 10
CIFAR10_IMAGE = (3, 32, 32)


@dataclass(frozen=True)
class DataShape:
    """What a data config trains on: one example's shape, the training-set size and the
    model's output size (1 for binary tasks, else the class count)."""

    input_shape: tuple[int, ...]
    n_train: int
    out_dim: int


def data_shape(data: DataConfig) -> DataShape:
    """The :class:`DataShape` of a data config, from its settings (no data is drawn or read)."""
    if isinstance(data, Li2019MixtureConfig):  # x = (x1, x2), binary labels
        return DataShape((2 * data.d,), data.n_train, 1)
    if isinstance(data, Cifar10PatchConfig):
        per_class = data.n_per_class or CIFAR10_TRAIN_PER_CLASS
        return DataShape(CIFAR10_IMAGE, per_class * CIFAR10_CLASSES, CIFAR10_CLASSES)
    if isinstance(data, PS10Config):
        return DataShape((data.channels, data.image_size, data.image_size), data.n_train, data.n_classes)
    if isinstance(data, FeatureNoiseConfig):  # three patches in R^d, binary labels
        return DataShape((3, data.d), data.n_train, 1)
    raise ValueError(f"cannot plan data of kind {getattr(data, 'kind', data)!r}")


def train_steps(rc: RunConfig, n_train: int) -> tuple[int, int]:
    """(minibatch, optimizer steps) of ``rc`` on ``n_train`` examples, as the trainer counts them."""
    B = rc.train.batch_size
    if B is not None and B > n_train:
        raise ValueError(f"train.batch_size {B} is larger than the training set ({n_train} examples)")
    batch = B or n_train
    return batch, rc.train.in_steps(n_train // batch).steps


def run_stages(rc: RunConfig, label: str | None = None) -> list[Stage]:
    """The training of one :func:`lrlab.experiment.run` of ``rc``: one stage of every schedule ×
    seed as members (capped when an adaptive schedule may stop early). ``label`` defaults to
    the schedules and seed count."""
    shape = data_shape(rc.data)
    model = make_model(rc.model, shape.input_shape, shape.out_dim,
                       activation_noise=bool(rc.population.activation_noise))
    batch, steps = train_steps(rc, shape.n_train)
    schedules, seeds = rc.population.schedules, rc.population.seeds
    if label is None:
        label = f"{', '.join(schedules)} × {len(seeds)} seed{'s' if len(seeds) != 1 else ''}"
    capped = any(isinstance(s, AutoDecayScheduleConfig) for s in schedules.values())
    return [Stage(label, model, shape.input_shape, batch, steps, len(schedules) * len(seeds), capped)]
