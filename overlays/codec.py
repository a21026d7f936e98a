"""Encode and decode overlay protocol messages: msgpack on the wire, an identical JSON mirror.

:func:`encode` / :func:`decode` are the whole API (``fmt="msgpack"`` or ``"json"``). The
wire form of a message is a map of string keys (see docs/protocol.md). Arrays travel as
``{"dtype": "<f8", "shape": [4, 4], "data": <bytes>}`` with little-endian data; in JSON the
``data`` is base64 text, everything else is the same structure.

Decoding validates strictly: the version, every field's type, ranges, string patterns,
list/array sizes and the limits in :mod:`overlays.messages`; unknown and missing keys are
errors. Any violation, including bytes that are not msgpack/JSON at all, raises
:class:`~overlays.errors.ProtocolError` whose message names the field, and nothing else.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any, Literal, TypeVar, cast

import msgpack
import numpy as np
import numpy.typing as npt

from overlays.defect import DEFECT_STATUSES, Defect
from overlays.errors import ProtocolError
from overlays.messages import (
    MAX_ARRAY_ELEMENTS,
    MAX_CAMERAS,
    MAX_COMMENT_LEN,
    MAX_DEFECTS,
    MAX_DEPTH,
    MAX_MAP_ENTRIES,
    MAX_MARKERS,
    MAX_MESSAGE_BYTES,
    MAX_SEAM_POINTS,
    MAX_SEAMS,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    ROLES,
    SUPPORTED_VERSIONS,
    TYPE_NAMES,
    VIEW_STATES,
    Alert,
    CameraInfo,
    Defects,
    Feedback,
    Heatmap,
    Hello,
    MarkerInfo,
    Message,
    PassEnd,
    PassStart,
    Pose,
    RigInfo,
    Scene,
    SeamInfo,
    Stats,
    Welcome,
)
from overlays.wire import (
    ID_RE as ID,
)
from overlays.wire import (
    UINT64_MAX,
    WireMap,
    id_item,
    int_item,
    read_array,
    read_float,
    rigid,
)

logger = logging.getLogger(__name__)

Format = Literal["msgpack", "json"]
T = TypeVar("T")
_SHA = re.compile(r"^([0-9a-f]{64})?$")


# --- encoding ---------------------------------------------------------------------------------

def _arr(a: npt.NDArray[Any], dtype: str, json_mode: bool) -> dict[str, Any]:
    data = np.ascontiguousarray(a, dtype=np.dtype(dtype)).tobytes()
    return {"dtype": dtype, "shape": [int(s) for s in np.shape(a)],
            "data": base64.b64encode(data).decode("ascii") if json_mode else data}


def _defect_wire(d: Defect) -> dict[str, Any]:
    return {
        "defect_id": d.defect_id, "vehicle_id": d.vehicle_id, "status": d.status,
        "centroid_vehicle_m": [float(x) for x in d.centroid_vehicle_m],
        "normal_vehicle": [float(x) for x in d.normal_vehicle],
        "extent_mm": [float(x) for x in d.extent_mm], "area_mm2": float(d.area_mm2),
        "peak_score": float(d.peak_score), "mean_score": float(d.mean_score), "uncertainty": float(d.uncertainty),
        "seam_id": d.seam_id, "s_mm": None if d.s_mm is None else float(d.s_mm), "robot_id": d.robot_id,
        "views": list(d.views), "first_seen_ts_ns": int(d.first_seen_ts_ns),
        "last_seen_ts_ns": int(d.last_seen_ts_ns), "n_updates": int(d.n_updates),
    }


def _fmap(m: dict[str, float]) -> dict[str, float]:
    return {str(k): float(v) for k, v in m.items()}


def to_wire(msg: Message, json_mode: bool = False) -> dict[str, Any]:
    """The plain map of ``msg`` (what msgpack/JSON serialise). Raises :class:`ProtocolError` for a non-message."""
    name = TYPE_NAMES.get(type(msg))
    if name is None:
        raise ProtocolError(f"not a protocol message: {type(msg).__name__}")
    head: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": name, "seq": int(msg.seq)}
    j = json_mode
    if isinstance(msg, Hello):
        body: dict[str, Any] = {"client_name": msg.client_name, "role": msg.role, "versions": list(msg.versions)}
    elif isinstance(msg, Welcome):
        body = {"session_id": msg.session_id, "version": msg.version, "server_name": msg.server_name,
                "server_ts_ns": msg.server_ts_ns}
    elif isinstance(msg, Scene):
        body = {
            "scene_id": msg.scene_id, "mesh_url": msg.mesh_url, "mesh_sha256": msg.mesh_sha256,
            "n_vertices": msg.n_vertices,
            "seams": [{"seam_id": s.seam_id, "region": s.region, "robot_id": s.robot_id,
                       "points_vehicle_m": _arr(s.points_vehicle_m, "<f4", j)} for s in msg.seams],
            "markers": [{"marker_id": m.marker_id, "kind": m.kind, "size_m": float(m.size_m),
                         "T_cell_marker": _arr(m.T_cell_marker, "<f8", j)} for m in msg.markers],
            "rig": {"name": msg.rig.name,
                    "cameras": [{"camera_id": c.camera_id, "width_px": c.width_px, "height_px": c.height_px,
                                 "rgbd": c.rgbd, "T_cell_cam": _arr(c.T_cell_cam, "<f8", j)} for c in msg.rig.cameras],
                    "conveyor_axis_cell": [float(x) for x in msg.rig.conveyor_axis_cell],
                    "speed_mps": float(msg.rig.speed_mps)},
        }
    elif isinstance(msg, PassStart):
        body = {"vehicle_id": msg.vehicle_id, "scene_id": msg.scene_id, "start_ts_ns": msg.start_ts_ns}
    elif isinstance(msg, PassEnd):
        body = {"vehicle_id": msg.vehicle_id, "end_ts_ns": msg.end_ts_ns, "n_defects": msg.n_defects,
                "coverage": float(msg.coverage), "seam_coverage": _fmap(msg.seam_coverage)}
    elif isinstance(msg, Pose):
        body = {"vehicle_id": msg.vehicle_id, "capture_ts_ns": msg.capture_ts_ns,
                "T_cell_vehicle": _arr(msg.T_cell_vehicle, "<f8", j),
                "velocity_cell_mps": [float(x) for x in msg.velocity_cell_mps], "s_m": float(msg.s_m)}
    elif isinstance(msg, Heatmap):
        body = {"vehicle_id": msg.vehicle_id, "capture_ts_ns": msg.capture_ts_ns, "n_vertices": msg.n_vertices,
                "mode": msg.mode, "values": _arr(msg.values, "<u1", j),
                "indices": None if msg.indices is None else _arr(msg.indices, "<u4", j)}
    elif isinstance(msg, Defects):
        body = {"vehicle_id": msg.vehicle_id, "capture_ts_ns": msg.capture_ts_ns, "mode": msg.mode,
                "defects": [_defect_wire(d) for d in msg.defects], "removed": list(msg.removed)}
    elif isinstance(msg, Alert):
        body = {"alert_id": msg.alert_id, "kind": msg.kind, "scope": msg.scope, "key": msg.key,
                "rate": float(msg.rate), "threshold": float(msg.threshold), "n_defective": msg.n_defective,
                "n_vehicles": msg.n_vehicles, "vehicle_id": msg.vehicle_id, "ts_ns": msg.ts_ns}
    elif isinstance(msg, Stats):
        body = {"ts_ns": msg.ts_ns, "latency_ms": _fmap(msg.latency_ms), "robot_rate": _fmap(msg.robot_rate),
                "seam_rate": _fmap(msg.seam_rate), "n_vehicles": msg.n_vehicles, "fps": float(msg.fps),
                "views": dict(msg.views)}
    else:
        body = {"defect_id": msg.defect_id, "vehicle_id": msg.vehicle_id, "status": msg.status,
                "operator_id": msg.operator_id, "ts_ns": msg.ts_ns, "comment": msg.comment}
    return head | body


def encode(msg: Message, fmt: Format = "msgpack") -> bytes:
    """Serialise a message. The result is validated by :func:`decode` rules first, so a sender
    can never emit what a receiver rejects; raises :class:`ProtocolError` when ``msg`` is invalid."""
    if fmt not in ("msgpack", "json"):
        raise ProtocolError(f"unknown format {fmt!r}")
    wire = to_wire(msg, json_mode=fmt == "json")
    try:
        from_wire(wire, json_mode=fmt == "json")
    except ProtocolError as e:
        raise ProtocolError(f"refusing to encode an invalid {TYPE_NAMES[type(msg)]}: {e}") from e
    except (TypeError, ValueError, OverflowError) as e:
        raise ProtocolError(f"refusing to encode an invalid message: {e}") from e
    if fmt == "json":
        return json.dumps(wire, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
    out: bytes = msgpack.packb(wire, use_bin_type=True)
    if len(out) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(out)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return out


# --- decoding ---------------------------------------------------------------------------------

def _no_constant(name: str) -> Any:
    raise ProtocolError(f"JSON constant {name} is not allowed")


def _depth(obj: Any, level: int = 0) -> None:
    if level > MAX_DEPTH:
        raise ProtocolError(f"message nests deeper than {MAX_DEPTH} levels")
    if isinstance(obj, dict):
        for v in obj.values():
            _depth(v, level + 1)
    elif isinstance(obj, list):
        for v in obj:
            _depth(v, level + 1)


def decode(data: bytes | bytearray | memoryview, fmt: Format = "msgpack") -> Message:
    """Parse and validate one message. Raises :class:`ProtocolError` on any violation (never anything else)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        if fmt == "msgpack":
            obj = msgpack.unpackb(
                bytes(data), raw=False, strict_map_key=True, use_list=True,
                max_ext_len=0, max_array_len=MAX_SEAM_POINTS, max_map_len=MAX_MAP_ENTRIES,
            )
        elif fmt == "json":
            obj = json.loads(bytes(data).decode("utf-8"), parse_constant=_no_constant)
        else:
            raise ProtocolError(f"unknown format {fmt!r}")
    except ProtocolError:
        raise
    except RecursionError as e:
        raise ProtocolError("message nests too deeply") from e
    except Exception as e:  # msgpack/json raise many types for bad bytes; all mean "not a message"
        raise ProtocolError(f"not a valid {fmt} document: {type(e).__name__}: {e}") from e
    _depth(obj)
    return from_wire(obj, json_mode=fmt == "json")


def _defect(v: Any, path: str, json_mode: bool) -> Defect:
    m = WireMap(v, path, json_mode)
    defect_id = m.str_("defect_id", ID)
    vehicle_id = m.opt_str("vehicle_id", ID)
    status = m.enum("status", DEFECT_STATUSES)
    centroid = m.vec3("centroid_vehicle_m")
    normal = m.vec3("normal_vehicle")
    extent = m.vec3("extent_mm")
    area = m.float_("area_mm2", 0.0, 1e9)
    peak = m.float_("peak_score", 0.0, 1.0)
    mean = m.float_("mean_score", 0.0, 1.0)
    unc = m.float_("uncertainty", 0.0, 1e3)
    seam_id = m.opt_str("seam_id", ID)
    s_raw = m.raw("s_mm")
    s_mm = None if s_raw is None else read_float(s_raw, f"{path}.s_mm", 0.0, 1e7)
    out = Defect(
        defect_id, vehicle_id, status, centroid, normal, extent, area, peak, mean, unc, seam_id, s_mm,
        m.opt_str("robot_id", ID), m.list_("views", MAX_CAMERAS, id_item), m.int_("first_seen_ts_ns"),
        m.int_("last_seen_ts_ns"), m.int_("n_updates", 0, 2**31 - 1),
    )
    m.done()
    return out


def from_wire(obj: Any, json_mode: bool = False) -> Message:
    """Validate a decoded map and build its message. Raises :class:`ProtocolError` on any violation."""
    m = WireMap(obj, "", json_mode)
    version = m.int_("v", 0, 2**31 - 1)
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(f"v: protocol version {version} is not supported (supported: {list(SUPPORTED_VERSIONS)})")
    kind = m.str_("type")
    if kind not in MESSAGE_TYPES:
        raise ProtocolError(f"type: unknown message type {kind!r}")
    seq = m.int_("seq", 0, UINT64_MAX)
    j = json_mode
    msg: Message
    if kind == "hello":
        msg = Hello(m.str_("client_name"), m.enum("role", ROLES),
                    m.list_("versions", 16, lambda x, p: int_item(x, p, 0, 2**31 - 1)), seq)
        if not msg.versions:
            raise ProtocolError("versions: must name at least one version")
    elif kind == "welcome":
        msg = Welcome(m.str_("session_id", ID), m.int_("version", 0, 2**31 - 1), m.str_("server_name"),
                      m.int_("server_ts_ns"), seq)
    elif kind == "scene":
        msg = _scene(m, seq)
    elif kind == "pass_start":
        msg = PassStart(m.str_("vehicle_id", ID), m.str_("scene_id", ID), m.int_("start_ts_ns"), seq)
    elif kind == "pass_end":
        msg = PassEnd(m.str_("vehicle_id", ID), m.int_("end_ts_ns"), m.int_("n_defects", 0, MAX_DEFECTS),
                      m.float_("coverage", 0.0, 1.0), m.fmap("seam_coverage", 0.0, 1.0), seq)
    elif kind == "pose":
        msg = Pose(m.str_("vehicle_id", ID), m.int_("capture_ts_ns"),
                   rigid(m.array("T_cell_vehicle", "<f8", (4, 4)), "T_cell_vehicle"),
                   m.vec3("velocity_cell_mps"), m.float_("s_m", -1e6, 1e6), seq)
    elif kind == "heatmap":
        msg = _heatmap(m, seq)
    elif kind == "defects":
        mode = m.enum("mode", ("full", "delta"))
        defects = m.list_("defects", MAX_DEFECTS, lambda x, p: _defect(x, p, j))
        removed = m.list_("removed", MAX_DEFECTS, id_item)
        if mode == "full" and removed:
            raise ProtocolError("removed: must be empty when mode is 'full'")
        ids = [d.defect_id for d in defects] + list(removed)
        if len(set(ids)) != len(ids):
            raise ProtocolError("defects/removed: duplicate defect ids")
        msg = Defects(m.str_("vehicle_id", ID), m.int_("capture_ts_ns"), mode, defects, removed, seq)
    elif kind == "alert":
        msg = Alert(m.str_("alert_id", ID), m.enum("kind", ("raised", "cleared")), m.enum("scope", ("robot", "seam")),
                    m.str_("key", ID), m.float_("rate", 0.0, 1.0), m.float_("threshold", 0.0, 1.0),
                    m.int_("n_defective", 0, 2**31 - 1), m.int_("n_vehicles", 0, 2**31 - 1), m.str_("vehicle_id", ID),
                    m.int_("ts_ns"), seq)
        if msg.n_defective > msg.n_vehicles:
            raise ProtocolError("n_defective: exceeds n_vehicles")
    elif kind == "stats":
        msg = Stats(m.int_("ts_ns"), m.fmap("latency_ms", 0.0, 1e9), m.fmap("robot_rate", 0.0, 1.0),
                    m.fmap("seam_rate", 0.0, 1.0), m.int_("n_vehicles", 0, 2**31 - 1), m.float_("fps", 0.0, 1e6), seq,
                    m.smap("views", VIEW_STATES))
    else:
        msg = Feedback(m.str_("defect_id", ID), m.str_("vehicle_id", ID), m.enum("status", DEFECT_STATUSES),
                       m.str_("operator_id", ID), m.int_("ts_ns"), m.str_("comment", None, MAX_COMMENT_LEN), seq)
    m.done()
    return msg


def _scene(m: WireMap, seq: int) -> Scene:
    j = m.json

    def seam(v: Any, p: str) -> SeamInfo:
        s = WireMap(v, p, j)
        out = SeamInfo(s.str_("seam_id", ID), s.enum("region", ("front", "centre", "back")), s.str_("robot_id", ID),
                       s.array("points_vehicle_m", "<f4", (None, 3), 3 * MAX_SEAM_POINTS))
        s.done()
        return out

    def marker(v: Any, p: str) -> MarkerInfo:
        s = WireMap(v, p, j)
        out = MarkerInfo(s.str_("marker_id", ID), s.enum("kind", ("qr", "aruco")), s.float_("size_m", 1e-4, 10.0),
                         rigid(s.array("T_cell_marker", "<f8", (4, 4)), f"{p}.T_cell_marker"))
        s.done()
        return out

    def camera(v: Any, p: str) -> CameraInfo:
        s = WireMap(v, p, j)
        out = CameraInfo(s.str_("camera_id", ID), s.int_("width_px", 1, 65535), s.int_("height_px", 1, 65535),
                         s.bool_("rgbd"), rigid(s.array("T_cell_cam", "<f8", (4, 4)), f"{p}.T_cell_cam"))
        s.done()
        return out

    r = WireMap(m.raw("rig"), "rig", j)
    rig = RigInfo(r.str_("name"), r.list_("cameras", MAX_CAMERAS, camera), r.vec3("conveyor_axis_cell"),
                  r.float_("speed_mps", 0.0, 100.0))
    r.done()
    return Scene(m.str_("scene_id", ID), m.str_("mesh_url", None, 2048), m.str_("mesh_sha256", _SHA),
                 m.int_("n_vertices", 0, MAX_ARRAY_ELEMENTS), m.list_("seams", MAX_SEAMS, seam),
                 m.list_("markers", MAX_MARKERS, marker), rig, seq)


def _heatmap(m: WireMap, seq: int) -> Heatmap:
    n = m.int_("n_vertices", 0, MAX_ARRAY_ELEMENTS)
    mode = m.enum("mode", ("full", "delta"))
    values = m.array("values", "<u1", (None,))
    raw_idx = m.raw("indices")
    if mode == "full":
        if raw_idx is not None:
            raise ProtocolError("indices: must be null when mode is 'full'")
        if len(values) != n:
            raise ProtocolError(f"values: {len(values)} entries, expected n_vertices = {n}")
        indices = None
    else:
        raw = read_array(raw_idx, "indices", "<u4", (None,), MAX_ARRAY_ELEMENTS, m.json)
        indices = cast(npt.NDArray[np.uint32], raw)
        if len(indices) != len(values):
            raise ProtocolError("indices: must have as many entries as values")
        if len(indices) and (int(indices[-1]) >= n or np.any(np.diff(indices.astype(np.int64)) <= 0)):
            raise ProtocolError("indices: must be strictly increasing and < n_vertices")
    return Heatmap(m.str_("vehicle_id", ID), m.int_("capture_ts_ns"), n, mode,
                   cast(npt.NDArray[np.uint8], values), indices, seq)
