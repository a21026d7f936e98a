"""Training SimpleNet: Gaussian feature noise as anomalies, truncated L1 loss with a margin."""

from __future__ import annotations

import logging
import math

import torch

from pipeline.models.contract import U8
from pipeline.models.errors import TrainingError
from pipeline.models.patchcore_fit import prepare_backbone
from pipeline.models.simplenet import SimpleNetConfig, SimpleNetNet
from pipeline.models.training import FitContext, iter_batches, seed_everything

log = logging.getLogger(__name__)
#: patch features drawn per optimisation step (the reference draws all patches of a batch of 8)
PATCHES_PER_STEP = 4096


def fit(cfg: SimpleNetConfig, images: U8, ctx: FitContext) -> SimpleNetNet:
    """Train adapter + discriminator on ``images`` (N, H, W, 3) uint8 normal frames.

    Loss per step: ``mean(max(0, m − D(a))) + mean(max(0, m + D(a + ε)))`` with ε ~ N(0, σ²),
    m = ``cfg.margin``, a = adapted features. The backbone is frozen, so features are computed once.

    Raises:
        TrainingError: no images or a non-finite loss.
    """
    if len(images) < 1:
        raise TrainingError("SimpleNet needs at least one normal image")
    seed_everything(ctx.seed)
    net = SimpleNetNet(cfg)
    prepare_backbone(net.features.trunk, images, cfg.input_size_wh, ctx, net.normalize)
    net.features.requires_grad_(False)
    net.features.eval()
    with torch.no_grad():
        feats = torch.cat([net.patch_features(b)[0] for b in iter_batches(images, cfg.input_size_wh, 4)])
    g = ctx.generator()
    opt_a = torch.optim.AdamW(net.adapter.parameters(), lr=cfg.lr_adapter)
    opt_d = torch.optim.Adam(net.discriminator.parameters(), lr=cfg.lr_discriminator, weight_decay=1e-5)
    steps_per_epoch = max(1, math.ceil(len(feats) / PATCHES_PER_STEP))
    steps_per_epoch = min(steps_per_epoch, 8 * cfg.batch_size)
    epochs = cfg.meta_epochs * cfg.gan_epochs
    total = (ctx.max_steps or epochs * steps_per_epoch)
    net.adapter.train()
    net.discriminator.train()
    for step in range(total):
        idx = torch.randint(len(feats), (min(PATCHES_PER_STEP, len(feats)),), generator=g)
        a = net.adapter(feats[idx])
        fake = a + cfg.noise_std * torch.randn(a.shape, generator=g)
        d_true = net.discriminator(a)
        d_fake = net.discriminator(fake)
        loss = torch.clamp(cfg.margin - d_true, min=0).mean() + torch.clamp(cfg.margin + d_fake, min=0).mean()
        if not math.isfinite(loss.item()):
            raise TrainingError(f"SimpleNet loss became non-finite at step {step}")
        opt_a.zero_grad()
        opt_d.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt_a.step()
        opt_d.step()
        if step % 20 == 0 or step == total - 1:
            ctx.tick(step + 1, total)
    net.eval()
    log.info("simplenet trained %d steps on %d patch features", total, len(feats))
    return net
