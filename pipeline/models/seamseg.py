"""SeamSeg (ours, not the paper's): a small segmentation head on per-pixel statistics of the normal
frames, trained on synthetic seam defects.

``forward``: (N, 3, H, W) 0..255 → scores (N,), maps (N, 1, H, W) in 0..1.

The per-pixel Gaussian baseline scores a pixel by its distance from the training frames' mean; its
largest responses on normal frames are beads lying a pixel or two beside the mean bead, and an empty
seam stays inside the normal spread (docs/benchmarks.md). SeamSeg keeps those statistics as input
and learns what a defect looks like against them: nine feature planes per pixel (the grey input,
its squared z-score under the per-pixel Gaussian, the Gaussian's mean and standard deviation, the
ROI, the z-score and mean under the *nearest frames' Gaussian*, and the *gap depth* and its z-score
under the nearest frames') go through five 3x3 convolutions
(dilations 1, 2, 4, 8, 1; a receptive field of 33 px) and a 1x1 one, added to the Gaussian's own
log-score, to a defect probability.

The nearest frames' Gaussian: a view's frames are taken within a couple of centimetres of conveyor travel,
and the template match aligns them on their strongest structure. Seams at another depth keep a
parallax of a few pixels, so the Gaussian of all training frames spreads a bead over a band wider
than a misaligned bead's jog. The ``neighbours`` training frames most like the input (a blurred,
4x-averaged grey descriptor; a memory bank of the training frames' grey levels) were taken at about
the same travel, and their mean lays each bead where the input's own should be.
It is trained (:mod:`pipeline.models.seamseg_fit`) on the paper's five seam defect types made by
:mod:`pipeline.data.synth2d` on the training frames themselves (optionally on the raw frames, before the
contrast step: ``draw_on_frames``), against the normal frames' own variation, so no defect image is needed.

The gap depth (version 2.1): a hole leaves a gap of a few pixels in a bead, about as large a z-score
as a normal bead's jitter. A morphological closing wider than the gap fills it and leaves the bead
and open paint as they were, so closing minus input is large in the gap alone (+0.045 image AUROC
over three viewpoints, holes most; docs/benchmarks.md).

The deficit planes (an option, ``deficit_px``; off by default): how far the input's mean over a small
square lies below its nearest frames', for a narrowed bead. Over three viewpoints they lifted narrowings
and pixel F1 a little and image AUROC not at all, and a second seed at the front lost 0.029
(docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.models.errors import ConfigError
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
    ``neighbours``: how many nearest training frames give the second Gaussian, ``neighbour_min_var``
    its variance floor; ``max_bank_frames``: the memory bank keeps at most this many training frames
    (evenly spaced; one uint8 grey frame each). ``draw_on_frames``: where the preprocessing hands the
    frames its inputs were made from (the contrast step; ``FitContext.sources``), draw the synthetic
    defects on those frames and remake the inputs from them, instead of drawing on the inputs. Off by
    default: over three viewpoints it gained at one and lost at another (docs/benchmarks.md).
    ``strand_opacity``, ``hole_through_share`` and ``hole_radius_widths``: the generator's options of
    those names (:class:`pipeline.data.synth2d.SynthConfig`). ``gap_px``: the size of the closing that
    gives the two gap planes (:func:`gap_planes`); None: ``GAP_PX_AT_640`` per 640 px of input width
    (:meth:`gap_size_px`), 0: no gap planes (the model before version 2.1). ``deficit_px``: the window of
    the two deficit planes (:func:`deficit_planes`); 0: none.
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
    neighbours: int = 10
    neighbour_min_var: float = 100.0
    max_bank_frames: int = 200
    draw_on_frames: bool = False
    strand_opacity: float = 1.0
    hole_through_share: float = 0.0
    hole_radius_widths: tuple[float, float] = (0.3, 0.5)
    gap_px: int | None = None
    deficit_px: int = 0
    dilation_scale: int = 1

    def __post_init__(self) -> None:
        if self.dilation_scale < 1:
            raise ConfigError(f"SeamSeg's dilation_scale must be >= 1, got {self.dilation_scale}")
        if self.gap_px not in (None, 0) and (self.gap_px < 3 or self.gap_px % 2 == 0):
            raise ConfigError(f"SeamSeg's gap_px must be None (scaled), 0 (off) or odd and >= 3, got {self.gap_px}")
        if self.deficit_px != 0 and (self.deficit_px < 3 or self.deficit_px % 2 == 0):
            raise ConfigError(f"SeamSeg's deficit_px must be 0 (off) or odd and >= 3, got {self.deficit_px}")
        if self.neighbours < 1 or self.max_bank_frames < 1:
            raise ConfigError(f"SeamSeg needs neighbours >= 1 and max_bank_frames >= 1, got {self.neighbours} "
                              f"and {self.max_bank_frames}")
        for name in ("strand_opacity", "hole_through_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"SeamSeg's {name} must be in [0, 1], got {getattr(self, name)}")

    def gap_size_px(self) -> int:
        """The gap planes' closing size: ``gap_px`` as set, else ``GAP_PX_AT_640`` scaled to the input's
        width and rounded to an odd size of at least 3 px (11 px at 640 px, 3 px at 160 px); 0: none."""
        if self.gap_px is not None:
            return self.gap_px
        return max(3, 2 * round((GAP_PX_AT_640 * self.input_size_wh[0] / 640 - 1) / 2) + 1)


#: feature planes per pixel (see :func:`feature_planes`), the two gap planes (:func:`gap_planes`) and the two
#: deficit planes (:func:`deficit_planes`)
PLANES = 7
GAP_PLANES = 2
DEFICIT_PLANES = 2
#: the gap planes' closing size at 640 px of input width: wider than a hole (5-12 mm, 2-4 px at 640x480),
#: narrower than the paint between two beads
GAP_PX_AT_640 = 11
#: the variance floor of the nearest frames' gap depth (0..255 units squared)
GAP_MIN_VAR = 9.0
#: the variance floor of the nearest frames' window means (0..255 units squared)
DEFICIT_MIN_VAR = 100.0
#: a frame's descriptor for the nearest-frame search: its grey level blurred by this sigma (px) and
#: averaged over KEY_POOL_PX x KEY_POOL_PX blocks (160x120 values for a 640x480 input)
KEY_BLUR_PX = 2.0
KEY_POOL_PX = 4

#: the head's starting logit where z = 0: a defect probability of about 5% on a normal pixel
PRIOR_LOGIT = -3.0

#: there is no SeamSeg in the paper: "paper" is the full-size setting beside the paper's presets, and
#: "tiny" the same head on a 160x120 input
PRESETS = {
    "tiny": SeamSegConfig(input_size_wh=(160, 120)),
    "paper": SeamSegConfig(),
}


def grey(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) → (N, 1, H, W): the channels' mean."""
    return x.mean(dim=1, keepdim=True)


class FrameKeys(nn.Module):
    """(N, 1, H, W) grey frames → (N, D) descriptors for the nearest-frame search."""

    def __init__(self) -> None:
        super().__init__()
        self.blur = GaussianBlur(KEY_BLUR_PX)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.blur(g), KEY_POOL_PX).flatten(1)


def nearest_frames(keys: torch.Tensor, bank: torch.Tensor, bank_keys: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` frames (N, k, H, W) float of ``bank`` (M, H, W) uint8 whose ``bank_keys`` (M, D) are
    nearest (squared distance) to each input's ``keys`` (N, D)."""
    n, (h, w) = keys.shape[0], bank.shape[1:]
    d = ((keys[:, None, :] - bank_keys[None]) ** 2).sum(-1)  # (N, M), exact rather than the expanded form
    idx = torch.topk(d, k, dim=1, largest=False).indices
    return bank.index_select(0, idx.reshape(-1)).reshape(n, k, h, w).float()


def spread(frames: torch.Tensor, min_var: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and variance (N, 1, H, W) of ``frames`` (N, k, H, W), the variance floored at ``min_var``."""
    mean = frames.mean(dim=1, keepdim=True)
    return mean, ((frames - mean) ** 2).mean(dim=1, keepdim=True).clamp_min(min_var)


def neighbour_stats(keys: torch.Tensor, bank: torch.Tensor, bank_keys: torch.Tensor, k: int,
                    min_var: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and variance (N, 1, H, W) of the :func:`nearest_frames`, the variance floored at ``min_var``."""
    return spread(nearest_frames(keys, bank, bank_keys, k), min_var)


def gap_depth(g: torch.Tensor, size_px: int) -> torch.Tensor:
    """How far a morphological closing (``size_px`` square) of ``g`` (N, C, H, W) lies above it: large in
    a dark gap narrower than ``size_px`` between bright pixels, as a hole leaves in a bead of the
    contrast image, and zero on a bead or open paint."""
    c, h, w = g.shape[1:]
    flat = g.reshape(-1, 1, h, w)
    closed = -_square_max(-_square_max(flat, size_px), size_px)
    return (closed - flat).reshape(-1, c, h, w)


def _square_max(x: torch.Tensor, size_px: int) -> torch.Tensor:
    """The maximum over each pixel's ``size_px`` square (outside the frame ignored), as a row then a column
    pass: the same values, 2k instead of k² comparisons a pixel."""
    pad = size_px // 2
    rows = F.max_pool2d(x, (1, size_px), 1, (0, pad))
    return F.max_pool2d(rows, (size_px, 1), 1, (pad, 0))


def gap_planes(g: torch.Tensor, size_px: int, near_mean: torch.Tensor, near_var: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grey and the nearest frames' gap-depth mean and variance → (N, GAP_PLANES, H, W):
    the gap depth / 64 and log(1 + z²) of it under the nearest frames'."""
    gap = gap_depth(g, size_px)
    return torch.cat([gap / 64.0, torch.log1p((gap - near_mean) ** 2 / near_var)], dim=1)


def window_mean(g: torch.Tensor, size_px: int) -> torch.Tensor:
    """The mean of (N, C, H, W) ``g`` over each pixel's ``size_px`` square (outside the frame left out)."""
    return F.avg_pool2d(g, size_px, 1, size_px // 2, count_include_pad=False)


def deficit_planes(g: torch.Tensor, size_px: int, near_mean: torch.Tensor, near_var: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grey and the mean and variance of the nearest frames' :func:`window_mean` → (N,
    DEFICIT_PLANES, H, W): how far the input's window mean lies below theirs / 64, and log(1 + z²) of that
    deficit (zero where the input holds more): a narrowed or missing bead leaves less bright bead in the
    window, while a bead moved by a pixel or two keeps most of it there, unlike a pixel's own grey level."""
    deficit = near_mean - window_mean(g, size_px)
    return torch.cat([deficit / 64.0, torch.log1p(deficit.clamp_min(0.0) ** 2 / near_var)], dim=1)


def near_frame_stats(frames: torch.Tensor, min_var: float, gap_px: int, deficit_px: int) -> list[torch.Tensor]:
    """The mean and variance (N, 1, H, W) of the nearest ``frames`` (N, k, H, W), then with ``gap_px`` those of
    their gap depths, then with ``deficit_px`` those of their window means."""
    stats = list(spread(frames, min_var))
    if gap_px:
        stats += spread(gap_depth(frames, gap_px), GAP_MIN_VAR)
    if deficit_px:
        stats += spread(window_mean(frames, deficit_px), DEFICIT_MIN_VAR)
    return stats


def extra_planes(g: torch.Tensor, gap_px: int, deficit_px: int, near: list[torch.Tensor]) -> list[torch.Tensor]:
    """The gap planes (with ``gap_px``) then the deficit planes (with ``deficit_px``) of grey ``g``, from the
    matching statistics of :func:`near_frame_stats` after its first two."""
    out = []
    if gap_px:
        out.append(gap_planes(g, gap_px, near[0], near[1]))
        near = near[2:]
    if deficit_px:
        out.append(deficit_planes(g, deficit_px, near[0], near[1]))
    return out


def feature_planes(x: torch.Tensor, mean: torch.Tensor, inv_var: torch.Tensor, roi: torch.Tensor,
                   near_mean: torch.Tensor, near_var: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) 0..255, the Gaussian's (1, 3, H, W) statistics, the (1, 1, H, W) ROI and the nearest
    frames' (N, 1, H, W) mean and variance → (N, PLANES, H, W).

    The planes are scaled to about unit range: grey / 64, log(1 + z²), mean / 64, std / 32, ROI,
    log(1 + z²) under the nearest frames, their mean / 64.
    """
    n = x.shape[0]
    g = grey(x)
    z2 = ((x - mean) ** 2 * inv_var).mean(dim=1, keepdim=True)
    std = inv_var.rsqrt().mean(dim=1, keepdim=True)
    return torch.cat([g / 64.0, torch.log1p(z2), (grey(mean) / 64.0).expand(n, -1, -1, -1),
                      (std / 32.0).expand(n, -1, -1, -1), roi.expand(n, -1, -1, -1),
                      torch.log1p((g - near_mean) ** 2 / near_var), near_mean / 64.0], dim=1)


class Head(nn.Module):
    """(N, PLANES, H, W) feature planes → (N, 1, H, W) defect logits.

    A learned correction to the Gaussian's own score: the logit is ``z_gain · log(1 + z²)`` plus the
    convolutions' output, and starts as the baseline's ranking (gain 1, output bias ``PRIOR_LOGIT``).
    Training then learns where a large z-score is normal (a bead beside its mean path) and where a
    small one is a defect (an empty seam).
    """

    def __init__(self, channels: int, planes: int = PLANES, dilation_scale: int = 1) -> None:
        super().__init__()
        c, s = channels, dilation_scale
        layers: list[nn.Module] = [nn.Conv2d(planes, c, 3, padding=s, dilation=s), nn.ReLU()]
        for d in (2 * s, 4 * s, 8 * s, s):
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
    """The Gaussian's statistics, the ROI, the memory bank of training frames (M, H, W) uint8 grey and
    their (M, D) descriptors, and the head."""

    mean: torch.Tensor
    inv_var: torch.Tensor
    roi: torch.Tensor
    memory_bank: torch.Tensor
    memory_bank_keys: torch.Tensor

    def __init__(self, cfg: SeamSegConfig) -> None:
        super().__init__()
        w, h = cfg.input_size_wh
        self.neighbours = cfg.neighbours
        self.neighbour_min_var = cfg.neighbour_min_var
        self.gap_px = cfg.gap_size_px()
        self.deficit_px = cfg.deficit_px
        self.register_buffer("mean", torch.zeros(1, 3, h, w))
        self.register_buffer("inv_var", torch.ones(1, 3, h, w))
        self.register_buffer("roi", torch.ones(1, 1, h, w))
        self.register_buffer("memory_bank", torch.zeros(0, h, w, dtype=torch.uint8))
        self.register_buffer("memory_bank_keys", torch.zeros(0, (h // KEY_POOL_PX) * (w // KEY_POOL_PX)))
        self.keys = FrameKeys()
        self.head = Head(cfg.channels, PLANES + (GAP_PLANES if self.gap_px else 0)
                         + (DEFICIT_PLANES if self.deficit_px else 0), cfg.dilation_scale)
        self.blur = GaussianBlur(cfg.blur_sigma_px)

    def near_stats(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The nearest training frames' mean and variance (N, 1, H, W) for inputs (N, 3, H, W), then
        those of their gap depths (with ``gap_px``) and of their window means (with ``deficit_px``)."""
        k = min(self.neighbours, int(self.memory_bank.shape[0]))
        frames = nearest_frames(self.keys(grey(x)), self.memory_bank, self.memory_bank_keys, k)
        return near_frame_stats(frames, self.neighbour_min_var, self.gap_px, self.deficit_px)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        near = self.near_stats(x)
        planes = feature_planes(x, self.mean, self.inv_var, self.roi, near[0], near[1])
        planes = torch.cat([planes, *extra_planes(grey(x), self.gap_px, self.deficit_px, near[2:])], dim=1)
        logits = self.head(planes)
        maps = self.blur(torch.sigmoid(logits))
        return maps.flatten(1).amax(dim=1), maps


def build(cfg: SeamSegConfig) -> SeamSegNet:
    return SeamSegNet(cfg)


__all__ = [
    "DEFICIT_MIN_VAR",
    "DEFICIT_PLANES",
    "GAP_MIN_VAR",
    "GAP_PLANES",
    "GAP_PX_AT_640",
    "PLANES",
    "PRESETS",
    "FrameKeys",
    "Head",
    "SeamSegConfig",
    "SeamSegNet",
    "build",
    "deficit_planes",
    "extra_planes",
    "feature_planes",
    "gap_depth",
    "gap_planes",
    "grey",
    "near_frame_stats",
    "nearest_frames",
    "neighbour_stats",
    "spread",
    "window_mean",
]
