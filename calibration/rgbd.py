"""RGB-D check: depth scale and bias against the board's known geometry.

The board's pose comes from the colour image (PnP through the colour camera model). Its plane
is moved into the depth sensor's frame with ``T_color_depth``; for each valid depth pixel on the
board the plane gives the true z along that pixel's ray. A line ``z_measured = scale * z_true +
bias`` fitted over all such pixels (and all views) reports the scale error and the bias.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.boards import BoardDetection, BoardSpec
from calibration.camera import CameraModel
from calibration.errors import CalibrationInputError, SolveError
from calibration.pose import board_pose
from calibration.se3 import invert

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class DepthCheck:
    """``scale`` (1 = exact), ``bias_m``, the RMS about the fit (m) and the pixel count."""

    scale: float
    bias_m: float
    rms_m: float
    n_pixels: int


def depth_scale_check(
    camera: CameraModel, board: BoardSpec, views: Sequence[tuple[BoardDetection, npt.ArrayLike]],
    margin_squares: float = 0.5,
) -> DepthCheck:
    """Fit depth scale and bias from ``(colour detection, depth image in metres)`` pairs.

    Only depth pixels inside the corner grid shrunk by ``margin_squares`` are used. Raises
    :class:`CalibrationInputError` for a camera without depth, :class:`SolveError` for too few pixels.
    """
    if camera.depth is None:
        raise CalibrationInputError(f"camera {camera.camera_id} has no depth sensor")
    d = camera.depth
    dcam = CameraModel(f"{camera.camera_id}-depth", d.K, d.dist, d.width_px, d.height_px)
    v, u = np.mgrid[0 : d.height_px, 0 : d.width_px]
    rays = dcam.normalized_rays(np.stack([u.ravel(), v.ravel()], axis=1))  # z = 1
    obj = board.object_points()
    lo = obj[:, :2].min(axis=0) + margin_squares * board.square_size
    hi = obj[:, :2].max(axis=0) - margin_squares * board.square_size
    z_true, z_meas = [], []
    for det, depth in views:
        T_depth_board = invert(d.T_color_depth) @ board_pose(camera, board, det)
        R, t = T_depth_board[:3, :3], T_depth_board[:3, 3]
        n = R[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = (n @ t) / (rays @ n)  # z along each ray (rays have z = 1)
        q = (rays * lam[:, None] - t) @ R
        zm = np.asarray(depth, dtype=np.float64).reshape(-1)
        ok = (np.isfinite(lam) & (lam > 0) & (zm > 0) & np.all(q[:, :2] >= lo, axis=1)
              & np.all(q[:, :2] <= hi, axis=1))
        z_true.append(lam[ok])
        z_meas.append(zm[ok])
    zt, zm_all = np.concatenate(z_true), np.concatenate(z_meas)
    if len(zt) < 100:
        raise SolveError(f"depth check: {len(zt)} depth pixels on the board, need at least 100")
    if np.ptp(zt) < 1e-3 * max(float(zt.mean()), 1e-9):
        scale, bias = 1.0, float(np.mean(zm_all - zt))  # one distance only: the scale is not observable
    else:
        scale, bias = (float(x) for x in np.polyfit(zt, zm_all, 1))
    rms = float(np.sqrt(np.mean((zm_all - (scale * zt + bias)) ** 2)))
    log.info("depth check %s: scale %.5f, bias %.2f mm, RMS %.2f mm", camera.camera_id, scale, 1000 * bias, 1000 * rms)
    return DepthCheck(scale, bias, rms, len(zt))
