"""MemSeg (Yang et al. 2023) as a pure network: encoder, memory module, multi-scale fusion, decoder.

``forward``: (N, 3, H, W) 0..255 → scores (N,), maps (N, 1, H, W) with the map = the decoder's
softmax probability of "anomalous" per pixel and the score = the mean of the map's ``top_k`` largest
values (as the reference implementation).

Architecture (follows the MemSeg paper and TooTouch's re-implementation that the paper used):

- **Encoder**: ResNet18 without pretraining. Stem..layer3 are frozen at their random initialisation
  (with BatchNorm statistics estimated on the normal images, see
  :func:`~pipeline.models.backbones.calibrate_batchnorm`), as the reference freezes layer1..3 so that
  the memory of normal features stays valid while training; layer4 is trained from scratch. A local
  torchvision state dict can replace the random stem..layer3 (``FitContext.backbone_weights``).
- **Memory module**: layer1..3 features of ``memory_size`` normal images. For each input, the nearest
  memory entry in L2 (per position by default, or per image as the MemSeg paper) is selected and the
  squared difference is concatenated to the input's features: ``[F, (F − M*)²]``.
- **Multi-scale feature fusion (MSFF)**: per level a 3x3 conv gated by coordinate attention
  (Hou et al. 2021), then two 3x3 convs halving the channels; coarse levels are upsampled and added
  to finer ones; each level is weighted by a spatial attention map, the channel mean of its
  difference features times the upsampled map of the coarser level (paper Eq. 7).
- **Decoder**: U-Net-like upsampling from layer4 with skip connections to the fused levels and the
  stem, ending in a 2-channel (normal, anomalous) segmentation at input resolution.

Training is in :mod:`pipeline.models.memseg_fit`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.models.backbones import BasicBlock, ResNetTrunk
from pipeline.models.contract import Normalization
from pipeline.models.errors import ConfigError
from pipeline.models.layers import Normalize
from pipeline.models.perlin import SimulationConfig

log = logging.getLogger(__name__)

MEMORY_MATCHES = ("position", "image")
#: Channels of the stem and layer1..layer4 of ResNet18.
ENCODER_CHANNELS = (64, 64, 128, 256, 512)


@dataclass(frozen=True, slots=True)
class MemSegConfig:
    """MemSeg settings; the ``paper`` preset is the paper's Table 3 / §6.

    ``memory_match``: ``"position"`` picks the nearest memory image per feature position,
    ``"image"`` one nearest memory image per input (summed over levels, MemSeg's original rule).
    ``steps`` optimiser iterations (``FitContext.max_steps`` overrides), with a linear warm-up over
    ``warmup_ratio`` of them and a cosine decay to ``min_lr``. The ``perlin_*`` … ``foreground`` fields
    configure the anomaly simulation (:class:`~pipeline.models.perlin.SimulationConfig`).
    """

    input_size_wh: tuple[int, int] = (256, 256)
    memory_size: int = 30
    memory_match: str = "position"
    steps: int = 15000
    batch_size: int = 8
    lr: float = 0.003
    weight_decay: float = 5e-4
    warmup_ratio: float = 0.2
    min_lr: float = 1e-4
    focal_weight: float = 0.7
    l1_weight: float = 0.3
    focal_gamma: float = 4.0
    top_k: int = 100
    decoder_width: float = 1.0
    perlin_scale: int = 5
    perlin_scale_min: int = 3
    perlin_threshold: float = 0.5
    transparency_range: tuple[float, float] = (0.8, 1.0)
    grid_size: int = 8
    texture_prob: float = 0.9
    anomaly_prob: float = 0.5
    foreground: str = "otsu"

    def simulation(self) -> SimulationConfig:
        return SimulationConfig(self.perlin_scale, self.perlin_scale_min, self.perlin_threshold,
                                (float(self.transparency_range[0]), float(self.transparency_range[1])),
                                self.grid_size, self.texture_prob, self.anomaly_prob, self.foreground)

    def validate(self) -> None:
        """Raises ConfigError for an option outside its domain."""
        if self.memory_match not in MEMORY_MATCHES:
            raise ConfigError(f"memseg memory_match {self.memory_match!r}; use one of {MEMORY_MATCHES}")
        if self.foreground not in ("otsu", "otsu_dark", "none"):
            raise ConfigError(f"memseg foreground {self.foreground!r}; use 'otsu', 'otsu_dark' or 'none'")
        w, h = self.input_size_wh
        if min(w, h) < 32:
            raise ConfigError(f"memseg input size {self.input_size_wh} is too small (need ≥ 32 px per side)")
        if self.memory_size < 1 or self.top_k < 1 or self.batch_size < 1:
            raise ConfigError("memseg memory_size, top_k and batch_size must be ≥ 1")


PRESETS = {
    "paper": MemSegConfig(),
    # CPU tests (~30 s on 2 cores): a 4:3 frame at 96x72, 80 steps of batch 4 at a steadier lr, a
    # quarter-width decoder; top_k and the Perlin periods scaled down with the pixel count
    "tiny": MemSegConfig(input_size_wh=(96, 72), memory_size=10, steps=80, batch_size=4, lr=0.001,
                         warmup_ratio=0.1, top_k=12, decoder_width=0.25, perlin_scale=4, perlin_scale_min=2),
    # the twin's 4:3 cameras at the paper's pixel budget
    "twin": MemSegConfig(input_size_wh=(320, 240), steps=5000),
}


class CoordAtt(nn.Module):
    """Coordinate attention: pooled along H and along W, a shared 1x1 conv, two sigmoid gates."""

    def __init__(self, channels: int, reduction: int = 32) -> None:
        super().__init__()
        mid = max(8, channels // reduction)
        self.conv1 = nn.Conv2d(channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(mid, channels, 1)
        self.conv_w = nn.Conv2d(mid, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        x_h = x.mean(dim=3, keepdim=True)                       # (N, C, H, 1)
        x_w = x.mean(dim=2, keepdim=True).transpose(2, 3)       # (N, C, W, 1)
        y = self.act(self.bn1(self.conv1(torch.cat([x_h, x_w], dim=2))))
        y_h, y_w = torch.split(y, [h, w], dim=2)
        a_h = torch.sigmoid(self.conv_h(y_h))
        a_w = torch.sigmoid(self.conv_w(y_w.transpose(2, 3)))
        return x * a_h * a_w


class MSFFBlock(nn.Module):
    """conv3x3(x) ⊙ CoordAtt(x), then two 3x3 convs to half the channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.attn = CoordAtt(channels)
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, 1, 1),
                                   nn.Conv2d(channels // 2, channels // 2, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv2(self.conv1(x) * self.attn(x))
        return out


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class MSFF(nn.Module):
    """Fuses the three [F, diff] levels (2·C1, 2·C2, 2·C3 channels) into C1, C2, C3 channels."""

    def __init__(self, c1: int, c2: int, c3: int) -> None:
        super().__init__()
        self.blk1, self.blk2, self.blk3 = MSFFBlock(2 * c1), MSFFBlock(2 * c2), MSFFBlock(2 * c3)
        self.conv32 = nn.Conv2d(c3, c2, 3, 1, 1)
        self.conv21 = nn.Conv2d(c2, c1, 3, 1, 1)
        self.channels = (c1, c2, c3)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor,
                f3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c1, c2, c3 = self.channels
        k1, k2, k3 = self.blk1(f1), self.blk2(f2), self.blk3(f3)
        k2 = k2 + self.conv32(_up(k3, k2))
        k1 = k1 + self.conv21(_up(k2, k1))
        # spatial attention from the difference half of each level (Eq. 7), coarse to fine
        m3 = f3[:, c3:].mean(dim=1, keepdim=True)
        m2 = f2[:, c2:].mean(dim=1, keepdim=True) * _up(m3, f2)
        m1 = f1[:, c1:].mean(dim=1, keepdim=True) * _up(m2, f1)
        return k1 * m1, k2 * m2, k3 * m3


class UpBlock(nn.Module):
    """Upsample to the skip's size, then (conv3x3, BN, ReLU) x 2."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
        out: torch.Tensor = self.body(F.interpolate(x, size=size_hw, mode="bilinear", align_corners=False))
        return out


class Decoder(nn.Module):
    """U-Net-like decoder: layer4 → (+fused l3) → (+fused l2) → (+fused l1) → (+stem) → full size → 2 logits.

    ``width`` scales the decoder's own channels (1.0 = the reference: 256, 128, 64, 48, 48). The head's
    bias starts at the prior "1% anomalous" (RetinaNet's focal-loss initialisation), so an untrained
    map is near 0 rather than 0.5 and training does not begin by unlearning a flat grey map.
    """

    def __init__(self, width: float = 1.0, prior: float = 0.01) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = ENCODER_CHANNELS
        d3, d2, d1, d0 = (max(8, round(c * width)) for c in (c3, c2, c1, 48))
        self.up3 = UpBlock(c4, d3)
        self.up2 = UpBlock(d3 + c3, d2)
        self.up1 = UpBlock(d2 + c2, d1)
        self.up0 = UpBlock(d1 + c1, d0)
        self.up_mask = UpBlock(d0 + c0, d0)
        self.head = nn.Conv2d(d0, 2, 3, 1, 1)
        with torch.no_grad():
            assert self.head.bias is not None
            self.head.bias.copy_(torch.tensor([0.0, math.log(prior / (1.0 - prior))]))

    def forward(self, f4: torch.Tensor, skips: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                size_hw: tuple[int, int]) -> torch.Tensor:
        f0, k1, k2, k3 = skips
        x = torch.cat([self.up3(f4, (k3.shape[2], k3.shape[3])), k3], dim=1)
        x = torch.cat([self.up2(x, (k2.shape[2], k2.shape[3])), k2], dim=1)
        x = torch.cat([self.up1(x, (k1.shape[2], k1.shape[3])), k1], dim=1)
        x = torch.cat([self.up0(x, (f0.shape[2], f0.shape[3])), f0], dim=1)
        out: torch.Tensor = self.head(self.up_mask(x, size_hw))
        return out


class Encoder(nn.Module):
    """ResNet18: ``trunk`` (stem..layer3, torchvision names, frozen) + ``layer4`` (trained)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ResNetTrunk("resnet18")
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        for m in self.layer4.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def frozen(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised (N, 3, H, W) → stem (H/2), layer1 (H/4), layer2 (H/8), layer3 (H/16)."""
        t = self.trunk
        f0 = t.relu(t.bn1(t.conv1(x)))
        f1 = t.layer1(t.maxpool(f0))
        f2 = t.layer2(f1)
        f3 = t.layer3(f2)
        return f0, f1, f2, f3


class MemoryLevel(nn.Module):
    """The memory of one encoder level: features (M, C, h, w) of M normal images."""

    memory_bank: torch.Tensor

    def __init__(self, channels: int, size_hw: tuple[int, int], m: int) -> None:
        super().__init__()
        self.register_buffer("memory_bank", torch.zeros(m, channels, *size_hw))


class Memory(nn.Module):
    """Selects the nearest memory features for layer1..3 and returns ``[F, (F − M*)²]`` per level."""

    def __init__(self, cfg: MemSegConfig) -> None:
        super().__init__()
        w, h = cfg.input_size_wh
        sizes = [_feature_size(h, w, s) for s in (4, 8, 16)]
        self.levels = nn.ModuleList(MemoryLevel(c, hw, cfg.memory_size)
                                    for c, hw in zip(ENCODER_CHANNELS[1:4], sizes, strict=True))
        self.match = cfg.memory_match

    def banks(self) -> list[torch.Tensor]:
        return [lvl.memory_bank for lvl in self.levels if isinstance(lvl, MemoryLevel)]

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        banks = self.banks()
        n_mem = banks[0].shape[0]
        chosen: list[torch.Tensor]
        if self.match == "position":
            chosen = []
            for f, bank in zip(feats, banks, strict=True):
                best, best_d = bank[0:1].expand_as(f), ((f - bank[0:1]) ** 2).sum(dim=1, keepdim=True)
                for j in range(1, n_mem):  # running minimum: no (N, M, C, h, w) intermediate
                    m = bank[j:j + 1]
                    d = ((f - m) ** 2).sum(dim=1, keepdim=True)
                    closer = d < best_d
                    best_d = torch.where(closer, d, best_d)
                    best = torch.where(closer, m, best)
                chosen.append(best)
        else:
            def dist(j: int) -> torch.Tensor:
                total = torch.zeros_like(feats[0][:, :1, :1, :1])
                for f, bank in zip(feats, banks, strict=True):
                    total = total + ((f - bank[j:j + 1]) ** 2).mean(dim=(1, 2, 3), keepdim=True)
                return total

            best_d = dist(0)
            chosen = [bank[0:1].expand_as(f) for f, bank in zip(feats, banks, strict=True)]
            for j in range(1, n_mem):
                d = dist(j)
                closer = d < best_d
                best_d = torch.where(closer, d, best_d)
                chosen = [torch.where(closer, bank[j:j + 1], c) for c, bank in zip(chosen, banks, strict=True)]
        return [torch.cat([f, (f - m) ** 2], dim=1) for f, m in zip(feats, chosen, strict=True)]


def _feature_size(h: int, w: int, stride: int) -> tuple[int, int]:
    """Spatial size of a ResNet feature map at ``stride`` (conv 7/2, maxpool 3/2, then 3x3/2 convs)."""
    for _ in range(stride.bit_length() - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


class MemSegNet(nn.Module):
    """The inference network. ``segment`` gives the 2-channel logits used for training."""

    def __init__(self, cfg: MemSegConfig) -> None:
        super().__init__()
        cfg.validate()
        self.normalize = Normalize(Normalization())
        self.encoder = Encoder()
        self.memory = Memory(cfg)
        self.msff = MSFF(*ENCODER_CHANNELS[1:4])
        self.decoder = Decoder(cfg.decoder_width)
        w, h = cfg.input_size_wh
        self.top_k = min(cfg.top_k, w * h)

    @torch.no_grad()
    def memory_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) 0..255 → layer1..3 features, what the memory stores."""
        _, f1, f2, f3 = self.encoder.frozen(self.normalize(x))
        return f1, f2, f3

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) 0..255 → logits (N, 2, H, W); channel 1 = anomalous."""
        with torch.no_grad():  # the frozen stem..layer3 needs no gradients
            f0, f1, f2, f3 = self.encoder.frozen(self.normalize(x))
        f4 = self.encoder.layer4(f3)
        c1, c2, c3 = self.memory((f1, f2, f3))
        k1, k2, k3 = self.msff(c1, c2, c3)
        logits: torch.Tensor = self.decoder(f4, (f0, k1, k2, k3), (x.shape[2], x.shape[3]))
        return logits

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = torch.softmax(self.segment(x), dim=1)[:, 1:2]
        scores = torch.topk(maps.flatten(1), self.top_k, dim=1).values.mean(dim=1)
        return scores, maps


def score_top_fraction(cfg: MemSegConfig) -> float:
    """The image score is the mean of this fraction of the map's pixels (its ``top_k`` largest)."""
    w, h = cfg.input_size_wh
    return min(cfg.top_k, w * h) / (w * h)


def build(cfg: MemSegConfig) -> MemSegNet:
    return MemSegNet(cfg)
