"""Frame-set synchronisation and camera health, sans-I/O (no asyncio; times are arguments).

:class:`FrameSync` keeps ONE slot per camera (latest-wins: a newer frame replaces an unread one,
which is counted as dropped), and :meth:`FrameSync.take` groups the freshest frames whose
capture times lie within ``tolerance_ns`` of the newest into a :class:`~pipeline.frames.FrameSet`.
Because every slot holds one frame, a slow consumer skips frames instead of building latency.

:class:`CameraHealth` tracks per camera the frame rate, the age of the last frame and the
state: ``up``, ``degraded`` (no frame for ``stale_after_ns``, or reconnecting) or ``ended``
(a finite source ran out). Views that are not ``up`` are left out of frame sets and reported.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from overlays.messages import ViewState
from pipeline.frames import Frame, FrameSet

log = logging.getLogger(__name__)

CameraState = ViewState  # the protocol's view states (stats.views)


@dataclass(frozen=True, slots=True)
class CameraStatus:
    camera_id: str
    state: CameraState
    fps: float
    last_frame_age_s: float | None
    frames: int
    dropped: int
    reconnects: int
    error: str | None


class CameraHealth:
    """Health of one camera. Feed it :meth:`on_frame`, :meth:`on_error`, :meth:`on_end`."""

    def __init__(self, camera_id: str, stale_after_ns: int, window: int = 30) -> None:
        self.camera_id = camera_id
        self.stale_after_ns = stale_after_ns
        self._times: deque[int] = deque(maxlen=window)
        self.frames = 0
        self.dropped = 0
        self.reconnects = 0
        self.error: str | None = None
        self._ended = False
        self._failing = False

    def on_frame(self, capture_ts_ns: int) -> None:
        self._times.append(capture_ts_ns)
        self.frames += 1
        self._failing = False
        self.error = None

    def on_error(self, message: str) -> None:
        self._failing = True
        self.error = message

    def on_reconnect(self) -> None:
        self.reconnects += 1

    def on_end(self) -> None:
        self._ended = True

    def fps(self, now_ns: int) -> float:
        t = self._times
        if len(t) < 2 or now_ns - t[-1] > self.stale_after_ns:
            return 0.0
        return (len(t) - 1) * 1e9 / max(t[-1] - t[0], 1)

    def state(self, now_ns: int) -> CameraState:
        if self._ended:
            return "ended"
        if not self._times:
            return "degraded" if self._failing else "starting"
        if self._failing or now_ns - self._times[-1] > self.stale_after_ns:
            return "degraded"
        return "up"

    def status(self, now_ns: int) -> CameraStatus:
        age = (now_ns - self._times[-1]) / 1e9 if self._times else None
        return CameraStatus(self.camera_id, self.state(now_ns), round(self.fps(now_ns), 2),
                            None if age is None else round(age, 3), self.frames, self.dropped, self.reconnects,
                            self.error)


@dataclass(frozen=True, slots=True, eq=False)
class _Slot:
    frame: Frame
    T_cell_vehicle: npt.NDArray[np.float64] | None
    vehicle_id: str | None
    s_m: float | None


@dataclass(frozen=True, slots=True, eq=False)
class SyncedSet:
    """A frame set, the conveyor travel when known, and the views left out of it."""

    frameset: FrameSet
    s_m: float | None
    missing_views: tuple[str, ...]


class FrameSync:
    """Latest-wins slots per camera; frame sets by capture time within ``tolerance_ns``."""

    def __init__(self, camera_ids: tuple[str, ...], tolerance_ns: int, stale_after_ns: int) -> None:
        self.camera_ids = camera_ids
        self.tolerance_ns = tolerance_ns
        self.health = {c: CameraHealth(c, stale_after_ns) for c in camera_ids}
        self._slots: dict[str, _Slot] = {}
        self._seq = 0
        self.sets_made = 0

    def put(self, frame: Frame, T_cell_vehicle: npt.NDArray[np.float64] | None = None,
            vehicle_id: str | None = None, s_m: float | None = None) -> None:
        """Store the newest frame of a camera; an unread older one is dropped (and counted)."""
        cid = frame.camera_id
        if cid not in self.health:
            raise KeyError(f"unknown camera {cid!r}")
        if cid in self._slots:
            self.health[cid].dropped += 1
        self._slots[cid] = _Slot(frame, T_cell_vehicle, vehicle_id, s_m)
        self.health[cid].on_frame(frame.capture_ts_ns)

    def pending(self) -> int:
        return len(self._slots)

    def take(self, now_ns: int) -> SyncedSet | None:
        """The freshest frames of healthy views within tolerance of the newest, or None if none is new.

        Frames older than the tolerance window are discarded (counted as dropped): a newer frame
        of that camera will come, and waiting for it would add latency.
        """
        live = {c: s for c, s in self._slots.items() if self.health[c].state(now_ns) in ("up", "starting")}
        if not live:
            return None
        newest = max(s.frame.capture_ts_ns for s in live.values())
        chosen = [s for s in live.values() if newest - s.frame.capture_ts_ns <= self.tolerance_ns]
        for c, s in list(self._slots.items()):
            if s not in chosen and newest - s.frame.capture_ts_ns > self.tolerance_ns:
                self.health[c].dropped += 1
                del self._slots[c]
        for s in chosen:
            del self._slots[s.frame.camera_id]
        chosen.sort(key=lambda s: self.camera_ids.index(s.frame.camera_id))
        meta = next((s for s in chosen if s.T_cell_vehicle is not None or s.vehicle_id is not None), None)
        self._seq += 1
        self.sets_made += 1
        ts = min(s.frame.capture_ts_ns for s in chosen)  # the set is as old as its oldest view
        fs = FrameSet(self._seq, ts, tuple(s.frame for s in chosen),
                      None if meta is None else meta.T_cell_vehicle, None if meta is None else meta.vehicle_id)
        present = {s.frame.camera_id for s in chosen}
        missing = tuple(c for c in self.camera_ids if c not in present)
        return SyncedSet(fs, None if meta is None else meta.s_m, missing)

    def degraded(self, now_ns: int) -> tuple[str, ...]:
        """Views that are not delivering: reconnecting, stale or ended."""
        return tuple(c for c, h in self.health.items() if h.state(now_ns) in ("degraded", "ended"))

    def statuses(self, now_ns: int) -> list[CameraStatus]:
        return [h.status(now_ns) for h in self.health.values()]
