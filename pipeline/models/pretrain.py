"""Self-supervised backbone pretraining on normal frames (SimCLR), for plants without ImageNet weights.

No download is possible here or in many plants, so the backbones start random. This learns a
backbone from the line's own normal frames instead (seed 004 used SimCLR/MoCo): two augmented views
of the same crop must embed close together and away from the other crops of the batch (NT-Xent
loss). The augmentations are the photometric perturbations the paper's future work names (gain and
colour shifts per channel, contrast, noise, blur) plus flips and crop scale, so the features learn to
ignore paint, lighting and exposure and keep the geometry of beads and edges.

The result is a torchvision-format state dict of the trunk (stem..layer3), so it loads wherever a
local weights file is accepted (``FitContext.backbone_weights``, ``--backbone-weights``).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from pipeline.models.artifacts import atomic_write
from pipeline.models.backbones import FEATURE_CHANNELS, ResNetTrunk
from pipeline.models.contract import U8, Normalization, check_batch
from pipeline.models.errors import ConfigError, TrainingError
from pipeline.models.layers import Normalize
from pipeline.models.training import FitContext, seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PretrainConfig:
    """``crop_px``: square crops fed to the network; ``scale``: crop side as a fraction of the frame's
    shorter side (min, max); ``temperature`` of the NT-Xent loss."""

    backbone: str = "resnet18"
    crop_px: int = 64
    scale: tuple[float, float] = (0.25, 0.6)
    batch_size: int = 32
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.2
    projection_dim: int = 128

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ConfigError("SimCLR needs a batch of at least 2 crops")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ConfigError(f"crop scale {self.scale} must satisfy 0 < min <= max <= 1")
        if self.steps < 1 or self.crop_px < 32:
            raise ConfigError("pretraining needs steps >= 1 and crops of at least 32 px")


@dataclass(frozen=True, slots=True)
class PretrainResult:
    path: Path
    losses: list[float]
    n_images: int


class SimCLR(nn.Module):
    """Trunk + global average pool of layer3 + a 2-layer projection head."""

    def __init__(self, cfg: PretrainConfig) -> None:
        super().__init__()
        self.normalize = Normalize(Normalization())
        self.trunk = ResNetTrunk(cfg.backbone)
        c = FEATURE_CHANNELS[cfg.backbone][2]
        self.head = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, cfg.projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f3 = self.trunk(self.normalize(x))[2]
        out: torch.Tensor = F.normalize(self.head(f3.mean(dim=(2, 3))), dim=1)
        return out


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for unit embeddings (B, D) of two views: each view's positive is its twin."""
    b = z1.shape[0]
    z = torch.cat([z1, z2])
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def random_crops(images: U8, n: int, cfg: PretrainConfig, rng: np.random.Generator) -> torch.Tensor:
    """``n`` square crops (n, 3, crop, crop) float 0..255 of random frames, sides drawn from ``cfg.scale``."""
    h, w = images.shape[1:3]
    side_max = min(h, w)
    out = torch.empty(n, 3, cfg.crop_px, cfg.crop_px)
    for i in range(n):
        img = images[int(rng.integers(len(images)))]
        side = max(8, int(side_max * rng.uniform(*cfg.scale)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = torch.from_numpy(np.ascontiguousarray(img[y:y + side, x:x + side])).permute(2, 0, 1).float()
        out[i] = F.interpolate(crop[None], size=(cfg.crop_px, cfg.crop_px), mode="bilinear", align_corners=False)[0]
    return out


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One random view of each crop (B, 3, H, W) 0..255: flips, a small shift, per-channel gain and offset
    (paint, light), contrast, Gaussian blur or sensor noise."""
    b = x.shape[0]
    flip_h = torch.rand(b, generator=g) < 0.5
    flip_v = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip_h[:, None, None, None], x.flip(3), x)
    x = torch.where(flip_v[:, None, None, None], x.flip(2), x)
    shift = torch.randint(-4, 5, (2,), generator=g)
    x = torch.roll(x, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    gain = 0.6 + 0.8 * torch.rand(b, 3, 1, 1, generator=g)
    offset = 40.0 * (torch.rand(b, 3, 1, 1, generator=g) - 0.5)
    x = x * gain + offset
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 0.7 + 0.6 * torch.rand(b, 1, 1, 1, generator=g)
    x = (x - mean) * contrast + mean
    blur = torch.rand(b, generator=g) < 0.3
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0])
        k2 = (k[:, None] * k[None, :] / 16.0).expand(3, 1, 3, 3)
        x = torch.where(blur[:, None, None, None], F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=3), x)
    x = x + torch.randn(x.shape, generator=g) * (8.0 * torch.rand(b, 1, 1, 1, generator=g))
    return x.clamp(0.0, 255.0)


def pretrain(images: U8, out: str | Path, cfg: PretrainConfig | None = None,
             ctx: FitContext | None = None) -> PretrainResult:
    """SimCLR on crops of normal ``images`` (N, H, W, 3) uint8; writes the trunk's state dict to ``out``.

    Raises:
        InputError: bad images. ConfigError: bad settings. TrainingError: the loss diverged.
    """
    cfg = cfg or PretrainConfig()
    ctx = ctx or FitContext()
    imgs = check_batch(images)
    if min(imgs.shape[1:3]) < 32:
        raise ConfigError(f"frames of {imgs.shape[2]}x{imgs.shape[1]} px are too small to crop")
    seed_everything(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    g = torch.Generator().manual_seed(ctx.seed)
    net = SimCLR(cfg).to(ctx.device).train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = ctx.max_steps or cfg.steps
    losses: list[float] = []
    for step in range(steps):
        crops = random_crops(imgs, cfg.batch_size, cfg, rng)
        v1, v2 = augment(crops, g).to(ctx.device), augment(crops, g).to(ctx.device)
        loss = nt_xent(net(v1), net(v2), cfg.temperature)
        if not torch.isfinite(loss):
            raise TrainingError(f"SimCLR loss is {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.item()))
        ctx.tick(step + 1, steps)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in net.trunk.state_dict().items()}, buf)
    atomic_write(path, buf.getvalue())
    log.info("SimCLR %s: %d steps, loss %.3f -> %.3f, weights in %s", cfg.backbone, steps, losses[0], losses[-1], path)
    return PretrainResult(path, losses, len(imgs))
