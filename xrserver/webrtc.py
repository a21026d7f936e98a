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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.stats import RTCRemoteInboundRtpStreamStats
from av import VideoFrame
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from xrserver.hub import ClientInfo, Hub
from xrserver.outbox import CHANNELS
from xrserver.rtc_adapt import VideoAdaptation
from xrserver.sources import PublishedSource

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
MAX_BUFFERED_BYTES = 256 * 1024
LatestViews = Callable[[], dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None]]]


def composite(image: npt.NDArray[np.uint8], heatmap: npt.NDArray[np.float32] | None,
              min_area_frac: float = 5e-4) -> npt.NDArray[np.uint8]:
    """The camera picture with the map above the fitted threshold (0.5) tinted red, and its outline.

    Hot specks smaller than ``min_area_frac`` of the picture are left out: an operator needs the
    defect, not the noise floor of the background.
    """
    if heatmap is None:
        return image
    h, w = image.shape[:2]
    m = cv2.resize(heatmap, (w, h), interpolation=cv2.INTER_LINEAR) if heatmap.shape != (h, w) else heatmap
    n, labels, stats, _ = cv2.connectedComponentsWithStats((m >= 0.5).astype(np.uint8), connectivity=8)
    keep = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= max(4.0, min_area_frac * h * w))
    keep = keep[keep > 0]  # label 0 is the background
    if n <= 1 or keep.size == 0:
        return image
    hot = np.isin(labels, keep)
    alpha = np.clip((m - 0.5) * 2.0, 0.35, 0.8)[..., None]
    red = np.array([220, 50, 40], np.float32)
    out = np.where(hot[..., None], (1 - alpha) * image + alpha * red, image).astype(np.uint8)
    contours, _ = cv2.findContours(hot.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 230, 0), 1)
    return out


def _picture(view: tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None],
             size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    img = composite(*view)
    if img.shape[1::-1] != size:
        img = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.uint8)
    return img


class OverlayTrack(VideoStreamTrack):
    """One camera's newest picture with its overlay, at the size and rate ``adapt`` picks for the peer."""

    def __init__(self, camera_id: str, latest: LatestViews, size_wh: tuple[int, int], adapt: VideoAdaptation) -> None:
        super().__init__()
        self.camera_id = camera_id
        self.size_wh = size_wh
        self.latest = latest
        self.adapt = adapt
        self._t0: float | None = None
        self._fps = 0.0
        self._n = 0
        self._pts0 = time.monotonic()

    async def recv(self) -> VideoFrame:
        level = self.adapt.level
        now = time.monotonic()
        if self._t0 is None or level.fps != self._fps:  # (re)start the schedule at the new rate
            self._t0, self._fps, self._n = now, level.fps, 0
        period = 1.0 / self._fps
        target = self._t0 + self._n * period
        if target > now:
            self.adapt.observe_lag(now, 0.0)
            await asyncio.sleep(target - now)
        else:
            self.adapt.observe_lag(now, now - target)
        self._n = max(self._n + 1, int((time.monotonic() - self._t0) / period))  # late: skip, never queue
        view = self.latest().get(self.camera_id)
        size = level.frame_size(self.size_wh)
        if view is None:
            img: npt.NDArray[np.uint8] = np.zeros((size[1], size[0], 3), np.uint8)
        else:  # compositing a large picture takes milliseconds: off the event loop, like the encoding
            img = await asyncio.to_thread(_picture, view, size)
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = round((time.monotonic() - self._pts0) * 90_000)
        frame.time_base = Fraction(1, 90_000)
        return frame


def _parse_offer(body: bytes) -> RTCSessionDescription | JSONResponse:
    """The peer's offer, or the JSON error response that refuses it."""
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
    return desc


@dataclass(eq=False)
class Peer:
    pc: RTCPeerConnection
    role: str
    adapt: VideoAdaptation | None = None  # viewers; None for a publishing camera
    publishes: str | None = None


class WebRtcEndpoint:
    """The peers of one server. ``cameras`` (id, (width, height)) get one track each; ``sinks`` are the
    configured ``webrtc`` sources, fed by a camera peer publishing a video track."""

    def __init__(self, hub: Hub, latest: LatestViews, cameras: list[tuple[str, tuple[int, int]]],
                 sinks: dict[str, PublishedSource] | None = None, fps: float = 10.0) -> None:
        self.hub = hub
        self.latest = latest
        self.cameras = cameras
        self.sinks = sinks or {}
        self.fps = fps
        self.peers: dict[str, Peer] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def describe(self) -> list[dict[str, object]]:
        """Each peer, with its current video level (for /health and operators)."""
        out: list[dict[str, object]] = []
        for peer_id, p in self.peers.items():
            doc: dict[str, object] = {"peer_id": peer_id, "role": p.role, "state": p.pc.connectionState}
            if p.adapt is not None:
                lv = p.adapt.level
                doc |= {"video_scale": lv.scale, "video_fps": lv.fps, "level": lv.index,
                        "steps_down": p.adapt.steps_down}
            if p.publishes:
                doc["publishes"] = p.publishes
            out.append(doc)
        return out

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _new_peer(self, peer: Peer) -> str:
        peer_id = secrets.token_hex(4)
        self.peers[peer_id] = peer
        pc = peer.pc

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("[rtc %s] %s", peer_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self.close(peer_id)

        return peer_id

    async def _answer(self, peer_id: str, desc: RTCSessionDescription, setup: Callable[[], None]) -> Response | None:
        """Apply the offer, let ``setup`` attach tracks, answer once ICE gathering is complete."""
        pc = self.peers[peer_id].pc
        try:
            await pc.setRemoteDescription(desc)
            setup()
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, AttributeError, RuntimeError) as e:
            await self.close(peer_id)
            return JSONResponse({"error": f"bad offer: {e}"}, 400)
        return None

    async def offer(self, request: Request, role: str) -> Response:
        """A viewer: the overlay protocol on its data channel, one overlay video track per camera."""
        desc = _parse_offer(await request.body())
        if isinstance(desc, JSONResponse):
            return desc
        peer = Peer(RTCPeerConnection(), role, VideoAdaptation(self.fps))
        peer_id = self._new_peer(peer)
        video: list[RTCRtpTransceiver] = []

        @peer.pc.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            self._spawn(self._forward(peer_id, role, channel), f"rtc-dc:{peer_id}")

        def setup() -> None:
            video.extend(t for t in peer.pc.getTransceivers() if t.kind == "video")
            for transceiver, (cid, size) in zip(video, self.cameras, strict=False):
                assert peer.adapt is not None
                transceiver.sender.replaceTrack(OverlayTrack(cid, self.latest, size, peer.adapt))
                transceiver.direction = "sendonly"

        if (refused := await self._answer(peer_id, desc, setup)) is not None:
            return refused
        if video:
            self._spawn(self._watch_loss(peer_id), f"rtc-stats:{peer_id}")
        log.info("[rtc %s] %s peer: %d video tracks", peer_id, role, min(len(video), len(self.cameras)))
        local = peer.pc.localDescription
        return JSONResponse({"sdp": local.sdp, "type": local.type, "peer_id": peer_id,
                             "tracks": [cid for cid, _ in self.cameras[:len(video)]]})

    async def publish(self, request: Request, camera_id: str) -> Response:
        """A camera peer sends one video track into the ``webrtc`` source configured for ``camera_id``."""
        sink = self.sinks.get(camera_id)
        if sink is None:
            return JSONResponse({"error": f"no webrtc source is configured for camera {camera_id!r}; "
                                          f"configured: {sorted(self.sinks)}"}, 404)
        if sink.publisher is not None:
            return JSONResponse({"error": f"camera {camera_id!r} already has a publisher"}, 409)
        desc = _parse_offer(await request.body())
        if isinstance(desc, JSONResponse):
            return desc
        peer = Peer(RTCPeerConnection(), "camera", publishes=camera_id)
        peer_id = self._new_peer(peer)
        sink.publisher = peer_id
        n_video: list[int] = []

        @peer.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not n_video:
                n_video.append(1)
                self._spawn(self._ingest(peer_id, sink, track), f"rtc-in:{peer_id}")

        def setup() -> None:
            video = [t for t in peer.pc.getTransceivers() if t.kind == "video"]
            if not video:
                raise ValueError("a publishing camera must offer a video track")
            video[0].direction = "recvonly"

        if (refused := await self._answer(peer_id, desc, setup)) is not None:
            return refused
        log.info("[rtc %s] camera peer publishes %s", peer_id, camera_id)
        local = peer.pc.localDescription
        return JSONResponse({"sdp": local.sdp, "type": local.type, "peer_id": peer_id, "camera_id": camera_id})

    async def _ingest(self, peer_id: str, sink: PublishedSource, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    sink.push(frame)
        except MediaStreamError:
            log.info("[rtc %s] %s: the camera's track ended", peer_id, sink.camera_ids[0])
        finally:
            if sink.publisher == peer_id:
                sink.publisher = None

    async def _watch_loss(self, peer_id: str) -> None:
        """Feed the peer's RTCP loss reports to its adaptation once a second."""
        while (peer := self.peers.get(peer_id)) is not None and peer.adapt is not None:
            await asyncio.sleep(1.0)
            try:
                report = await peer.pc.getStats()
            except Exception as e:  # a peer closing under us
                log.debug("[rtc %s] stats: %s", peer_id, e)
                return
            lost = [s.fractionLost / 256.0 for s in report.values()  # RTCP's 8-bit fixed point
                    if isinstance(s, RTCRemoteInboundRtpStreamStats) and s.kind == "video"]
            if lost:
                peer.adapt.observe_loss(time.monotonic(), max(lost))

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
        peer = self.peers.pop(peer_id, None)
        if peer is not None:
            self.hub.remove(f"rtc-{peer_id}")
            if peer.publishes and (sink := self.sinks.get(peer.publishes)) is not None and sink.publisher == peer_id:
                sink.publisher = None
            await peer.pc.close()

    async def close_all(self) -> None:
        for peer_id in list(self.peers):
            await self.close(peer_id)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
