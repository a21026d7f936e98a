"""PatchCore (Roth et al. 2022) as a pure network: memory bank of locally aware patch features.

``forward``: (N, 3, H, W) 0..255 → scores (N,), maps (N, 1, H, W).

* features: backbone layer2 + layer3, p x p local average (p = 3), layer3 upsampled to layer2;
* nearest neighbour: exact squared-distance matmul against the whole bank on the device;
* image score: Eq. (4), the max patch distance s* reweighted by
  ``1 - softmax(||m_test - m||, m in N_b(m*))[m*]`` over the b nearest bank entries of m*;
* map: patch distances upsampled to the input size and blurred (sigma 4 px).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.models.contract import Normalization
from pipeline.models.layers import GaussianBlur, Normalize, PatchFeatures


@dataclass(frozen=True, slots=True)
class PatchCoreConfig:
    input_size_wh: tuple[int, int] = (848, 480)
    backbone: str = "wide_resnet50_2"
    patch_size: int = 3
    embed_dim: int | None = 1024
    coreset_ratio: float = 0.05
    projection_dim: int = 128
    num_neighbors: int = 3
    blur_sigma_px: float = 4.0
    batch_size: int = 4
    max_bank_features: int = 200_000


PRESETS = {
    # Table 3 (the paper used ResNeXt101; WideResNet50-2 is the reference implementation's default)
    "paper": PatchCoreConfig(),
    "tiny": PatchCoreConfig(input_size_wh=(160, 120), backbone="resnet18", embed_dim=None, coreset_ratio=0.1,
                            blur_sigma_px=2.0),
    # the server's default camera (320x240) at native resolution with a light backbone: ~35 s to fit
    # 100 frames on 2 CPU cores (docs/benchmarks.md)
    "twin": PatchCoreConfig(input_size_wh=(320, 240), backbone="resnet18", embed_dim=None, coreset_ratio=0.1,
                            blur_sigma_px=2.0),
}


class PatchCoreNet(nn.Module):
    memory_bank: torch.Tensor
    def __init__(self, cfg: PatchCoreConfig) -> None:
        super().__init__()
        self.normalize = Normalize(Normalization())
        self.features = PatchFeatures(cfg.backbone, cfg.patch_size, cfg.embed_dim)
        self.register_buffer("memory_bank", torch.zeros(0, self.features.out_dim))
        self.num_neighbors = cfg.num_neighbors
        self.blur = GaussianBlur(cfg.blur_sigma_px)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) 0..255 → patch features (N, C, h, w)."""
        out: torch.Tensor = self.features(self.normalize(x))
        return out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.embed(x)
        n, c, h, w = feats.shape
        bank = self.memory_bank
        q = feats.permute(0, 2, 3, 1).reshape(n, h * w, c)
        d2 = (q * q).sum(-1, keepdim=True) - 2.0 * q @ bank.T + (bank * bank).sum(-1)[None, None, :]
        min_d2, nn_idx = d2.min(dim=-1)
        dist = min_d2.clamp_min(0.0).sqrt()  # (n, hw)
        # Eq. (4): reweight the most anomalous patch by how isolated its nearest bank entry is
        s_star, pos = dist.max(dim=1)  # (n,)
        m_star_idx = nn_idx.gather(1, pos[:, None])[:, 0]
        m_star = bank.index_select(0, m_star_idx)  # (n, c)
        k = min(self.num_neighbors, int(bank.shape[0]))
        d_bank = (m_star * m_star).sum(-1, keepdim=True) - 2.0 * m_star @ bank.T + (bank * bank).sum(-1)[None]
        nb_idx = torch.topk(d_bank, k, dim=1, largest=False).indices  # (n, k), m* itself first
        q_star = q.gather(1, pos.view(n, 1, 1).expand(n, 1, c))  # (n, 1, c)
        nb = bank.index_select(0, nb_idx.reshape(-1)).reshape(n, k, c)
        d_nb = (q_star - nb).pow(2).sum(-1).clamp_min(0.0).sqrt()  # (n, k)
        weight = 1.0 - torch.softmax(d_nb, dim=1)[:, 0]
        scores = weight * s_star
        maps = dist.reshape(n, 1, h, w)
        maps = F.interpolate(maps, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return scores, self.blur(maps)


def build(cfg: PatchCoreConfig) -> PatchCoreNet:
    return PatchCoreNet(cfg)
