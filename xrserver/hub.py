"""The broadcast hub: the current state for late joiners and one :class:`Outbox` per client.

The scheduler publishes encoded messages here (on the loop, without blocking); each client's
sender task drains its own outbox, so a stalled client only ever delays itself. The hub keeps
the current pass, its last (full) heatmap, the full defect state, the active alerts, and the last
pose and stats, which is what a client that (re)connects receives at once.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

from overlays.codec import encode
from overlays.defect import Defect
from overlays.messages import Alert, Defects, Message, PassStart
from xrserver.outbox import Channel, Outbox, Wire

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClientInfo:
    conn_id: str
    role: str
    client_name: str
    connected_ts_ns: int


class Hub:
    """Clients and the current state. Not thread-safe: used on the event loop only."""

    def __init__(self, state_limit: int = 64) -> None:
        self.state_limit = state_limit
        self.clients: dict[str, tuple[ClientInfo, Outbox]] = {}
        self._seq = itertools.count(1)
        self.pass_start: PassStart | None = None
        self.defects: dict[str, Defect] = {}
        self.defects_ts_ns = 0
        self.alerts: dict[str, Alert] = {}
        self._last: dict[Channel, Wire] = {}
        self._gone = (0, 0)  # (replaced, coalesced) of clients that left
        self.scene: bytes | None = None  # the encoded scene message; every client gets it first

    def next_seq(self) -> int:
        return next(self._seq)

    # --- clients ----------------------------------------------------------------------------
    def add(self, info: ClientInfo, channels: frozenset[Channel]) -> Outbox:
        box = Outbox(channels, self.snapshot, self.state_limit)
        self.clients[info.conn_id] = (info, box)
        return box

    def remove(self, conn_id: str) -> None:
        entry = self.clients.pop(conn_id, None)
        if entry is not None:
            entry[1].close()
            self._gone = (self._gone[0] + entry[1].replaced, self._gone[1] + entry[1].coalesced)

    # --- state --------------------------------------------------------------------------------
    def snapshot(self, channels: frozenset[Channel]) -> list[Wire]:
        """The encoded full current state for ``channels`` (a joining or lagging client), after the scene."""
        out: list[Wire] = [(self.scene, 0)] if self.scene is not None else []
        if "passes" in channels and self.pass_start is not None:
            out.append((encode(self.pass_start), 0))
        if "heatmap" in channels and "heatmap" in self._last:
            out.append(self._last["heatmap"])
        if "defects" in channels and self.pass_start is not None:
            full = Defects(self.pass_start.vehicle_id, self.defects_ts_ns, "full",
                           tuple(self.defects[k] for k in sorted(self.defects)), (), self.next_seq())
            out.append((encode(full), 0))
        if "alerts" in channels:
            out.extend((encode(a), 0) for a in self.alerts.values() if a.kind == "raised")
        for ch in ("pose", "stats"):
            if ch in channels and ch in self._last:
                out.append(self._last[ch])
        return out

    def publish(self, channel: Channel, msg: Message, data: bytes | None = None, capture_ts_ns: int = 0) -> None:
        """Update the state with ``msg`` and queue it (``data``: already encoded) to every client.

        ``capture_ts_ns``: the capture time the message derives from, for the send-latency metric."""
        if isinstance(msg, PassStart):
            self.pass_start = msg
            self.defects = {}
            self.defects_ts_ns = msg.start_ts_ns
            self._last.pop("heatmap", None)  # the last vehicle's
        elif isinstance(msg, Defects):
            if msg.mode == "full":
                self.defects = {d.defect_id: d for d in msg.defects}
            else:
                self.defects.update({d.defect_id: d for d in msg.defects})
                for k in msg.removed:
                    self.defects.pop(k, None)
            self.defects_ts_ns = msg.capture_ts_ns
        elif isinstance(msg, Alert):
            self.alerts[f"{msg.scope}:{msg.key}"] = msg
        wire = data if data is not None else encode(msg)
        if channel in ("pose", "heatmap", "stats"):
            self._last[channel] = (wire, 0)
        for _, box in self.clients.values():
            box.put(channel, wire, capture_ts_ns)

    def counters(self) -> tuple[int, int]:
        """Totals since start: (latest-wins replacements, coalesced state messages) over all clients."""
        boxes = [b for _, b in self.clients.values()]
        return (self._gone[0] + sum(b.replaced for b in boxes), self._gone[1] + sum(b.coalesced for b in boxes))

    def describe(self) -> list[dict[str, object]]:
        now = time.time_ns()
        return [{"conn_id": i.conn_id, "role": i.role, "client": i.client_name,
                 "connected_s": round((now - i.connected_ts_ns) / 1e9, 1), "queued": b.pending()}
                for i, b in self.clients.values()]
