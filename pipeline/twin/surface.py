"""The procedural underbody surface of the digital twin.

The floor is a height field ``z = height_m(x, y)`` in the vehicle frame (metres,
x to the front, y to the left, z up; the cameras look at it from below). It has
a central tunnel, side sills, a raised engine bay with frame rails at the front,
a spare-wheel well with rear rails at the back, stamped stiffening ribs, drain
holes and wheel arches. All features are smooth analytic functions, so beads can
be laid exactly on the surface and normals computed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

LENGTH_M = 4.2
WIDTH_M = 1.6
HALF_L = LENGTH_M / 2
HALF_W = WIDTH_M / 2
INTERIOR_Z_M = 0.30  # cabin side, seen through drain holes and wheel arches

# Feature layout (vehicle frame, metres)
RIB_X_M = (-0.85, -0.2, 0.15, 0.85)
WELL_CENTER_M = (-1.70, 0.0)
WELL_RADIUS_M = 0.27
DRAIN_HOLES_M: tuple[tuple[float, float, float], ...] = (
    (0.95, 0.45, 0.014), (0.95, -0.45, 0.014), (-0.3, 0.42, 0.011), (-0.3, -0.42, 0.011),
    (0.35, 0.5, 0.009), (0.35, -0.5, 0.009), (-1.05, 0.4, 0.016), (-1.05, -0.4, 0.016),
    (1.65, 0.2, 0.012), (1.65, -0.2, 0.012), (-1.9, 0.62, 0.012), (-1.9, -0.62, 0.012),
)
WHEEL_ARCHES_M: tuple[tuple[float, float, float], ...] = (
    (1.45, HALF_W, 0.36), (1.45, -HALF_W, 0.36), (-1.3, HALF_W, 0.36), (-1.3, -HALF_W, 0.36),
)


def _smoothstep(e0: float, e1: float, x: F64) -> F64:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _band(x: F64, lo: float, hi: float, ramp: float) -> F64:
    """1 inside [lo, hi], 0 outside, with smooth ramps of width ``ramp``."""
    return _smoothstep(lo - ramp, lo, x) * (1.0 - _smoothstep(hi, hi + ramp, x))


def height_m(x: npt.ArrayLike, y: npt.ArrayLike) -> F64:
    """Surface height (z, metres) at vehicle-frame (x, y). Vectorised."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ay = np.abs(y)
    z = np.zeros(np.broadcast(x, y).shape)
    # central tunnel, raised into the cabin
    z += 0.14 * _band(x, -1.15, 1.05, 0.1) * (1.0 - _smoothstep(0.12, 0.22, ay))
    # side sills, protruding towards the cameras
    z -= 0.07 * _band(x, -1.25, 1.25, 0.05) * _smoothstep(0.66, 0.72, ay)
    # engine bay, raised, with frame rails
    z += 0.12 * _smoothstep(1.25, 1.33, x) * (1.0 - _smoothstep(0.44, 0.48, ay))
    z -= 0.05 * _smoothstep(1.22, 1.3, x) * np.exp(-(((ay - 0.52) / 0.025) ** 4))
    # spare-wheel well and rear rails
    r = np.hypot(x - WELL_CENTER_M[0], y - WELL_CENTER_M[1])
    z += 0.12 * (1.0 - _smoothstep(WELL_RADIUS_M - 0.04, WELL_RADIUS_M, r))
    z -= 0.04 * (1.0 - _smoothstep(-1.3, -1.22, x)) * np.exp(-(((ay - 0.56) / 0.022) ** 4))
    # stamped stiffening ribs in the floor pans
    in_pan = _band(ay, 0.30, 0.58, 0.03)
    for xr in RIB_X_M:
        z -= 0.007 * in_pan * np.exp(-(((x - xr) / 0.014) ** 2))
    return z


def normal(x: npt.ArrayLike, y: npt.ArrayLike, eps_m: float = 5e-4) -> F64:
    """Outward (downward-facing) unit surface normal at (x, y), shape (..., 3)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    fx = (height_m(x + eps_m, y) - height_m(x - eps_m, y)) / (2 * eps_m)
    fy = (height_m(x, y + eps_m) - height_m(x, y - eps_m)) / (2 * eps_m)
    n = np.stack([fx, fy, -np.ones_like(fx)], axis=-1)
    out: F64 = n / np.linalg.norm(n, axis=-1, keepdims=True)
    return out


def is_open(x: F64, y: F64) -> npt.NDArray[np.bool_]:
    """True where the floor has an opening (drain hole or wheel arch)."""
    out = np.zeros(np.broadcast(x, y).shape, dtype=bool)
    for cx, cy, r in DRAIN_HOLES_M + WHEEL_ARCHES_M:
        out |= np.hypot(x - cx, y - cy) < r
    return out


@dataclass(frozen=True, slots=True, eq=False)
class PanelMesh:
    """The floor as a triangle mesh plus per-vertex albedo (before body colour)."""

    vertices_m: F64
    triangles: npt.NDArray[np.int32]
    albedo: npt.NDArray[np.float32]  # (V,) grey level, 1 = paint colour


def build_panel(step_m: float = 0.006, seed: int = 7) -> PanelMesh:
    """Triangulate the height field on a regular grid, leaving out the openings.

    Weld spots along flanges and a faint mottling are baked into the per-vertex albedo.
    """
    nx = round(LENGTH_M / step_m) + 1
    ny = round(WIDTH_M / step_m) + 1
    xs = np.linspace(-HALF_L, HALF_L, nx)
    ys = np.linspace(-HALF_W, HALF_W, ny)
    X, Y = np.meshgrid(xs, ys, indexing="ij")
    Z = height_m(X, Y)
    verts = np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=1)
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    # winding chosen so that face normals point down (-z), towards the cameras
    tris = np.concatenate([np.stack([a, c, b], 1), np.stack([a, d, c], 1)]).astype(np.int32)
    cen = verts[tris].mean(axis=1)
    tris = tris[~is_open(cen[:, 0], cen[:, 1])]

    rng = np.random.default_rng(seed)
    albedo = np.ones(len(verts), dtype=np.float64)
    # low-frequency mottling of the paint
    for _ in range(6):
        kx, ky, ph = rng.uniform(2, 9), rng.uniform(2, 9), rng.uniform(0, 2 * np.pi)
        albedo += 0.015 * np.sin(kx * verts[:, 0] + ky * verts[:, 1] + ph)
    # weld spots: darker dots along the flanges beside tunnel and sills
    for y_line in (0.235, -0.235, 0.645, -0.645):
        for x_spot in np.arange(-1.1, 1.1, 0.045):
            d2 = (verts[:, 0] - x_spot) ** 2 + (verts[:, 1] - y_line) ** 2
            albedo -= 0.35 * np.exp(-d2 / (2 * 0.004**2))
    return PanelMesh(verts, tris, np.clip(albedo, 0.2, 1.2).astype(np.float32))
