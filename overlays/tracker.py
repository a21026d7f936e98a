"""Stable defect ids over a vehicle pass, with hysteresis so overlays do not flicker.

Each :meth:`DefectTracker.update` matches this snapshot's candidates to the tracks: first by
shared vertices (largest overlap wins), then by centroid distance within ``gate_mm``. A track
is *published* (sent to clients, id fixed for the pass) once it has been matched in
``confirm_hits`` snapshots, and withdrawn only after ``max_misses`` consecutive misses. An
unpublished track that misses once is forgotten. The returned :class:`DefectsDelta` lists what
clients must add, replace and remove; :meth:`DefectTracker.state` is the full current state.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from overlays.defect import DEFECT_STATUSES, Defect, DefectStatus
from overlays.errors import DefectError
from overlays.extract import DefectCandidate

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Hysteresis and matching. ``min_change_*``: below these a published defect is not re-sent."""

    confirm_hits: int = 2
    max_misses: int = 3
    gate_mm: float = 25.0
    min_change_mm: float = 1.0
    min_change_score: float = 0.02
    min_change_area_ratio: float = 0.05

    def __post_init__(self) -> None:
        if self.confirm_hits < 1 or self.max_misses < 1 or self.gate_mm < 0:
            raise DefectError("need confirm_hits >= 1, max_misses >= 1 and gate_mm >= 0")


@dataclass(frozen=True, slots=True)
class DefectsDelta:
    """Changes of one update: new defects, replaced records, withdrawn ids."""

    vehicle_id: str | None
    capture_ts_ns: int
    added: tuple[Defect, ...] = ()
    updated: tuple[Defect, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.updated or self.removed)


class _Track:
    __slots__ = ("candidate", "defect_id", "first_ts_ns", "hits", "last_sent", "last_ts_ns", "misses", "status")

    def __init__(self, defect_id: str, candidate: DefectCandidate, ts_ns: int) -> None:
        self.defect_id = defect_id
        self.candidate = candidate
        self.hits = 1
        self.misses = 0
        self.first_ts_ns = ts_ns
        self.last_ts_ns = ts_ns
        self.status: DefectStatus = "open"
        self.last_sent: Defect | None = None


class DefectTracker:
    """Per-pass tracker for one mesh of ``n_vertices`` vertices."""

    def __init__(self, n_vertices: int, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._owner = np.full(n_vertices, -1, np.int64)
        self._tracks: dict[int, _Track] = {}
        self._next_key = 0
        self._next_number = 1
        self.vehicle_id: str | None = None

    def begin_pass(self, vehicle_id: str | None) -> None:
        """Forget all tracks; ids restart at 1 for the new vehicle."""
        self._owner.fill(-1)
        self._tracks.clear()
        self._next_number = 1
        self.vehicle_id = vehicle_id

    def _new_id(self) -> str:
        n = self._next_number
        self._next_number += 1
        return f"{self.vehicle_id}-D{n:03d}" if self.vehicle_id else f"D{n:03d}"

    def _record(self, t: _Track) -> Defect:
        c = t.candidate
        return Defect(
            defect_id=t.defect_id, vehicle_id=self.vehicle_id, status=t.status,
            centroid_vehicle_m=(float(c.centroid_vehicle_m[0]), float(c.centroid_vehicle_m[1]),
                                float(c.centroid_vehicle_m[2])),
            normal_vehicle=(float(c.normal_vehicle[0]), float(c.normal_vehicle[1]), float(c.normal_vehicle[2])),
            extent_mm=(float(c.extent_mm[0]), float(c.extent_mm[1]), float(c.extent_mm[2])),
            area_mm2=c.area_mm2, peak_score=c.peak_score, mean_score=c.mean_score, uncertainty=c.uncertainty,
            seam_id=c.seam_id, s_mm=c.s_mm, robot_id=c.robot_id, views=c.views,
            first_seen_ts_ns=t.first_ts_ns, last_seen_ts_ns=t.last_ts_ns, n_updates=t.hits,
        )

    def _changed(self, old: Defect, new: Defect) -> bool:
        cfg = self.config
        move_mm = 1000.0 * float(np.linalg.norm(np.subtract(old.centroid_vehicle_m, new.centroid_vehicle_m)))
        return (
            move_mm >= cfg.min_change_mm
            or abs(old.peak_score - new.peak_score) >= cfg.min_change_score
            or abs(old.mean_score - new.mean_score) >= cfg.min_change_score
            or abs(old.area_mm2 - new.area_mm2) >= cfg.min_change_area_ratio * max(old.area_mm2, 1e-9)
            or old.views != new.views or old.status != new.status or old.seam_id != new.seam_id
        )

    def update(self, candidates: Sequence[DefectCandidate], capture_ts_ns: int) -> DefectsDelta:
        """Match one snapshot's candidates (see the module docstring); returns what changed for clients."""
        cfg = self.config
        matched: dict[int, DefectCandidate] = {}
        unmatched: list[DefectCandidate] = []
        for c in sorted(candidates, key=lambda c: -c.peak_score):
            owners = self._owner[c.vertex_index]
            owners = owners[(owners >= 0)]
            best = -1
            if len(owners):
                keys, counts = np.unique(owners, return_counts=True)
                for j in np.argsort(-counts, kind="stable"):
                    if int(keys[j]) not in matched and int(keys[j]) in self._tracks:
                        best = int(keys[j])
                        break
            if best < 0:
                best = self._nearest_free(c, matched)
            if best >= 0:
                matched[best] = c
            else:
                unmatched.append(c)

        added: list[Defect] = []
        updated: list[Defect] = []
        removed: list[str] = []
        for key in list(self._tracks):
            t = self._tracks[key]
            if key in matched:
                t.candidate = matched[key]
                t.hits += 1
                t.misses = 0
                t.last_ts_ns = capture_ts_ns
            else:
                t.misses += 1
                if t.last_sent is None or t.misses >= cfg.max_misses:
                    if t.last_sent is not None:
                        removed.append(t.defect_id)
                        logger.debug("defect %s withdrawn after %d misses", t.defect_id, t.misses)
                    del self._tracks[key]
        for c in unmatched:
            key = self._next_key
            self._next_key += 1
            self._tracks[key] = _Track("", c, capture_ts_ns)
        for t in self._tracks.values():
            if t.hits < cfg.confirm_hits or t.misses:
                continue
            if t.last_sent is None:
                t.defect_id = self._new_id()
                t.last_sent = self._record(t)
                added.append(t.last_sent)
            else:
                rec = self._record(t)
                if self._changed(t.last_sent, rec):
                    t.last_sent = rec
                    updated.append(rec)
        self._owner.fill(-1)
        for key, t in self._tracks.items():
            if not t.misses:
                self._owner[t.candidate.vertex_index] = key
        return DefectsDelta(self.vehicle_id, capture_ts_ns, tuple(added), tuple(updated), tuple(removed))

    def _nearest_free(self, c: DefectCandidate, matched: dict[int, DefectCandidate]) -> int:
        best, best_d = -1, self.config.gate_mm / 1000.0
        for key, t in self._tracks.items():
            if key in matched:
                continue
            d = float(np.linalg.norm(t.candidate.centroid_vehicle_m - c.centroid_vehicle_m))
            if d <= best_d:
                best, best_d = key, d
        return best

    def state(self) -> tuple[Defect, ...]:
        """Every published defect, as last sent (the full state for a client that joins now)."""
        return tuple(t.last_sent for t in self._tracks.values() if t.last_sent is not None)

    def apply_feedback(self, defect_id: str, status: DefectStatus) -> Defect:
        """An operator changed a defect's status; returns the new record to broadcast.

        Raises :class:`DefectError` for an unknown id or status.
        """
        if status not in DEFECT_STATUSES:
            raise DefectError(f"unknown status {status!r}; use one of {DEFECT_STATUSES}")
        for t in self._tracks.values():
            if t.last_sent is not None and t.defect_id == defect_id:
                t.status = status
                t.last_sent = replace(t.last_sent, status=status)
                return t.last_sent
        raise DefectError(f"unknown defect id {defect_id!r}")

    @property
    def owner(self) -> npt.NDArray[np.int64]:
        """Track key per vertex (-1 none); read-only view for diagnostics."""
        v = self._owner.view()
        v.flags.writeable = False
        return v
