"""EfficientAD (Batzner et al. 2024) as a pure network: PDN teacher, student, autoencoder.

``forward``: (N, 3, H, W) 0..255 → scores (N,), maps (N, 1, H, W).

* local map: mean over channels of (teacher − student[:384])², teacher features standardised;
* global map: mean over channels of (autoencoder − student[384:])²;
* each map is quantile-normalised with ``0.1 (m − q_a) / (q_b − q_a)`` (q_a, q_b: the 0.9 and
  0.995 quantiles on normal validation images), the two are averaged, padded by 4 px with their
  edge values (the PDN has no padding in its last layers) and resized to the input; score = the
  map's maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.models.contract import Normalization
from pipeline.models.layers import Normalize
from pipeline.models.pdn import AutoEncoder, pdn, pdn_output_hw


@dataclass(frozen=True, slots=True)
class EfficientADConfig:
    input_size_wh: tuple[int, int] = (256, 256)
    pdn_size: str = "small"
    out_channels: int = 384
    steps: int = 70_000
    batch_size: int = 1
    lr: float = 1e-4
    weight_decay: float = 1e-5
    hard_quantile: float = 0.999
    #: "random": a random PDN teacher; "distilled": a PDN distilled from the backbone below first
    teacher: str = "random"
    distill_backbone: str = "resnet18"
    distill_steps: int = 2000
    ae_base: int = 64


PRESETS = {
    "paper-s": EfficientADConfig(),
    "paper-m": EfficientADConfig(pdn_size="medium"),
    "tiny": EfficientADConfig(input_size_wh=(160, 120), out_channels=64, steps=150, batch_size=2, lr=1e-3,
                              ae_base=32),
    "twin-s": EfficientADConfig(input_size_wh=(640, 480), steps=1500, batch_size=1, lr=1e-4),
}
PRESETS["paper"] = PRESETS["paper-s"]


class EfficientADNet(nn.Module):
    teacher_mean: torch.Tensor
    teacher_std: torch.Tensor
    quantiles: torch.Tensor
    def __init__(self, cfg: EfficientADConfig) -> None:
        super().__init__()
        w, h = cfg.input_size_wh
        c = cfg.out_channels
        self.out_channels = c
        self.normalize = Normalize(Normalization())
        self.teacher = pdn(cfg.pdn_size, c)
        self.student = pdn(cfg.pdn_size, 2 * c)
        out_hw = pdn_output_hw(cfg.pdn_size, (h, w))
        self.autoencoder = AutoEncoder((h, w), out_hw, c, cfg.ae_base)
        self.register_buffer("teacher_mean", torch.zeros(1, c, 1, 1))
        self.register_buffer("teacher_std", torch.ones(1, c, 1, 1))
        self.register_buffer("quantiles", torch.tensor([0.0, 1.0, 0.0, 1.0]))  # q_st_a, q_st_b, q_ae_a, q_ae_b

    def raw_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised local and global maps (N, 1, h', w') at the PDN's output size."""
        xn = self.normalize(x)
        t = (self.teacher(xn) - self.teacher_mean) / self.teacher_std
        s = self.student(xn)
        a = self.autoencoder(xn)
        c = self.out_channels
        map_st = ((t - s[:, :c]) ** 2).mean(dim=1, keepdim=True)
        map_ae = ((a - s[:, c:]) ** 2).mean(dim=1, keepdim=True)
        return map_st, map_ae

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        map_st, map_ae = self.raw_maps(x)
        q = self.quantiles
        map_st = 0.1 * (map_st - q[0]) / (q[1] - q[0])
        map_ae = 0.1 * (map_ae - q[2]) / (q[3] - q[2])
        maps = 0.5 * map_st + 0.5 * map_ae
        # the PDN's output lacks a 4-cell rim; extend the edge values into it (a zero rim would sit at the
        # 0.9 quantile of normal and outrank the whole interior of an ordinary frame)
        maps = F.pad(maps, (4, 4, 4, 4), mode="replicate")
        maps = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return maps.flatten(1).amax(dim=1), maps


def build(cfg: EfficientADConfig) -> EfficientADNet:
    return EfficientADNet(cfg)
