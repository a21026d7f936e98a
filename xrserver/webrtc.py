"""WebRTC with aiortc: ``POST /rtc/offer`` answers a peer with a data channel carrying the overlay
protocol and one video track per camera with the heatmap composited on the picture.

Signalling is one HTTP exchange authenticated like every endpoint (``Authorization: Bearer`` or
``?token=``, permission ``view``): the peer posts ``{"sdp", "type": "offer"}`` and gets the answer
once ICE gathering is complete (aiortc does not trickle). The peer creates the data channel; the
server then sends it what a WebSocket client of all channels gets (scene and state first). Video
tracks serve the newest composite when the peer's encoder asks, so a slow peer gets fewer frames,
never older ones; aiortc encodes off the event loop. Closed, failed or vanished peers are removed
with their tracks and hub queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from fractions import Fraction

import cv2
import numpy as np
import numpy.typing as npt
from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from av import VideoFrame
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xrserver.hub import ClientInfo, Hub
from xrserver.outbox import CHANNELS

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
MAX_BUFFERED_BYTES = 256 * 1024
LatestViews = Callable[[], dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None]]]


def composite(image: npt.NDArray[np.uint8], heatmap: npt.NDArray[np.float32] | None) -> npt.NDArray[np.uint8]:
    """The camera picture with the map above the fitted threshold (0.5) tinted red, and its outline."""
    if heatmap is None:
        return image
    h, w = image.shape[:2]
    m = cv2.resize(heatmap, (w, h), interpolation=cv2.INTER_LINEAR) if heatmap.shape != (h, w) else heatmap
    hot = m >= 0.5
    out = image.copy()
    if hot.any():
        alpha = np.clip((m - 0.5) * 2.0, 0.35, 0.8)[..., None]
        red = np.array([220, 50, 40], np.float32)
        out = np.where(hot[..., None], (1 - alpha) * image + alpha * red, image).astype(np.uint8)
        contours, _ = cv2.findContours(hot.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 230, 0), 1)
    return out


class OverlayTrack(VideoStreamTrack):
    """One camera's newest picture with its overlay, at most ``fps`` frames per second."""

    def __init__(self, camera_id: str, latest: LatestViews, size_wh: tuple[int, int], fps: float = 10.0) -> None:
        super().__init__()
        self.camera_id = camera_id
        self.latest = latest
        self.size_wh = size_wh
        self.period = 1.0 / fps
        self._t0: float | None = None
        self._n = 0

    async def recv(self) -> VideoFrame:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        target = self._t0 + self._n * self.period
        if target > now:
            await asyncio.sleep(target - now)
        self._n = max(self._n + 1, int((time.monotonic() - self._t0) / self.period))  # late: skip, never queue
        view = self.latest().get(self.camera_id)
        if view is None:
            w, h = self.size_wh
            img = np.zeros((h, w, 3), np.uint8)
        else:
            img = composite(*view)
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = round((time.monotonic() - self._t0) * 90_000)
        frame.time_base = Fraction(1, 90_000)
        return frame


class WebRtcEndpoint:
    """The peers of one server. ``cameras`` (id, (width, height)) get one track each."""

    def __init__(self, hub: Hub, latest: LatestViews, cameras: list[tuple[str, tuple[int, int]]]) -> None:
        self.hub = hub
        self.latest = latest
        self.cameras = cameras
        self.peers: dict[str, RTCPeerConnection] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def offer(self, request: Request, role: str) -> Response:
        body = await request.body()
        if len(body) > MAX_SDP_BYTES:
            return JSONResponse({"error": f"offer larger than {MAX_SDP_BYTES} bytes"}, 413)
        try:
            doc = json.loads(body)
            desc = RTCSessionDescription(sdp=str(doc["sdp"]), type=str(doc["type"]))
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": 'expected JSON {"sdp": ..., "type": "offer"}'}, 400)
        if desc.type != "offer":
            return JSONResponse({"error": "type must be 'offer'"}, 400)
        if not desc.sdp.startswith("v=0") or "\nm=" not in desc.sdp:
            return JSONResponse({"error": "bad offer: not an SDP session with media sections"}, 400)
        peer_id = secrets.token_hex(4)
        pc = RTCPeerConnection()
        self.peers[peer_id] = pc

        @pc.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            task = asyncio.create_task(self._forward(peer_id, role, channel), name=f"rtc-dc:{peer_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("[rtc %s] %s", peer_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self.close(peer_id)

        try:
            await pc.setRemoteDescription(desc)
            video = [t for t in pc.getTransceivers() if t.kind == "video"]
            for transceiver, (cid, size) in zip(video, self.cameras, strict=False):
                transceiver.sender.replaceTrack(OverlayTrack(cid, self.latest, size))
                transceiver.direction = "sendonly"
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, AttributeError, RuntimeError) as e:
            await self.close(peer_id)
            return JSONResponse({"error": f"bad offer: {e}"}, 400)
        log.info("[rtc %s] %s peer: %d video tracks", peer_id, role, min(len(video), len(self.cameras)))
        local = pc.localDescription
        return JSONResponse({"sdp": local.sdp, "type": local.type, "peer_id": peer_id,
                             "tracks": [cid for cid, _ in self.cameras[:len(video)]]})

    async def _forward(self, peer_id: str, role: str, channel: RTCDataChannel) -> None:
        conn = f"rtc-{peer_id}"
        box = self.hub.add(ClientInfo(conn, role, "webrtc", time.time_ns()), frozenset(CHANNELS))
        try:
            while channel.readyState != "closed":
                items = await box.get()
                if not items:
                    return
                for data, _ in items:
                    # aiortc buffers without limit: wait for the peer to drain, meanwhile the outbox keeps
                    # only the newest pose/heatmap/stats and coalesces state, so latency cannot build up
                    while channel.readyState == "open" and channel.bufferedAmount > MAX_BUFFERED_BYTES:
                        await asyncio.sleep(0.02)
                    if channel.readyState != "open":
                        return
                    channel.send(data)
        finally:
            self.hub.remove(conn)

    async def close(self, peer_id: str) -> None:
        pc = self.peers.pop(peer_id, None)
        if pc is not None:
            self.hub.remove(f"rtc-{peer_id}")
            await pc.close()

    async def close_all(self) -> None:
        for peer_id in list(self.peers):
            await self.close(peer_id)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

