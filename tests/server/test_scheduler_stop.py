"""The scheduler stops when the server stops, even when a frame set's wake-up lands in the same loop turn.

The race behind a rare shutdown hang: on Python 3.11, ``asyncio.wait_for`` returns the inner result
and drops a cancellation that arrives just after the inner awaitable finished (CPython bpo-42130,
fixed in 3.12). A scheduler waiting for frames that way kept looping after ``stop()`` cancelled it,
and ``stop()`` waited for it forever: the server never finished shutting down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from pipeline.frames import Frame
from xrserver.analyzer import DiagnosticAnalyzer
from xrserver.hub import Hub
from xrserver.metrics import Metrics
from xrserver.records import RecordStore
from xrserver.scheduler import Scheduler
from xrserver.sync import FrameSync
from xrserver.testing import scaled
from xrserver.workers import Workers

MS = 1_000_000


async def test_stop_lands_as_a_frame_wakes_the_scheduler(tmp_path: Path) -> None:
    sync = FrameSync(("lower",), tolerance_ns=30 * MS, stale_after_ns=500 * MS)
    workers = Workers()
    records = RecordStore(tmp_path / "records.db")
    scheduler = Scheduler(sync, DiagnosticAnalyzer(), workers, Hub(), Metrics(), records)
    try:
        for attempt in range(20):  # the same race, repeated
            scheduler.start()
            await asyncio.sleep(0.01)  # the scheduler waits for frames
            scheduler.notify()  # a frame arrived (nothing to take: the wake-up alone)...
            await asyncio.sleep(0)  # ...its wait finishes...
            stopping = asyncio.create_task(scheduler.stop())  # ...and the server stops in the same turn
            done, _ = await asyncio.wait({stopping}, timeout=scaled(5))
            assert done, f"the scheduler kept running after stop() (attempt {attempt})"
            stopping.result()
        # and with a frame set to take: stop() lands while it is being analysed
        sync.put(Frame("lower", np.zeros((48, 64, 3), np.uint8), 1_000 * MS, 0))
        scheduler.start()
        scheduler.notify()
        await asyncio.sleep(0)
        await asyncio.wait_for(scheduler.stop(), scaled(5))
    finally:
        records.close()
        await workers.aclose()
