"""Visibility lookup tables over conveyor positions, one per camera.

The cameras are fixed and the body only translates along the conveyor axis, so what a
camera sees depends on one number, the travel ``s_m``. :class:`VisibilityLUT` raycasts
once per grid position (``step_m`` apart) and stores which vertices pass the z-buffer test
as a packed bit set (V/8 bytes per position). Per frame, :meth:`VisibilityLUT.lookup`
unpacks the nearest grid position: no raycast. Projection of the visible vertices is then
done in closed form at the exact pose (a rigid transform plus the lens model), so the
grid spacing only affects visibility near occluding edges, never where a vertex lands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from calibration.camera import CameraModel
from calibration.conveyor import Conveyor
from pipeline.fusion.errors import FusionError
from pipeline.fusion.visibility import MeshRaycaster, VisibilityConfig, raycast_visible

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
#: Largest distance (m) of a pose from the conveyor line accepted by :func:`travel_from_pose`.
MAX_OFF_AXIS_M = 0.01


def travel_from_pose(conveyor: Conveyor, T_cell_vehicle: F64, tol_m: float = MAX_OFF_AXIS_M) -> float:
    """Conveyor travel ``s_m`` of a vehicle pose.

    Raises :class:`FusionError` when the pose is not on the conveyor line (off by more than
    ``tol_m`` or rotated by more than ~0.5°): the tables would not apply to it.
    """
    T = np.asarray(T_cell_vehicle, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise FusionError("T_cell_vehicle must be a finite 4x4 matrix")
    T0 = conveyor.T_cell_vehicle0
    d = T[:3, 3] - T0[:3, 3]
    s = float(conveyor.axis_cell @ d)
    off = float(np.linalg.norm(d - s * conveyor.axis_cell))
    if off > tol_m or not np.allclose(T[:3, :3], T0[:3, :3], atol=0.01):
        raise FusionError(f"vehicle pose is {off * 1000:.1f} mm off the conveyor line (or rotated)")
    return s


@dataclass(frozen=True, slots=True, eq=False)
class VisibilityLUT:
    """Packed visibility bits of one camera: ``bits[g]`` is the vertex set seen at ``s_grid_m[g]``."""

    camera_id: str
    n_vertices: int
    s_grid_m: F64
    bits: npt.NDArray[np.uint8]  # (G, ceil(V / 8))

    def __post_init__(self) -> None:
        if self.bits.shape != (len(self.s_grid_m), (self.n_vertices + 7) // 8):
            raise FusionError(f"LUT {self.camera_id}: bits shape {self.bits.shape} does not match grid and mesh")
        if len(self.s_grid_m) == 0 or np.any(np.diff(self.s_grid_m) <= 0):
            raise FusionError(f"LUT {self.camera_id}: the grid must be non-empty and increasing")

    @property
    def step_m(self) -> float:
        return float(self.s_grid_m[1] - self.s_grid_m[0]) if len(self.s_grid_m) > 1 else 0.0

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    def grid_index(self, s_m: float) -> int:
        """Nearest grid position (clamped to the grid)."""
        return int(np.clip(np.rint(np.interp(s_m, self.s_grid_m, np.arange(len(self.s_grid_m)))), 0,
                           len(self.s_grid_m) - 1))

    def lookup(self, s_m: float) -> I32:
        """Indices (int32, increasing) of the vertices seen at the grid position nearest to ``s_m``."""
        row = np.unpackbits(self.bits[self.grid_index(s_m)], count=self.n_vertices)
        return np.flatnonzero(row).astype(np.int32)

    @classmethod
    def build(
        cls, camera: CameraModel, raycaster: MeshRaycaster, conveyor: Conveyor, s_range_m: tuple[float, float],
        step_m: float, config: VisibilityConfig | None = None,
    ) -> VisibilityLUT:
        """Raycast the grid ``s_range_m[0], +step_m, ... <= s_range_m[1]`` once.

        Cost: one raycast of ``camera``'s image per grid position. Raises :class:`FusionError`
        on an empty range or a non-positive step.
        """
        lo, hi = s_range_m
        if not (step_m > 0 and hi >= lo):
            raise FusionError("LUT needs step_m > 0 and an increasing s range")
        grid = np.asarray(lo + step_m * np.arange(int(np.floor((hi - lo) / step_m + 1e-9)) + 1), dtype=np.float64)
        nv = raycaster.mesh.n_vertices
        bits = np.zeros((len(grid), (nv + 7) // 8), dtype=np.uint8)
        row = np.zeros(nv, dtype=bool)
        for g, s in enumerate(grid):
            vis = raycast_visible(camera, raycaster, conveyor.T_cell_vehicle(float(s)), config)
            row[:] = False
            row[vis.index] = True
            bits[g] = np.packbits(row)
        logger.info("visibility LUT %s: %d positions, %.1f MB", camera.camera_id, len(grid), bits.nbytes / 1e6)
        return cls(camera.camera_id, nv, grid, bits)

    def save(self, path: str | Path) -> None:
        """Write the table as a compressed ``.npz``."""
        np.savez_compressed(path, camera_id=np.array(self.camera_id), n_vertices=np.array(self.n_vertices),
                            s_grid_m=self.s_grid_m, bits=self.bits)

    @classmethod
    def load(cls, path: str | Path) -> VisibilityLUT:
        """Read a table written by :meth:`save`; raises :class:`FusionError` on a malformed file."""
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(str(z["camera_id"]), int(z["n_vertices"]), z["s_grid_m"].astype(np.float64),
                           z["bits"].astype(np.uint8))
        except (OSError, KeyError, ValueError) as e:
            raise FusionError(f"{path}: not a visibility LUT: {e}") from e
