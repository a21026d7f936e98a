"""The trivial baseline: a per-pixel Gaussian of the colour, fitted on normal frames.

Map = sum over RGB of ``(x - mean)^2 / var`` per pixel (a diagonal Mahalanobis distance), blurred;
image score = the map's maximum. Every real model must beat it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.models.contract import U8
from pipeline.models.errors import TrainingError
from pipeline.models.layers import GaussianBlur
from pipeline.models.training import FitContext, to_input_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GaussianConfig:
    input_size_wh: tuple[int, int] = (320, 240)
    #: variance floor (in 0..255 units squared) so flat pixels do not explode
    min_var: float = 25.0
    blur_sigma_px: float = 2.0


PRESETS = {
    "tiny": GaussianConfig(input_size_wh=(160, 120)),
    "paper": GaussianConfig(input_size_wh=(640, 480)),
}


class GaussianNet(nn.Module):
    """(N, 3, H, W) 0..255 → scores (N,), maps (N, 1, H, W)."""

    mean: torch.Tensor
    inv_var: torch.Tensor

    def __init__(self, cfg: GaussianConfig) -> None:
        super().__init__()
        w, h = cfg.input_size_wh
        self.register_buffer("mean", torch.zeros(1, 3, h, w))
        self.register_buffer("inv_var", torch.ones(1, 3, h, w))
        self.blur = GaussianBlur(cfg.blur_sigma_px)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = ((x - self.mean) ** 2 * self.inv_var).sum(dim=1, keepdim=True)
        maps = self.blur(d)
        scores = maps.flatten(1).amax(dim=1)
        return scores, maps


def build(cfg: GaussianConfig) -> GaussianNet:
    return GaussianNet(cfg)


def pixel_stats(x: torch.Tensor, min_var: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) inputs → the per-pixel mean and inverse variance (1, 3, H, W), the variance floored
    at ``min_var``; computed in float64."""
    x64 = x.double()
    var = x64.var(0, keepdim=True).clamp_min(min_var)
    return x64.mean(0, keepdim=True).float(), (1.0 / var).float()


def fit(cfg: GaussianConfig, images: U8, ctx: FitContext) -> GaussianNet:
    """Per-pixel mean and variance over ``images`` (N, H, W, 3) uint8."""
    if len(images) < 2:
        raise TrainingError("the Gaussian baseline needs at least 2 normal images")
    net = GaussianNet(cfg)
    mean, inv_var = pixel_stats(to_input_tensor(images, cfg.input_size_wh), cfg.min_var)
    net.mean.copy_(mean)
    net.inv_var.copy_(inv_var)
    ctx.tick(1, 1)
    log.info("gaussian baseline fitted on %d images", len(images))
    return net.eval()


__all__ = ["PRESETS", "GaussianConfig", "GaussianNet", "build", "fit", "pixel_stats"]
