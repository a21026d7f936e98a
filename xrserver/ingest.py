"""Ingest: one task per source paces it to its fps, reads it in a worker, and feeds the sync slots.

A source that fails to open or read is closed, marked degraded and reopened with exponential
backoff (``reconnect_min_s`` doubling to ``reconnect_max_s``); a finite source that ends is
marked ``ended``. Either way the other sources carry on and the pipeline runs on the remaining
views. Pacing uses the loop clock; no frame waits in a queue (the sync slot is latest-wins).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from xrserver.sources import Source
from xrserver.sync import FrameSync
from xrserver.workers import Workers

log = logging.getLogger(__name__)


class Ingest:
    """Runs the sources. ``on_frame`` is called (on the loop) after each capture is stored."""

    def __init__(self, sources: list[Source], sync: FrameSync, workers: Workers, on_frame: Callable[[], None],
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 10.0) -> None:
        self.sources = sources
        self.sync = sync
        self.workers = workers
        self.on_frame = on_frame
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for src in self.sources:
            self._tasks.append(asyncio.create_task(self._run(src), name=f"ingest:{src.name}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for src in self.sources:
            try:
                await self.workers.run("io", src.close)
            except Exception as e:
                log.warning("closing source %s failed: %s", src.name, e)

    def _mark(self, src: Source, error: str | None = None, ended: bool = False) -> None:
        for cid in src.camera_ids:
            h = self.sync.health[cid]
            if ended:
                h.on_end()
            elif error is not None:
                h.on_error(error)

    async def _run(self, src: Source) -> None:
        backoff = self.reconnect_min_s
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.workers.run("io", src.open)
                log.info("source %s open (%s)", src.name, ", ".join(src.camera_ids))
                next_t = loop.time()
                while True:
                    cap = await self.workers.run("io", src.read)
                    if cap is None:
                        log.warning("source %s ended; views %s are gone", src.name, list(src.camera_ids))
                        self._mark(src, ended=True)
                        self.on_frame()
                        return
                    for f in cap.frames:
                        self.sync.put(f, cap.T_cell_vehicle, cap.vehicle_id, cap.s_m)
                    backoff = self.reconnect_min_s
                    self.on_frame()
                    if src.fps:
                        next_t = max(next_t + 1.0 / src.fps, loop.time())
                        await asyncio.sleep(next_t - loop.time())
                    else:
                        await asyncio.sleep(0)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                msg = f"{type(e).__name__}: {e}"
                log.warning("source %s failed (%s); reopening in %.1f s", src.name, msg, backoff)
                self._mark(src, error=msg)
                self.on_frame()
                try:
                    await self.workers.run("io", src.close)
                except Exception as close_error:
                    log.debug("closing %s after a failure: %s", src.name, close_error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2.0, self.reconnect_max_s)
                for cid in src.camera_ids:
                    self.sync.health[cid].on_reconnect()
