"""The conveyor: how the vehicle frame moves through the cell.

``T_cell_vehicle(s) = translation(axis_cell * s_m) @ T_cell_vehicle0`` where
``s_m`` is the conveyor travel in metres since the registration pose
``T_cell_vehicle0``. ``s_m`` comes from an encoder, from tracking, or, in the
twin, from ``speed_mps * t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from calibration.se3 import is_rigid, translation

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Conveyor:
    """A straight conveyor. ``axis_cell`` is normalised at construction."""

    axis_cell: F64 = field(default_factory=lambda: np.array([1.0, 0.0, 0.0]))
    speed_mps: float = 0.1
    T_cell_vehicle0: F64 = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        axis = np.asarray(self.axis_cell, dtype=np.float64).reshape(-1)
        n = float(np.linalg.norm(axis)) if axis.shape == (3,) else 0.0
        if axis.shape != (3,) or not np.isfinite(n) or n < 1e-9:
            raise ValueError("conveyor axis_cell must be a non-zero 3-vector")
        object.__setattr__(self, "axis_cell", axis / n)
        object.__setattr__(self, "T_cell_vehicle0", np.asarray(self.T_cell_vehicle0, dtype=np.float64))
        if not is_rigid(self.T_cell_vehicle0):
            raise ValueError("conveyor T_cell_vehicle0 must be a rigid 4x4 transform")
        if not (np.isfinite(self.speed_mps) and self.speed_mps >= 0):
            raise ValueError("conveyor speed_mps must be finite and >= 0")

    def T_cell_vehicle(self, s_m: float) -> F64:
        """Vehicle pose after ``s_m`` metres of travel."""
        return translation(self.axis_cell * float(s_m)) @ self.T_cell_vehicle0

    def velocity_cell_mps(self) -> F64:
        """Linear velocity of the vehicle in the cell frame."""
        return self.axis_cell * self.speed_mps
