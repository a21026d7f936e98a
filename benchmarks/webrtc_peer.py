"""WebRTC peers on loopback: capture -> video frame and capture -> data-channel latency, and the CPU
cost of a video peer.

Runs the real server (twin, diagnostic analyzer so the figures are WebRTC's own) in this process,
first with no peer for ``--seconds`` (the baseline CPU), then with one aiortc peer that receives
the data channel and decodes every camera's video track. Each captured frame set carries its
number as a 12-bit block code painted into the pictures; the peer reads it back from the decoded
video, so capture -> video frame is measured per frame, through encode, RTP and decode. Prints
p50/p95/p99 of both latencies and the extra CPU per video peer (process CPU time / wall time,
server and peer in one process, so the peer's decoding is included: an upper bound).

    .venv/bin/python benchmarks/webrtc_peer.py --size 640x480 --seconds 20
    .venv/bin/python benchmarks/webrtc_peer.py --size 1920x1080 --seconds 20 --cameras lower
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from calibration.clikit import image_size
from overlays.codec import decode
from overlays.messages import Stats
from pipeline.frames import Frame
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig
from xrserver.sources import Capture, TwinSource
from xrserver.testing import Running, run_server

BITS = 12  # frame numbers modulo 4096: 400 s at 10 frame sets per second


def _cells(w: int, h: int) -> list[tuple[slice, slice]]:
    """Where bit k sits: a row of square blocks along the top-left, sized to the picture."""
    b = max(8, w // 24)
    return [(slice(b, 2 * b), slice((k + 1) * b, (k + 2) * b)) for k in range(BITS)]


def stamp(image: np.ndarray, number: int) -> np.ndarray:
    out = image.copy()
    for k, (ys, xs) in enumerate(_cells(out.shape[1], out.shape[0])):
        out[ys, xs] = 255 if (number >> k) & 1 else 0
    return out


def read_stamp(image: np.ndarray) -> int:
    gray = image.mean(axis=2)
    number = 0
    for k, (ys, xs) in enumerate(_cells(image.shape[1], image.shape[0])):
        q = (ys.stop - ys.start) // 4  # the inner half of the block: away from edges and their overlay
        if gray[ys.start + q : ys.stop - q, xs.start + q : xs.stop - q].mean() > 128:
            number |= 1 << k
    return number


class StampedTwin(TwinSource):
    """The twin, each frame set's pictures carrying its number; ``sent`` maps number -> capture time."""

    sent: dict[int, int]
    count = 0

    def read(self) -> Capture | None:
        cap = super().read()
        if cap is None:
            return None
        n = self.count % (1 << BITS)
        self.count += 1
        self.sent[n] = cap.capture_ts_ns
        frames = tuple(Frame(f.camera_id, stamp(f.image, n), f.capture_ts_ns, f.seq, f.depth_m) for f in cap.frames)
        return Capture(frames, cap.capture_ts_ns, cap.T_cell_vehicle, cap.vehicle_id, cap.s_m)


def _offer(srv: Running, sdp: str) -> dict[str, str]:
    req = urllib.request.Request(f"{srv.http}/rtc/offer", method="POST",
                                 data=json.dumps({"sdp": sdp, "type": "offer"}).encode(),
                                 headers={"Authorization": f"Bearer {srv.auth.token_for('operator')}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        doc: dict[str, str] = json.loads(r.read())
        return doc


async def _drain(track: MediaStreamTrack, counter: list[int], sent: dict[int, int], lat: list[float]) -> None:
    """Decode every frame; the first time a frame set's number shows, its capture -> video latency."""
    seen: set[int] = set()
    try:
        while True:
            frame = await track.recv()
            assert isinstance(frame, VideoFrame)
            counter[0] += 1
            n = read_stamp(frame.to_ndarray(format="rgb24"))
            if n not in seen and n in sent:
                seen.add(n)
                lat.append((time.time_ns() - sent[n]) / 1e6)
    except MediaStreamError:
        return


async def run(size: tuple[int, int], cameras: tuple[str, ...], seconds: float) -> dict[str, float]:
    twin = DigitalTwin(TwinConfig(seed=0, width_px=size[0], height_px=size[1]))
    source = StampedTwin.from_twin(twin, 10, cameras)
    assert isinstance(source, StampedTwin)
    source.sent = {}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServerConfig(storage=StorageConfig(db_path=Path(tmp) / "r.db"),
                           analyzer=AnalyzerConfig(kind="diagnostic"))
        async with run_server(cfg, [source]) as srv:
            await asyncio.sleep(3)
            c0 = time.process_time()
            await asyncio.sleep(seconds)
            base_cpu = (time.process_time() - c0) / seconds
            pc = RTCPeerConnection()
            ch = pc.createDataChannel("overlay")
            lat: list[float] = []
            ch.on("message", lambda d: lat.append((time.time_ns() - m.ts_ns) / 1e6)
                  if isinstance(m := decode(d), Stats) else None)
            frames = [0]
            vlat: list[float] = []
            tasks: list[asyncio.Task[None]] = []
            pc.on("track", lambda t: tasks.append(asyncio.ensure_future(_drain(t, frames, source.sent, vlat))))
            for _ in cameras:
                pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.to_thread(_offer, srv, pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            await asyncio.sleep(3)
            lat.clear()
            vlat.clear()
            frames[0] = 0
            c1 = time.process_time()
            await asyncio.sleep(seconds)
            peer_cpu = (time.process_time() - c1) / seconds
            n_frames = frames[0]
            await pc.close()
            for t in tasks:
                t.cancel()
    a, v = np.asarray(lat), np.asarray(vlat)
    return {"dc_p50_ms": float(np.percentile(a, 50)), "dc_p95_ms": float(np.percentile(a, 95)),
            "dc_p99_ms": float(np.percentile(a, 99)), "n": len(a),
            "video_p50_ms": float(np.percentile(v, 50)), "video_p95_ms": float(np.percentile(v, 95)),
            "video_p99_ms": float(np.percentile(v, 99)), "n_video": len(v), "base_cpu": base_cpu,
            "with_peer_cpu": peer_cpu, "video_fps_per_track": n_frames / seconds / len(cameras)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", type=image_size, default="640x480", help="frame size WIDTHxHEIGHT")
    ap.add_argument("--cameras", default="lower,oblique_left,oblique_right,oblique_front")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    w, h = args.size
    cams = tuple(args.cameras.split(","))
    r = asyncio.run(run((w, h), cams, args.seconds))
    print(f"{w}x{h}, {len(cams)} video tracks, {args.seconds:g} s, {platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}")
    print("| path | p50 ms | p95 ms | p99 ms | n |")
    print("|---|---|---|---|---|")
    print(f"| capture -> data channel | {r['dc_p50_ms']:.1f} | {r['dc_p95_ms']:.1f} | {r['dc_p99_ms']:.1f} "
          f"| {r['n']:.0f} |")
    print(f"| capture -> video frame | {r['video_p50_ms']:.1f} | {r['video_p95_ms']:.1f} | {r['video_p99_ms']:.1f} "
          f"| {r['n_video']:.0f} |")
    print()
    print("| CPU no peer | CPU with peer | extra CPU per video peer | ratio | video fps/track |")
    print("|---|---|---|---|---|")
    print(f"| {r['base_cpu']:.2f} | {r['with_peer_cpu']:.2f} | {r['with_peer_cpu'] - r['base_cpu']:.2f} | "
          f"{r['with_peer_cpu'] / max(r['base_cpu'], 1e-9):.2f}x | {r['video_fps_per_track']:.1f} |")


if __name__ == "__main__":
    main()
