"""Sealant beads swept along seams, with per-vehicle variation and 3D defect edits.

A bead cross-section is the upper envelope of up to two lobes (a second lobe
appears only where the bead bifurcates). Each lobe has a rounded profile
``h(u) = height * (1 - (2 (u - c) / width)^2) ** 0.6``. The cross-section is
swept along the seam at ``STEP_M`` (finer around holes), lifted onto the
surface along its normal, and triangulated. Triangles that lie flat on the
surface (a missing stretch, the gap between branches, a hole) are dropped, so
the floor shows through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.underbody import Seam
from pipeline.twin import surface
from pipeline.twin.defects import DefectSpec

F64 = npt.NDArray[np.float64]
STEP_M = 0.002
FINE_STEP_M = 0.0004
LATERAL_SAMPLES = 15
FOOT_M = 0.0003  # beads sit this far proud of the surface so they never z-fight with it
FLAT_M = 0.00005


@dataclass(frozen=True, slots=True)
class BeadParams:
    """Per-vehicle variation of one seam's bead."""

    width_scale: float = 1.0
    height_scale: float = 1.0
    offset_mm: float = 0.0
    wobble_mm: float = 0.0
    wobble_phase_rad: float = 0.0


@dataclass(frozen=True, slots=True, eq=False)
class BeadMesh:
    vertices_m: F64
    triangles: npt.NDArray[np.int32]
    s_m: F64  # arc length of each vertex's cross-section
    albedo: npt.NDArray[np.float32]  # (V,) grey level, 1 = sealant colour


def _ramp(s: F64, s0: float, s1: float) -> F64:
    """0 outside [s0, s1], 1 in the middle, smooth ramps inside the interval."""
    r = min(0.25 * (s1 - s0), 0.015)
    up = np.clip((s - s0) / r, 0.0, 1.0)
    down = np.clip((s1 - s) / r, 0.0, 1.0)
    t = np.minimum(up, down)
    return t * t * (3.0 - 2.0 * t)


def _profile(u: F64, c: F64, w: F64, h: F64) -> F64:
    q = 1.0 - (2.0 * (u - c[:, None]) / np.maximum(w[:, None], 1e-6)) ** 2
    return np.asarray(h[:, None] * np.clip(q, 0.0, None) ** 0.6)


def centerline_offset_m(params: BeadParams, s: F64) -> F64:
    """Nominal lateral position of the bead centre for this vehicle (metres)."""
    return np.asarray(
        (params.offset_mm + params.wobble_mm * np.sin(2 * np.pi * s / 0.35 + params.wobble_phase_rad)) / 1000.0
    )


def _sample_s(length_m: float, defects: Sequence[DefectSpec]) -> F64:
    s = [np.linspace(0.0, length_m, max(2, int(np.ceil(length_m / STEP_M)) + 1))]
    for d in defects:
        if d.defect_type == "hole":
            s.append(np.arange(d.s_start_m - 0.002, d.s_end_m + 0.002, FINE_STEP_M))
    out = np.unique(np.clip(np.concatenate(s), 0.0, length_m))
    return np.asarray(out)


def seam_frames(seam: Seam, s: F64) -> tuple[F64, F64]:
    """Centre points (on the surface) and unit lateral directions at arc lengths ``s``."""
    p = seam.point_at(s)
    tang = seam.point_at(s + 0.001) - seam.point_at(s - 0.001)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-12)
    n = surface.normal(p[:, 0], p[:, 1])
    lat = np.cross(n, tang)
    lat /= np.linalg.norm(lat, axis=1, keepdims=True)
    return p, lat


def build_bead(seam: Seam, params: BeadParams, defects: Sequence[DefectSpec], rng_seed: int) -> BeadMesh:
    """Sweep one seam's bead with this vehicle's variation and defects applied."""
    s = _sample_s(seam.length_m, defects)
    n_s = len(s)
    W = seam.bead_width_mm / 1000.0 * params.width_scale
    H = seam.bead_height_mm / 1000.0 * params.height_scale
    c0 = centerline_offset_m(params, s)
    cA, wA, hA = c0.copy(), np.full(n_s, W), np.full(n_s, H)
    cB, wB, hB = c0.copy(), np.full(n_s, W), np.zeros(n_s)
    holes: list[tuple[float, float, float]] = []
    for d in defects:
        r = _ramp(s, d.s_start_m, d.s_end_m)
        if d.defect_type == "missing":
            hA *= 1.0 - r
            wA *= 1.0 - 0.5 * r
        elif d.defect_type == "misalignment":
            cA += r * d.offset_mm / 1000.0
        elif d.defect_type == "narrowing":
            wA *= 1.0 - (1.0 - d.width_factor) * r
            hA *= 1.0 - 0.6 * (1.0 - d.width_factor) * r
        elif d.defect_type == "bifurcation":
            half_sep = r * d.offset_mm / 2000.0
            cB = np.where(r > 0, c0 + half_sep, cB)
            cA = np.where(r > 0, c0 - half_sep, cA)
            wA = np.where(r > 0, W * (1.0 - 0.45 * r), wA)
            wB = np.where(r > 0, W * (1.0 - 0.45 * r), wB)
            hB = np.where(r > 0, H * (1.0 - 0.25 * r), hB)
            hA = np.where(r > 0, H * (1.0 - 0.25 * r), hA)
        elif d.defect_type == "hole":
            holes.append((d.s_center_m, float(np.interp(d.s_center_m, s, c0)) + d.offset_mm / 1000.0,
                          d.length_m / 2))
    has_b = hB > 0
    lo = np.where(has_b, np.minimum(cA - wA / 2, cB - wB / 2), cA - wA / 2)
    hi = np.where(has_b, np.maximum(cA + wA / 2, cB + wB / 2), cA + wA / 2)
    t = np.linspace(0.0, 1.0, LATERAL_SAMPLES)
    u = lo[:, None] + (hi - lo)[:, None] * t[None, :]  # (n_s, M) lateral coordinates
    h = np.maximum(_profile(u, cA, wA, hA), _profile(u, cB, wB, hB))
    for sc, uc, rad in holes:
        dist = np.hypot(s[:, None] - sc, u - uc)
        h *= np.clip((dist - 0.75 * rad) / (0.25 * rad), 0.0, 1.0)

    p, lat = seam_frames(seam, s)
    xy = p[:, None, :2] + u[..., None] * lat[:, None, :2]
    x, y = xy[..., 0], xy[..., 1]
    base = np.stack([x, y, surface.height_m(x, y)], axis=-1)
    verts = base + (h + FOOT_M)[..., None] * surface.normal(x, y)

    M = LATERAL_SAMPLES
    idx = np.arange(n_s * M).reshape(n_s, M)
    a, b, c, e = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, e], 1)]).astype(np.int32)
    hv = h.ravel()
    tris = tris[np.max(hv[tris], axis=1) > FLAT_M]

    rng = np.random.default_rng(rng_seed)
    streak = 1.0 + 0.03 * np.sin(s * rng.uniform(150, 300) + rng.uniform(0, 6.3))[:, None] * np.ones((1, M))
    # the flanks of the bead are a little darker (thinner film over the primer)
    albedo = streak * (0.85 + 0.15 * np.clip(h / max(H, 1e-6), 0.0, 1.0))
    return BeadMesh(
        verts.reshape(-1, 3), tris, np.repeat(s, M), albedo.reshape(-1).astype(np.float32)
    )
