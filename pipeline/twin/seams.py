"""The twin's seam layout: 17 sealed seams in the paper's sub-regions (front 4, centre 8, back 5)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from calibration.underbody import Region, Seam
from pipeline.twin import surface

F64 = npt.NDArray[np.float64]


def _line(x0: float, y0: float, x1: float, y1: float, n: int = 40) -> F64:
    t = np.linspace(0.0, 1.0, n)
    return np.stack([x0 + (x1 - x0) * t, y0 + (y1 - y0) * t], axis=1)


def _arc(cx: float, cy: float, r: float, a0_deg: float, a1_deg: float, n: int = 80) -> F64:
    a = np.radians(np.linspace(a0_deg, a1_deg, n))
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], axis=1)


def _curve(x_of_y: F64, ys: F64) -> F64:
    return np.stack([x_of_y, ys], axis=1)


def seam_layout() -> list[tuple[str, Region, int, str, float, float, F64]]:
    """(id, region, sub-region, robot id, bead width mm, bead height mm, xy polyline) per seam."""
    ys = np.linspace(-0.38, 0.38, 60)
    wx, wy = surface.WELL_CENTER_M
    return [
        # lower front: engine-bay floor and frame rails
        ("F1", "front", 1, "R1", 8.0, 3.5, _line(1.36, 0.40, 2.0, 0.40)),
        ("F2", "front", 2, "R2", 8.0, 3.5, _line(1.36, -0.40, 2.0, -0.40)),
        ("F3", "front", 3, "R1", 7.0, 3.0, _line(1.41, 0.36, 1.41, -0.36)),
        ("F4", "front", 4, "R2", 7.0, 3.0, _curve(1.95 - 0.1 * (ys / 0.38) ** 2, ys)),
        # lower centre: tunnel flanges, sill flanges, cross members
        ("C1", "centre", 1, "R3", 9.0, 4.0, _line(-1.1, 0.26, 1.0, 0.26)),
        ("C2", "centre", 2, "R4", 9.0, 4.0, _line(-1.1, -0.26, 1.0, -0.26)),
        ("C3", "centre", 3, "R3", 10.0, 4.0, _line(-1.15, 0.62, 1.15, 0.62)),
        ("C4", "centre", 4, "R4", 10.0, 4.0, _line(-1.15, -0.62, 1.15, -0.62)),
        ("C5", "centre", 5, "R3", 7.0, 3.0, _line(0.5, 0.29, 0.5, 0.59)),
        ("C6", "centre", 6, "R4", 7.0, 3.0, _line(0.5, -0.29, 0.5, -0.59)),
        ("C7", "centre", 7, "R3", 7.0, 3.0, _line(-0.5, 0.29, -0.5, 0.59)),
        ("C8", "centre", 8, "R4", 7.0, 3.0, _line(-0.5, -0.29, -0.5, -0.59)),
        # lower back: rear cross member, rear rails, spare-wheel well, rear panel
        ("B1", "back", 1, "R5", 8.0, 3.5, _line(-1.34, 0.45, -1.34, -0.45)),
        ("B2", "back", 2, "R5", 8.0, 3.5, _line(-1.45, 0.45, -2.0, 0.45)),
        ("B3", "back", 3, "R6", 8.0, 3.5, _line(-1.45, -0.45, -2.0, -0.45)),
        ("B4", "back", 4, "R6", 6.0, 2.5, _arc(wx, wy, surface.WELL_RADIUS_M + 0.05, 30.0, 330.0)),
        ("B5", "back", 5, "R5", 8.0, 3.5, _line(-2.06, 0.5, -2.06, -0.5)),
    ]


def build_seams() -> tuple[Seam, ...]:
    """The nominal seams, lifted onto the surface, with outward normals."""
    out = []
    for seam_id, region, sub, robot, w_mm, h_mm, xy in seam_layout():
        z = surface.height_m(xy[:, 0], xy[:, 1])
        pts = np.concatenate([xy, z[:, None]], axis=1)
        out.append(Seam(seam_id, region, sub, robot, w_mm, h_mm, pts, surface.normal(xy[:, 0], xy[:, 1])))
    return tuple(out)
