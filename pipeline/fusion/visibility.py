"""Which mesh vertices a camera sees at a vehicle pose.

Two tests, both against the depth of the surface:

* :func:`raycast_visible`: raycast a z-depth map of the nominal mesh (open3d, headless)
  and keep vertices whose own depth is within a tolerance of the map at their pixel
  (a z-buffer test); also drops vertices outside the image and vertices seen at
  grazing angles or from behind. This is what the lookup table precomputes.
* :func:`sensor_depth_consistent`: for RGB-D cameras, the same z-buffer test against the
  sensor's own depth image at capture time (no raycast at all). Pixels with invalid
  depth (0) keep the caller's decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import open3d as o3d

from calibration.camera import CameraModel
from calibration.se3 import invert
from pipeline.fusion.errors import FusionError
from pipeline.fusion.kernels import project_plumb_bob
from pipeline.fusion.mesh import FusionMesh

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class VisibilityConfig:
    """Tolerances of the z-buffer test.

    A vertex at depth ``z`` passes when ``z <= depth_at_pixel + depth_tol_m + depth_tol_rel * z``.
    ``max_view_angle_deg``: vertices whose normal is further than this from the direction
    to the camera are dropped (back faces and grazing views give smeared samples).
    ``margin_px``: distance kept from the image border, so bilinear sampling stays inside.
    """

    depth_tol_m: float = 0.004
    depth_tol_rel: float = 0.004
    max_view_angle_deg: float = 80.0
    margin_px: float = 0.5

    def __post_init__(self) -> None:
        if not (self.depth_tol_m >= 0 and self.depth_tol_rel >= 0 and 0 < self.max_view_angle_deg <= 90):
            raise FusionError("visibility tolerances must be >= 0 and max_view_angle_deg in (0, 90]")


class MeshRaycaster:
    """A headless raycasting scene of the fusion mesh plus per-camera pixel rays (cached)."""

    def __init__(self, mesh: FusionMesh) -> None:
        self.mesh = mesh
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor.from_numpy(mesh.vertices_vehicle_m.astype(np.float32)),
            o3d.core.Tensor.from_numpy(mesh.triangles.astype(np.uint32)),
        )
        self._rays: dict[str, F64] = {}

    def depth_map(self, camera: CameraModel, T_cell_vehicle: F64) -> F32:
        """Z-depth (H, W) float32 metres of the mesh seen by ``camera``; +inf where no surface."""
        rays = self._rays.get(camera.camera_id)
        if rays is None:
            rays = camera.pixel_rays_cam().reshape(-1, 3)
            self._rays[camera.camera_id] = rays
        T_vehicle_cam = invert(T_cell_vehicle) @ camera.T_cell_cam
        buf = np.empty((len(rays), 6), dtype=np.float32)
        buf[:, :3] = T_vehicle_cam[:3, 3]
        buf[:, 3:] = rays @ T_vehicle_cam[:3, :3].T
        t = self._scene.cast_rays(o3d.core.Tensor.from_numpy(buf))["t_hit"].numpy()
        z: F32 = (np.asarray(t, dtype=np.float64) * rays[:, 2]).astype(np.float32)  # z-depth = t * cos
        return z.reshape(camera.height_px, camera.width_px)


@dataclass(frozen=True, slots=True, eq=False)
class Projected:
    """Vertices ``index`` (int32) of the mesh projected into one camera.

    ``uv_px`` (N, 2) float64 pixel coordinates, ``z_m`` (N,) depth along the optical axis,
    ``cos_view`` (N,) cosine between the vertex normal and the direction to the camera,
    ``dist_m`` (N,) distance from the camera centre.
    """

    index: npt.NDArray[np.int32]
    uv_px: F64
    z_m: F64
    cos_view: F64
    dist_m: F64

    def subset(self, keep: Bool) -> Projected:
        return Projected(self.index[keep], self.uv_px[keep], self.z_m[keep], self.cos_view[keep], self.dist_m[keep])


def project_vertices(
    camera: CameraModel, mesh: FusionMesh, T_cell_vehicle: F64, index: npt.NDArray[np.int32] | None = None,
    config: VisibilityConfig | None = None,
) -> Projected:
    """Project mesh vertices (all, or ``index``) into ``camera``; keep those in front, inside the image
    (with the margin) and facing the camera within ``max_view_angle_deg``. No occlusion test."""
    cfg = config or VisibilityConfig()
    idx = np.arange(mesh.n_vertices, dtype=np.int32) if index is None else np.asarray(index, dtype=np.int32)
    T_cam_vehicle = camera.T_cam_cell @ np.asarray(T_cell_vehicle, dtype=np.float64)
    R, t = np.ascontiguousarray(T_cam_vehicle[:3, :3]), np.ascontiguousarray(T_cam_vehicle[:3, 3])
    cos_min = float(np.cos(np.radians(cfg.max_view_angle_deg)))
    if camera.model == "pinhole" and camera.dist.size <= 5:
        dist5 = np.zeros(5)
        dist5[: camera.dist.size] = camera.dist
        m = len(idx)
        o_i, o_uv, o_z = np.empty(m, np.int32), np.empty((m, 2)), np.empty(m)
        o_c, o_d = np.empty(m), np.empty(m)
        k = project_plumb_bob(mesh.vertices_vehicle_m, mesh.normals_vehicle, idx, R, t, camera.K, dist5,
                              camera.width_px, camera.height_px, cfg.margin_px, cos_min, o_i, o_uv, o_z, o_c, o_d)
        return Projected(o_i[:k], o_uv[:k], o_z[:k], o_c[:k], o_d[:k])
    # general lens models (rational, fisheye): OpenCV's projection
    p_cam = mesh.vertices_vehicle_m[idx] @ R.T + t
    n_cam = mesh.normals_vehicle[idx] @ R.T
    dist = np.linalg.norm(p_cam, axis=1)
    cos_view = -np.einsum("ij,ij->i", n_cam, p_cam) / np.maximum(dist, 1e-12)
    keep = (p_cam[:, 2] > 1e-3) & (cos_view >= cos_min)
    idx, p_cam, cos_view, dist = idx[keep], p_cam[keep], cos_view[keep], dist[keep]
    uv, z = camera.project_cam(p_cam)
    inside = camera.in_image(uv, margin_px=cfg.margin_px)
    return Projected(idx[inside], uv[inside], z[inside], cos_view[inside], dist[inside])


def _zbuffer_pass(proj: Projected, depth_m: F32, cfg: VisibilityConfig, invalid_passes: bool) -> Bool:
    h, w = depth_m.shape
    u = np.clip(np.rint(proj.uv_px[:, 0]).astype(np.intp), 0, w - 1)
    v = np.clip(np.rint(proj.uv_px[:, 1]).astype(np.intp), 0, h - 1)
    d = depth_m[v, u].astype(np.float64)
    tol = cfg.depth_tol_m + cfg.depth_tol_rel * proj.z_m
    valid = np.isfinite(d) & (d > 0)
    ok = proj.z_m <= d + tol
    return np.asarray(np.where(valid, ok, invalid_passes), dtype=bool)


def raycast_visible(
    camera: CameraModel, raycaster: MeshRaycaster, T_cell_vehicle: F64, config: VisibilityConfig | None = None,
) -> Projected:
    """The vertices of the raycaster's mesh that ``camera`` sees at pose ``T_cell_vehicle``.

    Costs one raycast of the full image plus a projection of every vertex; the lookup table
    (:mod:`pipeline.fusion.lut`) precomputes this over conveyor positions so frames never raycast.
    """
    cfg = config or VisibilityConfig()
    proj = project_vertices(camera, raycaster.mesh, T_cell_vehicle, None, cfg)
    depth = raycaster.depth_map(camera, T_cell_vehicle)
    return proj.subset(_zbuffer_pass(proj, depth, cfg, invalid_passes=False))


def sensor_depth_consistent(proj: Projected, depth_m: F32, config: VisibilityConfig | None = None) -> Bool:
    """Mask over ``proj``: False where the sensor's depth (H, W, metres, 0 = invalid) shows a surface
    in front of the vertex (it is occluded at capture time). Invalid depth keeps the vertex.

    Raises :class:`FusionError` when the depth image is not a 2D float array.
    """
    if depth_m.ndim != 2 or depth_m.dtype not in (np.float32, np.float64):
        raise FusionError(f"sensor depth must be (H, W) float32 metres, got {depth_m.shape} {depth_m.dtype}")
    return _zbuffer_pass(proj, depth_m.astype(np.float32, copy=False), config or VisibilityConfig(), True)
