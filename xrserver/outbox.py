"""A client's bounded outgoing queue with a declared policy per channel.

===========  ===========  ===========================================================
channel      policy       on a slow client
===========  ===========  ===========================================================
pose         latest-wins  an unsent pose is replaced by the newer one (counted)
heatmap      latest-wins  same; the hub sends full heatmaps, so none depends on another
stats        latest-wins  same
passes       state        FIFO up to ``state_limit``; past it the queue is coalesced:
defects      state        the pending state messages are replaced by one snapshot of
alerts       state        the current full state (pass, all defects, active alerts)
===========  ===========  ===========================================================

State is therefore never lost: a client either receives every state message in order or a
snapshot that contains their effect. A snapshot also carries the newest pose, heatmap and stats,
so latest-wins messages queued before it are dropped, and no message reaches a client twice.
The queue never blocks the producer (the pipeline).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Literal

log = logging.getLogger(__name__)

Channel = Literal["pose", "heatmap", "stats", "passes", "defects", "alerts"]
CHANNELS: tuple[Channel, ...] = ("pose", "heatmap", "stats", "passes", "defects", "alerts")
LATEST_CHANNELS: frozenset[Channel] = frozenset({"pose", "heatmap", "stats"})
STATE_CHANNELS: frozenset[Channel] = frozenset({"passes", "defects", "alerts"})

#: An encoded message and the capture time it derives from (0: none), to measure send latency.
Wire = tuple[bytes, int]
#: Builds the encoded full state for a set of channels (run on the loop, must be quick).
Snapshot = Callable[[frozenset[Channel]], list[Wire]]


class Outbox:
    """Per-client queue: put_* never block; :meth:`get` waits for the next batch to send."""

    def __init__(self, channels: frozenset[Channel], snapshot: Snapshot, state_limit: int = 64) -> None:
        self.channels = channels
        self._snapshot = snapshot
        self.state_limit = state_limit
        self._latest: dict[Channel, Wire] = {}
        self._state: deque[Wire] = deque()
        self._resync = True  # a new client starts with the full current state
        self._wake = asyncio.Event()
        self._wake.set()
        self.replaced = 0
        self.coalesced = 0
        self.closed = False

    def put(self, channel: Channel, data: bytes, capture_ts_ns: int = 0) -> None:
        """Queue an encoded message of ``channel`` (ignored if the client did not subscribe)."""
        item = (data, capture_ts_ns)
        if channel not in self.channels or self.closed:
            return
        if channel in LATEST_CHANNELS:
            if channel in self._latest:
                self.replaced += 1
            self._latest[channel] = item
        elif not self._resync:
            if len(self._state) >= self.state_limit:
                self.coalesced += len(self._state)
                self._state.clear()
                self._resync = True
            else:
                self._state.append(item)
        self._wake.set()

    def pending(self) -> int:
        return len(self._latest) + len(self._state) + int(self._resync)

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def get(self) -> list[Wire]:
        """The next messages to send, in order: a snapshot (if due) or queued state, then the
        latest of each latest-wins channel. Empty when the outbox was closed."""
        while True:
            while not self.closed and not self.pending():
                self._wake.clear()
                await self._wake.wait()
            if self.closed:
                return []
            out: list[Wire] = []
            if self._resync:
                # the snapshot is built now, so it already holds the newest of every latest-wins channel:
                # what waits in _latest is that same message (or an older one) and would arrive twice
                self._resync = False
                self._state.clear()
                self.replaced += len(self._latest)
                self._latest.clear()
                out.extend(self._snapshot(self.channels))
            out.extend(self._state)
            self._state.clear()
            for ch in CHANNELS:
                item = self._latest.pop(ch, None)
                if item is not None:
                    out.append(item)
            if out:  # an empty snapshot (nothing happened yet) is not a batch
                return out
