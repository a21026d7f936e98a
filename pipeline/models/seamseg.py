"""SeamSeg (ours, not the paper's): a small segmentation head on per-pixel statistics of the normal
frames, trained on synthetic seam defects.

``forward``: (N, 3, H, W) 0..255 → scores (N,), maps (N, 1, H, W) in 0..1.

The per-pixel Gaussian baseline scores a pixel by its distance from the training frames' mean; its
largest responses on normal frames are beads lying a pixel or two beside the mean bead, and an empty
seam stays inside the normal spread (docs/benchmarks.md). SeamSeg keeps those statistics as input
and learns what a defect looks like against them: five feature planes per pixel (the grey input,
its squared z-score under the per-pixel Gaussian, the Gaussian's mean and standard deviation, and
the ROI) go through five 3x3 convolutions (dilations 1, 2, 4, 8, 1; a receptive field of 33 px) and a
1x1 one, added to the Gaussian's own log-score, to a defect probability.
It is trained (:mod:`pipeline.models.seamseg_fit`) on the paper's five seam defect types made by
:mod:`pipeline.data.synth2d` on the training frames themselves, against the normal frames' own
variation, so no defect image is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.models.layers import GaussianBlur


@dataclass(frozen=True, slots=True)
class SeamSegConfig:
    """``channels``: width of the head. ``min_var``: variance floor of the per-pixel Gaussian (0..255
    units squared). ``folds``: the training frames are split into this many contiguous blocks (one
    block ≈ a few vehicles when frames come in capture order) and each block's features use the
    statistics of the other blocks, so that training sees z-scores as large as unseen frames give.
    ``defects_per_type``: synthetic defects made per training frame and type. ``steps``,
    ``batch_size``, ``crop_px``, ``lr``: the optimisation (random crops, half of them around a
    synthetic defect). ``focal_weight``: weight of the pixel focal loss beside the crop-level loss.
    ``bead_quantile`` and ``min_bead_contrast``: which pixels count as bead for the generator (local
    contrast above this quantile of the ROI's, and above this value). ``blur_sigma_px``: blur of the map.
    """

    input_size_wh: tuple[int, int] = (640, 480)
    channels: int = 24
    min_var: float = 25.0
    folds: int = 5
    defects_per_type: int = 2
    steps: int = 1500
    batch_size: int = 32
    crop_px: int = 96
    lr: float = 2e-3
    focal_weight: float = 10.0
    bead_quantile: float = 0.6
    min_bead_contrast: float = 12.0
    blur_sigma_px: float = 1.0


#: the head's starting logit where z = 0: a defect probability of about 5% on a normal pixel
PRIOR_LOGIT = -3.0

#: there is no SeamSeg in the paper: "paper" is the full-size setting beside the paper's presets, and
#: "tiny" the same head on a 160x120 input
PRESETS = {
    "tiny": SeamSegConfig(input_size_wh=(160, 120)),
    "paper": SeamSegConfig(),
}


def feature_planes(x: torch.Tensor, mean: torch.Tensor, inv_var: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) 0..255 and the Gaussian's (1, 3, H, W) statistics and (1, 1, H, W) ROI → (N, 5, H, W).

    The planes are scaled to about unit range: grey / 64, log(1 + z²), mean / 64, std / 32, ROI.
    """
    n = x.shape[0]
    z2 = ((x - mean) ** 2 * inv_var).mean(dim=1, keepdim=True)
    std = inv_var.rsqrt().mean(dim=1, keepdim=True)
    return torch.cat([x.mean(dim=1, keepdim=True) / 64.0, torch.log1p(z2),
                      (mean.mean(dim=1, keepdim=True) / 64.0).expand(n, -1, -1, -1),
                      (std / 32.0).expand(n, -1, -1, -1), roi.expand(n, -1, -1, -1)], dim=1)


class Head(nn.Module):
    """(N, 5, H, W) feature planes → (N, 1, H, W) defect logits.

    A learned correction to the Gaussian's own score: the logit is ``z_gain · log(1 + z²)`` plus the
    convolutions' output, and starts as the baseline's ranking (gain 1, output bias ``PRIOR_LOGIT``).
    Training then learns where a large z-score is normal (a bead beside its mean path) and where a
    small one is a defect (an empty seam).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = [nn.Conv2d(5, c, 3, padding=1), nn.ReLU()]
        for d in (2, 4, 8, 1):
            layers += [nn.Conv2d(c, c, 3, padding=d, dilation=d), nn.ReLU()]
        out = nn.Conv2d(c, 1, 1)
        nn.init.zeros_(out.weight)
        nn.init.constant_(out.bias, PRIOR_LOGIT)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
        layers.append(out)
        self.body = nn.Sequential(*layers)
        self.z_gain = nn.Parameter(torch.ones(()))

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(planes) + self.z_gain * planes[:, 1:2]
        return out


class SeamSegNet(nn.Module):
    mean: torch.Tensor
    inv_var: torch.Tensor
    roi: torch.Tensor

    def __init__(self, cfg: SeamSegConfig) -> None:
        super().__init__()
        w, h = cfg.input_size_wh
        self.register_buffer("mean", torch.zeros(1, 3, h, w))
        self.register_buffer("inv_var", torch.ones(1, 3, h, w))
        self.register_buffer("roi", torch.ones(1, 1, h, w))
        self.head = Head(cfg.channels)
        self.blur = GaussianBlur(cfg.blur_sigma_px)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(feature_planes(x, self.mean, self.inv_var, self.roi))
        maps = self.blur(torch.sigmoid(logits))
        return maps.flatten(1).amax(dim=1), maps


def build(cfg: SeamSegConfig) -> SeamSegNet:
    return SeamSegNet(cfg)


__all__ = ["PRESETS", "SeamSegConfig", "SeamSegNet", "build", "feature_planes"]
