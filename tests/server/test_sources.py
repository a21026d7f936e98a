"""Sources on real files (a video written with PyAV, PNG folders) and a dead view in the running server."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from websockets.asyncio.client import connect

from overlays.codec import decode, encode
from overlays.messages import Hello, Stats
from pipeline.twin import DigitalTwin
from xrserver.config import (
    AnalyzerConfig,
    FolderSourceConfig,
    ServerConfig,
    StorageConfig,
    SyncConfig,
    VideoSourceConfig,
)
from xrserver.sources import FolderSource, SourceError, TwinSource, VideoSource
from xrserver.testing import run_server, scaled


def _write_video(path: Path, n: int = 12, size: tuple[int, int] = (96, 64), fps: int = 20) -> None:
    """A small MPEG-4 file whose frame k is filled with grey level 10 * k."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for k in range(n):
            img = np.full((size[1], size[0], 3), (10 * k) % 250, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _write_folder(path: Path, n: int) -> None:
    path.mkdir()
    for k in range(n):
        cv2.imwrite(str(path / f"{k:03d}.png"), np.full((48, 64, 3), 20 * k, np.uint8))


def test_video_source_reads_a_file_loops_and_ends(tmp_path: Path) -> None:
    video = tmp_path / "cam.mp4"
    _write_video(video)
    src = VideoSource("cam", str(video), loop=False)
    src.open()
    assert src.fps == pytest.approx(20.0)
    caps = []
    while (cap := src.read()) is not None:
        caps.append(cap)
        assert len(caps) < 100
    src.close()
    assert len(caps) == 12
    frame = caps[5].frames[0]
    assert frame.image.shape == (64, 96, 3) and frame.camera_id == "cam"
    assert abs(float(frame.image.mean()) - 50.0) < 4.0  # lossy codec: close to grey level 10 * 5
    assert caps[-1].capture_ts_ns >= caps[0].capture_ts_ns

    looping = VideoSource("cam", str(video), loop=True)
    looping.open()
    got = [looping.read() for _ in range(30)]
    looping.close()
    assert all(c is not None for c in got), "a looping file starts again at its end"

    with pytest.raises(SourceError, match="cannot open"):
        VideoSource("cam", str(tmp_path / "missing.mp4")).open()


def test_folder_source_orders_loops_and_fails_clearly(tmp_path: Path) -> None:
    _write_folder(tmp_path / "imgs", 3)
    src = FolderSource("side", tmp_path / "imgs", fps=10, loop=True)
    src.open()
    levels = []
    for _ in range(5):
        cap = src.read()
        assert cap is not None
        levels.append(int(cap.frames[0].image[0, 0, 0]))
    assert levels == [0, 20, 40, 0, 20]
    once = FolderSource("side", tmp_path / "imgs", fps=10, loop=False)
    once.open()
    assert [once.read() is None for _ in range(4)] == [False, False, False, True]
    with pytest.raises(SourceError, match="not a folder"):
        FolderSource("x", tmp_path / "nope", fps=1).open()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.usefixtures("no_slow_callbacks")
async def test_dead_views_are_reported_while_the_rest_streams(tmp_path: Path, tiny_twin: DigitalTwin) -> None:
    _write_folder(tmp_path / "short", 4)
    video = tmp_path / "side.mp4"
    _write_video(video, n=200)
    cfg = ServerConfig(
        storage=StorageConfig(db_path=tmp_path / "r.db"),
        analyzer=AnalyzerConfig(kind="diagnostic"),
        sync=SyncConfig(tolerance_ms=150, stale_after_s=0.8, reconnect_min_s=0.2, reconnect_max_s=0.4),
        sources=(FolderSourceConfig(kind="folder", camera_id="short", path=tmp_path / "short", fps=10, loop=False),
                 VideoSourceConfig(kind="video", camera_id="gone", url=str(tmp_path / "absent.mp4")),
                 VideoSourceConfig(kind="video", camera_id="side", url=str(video), fps=10, loop=True)),
    )
    from xrserver.app import build_sources

    sources = [TwinSource.from_twin(tiny_twin, fps=10, camera_ids=("lower",)), *build_sources(cfg)]
    async with run_server(cfg, sources) as srv:
        token = srv.auth.token_for("supervisor")
        async with connect(srv.ws_url("operator", channels="stats")) as ws:
            await ws.send(encode(Hello("t", "operator")))
            deadline = time.monotonic() + scaled(20)
            health: dict[str, Any] = {}
            while time.monotonic() < deadline:
                health = await asyncio.to_thread(_get_json, f"{srv.http}/health?token={token}")
                if {"short", "gone"} <= set(health["degraded_views"]) and health["framesets"] > 20:
                    break
                await asyncio.sleep(0.3)
            mark_ns = time.time_ns()
            async with asyncio.timeout(scaled(10)):
                while not isinstance(m := decode(await ws.recv(decode=False)), Stats) or m.ts_ns <= mark_ns:
                    pass
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"{srv.http}/metrics?token={token}", timeout=5).read().decode())
    cams = {c["camera_id"]: c for c in health["cameras"]}
    assert health["status"] == "degraded" and sorted(health["degraded_views"]) == ["gone", "short"], health
    assert cams["short"]["state"] == "ended" and cams["short"]["frames"] == 4
    assert cams["gone"]["state"] == "degraded" and "cannot open" in cams["gone"]["error"]
    assert cams["gone"]["reconnects"] >= 2, "a failing source is retried with backoff"
    assert cams["lower"]["state"] == "up" and cams["side"]["state"] == "up" and cams["side"]["fps"] > 5
    assert m.views == {"lower": "up", "short": "ended", "gone": "degraded", "side": "up"}, "clients are told"
    assert 'xr_camera_up{camera="gone"} 0.0' in metrics and 'xr_camera_up{camera="lower"} 1.0' in metrics
    assert 'xr_stage_latency_seconds_bucket{le="0.5",stage="encode"}' in metrics


def test_recorded_rgbd_sequence_reads_colour_and_depth(tmp_path: Path, tiny_twin: DigitalTwin) -> None:
    """A recording of the twin's RGB-D lower camera: colour PNGs plus 16-bit depth PNGs in millimetres."""
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    scene = tiny_twin.vehicle(0)
    truth = []
    for k, s in enumerate((-0.5, 0.0, 0.5)):
        frame = tiny_twin.render(scene, s, camera_ids=["lower"]).frameset.frames[0]
        assert frame.depth_m is not None
        mm = np.round(np.nan_to_num(frame.depth_m) * 1000).astype(np.uint16)
        cv2.imwrite(str(tmp_path / "rgb" / f"{k:04d}.png"), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tmp_path / "depth" / f"{k:04d}.png"), mm)
        truth.append((frame.image, mm))
    src = FolderSource("lower", tmp_path / "rgb", fps=10, loop=False, depth_path=tmp_path / "depth")
    src.open()
    for image, mm in truth:
        cap = src.read()
        assert cap is not None
        f = cap.frames[0]
        assert np.array_equal(f.image, image)
        assert f.depth_m is not None and f.depth_m.dtype == np.float32
        assert np.allclose(f.depth_m, mm.astype(np.float32) / 1000, atol=1e-6)
    assert src.read() is None

    cv2.imwrite(str(tmp_path / "depth" / "0001.png"), np.zeros((10, 10), np.uint16))  # wrong size
    cv2.imwrite(str(tmp_path / "depth" / "0002.png"), np.zeros(truth[0][1].shape, np.uint8))  # 8-bit
    (tmp_path / "depth" / "0000.png").unlink()  # missing
    src = FolderSource("lower", tmp_path / "rgb", fps=10, loop=False, depth_path=tmp_path / "depth")
    src.open()
    for expected in ("no readable depth image 0000.png", "depth 0001.png is 10x10", "16-bit PNG"):
        with pytest.raises(SourceError, match=expected):
            src.read()
