"""Frames and frame sets: what every source produces and every stage consumes.

A :class:`FrameSet` groups the views captured together. ``capture_ts_ns`` is the
acquisition time (ns, ``time.time_ns()`` epoch) and travels end to end so each
stage's latency is measured from it. ``T_cell_vehicle`` is the vehicle pose at
capture time when known (encoder, tracking or the twin), else ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]
DepthImage = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One view: an RGB image (H, W, 3) uint8 and, for RGB-D cameras, depth (H, W) float32 in metres.

    Depth is registered to the colour image; 0 marks an invalid depth pixel.
    """

    camera_id: str
    image: RGBImage
    capture_ts_ns: int
    seq: int
    depth_m: DepthImage | None = None

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"frame {self.camera_id}: image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
        if self.depth_m is not None:
            d = self.depth_m
            if d.dtype != np.float32 or d.shape != img.shape[:2]:
                raise ValueError(
                    f"frame {self.camera_id}: depth must be (H, W) float32 matching the image, got {d.shape} {d.dtype}"
                )

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height)."""
        return (int(self.image.shape[1]), int(self.image.shape[0]))


@dataclass(frozen=True, slots=True, eq=False)
class FrameSet:
    """Synchronised views of one instant."""

    seq: int
    capture_ts_ns: int
    frames: tuple[Frame, ...]
    T_cell_vehicle: npt.NDArray[np.float64] | None = None
    vehicle_id: str | None = None

    def __post_init__(self) -> None:
        ids = [f.camera_id for f in self.frames]
        if len(set(ids)) != len(ids):
            raise ValueError(f"frame set {self.seq}: duplicate camera ids {ids}")
        if self.T_cell_vehicle is not None and np.asarray(self.T_cell_vehicle).shape != (4, 4):
            raise ValueError(f"frame set {self.seq}: T_cell_vehicle must be 4x4")

    @property
    def camera_ids(self) -> tuple[str, ...]:
        return tuple(f.camera_id for f in self.frames)

    def frame(self, camera_id: str) -> Frame:
        for f in self.frames:
            if f.camera_id == camera_id:
                return f
        raise KeyError(f"frame set {self.seq} has no view {camera_id!r}; it has {list(self.camera_ids)}")
