"""Per-robot and per-seam defect rates over a sliding window of vehicles, and alert events.

The rate of a robot (or seam) is the fraction of the last ``window_vehicles`` vehicles that had
at least one defect attributed to it (rejected defects do not count). An alert is *raised* when
the rate reaches ``rate_threshold`` (>=, with at least ``min_vehicles`` in the window) and is
*cleared* when it falls below ``clear_ratio * rate_threshold``, so it does not chatter.
These are the paper's "automatic warnings" to the sealing cell.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from overlays.defect import Defect
from overlays.errors import DefectError

logger = logging.getLogger(__name__)

AlertScope = Literal["robot", "seam"]
AlertKind = Literal["raised", "cleared"]


@dataclass(frozen=True, slots=True)
class AlertConfig:
    window_vehicles: int = 20
    rate_threshold: float = 0.25
    min_vehicles: int = 5
    clear_ratio: float = 0.8

    def __post_init__(self) -> None:
        if not (self.window_vehicles >= 1 and 1 <= self.min_vehicles <= self.window_vehicles):
            raise DefectError("need window_vehicles >= 1 and 1 <= min_vehicles <= window_vehicles")
        if not (0.0 < self.rate_threshold <= 1.0 and 0.0 < self.clear_ratio <= 1.0):
            raise DefectError("rate_threshold and clear_ratio must lie in (0, 1]")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A rate crossed its threshold. ``rate`` = ``n_defective / n_vehicles`` over the window."""

    alert_id: str
    kind: AlertKind
    scope: AlertScope
    key: str
    rate: float
    threshold: float
    n_defective: int
    n_vehicles: int
    vehicle_id: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class RateStats:
    """Rates of every known robot and seam over the current window."""

    n_vehicles: int
    robot_rate: dict[str, float]
    seam_rate: dict[str, float]
    active_alerts: tuple[str, ...]


class AlertMonitor:
    """Feed it each finished vehicle with :meth:`record_vehicle`; it returns the alert events."""

    def __init__(self, robots: Iterable[str], seam_ids: Iterable[str], config: AlertConfig | None = None) -> None:
        self.config = config or AlertConfig()
        self._keys: dict[AlertScope, tuple[str, ...]] = {"robot": tuple(sorted(set(robots))),
                                                         "seam": tuple(sorted(set(seam_ids)))}
        self._window: deque[tuple[frozenset[str], frozenset[str]]] = deque(maxlen=self.config.window_vehicles)
        self._active: dict[tuple[AlertScope, str], str] = {}
        self._n_alerts = 0

    def _rate(self, scope: AlertScope, key: str) -> tuple[float, int]:
        k = 0 if scope == "robot" else 1
        n_bad = sum(1 for entry in self._window if key in entry[k])
        return (n_bad / len(self._window) if self._window else 0.0), n_bad

    def record_vehicle(self, vehicle_id: str, defects: Sequence[Defect], ts_ns: int = 0) -> list[AlertEvent]:
        """Add one vehicle's final defects to the window; returns raised/cleared events (possibly none)."""
        live = [d for d in defects if d.status != "rejected"]
        robots = frozenset(d.robot_id for d in live if d.robot_id)
        seams = frozenset(d.seam_id for d in live if d.seam_id)
        for key in robots - set(self._keys["robot"]):
            self._keys["robot"] = (*self._keys["robot"], key)
        for key in seams - set(self._keys["seam"]):
            self._keys["seam"] = (*self._keys["seam"], key)
        self._window.append((robots, seams))
        cfg = self.config
        events: list[AlertEvent] = []
        for scope in ("robot", "seam"):
            for key in self._keys[scope]:
                rate, n_bad = self._rate(scope, key)
                active = (scope, key) in self._active
                if not active and len(self._window) >= cfg.min_vehicles and rate >= cfg.rate_threshold:
                    self._n_alerts += 1
                    alert_id = f"A{self._n_alerts:05d}"
                    self._active[(scope, key)] = alert_id
                    kind: AlertKind = "raised"
                elif active and rate < cfg.clear_ratio * cfg.rate_threshold:
                    alert_id = self._active.pop((scope, key))
                    kind = "cleared"
                else:
                    continue
                ev = AlertEvent(alert_id, kind, scope, key, rate, cfg.rate_threshold, n_bad, len(self._window),
                                vehicle_id, ts_ns)
                logger.info("alert %s %s: %s %s at rate %.2f", alert_id, kind, scope, key, rate)
                events.append(ev)
        return events

    def stats(self) -> RateStats:
        """Current rates of every robot and seam, and the ids of the active alerts."""
        return RateStats(
            n_vehicles=len(self._window),
            robot_rate={k: self._rate("robot", k)[0] for k in self._keys["robot"]},
            seam_rate={k: self._rate("seam", k)[0] for k in self._keys["seam"]},
            active_alerts=tuple(self._active.values()),
        )
