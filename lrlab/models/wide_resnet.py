"""Pre-activation Wide ResNet (Zagoruyko & Komodakis, 2016), the network of the Li et al. patch experiment.

Layout and init follow the widely used PyTorch WRN that Li, Wei & Ma's code
(cwein3/large-lr-code, ``models/wideresnet.py``) builds on, so WRN-16-10 has the same
17,116,634 parameters. One difference: the head averages over the whole feature map instead of
a fixed 8×8 window (identical on 32×32 inputs, and it also accepts other sizes).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from .noise import BNReLU


def wrn_init_(model: nn.Module) -> nn.Module:
    """Initialise in place as the reference WRN does: conv ~ N(0, 2/(k·k·out)), BN 1/0, Linear bias 0.

    Linear weights keep PyTorch's default (uniform ±1/√fan_in), as in the reference.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def bias_free_conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Conv2d:
    """A bias-free k×k convolution with 'same' padding (BN follows, so a bias would be redundant)."""
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)


def require_int(name: str, value: object, minimum: int) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class WideBasicBlock(nn.Module):
    """BN→ReLU→conv3×3(stride)→BN→ReLU→(dropout)→conv3×3, plus a shortcut.

    The shortcut is the identity on the raw input, or, when the block changes channels or
    resolution, a bias-free 1×1 conv applied to the pre-activated input (as in the reference).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float = 0.0,
                 noise: bool = False, noise_site: str = "after_bn") -> None:
        super().__init__()
        self.act1 = BNReLU(c_in, noise, noise_site)
        self.conv1 = bias_free_conv(c_in, c_out, 3, stride)
        self.act2 = BNReLU(c_out, noise, noise_site)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = bias_free_conv(c_out, c_out, 3)
        self.shortcut = bias_free_conv(c_in, c_out, 1, stride) if c_in != c_out or stride != 1 else None

    def forward(self, x: Tensor) -> Tensor:
        a = self.act1(x)
        h = self.conv2(self.dropout(self.act2(self.conv1(a))))
        return h + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(nn.Module):
    """WRN-depth-width for 3-channel images: conv3×3(16), three stages of widths 16k, 32k, 64k.

    depth = 6n + 4 gives n basic blocks per stage; stages 2 and 3 halve the resolution. The head
    is BN→ReLU→global average pool→Linear. With ``activation_noise=True`` an
    :class:`~lrlab.models.noise.ActivationNoise` (σ buffer, default 0) sits at every BN→ReLU pair,
    including the head's; ``noise_site`` picks its side of the BN (see ``BNReLU``).
    """

    def __init__(self, depth: int = 16, width: int = 10, num_classes: int = 10, dropout: float = 0.0,
                 activation_noise: bool = False, *, noise_site: str = "after_bn") -> None:
        super().__init__()
        require_int("depth", depth, 10)
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got depth={depth}")
        require_int("width", width, 1)
        require_int("num_classes", num_classes, 1)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        self.depth, self.width, self.blocks_per_stage = depth, width, (depth - 4) // 6
        channels = [16, 16 * width, 32 * width, 64 * width]

        self.stem = bias_free_conv(3, channels[0], 3)
        stages = []
        for i, stride in enumerate((1, 2, 2)):
            blocks = [WideBasicBlock(channels[i] if j == 0 else channels[i + 1], channels[i + 1],
                                     stride if j == 0 else 1, dropout, activation_noise, noise_site)
                      for j in range(self.blocks_per_stage)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head_act = BNReLU(channels[3], activation_noise, noise_site)
        self.fc = nn.Linear(channels[3], num_classes)
        wrn_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"WideResNet expects images [B, 3, H, W], got shape {tuple(x.shape)}")
        h = self.head_act(self.stages(self.stem(x)))
        return self.fc(h.mean(dim=(-2, -1)))
