"""Rigid transforms in SE(3) as 4x4 homogeneous matrices.

Naming follows ``T_a_b``: the pose of frame *b* expressed in frame *a*, so that
``p_a = T_a_b @ p_b``. Units are metres and radians unless a name says otherwise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.spatial.transform import Rotation

Mat4 = npt.NDArray[np.float64]
Mat3 = npt.NDArray[np.float64]
Vec3 = npt.NDArray[np.float64]
Points = npt.NDArray[np.float64]


def make_T(R: npt.ArrayLike, t_m: npt.ArrayLike) -> Mat4:
    """Build a 4x4 transform from a 3x3 rotation and a translation in metres."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64).reshape(3, 3)
    T[:3, 3] = np.asarray(t_m, dtype=np.float64).reshape(3)
    return T


def translation(t_m: npt.ArrayLike) -> Mat4:
    """A pure translation."""
    return make_T(np.eye(3), t_m)


def invert(T: npt.ArrayLike) -> Mat4:
    """Inverse of a rigid transform, using the orthonormal rotation (exact, no general inverse)."""
    T = np.asarray(T, dtype=np.float64)
    R = T[:3, :3]
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ T[:3, 3]
    return out


def transform_points(T: npt.ArrayLike, p: npt.ArrayLike) -> Points:
    """Apply ``T`` to points of shape (..., 3)."""
    T = np.asarray(T, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    return np.asarray(p @ T[:3, :3].T + T[:3, 3], dtype=np.float64)


def rotate_vectors(T: npt.ArrayLike, v: npt.ArrayLike) -> Points:
    """Apply only the rotation of ``T`` to direction vectors of shape (..., 3)."""
    T = np.asarray(T, dtype=np.float64)
    return np.asarray(np.asarray(v, dtype=np.float64) @ T[:3, :3].T, dtype=np.float64)


def from_rotvec(rotvec_rad: npt.ArrayLike, t_m: npt.ArrayLike = (0.0, 0.0, 0.0)) -> Mat4:
    """Transform from an axis-angle vector (radians) and a translation."""
    R = Rotation.from_rotvec(np.asarray(rotvec_rad, dtype=np.float64)).as_matrix()
    return make_T(R, t_m)


def to_rotvec(T: npt.ArrayLike) -> tuple[Vec3, Vec3]:
    """Split a transform into (axis-angle rotation in radians, translation in metres)."""
    T = np.asarray(T, dtype=np.float64)
    return Rotation.from_matrix(T[:3, :3]).as_rotvec(), T[:3, 3].copy()


def rotation_angle_deg(R: npt.ArrayLike) -> float:
    """Angle of a rotation matrix (or of the rotation part of a 4x4) in degrees."""
    R = np.asarray(R, dtype=np.float64)
    if R.shape == (4, 4):
        R = R[:3, :3]
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos)))


def is_rigid(T: npt.ArrayLike, atol: float = 1e-6) -> bool:
    """True when ``T`` is a 4x4 rigid transform: orthonormal rotation with det +1, last row 0 0 0 1."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    return bool(
        np.allclose(R @ R.T, np.eye(3), atol=atol)
        and abs(np.linalg.det(R) - 1.0) < atol
        and np.allclose(T[3], (0.0, 0.0, 0.0, 1.0), atol=atol)
    )


def look_at(eye_m: npt.ArrayLike, target_m: npt.ArrayLike, up: npt.ArrayLike = (0.0, 0.0, 1.0)) -> Mat4:
    """Pose ``T_world_cam`` of an OpenCV camera at ``eye`` looking at ``target``.

    OpenCV camera axes: x right, y down, z forward. ``up`` is the world direction that
    should appear upwards in the image; it must not be parallel to the viewing direction.
    """
    eye = np.asarray(eye_m, dtype=np.float64)
    z = np.asarray(target_m, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    up_v = np.asarray(up, dtype=np.float64)
    x = np.cross(z, up_v)
    n = np.linalg.norm(x)
    if n < 1e-9:
        raise ValueError("look_at: 'up' is parallel to the viewing direction")
    x /= n
    y = np.cross(z, x)
    return make_T(np.stack([x, y, z], axis=1), eye)
