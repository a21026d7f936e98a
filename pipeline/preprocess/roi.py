"""ROI binary masks (paper §4.4): the sealant seams of a view, widened by a margin.

The margin absorbs small misalignments (conveyor position, bead placement) so that a defect
next to a seam is never cut off. Pixels outside the ROI are zeroed in the model's input during
training and inference, and the anomaly map is zeroed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.preprocess.errors import PreprocessError

Mask = npt.NDArray[np.bool_]
T = TypeVar("T", bound=np.generic)


def roi_mask(seam_mask: npt.ArrayLike, margin_px: int) -> Mask:
    """The seam pixels of ``seam_mask`` (H, W), non-zero = sealant, dilated by ``margin_px``.

    A pixel is inside when it lies within ``margin_px`` (Euclidean, on the pixel grid) of a seam pixel;
    ``margin_px = 0`` returns the seams themselves.

    Raises:
        PreprocessError: not a 2-D mask, a negative margin, or no seam pixel at all.
    """
    m = np.asarray(seam_mask)
    if m.ndim != 2:
        raise PreprocessError(f"a seam mask is (H, W), got shape {m.shape}")
    if margin_px < 0:
        raise PreprocessError(f"ROI margin must be >= 0 px, got {margin_px}")
    seams = (m != 0).astype(np.uint8)
    if not seams.any():
        raise PreprocessError("the seam mask is empty: an ROI needs at least one seam pixel")
    if margin_px == 0:
        return np.asarray(seams, bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    return np.asarray(cv2.dilate(seams, k) > 0)


def widen_each(seam_masks: npt.ArrayLike, margin_px: int) -> Mask:
    """Per-frame seam masks (N, H, W) each widened into its ROI by :func:`roi_mask`; a frame that shows
    no seam keeps its empty mask."""
    masks = np.asarray(seam_masks, bool)
    if masks.ndim != 3:
        raise PreprocessError(f"per-frame seam masks are (N, H, W), got shape {masks.shape}")
    return np.stack([roi_mask(m, margin_px) if m.any() else m for m in masks]) if len(masks) else masks


def roi_from_polylines(shape_hw: tuple[int, int], polylines: Sequence[npt.ArrayLike], bead_width_px: float,
                       margin_px: int) -> Mask:
    """ROI from seam polylines, each (K, 2) pixel (x, y), drawn ``bead_width_px`` wide, then widened by
    ``margin_px``. Raises PreprocessError for a bad polyline or width."""
    from pipeline.data.synth2d import SynthError, seam_mask_from_polylines

    try:
        seams = seam_mask_from_polylines(shape_hw, polylines, bead_width_px)
    except SynthError as e:
        raise PreprocessError(str(e)) from e
    return roi_mask(seams, margin_px)


def translate(a: npt.NDArray[T], offset_xy: tuple[int, int], fill: float = 0) -> npt.NDArray[T]:
    """``a`` (H, W, ...) moved by ``offset_xy`` px (x right, y down): ``out[y + dy, x + dx] = a[y, x]``.
    What is shifted in is ``fill`` (zero: outside the ROI, black in an image)."""
    dx, dy = offset_xy
    H, W = a.shape[:2]
    out = np.full_like(a, fill)
    if abs(dx) >= W or abs(dy) >= H:
        return out
    out[max(dy, 0):H + min(dy, 0), max(dx, 0):W + min(dx, 0)] = a[max(-dy, 0):H - max(dy, 0),
                                                                  max(-dx, 0):W - max(dx, 0)]
    return out
