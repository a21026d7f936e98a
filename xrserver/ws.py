"""The WebSocket endpoint ``/ws``: a thin adapter between sockets and the hub.

Connect with ``/ws?token=TOKEN&channels=pose,stats,defects`` (or ``Authorization: Bearer``);
the first message must be a protocol ``hello`` whose role matches the token's; the server
answers ``welcome`` and then the current state, then live messages of the chosen channels.
Clients may send ``feedback`` (roles with the ``feedback`` permission).

Close codes (the reason names the problem; the server keeps serving everyone else):

====  =====================================================================================
1001  server shutting down
1002  no common protocol version
1007  a message that is not valid protocol (garbage bytes, wrong msgpack types, bad fields)
1008  policy: no hello in time, an unexpected message type, unknown channel
1009  a message larger than ``limits.max_message_bytes``
1011  internal error in the client's sender
1013  too many clients
4401  missing or unknown token
4403  the token's role may not do this (view, feedback), hello role mismatch, or bad Origin
4408  the client reads too slowly (one send blocked for ``limits.send_timeout_s``)
4429  more messages than ``limits.max_messages_per_s`` allows
====  =====================================================================================
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from overlays.codec import decode, encode
from overlays.errors import ProtocolError
from overlays.messages import PROTOCOL_VERSION, Feedback, Hello, Message, Welcome
from xrserver.auth import AuthError, Principal, TokenAuth
from xrserver.config import LimitsConfig
from xrserver.hub import ClientInfo, Hub
from xrserver.metrics import Metrics
from xrserver.outbox import CHANNELS, Channel, Outbox

log = logging.getLogger(__name__)

FeedbackHandler = Callable[[Principal, Feedback, str], Awaitable[None]]
SERVER_NAME = "xrserver"


class CloseError(Exception):
    """Close the connection with ``code`` and ``reason`` (at most 123 bytes on the wire)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason.encode("utf-8")[:120].decode("utf-8", "ignore")


class TokenBucket:
    """``rate`` messages per second with bursts of ``burst``; times from the loop clock."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.t = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


def token_from(ws: WebSocket) -> str | None:
    auth = ws.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return ws.query_params.get("token")


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Non-browser clients send no Origin; browsers must come from this server or a listed origin."""
    if origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    return host is not None and origin.split("://", 1)[-1].rstrip("/") == host


class WsEndpoint:
    def __init__(self, hub: Hub, auth: TokenAuth, limits: LimitsConfig, metrics: Metrics,
                 allowed_origins: tuple[str, ...], on_feedback: FeedbackHandler) -> None:
        self.hub = hub
        self.auth = auth
        self.limits = limits
        self.metrics = metrics
        self.allowed_origins = allowed_origins
        self.on_feedback = on_feedback
        self.sockets: dict[str, WebSocket] = {}
        self.on_send_ms: Callable[[float], None] = lambda ms: None

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        for conn_id, ws in list(self.sockets.items()):
            self.hub.remove(conn_id)
            await self._close(ws, conn_id, CloseError(code, reason))

    async def _close(self, ws: WebSocket, conn_id: str, c: CloseError) -> None:
        self.metrics.ws_closed.labels(str(c.code)).inc()
        if ws.application_state == WebSocketState.CONNECTED and ws.client_state == WebSocketState.CONNECTED:
            try:
                await ws.close(c.code, c.reason)
            except (RuntimeError, OSError) as e:
                log.debug("[%s] close failed: %s", conn_id, e)
        log.info("[%s] closed %d %s", conn_id, c.code, c.reason)

    async def handle(self, ws: WebSocket) -> None:
        conn_id = secrets.token_hex(4)
        peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        await ws.accept()
        sender: asyncio.Task[None] | None = None
        try:
            principal, channels = self._admit(ws)
            self.sockets[conn_id] = ws
            hello = await self._hello(ws, principal)
            log.info("[%s] %s connected from %s as %s, channels %s", conn_id, hello.client_name, peer,
                     principal.role, ",".join(sorted(channels)))
            await ws.send_bytes(encode(Welcome(conn_id, PROTOCOL_VERSION, SERVER_NAME, time.time_ns(),
                                               self.hub.next_seq())))
            box = self.hub.add(ClientInfo(conn_id, principal.role, hello.client_name, time.time_ns()), channels)
            self.metrics.clients.set(len(self.hub.clients))
            sender = asyncio.create_task(self._send_loop(ws, conn_id, box), name=f"ws-send:{conn_id}")
            reader = asyncio.create_task(self._receive_loop(ws, conn_id, principal), name=f"ws-recv:{conn_id}")
            await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and not sender.cancelled() and sender.exception() is not None:
                log.error("[%s] sender failed", conn_id, exc_info=sender.exception())
                raise CloseError(1011, "internal error")
            if not reader.done():  # the sender gave up (slow client, closed socket): stop reading too
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            if not reader.cancelled() and reader.exception() is not None:
                raise reader.exception()  # type: ignore[misc]
        except CloseError as c:
            await self._close(ws, conn_id, c)
        except WebSocketDisconnect as d:
            log.info("[%s] client left (%s)", conn_id, d.code)
        finally:
            self.hub.remove(conn_id)
            self.sockets.pop(conn_id, None)
            self.metrics.clients.set(len(self.hub.clients))
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)

    def _admit(self, ws: WebSocket) -> tuple[Principal, frozenset[Channel]]:
        if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), self.allowed_origins):
            raise CloseError(4403, "origin not allowed")
        try:
            principal = self.auth.authenticate(token_from(ws))
        except AuthError as e:
            raise CloseError(4401, f"unauthorized: {e}") from None
        if not principal.can("view"):
            raise CloseError(4403, f"role {principal.role} may not view")
        raw = ws.query_params.get("channels")
        names = [c.strip() for c in raw.split(",") if c.strip()] if raw else list(CHANNELS)
        bad = [c for c in names if c not in CHANNELS]
        if bad:
            raise CloseError(1008, f"unknown channel(s) {bad[:3]}; use {','.join(CHANNELS)}")
        if len(self.hub.clients) >= self.limits.max_clients:
            raise CloseError(1013, "too many clients; try again later")
        return principal, frozenset(c for c in CHANNELS if c in names)

    async def _read(self, ws: WebSocket) -> Message:
        """One client message, size-checked and decoded; raises CloseError or WebSocketDisconnect."""
        msg: MutableMapping[str, Any] = await ws.receive()
        if msg["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(msg.get("code", 1000))
        data: bytes | None = msg.get("bytes")
        text: str | None = msg.get("text")
        size = len(data) if data is not None else len((text or "").encode("utf-8"))
        if size > self.limits.max_message_bytes:
            raise CloseError(1009, f"message of {size} bytes exceeds {self.limits.max_message_bytes}")
        try:
            return decode(data) if data is not None else decode((text or "").encode("utf-8"), "json")
        except ProtocolError as e:
            raise CloseError(1007, f"protocol error: {e}") from None

    async def _hello(self, ws: WebSocket, principal: Principal) -> Hello:
        try:
            async with asyncio.timeout(self.limits.hello_timeout_s):  # not wait_for: see Scheduler._run
                msg = await self._read(ws)
        except TimeoutError:
            raise CloseError(1008, f"no hello within {self.limits.hello_timeout_s:g} s") from None
        if not isinstance(msg, Hello):
            raise CloseError(1008, f"expected hello first, got {type(msg).__name__.lower()}")
        if msg.role != principal.role:
            raise CloseError(4403, f"hello role {msg.role} does not match the token's role")
        if PROTOCOL_VERSION not in msg.versions:
            raise CloseError(1002, f"no common protocol version (server speaks {PROTOCOL_VERSION})")
        return msg

    async def _receive_loop(self, ws: WebSocket, conn_id: str, principal: Principal) -> None:
        loop = asyncio.get_running_loop()
        bucket = TokenBucket(self.limits.max_messages_per_s, self.limits.rate_burst, loop.time())
        while True:
            msg = await self._read(ws)
            if not bucket.take(loop.time()):
                raise CloseError(4429, f"rate limit of {self.limits.max_messages_per_s:g} messages/s exceeded")
            if isinstance(msg, Feedback):
                if not principal.can("feedback"):
                    raise CloseError(4403, f"role {principal.role} may not send feedback")
                await self.on_feedback(principal, msg, conn_id)
            else:
                raise CloseError(1008, f"clients may not send {type(msg).__name__.lower()} messages")

    async def _send_loop(self, ws: WebSocket, conn_id: str, box: Outbox) -> None:
        timeout = self.limits.send_timeout_s
        while True:
            items = await box.get()
            if not items:
                return
            for data, capture_ts_ns in items:
                try:
                    async with asyncio.timeout(timeout):  # not wait_for: see Scheduler._run
                        await ws.send_bytes(data)
                except TimeoutError:
                    log.warning("[%s] send blocked for %.1f s; closing the slow client", conn_id, timeout)
                    self.hub.remove(conn_id)
                    await self._close(ws, conn_id, CloseError(4408, "client reads too slowly"))
                    return
                except (RuntimeError, OSError, WebSocketDisconnect):
                    return
                if capture_ts_ns:
                    ms = (time.time_ns() - capture_ts_ns) / 1e6
                    self.metrics.stage_latency.labels("send").observe(ms / 1e3)
                    self.on_send_ms(ms)
