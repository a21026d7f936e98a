"""Fitting PatchCore: patch features of the normal images → greedy coreset → memory bank."""

from __future__ import annotations

import logging

import torch

from pipeline.models.backbones import calibrate_batchnorm, load_backbone_weights
from pipeline.models.contract import U8
from pipeline.models.coreset import greedy_coreset
from pipeline.models.errors import TrainingError
from pipeline.models.patchcore import PatchCoreConfig, PatchCoreNet
from pipeline.models.training import FitContext, iter_batches, seed_everything

log = logging.getLogger(__name__)


def prepare_backbone(trunk: torch.nn.Module, images: U8, input_size_wh: tuple[int, int], ctx: FitContext,
                     normalize: torch.nn.Module, max_images: int = 32) -> None:
    """Load local weights when given, else calibrate the random trunk's BatchNorm on the images."""
    if ctx.backbone_weights is not None:
        load_backbone_weights(trunk, ctx.backbone_weights)  # type: ignore[arg-type]
        trunk.eval()
        return
    batches = [normalize(b) for b in iter_batches(images[:max_images], input_size_wh, 4)]
    calibrate_batchnorm(trunk, batches)


@torch.no_grad()
def fit(cfg: PatchCoreConfig, images: U8, ctx: FitContext) -> PatchCoreNet:
    """Build the memory bank from ``images`` (N, H, W, 3) uint8 normal frames.

    Raises:
        TrainingError: no images.
    """
    if len(images) < 1:
        raise TrainingError("PatchCore needs at least one normal image")
    seed_everything(ctx.seed)
    net = PatchCoreNet(cfg).eval()
    prepare_backbone(net.features.trunk, images, cfg.input_size_wh, ctx, net.normalize)
    chunks = []
    n_batches = -(-len(images) // cfg.batch_size)
    for i, x in enumerate(iter_batches(images, cfg.input_size_wh, cfg.batch_size)):
        f = net.embed(x)
        chunks.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]))
        ctx.tick(i + 1, n_batches + 1)
    feats = torch.cat(chunks)
    if feats.shape[0] > cfg.max_bank_features:  # uniform pre-subsampling keeps the coreset step bounded
        keep = torch.randperm(feats.shape[0], generator=ctx.generator())[: cfg.max_bank_features]
        feats = feats[keep]
    n_select = max(1, round(cfg.coreset_ratio * feats.shape[0]))
    idx = greedy_coreset(feats, n_select, cfg.projection_dim, ctx.seed)
    net.memory_bank = feats[idx].contiguous()
    ctx.tick(n_batches + 1, n_batches + 1)
    log.info("patchcore: %d patch features → coreset of %d", feats.shape[0], n_select)
    return net
