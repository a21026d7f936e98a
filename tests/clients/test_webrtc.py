"""WebRTC with real aiortc peers on loopback: signalling with the token, the overlay protocol on the
data channel, one decoded video track per camera with the overlay on it, a camera publishing into
the server, and clean refusals."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamTrack
from av import VideoFrame

from clients.python.client import XrClient
from overlays.codec import decode, encode
from overlays.messages import Message, Scene, Stats
from pipeline.frames import FrameSet
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.analyzer import Analysis, DiagnosticAnalyzer, ViewResult
from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig, WebRtcSourceConfig
from xrserver.sources import TwinSource
from xrserver.testing import Running, run_server, scaled
from xrserver.webrtc import composite


def _post(srv: Running, body: bytes, token: str | None, path: str = "/rtc/offer") -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(f"{srv.http}{path}", data=body, method="POST",
                                 headers={"Content-Type": "application/json"}
                                 | ({"Authorization": f"Bearer {token}"} if token else {}))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


async def _picture(track: MediaStreamTrack, tries: int = 50) -> Any:
    """The first decoded frame that shows a picture (the very first ones may precede the first frame set)."""
    img: Any = None
    for _ in range(tries):
        f = await track.recv()
        assert isinstance(f, VideoFrame)
        img = f.to_ndarray(format="rgb24")
        if img.std() > 5:
            break
    return img


class _FindsOneDefect(DiagnosticAnalyzer):
    """The diagnostic stage, with one hot region planted in the ``lower`` view's map (its middle
    band, x 0.4-0.7, y 0.3-0.6): the video must show the overlay exactly there."""

    def analyze(self, frameset: FrameSet) -> Analysis:
        a = super().analyze(frameset)
        views = []
        for v in a.views:
            if v.camera_id == "lower":
                m = np.zeros_like(v.heatmap)
                h, w = m.shape
                m[int(0.3 * h):int(0.6 * h), int(0.4 * w):int(0.7 * w)] = 1.0
                v = ViewResult(v.camera_id, 1.0, m)
            views.append(v)
        return replace(a, views=tuple(views))


async def test_peer_gets_protocol_messages_and_a_video_track_per_camera(tmp_path: Path) -> None:
    twin = DigitalTwin(TwinConfig(seed=0, width_px=160, height_px=120))
    cfg = ServerConfig(storage=StorageConfig(db_path=tmp_path / "r.db"), analyzer=AnalyzerConfig(kind="diagnostic"))
    cams = ("lower", "oblique_left")
    async with run_server(cfg, [TwinSource.from_twin(twin, fps=10, camera_ids=cams)], _FindsOneDefect()) as srv:
        token = srv.auth.token_for("operator")
        assert (await asyncio.to_thread(_post, srv, b"{}", None))[0] == 401
        assert (await asyncio.to_thread(_post, srv, b'{"sdp": "garbage", "type": "offer"}', token))[0] == 400
        assert (await asyncio.to_thread(_post, srv, b"not json", token))[0] == 400

        ws_got: list[Message] = []

        async def websocket_client() -> None:
            async with XrClient(srv.ws_url().split("?")[0], token) as client:
                async for m in client:
                    ws_got.append(m)

        ws_task = asyncio.create_task(websocket_client())
        pc = RTCPeerConnection()
        channel = pc.createDataChannel("overlay")
        got: list[Message] = []
        channel.on("message", lambda data: got.append(decode(data)))
        tracks: list[MediaStreamTrack] = []
        pc.on("track", tracks.append)
        for _ in cams:
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}).encode()
        status, answer = await asyncio.to_thread(_post, srv, offer, token)
        assert status == 200, answer
        assert answer["tracks"] == list(cams)
        await pc.setRemoteDescription(RTCSessionDescription(str(answer["sdp"]), "answer"))
        async with asyncio.timeout(scaled(30)):
            while not any(isinstance(m, Stats) for m in got):
                await asyncio.sleep(0.1)
            frames = [await _picture(t) for t in tracks]
            while len({m.seq for m in got if isinstance(m, Stats)} & {m.seq for m in ws_got}) < 3:
                await asyncio.sleep(0.1)
        ws_task.cancel()
        by_seq = {m.seq: encode(m) for m in ws_got}
        both = [m for m in got if m.seq in by_seq and m.seq != 0]
        assert all(encode(m) == by_seq[m.seq] for m in both), "the data channel carries the WebSocket stream"
        assert len(srv.xr.rtc.peers) == 1
        assert isinstance(got[0], Scene) or not srv.xr.hub.scene  # the diagnostic server has no scene
        for img in frames:
            assert img.shape == (120, 160, 3) and img.std() > 5, "decoded camera pictures, not blank frames"
        redness = frames[0][..., 0].astype(int) - frames[0][..., 1].astype(int)
        assert redness[50:66, 76:100].mean() > 60, "the defect's overlay, where the map is hot"
        assert abs(redness[90:110, 10:40].mean()) < 20 and abs(redness[5:25, 120:150].mean()) < 20, "nothing elsewhere"
        assert abs(frames[1][..., 0].astype(int) - frames[1][..., 1]).mean() < 20, "no overlay on a clean view"
        await pc.close()
        async with asyncio.timeout(scaled(20)):  # the server notices the vanished peer and frees it
            while srv.xr.rtc.peers or any(c.startswith("rtc-") for c in srv.xr.hub.clients):
                await asyncio.sleep(0.2)


def test_overlay_is_drawn_where_the_map_is_hot() -> None:
    image = np.full((240, 320, 3), 100, np.uint8)
    heat = np.zeros((120, 160), np.float32)
    heat[30:40, 60:80] = 0.9  # the defect, at half the picture's resolution
    heat[100, 10] = 0.9  # one hot pixel: noise, not a defect
    out = composite(image, heat).astype(int)
    assert out[70, 140, 0] > 150 and out[70, 140, 1] < 100, "the defect is tinted red"
    assert np.array_equal(out[230, 5], [100, 100, 100]), "elsewhere the picture is untouched"
    assert np.array_equal(out[195:206, 15:26], image[195:206, 15:26]), "specks are not drawn"
    assert composite(image, None) is image


class _Pattern(VideoStreamTrack):
    """A camera: a bright square on grey, 160x120."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.full((120, 160, 3), 60, np.uint8)
        img[40:80, 60:100] = 230
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def _publisher(srv: Running, camera_id: str, token: str) -> tuple[RTCPeerConnection, int, dict[str, object]]:
    pc = RTCPeerConnection()
    pc.addTransceiver(_Pattern(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = json.dumps({"sdp": pc.localDescription.sdp, "type": "offer"}).encode()
    status, answer = await asyncio.to_thread(_post, srv, offer, token, f"/rtc/publish/{camera_id}")
    if status == 200:
        await pc.setRemoteDescription(RTCSessionDescription(str(answer["sdp"]), "answer"))
    return pc, status, answer


async def test_a_camera_publishes_into_the_server_over_webrtc(tmp_path: Path) -> None:
    cfg = ServerConfig(storage=StorageConfig(db_path=tmp_path / "r.db"), analyzer=AnalyzerConfig(kind="diagnostic"),
                       sources=(WebRtcSourceConfig(kind="webrtc", camera_id="browser0", width_px=160, height_px=120,
                                                   timeout_s=1.0),))
    async with run_server(cfg) as srv:
        camera, operator = srv.auth.token_for("camera"), srv.auth.token_for("operator")
        pc0, status, _ = await _publisher(srv, "browser0", operator)
        assert status == 403, "viewers cannot publish"
        pc1, status, answer = await _publisher(srv, "nope", camera)
        assert status == 404 and "browser0" in str(answer["error"])
        await asyncio.gather(pc0.close(), pc1.close())

        pc, status, answer = await _publisher(srv, "browser0", camera)
        assert status == 200, answer
        second, status2, answer2 = await _publisher(srv, "browser0", camera)
        assert status2 == 409, answer2
        await second.close()
        async with asyncio.timeout(scaled(30)):  # the published frames become frame sets and a view
            while not (srv.xr.scheduler and srv.xr.scheduler.framesets >= 5):
                await asyncio.sleep(0.2)
        image, _ = srv.xr.scheduler.latest_views["browser0"]
        assert image.shape == (120, 160, 3)
        assert image[60, 80].mean() > 180 and image[10, 10].mean() < 100, "the camera's picture, decoded"
        health = srv.xr.health_doc()
        assert health["cameras"][0]["state"] == "up"
        assert any(p.get("publishes") == "browser0" for p in health["rtc_peers"])

        await pc.close()  # the camera goes away: the view degrades, the server carries on
        async with asyncio.timeout(scaled(20)):
            while srv.xr.health_doc()["cameras"][0]["state"] == "up":
                await asyncio.sleep(0.2)
        assert "browser0: no frame for 1 s" in str(srv.xr.health_doc()["cameras"][0]["error"])
        pc, status, _ = await _publisher(srv, "browser0", camera)  # and it may publish again
        assert status == 200
        await pc.close()
