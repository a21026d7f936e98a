"""RGB-D: depth-to-colour registration, and a check of depth scale and bias against the board.

Registration (:func:`register_depth_to_color`) fits ``T_color_depth`` so that the depth pixels on
the board lie on the board's plane as the colour camera sees it (plane constraints from >= 3
differently tilted views).

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
from calibration.se3 import from_rotvec, invert, to_rotvec

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


@dataclass(frozen=True, slots=True, eq=False)
class DepthRegistration:
    """``T_color_depth`` (depth sensor frame -> colour frame), the RMS point-to-board-plane distance
    (m), the depth pixels used and the views; ``min_normal_spread`` is the smallest singular value of
    the board normals (near 0: the views do not constrain every direction)."""

    T_color_depth: F64
    rms_m: float
    n_pixels: int
    n_views: int
    min_normal_spread: float


def register_depth_to_color(
    camera: CameraModel, board: BoardSpec, views: Sequence[tuple[BoardDetection, npt.ArrayLike]],
    T_init: npt.ArrayLike | None = None, margin_squares: float = 0.5, max_points_per_view: int = 3000,
) -> DepthRegistration:
    """Estimate ``T_color_depth`` from ``(colour detection, depth image in metres)`` pairs of a board.

    Each view gives the board's plane in the colour frame (PnP on the colour corners). The depth
    pixels that land on the board -- selected with the current estimate, starting from ``T_init``
    (default: the rig's nominal ``T_color_depth``) -- are moved into the colour frame and pulled
    onto their view's plane by a robust least-squares fit of the 6-DoF transform; selection and fit
    alternate until the transform settles. Needs >= 3 views with differently tilted boards.
    Raises :class:`CalibrationInputError` (no depth sensor, too few views) or :class:`SolveError`.
    """
    from scipy.optimize import least_squares

    if camera.depth is None:
        raise CalibrationInputError(f"camera {camera.camera_id} has no depth sensor")
    if len(views) < 3:
        raise CalibrationInputError(f"depth registration needs at least 3 board views, got {len(views)}")
    d = camera.depth
    dcam = CameraModel(f"{camera.camera_id}-depth", d.K, d.dist, d.width_px, d.height_px)
    v, u = np.mgrid[0 : d.height_px, 0 : d.width_px]
    rays = dcam.normalized_rays(np.stack([u.ravel(), v.ravel()], axis=1))
    obj = board.object_points()
    lo = obj[:, :2].min(axis=0) + margin_squares * board.square_size
    hi = obj[:, :2].max(axis=0) - margin_squares * board.square_size
    rng = np.random.default_rng(0)
    planes, clouds = [], []
    for det, depth in views:
        T_cb = board_pose(camera, board, det)
        planes.append(T_cb)
        z = np.asarray(depth, dtype=np.float64).reshape(-1)
        ok = np.isfinite(z) & (z > 0)
        clouds.append(rays[ok] * z[ok, None])
    normals = np.stack([T[:3, 2] for T in planes])
    spread = float(np.linalg.svd(normals, compute_uv=False)[-1])
    if spread < 0.05:
        raise SolveError(f"depth registration: the board views are nearly parallel (normal spread {spread:.3f}); "
                         "tilt the board differently between views")
    T = np.asarray(T_init if T_init is not None else d.T_color_depth, dtype=np.float64)
    tol = 0.05 * max(float(np.ptp(obj[:, 0])), float(np.ptp(obj[:, 1])))  # plane gate, shrinks each round
    sel: list[F64] = []
    for _ in range(6):
        sel = []
        for T_cb, cloud in zip(planes, clouds, strict=True):
            q = (cloud @ T[:3, :3].T + T[:3, 3] - T_cb[:3, 3]) @ T_cb[:3, :3]  # board coordinates
            on = np.all(q[:, :2] >= lo, axis=1) & np.all(q[:, :2] <= hi, axis=1) & (np.abs(q[:, 2]) < tol)
            pts = cloud[on]
            if len(pts) > max_points_per_view:
                pts = pts[rng.choice(len(pts), max_points_per_view, replace=False)]
            sel.append(pts)
        if sum(len(p) for p in sel) < 300 or sum(len(p) >= 50 for p in sel) < 3:
            raise SolveError("depth registration: too few depth pixels fall on the boards; check the depth "
                             "images, the depth scale and the nominal T_color_depth")

        rv, t = to_rotvec(T)
        sol = least_squares(_plane_residuals, np.concatenate([rv, t]), loss="huber", f_scale=0.005,
                            args=(planes, sel))
        T_new = from_rotvec(sol.x[:3], sol.x[3:])
        moved = float(np.linalg.norm(T_new[:3, 3] - T[:3, 3])) + float(np.linalg.norm(T_new[:3, :3] - T[:3, :3]))
        T = T_new
        tol = max(0.01, tol * 0.5)
        if moved < 1e-6:
            break
    res = _plane_residuals(np.concatenate(to_rotvec(T)), planes, sel)
    rms = float(np.sqrt(np.mean(res**2)))
    log.info("depth registration %s: %d px in %d views, RMS %.2f mm", camera.camera_id, len(res), len(views),
             1000 * rms)
    return DepthRegistration(T, rms, len(res), len(views), spread)


def _plane_residuals(x: F64, planes: Sequence[F64], clouds: Sequence[F64]) -> F64:
    """Signed distances of depth points, moved by ``x`` (rotvec, t), to their view's board plane."""
    T = from_rotvec(x[:3], x[3:])
    return np.concatenate([(p @ T[:3, :3].T + T[:3, 3] - T_cb[:3, 3]) @ T_cb[:3, 2]
                           for T_cb, p in zip(planes, clouds, strict=True)])
