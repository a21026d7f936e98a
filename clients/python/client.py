"""An asyncio client of ``/ws`` built on the websockets library.

It connects with the token, sends ``hello``, checks the ``welcome``, then applies every message
to :attr:`XrClient.state` before handing it to the caller. Protocol errors from the server side
(a message this client cannot decode) and close codes become :class:`ClientError` with the
server's reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

from clients.python.state import ClientState
from overlays.codec import decode, encode
from overlays.defect import DefectStatus
from overlays.errors import ProtocolError
from overlays.messages import Feedback, Hello, Message, Role, Welcome


class ClientError(Exception):
    """The connection failed or was closed by the server; ``code`` is the WebSocket close code if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def with_query(url: str, **params: str) -> str:
    """``url`` with query parameters added (the token goes in the query, as browsers must send it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss"):
        raise ClientError(f"expected a ws:// or wss:// URL, got {url!r}")
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/ws", query, ""))


class XrClient:
    """``async with XrClient(url, token, role) as c: async for msg in c: ...``; ``c.state`` is kept current."""

    def __init__(self, url: str, token: str, role: Role = "operator", channels: Sequence[str] | None = None,
                 client_name: str = "xrclient-python", open_timeout_s: float = 10.0) -> None:
        params = {"token": token} | ({"channels": ",".join(channels)} if channels else {})
        self.url = with_query(url, **params)
        self.role: Role = role
        self.client_name = client_name
        self.open_timeout_s = open_timeout_s
        self.state = ClientState()
        self._ws: ClientConnection | None = None

    async def __aenter__(self) -> XrClient:
        try:
            self._ws = await connect(self.url, open_timeout=self.open_timeout_s, max_size=64 * 1024 * 1024,
                                     compression=None)
        except InvalidStatus as e:
            raise ClientError(f"server refused the connection: HTTP {e.response.status_code}") from None
        except (OSError, InvalidURI, TimeoutError) as e:
            raise ClientError(f"cannot connect to {urlsplit(self.url).netloc}: {e}") from None
        await self._ws.send(encode(Hello(self.client_name, self.role)))
        first = await self.receive()
        if not isinstance(first, Welcome):
            raise ClientError(f"expected welcome, got {type(first).__name__.lower()}")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()

    async def receive(self, timeout_s: float | None = None) -> Message:
        """The next message, already applied to :attr:`state`."""
        if self._ws is None:
            raise ClientError("not connected")
        try:
            async with asyncio.timeout(timeout_s):
                data = await self._ws.recv()
        except ConnectionClosed as e:
            rcvd = e.rcvd
            raise ClientError(f"closed by the server: {rcvd.code} {rcvd.reason}" if rcvd else "connection lost",
                              rcvd.code if rcvd else None) from None
        try:
            msg = decode(data if isinstance(data, bytes) else data.encode("utf-8"),
                         "msgpack" if isinstance(data, bytes) else "json")
        except ProtocolError as e:
            raise ClientError(f"undecodable message from the server: {e}") from None
        self.state.apply(msg)
        return msg

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.receive()
            except ClientError as e:
                if e.code in (1000, 1001):
                    return
                raise

    async def feedback(self, defect_id: str, status: DefectStatus, operator_id: str = "", comment: str = "") -> None:
        """Confirm, reject or mark a live defect fixed (roles with the feedback permission)."""
        if self._ws is None:
            raise ClientError("not connected")
        vid = self.state.vehicle_id or "unknown"
        await self._ws.send(encode(Feedback(defect_id, vid, status, operator_id or self.client_name, time.time_ns(),
                                            comment)))
