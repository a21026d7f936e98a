"""Training SeamSeg: the per-pixel Gaussian and the memory bank of the normal frames, then a head trained
on synthetic seam defects planted on those frames (:mod:`pipeline.data.synth2d`, the paper's five types)."""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F  # noqa: N812

from pipeline.models.contract import U8, to_network_input
from pipeline.models.errors import TrainingError
from pipeline.models.gaussian import pixel_stats
from pipeline.models.seamseg import (
    SeamSegConfig,
    SeamSegNet,
    extra_planes,
    feature_planes,
    grey,
    near_frame_stats,
    nearest_frames,
)
from pipeline.models.training import FitContext, InputSources, seed_everything
from pipeline.twin.defects import DEFECT_TYPES

log = logging.getLogger(__name__)
Mask = npt.NDArray[np.bool_]
#: the window whose median is the paint around a bead: wider than any bead a model input shows
BEAD_WINDOW_PX = 9


def bead_mask(image: U8, roi: Mask, cfg: SeamSegConfig) -> Mask:
    """Where the generator may plant a defect: pixels of ``roi`` whose local contrast (colour distance
    from the window's median) is above the ROI's ``bead_quantile`` and above ``min_bead_contrast``."""
    from pipeline.preprocess.contrast import local_contrast  # see synthetic_defects

    lc = local_contrast(image, BEAD_WINDOW_PX, 1)[..., 0]
    level = max(float(np.quantile(lc[roi], cfg.bead_quantile)), cfg.min_bead_contrast)
    bead = (roi & (lc > level)).astype(np.uint8)
    return np.asarray(cv2.morphologyEx(bead, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)) > 0)


def synthetic_defects(images: U8, roi: Mask, cfg: SeamSegConfig, rng: np.random.Generator,
                      sources: InputSources | None = None) -> list[tuple[int, U8, Mask]]:
    """``defects_per_type`` defects of each type on each image: (source index, image, mask), both
    cut to the ROI, so that a masked model trains on what it will be shown.

    With ``sources``, each defect is drawn on the frame the image was made from and made into an
    input by the same preprocessing (resized to the images' size), so that it reaches the model as a
    real one does: a hole drawn on the contrast image would be a gap that the contrast step's pooling
    never shows.
    """
    # imported here: pipeline.data and pipeline.preprocess import the model registry, which imports this module
    from pipeline.data.synth2d import SynthConfig, SynthError, synthesize

    synth = SynthConfig(strand_opacity=cfg.strand_opacity, hole_through_share=cfg.hole_through_share,
                        hole_radius_widths=cfg.hole_radius_widths)
    out: list[tuple[int, U8, Mask]] = []
    h, w = images.shape[1:3]
    keep = roi[..., None].astype(np.uint8)
    for i, img0 in enumerate(images):
        canvas = img0 if sources is None else sources.frame(i)
        canvas_roi = roi if canvas.shape[:2] == (h, w) else _resized(roi, canvas.shape[1], canvas.shape[0])
        bead = bead_mask(canvas, canvas_roi, cfg)
        if not bead.any():
            continue
        for dtype in DEFECT_TYPES:
            for _ in range(cfg.defects_per_type):
                try:
                    d = synthesize(canvas, bead, dtype, rng, config=synth)
                except SynthError:
                    continue
                img, mask = d.image, d.mask
                if sources is not None:
                    img = sources.to_input(i, img)
                    if img.shape[:2] != (h, w):
                        img = to_network_input(img[None], (w, h))[0].transpose(1, 2, 0).round().astype(np.uint8)
                        mask = _resized(mask, w, h)
                mask = mask & roi
                if mask.any():
                    out.append((i, img * keep, mask))
    return out


def _resized(mask: Mask, w: int, h: int) -> Mask:
    """``mask`` at w x h: a pixel is set where any of the pixels it covers is."""
    return np.asarray(cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0)


def _bank(g: torch.Tensor) -> torch.Tensor:
    """(M, 1, H, W) float grey frames → the (M, H, W) uint8 memory bank."""
    return g[:, 0].round().clamp(0, 255).to(torch.uint8)


def fit(cfg: SeamSegConfig, images: U8, ctx: FitContext) -> SeamSegNet:
    """Fit on ``images`` (N, H, W, 3) uint8 normal frames (N >= 3).

    The ROI is where any training input is non-zero: the ROI of masked inputs, the whole frame
    otherwise. A training frame's (and its synthetic defects') statistics come from the frames outside
    its block (``folds``): the Gaussian of those frames, and that of its ``neighbours`` nearest among
    them. The memory bank keeps ``max_bank_frames`` of the frames, evenly spaced. Each optimisation
    step takes ``batch_size`` crops, half around a synthetic defect and half at a random ROI pixel of
    a normal frame. Loss: ``focal_weight`` · the focal loss (γ = 2) over the crop's ROI pixels + the
    binary cross-entropy of the crop's largest ROI logit against whether the crop holds a defect.

    With ``draw_on_frames`` and ``ctx.sources`` (the preprocessing's contrast step), the synthetic
    defects are drawn on the frames the images were made from (:func:`synthetic_defects`).

    Raises:
        TrainingError: fewer than 3 images, source frames that do not match them, no bead to plant a
            defect on, or a non-finite loss.
    """
    n = len(images)
    if n < 3:
        raise TrainingError("SeamSeg needs at least 3 normal images")
    sources = ctx.sources if cfg.draw_on_frames else None
    if sources is not None and sources.count != n:
        raise TrainingError(f"SeamSeg got {sources.count} source frames for {n} images")
    seed_everything(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    w, h = cfg.input_size_wh
    x = to_network_input(images, (w, h))
    u8 = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).astype(np.uint8)
    roi = np.asarray(x.max(axis=(0, 1)) > 0)
    folds = min(cfg.folds, n)
    block = np.arange(n) * folds // n
    held_out = [pixel_stats(torch.from_numpy(x[block != b]), cfg.min_var) for b in range(folds)]
    net = SeamSegNet(cfg)
    g = grey(torch.from_numpy(x))
    bank = _bank(g)
    with torch.no_grad():
        keys = net.keys(g)
    # a block's frames find their nearest frames among the other blocks' frames, as an unseen vehicle's do
    gap_px, deficit_px = cfg.gap_size_px(), cfg.deficit_px
    # mean, var[, gap mean, gap var][, window mean, window var]: see near_frame_stats
    near = [torch.empty_like(g) for _ in range(2 + 2 * bool(gap_px) + 2 * bool(deficit_px))]
    for b in range(folds):
        inside, others = torch.from_numpy(block == b), torch.from_numpy(block != b)
        frames = nearest_frames(keys[inside], bank[others], keys[others], min(cfg.neighbours, int(others.sum())))
        stats = near_frame_stats(frames, cfg.neighbour_min_var, gap_px, deficit_px)
        for whole, part in zip(near, stats, strict=True):
            whole[inside] = part
        del frames, stats
    synth = synthetic_defects(u8, roi, cfg, rng, sources)
    if not synth:
        raise TrainingError("SeamSeg found no sealant bead to plant synthetic defects on "
                            "(no pixel of the ROI stands out from its neighbourhood)")
    roi_t = torch.from_numpy(roi.astype(np.float32))[None, None]
    crop = min(cfg.crop_px, h, w)
    roi_px = np.argwhere(roi)

    def crop_at(cy: int, cx: int) -> tuple[slice, slice]:
        y0 = int(np.clip(cy - crop // 2, 0, h - crop))
        x0 = int(np.clip(cx - crop // 2, 0, w - crop))
        return slice(y0, y0 + crop), slice(x0, x0 + crop)

    def planes(src: npt.NDArray[np.float32 | np.uint8], i: int, ys: slice, xs: slice) -> torch.Tensor:
        """Feature planes (planes, crop, crop) of the (3, crop, crop) input cut at ``ys, xs`` from ``src``
        (3, H, W): training frame ``i`` or a defect planted on it, with the statistics of the frames outside
        its block. The gap and deficit planes are cut from the planes of a region wider on each side by
        their reach (``gap_px - 1``, the closing's; ``deficit_px // 2``), so that they equal those of the whole
        frame."""
        mean, inv_var = held_out[int(block[i])]
        chw = torch.from_numpy(np.ascontiguousarray(src[:, ys, xs], np.float32))[None]
        p = feature_planes(chw, mean[..., ys, xs], inv_var[..., ys, xs], roi_t[..., ys, xs],
                           near[0][i:i + 1, :, ys, xs], near[1][i:i + 1, :, ys, xs])[0]
        if not (gap_px or deficit_px):
            return p
        pad = max(gap_px - 1, deficit_px // 2)
        wy = slice(max(0, ys.start - pad), min(h, ys.stop + pad))
        wx = slice(max(0, xs.start - pad), min(w, xs.stop + pad))
        wide = grey(torch.from_numpy(np.ascontiguousarray(src[:, wy, wx], np.float32))[None])
        extra = torch.cat(extra_planes(wide, gap_px, deficit_px, [t[i:i + 1, :, wy, wx] for t in near[2:]]), dim=1)[0]
        y0, x0 = ys.start - wy.start, xs.start - wx.start
        return torch.cat([p, extra[:, y0:y0 + crop, x0:x0 + crop]])

    def sample(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Even ``k``: a crop around a synthetic defect; odd: a normal frame at a random ROI pixel."""
        if k % 2 == 0:
            i, img, mask = synth[int(rng.integers(len(synth)))]
            py, px = np.nonzero(mask)
            j = int(rng.integers(len(py)))
            jitter = rng.integers(-(crop // 3), crop // 3 + 1, size=2)
            ys, xs = crop_at(int(py[j] + jitter[0]), int(px[j] + jitter[1]))
            return planes(img.transpose(2, 0, 1), i, ys, xs), torch.from_numpy(mask[None, ys, xs].astype(np.float32))
        i = int(rng.integers(n))
        cy, cx = roi_px[int(rng.integers(len(roi_px)))]
        ys, xs = crop_at(int(cy), int(cx))
        return planes(x[i], i, ys, xs), torch.zeros(1, crop, crop)

    opt = torch.optim.Adam(net.head.parameters(), lr=cfg.lr)
    total = ctx.max_steps or cfg.steps
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    net.head.train()
    for step in range(total):
        batch = [sample(k) for k in range(cfg.batch_size)]
        p = torch.stack([b[0] for b in batch])
        y = torch.stack([b[1] for b in batch])
        inside = p[:, 4:5]
        logits = net.head(p)
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        focal = (bce * (1 - torch.exp(-bce)) ** 2 * inside).sum() / inside.sum().clamp_min(1.0)
        crop_logit = (logits - 1e4 * (1 - inside)).flatten(1).amax(dim=1)
        crop_loss = F.binary_cross_entropy_with_logits(crop_logit, y.flatten(1).amax(dim=1))
        loss = cfg.focal_weight * focal + crop_loss
        if not math.isfinite(loss.item()):
            raise TrainingError(f"SeamSeg loss became non-finite at step {step}")
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        if step % 20 == 0 or step == total - 1:
            ctx.tick(step + 1, total)
    mean, inv_var = pixel_stats(torch.from_numpy(x), cfg.min_var)
    net.mean.copy_(mean)
    net.inv_var.copy_(inv_var)
    net.roi.copy_(roi_t)
    kept = np.unique(np.linspace(0, n - 1, min(n, cfg.max_bank_frames)).round().astype(int))
    net.memory_bank = bank[kept]
    net.memory_bank_keys = keys[kept].clone()
    log.info("seamseg trained %d steps on %d images and %d synthetic defects", total, n, len(synth))
    return net.eval()
