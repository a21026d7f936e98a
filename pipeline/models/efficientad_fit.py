"""Training EfficientAD: teacher statistics, student with the hard feature loss, autoencoder.

Differences from the paper, forced by "no internet": the teacher is not distilled from an
ImageNet WideResNet. It is either random (the default, BatchNorm-free PDN with standardised
outputs) or distilled from our own backbone (:func:`distill_teacher`, random-BN-calibrated or a
local weights file). The ImageNet penalty term of the student loss is omitted (no ImageNet).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from pipeline.models.backbones import FEATURE_CHANNELS
from pipeline.models.contract import U8
from pipeline.models.efficientad import EfficientADConfig, EfficientADNet
from pipeline.models.errors import TrainingError
from pipeline.models.layers import PatchFeatures
from pipeline.models.patchcore_fit import prepare_backbone
from pipeline.models.training import FitContext, iter_batches, seed_everything, to_input_tensor

log = logging.getLogger(__name__)


def _color_jitter(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """EfficientAD's AE augmentation: random brightness, contrast, saturation (0.8..1.2), 0..255 input."""
    f = 0.8 + 0.4 * torch.rand(3, generator=g)
    x = x * f[0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * f[1] + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * f[2] + gray
    return x.clamp(0.0, 255.0)


def distill_teacher(net: EfficientADNet, cfg: EfficientADConfig, images: U8, ctx: FitContext) -> None:
    """Regress the PDN teacher onto backbone patch features (channel-pooled to ``out_channels``)."""
    raw_dim = sum(FEATURE_CHANNELS[cfg.distill_backbone][1:])
    feats = PatchFeatures(cfg.distill_backbone, 3, min(cfg.out_channels, raw_dim))
    prepare_backbone(feats.trunk, images, cfg.input_size_wh, ctx, net.normalize)
    feats.eval()
    opt = torch.optim.Adam(net.teacher.parameters(), lr=1e-3)
    g = ctx.generator()
    with torch.no_grad():
        cat = torch.cat([feats(net.normalize(b)) for b in iter_batches(images, cfg.input_size_wh, 4)])
        mu, sd = cat.mean(dim=(0, 2, 3), keepdim=True), cat.std(dim=(0, 2, 3), keepdim=True) + 1e-6
    x_all = to_input_tensor(images, cfg.input_size_wh)
    for step in range(cfg.distill_steps):
        i = torch.randint(len(images), (min(4, len(images)),), generator=g)
        x = net.normalize(x_all[i])
        out = net.teacher(x)
        target = (cat[i] - mu) / sd
        target = F.interpolate(target, size=out.shape[-2:], mode="bilinear", align_corners=False)
        loss = F.mse_loss(out[:, : target.shape[1]], target)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        if step % 100 == 0:
            log.debug("teacher distillation step %d loss %.4f", step, loss.item())
    net.teacher.requires_grad_(False)


@torch.no_grad()
def _teacher_stats(net: EfficientADNet, x_all: torch.Tensor) -> None:
    outs = torch.cat([net.teacher(net.normalize(x_all[i:i + 8])) for i in range(0, len(x_all), 8)])
    net.teacher_mean.copy_(outs.mean(dim=(0, 2, 3), keepdim=True))
    net.teacher_std.copy_(outs.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))


@torch.no_grad()
def _map_quantiles(net: EfficientADNet, x_val: torch.Tensor) -> None:
    st, ae = [], []
    for i in range(0, len(x_val), 4):
        a, b = net.raw_maps(x_val[i:i + 4])
        st.append(a.flatten())
        ae.append(b.flatten())
    s_np, a_np = torch.cat(st).numpy(), torch.cat(ae).numpy()
    q = [np.quantile(s_np, 0.9), np.quantile(s_np, 0.995), np.quantile(a_np, 0.9), np.quantile(a_np, 0.995)]
    if q[1] - q[0] < 1e-12:
        q[1] = q[0] + 1e-6
    if q[3] - q[2] < 1e-12:
        q[3] = q[2] + 1e-6
    net.quantiles.copy_(torch.tensor(q, dtype=torch.float32))


def fit(cfg: EfficientADConfig, images: U8, ctx: FitContext) -> EfficientADNet:
    """Train student and autoencoder on ``images`` (N, H, W, 3) uint8 normal frames.

    Raises:
        TrainingError: fewer than 2 images or a non-finite loss.
    """
    if len(images) < 2:
        raise TrainingError("EfficientAD needs at least 2 normal images")
    seed_everything(ctx.seed)
    net = EfficientADNet(cfg)
    if cfg.teacher == "distilled":
        distill_teacher(net, cfg, images, ctx)
    for p in net.teacher.parameters():
        p.requires_grad_(False)
    net.teacher.eval()
    x_all = to_input_tensor(images, cfg.input_size_wh)
    _teacher_stats(net, x_all)
    params = list(net.student.parameters()) + list(net.autoencoder.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = ctx.max_steps or cfg.steps
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, int(0.95 * steps)), gamma=0.1)
    g = ctx.generator()
    c = cfg.out_channels
    net.student.train()
    net.autoencoder.train()
    for step in range(steps):
        idx = torch.randint(len(images), (cfg.batch_size,), generator=g)
        x = x_all[idx]
        xn = net.normalize(x)
        with torch.no_grad():
            t = (net.teacher(xn) - net.teacher_mean) / net.teacher_std
        s = net.student(xn)[:, :c]
        d = (t - s) ** 2
        d_hard = torch.quantile(d.flatten()[:: max(1, d.numel() // 1_000_000)], cfg.hard_quantile)
        loss_st = d[d >= d_hard].mean()
        xa = net.normalize(_color_jitter(x, g))
        ae = net.autoencoder(xa)
        with torch.no_grad():
            t_a = (net.teacher(xa) - net.teacher_mean) / net.teacher_std
        s_a = net.student(xa)[:, c:]
        loss = loss_st + ((t_a - ae) ** 2).mean() + ((ae - s_a) ** 2).mean()
        if not math.isfinite(loss.item()):
            raise TrainingError(f"EfficientAD loss became non-finite at step {step}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            ctx.tick(step + 1, steps)
        if step % 500 == 0:
            log.debug("efficientad step %d loss %.4f", step, loss.item())
    net.eval()
    val = ctx.val_normal if ctx.val_normal is not None and len(ctx.val_normal) else images
    _map_quantiles(net, to_input_tensor(val, cfg.input_size_wh))
    return net
