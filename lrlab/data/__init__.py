"""Datasets: tensors x, y and a group tag per example (see :class:`Dataset`)."""

from __future__ import annotations

from ..config import DataConfig, Li2019MixtureConfig
from .dataset import Dataset, Split
from .mixture import li2019_mixture


def make_dataset(cfg: DataConfig, seed: int) -> Split:
    """Build the train/test split a data config describes, deterministically in ``seed``."""
    if isinstance(cfg, Li2019MixtureConfig):
        return li2019_mixture(cfg, seed)
    raise ValueError(f"unknown data kind {getattr(cfg, 'kind', cfg)!r}")  # pragma: no cover


__all__ = ["Dataset", "Split", "li2019_mixture", "make_dataset"]
