"""Datasets: tensors x, y and a group tag per example (see :class:`Dataset`)."""

from __future__ import annotations

from ..config import DataConfig, FeatureNoiseConfig, Li2019MixtureConfig, PS10Config
from .cifar import (
    ImageArrays,
    balanced_subset,
    default_cache_dir,
    load_cifar10,
    resolve_source,
)
from .dataset import Dataset, Split, as_dataset, infer_task, xy_of
from .feature_noise import FEATURE_NOISE_GROUPS, FeatureNoiseData, feature_noise
from .images import ImageSplit, ImageStream, cifar10_split, cifar10_vectors, normalize
from .mixture import li2019_mixture
from .patch import ClassPatch
from .ps10 import PS10_GROUPS, ps10
from .separability import (
    cifar_two_class,
    degenerate_nonseparable,
    degenerate_separable,
    gaussian_data,
    is_linearly_separable,
)
from .stacked import StackedData
from .toy import two_moons


def make_dataset(cfg: DataConfig, seed: int) -> Split:
    """Build the train/test split a data config describes, deterministically in ``seed``."""
    if isinstance(cfg, Li2019MixtureConfig):
        return li2019_mixture(cfg, seed)
    if isinstance(cfg, PS10Config):
        return ps10(cfg, seed)
    if isinstance(cfg, FeatureNoiseConfig):
        return feature_noise(cfg, seed).split
    raise ValueError(f"data kind {getattr(cfg, 'kind', cfg)!r} is not a tensor dataset "
                     "(image data: use cifar10_split)")


__all__ = [
    "FEATURE_NOISE_GROUPS",
    "FeatureNoiseData",
    "feature_noise",
    "ClassPatch",
    "Dataset",
    "as_dataset",
    "infer_task",
    "xy_of",
    "ImageSplit",
    "ImageStream",
    "cifar10_split",
    "cifar10_vectors",
    "cifar_two_class",
    "degenerate_nonseparable",
    "degenerate_separable",
    "gaussian_data",
    "is_linearly_separable",
    "normalize",
    "ImageArrays",
    "PS10_GROUPS",
    "Split",
    "StackedData",
    "balanced_subset",
    "default_cache_dir",
    "li2019_mixture",
    "load_cifar10",
    "make_dataset",
    "ps10",
    "resolve_source",
    "two_moons",
]
