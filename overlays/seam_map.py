"""Which seam each mesh vertex belongs to, and where along it (arc length in mm).

Seams are resampled every ``step_mm``; each vertex takes the nearest sample within
``radius_mm`` (else no seam, index -1). Built once per underbody model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from calibration.underbody import Seam
from overlays.errors import DefectError

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class SeamMap:
    """``seam_index`` (V,) int16 into ``seams`` or -1; ``s_mm`` (V,) arc length along that seam (NaN off seam)."""

    seams: tuple[Seam, ...]
    seam_index: npt.NDArray[np.int16]
    s_mm: F64
    dist_mm: F64

    @classmethod
    def build(cls, vertices_vehicle_m: F64, seams: Sequence[Seam], radius_mm: float = 25.0,
              step_mm: float = 1.0) -> SeamMap:
        """Assign vertices (V, 3) metres to seams. Raises :class:`DefectError` on bad parameters."""
        if not (radius_mm > 0 and step_mm > 0):
            raise DefectError("seam map radius_mm and step_mm must be positive")
        v = np.asarray(vertices_vehicle_m, dtype=np.float64)
        if not seams:
            n = len(v)
            return cls((), np.full(n, -1, np.int16), np.full(n, np.nan), np.full(n, np.inf))
        pts, owner, s_all = [], [], []
        for k, seam in enumerate(seams):
            s = np.arange(0.0, seam.length_m + 1e-12, step_mm / 1000.0)
            pts.append(seam.point_at(s))
            owner.append(np.full(len(s), k, np.int16))
            s_all.append(s * 1000.0)
        tree = cKDTree(np.concatenate(pts))
        d, j = tree.query(v, k=1, distance_upper_bound=radius_mm / 1000.0)
        hit = np.isfinite(d)
        own = np.concatenate(owner)
        sv = np.concatenate(s_all)
        seam_index = np.full(len(v), -1, np.int16)
        s_mm = np.full(len(v), np.nan)
        seam_index[hit] = own[j[hit]]
        s_mm[hit] = sv[j[hit]]
        logger.debug("seam map: %d of %d vertices within %.0f mm of a seam", int(hit.sum()), len(v), radius_mm)
        return cls(tuple(seams), seam_index, s_mm, np.where(hit, d * 1000.0, np.inf))
