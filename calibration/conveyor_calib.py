"""Conveyor calibration: travel direction and speed from a board riding the conveyor.

A calibrated camera films the board over time. Each view gives the board pose in the cell,
``T_cell_board(t) = T_cell_cam @ T_cam_board(t)``. The board origin moves on a straight line:
the axis is the principal direction of the origins (pointing along travel), the speed is the
least-squares slope of the travel ``s = (p - p̄)·axis`` over time.

Timestamp consistency: timestamps must increase strictly; intervals that differ from the median
interval by more than ``max_interval_jitter`` (relative) are reported; samples whose travel is
off the constant-speed fit by more than ``max_travel_residual_m`` are reported (a frame stamped
with the wrong time shows up there). The board must not turn: its rotation drift is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationInputError, SolveError
from calibration.se3 import invert, rotation_angle_deg

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class ConveyorResult:
    """``axis_cell`` (unit), ``speed_mps`` (board units per second; metres with a metric board),
    off-axis RMS of the board origin and travel RMS about the constant-speed fit (board units),
    the largest board rotation relative to the first view (degrees) and the timestamp findings."""

    axis_cell: F64
    speed_mps: float
    off_axis_rms_m: float
    travel_rms_m: float
    rotation_drift_deg: float
    n_samples: int
    timestamp_issues: tuple[str, ...]

    @property
    def timestamps_consistent(self) -> bool:
        return not self.timestamp_issues


def calibrate_conveyor(
    T_cell_board: Sequence[F64], t_s: Sequence[float], labels: Sequence[str] | None = None,
    max_interval_jitter: float = 0.25, max_travel_residual_m: float = 0.005,
) -> ConveyorResult:
    """Fit the conveyor axis and speed to board poses at times ``t_s`` (seconds).

    Raises :class:`CalibrationInputError` for non-increasing timestamps or mismatched lengths,
    :class:`SolveError` for fewer than 3 samples or a board that does not move.
    """
    n = len(T_cell_board)
    names = list(labels) if labels is not None else [str(i) for i in range(n)]
    if len(t_s) != n or len(names) != n:
        raise CalibrationInputError(f"{n} board poses but {len(t_s)} timestamps")
    if n < 3:
        raise SolveError(f"conveyor: {n} board views, need at least 3")
    t = np.asarray(t_s, dtype=np.float64)
    dt = np.diff(t)
    if np.any(dt <= 0):
        k = int(np.argmax(dt <= 0).item())
        raise CalibrationInputError(
            f"timestamps must increase: {names[k + 1]} at {t[k + 1]:.6f} s follows {names[k]} at {t[k]:.6f} s"
        )
    p = np.array([T[:3, 3] for T in T_cell_board])
    centred = p - p.mean(axis=0)
    _, sv, Vt = np.linalg.svd(centred, full_matrices=False)
    axis = Vt[0]
    s = centred @ axis
    if np.polyfit(t, s, 1)[0] < 0:
        axis = -axis
        s = -s
    if sv[0] < 1e-9 or np.ptp(s) < 1e-6:
        raise SolveError("conveyor: the board did not move between views")
    speed, s0 = np.polyfit(t, s, 1)
    travel_res = s - (speed * t + s0)
    off_axis = centred - np.outer(s, axis)
    issues = []
    med = float(np.median(dt))
    for k in np.flatnonzero(np.abs(dt - med) > max_interval_jitter * med).tolist():
        issues.append(f"interval {names[k]}->{names[k + 1]} is {dt[k]:.4f} s, median {med:.4f} s")
    for k in np.flatnonzero(np.abs(travel_res) > max_travel_residual_m).tolist():
        issues.append(f"{names[k]}: travel {1000 * travel_res[k]:+.1f} mm off the constant-speed fit "
                      f"(timestamp off by {travel_res[k] / speed:+.4f} s?)")
    drift = max(rotation_angle_deg(invert(T_cell_board[0]) @ T) for T in T_cell_board)
    result = ConveyorResult(axis, float(speed), float(np.sqrt(np.mean(np.sum(off_axis**2, axis=1)))),
                            float(np.sqrt(np.mean(travel_res**2))), float(drift), n, tuple(issues))
    log.info("conveyor: axis %s, speed %.4f /s, %d timestamp issues", np.round(axis, 5), speed, len(issues))
    return result
