"""Camera models in OpenCV conventions.

A :class:`CameraModel` holds the intrinsics ``K``, the distortion coefficients in
OpenCV order, the image size and the extrinsic pose ``T_cell_cam``. Camera axes
are OpenCV's: x right, y down, z forward; pixel (0, 0) is the centre of the
top-left pixel.

Distortion models:

* ``pinhole``: ``dist`` has 4, 5, 8, 12 or 14 coefficients (plumb_bob is
  k1 k2 p1 p2 k3; rational adds k4 k5 k6), used by ``cv2.projectPoints``.
* ``fisheye``: ``dist`` has exactly 4 coefficients k1..k4, used by
  ``cv2.fisheye``.

RGB-D cameras carry a :class:`DepthIntrinsics`: the depth sensor's own
intrinsics, its pose in the colour camera ``T_color_depth`` and the scale from
raw units to metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from calibration.se3 import invert, is_rigid, transform_points

F64 = npt.NDArray[np.float64]
DistortionModel = Literal["pinhole", "fisheye"]
_PINHOLE_DIST_LENGTHS = (4, 5, 8, 12, 14)


def _validate_intrinsics(K: F64, dist: F64, width_px: int, height_px: int, model: str) -> None:
    if K.shape != (3, 3) or not np.all(np.isfinite(K)):
        raise ValueError(f"K must be a finite 3x3 matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError("K focal lengths fx, fy must be positive")
    if not np.allclose(K[2], (0.0, 0.0, 1.0)) or K[1, 0] != 0.0:
        raise ValueError("K must be upper triangular with last row 0 0 1")
    if width_px <= 0 or height_px <= 0:
        raise ValueError(f"image size must be positive, got {width_px}x{height_px}")
    if model == "fisheye":
        if dist.shape != (4,):
            raise ValueError(f"fisheye distortion needs 4 coefficients, got {dist.size}")
    elif model == "pinhole":
        if dist.ndim != 1 or dist.size not in _PINHOLE_DIST_LENGTHS:
            raise ValueError(f"pinhole distortion needs one of {_PINHOLE_DIST_LENGTHS} coefficients, got {dist.size}")
    else:
        raise ValueError(f"unknown distortion model {model!r} (use 'pinhole' or 'fisheye')")
    if not np.all(np.isfinite(dist)):
        raise ValueError("distortion coefficients must be finite")


@dataclass(frozen=True, slots=True, eq=False)
class DepthIntrinsics:
    """The depth sensor of an RGB-D camera.

    ``T_color_depth`` maps points from the depth sensor's frame to the colour
    camera's frame. ``depth_scale_m`` converts a raw depth unit to metres
    (0.001 for millimetre sensors). ``min_depth_m``/``max_depth_m`` bound the
    valid range; outside it the sensor reports 0.
    """

    K: F64
    dist: F64
    width_px: int
    height_px: int
    T_color_depth: F64 = field(default_factory=lambda: np.eye(4))
    depth_scale_m: float = 0.001
    min_depth_m: float = 0.2
    max_depth_m: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", np.asarray(self.K, dtype=np.float64))
        object.__setattr__(self, "dist", np.asarray(self.dist, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "T_color_depth", np.asarray(self.T_color_depth, dtype=np.float64))
        _validate_intrinsics(self.K, self.dist, self.width_px, self.height_px, "pinhole")
        if not is_rigid(self.T_color_depth):
            raise ValueError("T_color_depth must be a rigid 4x4 transform")
        if not self.depth_scale_m > 0:
            raise ValueError("depth_scale_m must be positive")
        if not 0 <= self.min_depth_m < self.max_depth_m:
            raise ValueError("need 0 <= min_depth_m < max_depth_m")


@dataclass(frozen=True, slots=True, eq=False)
class CameraModel:
    """One calibrated camera. Immutable; arrays are float64.

    Raises ``ValueError`` at construction when any field is inconsistent.
    """

    camera_id: str
    K: F64
    dist: F64
    width_px: int
    height_px: int
    T_cell_cam: F64 = field(default_factory=lambda: np.eye(4))
    model: DistortionModel = "pinhole"
    depth: DepthIntrinsics | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", np.asarray(self.K, dtype=np.float64))
        object.__setattr__(self, "dist", np.asarray(self.dist, dtype=np.float64).reshape(-1))
        object.__setattr__(self, "T_cell_cam", np.asarray(self.T_cell_cam, dtype=np.float64))
        if not self.camera_id or not self.camera_id.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"camera_id must be a non-empty [A-Za-z0-9_-] name, got {self.camera_id!r}")
        _validate_intrinsics(self.K, self.dist, self.width_px, self.height_px, self.model)
        if not is_rigid(self.T_cell_cam):
            raise ValueError("T_cell_cam must be a rigid 4x4 transform")

    # --- derived quantities -------------------------------------------------------------
    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return (self.width_px, self.height_px)

    @property
    def T_cam_cell(self) -> F64:
        return invert(self.T_cell_cam)

    @property
    def center_cell_m(self) -> F64:
        """Optical centre in the cell frame."""
        return self.T_cell_cam[:3, 3].copy()

    @property
    def fov_deg(self) -> tuple[float, float]:
        """Horizontal and vertical field of view of the undistorted pinhole, in degrees."""
        fx, fy = self.K[0, 0], self.K[1, 1]
        return (
            float(np.degrees(2 * np.arctan(self.width_px / (2 * fx)))),
            float(np.degrees(2 * np.arctan(self.height_px / (2 * fy)))),
        )

    # --- projection -----------------------------------------------------------------------
    def project_cam(self, p_cam_m: npt.ArrayLike) -> tuple[F64, F64]:
        """Project points given in the camera frame.

        Returns ``(uv_px, z_m)``: pixel coordinates (N, 2) with distortion applied,
        and the depth along the optical axis (N,). Points with ``z_m <= 0`` lie
        behind the camera; their ``uv_px`` is NaN.
        """
        p = np.asarray(p_cam_m, dtype=np.float64).reshape(-1, 3)
        z = p[:, 2].copy()
        uv = np.full((p.shape[0], 2), np.nan)
        front = z > 1e-9
        if np.any(front):
            pts = p[front].reshape(-1, 1, 3)
            zero = np.zeros(3)
            if self.model == "fisheye":
                proj, _ = cv2.fisheye.projectPoints(pts, zero, zero, self.K, self.dist)
            else:
                proj, _ = cv2.projectPoints(pts, zero, zero, self.K, self.dist)
            uv[front] = proj.reshape(-1, 2)
        return uv, z

    def project(self, p_cell_m: npt.ArrayLike) -> tuple[F64, F64]:
        """Project points given in the cell frame; see :meth:`project_cam`."""
        return self.project_cam(transform_points(self.T_cam_cell, np.asarray(p_cell_m).reshape(-1, 3)))

    def in_image(self, uv_px: F64, margin_px: float = 0.0) -> npt.NDArray[np.bool_]:
        """Which pixel coordinates fall inside the image (NaN counts as outside)."""
        u, v = uv_px[:, 0], uv_px[:, 1]
        with np.errstate(invalid="ignore"):
            return (
                (u >= -0.5 + margin_px)
                & (u <= self.width_px - 0.5 - margin_px)
                & (v >= -0.5 + margin_px)
                & (v <= self.height_px - 0.5 - margin_px)
            )

    def normalized_rays(self, uv_px: npt.ArrayLike) -> F64:
        """Undistort pixels to normalised rays ``(x, y, 1)`` in the camera frame, shape (N, 3)."""
        uv = np.asarray(uv_px, dtype=np.float64).reshape(-1, 1, 2)
        if self.model == "fisheye":
            xy = cv2.fisheye.undistortPoints(uv, self.K, self.dist)
        else:
            crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
            xy = cv2.undistortPoints(uv, self.K, self.dist, None, None, None, crit)
        xy = xy.reshape(-1, 2)
        return np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)

    def unproject(self, uv_px: npt.ArrayLike, z_m: npt.ArrayLike) -> F64:
        """Back-project pixels with depth along the optical axis to 3D points in the camera frame."""
        rays = self.normalized_rays(uv_px)
        return rays * np.asarray(z_m, dtype=np.float64).reshape(-1, 1)

    def pixel_rays_cam(self) -> F64:
        """Unit ray directions in the camera frame for every pixel centre, shape (H, W, 3).

        Distortion is inverted exactly (iteratively), so an image rendered along these
        rays reproduces the lens distortion of this model.
        """
        u, v = np.meshgrid(np.arange(self.width_px, dtype=np.float64), np.arange(self.height_px, dtype=np.float64))
        rays = self.normalized_rays(np.stack([u.ravel(), v.ravel()], axis=1))
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        return rays.reshape(self.height_px, self.width_px, 3)

    def with_pose(self, T_cell_cam: npt.ArrayLike) -> CameraModel:
        """The same camera moved to another pose."""
        return CameraModel(
            self.camera_id, self.K, self.dist, self.width_px, self.height_px,
            np.asarray(T_cell_cam, dtype=np.float64), self.model, self.depth,
        )


def intrinsics_from_fov(width_px: int, height_px: int, hfov_deg: float) -> F64:
    """A square-pixel K with the principal point at the image centre and the given horizontal FOV."""
    f = (width_px / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[f, 0.0, (width_px - 1) / 2.0], [0.0, f, (height_px - 1) / 2.0], [0.0, 0.0, 1.0]])
