"""The defect record: what operators see on the car and what the protocol carries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DefectStatus = Literal["open", "confirmed", "rejected", "fixed"]
DEFECT_STATUSES: tuple[DefectStatus, ...] = ("open", "confirmed", "rejected", "fixed")


@dataclass(frozen=True, slots=True)
class Defect:
    """One defect on the mesh of one vehicle, in the vehicle frame.

    ``centroid_vehicle_m`` (x, y, z) metres; ``normal_vehicle`` unit outward normal;
    ``extent_mm`` axis-aligned size along vehicle x, y, z; ``area_mm2`` area of the fused region;
    ``peak_score``/``mean_score`` in [0, 1]; ``uncertainty`` the mean spread (std, score units)
    of the view observations over the region; ``seam_id``/``s_mm`` the seam and the arc-length
    position along it (None off seam); ``robot_id`` the robot that laid the seam; ``views`` the
    camera ids that saw it; ``status`` is changed by operators; ``first_seen_ts_ns``/
    ``last_seen_ts_ns`` capture times; ``n_updates`` how many frame sets supported it.
    """

    defect_id: str
    vehicle_id: str | None
    status: DefectStatus
    centroid_vehicle_m: tuple[float, float, float]
    normal_vehicle: tuple[float, float, float]
    extent_mm: tuple[float, float, float]
    area_mm2: float
    peak_score: float
    mean_score: float
    uncertainty: float
    seam_id: str | None
    s_mm: float | None
    robot_id: str | None
    views: tuple[str, ...]
    first_seen_ts_ns: int
    last_seen_ts_ns: int
    n_updates: int
