"""The paper's five sealant defect types as parameterised edits of the 3D bead.

Every edit is confined to the arc-length interval ``[s_start_m, s_start_m + length_m]``
of one seam, so a defect changes the rendered pixels only inside its region.
The region (:meth:`DefectSpec.region_radius_m`) is what ground truth is made of:
a tube around the seam over that interval, wide enough to hold the nominal and
the edited bead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

DefectType = Literal["missing", "misalignment", "bifurcation", "narrowing", "hole"]
DEFECT_TYPES: tuple[DefectType, ...] = ("missing", "misalignment", "bifurcation", "narrowing", "hole")

#: Extra distance (m) around the edited bead that counts as the defect's ground truth.
GT_MARGIN_M = 0.002


@dataclass(frozen=True, slots=True)
class DefectSpec:
    """One defect on one seam.

    ``length_m`` is the extent along the seam (for a hole: its diameter).
    Type-specific parameters:

    * misalignment: ``offset_mm``, the lateral shift of the bead (signed);
    * bifurcation: ``offset_mm``, the distance between the two branches' centres;
    * narrowing: ``width_factor`` in (0, 1), the remaining width;
    * hole: ``offset_mm``, the lateral position of the hole from the bead centre.
    """

    defect_id: str
    defect_type: DefectType
    seam_id: str
    s_start_m: float
    length_m: float
    offset_mm: float = 0.0
    width_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.defect_type not in DEFECT_TYPES:
            raise ValueError(f"unknown defect type {self.defect_type!r}; use one of {DEFECT_TYPES}")
        if not self.length_m > 0:
            raise ValueError("defect length_m must be positive")
        if self.defect_type == "narrowing" and not 0 < self.width_factor < 1:
            raise ValueError("narrowing width_factor must be in (0, 1)")

    @property
    def s_end_m(self) -> float:
        return self.s_start_m + self.length_m

    @property
    def s_center_m(self) -> float:
        return self.s_start_m + self.length_m / 2

    @property
    def size_mm(self) -> float:
        """Characteristic size in mm: the extent along the seam (a hole's diameter)."""
        return 1000.0 * self.length_m

    def region_radius_m(self, bead_width_m: float, bead_offset_m: float) -> float:
        """Lateral radius of the ground-truth tube around the seam centreline."""
        half = bead_width_m / 2 + abs(bead_offset_m)
        if self.defect_type == "misalignment":
            half += abs(self.offset_mm) / 1000.0
        elif self.defect_type == "bifurcation":
            half = abs(bead_offset_m) + abs(self.offset_mm) / 2000.0 + bead_width_m * 0.55 / 2
            half = max(half, bead_width_m / 2 + abs(bead_offset_m))
        return half + GT_MARGIN_M


def sample_defect(
    rng: np.random.Generator, defect_id: str, defect_type: DefectType, seam_id: str, seam_length_m: float,
    bead_width_mm: float,
) -> DefectSpec:
    """Draw a defect of the given type with realistic size, placed away from the seam ends."""
    if defect_type == "missing":
        length = rng.uniform(0.010, 0.25)
    elif defect_type == "misalignment":
        length = rng.uniform(0.04, 0.30)
    elif defect_type == "bifurcation":
        length = rng.uniform(0.03, 0.20)
    elif defect_type == "narrowing":
        length = rng.uniform(0.02, 0.25)
    else:
        length = rng.uniform(0.005, 0.012)
    length = min(length, 0.6 * seam_length_m)
    s0 = rng.uniform(0.1 * seam_length_m, 0.9 * seam_length_m - length)
    offset_mm, factor = 0.0, 1.0
    if defect_type == "misalignment":
        offset_mm = float(rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 2.0) * bead_width_mm)
    elif defect_type == "bifurcation":
        offset_mm = float(rng.uniform(1.3, 2.0) * bead_width_mm)
    elif defect_type == "narrowing":
        factor = float(rng.uniform(0.3, 0.5))
    elif defect_type == "hole":
        offset_mm = float(rng.uniform(-0.15, 0.15) * bead_width_mm)
    return DefectSpec(defect_id, defect_type, seam_id, float(s0), float(length), offset_mm, factor)
