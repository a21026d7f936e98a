"""The one way heavy work leaves the event loop: :meth:`Workers.run`.

Rendering, decoding, inference, fusion and SQLite writes are blocking calls. The loop awaits
them through a thread pool so a slow call never delays a socket. Two pools keep the kinds of
work apart: ``compute`` (analysis, one at a time, so frame sets never pile up) and ``io``
(sources and records, a few threads).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal, ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
Pool = Literal["compute", "io"]


class Workers:
    """Thread pools for blocking work. ``io_threads``: sources + records at once."""

    def __init__(self, io_threads: int = 8) -> None:
        self._pools: dict[Pool, ThreadPoolExecutor] = {
            "compute": ThreadPoolExecutor(1, thread_name_prefix="xr-compute"),
            "io": ThreadPoolExecutor(io_threads, thread_name_prefix="xr-io"),
        }

    async def run(self, pool: Pool, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` in ``pool`` and await its result (exceptions propagate)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pools[pool], functools.partial(fn, *args, **kwargs))

    async def aclose(self) -> None:
        """:meth:`shutdown` without blocking the loop (the wait runs in a plain thread)."""
        await asyncio.get_running_loop().run_in_executor(None, self.shutdown)

    def shutdown(self) -> None:
        """Wait for running calls to end; queued ones that have not started are cancelled."""
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
