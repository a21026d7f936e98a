"""Build protocol messages from pipeline results: scene, pose, heatmaps (full/delta), defects, alerts.

:class:`HeatmapEncoder` keeps what each stream last sent so it can send only changed vertices.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from calibration.rig import Rig
from calibration.underbody import UnderbodyModel
from overlays.alerts import AlertEvent
from overlays.defect import Defect
from overlays.errors import ProtocolError
from overlays.messages import (
    Alert,
    CameraInfo,
    Defects,
    Heatmap,
    MarkerInfo,
    Pose,
    RigInfo,
    Scene,
    SeamInfo,
)
from overlays.tracker import DefectsDelta

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


def quantize_scores(score: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    """Scores in [0, 1] -> u8 codes ``round(255 * score)``; decode with ``code / 255``."""
    q: npt.NDArray[np.uint8] = np.rint(np.clip(score, 0.0, 1.0) * 255.0).astype(np.uint8)
    return q


class HeatmapEncoder:
    """Full or delta heatmap messages for one stream. ``full_every``: send a full set at least this often."""

    def __init__(self, n_vertices: int, full_every: int = 50, min_step: int = 1) -> None:
        if n_vertices < 0 or full_every < 1 or min_step < 1:
            raise ProtocolError("HeatmapEncoder needs n_vertices >= 0, full_every >= 1, min_step >= 1")
        self.n_vertices = n_vertices
        self.full_every = full_every
        self.min_step = min_step
        self._last: npt.NDArray[np.uint8] | None = None
        self._since_full = 0

    def reset(self) -> None:
        """The next message is a full set (new pass, or a client joined)."""
        self._last = None

    def encode(self, vehicle_id: str, capture_ts_ns: int, score: npt.NDArray[np.floating], seq: int = 0) -> Heatmap:
        """A message for ``score`` (V,): full when due, else the vertices whose code moved by >= ``min_step``."""
        if score.shape != (self.n_vertices,):
            raise ProtocolError(f"heatmap has {score.shape} scores, the scene {self.n_vertices} vertices")
        q = quantize_scores(score)
        if self._last is None or self._since_full + 1 >= self.full_every:
            self._last = q
            self._since_full = 0
            return Heatmap(vehicle_id, capture_ts_ns, self.n_vertices, "full", q, None, seq)
        changed = np.flatnonzero(np.abs(q.astype(np.int16) - self._last.astype(np.int16)) >= self.min_step)
        self._last[changed] = q[changed]
        self._since_full += 1
        return Heatmap(vehicle_id, capture_ts_ns, self.n_vertices, "delta", q[changed], changed.astype(np.uint32), seq)


def apply_heatmap(current: npt.NDArray[np.uint8] | None, msg: Heatmap) -> npt.NDArray[np.uint8]:
    """What a client does with a heatmap message: the new u8 codes per vertex.

    Raises :class:`ProtocolError` for a delta without a base of the right size.
    """
    if msg.mode == "full":
        return msg.values.copy()
    if current is None or current.shape != (msg.n_vertices,) or msg.indices is None:
        raise ProtocolError("heatmap delta without a matching full set")
    out = current.copy()
    out[msg.indices] = msg.values
    return out


def scene_message(
    scene_id: str, mesh_url: str, model: UnderbodyModel, rig: Rig, mesh_sha256: str = "", seq: int = 0,
) -> Scene:
    """The scene a client needs: mesh reference, seams (polylines), markers and a rig summary."""
    seams = tuple(SeamInfo(s.seam_id, s.region, s.robot_id, s.points_vehicle_m.astype(np.float32))
                  for s in model.seams)
    markers = tuple(MarkerInfo(m.marker_id, m.kind, float(m.size_m), np.asarray(m.T_cell_marker, np.float64))
                    for m in rig.markers)
    cams = tuple(CameraInfo(c.camera_id, c.width_px, c.height_px, c.depth is not None, c.T_cell_cam)
                 for c in rig.cameras)
    ax = rig.conveyor.axis_cell
    rig_info = RigInfo(rig.name, cams, (float(ax[0]), float(ax[1]), float(ax[2])), float(rig.conveyor.speed_mps))
    return Scene(scene_id, mesh_url, mesh_sha256, len(model.vertices_vehicle_m), seams, markers, rig_info, seq)


def pose_message(vehicle_id: str, capture_ts_ns: int, rig: Rig, T_cell_vehicle: F64, s_m: float,
                 seq: int = 0) -> Pose:
    """Pose at capture time with the conveyor velocity, so clients can predict it at display time."""
    v = rig.conveyor.velocity_cell_mps()
    return Pose(vehicle_id, capture_ts_ns, np.asarray(T_cell_vehicle, np.float64),
                (float(v[0]), float(v[1]), float(v[2])), float(s_m), seq)


def defects_message(delta: DefectsDelta, seq: int = 0) -> Defects:
    """A delta message: added and updated records (clients replace by id) and removed ids."""
    return Defects(delta.vehicle_id or "unknown", delta.capture_ts_ns, "delta", delta.added + delta.updated,
                   delta.removed, seq)


def defects_full_message(vehicle_id: str, capture_ts_ns: int, defects: Sequence[Defect], seq: int = 0) -> Defects:
    """The full state (for a client that joins or reconnects)."""
    return Defects(vehicle_id, capture_ts_ns, "full", tuple(defects), (), seq)


def alert_message(ev: AlertEvent, seq: int = 0) -> Alert:
    return Alert(ev.alert_id, ev.kind, ev.scope, ev.key, ev.rate, ev.threshold, ev.n_defective, ev.n_vehicles,
                 ev.vehicle_id, ev.ts_ns, seq)
