"""Overlay protocol messages (version 1) as frozen dataclasses; the wire form is in :mod:`overlays.codec`.

Every message on the wire is a map with ``"v"`` (protocol version), ``"type"`` and ``"seq"``
(the sender's message counter) plus the fields below, in this order. Arrays are numpy
arrays here and ``{"dtype", "shape", "data"}`` blobs (little-endian) on the wire. Units are
in the names. docs/protocol.md is the reference for other languages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from overlays.defect import Defect, DefectStatus

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

# --- limits (documented in docs/protocol.md; the codec enforces them) ---------------------------
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_ARRAY_ELEMENTS = 8_000_000
MAX_STR_LEN = 256
MAX_COMMENT_LEN = 2000
MAX_DEFECTS = 2000
MAX_SEAMS = 512
MAX_SEAM_POINTS = 20_000
MAX_CAMERAS = 16
MAX_MARKERS = 64
MAX_MAP_ENTRIES = 1024
MAX_DEPTH = 8
ID_PATTERN = r"^[A-Za-z0-9_.:/-]{1,64}$"

Role = Literal["operator", "supervisor", "admin", "camera", "viewer"]
ROLES: tuple[Role, ...] = ("operator", "supervisor", "admin", "camera", "viewer")
Region = Literal["front", "centre", "back"]
MarkerKind = Literal["qr", "aruco"]
SyncMode = Literal["full", "delta"]
ViewState = Literal["starting", "up", "degraded", "ended"]
VIEW_STATES: tuple[ViewState, ...] = ("starting", "up", "degraded", "ended")

U8 = npt.NDArray[np.uint8]
U32 = npt.NDArray[np.uint32]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Hello:
    """Client -> server, first message. ``versions``: protocol versions the client speaks."""

    client_name: str
    role: Role
    versions: tuple[int, ...] = (PROTOCOL_VERSION,)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server -> client answer to :class:`Hello`: the chosen version and the session."""

    session_id: str
    version: int
    server_name: str
    server_ts_ns: int
    seq: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class SeamInfo:
    seam_id: str
    region: Region
    robot_id: str
    points_vehicle_m: F32  # (N, 3)


@dataclass(frozen=True, slots=True, eq=False)
class MarkerInfo:
    marker_id: str
    kind: MarkerKind
    size_m: float
    T_cell_marker: F64  # (4, 4)


@dataclass(frozen=True, slots=True, eq=False)
class CameraInfo:
    camera_id: str
    width_px: int
    height_px: int
    rgbd: bool
    T_cell_cam: F64  # (4, 4)


@dataclass(frozen=True, slots=True, eq=False)
class RigInfo:
    name: str
    cameras: tuple[CameraInfo, ...]
    conveyor_axis_cell: tuple[float, float, float]
    speed_mps: float


@dataclass(frozen=True, slots=True, eq=False)
class Scene:
    """The static scene: where to fetch the mesh, its vertex count (heatmaps index it), seams, markers, rig."""

    scene_id: str
    mesh_url: str
    mesh_sha256: str
    n_vertices: int
    seams: tuple[SeamInfo, ...]
    markers: tuple[MarkerInfo, ...]
    rig: RigInfo
    seq: int = 0


@dataclass(frozen=True, slots=True)
class PassStart:
    vehicle_id: str
    scene_id: str
    start_ts_ns: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class PassEnd:
    """``coverage``: fraction of mesh vertices observed; ``seam_coverage``: the same per seam."""

    vehicle_id: str
    end_ts_ns: int
    n_defects: int
    coverage: float
    seam_coverage: dict[str, float] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class Pose:
    """Vehicle pose at capture time; clients predict ``T_cell_vehicle + velocity * (t_display - capture)``."""

    vehicle_id: str
    capture_ts_ns: int
    T_cell_vehicle: F64  # (4, 4)
    velocity_cell_mps: tuple[float, float, float]
    s_m: float
    seq: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class Heatmap:
    """Per-vertex fused scores quantised to u8 (``score ≈ value / 255``).

    ``full``: ``values`` has ``n_vertices`` entries and ``indices`` is None. ``delta``: only the
    vertices whose quantised value changed: ``indices`` (u32, strictly increasing) and ``values``.
    """

    vehicle_id: str
    capture_ts_ns: int
    n_vertices: int
    mode: SyncMode
    values: U8
    indices: U32 | None = None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Defects:
    """``full``: ``defects`` is the complete state, ``removed`` empty. ``delta``: added or changed
    records (replace by id) and withdrawn ids."""

    vehicle_id: str
    capture_ts_ns: int
    mode: SyncMode
    defects: tuple[Defect, ...]
    removed: tuple[str, ...] = ()
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: str
    kind: Literal["raised", "cleared"]
    scope: Literal["robot", "seam"]
    key: str
    rate: float
    threshold: float
    n_defective: int
    n_vehicles: int
    vehicle_id: str
    ts_ns: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Stats:
    """``latency_ms``: per pipeline stage (capture to that stage's end); rates over the alert window;
    ``views``: each camera's state (``degraded``/``ended`` views are left out of fusion)."""

    ts_ns: int
    latency_ms: dict[str, float]
    robot_rate: dict[str, float]
    seam_rate: dict[str, float]
    n_vehicles: int
    fps: float
    seq: int = 0
    views: dict[str, ViewState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feedback:
    """Client -> server: an operator set a defect's status."""

    defect_id: str
    vehicle_id: str
    status: DefectStatus
    operator_id: str
    ts_ns: int
    comment: str = ""
    seq: int = 0


Message = Hello | Welcome | Scene | PassStart | PassEnd | Pose | Heatmap | Defects | Alert | Stats | Feedback

MESSAGE_TYPES: dict[str, type[Message]] = {
    "hello": Hello, "welcome": Welcome, "scene": Scene, "pass_start": PassStart, "pass_end": PassEnd,
    "pose": Pose, "heatmap": Heatmap, "defects": Defects, "alert": Alert, "stats": Stats, "feedback": Feedback,
}
TYPE_NAMES: dict[type[Message], str] = {cls: name for name, cls in MESSAGE_TYPES.items()}
