"""Training MemSeg: memory of normal features, Perlin-noise anomaly simulation, focal + L1 loss.

Loss per batch (paper §5.2, Table 3): ``0.7 · focal(γ = 4, no α) + 0.3 · L1`` between the decoder's
2-class softmax and the simulated anomaly masks. AdamW with a linear warm-up and a cosine decay to
``min_lr``. Half the samples (``anomaly_prob``) carry a simulated anomaly, the rest stay normal.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from pipeline.models.contract import U8
from pipeline.models.errors import TrainingError
from pipeline.models.memseg import MemoryLevel, MemSegConfig, MemSegNet
from pipeline.models.patchcore_fit import prepare_backbone
from pipeline.models.perlin import simulate_anomaly
from pipeline.models.training import FitContext, iter_batches, seed_everything

log = logging.getLogger(__name__)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean focal loss of 2-class ``logits`` (N, 2, H, W) against a {0, 1} ``target`` (N, H, W)."""
    logp = F.log_softmax(logits, dim=1).gather(1, target.long().unsqueeze(1)).squeeze(1)
    return (-((1.0 - logp.exp()) ** gamma) * logp).mean()


def memseg_loss(logits: torch.Tensor, target: torch.Tensor, cfg: MemSegConfig) -> torch.Tensor:
    """``focal_weight · focal + l1_weight · |softmax_anomalous − target|``."""
    l1 = (torch.softmax(logits, dim=1)[:, 1] - target).abs().mean()
    return cfg.focal_weight * focal_loss(logits, target, cfg.focal_gamma) + cfg.l1_weight * l1


def lr_at(step: int, total: int, cfg: MemSegConfig) -> float:
    """Linear warm-up over ``warmup_ratio · total`` steps, then cosine from ``lr`` to ``min_lr``."""
    warm = max(1, round(cfg.warmup_ratio * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1.0 + math.cos(math.pi * t))


def resize_all(images: U8, size_wh: tuple[int, int]) -> U8:
    """(N, H, W, 3) → (N, h, w, 3) uint8 at the model's input size (area when shrinking)."""
    w, h = size_wh
    if images.shape[1:3] == (h, w):
        return images
    interp = cv2.INTER_AREA if images.shape[1] > h else cv2.INTER_LINEAR
    return np.stack([cv2.resize(im, (w, h), interpolation=interp) for im in images])


@torch.no_grad()
def fill_memory(net: MemSegNet, images: U8, cfg: MemSegConfig, rng: np.random.Generator, device: str) -> None:
    """Store layer1..3 features of ``min(memory_size, N)`` randomly chosen normal images."""
    m = min(cfg.memory_size, len(images))
    idx = np.sort(rng.choice(len(images), m, replace=False))
    feats = [net.memory_features(b) for b in iter_batches(images[idx], cfg.input_size_wh, 8, device)]
    levels = [lvl for lvl in net.memory.levels if isinstance(lvl, MemoryLevel)]
    for k, lvl in enumerate(levels):
        lvl.memory_bank = torch.cat([f[k] for f in feats]).contiguous()


def fit(cfg: MemSegConfig, images: U8, ctx: FitContext) -> MemSegNet:
    """Train MemSeg on ``images`` (N, H, W, 3) uint8 normal frames.

    Raises:
        ConfigError: invalid config. TrainingError: no images or a non-finite loss.
    """
    if len(images) < 1:
        raise TrainingError("MemSeg needs at least one normal image")
    cfg.validate()
    seed_everything(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    device = ctx.device
    net = MemSegNet(cfg)
    prepare_backbone(net.encoder.trunk, images, cfg.input_size_wh, ctx, net.normalize)
    net.to(device)
    fill_memory(net, images, cfg, rng, device)
    small = resize_all(images, cfg.input_size_wh)
    sim = cfg.simulation()
    total = ctx.max_steps or cfg.steps
    params = [p for name, p in net.named_parameters() if not name.startswith("encoder.trunk.")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    net.train()
    net.encoder.trunk.eval()  # frozen: its BatchNorm statistics stay those of the memory
    net.encoder.trunk.requires_grad_(False)
    loss_sum = 0.0
    for step in range(total):
        idx = rng.integers(len(small), size=cfg.batch_size)
        batch, masks = [], []
        for i in idx:
            if rng.random() < sim.anomaly_prob:
                img, mask = simulate_anomaly(small[i], sim, rng, others=small)
            else:
                img, mask = small[i], np.zeros(small.shape[1:3], np.float32)
            batch.append(img)
            masks.append(mask)
        x = torch.from_numpy(np.stack(batch).transpose(0, 3, 1, 2).astype(np.float32)).to(device)
        y = torch.from_numpy(np.stack(masks)).to(device)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, cfg)
        loss = memseg_loss(net.segment(x), y, cfg)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(f"MemSeg loss became non-finite at step {step}")
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        loss_sum += value
        if step % 20 == 0 or step == total - 1:
            ctx.tick(step + 1, total)
        if (step + 1) % 100 == 0:
            log.info("memseg step %d/%d loss %.4f", step + 1, total, loss_sum / 100)
            loss_sum = 0.0
    net.eval()
    net.to("cpu")
    log.info("memseg trained %d steps on %d images (memory %d)", total, len(images),
             net.memory.banks()[0].shape[0])
    return net
