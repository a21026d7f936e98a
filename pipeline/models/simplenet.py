"""SimpleNet (Liu et al. 2023) as a pure network: frozen patch features, adapter, discriminator.

``forward``: (N, 3, H, W) 0..255 → scores (N,), maps (N, 1, H, W).
Patch features as PatchCore (layer2 + layer3, p = 3), a linear feature adapter, and a 2-layer
discriminator (Linear → BatchNorm → LeakyReLU → Linear). The anomaly score of a patch is the
negated discriminator output; the map is upsampled and blurred; image score = the map's maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.models.contract import Normalization
from pipeline.models.layers import GaussianBlur, Normalize, PatchFeatures


@dataclass(frozen=True, slots=True)
class SimpleNetConfig:
    input_size_wh: tuple[int, int] = (322, 322)
    backbone: str = "wide_resnet50_2"
    patch_size: int = 3
    embed_dim: int = 1536
    hidden_dim: int = 1024
    noise_std: float = 0.015
    margin: float = 0.5
    meta_epochs: int = 40
    gan_epochs: int = 4
    batch_size: int = 8
    lr_adapter: float = 1e-4
    lr_discriminator: float = 2e-4
    blur_sigma_px: float = 4.0


PRESETS = {
    "paper": SimpleNetConfig(),
    "tiny": SimpleNetConfig(input_size_wh=(160, 120), backbone="resnet18", embed_dim=384, hidden_dim=128,
                            meta_epochs=6, gan_epochs=2, blur_sigma_px=2.0),
    "twin": SimpleNetConfig(input_size_wh=(640, 480), backbone="resnet18", embed_dim=384, hidden_dim=256,
                            meta_epochs=10, gan_epochs=4),
}


class Discriminator(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.2),
                                  nn.Linear(hidden, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out


class SimpleNetNet(nn.Module):
    def __init__(self, cfg: SimpleNetConfig) -> None:
        super().__init__()
        self.normalize = Normalize(Normalization())
        self.features = PatchFeatures(cfg.backbone, cfg.patch_size, cfg.embed_dim)
        d = self.features.out_dim
        self.adapter = nn.Linear(d, d)
        self.discriminator = Discriminator(d, cfg.hidden_dim)
        self.blur = GaussianBlur(cfg.blur_sigma_px)

    def patch_features(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(N, 3, H, W) 0..255 → frozen features (N·h·w, C) and (h, w)."""
        f = self.features(self.normalize(x))
        n, c, h, w = f.shape
        return f.permute(0, 2, 3, 1).reshape(n * h * w, c), (h, w)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, (h, w) = self.patch_features(x)
        patch_scores = -self.discriminator(self.adapter(f))
        maps = patch_scores.reshape(x.shape[0], 1, h, w)
        maps = self.blur(F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return maps.flatten(1).amax(dim=1), maps


def build(cfg: SimpleNetConfig) -> SimpleNetNet:
    return SimpleNetNet(cfg)
