"""The one contract every model follows: uint8 NHWC images in, image scores and anomaly maps out.

Each model is a pure ``torch.nn.Module`` (an *inference network*) with the signature::

    forward(x: float32 (N, 3, H, W), RGB values 0..255, at the model's input size)
        -> (scores: float32 (N,), maps: float32 (N, 1, H, W))

The network holds its own normalisation, so the same graph runs in PyTorch and ONNX Runtime.
Resizing to the input size and back to the caller's resolution happens in numpy here, identically
for every runtime.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.models.errors import InputError

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
BoolArr = npt.NDArray[np.bool_]

#: ImageNet statistics (RGB, 0..255 scale) used by the pretrained-style backbones.
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


@dataclass(frozen=True, slots=True)
class Normalization:
    """Per-channel ``(x - mean) / std`` on RGB values in 0..255."""

    mean_255: tuple[float, float, float] = IMAGENET_MEAN_255
    std_255: tuple[float, float, float] = IMAGENET_STD_255


@dataclass(frozen=True, slots=True)
class ScoreCalibration:
    """Score normalisation and thresholds fitted on validation data.

    Normalised values map the threshold to 0.5 and the validation range to about [0, 1]:
    ``clip((x - threshold) / (max - min) + 0.5, 0, 1)`` (anomalib's min-max scheme).
    """

    image_threshold: float
    image_min: float
    image_max: float
    pixel_threshold: float
    pixel_min: float
    pixel_max: float
    source: str = "validation"

    def normalize_scores(self, scores: F32) -> F32:
        span = max(self.image_max - self.image_min, 1e-12)
        out: F32 = np.clip((scores - self.image_threshold) / span + 0.5, 0.0, 1.0).astype(np.float32)
        return out

    def normalize_maps(self, maps: F32) -> F32:
        span = max(self.pixel_max - self.pixel_min, 1e-12)
        out: F32 = np.clip((maps - self.pixel_threshold) / span + 0.5, 0.0, 1.0).astype(np.float32)
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Prediction:
    """What ``predict`` returns for a batch of N images of size (H, W).

    ``scores`` (N,) and ``maps`` (N, H, W) are raw model outputs (higher = more anomalous), maps at
    the caller's input resolution. With a calibration, ``scores_norm``/``maps_norm`` are in [0, 1]
    with the fitted threshold at 0.5, and ``labels`` (N,) / ``masks`` (N, H, W) apply the thresholds.
    """

    scores: F32
    maps: F32
    scores_norm: F32 | None = None
    maps_norm: F32 | None = None
    labels: BoolArr | None = None
    masks: BoolArr | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


def check_batch(batch: Any) -> U8:
    """Validate a batch of RGB images: uint8 (N, H, W, 3) with N >= 1 and H, W >= 16.

    A single (H, W, 3) image is accepted and promoted to a batch of one.

    Raises:
        InputError: wrong type, dtype, rank, channel count or a too-small size.
    """
    if not isinstance(batch, np.ndarray):
        raise InputError(f"expected a numpy array of uint8 RGB images, got {type(batch).__name__}")
    if batch.dtype != np.uint8:
        raise InputError(f"expected dtype uint8 (RGB 0..255), got {batch.dtype}")
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise InputError(f"expected shape (N, H, W, 3), got {batch.shape}")
    if batch.shape[0] < 1 or batch.shape[1] < 16 or batch.shape[2] < 16:
        raise InputError(f"batch too small: {batch.shape} (need N >= 1 and H, W >= 16)")
    return np.ascontiguousarray(batch)


def to_network_input(batch: U8, input_size_wh: tuple[int, int]) -> F32:
    """(N, H, W, 3) uint8 → (N, 3, h, w) float32 0..255 at the model's input size (bilinear/area)."""
    w, h = input_size_wh
    out = np.empty((batch.shape[0], 3, h, w), np.float32)
    for i, img in enumerate(batch):
        if img.shape[:2] != (h, w):
            interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
            img = cv2.resize(img, (w, h), interpolation=interp)
        out[i] = img.transpose(2, 0, 1)
    return out


def maps_to_input_size(maps: F32, size_hw: tuple[int, int]) -> F32:
    """(N, 1, h, w) or (N, h, w) → (N, H, W) with bilinear resizing."""
    if maps.ndim == 4:
        maps = maps[:, 0]
    H, W = size_hw
    if maps.shape[1:] == (H, W):
        return np.ascontiguousarray(maps, dtype=np.float32)
    return np.stack([cv2.resize(m, (W, H), interpolation=cv2.INTER_LINEAR) for m in maps]).astype(np.float32)


def top_fraction_scores(maps: F32, fraction: float) -> F32:
    """(N, H, W) maps → (N,) the mean of each map's ``fraction`` largest pixels (at least one: 0.0 = the max)."""
    flat = maps.reshape(len(maps), -1)
    k = min(max(1, round(fraction * flat.shape[1])), flat.shape[1])
    top = np.partition(flat, flat.shape[1] - k, axis=1)[:, flat.shape[1] - k:]
    out: F32 = top.mean(axis=1, dtype=np.float64).astype(np.float32)
    return out


def finish_prediction(scores: F32, maps: F32, calibration: ScoreCalibration | None,
                      timings_ms: dict[str, float] | None = None) -> Prediction:
    """Attach normalised values and thresholded labels/masks when a calibration is known."""
    if calibration is None:
        return Prediction(scores, maps, timings_ms=timings_ms or {})
    return Prediction(
        scores, maps, calibration.normalize_scores(scores), calibration.normalize_maps(maps),
        scores >= calibration.image_threshold, maps >= calibration.pixel_threshold, timings_ms or {},
    )
