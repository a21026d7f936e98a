"""A simple, real per-pixel detector for evaluation: normalised difference against a golden reference.

The reference is an image of the same body without defects at the same pose (in the twin:
the vehicle re-rendered with ``spec.with_defects([])``, with its own sensor noise). Both
images are blurred, the per-pixel absolute difference (max over RGB, in [0, 1] intensity)
is taken, and mapped to a score ``clip((diff - floor) / span, 0, 1)``. It stands in for the
anomaly models (pipeline/models) until they exist; any callable with the
:class:`HeatmapSource` signature can replace it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.fusion.errors import FusionError

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


class HeatmapSource(Protocol):
    """Anything that maps one view's image (and optionally a reference image) to a heatmap in [0, 1]."""

    def __call__(self, camera_id: str, image: U8, reference: U8 | None) -> F32: ...


@dataclass(frozen=True, slots=True)
class ReferenceDiffDetector:
    """``blur_sigma_px``: Gaussian blur before differencing; ``floor``/``span``: score mapping (intensity units)."""

    blur_sigma_px: float = 1.2
    floor: float = 0.03
    span: float = 0.12

    def __call__(self, camera_id: str, image: U8, reference: U8 | None) -> F32:
        """Heatmap (H, W) float32 in [0, 1]. Raises :class:`FusionError` without a reference of the same size."""
        if reference is None or reference.shape != image.shape:
            raise FusionError(f"{camera_id}: the reference-difference detector needs a reference of the same size")
        a = cv2.GaussianBlur(image.astype(np.float32) / 255.0, (0, 0), self.blur_sigma_px)
        b = cv2.GaussianBlur(reference.astype(np.float32) / 255.0, (0, 0), self.blur_sigma_px)
        diff = np.abs(a - b).max(axis=2)
        out: F32 = np.clip((diff - self.floor) / self.span, 0.0, 1.0).astype(np.float32)
        return out
