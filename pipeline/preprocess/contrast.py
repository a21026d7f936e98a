"""Local contrast: how far each pixel's colour lies from the colour around it.

A sealant bead is a few pixels wide; the paint on either side of it fills any window a few times
wider. So the median of a ``kernel_px`` window is the paint's colour, and the Euclidean RGB distance
of a pixel from it is large on sealant and near zero on paint, *whatever the paint's and the
sealant's colours are*. Those change from body to body (six paints and three sealants on the twin,
with gain and exposure), and they are what keeps a model that sees raw colours from telling a
missing bead from a present one on a light body. The distance is then max-pooled over ``pool_px``
so that a bead shifted by a pixel or two between aligned frames still lands on the same pixels.

OpenCV's median is fast for windows up to 5 px and much slower above, so a wider window runs as a
5 px median on the frame shrunk by an integer factor (area averaging), scaled back up: 2.2 ms
instead of 31 ms for 640x480 at 9 px, with about the same accuracy on the twin (docs/benchmarks.md,
``benchmarks/preprocess_speed.py``).

The result is a grey image (the distance in all three channels, clipped to 255), so every model
takes it as it takes a frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.preprocess.errors import PreprocessError
from pipeline.preprocess.template import U8

#: the window and pooling sizes at 640 px of frame width; :func:`scaled_contrast_px` scales them
CONTRAST_KERNEL_PX_AT_640 = 9
CONTRAST_POOL_PX_AT_640 = 3


def check_contrast_sizes(kernel_px: int | None, pool_px: int | None) -> None:
    """Raises PreprocessError unless ``kernel_px`` is odd and >= 3 and ``pool_px`` is odd and >= 1 (None passes)."""
    if kernel_px is not None and (kernel_px < 3 or kernel_px % 2 == 0):
        raise PreprocessError(f"local contrast kernel must be odd and >= 3 px, got {kernel_px}")
    if pool_px is not None and (pool_px < 1 or pool_px % 2 == 0):
        raise PreprocessError(f"local contrast pooling must be odd and >= 1 px, got {pool_px}")


def scaled_contrast_px(width_px: int) -> tuple[int, int]:
    """(kernel_px, pool_px) for frames ``width_px`` wide: the sizes at 640 px, scaled and rounded to odd."""
    def odd(v: float, least: int) -> int:
        return max(least, 2 * round((v - 1) / 2) + 1)

    s = width_px / 640
    return odd(CONTRAST_KERNEL_PX_AT_640 * s, 3), odd(CONTRAST_POOL_PX_AT_640 * s, 1)


def paint_colour(frame: U8, kernel_px: int) -> U8:
    """The median colour of each pixel's window: ``kernel_px`` up to 5 px, else 5 px on the frame shrunk
    by ``ceil(kernel_px / 5)`` and scaled back up (a window of ``kernel_px`` to ``kernel_px + 4`` px)."""
    shrink = -(-kernel_px // 5)
    if shrink == 1:
        return np.asarray(cv2.medianBlur(frame, kernel_px), np.uint8)
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, w // shrink), max(1, h // shrink)), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.resize(cv2.medianBlur(small, 5), (w, h), interpolation=cv2.INTER_LINEAR), np.uint8)


def local_contrast(frame: U8, kernel_px: int, pool_px: int) -> U8:
    """(H, W, 3) uint8 RGB → (H, W, 3) uint8: each pixel's RGB distance from its window's median, pooled.

    Raises:
        PreprocessError: a frame that is not (H, W, 3) uint8, or bad sizes.
    """
    check_contrast_sizes(kernel_px, pool_px)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise PreprocessError(f"local contrast needs an (H, W, 3) uint8 frame, got {frame.dtype} {frame.shape}")
    return colour_distance(frame, paint_colour(frame, kernel_px), pool_px)


def contrast_frames(frames: U8) -> U8:
    """(N, H, W, 3) uint8 frames → their local contrast at the sizes scaled to their width: what a model
    trained with the contrast step sees, before template alignment and ROI masking (e.g. the frames
    to pretrain its backbone on).

    Raises:
        PreprocessError: frames that are not (N, H, W, 3) uint8.
    """
    if frames.ndim != 4:
        raise PreprocessError(f"local contrast needs (N, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}")
    kernel, pool = scaled_contrast_px(frames.shape[2])
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        out[i] = local_contrast(frame, kernel, pool)
    return out


def colour_distance(frame: U8, paint: U8, pool_px: int) -> U8:
    """The RGB distance of ``frame`` from ``paint`` (both (H, W, 3) uint8), max-pooled over ``pool_px``,
    rounded and saturated to 0..255, in all three channels."""
    diff = cv2.absdiff(frame, paint).astype(np.float32)
    dist = cv2.sqrt(cv2.transform(cv2.multiply(diff, diff), np.ones((1, 3), np.float32)))
    if pool_px > 1:
        dist = cv2.dilate(dist, np.ones((pool_px, pool_px), np.uint8))
    grey = cv2.convertScaleAbs(dist)
    return np.asarray(cv2.merge([grey, grey, grey]), np.uint8)
