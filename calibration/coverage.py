"""Seam coverage over a vehicle pass, and placement planning for candidate cameras.

A seam point counts as seen by a camera at conveyor travel ``s`` when it projects inside the
image (with a margin), lies within ``max_range_m``, faces the camera (the angle between the
outward surface normal and the direction to the camera is under ``max_incidence_deg``), and
nothing of the underbody mesh lies between (a ray cast in the vehicle frame). A point counts
for a camera when it is seen at any ``s`` of the pass. Coverage is the share of each seam's
length whose points are seen by at least 1 and by at least 2 cameras.

``plan_cameras`` scores candidate placements by coverage and picks a minimal set greedily.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import open3d as o3d
from tqdm import tqdm

from calibration.camera import CameraModel
from calibration.conveyor import Conveyor
from calibration.se3 import invert, transform_points
from calibration.underbody import UnderbodyModel

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class CoverageConfig:
    """Visibility rules; ``sample_step_m``: spacing of seam samples; ``surface_offset_m``: samples
    are lifted this far along the normal so the bead on the seam does not hide its own seam."""

    sample_step_m: float = 0.01
    max_incidence_deg: float = 75.0
    max_range_m: float = 3.0
    margin_px: float = 4.0
    surface_offset_m: float = 0.006


@dataclass(frozen=True, slots=True, eq=False)
class SeamCoverage:
    seam_id: str
    length_m: float
    fraction_ge1: float
    fraction_ge2: float


@dataclass(frozen=True, slots=True, eq=False)
class CoverageResult:
    """Per seam fractions; ``seen[cam][seam_id]``: bool per sample; ``samples[seam_id]``: (N, 3) vehicle."""

    seams: tuple[SeamCoverage, ...]
    samples: dict[str, F64]
    weights: dict[str, F64]
    seen: dict[str, dict[str, npt.NDArray[np.bool_]]]

    def counts(self, camera_ids: Sequence[str] | None = None) -> dict[str, npt.NDArray[np.int64]]:
        ids = list(self.seen) if camera_ids is None else list(camera_ids)
        return {k: sum((self.seen[c][k].astype(np.int64) for c in ids), np.zeros(len(v), np.int64))
                for k, v in self.samples.items()}

    def totals(self, camera_ids: Sequence[str] | None = None) -> tuple[float, float]:
        """Share of all seam length seen by >= 1 and >= 2 of the given cameras."""
        cnt = self.counts(camera_ids)
        w = np.concatenate([self.weights[k] for k in self.samples])
        c = np.concatenate([cnt[k] for k in self.samples])
        return float(w[c >= 1].sum() / w.sum()), float(w[c >= 2].sum() / w.sum())


def _seam_samples(model: UnderbodyModel, step_m: float, offset_m: float) -> tuple[dict[str, F64], dict[str, F64]]:
    samples, weights = {}, {}
    for seam in model.seams:
        n = max(int(np.ceil(seam.length_m / step_m)), 1)
        s = (np.arange(n) + 0.5) * seam.length_m / n
        p = seam.point_at(s)
        nrm = np.stack([np.interp(s, seam.arc_length_m, seam.normals_vehicle[:, k]) for k in range(3)], axis=-1)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
        samples[seam.seam_id] = np.concatenate([p + offset_m * nrm, nrm], axis=1)
        weights[seam.seam_id] = np.full(n, seam.length_m / n)
    return samples, weights


def seam_coverage(
    cameras: Sequence[CameraModel], conveyor: Conveyor, model: UnderbodyModel, s_values_m: Sequence[float] | F64,
    config: CoverageConfig = CoverageConfig(), progress: bool = True,
) -> CoverageResult:
    """Coverage of every seam by every camera over the conveyor travels ``s_values_m``."""
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor.from_numpy(np.ascontiguousarray(model.vertices_vehicle_m, np.float32)),
                        o3d.core.Tensor.from_numpy(np.ascontiguousarray(model.triangles, np.uint32)))
    samples, weights = _seam_samples(model, config.sample_step_m, config.surface_offset_m)
    ids = list(samples)
    allp = np.concatenate([samples[k] for k in ids])
    split = np.cumsum([len(samples[k]) for k in ids])[:-1]
    p_v, n_v = allp[:, :3], allp[:, 3:]
    cos_max = np.cos(np.radians(config.max_incidence_deg))
    seen: dict[str, dict[str, npt.NDArray[np.bool_]]] = {}
    for cam in tqdm(cameras, desc="coverage", unit="camera", leave=False, disable=not progress):
        hit = np.zeros(len(p_v), bool)
        for s in s_values_m:
            T_cell_vehicle = conveyor.T_cell_vehicle(float(s))
            T_vehicle_cam = invert(T_cell_vehicle) @ cam.T_cell_cam
            c_v = T_vehicle_cam[:3, 3]
            to_cam = c_v - p_v
            dist = np.linalg.norm(to_cam, axis=1)
            ok = (dist < config.max_range_m) & (np.sum(to_cam * n_v, axis=1) > cos_max * dist) & ~hit
            if not np.any(ok):
                continue
            idx = np.flatnonzero(ok)
            uv, z = cam.project(transform_points(T_cell_vehicle, p_v[idx]))
            inside = (z > 0) & cam.in_image(uv, config.margin_px)
            idx = idx[inside]
            if len(idx) == 0:
                continue
            d = -to_cam[idx] / dist[idx, None]
            rays = np.concatenate([np.broadcast_to(c_v, d.shape), d], axis=1).astype(np.float32)
            t_hit = scene.cast_rays(o3d.core.Tensor.from_numpy(np.ascontiguousarray(rays)))["t_hit"].numpy()
            clear = t_hit >= dist[idx] - 1e-3
            hit[idx[clear]] = True
        seen[cam.camera_id] = dict(zip(ids, np.split(hit, split), strict=True))
    res = CoverageResult((), samples={k: v[:, :3] for k, v in samples.items()}, weights=weights, seen=seen)
    cnt = res.counts()
    seams = tuple(
        SeamCoverage(k, float(weights[k].sum()), float(weights[k][cnt[k] >= 1].sum() / weights[k].sum()),
                     float(weights[k][cnt[k] >= 2].sum() / weights[k].sum()))
        for k in ids
    )
    return CoverageResult(seams, res.samples, weights, seen)


def coverage_png(model: UnderbodyModel, result: CoverageResult, px_per_m: float = 200.0) -> U8:
    """Top view of the underbody from below (x to the right), seams coloured by how many cameras see
    each part: red 0, orange 1, green 2 or more; with the totals written on the image."""
    v = model.vertices_vehicle_m
    x0, y0 = v[:, 0].min() - 0.1, v[:, 1].min() - 0.1
    w = int((v[:, 0].max() + 0.1 - x0) * px_per_m)
    h = int((v[:, 1].max() + 0.1 - y0) * px_per_m)
    img = np.full((h + 40, w, 3), 255, np.uint8)
    u = ((v[:, 0] - x0) * px_per_m).astype(int).clip(0, w - 1)
    r = ((v[:, 1] - y0) * px_per_m).astype(int).clip(0, h - 1)
    z = v[:, 2]
    shade = (150 + 80 * (z - z.min()) / max(np.ptp(z), 1e-9)).astype(np.uint8)
    img[r, u] = shade[:, None]
    colours = {0: (40, 40, 220), 1: (0, 160, 255), 2: (60, 170, 60)}
    cnt = result.counts()
    for k, pts in result.samples.items():
        uu = ((pts[:, 0] - x0) * px_per_m).astype(int)
        rr = ((pts[:, 1] - y0) * px_per_m).astype(int)
        for i in range(len(pts)):
            cv2.circle(img, (int(uu[i]), int(rr[i])), 3, colours[min(int(cnt[k][i]), 2)], -1, cv2.LINE_AA)
    f1, f2 = result.totals()
    cv2.putText(img, f"seam length seen by >=1 camera: {100 * f1:.1f}%   >=2: {100 * f2:.1f}%   "
                "(red 0, orange 1, green 2+)", (8, h + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return img


@dataclass(frozen=True, slots=True, eq=False)
class PlanResult:
    """Each candidate's own coverage, and the greedy selection with the totals after each pick."""

    single: dict[str, tuple[float, float]]
    chosen: tuple[str, ...]
    totals_after_each: tuple[tuple[float, float], ...]
    target_met: bool


def plan_cameras(
    result: CoverageResult, max_cameras: int, target_ge1: float = 0.95, target_ge2: float = 0.8
) -> PlanResult:
    """Pick cameras greedily (each step maximises length seen by >= 1 plus length seen by >= 2)
    until both targets are met or ``max_cameras`` are chosen."""
    single = {c: result.totals([c]) for c in result.seen}
    chosen: list[str] = []
    totals: list[tuple[float, float]] = []
    met = False
    while len(chosen) < max_cameras and len(chosen) < len(result.seen):
        best = max((c for c in result.seen if c not in chosen), key=lambda c: sum(result.totals([*chosen, c])))
        chosen.append(best)
        totals.append(result.totals(chosen))
        if totals[-1][0] >= target_ge1 and totals[-1][1] >= target_ge2:
            met = True
            break
    return PlanResult(single, tuple(chosen), tuple(totals), met)
