"""The underbody model: a triangle mesh plus the seam polylines, both in the vehicle frame.

On disk a model is a small YAML document that names a mesh file beside it::

    version: 1
    name: twin-underbody
    mesh: underbody.ply            # PLY or GLB, metres, vehicle frame
    seams:
      - id: F1
        region: front              # front | centre | back
        sub_region: 1              # 1-based index inside the region
        robot_id: R1
        bead_width_mm: 8.0
        bead_height_mm: 3.5
        points_vehicle_m: [[x, y, z], ...]
        normals_vehicle: [[nx, ny, nz], ...]   # outward surface normal (the side the bead is on)

Vehicle frame: metres, x towards the front of the car, y to its left, z up. The
underbody is seen from below, so its outward normals point mostly along -z.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calibration.errors import UnderbodyModelError
from calibration.meshio import read_mesh, vertex_normals, write_mesh
from calibration.rig import atomic_write_text, format_validation_error

UNDERBODY_FILE_VERSION = 1
Region = Literal["front", "centre", "back"]
REGIONS: tuple[Region, ...] = ("front", "centre", "back")
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Seam:
    """One sealed seam: a polyline on the surface with its nominal bead."""

    seam_id: str
    region: Region
    sub_region: int
    robot_id: str
    bead_width_mm: float
    bead_height_mm: float
    points_vehicle_m: F64
    normals_vehicle: F64

    def __post_init__(self) -> None:
        pts = np.asarray(self.points_vehicle_m, dtype=np.float64)
        nrm = np.asarray(self.normals_vehicle, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3 or pts.shape[0] < 2:
            raise ValueError(f"seam {self.seam_id}: points_vehicle_m must be (N>=2, 3), got {pts.shape}")
        if nrm.shape != pts.shape:
            raise ValueError(f"seam {self.seam_id}: normals_vehicle must match points, got {nrm.shape}")
        if not (np.all(np.isfinite(pts)) and np.all(np.isfinite(nrm))):
            raise ValueError(f"seam {self.seam_id}: non-finite coordinates")
        if self.region not in REGIONS:
            raise ValueError(f"seam {self.seam_id}: region must be one of {REGIONS}")
        if self.bead_width_mm <= 0 or self.bead_height_mm <= 0:
            raise ValueError(f"seam {self.seam_id}: bead width and height must be positive")
        nrm = nrm / np.linalg.norm(nrm, axis=1, keepdims=True)
        object.__setattr__(self, "points_vehicle_m", pts)
        object.__setattr__(self, "normals_vehicle", nrm)

    @property
    def arc_length_m(self) -> F64:
        """Cumulative arc length at each polyline point, starting at 0."""
        seg = np.linalg.norm(np.diff(self.points_vehicle_m, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(seg)])

    @property
    def length_m(self) -> float:
        return float(self.arc_length_m[-1])

    def point_at(self, s_m: npt.ArrayLike) -> F64:
        """Points at arc lengths ``s_m`` (clamped to the seam), shape (..., 3)."""
        s = np.clip(np.asarray(s_m, dtype=np.float64), 0.0, self.length_m)
        a = self.arc_length_m
        return np.stack([np.interp(s, a, self.points_vehicle_m[:, k]) for k in range(3)], axis=-1)


@dataclass(frozen=True, slots=True, eq=False)
class UnderbodyModel:
    """Mesh and seams of one underbody type, in the vehicle frame."""

    name: str
    vertices_vehicle_m: F64
    triangles: npt.NDArray[np.int32]
    seams: tuple[Seam, ...]

    def __post_init__(self) -> None:
        v = np.asarray(self.vertices_vehicle_m, dtype=np.float64)
        t = np.asarray(self.triangles, dtype=np.int32)
        if v.ndim != 2 or v.shape[1] != 3 or t.ndim != 2 or t.shape[1] != 3:
            raise ValueError("mesh must have (V, 3) vertices and (F, 3) triangles")
        if t.size and (t.min() < 0 or t.max() >= len(v)):
            raise ValueError("mesh triangles index vertices out of range")
        ids = [s.seam_id for s in self.seams]
        if len(set(ids)) != len(ids):
            raise ValueError(f"seam ids must be unique, got {ids}")
        object.__setattr__(self, "vertices_vehicle_m", v)
        object.__setattr__(self, "triangles", t)

    def seam(self, seam_id: str) -> Seam:
        for s in self.seams:
            if s.seam_id == seam_id:
                return s
        raise KeyError(f"unknown seam id {seam_id!r}")

    @cached_property
    def vertex_normals(self) -> F64:
        """Area-weighted vertex normals (unit length)."""
        return vertex_normals(self.vertices_vehicle_m, self.triangles)


# ---------------------------------------------------------------------------------------------
# Files


class _SeamSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    region: Region
    sub_region: int = Field(ge=1)
    robot_id: str = Field(min_length=1)
    bead_width_mm: float = Field(gt=0)
    bead_height_mm: float = Field(gt=0)
    points_vehicle_m: list[tuple[float, float, float]] = Field(min_length=2)
    normals_vehicle: list[tuple[float, float, float]] = Field(min_length=2)


class _UnderbodySchema(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    name: str = "underbody"
    mesh: str = Field(min_length=1)
    seams: list[_SeamSchema]


def load_underbody(path: str | os.PathLike[str]) -> UnderbodyModel:
    """Read an underbody model YAML and its mesh; raises :class:`UnderbodyModelError`."""
    p = Path(path)
    try:
        data: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise UnderbodyModelError(f"{p}: cannot read: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise UnderbodyModelError(f"{p}: not valid YAML: {e}") from e
    try:
        doc = _UnderbodySchema.model_validate(data)
    except ValidationError as e:
        raise UnderbodyModelError(format_validation_error(str(p), e)) from e
    v, t = read_mesh(p.parent / doc.mesh)
    try:
        seams = tuple(
            Seam(s.id, s.region, s.sub_region, s.robot_id, s.bead_width_mm, s.bead_height_mm,
                 np.asarray(s.points_vehicle_m), np.asarray(s.normals_vehicle))
            for s in doc.seams
        )
        return UnderbodyModel(doc.name, v, t, seams)
    except ValueError as e:
        raise UnderbodyModelError(f"{p}: {e}") from e


def save_underbody(model: UnderbodyModel, path: str | os.PathLike[str], mesh_format: str = "ply") -> Path:
    """Write ``path`` (YAML) and the mesh beside it (``.ply`` or ``.glb``). Returns the mesh path."""
    if mesh_format not in ("ply", "glb"):
        raise ValueError("mesh_format must be 'ply' or 'glb'")
    p = Path(path)
    mesh_path = p.with_suffix(f".{mesh_format}")
    write_mesh(mesh_path, model.vertices_vehicle_m, model.triangles)
    doc = {
        "version": UNDERBODY_FILE_VERSION,
        "name": model.name,
        "mesh": mesh_path.name,
        "seams": [
            {
                "id": s.seam_id,
                "region": s.region,
                "sub_region": s.sub_region,
                "robot_id": s.robot_id,
                "bead_width_mm": float(s.bead_width_mm),
                "bead_height_mm": float(s.bead_height_mm),
                "points_vehicle_m": np.round(s.points_vehicle_m, 6).tolist(),
                "normals_vehicle": np.round(s.normals_vehicle, 6).tolist(),
            }
            for s in model.seams
        ],
    }
    atomic_write_text(p, yaml.safe_dump(doc, sort_keys=False))
    return mesh_path
