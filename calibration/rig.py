"""The rig file: every camera of a cell, the conveyor and the cell markers, as versioned YAML.

Schema (version 1)::

    version: 1
    name: cell-A
    cameras:
      - id: lower
        model: pinhole            # or fisheye
        image_size: [640, 480]    # width, height in px
        K: [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
        dist: [k1, k2, p1, p2, k3]
        T_cell_cam: 4x4 rows
        depth:                    # optional, RGB-D cameras only
          K: ...; dist: ...; image_size: ...; T_color_depth: 4x4; depth_scale_m: 0.001
    conveyor: {axis_cell: [1, 0, 0], speed_mps: 0.1, T_cell_vehicle0: 4x4}
    markers:
      - {id: M1, kind: qr, size_m: 0.2, T_cell_marker: 4x4}

:func:`load_rig` raises :class:`RigFileError` whose message names the offending
field (``cameras[1].K: ...``). :func:`save_rig` writes atomically: a failed write
leaves the previous file untouched and no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from calibration.camera import CameraModel, DepthIntrinsics
from calibration.conveyor import Conveyor
from calibration.errors import RigFileError
from calibration.se3 import is_rigid

RIG_FILE_VERSION = 1
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Marker:
    """A printed marker fixed in the cell; headsets align to the cell with it."""

    marker_id: str
    T_cell_marker: F64
    size_m: float = 0.2
    kind: Literal["qr", "aruco"] = "qr"


@dataclass(frozen=True, slots=True, eq=False)
class Rig:
    """All calibrated geometry of one inspection cell."""

    cameras: tuple[CameraModel, ...]
    conveyor: Conveyor = field(default_factory=Conveyor)
    markers: tuple[Marker, ...] = ()
    name: str = "cell"

    def __post_init__(self) -> None:
        ids = [c.camera_id for c in self.cameras]
        if len(set(ids)) != len(ids):
            raise ValueError(f"camera ids must be unique, got {ids}")

    def camera(self, camera_id: str) -> CameraModel:
        """The camera with this id; raises ``KeyError`` naming the known ids."""
        for c in self.cameras:
            if c.camera_id == camera_id:
                return c
        raise KeyError(f"unknown camera id {camera_id!r}; the rig has {[c.camera_id for c in self.cameras]}")

    @property
    def camera_ids(self) -> tuple[str, ...]:
        return tuple(c.camera_id for c in self.cameras)


# ---------------------------------------------------------------------------------------------
# File schema (pydantic), kept apart from the core dataclasses above.


def _matrix(value: Any, rows: int, cols: int) -> list[list[float]]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (rows, cols):
        raise ValueError(f"expected a {rows}x{cols} matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("matrix has non-finite entries")
    out: list[list[float]] = arr.tolist()
    return out


def _rigid(value: Any) -> list[list[float]]:
    m = _matrix(value, 4, 4)
    if not is_rigid(np.asarray(m), atol=1e-5):
        raise ValueError("not a rigid transform (rotation must be orthonormal with det +1, last row 0 0 0 1)")
    return m


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _DepthSchema(_Strict):
    K: list[list[float]]
    dist: list[float] = Field(default_factory=lambda: [0.0] * 5)
    image_size: tuple[int, int]
    T_color_depth: list[list[float]] = Field(default_factory=lambda: np.eye(4).tolist())
    depth_scale_m: float = Field(0.001, gt=0)
    min_depth_m: float = Field(0.2, ge=0)
    max_depth_m: float = Field(4.0, gt=0)

    _K = field_validator("K", mode="before")(lambda v: _matrix(v, 3, 3))
    _T = field_validator("T_color_depth", mode="before")(lambda v: _rigid(v))


class _CameraSchema(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    model: Literal["pinhole", "fisheye"] = "pinhole"
    image_size: tuple[int, int]
    K: list[list[float]]
    dist: list[float]
    T_cell_cam: list[list[float]]
    depth: _DepthSchema | None = None

    _K = field_validator("K", mode="before")(lambda v: _matrix(v, 3, 3))
    _T = field_validator("T_cell_cam", mode="before")(lambda v: _rigid(v))


class _ConveyorSchema(_Strict):
    axis_cell: tuple[float, float, float] = (1.0, 0.0, 0.0)
    speed_mps: float = Field(0.1, ge=0)
    T_cell_vehicle0: list[list[float]] = Field(default_factory=lambda: np.eye(4).tolist())

    _T = field_validator("T_cell_vehicle0", mode="before")(lambda v: _rigid(v))


class _MarkerSchema(_Strict):
    id: str
    kind: Literal["qr", "aruco"] = "qr"
    size_m: float = Field(0.2, gt=0)
    T_cell_marker: list[list[float]]

    _T = field_validator("T_cell_marker", mode="before")(lambda v: _rigid(v))


class _RigSchema(_Strict):
    version: int
    name: str = "cell"
    cameras: list[_CameraSchema] = Field(min_length=1)
    conveyor: _ConveyorSchema = Field(default_factory=_ConveyorSchema)
    markers: list[_MarkerSchema] = Field(default_factory=list)

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != RIG_FILE_VERSION:
            raise ValueError(f"unsupported rig file version {v}; this build reads version {RIG_FILE_VERSION}")
        return v


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def format_validation_error(source: str, err: ValidationError) -> str:
    """One readable line per problem, each naming the field path."""
    lines = [f"{_loc(e['loc'])}: {e['msg']}" for e in err.errors()]
    return f"{source}: " + "; ".join(lines)


def rig_from_dict(data: Any, source: str = "rig") -> Rig:
    """Validate a parsed rig document and build the :class:`Rig`; raises :class:`RigFileError`."""
    if not isinstance(data, dict):
        raise RigFileError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        doc = _RigSchema.model_validate(data)
    except ValidationError as e:
        raise RigFileError(format_validation_error(source, e)) from e
    cameras = []
    for i, c in enumerate(doc.cameras):
        try:
            depth = None
            if c.depth is not None:
                d = c.depth
                depth = DepthIntrinsics(
                    K=np.asarray(d.K), dist=np.asarray(d.dist), width_px=d.image_size[0],
                    height_px=d.image_size[1], T_color_depth=np.asarray(d.T_color_depth),
                    depth_scale_m=d.depth_scale_m, min_depth_m=d.min_depth_m, max_depth_m=d.max_depth_m,
                )
            cameras.append(
                CameraModel(
                    camera_id=c.id, K=np.asarray(c.K), dist=np.asarray(c.dist), width_px=c.image_size[0],
                    height_px=c.image_size[1], T_cell_cam=np.asarray(c.T_cell_cam), model=c.model, depth=depth,
                )
            )
        except ValueError as e:
            raise RigFileError(f"{source}: cameras[{i}] ({c.id}): {e}") from e
    try:
        conveyor = Conveyor(
            np.asarray(doc.conveyor.axis_cell), doc.conveyor.speed_mps, np.asarray(doc.conveyor.T_cell_vehicle0)
        )
        markers = tuple(Marker(m.id, np.asarray(m.T_cell_marker), m.size_m, m.kind) for m in doc.markers)
        return Rig(tuple(cameras), conveyor, markers, doc.name)
    except ValueError as e:
        raise RigFileError(f"{source}: {e}") from e


def rig_to_dict(rig: Rig) -> dict[str, Any]:
    """The YAML-ready document for a rig (plain lists and floats)."""
    cams: list[dict[str, Any]] = []
    for c in rig.cameras:
        entry: dict[str, Any] = {
            "id": c.camera_id,
            "model": c.model,
            "image_size": [c.width_px, c.height_px],
            "K": c.K.tolist(),
            "dist": c.dist.tolist(),
            "T_cell_cam": c.T_cell_cam.tolist(),
        }
        if c.depth is not None:
            d = c.depth
            entry["depth"] = {
                "K": d.K.tolist(),
                "dist": d.dist.tolist(),
                "image_size": [d.width_px, d.height_px],
                "T_color_depth": d.T_color_depth.tolist(),
                "depth_scale_m": d.depth_scale_m,
                "min_depth_m": d.min_depth_m,
                "max_depth_m": d.max_depth_m,
            }
        cams.append(entry)
    return {
        "version": RIG_FILE_VERSION,
        "name": rig.name,
        "cameras": cams,
        "conveyor": {
            "axis_cell": rig.conveyor.axis_cell.tolist(),
            "speed_mps": rig.conveyor.speed_mps,
            "T_cell_vehicle0": rig.conveyor.T_cell_vehicle0.tolist(),
        },
        "markers": [
            {
                "id": m.marker_id,
                "kind": m.kind,
                "size_m": m.size_m,
                "T_cell_marker": np.asarray(m.T_cell_marker).tolist(),
            }
            for m in rig.markers
        ],
    }


def load_rig(path: str | os.PathLike[str]) -> Rig:
    """Read and validate a rig file; raises :class:`RigFileError` naming the file and the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RigFileError(f"{p}: cannot read rig file: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RigFileError(f"{p}: not valid YAML: {e}") from e
    return rig_from_dict(data, source=str(p))


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import: os.umask() can only be read by setting it, which is not thread-safe.
_UMASK = _read_umask()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically: temp file in the same folder, fsync, rename.

    On any failure the temp file is removed and ``path`` keeps its old content (or stays absent).
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual file mode
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_rig(rig: Rig, path: str | os.PathLike[str]) -> None:
    """Write the rig file atomically. Raises :class:`RigFileError` when the folder is not writable."""
    text = "# XR sealant inspection rig file\n" + yaml.safe_dump(rig_to_dict(rig), sort_keys=False)
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise RigFileError(f"{path}: cannot write rig file: {e.strerror or e}") from e
