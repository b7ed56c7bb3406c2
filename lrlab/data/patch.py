"""Li, Wei & Ma's class-signature patch (docs/spec.md §1b) as a batched tensor operation.

A 7×7 patch z + s·ζ_y is written into the middle of an image: z is one shared Gaussian
pattern (easy to fit, carries no label), ζ_y a small per-class offset (hard to fit, low noise,
the label's signature) and s = ±1 a fresh sign on every use. On 20% of uses the whole image
is zeroed first and the offset is scaled by 1.75·U(0, 1), so the patch alone must carry the
label. Whole minibatches are patched at once: no per-image Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import PatchConfig

#: Group tags of a patched use, in tag order.
GROUPS = ("clean", "image+patch", "patch-only")


@dataclass(frozen=True)
class Uses:
    """The per-use draws for N images: sign s, whether the use is patch-only, and U(0, 1)."""

    sign: Tensor
    patch_only: Tensor
    u: Tensor


@dataclass(frozen=True)
class ClassPatch:
    """The fixed patterns: ``z`` [C_in, P, P] and ``zeta`` [num_classes, C_in, P, P]."""

    z: Tensor
    zeta: Tensor
    start: int
    patch_only_prob: float
    patch_only_scale: float

    @classmethod
    def draw(cls, cfg: PatchConfig, num_classes: int, image_shape: tuple[int, int, int]) -> ClassPatch:
        """z = z_scale·N(0, 1) and ζ_c ~ U[−zeta_scale, zeta_scale], from ``cfg.seed``."""
        c, h, w = image_shape
        if cfg.start + cfg.size > min(h, w):
            raise ValueError(f"patch window [{cfg.start}, {cfg.start + cfg.size}) does not fit in "
                             f"images of size {h}×{w}")
        g = torch.Generator().manual_seed(cfg.seed)
        z = cfg.z_scale * torch.randn(c, cfg.size, cfg.size, generator=g)
        zeta = (torch.rand(num_classes, c, cfg.size, cfg.size, generator=g) * 2 - 1) * cfg.zeta_scale
        return cls(z, zeta, cfg.start, cfg.patch_only_prob, cfg.patch_only_scale)

    @property
    def window(self) -> tuple[slice, slice]:
        s = slice(self.start, self.start + self.z.shape[-1])
        return s, s

    def draw_uses(self, n: int, generator: torch.Generator) -> Uses:
        """Fresh per-use randomness for n images (sign, patch-only coin, patch-only scale)."""
        sign = torch.randint(0, 2, (n,), generator=generator).mul_(2).sub_(1)
        patch_only = torch.rand(n, generator=generator) < self.patch_only_prob
        u = torch.rand(n, generator=generator)
        return Uses(sign, patch_only, u)

    def apply_(self, x: Tensor, y: Tensor, patchable: Tensor, uses: Uses) -> Tensor:
        """Patch normalised images ``x`` [N, C, H, W] in place; returns group tags [N].

        Rows with ``patchable`` False stay clean (tag 0); the others get z + s·ζ_y (tag 1) or,
        on patch-only uses, a zero image with z + s·scale·U·ζ_y (tag 2).
        """
        dev, dt = x.device, x.dtype
        patchable = patchable.to(dev)
        po = uses.patch_only.to(dev) & patchable
        sign = uses.sign.to(device=dev, dtype=dt)
        coef = torch.where(po, sign * self.patch_only_scale * uses.u.to(device=dev, dtype=dt), sign)
        patch = self.z.to(device=dev, dtype=dt) + coef.view(-1, 1, 1, 1) * self.zeta.to(device=dev, dtype=dt)[y]
        x.mul_((~po).to(dt).view(-1, 1, 1, 1))
        rows, cols = self.window
        win = x[:, :, rows, cols]
        win.copy_(torch.where(patchable.view(-1, 1, 1, 1), patch, win))
        return torch.where(patchable, 1 + po.long(), torch.zeros_like(po, dtype=torch.long))
