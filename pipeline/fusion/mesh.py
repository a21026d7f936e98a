"""The mesh that fusion projects onto: vertices, normals, per-vertex areas and edges (vehicle frame).

:class:`FusionMesh` is built once per underbody model. Per-vertex area (a third of
each incident triangle's area) turns vertex sets into areas in mm²; the unique
edge list is the mesh adjacency used by defect extraction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.meshio import vertex_normals
from calibration.underbody import UnderbodyModel
from pipeline.fusion.errors import FusionError

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True, eq=False)
class FusionMesh:
    """Geometry for fusion, all in the vehicle frame.

    ``vertices_vehicle_m`` (V, 3) float64 metres; ``triangles`` (F, 3) int32;
    ``normals_vehicle`` (V, 3) unit outward normals (towards the cameras);
    ``vertex_area_m2`` (V,) float64; ``edges`` (E, 2) int32 with ``edges[:, 0] < edges[:, 1]``.
    """

    vertices_vehicle_m: F64
    triangles: I32
    normals_vehicle: F64
    vertex_area_m2: F64
    edges: I32

    @property
    def n_vertices(self) -> int:
        return int(self.vertices_vehicle_m.shape[0])

    @classmethod
    def from_arrays(
        cls, vertices_vehicle_m: npt.ArrayLike, triangles: npt.ArrayLike,
        facing: tuple[float, float, float] | None = (0.0, 0.0, -1.0),
    ) -> FusionMesh:
        """Build from raw arrays.

        ``facing``: the direction outward normals point to (the underbody is seen from below,
        so -z in the vehicle frame); ``None`` trusts the triangle winding.
        Raises :class:`FusionError` on an empty or inconsistent mesh.
        """
        v = np.ascontiguousarray(vertices_vehicle_m, dtype=np.float64)
        t = np.ascontiguousarray(triangles, dtype=np.int32)
        if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
            raise FusionError(f"mesh vertices must be (V>0, 3), got {v.shape}")
        if t.ndim != 2 or t.shape[1] != 3 or len(t) == 0:
            raise FusionError(f"mesh triangles must be (F>0, 3), got {t.shape}")
        if t.min() < 0 or t.max() >= len(v):
            raise FusionError("mesh triangles index vertices out of range")
        if not np.all(np.isfinite(v)):
            raise FusionError("mesh vertices must be finite")
        normals = vertex_normals(v, t, facing=facing)
        a = v[t[:, 1]] - v[t[:, 0]]
        b = v[t[:, 2]] - v[t[:, 0]]
        tri_area = 0.5 * np.linalg.norm(np.cross(a, b), axis=1)
        area = np.zeros(len(v))
        for k in range(3):
            area += np.bincount(t[:, k], weights=tri_area / 3.0, minlength=len(v))
        e = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
        e.sort(axis=1)
        key = np.unique(e[:, 0].astype(np.int64) * len(v) + e[:, 1])
        edges = np.stack([key // len(v), key % len(v)], axis=1).astype(np.int32)
        logger.debug("fusion mesh: %d vertices, %d triangles, %d edges", len(v), len(t), len(edges))
        return cls(v, t, normals, area, edges)

    @classmethod
    def from_underbody(cls, model: UnderbodyModel) -> FusionMesh:
        """The fusion mesh of an underbody model (normals facing -z, towards cameras below)."""
        return cls.from_arrays(model.vertices_vehicle_m, model.triangles)
