"""Board pose from one view of a calibrated camera (PnP on undistorted rays, any distortion model)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from calibration.boards import BoardDetection, BoardSpec
from calibration.camera import CameraModel
from calibration.errors import SolveError
from calibration.se3 import from_rotvec

F64 = npt.NDArray[np.float64]


def pose_from_points(camera: CameraModel, obj_board: F64, uv_px: F64) -> F64:
    """``T_cam_board`` from >= 4 board points (N, 3) and their pixels (N, 2).

    The pixels are undistorted through the camera model first, so pinhole and fisheye cameras
    are handled alike. Raises :class:`SolveError` when PnP fails.
    """
    if len(obj_board) < 4:
        raise SolveError(f"camera {camera.camera_id}: need at least 4 points for a pose, got {len(obj_board)}")
    xy = np.ascontiguousarray(camera.normalized_rays(uv_px)[:, :2])
    obj = np.ascontiguousarray(obj_board, dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, xy, np.eye(3), None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise SolveError(f"camera {camera.camera_id}: board pose (PnP) failed")
    rvec, tvec = cv2.solvePnPRefineLM(obj, xy, np.eye(3), None, rvec, tvec)
    return from_rotvec(np.asarray(rvec).reshape(3), np.asarray(tvec).reshape(3))


def board_pose(camera: CameraModel, board: BoardSpec, det: BoardDetection) -> F64:
    """``T_cam_board`` for one detection; see :func:`pose_from_points`."""
    return pose_from_points(camera, board.object_points()[det.corner_ids], det.uv_px)
