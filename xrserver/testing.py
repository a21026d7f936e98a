"""Run the real server in the caller's event loop on 127.0.0.1 and a free port (for tests and tools).

``async with run_server(config, sources) as srv:`` starts uvicorn with the same settings as
``xrserver serve`` (lifespan included) and stops it on exit. :func:`scaled` stretches timeouts
by ``XR_TEST_TIMEOUT_SCALE`` (a loaded CI machine may set 2 or 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.request
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from xrserver.analyzer import Analyzer
from xrserver.app import XrServer
from xrserver.auth import TokenAuth
from xrserver.commands.serve import make_auth, uvicorn_config
from xrserver.config import ServerConfig
from xrserver.sources import Source

REPO_ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("XR_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * SCALE


@dataclass
class Running:
    xr: XrServer
    auth: TokenAuth
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, role: str = "operator", channels: str | None = None, token: str | None = None) -> str:
        tok = token if token is not None else self.auth.token_for(role)  # type: ignore[arg-type]
        url = f"ws://127.0.0.1:{self.port}/ws?token={tok}"
        return url + (f"&channels={channels}" if channels else "")


def get_json(url: str, token: str) -> dict[str, object]:
    """GET a REST endpoint with a bearer token (blocking: call it through ``asyncio.to_thread``)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        doc: dict[str, object] = json.loads(r.read())
        return doc


@asynccontextmanager
async def run_server(config: ServerConfig, sources: Sequence[Source] | None = None,
                     analyzer: Analyzer | None = None) -> AsyncIterator[Running]:
    """Start the real server (lifespan included) on 127.0.0.1 and a free port; stop it after."""
    auth, _ = make_auth(config)  # configured tokens, generated ones for the other roles
    xr = await asyncio.to_thread(XrServer, config, auth, analyzer, sources)  # may train models: off the loop
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(xr, config, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(scaled(20)):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start")
                await asyncio.sleep(0.02)
        yield Running(xr, auth, port)
    finally:
        server.should_exit = True
        async with asyncio.timeout(scaled(20)):
            await task
        sock.close()
