"""Model families the population trainer can stack (see :class:`PopulationModel`)."""

from __future__ import annotations

from ..config import ModelConfig, TwoLayerConfig
from .base import PopulationModel
from .module import FromModule
from .two_layer import TwoLayerReLU


def make_model(cfg: ModelConfig, input_shape: tuple[int, ...], out_dim: int = 1) -> PopulationModel:
    """The model family a config describes, for inputs of ``input_shape``."""
    if isinstance(cfg, TwoLayerConfig):
        d_in = 1
        for s in input_shape:
            d_in *= s
        return TwoLayerReLU(d_in, cfg.width, out_dim, bias=cfg.bias, output_bias=cfg.output_bias,
                            train_second_layer=cfg.train_second_layer, init_scale=cfg.init_scale)
    raise ValueError(f"unknown model kind {getattr(cfg, 'kind', cfg)!r}")  # pragma: no cover


__all__ = ["FromModule", "PopulationModel", "TwoLayerReLU", "make_model"]
