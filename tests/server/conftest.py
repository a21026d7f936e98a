"""Server test fixtures. ``PYTHONASYNCIODEBUG=1`` is set (for subprocess servers) and every test loop
here runs in asyncio debug mode; :func:`no_slow_callbacks` fails a test when the loop reports a
slow callback (>= 100 ms) from our code. Helpers to run a server live in ``serverkit``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator

import pytest

from pipeline.twin import DigitalTwin, TwinConfig

os.environ["PYTHONASYNCIODEBUG"] = "1"

#: Where a slow callback counts as ours: our packages, and the uvicorn/starlette tasks that run our handlers.
OUR_CODE = ("/xrserver/", "/overlays/", "/pipeline/", "/calibration/", "/uvicorn/", "/starlette/")


@pytest.fixture(scope="session")
def tiny_twin() -> DigitalTwin:
    """A 160x120 twin (4 cameras), built once: building takes seconds, rendering is fast."""
    return DigitalTwin(TwinConfig(seed=0, width_px=160, height_px=120))


@pytest.fixture(autouse=True)
async def asyncio_debug_mode() -> AsyncIterator[None]:
    """pytest-asyncio sets the loop's debug flag from its own option, over the environment variable;
    the server tests want debug mode whatever that option says."""
    asyncio.get_running_loop().set_debug(True)
    yield


@pytest.fixture
async def no_slow_callbacks(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """Fail when asyncio debug mode reports a slow callback (>= 100 ms) in our code."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    assert asyncio.get_running_loop().get_debug(), "server tests must run in asyncio debug mode"
    yield
    slow = [r.getMessage() for r in caplog.records
            if r.name == "asyncio" and "took" in r.getMessage() and "Executing" in r.getMessage()]
    ours = [m for m in slow if any(p in m for p in OUR_CODE)]
    assert not ours, f"slow callbacks on the event loop: {ours[:3]}"
