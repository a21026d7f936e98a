"""Pairwise stereo: the pose of one camera relative to another from shared board views.

``T_left_right`` maps points from the right camera's frame into the left camera's frame, so
the right camera's centre in the left frame is ``T_left_right[:3, 3]`` and the baseline is its
norm, in board units. Intrinsics are held fixed (they come from the per-camera solves).

The rectified epipolar error is the quality check: after rectifying both views, matching
corners must lie on the same image row; its RMS over all shared corners is reported in pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from calibration.boards import BoardDetection, BoardSpec
from calibration.camera import CameraModel
from calibration.errors import SolveError
from calibration.pose import pose_from_points
from calibration.se3 import invert, make_T, rotation_angle_deg

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class StereoResult:
    """A calibrated pair. ``per_view_rms_px``: view id -> RMS over both images."""

    left_id: str
    right_id: str
    T_left_right: F64
    rms_px: float
    epipolar_rms_px: float
    per_view_rms_px: dict[str, float]

    @property
    def baseline(self) -> float:
        """Distance between the optical centres, board units."""
        return float(np.linalg.norm(self.T_left_right[:3, 3]))

    @property
    def rotation_deg(self) -> float:
        """Angle of the relative rotation, degrees."""
        return rotation_angle_deg(self.T_left_right)


def _shared(
    left: Mapping[str, BoardDetection], right: Mapping[str, BoardDetection], board: BoardSpec
) -> tuple[list[str], list[F64], list[F64], list[F64]]:
    views, objs, uvl, uvr = [], [], [], []
    obj_all = board.object_points()
    for k in left:
        if k not in right:
            continue
        ids, il, ir = np.intersect1d(left[k].corner_ids, right[k].corner_ids, return_indices=True)
        if len(ids) < 6:
            continue
        views.append(k)
        objs.append(obj_all[ids])
        uvl.append(left[k].uv_px[il])
        uvr.append(right[k].uv_px[ir])
    return views, objs, uvl, uvr


def rectified_epipolar_rms_px(
    left: CameraModel, right: CameraModel, T_left_right: F64, uv_left: F64, uv_right: F64
) -> float:
    """RMS row difference (px) of matched points after rectification, for any distortion model."""
    T_right_left = invert(T_left_right)
    R1, R2, P1, _P2, _Q, _, _ = cv2.stereoRectify(
        left.K, np.zeros(5), right.K, np.zeros(5), left.size_px, T_right_left[:3, :3].copy(),
        T_right_left[:3, 3].reshape(3, 1).copy(),
    )
    rl = left.normalized_rays(uv_left) @ np.asarray(R1).T
    rr = right.normalized_rays(uv_right) @ np.asarray(R2).T
    f = float(P1[1, 1])
    dy = f * (rl[:, 1] / rl[:, 2] - rr[:, 1] / rr[:, 2])
    return float(np.sqrt(np.mean(dy**2)))


def calibrate_stereo(
    left: CameraModel, right: CameraModel, left_views: Mapping[str, BoardDetection],
    right_views: Mapping[str, BoardDetection], board: BoardSpec, min_views: int = 3,
) -> StereoResult:
    """Solve the relative pose of two calibrated cameras from views of the board seen by both.

    View ids pair the detections. Raises :class:`SolveError` with fewer than ``min_views``
    shared views or when the solver fails.
    """
    views, objs, uvl, uvr = _shared(left_views, right_views, board)
    if len(views) < min_views:
        raise SolveError(
            f"stereo {left.camera_id}-{right.camera_id}: {len(views)} views show the board in both cameras, "
            f"need at least {min_views}"
        )
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-10)
    try:
        if left.model == "fisheye" or right.model == "fisheye":
            if left.model != right.model:
                raise SolveError("stereo with one fisheye and one pinhole camera is not supported; use `xrcalib rig`")
            fout = cv2.fisheye.stereoCalibrate(
                [o.reshape(1, -1, 3) for o in objs], [u.reshape(1, -1, 2) for u in uvl],
                [u.reshape(1, -1, 2) for u in uvr], left.K, left.dist, right.K, right.dist, left.size_px,
                flags=cv2.CALIB_FIX_INTRINSIC, criteria=crit,
            )
            rms, R, T = fout[0], fout[5], fout[6]
        else:
            # OpenCV reads k4..k6 only when told the model is rational, even with fixed intrinsics
            rational = max(left.dist.size, right.dist.size) >= 8
            flags = cv2.CALIB_FIX_INTRINSIC | (cv2.CALIB_RATIONAL_MODEL if rational else 0)
            out = cv2.stereoCalibrate(
                [o.astype(np.float32) for o in objs], [u.astype(np.float32) for u in uvl],
                [u.astype(np.float32) for u in uvr], left.K, left.dist, right.K, right.dist, left.size_px,
                flags=flags, criteria=crit,
            )
            rms, R, T = out[0], out[5], out[6]
    except cv2.error as e:
        raise SolveError(f"stereo {left.camera_id}-{right.camera_id}: solver failed ({e})") from e
    T_right_left = make_T(np.asarray(R), np.asarray(T).reshape(3))
    T_left_right = invert(T_right_left)
    epi = rectified_epipolar_rms_px(left, right, T_left_right, np.concatenate(uvl), np.concatenate(uvr))
    per_view = _per_view_rms(left, right, T_left_right, views, objs, uvl, uvr)
    log.info("stereo %s-%s: RMS %.3f px, epipolar %.3f px, baseline %.4f", left.camera_id, right.camera_id,
             rms, epi, float(np.linalg.norm(T_left_right[:3, 3])))
    return StereoResult(left.camera_id, right.camera_id, T_left_right, float(rms), epi, per_view)


def _per_view_rms(
    left: CameraModel, right: CameraModel, T_left_right: F64, views: list[str], objs: list[F64],
    uvl: list[F64], uvr: list[F64],
) -> dict[str, float]:
    """Per view: board pose from the left camera (PnP), both images reprojected with the pair's pose."""
    out = {}
    T_right_left = invert(T_left_right)
    for k, obj, ul, ur in zip(views, objs, uvl, uvr, strict=True):
        T_left_board = pose_from_points(left, obj, ul)
        p_left = obj @ T_left_board[:3, :3].T + T_left_board[:3, 3]
        pl, _ = left.project_cam(p_left)
        pr, _ = right.project_cam(p_left @ T_right_left[:3, :3].T + T_right_left[:3, 3])
        err = np.concatenate([np.sum((pl - ul) ** 2, axis=1), np.sum((pr - ur) ** 2, axis=1)])
        out[k] = float(np.sqrt(np.mean(err)))
    return out
