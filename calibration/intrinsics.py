"""Intrinsic calibration of one camera from board views, with outlier-view rejection.

Distortion models (``DistortionChoice``):

* ``plumb_bob``: pinhole with k1 k2 p1 p2 k3 (OpenCV's default);
* ``rational``: pinhole with k1 k2 p1 p2 k3 k4 k5 k6;
* ``fisheye``: the equidistant fisheye model with k1..k4 (``cv2.fisheye``).

The solve runs once on every accepted view, drops views whose RMS reprojection error exceeds
``outlier_factor`` times the median (and ``outlier_floor_px``), and runs again, until no view
is dropped (at most ``max_rounds``). Errors are reported per view and per point.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from calibration.boards import BoardDetection, BoardSpec
from calibration.camera import CameraModel
from calibration.errors import SolveError
from calibration.se3 import from_rotvec

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
DistortionChoice = Literal["plumb_bob", "rational", "fisheye"]
DISTORTION_CHOICES: tuple[DistortionChoice, ...] = ("plumb_bob", "rational", "fisheye")


@dataclass(frozen=True, slots=True)
class IntrinsicsConfig:
    """Solver settings. ``min_views``: fewest views to solve; ``max_rel_focal_std``: the relative
    standard deviation of fx above which the views are called degenerate (focal length undetermined)."""

    distortion: DistortionChoice = "plumb_bob"
    min_views: int = 4
    outlier_factor: float = 3.0
    outlier_floor_px: float = 0.5
    max_rounds: int = 3
    max_rel_focal_std: float = 0.02


@dataclass(frozen=True, slots=True, eq=False)
class IntrinsicsResult:
    """A calibrated camera (pose = identity) with its errors.

    ``T_cam_board``: the board pose per used view; ``residuals_px``: per used view, (N, 2)
    projected minus detected; ``rejected``: view id -> reason for views the solver dropped;
    ``focal_std_px``: standard deviation of (fx, fy) from the solver's covariance.
    """

    camera: CameraModel
    rms_px: float
    per_view_rms_px: dict[str, float]
    residuals_px: dict[str, F64]
    T_cam_board: dict[str, F64]
    rejected: dict[str, str] = field(default_factory=dict)
    focal_std_px: tuple[float, float] = (0.0, 0.0)
    distortion: DistortionChoice = "plumb_bob"

    @property
    def view_ids(self) -> list[str]:
        return list(self.per_view_rms_px)


def _solve_once(
    dets: Mapping[str, BoardDetection], board: BoardSpec, size: tuple[int, int], distortion: DistortionChoice
) -> tuple[float, F64, F64, list[F64], list[F64], F64]:
    """One OpenCV solve: (rms, K, dist, rvecs, tvecs, std of intrinsics)."""
    obj_all = board.object_points()
    objs = [obj_all[d.corner_ids] for d in dets.values()]
    imgs = [d.uv_px for d in dets.values()]
    try:
        if distortion == "fisheye":
            flags = cv2.CALIB_RECOMPUTE_EXTRINSIC | cv2.CALIB_FIX_SKEW
            crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-9)
            rms, K, dist, rvecs, tvecs = cv2.fisheye.calibrate(  # type: ignore[call-overload]
                [o.reshape(1, -1, 3) for o in objs], [i.reshape(1, -1, 2) for i in imgs], size, None, None,
                flags=flags, criteria=crit,
            )
            std = np.zeros(4)
        else:
            flags = cv2.CALIB_RATIONAL_MODEL if distortion == "rational" else 0
            rms, K, dist, rvecs, tvecs, std, _, _ = cv2.calibrateCameraExtended(  # type: ignore[call-overload]
                [o.astype(np.float32) for o in objs], [i.astype(np.float32) for i in imgs], size, None, None,
                flags=flags,
            )
    except cv2.error as e:
        raise SolveError(f"intrinsic solve failed ({e.msg.strip() if hasattr(e, 'msg') else e}); "
                         "the views are degenerate: tilt the board and cover the image") from e
    n_dist = {"plumb_bob": 5, "rational": 8, "fisheye": 4}[distortion]
    dist = np.asarray(dist, dtype=np.float64).reshape(-1)[:n_dist]
    return (float(rms), np.asarray(K, dtype=np.float64), dist, [np.asarray(r).reshape(3) for r in rvecs],
            [np.asarray(t).reshape(3) for t in tvecs], np.asarray(std, dtype=np.float64).reshape(-1))


def board_residuals_px(camera: CameraModel, T_cam_board: F64, board: BoardSpec, det: BoardDetection) -> F64:
    """Projected minus detected corner positions (N, 2) in pixels for one view."""
    obj = board.object_points()[det.corner_ids]
    p_cam = obj @ T_cam_board[:3, :3].T + T_cam_board[:3, 3]
    uv, _ = camera.project_cam(p_cam)
    return np.asarray(uv - det.uv_px, dtype=np.float64)


def calibrate_intrinsics(
    camera_id: str, detections: Mapping[str, BoardDetection], board: BoardSpec, size_px: tuple[int, int],
    config: IntrinsicsConfig = IntrinsicsConfig(),
) -> IntrinsicsResult:
    """Calibrate one camera from its accepted board views (view id -> detection).

    ``size_px`` is (width, height). Raises :class:`SolveError` for too few views, a solver
    failure, or views that leave the focal length undetermined; the caller reports the message.
    """
    dets = {k: d for k, d in detections.items() if len(d) >= 6}
    rejected: dict[str, str] = {}
    model: Literal["pinhole", "fisheye"] = "fisheye" if config.distortion == "fisheye" else "pinhole"
    for _round in range(config.max_rounds + 1):
        if len(dets) < config.min_views:
            raise SolveError(
                f"camera {camera_id}: {len(dets)} usable board views, need at least {config.min_views}"
            )
        rms, K, dist, rvecs, tvecs, std = _solve_once(dets, board, size_px, config.distortion)
        try:
            cam = CameraModel(camera_id, K, dist, size_px[0], size_px[1], model=model)
        except ValueError as e:
            raise SolveError(f"camera {camera_id}: solve gave an invalid camera ({e}); the views are degenerate") from e
        poses = {k: from_rotvec(r, t) for k, r, t in zip(dets, rvecs, tvecs, strict=True)}
        resid = {k: board_residuals_px(cam, poses[k], board, d) for k, d in dets.items()}
        per_view = {k: float(np.sqrt(np.mean(np.sum(r**2, axis=1)))) for k, r in resid.items()}
        med = float(np.median(list(per_view.values())))
        limit = max(config.outlier_factor * med, config.outlier_floor_px)
        bad = [k for k, e in per_view.items() if e > limit]
        if not bad or _round == config.max_rounds or len(dets) - len(bad) < config.min_views:
            break
        for k in bad:
            rejected[k] = f"outlier: view RMS {per_view[k]:.2f} px > {limit:.2f} px (3x median)"
            del dets[k]
        log.info("camera %s: dropped %d outlier views, solving again", camera_id, len(bad))
    fstd = (float(std[0]), float(std[1])) if std.size >= 2 else (0.0, 0.0)
    if std.size >= 2 and fstd[0] > config.max_rel_focal_std * K[0, 0]:
        raise SolveError(
            f"camera {camera_id}: degenerate views, focal length undetermined (σ_fx = {fstd[0]:.1f} px, "
            f"{100 * fstd[0] / K[0, 0]:.1f}%); tilt the board in different directions"
        )
    all_r = np.concatenate(list(resid.values()))
    rms_px = float(np.sqrt(np.mean(np.sum(all_r**2, axis=1))))
    log.info("camera %s: RMS %.3f px over %d views (OpenCV %.3f)", camera_id, rms_px, len(dets), rms)
    return IntrinsicsResult(cam, rms_px, per_view, resid, poses, rejected, fstd, config.distortion)
