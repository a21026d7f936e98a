"""Small building blocks shared by the networks: input normalisation, Gaussian blur, patch features."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.models.backbones import FEATURE_CHANNELS, ResNetTrunk
from pipeline.models.contract import Normalization


class Normalize(nn.Module):
    """(x - mean) / std per channel for x in 0..255, (N, 3, H, W) → same shape."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, norm: Normalization) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(norm.mean_255, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(norm.std_255, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class GaussianBlur(nn.Module):
    """Separable Gaussian blur of (N, 1, H, W) maps with reflection padding; sigma in pixels (0 = off)."""

    kx: torch.Tensor
    ky: torch.Tensor

    def __init__(self, sigma_px: float) -> None:
        super().__init__()
        self.sigma_px = float(sigma_px)
        radius = max(1, math.ceil(4.0 * sigma_px)) if sigma_px > 0 else 0
        self.radius = radius
        xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (xs / max(sigma_px, 1e-6)) ** 2)
        k = k / k.sum()
        self.register_buffer("kx", k.view(1, 1, 1, -1))
        self.register_buffer("ky", k.view(1, 1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.radius == 0:
            return x
        r = self.radius
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), self.kx)
        return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), self.ky)


class PatchFeatures(nn.Module):
    """Locally aware patch features (PatchCore/SimpleNet): layer2 + layer3, p x p average aggregation.

    ``forward``: (N, 3, H, W) normalised → (N, C, H/8, W/8) with C = ``embed_dim`` when set
    (adaptive average pooling over channels, as the reference implementations), else C2 + C3.
    """

    channel_pool: torch.Tensor

    def __init__(self, backbone: str, patch_size: int = 3, embed_dim: int | None = None) -> None:
        super().__init__()
        self.trunk = ResNetTrunk(backbone)
        self.patch_size = patch_size
        c = FEATURE_CHANNELS[backbone]
        self.raw_dim = c[1] + c[2]
        self.embed_dim = embed_dim if embed_dim and embed_dim < self.raw_dim else None
        self.out_dim = self.embed_dim or self.raw_dim
        # channel reduction as a fixed averaging matrix (= adaptive average pooling over channels)
        pool = torch.zeros(self.raw_dim, self.out_dim)
        for j in range(self.out_dim):
            a = (j * self.raw_dim) // self.out_dim
            b = -((-(j + 1) * self.raw_dim) // self.out_dim)
            pool[a:b, j] = 1.0 / (b - a)
        self.register_buffer("channel_pool", pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, f2, f3 = self.trunk(x)
        p = self.patch_size
        if p > 1:
            f2 = F.avg_pool2d(f2, p, 1, p // 2, count_include_pad=False)
            f3 = F.avg_pool2d(f3, p, 1, p // 2, count_include_pad=False)
        f3 = F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        feats = torch.cat([f2, f3], dim=1)
        if self.embed_dim is not None:
            feats = torch.einsum("nchw,cd->ndhw", feats, self.channel_pool)
        return feats
