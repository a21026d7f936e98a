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

import numpy as np
import numpy.typing as npt
import open3d as o3d

from calibration.camera import CameraModel
from calibration.se3 import invert, rotate_vectors, transform_points
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


def _pow_schlick(x: F32, n: float) -> F32:
    """Schlick's cheap stand-in for ``x ** n`` on [0, 1], the usual one for specular lobes."""
    out: F32 = x / (n - n * x + x + 1e-12)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class ViewRender:
    """What one camera sees of one vehicle at one instant."""

    rgb: npt.NDArray[np.uint8]  # (H, W, 3)
    depth_m: F32 | None  # (H, W) noisy sensor depth, 0 = invalid; None for RGB-only cameras
    depth_true_m: F32  # (H, W) exact z-depth, 0 where no surface
    seam_index: npt.NDArray[np.int16]  # (H, W) index into the twin's seams, -1 none
    defect_index: npt.NDArray[np.int16]  # (H, W) index into the vehicle's defects, -1 none


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

    def render(self, scene: VehicleScene, T_cell_vehicle: F64, noise_seed: int) -> ViewRender:
        cam = self.camera
        H, W = cam.height_px, cam.width_px
        T_vehicle_cam = invert(T_cell_vehicle) @ cam.T_cell_cam
        origin_v = T_vehicle_cam[:3, 3].astype(np.float32)
        dirs_v = rotate_vectors(T_vehicle_cam, self._dirs_cam).astype(np.float32)
        rays = np.empty((H * W, 6), dtype=np.float32)
        rays[:, :3] = origin_v
        rays[:, 3:] = dirs_v
        hit = scene.raycaster.cast_rays(o3d.core.Tensor(rays))
        t = hit["t_hit"].numpy()
        idx = np.flatnonzero(np.isfinite(t))
        prim = hit["primitive_ids"].numpy()[idx].astype(np.intp)
        uv = hit["primitive_uvs"].numpy()[idx]
        tri = scene.triangles[prim]
        w1, w2 = uv[:, 0:1], uv[:, 1:2]
        attr = (1.0 - w1 - w2) * scene.vertex_attr[tri[:, 0]]  # interpolated normal (3) and albedo (3)
        attr += w1 * scene.vertex_attr[tri[:, 1]]
        attr += w2 * scene.vertex_attr[tri[:, 2]]
        n, albedo = attr[:, :3], attr[:, 3:]
        n *= (1.0 / np.sqrt(np.maximum(np.einsum("ij,ij->i", n, n), 1e-12)))[:, None]
        d = dirs_v[idx]
        th = t[idx]
        # |n.v|: interpolated normals of thin geometry may face away; shade both sides alike
        ndotv = np.abs(np.einsum("ij,ij->i", n, d))

        spec = scene.spec
        ring = spec.light_gain * (RING_LIGHT_REF_M / np.maximum(th, 0.05)) ** 2
        shade = AMBIENT + ring * ndotv
        highlight = (spec.specular * ring) * _pow_schlick(ndotv, spec.shininess)
        R_vc = invert(T_cell_vehicle)  # cell lights are fixed in the cell
        view_v = -rotate_vectors(T_vehicle_cam, np.array([0.0, 0.0, 1.0]))
        sign = np.sign(np.einsum("ij,ij->i", n, -d)).astype(np.float32)  # orient n towards the camera
        for direction_cell, strength in CELL_LIGHTS:
            ldir = rotate_vectors(R_vc, np.asarray(direction_cell) / np.linalg.norm(direction_cell))
            half = ldir + view_v
            half /= np.linalg.norm(half)
            lh = (n @ np.stack([ldir, half], axis=1).astype(np.float32)) * sign[:, None]
            np.clip(lh, 0.0, None, out=lh)
            shade += (spec.light_gain * strength) * lh[:, 0]
            highlight += (spec.specular * strength) * _pow_schlick(lh[:, 1], spec.shininess)
        radiance = np.empty((H * W, 3), dtype=np.float32)
        radiance[:] = BACKGROUND_RGB
        radiance[idx] = albedo * shade[:, None] + highlight[:, None]

        rng = np.random.default_rng(noise_seed)
        lin = radiance * (spec.exposure * self._vignette)[:, None]
        # shot noise (variance proportional to signal) plus read noise, from the camera's noise bank
        sigma = np.sqrt(0.0004 * np.clip(lin, 0.0, 1.0) + np.float32(spec.noise_sigma**2))
        lin += sigma * self._noise(rng, lin.shape)
        code = (np.clip(lin, 0.0, 1.0) * (_GAMMA_LUT.size - 1)).astype(np.uint16)
        rgb = _GAMMA_LUT[code].reshape(H, W, 3)

        depth_true = np.zeros(H * W, dtype=np.float32)
        depth_true[idx] = th * self._z_per_t[idx]
        depth = None
        if cam.depth is not None:
            depth = self._sensor_depth(depth_true, idx, ndotv, rng).reshape(H, W)

        seam_index = np.full(H * W, -1, dtype=np.int16)
        labels = scene.triangle_seam[prim]
        seam_index[idx] = np.where(labels >= 0, labels, -1)
        defect_index = np.full(H * W, -1, dtype=np.int16)
        if scene.regions:
            p_hit = (origin_v + th[:, None] * d).astype(np.float64)
            for k, region in enumerate(scene.regions):
                defect_index[idx[region.contains(p_hit)]] = k
        return ViewRender(
            rgb=rgb,
            depth_m=depth,
            depth_true_m=depth_true.reshape(H, W),
            seam_index=seam_index.reshape(H, W),
            defect_index=defect_index.reshape(H, W),
        )

    def _noise(self, rng: np.random.Generator, shape: tuple[int, ...]) -> F32:
        """Unit Gaussian noise: a random window of a bank drawn once, far cheaper than fresh draws."""
        size = int(np.prod(shape))
        if self._noise_bank is None:
            bank_rng = np.random.default_rng(zlib.crc32(self.camera.camera_id.encode()))
            self._noise_bank = bank_rng.standard_normal(4 * size, dtype=np.float32)
        start = int(rng.integers(0, self._noise_bank.size - size))
        return self._noise_bank[start : start + size].reshape(shape)

    def _sensor_depth(
        self, depth_true: F32, idx: npt.NDArray[np.intp], ndotv: F32, rng: np.random.Generator
    ) -> F32:
        """Structured-light style depth: sigma = 0.6 mm + 1.2 mm * z^2, dropouts, 1 mm quantisation."""
        di = self.camera.depth
        assert di is not None
        z = depth_true[idx]
        sigma = 0.0006 + 0.0012 * z * z
        noisy = z + sigma * self._noise(rng, z.shape)
        drop = (ndotv < 0.2) | (rng.random(len(z)) < 0.01) | (z < di.min_depth_m) | (z > di.max_depth_m)
        noisy = np.round(noisy / di.depth_scale_m) * di.depth_scale_m
        out = np.zeros_like(depth_true)
        out[idx] = np.where(drop, 0.0, noisy).astype(np.float32)
        return out


def project_vehicle_points(camera: CameraModel, T_cell_vehicle: F64, p_vehicle_m: F64) -> tuple[F64, F64]:
    """Project vehicle-frame points into a camera at a vehicle pose: (uv_px, z_m)."""
    return camera.project(transform_points(T_cell_vehicle, p_vehicle_m))
