"""Headless raycast rendering of a twin vehicle through one camera (open3d RaycastingScene, no GL).

Per pixel: one ray along the camera's distorted pixel direction, smooth shading
from interpolated vertex normals and albedo, a ring light at the camera (Lambert
plus a Blinn-Phong highlight on the metal and the glossy sealant), two fixed
cell lights, vignetting, exposure, shot and read noise, sRGB gamma and 8-bit
quantisation. RGB-D cameras also get z-depth in metres with a realistic noise
model (axial noise growing with z^2, dropout at grazing angles, 1 mm steps, 0 =
invalid).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import open3d as o3d

from calibration.camera import CameraModel
from calibration.se3 import invert, rotate_vectors, transform_points
from pipeline.twin.shading import gather_rays, rays_hitting_box, sensor_depth, shade_view
from pipeline.twin.vehicle import VehicleScene

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: Fixed cell lights (directions towards the light, cell frame) and their strength.
CELL_LIGHTS: tuple[tuple[tuple[float, float, float], float], ...] = (
    ((0.35, 0.5, -0.8), 0.35),
    ((-0.4, -0.45, -0.8), 0.30),
)
AMBIENT = 0.06
RING_LIGHT_REF_M = 0.9  # the ring light gives unit irradiance at this distance
BACKGROUND_RGB = (0.035, 0.04, 0.05)
#: linear intensity in [0, 1] (4096 steps) -> sRGB-like 8-bit code
_GAMMA_LUT = (np.linspace(0.0, 1.0, 4096) ** (1 / 2.2) * 255.0 + 0.5).astype(np.uint8)


@dataclass(frozen=True, slots=True, eq=False)
class ViewRender:
    """What one camera sees of one vehicle at one instant."""

    rgb: npt.NDArray[np.uint8]  # (H, W, 3)
    depth_m: F32 | None  # (H, W) noisy sensor depth, 0 = invalid; None for RGB-only cameras
    depth_true_m: F32  # (H, W) exact z-depth, 0 where no surface
    seam_index: npt.NDArray[np.int16]  # (H, W) index into the twin's seams, -1 none
    defect_index: npt.NDArray[np.int16]  # (H, W) index into the vehicle's defects, -1 none
    p_vehicle_m: F32  # (H, W, 3) surface point seen by each pixel (vehicle frame), NaN = none


class CameraRenderer:
    """Caches the camera's pixel rays and vignetting; renders any vehicle at any pose."""

    def __init__(self, camera: CameraModel) -> None:
        self.camera = camera
        rays = camera.pixel_rays_cam()  # (H, W, 3) unit, camera frame
        self._dirs_cam = rays.reshape(-1, 3)
        self._z_per_t = rays[..., 2].reshape(-1).astype(np.float32)  # z-depth per unit ray length
        cos4 = self._z_per_t.astype(np.float64) ** 4  # natural vignetting of the lens
        self._vignette = (0.35 + 0.65 * cos4).astype(np.float32)
        self._noise_bank: F32 | None = None
        self._dirs_key: bytes = b""
        self._dirs_v: F32 = self._dirs_cam.astype(np.float32)

    def _directions(self, R_vehicle_cam: F64) -> F32:
        """Pixel ray directions in the vehicle frame. The conveyor only translates the vehicle, so the
        rotation rarely changes: the rotated rays are cached and reused while it stays the same."""
        key = np.round(R_vehicle_cam, 12).tobytes()
        if key != self._dirs_key:
            self._dirs_v = np.ascontiguousarray((self._dirs_cam @ R_vehicle_cam.T).astype(np.float32))
            self._dirs_key = key
        return self._dirs_v

    def _cast(self, scene: VehicleScene, T_vehicle_cam: F64) -> tuple[F32, F32, npt.NDArray[np.int32], dict[str, Any]]:
        """Cast the view's rays at ``scene``: (origin, directions, index of each pixel's cast ray or -1,
        the raycaster's hits). Only rays that enter the vehicle's bounding box are cast: at the ends of
        a pass, and for the oblique views, most of the image is background."""
        n_px = self.camera.height_px * self.camera.width_px
        origin_v = T_vehicle_cam[:3, 3].astype(np.float32)
        dirs_v = self._directions(T_vehicle_cam[:3, :3])
        enters = np.empty(n_px, dtype=np.bool_)
        rays_hitting_box(origin_v, dirs_v, scene.bounds_lo_m, scene.bounds_hi_m, enters)
        cast = np.flatnonzero(enters)
        ray_index = np.full(n_px, -1, dtype=np.int32)
        ray_index[cast] = np.arange(len(cast), dtype=np.int32)
        rays = np.empty((len(cast), 6), dtype=np.float32)
        gather_rays(origin_v, dirs_v, cast, rays)
        return origin_v, dirs_v, ray_index, scene.raycaster.cast_rays(o3d.core.Tensor.from_numpy(rays))

    def seam_index(self, scene: VehicleScene, T_cell_vehicle: F64) -> npt.NDArray[np.int16]:
        """(H, W) index into the twin's seams of the surface each pixel sees, -1 none: the seam truth
        of :meth:`render` without shading, noise or depth."""
        cam = self.camera
        _, _, ray_index, hit = self._cast(scene, invert(T_cell_vehicle) @ cam.T_cell_cam)
        seam = np.full(ray_index.shape, -1, dtype=np.int16)
        cast = np.flatnonzero(ray_index >= 0)
        t = hit["t_hit"].numpy()[ray_index[cast]]
        prim = hit["primitive_ids"].numpy()[ray_index[cast]]
        on = np.isfinite(t)
        seam[cast[on]] = np.maximum(scene.triangle_seam[prim[on].astype(np.int64)], -1)
        return seam.reshape(cam.height_px, cam.width_px)

    def render(self, scene: VehicleScene, T_cell_vehicle: F64, noise_seed: int) -> ViewRender:
        cam = self.camera
        H, W = cam.height_px, cam.width_px
        T_vehicle_cam = invert(T_cell_vehicle) @ cam.T_cell_cam
        origin_v, dirs_v, ray_index, hit = self._cast(scene, T_vehicle_cam)

        spec = scene.spec
        R_vc = invert(T_cell_vehicle)  # cell lights are fixed in the cell
        view_v = -rotate_vectors(T_vehicle_cam, np.array([0.0, 0.0, 1.0]))
        lights = np.zeros((len(CELL_LIGHTS), 7), dtype=np.float32)
        for k, (direction_cell, strength) in enumerate(CELL_LIGHTS):
            ldir = rotate_vectors(R_vc, np.asarray(direction_cell) / np.linalg.norm(direction_cell))
            half = ldir + view_v
            lights[k] = (*ldir, *(half / np.linalg.norm(half)), strength)
        params = np.array(
            [spec.light_gain, spec.specular, spec.shininess, spec.exposure, spec.noise_sigma**2, AMBIENT,
             RING_LIGHT_REF_M], dtype=np.float32,
        )
        rng = np.random.default_rng(noise_seed)
        n_px = H * W
        rgb = np.empty((n_px, 3), dtype=np.uint8)
        depth_true = np.empty(n_px, dtype=np.float32)
        ndotv = np.empty(n_px, dtype=np.float32)
        seam_index = np.empty(n_px, dtype=np.int16)
        p_vehicle = np.empty((n_px, 3), dtype=np.float32)
        shade_view(
            ray_index, hit["t_hit"].numpy(), hit["primitive_ids"].numpy(), hit["primitive_uvs"].numpy(), dirs_v,
            scene.triangles, scene.vertex_attr, scene.triangle_seam, self._vignette, self._z_per_t, lights,
            np.asarray(BACKGROUND_RGB, dtype=np.float32), params, self._noise(rng, (3 * n_px,)), _GAMMA_LUT,
            rgb, depth_true, ndotv, seam_index, origin_v, p_vehicle,
        )
        depth = None
        if cam.depth is not None:
            di = cam.depth
            depth_flat = np.empty(n_px, dtype=np.float32)
            sensor_depth(depth_true, ndotv, self._noise(rng, (2 * n_px,)), di.depth_scale_m, di.min_depth_m,
                         di.max_depth_m, depth_flat)
            depth = depth_flat.reshape(H, W)

        defect_index = np.full(H * W, -1, dtype=np.int16)
        for k, region in enumerate(scene.regions):
            defect_index[region.contains(p_vehicle)] = k
        return ViewRender(
            rgb=rgb.reshape(H, W, 3),
            depth_m=depth,
            depth_true_m=depth_true.reshape(H, W),
            seam_index=seam_index.reshape(H, W),
            defect_index=defect_index.reshape(H, W),
            p_vehicle_m=p_vehicle.reshape(H, W, 3),
        )

    def _noise(self, rng: np.random.Generator, shape: tuple[int, ...]) -> F32:
        """Unit Gaussian noise: a random window of a bank drawn once, far cheaper than fresh draws."""
        size = int(np.prod(shape))
        if self._noise_bank is None:
            bank_rng = np.random.default_rng(zlib.crc32(self.camera.camera_id.encode()))
            n_px = self.camera.width_px * self.camera.height_px
            self._noise_bank = bank_rng.standard_normal(12 * n_px, dtype=np.float32)
        start = int(rng.integers(0, self._noise_bank.size - size))
        return self._noise_bank[start : start + size].reshape(shape)


def project_vehicle_points(camera: CameraModel, T_cell_vehicle: F64, p_vehicle_m: F64) -> tuple[F64, F64]:
    """Project vehicle-frame points into a camera at a vehicle pose: (uv_px, z_m)."""
    return camera.project(transform_points(T_cell_vehicle, p_vehicle_m))
