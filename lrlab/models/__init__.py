"""Model families the population trainer can stack (see :class:`PopulationModel`)."""

from __future__ import annotations

from ..config import ModelConfig, ReLU2CNNConfig, SmallCNNConfig, TwoLayerConfig, WideResNetConfig
from .base import PopulationModel
from .cnn import SmallCNN
from .linear import DeepLinear
from .mlp import NTKMLP, torch_mlp
from .module import FromModule
from .noise import ActivationNoise
from .relu2_cnn import ReLU2CNN, ReLU2CNNModule
from .two_layer import TwoLayerReLU
from .uv import UVModel, uv_recurrence
from .wide_resnet import WideResNet


def make_model(cfg: ModelConfig, input_shape: tuple[int, ...], out_dim: int = 1,
               activation_noise: bool = False) -> PopulationModel:
    """The model family a config describes, for inputs of ``input_shape``.

    ``activation_noise`` puts an :class:`ActivationNoise` layer before every BN→ReLU of an
    image model (the population sets its σ per member).
    """
    if isinstance(cfg, (SmallCNNConfig, WideResNetConfig)):
        if len(input_shape) != 3:
            raise ValueError(f"model {cfg.kind!r} needs image inputs [C, H, W], got shape {input_shape}")
        if input_shape[0] != 3:
            raise ValueError(f"model {cfg.kind!r} expects 3-channel images, got {input_shape[0]} channels")
        if isinstance(cfg, SmallCNNConfig):
            return FromModule(lambda: SmallCNN(out_dim, cfg.width, activation_noise,
                                               downsample=cfg.downsample, noise_site=cfg.noise_site),
                              channels_last=True)
        return FromModule(lambda: WideResNet(cfg.depth, cfg.width, out_dim, cfg.dropout, activation_noise,
                                             noise_site=cfg.noise_site), channels_last=True)
    if activation_noise:
        raise ValueError(f"activation noise needs an image model with BatchNorm, not {cfg.kind!r}")
    if isinstance(cfg, TwoLayerConfig):
        d_in = 1
        for s in input_shape:
            d_in *= s
        return TwoLayerReLU(d_in, cfg.width, out_dim, bias=cfg.bias, output_bias=cfg.output_bias,
                            train_second_layer=cfg.train_second_layer, init_scale=cfg.init_scale)
    if isinstance(cfg, ReLU2CNNConfig):
        if len(input_shape) != 2 or out_dim != 1:
            raise ValueError(f"model 'relu2_cnn' needs binary data of patches [P, d], got inputs "
                             f"{input_shape} and {out_dim} outputs")
        return ReLU2CNN(input_shape[1], cfg.filters, cfg.init_std, patches=input_shape[0])
    raise ValueError(f"unknown model kind {getattr(cfg, 'kind', cfg)!r}")  # pragma: no cover


__all__ = ["ActivationNoise", "DeepLinear", "FromModule", "NTKMLP", "PopulationModel", "ReLU2CNN",
           "ReLU2CNNModule", "SmallCNN", "TwoLayerReLU", "UVModel", "WideResNet", "make_model",
           "torch_mlp", "uv_recurrence"]
