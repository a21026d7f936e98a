"""``xrserver serve``: one port for HTTP, the WebSocket at ``/ws`` and WebRTC signalling (``/rtc/...``).

With no arguments it runs the embedded twin with its four cameras on 127.0.0.1:8765 and prints
URLs carrying tokens generated at start (as Jupyter does). ``--config FILE`` reads one validated
YAML file (see configs/example.yaml); a bad one fails at start with a one-line message naming
the field and exit code 2. SIGTERM or SIGINT shut down cleanly: clients are closed with 1001,
the open pass is written, records are closed, and the process exits 0. A shutdown that is
still running ``server.shutdown_timeout_s`` after the signal writes every thread's stack to
stderr and exits 1, so a hang is diagnosed rather than waited on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import signal
import socket
import sys
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import uvicorn

from pipeline.fusion import FusionError
from pipeline.models.errors import ModelError
from xrserver.app import XrServer
from xrserver.auth import ROLES, Role, TokenAuth
from xrserver.config import ConfigError, ServerConfig, load_config
from xrserver.errors import CliError
from xrserver.records import RecordError, RecordStore

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the inspection server (HTTP + WebSocket on one port)",
                       description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--config", type=Path, default=None, help="YAML config file (default: the embedded twin)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1, or the config's)")
    p.add_argument("--port", type=int, default=None, help="port (default 8765, or the config's; 0: any free port)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="log lines on stderr: text (default) or one JSON object per line")
    p.set_defaults(func=cmd_serve)


def ws_implementation() -> str:
    """uvicorn's sans-I/O websockets protocol when this uvicorn has it, else its classic one."""
    from uvicorn.config import WS_PROTOCOLS

    return "websockets-sansio" if "websockets-sansio" in WS_PROTOCOLS else "websockets"


def uvicorn_config(xr: XrServer, config: ServerConfig, access_log: bool = True) -> uvicorn.Config:
    """One port for HTTP and WebSocket. Per-message deflate is off: uvicorn compresses on the event
    loop, and a large heatmap would stall it for every client."""
    tls = config.server.tls
    return uvicorn.Config(
        xr.app(), ws=ws_implementation(), ws_max_size=config.server.limits.max_message_bytes,
        ws_per_message_deflate=False, lifespan="on", log_config=None, access_log=access_log,
        timeout_graceful_shutdown=5,
        ssl_certfile=str(tls.certfile) if tls else None, ssl_keyfile=str(tls.keyfile) if tls else None,
    )


def make_auth(config: ServerConfig) -> tuple[TokenAuth, set[Role]]:
    """Tokens from the config; a role without one gets a fresh token. Returns the generated roles too."""
    generated = TokenAuth.generate()
    tokens: dict[Role, list[str]] = {}
    fresh: set[Role] = set()
    for role in ROLES:
        given = list(getattr(config.tokens, role))
        if not given:
            given = [generated.token_for(role)]
            fresh.add(role)
        tokens[role] = given
    return TokenAuth(tokens), fresh


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC ISO 8601), level, logger, msg, and exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup_logging(auth: TokenAuth, verbose: bool, fmt: str = "text") -> None:
    """One line per record on stderr (text, or JSON for log shippers); every record passes the token redactor."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(auth.redactor())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


class _Uvicorn(uvicorn.Server):
    """uvicorn that closes our clients with 1001 before its own shutdown, and exits 0 on signals
    (uvicorn re-raises a caught signal after shutdown, which would make the exit status -15)."""

    def __init__(self, config: uvicorn.Config, xr: XrServer, shutdown_timeout_s: float) -> None:
        super().__init__(config)
        self.xr = xr
        self.shutdown_timeout_s = shutdown_timeout_s
        self.signal_name: str | None = None  # set by the first SIGTERM/SIGINT

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        def on_signal(sig: int, frame: FrameType | None) -> None:
            # no logging here: a handler that interrupts a log write would re-enter the stream
            if not self.should_exit:  # the first signal (a second SIGINT makes uvicorn skip its waits)
                self.signal_name = signal.Signals(sig).name
                # a C watchdog thread: it fires even if a stuck native call holds the GIL
                faulthandler.dump_traceback_later(self.shutdown_timeout_s, exit=True)
            self.handle_exit(sig, frame)

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.signal_name is not None:
            log.info("received %s; shutting down (stack dump and exit 1 if not done in %g s)",
                     self.signal_name, self.shutdown_timeout_s)
        await self.xr.ws.close_all(1001, "server shutting down")
        await super().shutdown(sockets)


def _print_urls(scheme: str, host: str, port: int, auth: TokenAuth, fresh: set[Role]) -> None:
    shown = f"[{host}]" if ":" in host else host
    base = f"{scheme}://{shown}:{port}"
    ws = f"{'wss' if scheme == 'https' else 'ws'}://{shown}:{port}/ws"

    def tok(role: Role) -> str:
        return auth.token_for(role) if role in fresh else "<your configured token>"

    lines = [
        f"xrserver is serving on {base}",
        "Open one of these URLs (tokens generated at start; they change on every start):"
        if fresh else "Open one of these URLs:",
        f"    operator:   {base}/?token={tok('operator')}",
        f"    supervisor: {base}/?token={tok('supervisor')}",
        f"    admin:      {base}/?token={tok('admin')}",
        f"    AR view:    {base}/static/ar.html?token={tok('operator')}",
        f"    WebSocket:  {ws}?token={tok('operator')}",
        f"    health:     {base}/health?token={tok('supervisor')}",
        f"    metrics:    {base}/metrics?token={tok('supervisor')}",
        f"    camera token: {tok('camera')} (publish a browser camera: {base}/static/publish.html?camera=ID&token=...)",
    ]
    print("\n".join(lines), flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config) if args.config else ServerConfig()
    except ConfigError as e:
        raise CliError(str(e)) from None
    host = args.host or config.server.host
    port = config.server.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise CliError(f"--port {port} is out of range (0..65535)")
    auth, fresh = make_auth(config)
    setup_logging(auth, getattr(args, "verbose", False), args.log_format)
    try:  # fail at start, in one line, on an unusable records database rather than in the lifespan
        RecordStore(config.storage.db_path, config.storage.heatmap_dir).close()
    except (RecordError, OSError) as e:
        raise CliError(f"storage.db_path: {e}") from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:  # the port is ours before the (first-run) model training starts
        xr = XrServer(config, auth, progress=True)
    except (ModelError, FusionError, ValueError, OSError) as e:
        sock.close()
        raise CliError(f"cannot prepare the analyzer: {e}") from None
    port = sock.getsockname()[1]
    tls = config.server.tls
    server = _Uvicorn(uvicorn_config(xr, config), xr, config.server.shutdown_timeout_s)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            _print_urls("https" if tls else "http", host, port, auth, fresh)
        await task

    asyncio.run(run())
    sock.close()
    if not server.started:
        return 1
    return 0
