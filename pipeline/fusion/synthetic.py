"""Small synthetic scenes for fusion tests and examples: flat panels, an upward camera, planted heatmaps.

Vehicle frame as in the twin: x forward (the conveyor's travel), z up; panels are horizontal
and face down (-z), cameras sit below looking up.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from calibration.camera import CameraModel, intrinsics_from_fov
from calibration.conveyor import Conveyor
from calibration.rig import Rig
from calibration.se3 import look_at, translation
from pipeline.fusion.mesh import FusionMesh

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def grid_panel(
    x_range_m: tuple[float, float], y_range_m: tuple[float, float], z_m: float, step_m: float, offset: int = 0,
) -> tuple[F64, npt.NDArray[np.int32]]:
    """Vertices (V, 3) and triangles (F, 3) of a horizontal grid panel at height ``z_m``."""
    xs = np.arange(x_range_m[0], x_range_m[1] + 1e-9, step_m)
    ys = np.arange(y_range_m[0], y_range_m[1] + 1e-9, step_m)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    v = np.stack([X.ravel(), Y.ravel(), np.full(X.size, z_m)], axis=1)
    idx = np.arange(X.size).reshape(X.shape)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    t = np.concatenate([np.stack([a, c, b], 1), np.stack([a, d, c], 1)]).astype(np.int32) + offset
    return v, t


def panels_mesh(panels: list[tuple[tuple[float, float], tuple[float, float], float]], step_m: float) -> FusionMesh:
    """A fusion mesh of several horizontal panels ``((x0, x1), (y0, y1), z)``, normals facing -z."""
    verts, tris, n = [], [], 0
    for xr, yr, z in panels:
        v, t = grid_panel(xr, yr, z, step_m, n)
        verts.append(v)
        tris.append(t)
        n += len(v)
    return FusionMesh.from_arrays(np.concatenate(verts), np.concatenate(tris))


def upward_rig(
    cameras: list[tuple[str, tuple[float, float, float], tuple[float, float, float]]], width_px: int = 160,
    height_px: int = 120, hfov_deg: float = 70.0, dist: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0),
    speed_mps: float = 0.1,
) -> Rig:
    """Cameras ``(id, eye_cell_m, target_cell_m)``; a conveyor along +x, the vehicle origin at the cell origin."""
    K = intrinsics_from_fov(width_px, height_px, hfov_deg)
    cams = tuple(
        CameraModel(cid, K, np.asarray(dist, np.float64), width_px, height_px, look_at(eye, target, up=(1.0, 0, 0)))
        for cid, eye, target in cameras
    )
    return Rig(cams, Conveyor(np.array([1.0, 0.0, 0.0]), speed_mps, translation((0.0, 0.0, 0.0))), (), "synthetic")


def disc_heatmap(camera: CameraModel, T_cell_vehicle: F64, p_vehicle_m: F64, radius_px: float,
                 value: float = 1.0) -> F32:
    """A heatmap that is ``value`` within ``radius_px`` of the projection of ``p_vehicle_m``, 0 elsewhere."""
    p_cell = T_cell_vehicle[:3, :3] @ p_vehicle_m + T_cell_vehicle[:3, 3]
    uv, _ = camera.project(p_cell)
    u, v = np.meshgrid(np.arange(camera.width_px), np.arange(camera.height_px))
    inside = (u - uv[0, 0]) ** 2 + (v - uv[0, 1]) ** 2 <= radius_px**2
    return np.where(inside, np.float32(value), np.float32(0.0)).astype(np.float32)
