"""Sampling per-view heatmaps at projected vertex positions, and image-level score fusion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import numpy.typing as npt

from pipeline.fusion.errors import FusionError

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
ImageFusionMode = Literal["max", "mean"]


def check_heatmap(camera_id: str, heatmap: npt.NDArray[np.generic], width_px: int, height_px: int) -> F32:
    """Validate a per-view normalised heatmap: (H, W) float32, finite, within [0, 1].

    Returns it typed; raises :class:`FusionError` naming the camera otherwise.
    """
    if not isinstance(heatmap, np.ndarray) or heatmap.dtype != np.float32:
        raise FusionError(f"heatmap {camera_id}: must be a float32 array")
    if heatmap.shape != (height_px, width_px):
        raise FusionError(f"heatmap {camera_id}: shape {heatmap.shape} != camera image ({height_px}, {width_px})")
    lo, hi = float(heatmap.min()), float(heatmap.max())
    if not (np.isfinite(lo) and np.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
        raise FusionError(f"heatmap {camera_id}: values must be finite and in [0, 1], got [{lo}, {hi}]")
    out: F32 = heatmap.astype(np.float32, copy=False)
    return out


def bilinear(heatmap: F32, uv_px: F64) -> F32:
    """Bilinear samples of ``heatmap`` (H, W) at pixel coordinates ``uv_px`` (N, 2); pixel centres are integers.

    Coordinates are clamped to the image, so callers keep points inside (see ``margin_px``).
    """
    h, w = heatmap.shape
    u = np.clip(uv_px[:, 0], 0.0, w - 1.0)
    v = np.clip(uv_px[:, 1], 0.0, h - 1.0)
    u0 = np.minimum(u.astype(np.intp), w - 2) if w > 1 else np.zeros(len(u), np.intp)
    v0 = np.minimum(v.astype(np.intp), h - 2) if h > 1 else np.zeros(len(v), np.intp)
    fu = (u - u0).astype(np.float32)
    fv = (v - v0).astype(np.float32)
    u1 = np.minimum(u0 + 1, w - 1)
    v1 = np.minimum(v0 + 1, h - 1)
    top = heatmap[v0, u0] * (1 - fu) + heatmap[v0, u1] * fu
    bottom = heatmap[v1, u0] * (1 - fu) + heatmap[v1, u1] * fu
    out: F32 = (top * (1 - fv) + bottom * fv).astype(np.float32)
    return out


def image_score(heatmap: F32) -> float:
    """Image-level score of one view: the maximum of its normalised map (as in the seed paper)."""
    return float(heatmap.max()) if heatmap.size else 0.0


def fuse_image_scores(scores: Mapping[str, float], mode: ImageFusionMode = "max") -> float:
    """Image-level late fusion of per-view scores, by ``max`` or ``mean`` (as in the paper and Real-IAD).

    Raises :class:`FusionError` on no scores or an unknown mode.
    """
    if not scores:
        raise FusionError("image-level fusion needs at least one view score")
    vals = np.asarray(list(scores.values()), dtype=np.float64)
    if mode == "max":
        return float(vals.max())
    if mode == "mean":
        return float(vals.mean())
    raise FusionError(f"unknown image fusion mode {mode!r}; use 'max' or 'mean'")
