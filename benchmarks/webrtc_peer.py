"""WebRTC peers on loopback: capture -> data-channel message latency, and the CPU cost of a video peer.

Runs the real server (twin, diagnostic analyzer so the figures are WebRTC's own) in this process,
first with no peer for ``--seconds`` (the baseline CPU), then with one aiortc peer that receives
the data channel and decodes every camera's video track. Prints capture -> data-channel p50/p95/p99
and the extra CPU per video peer (process CPU time / wall time, server and peer in one process).

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

from overlays.codec import decode
from overlays.messages import Stats
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig
from xrserver.sources import TwinSource
from xrserver.testing import Running, run_server


def _offer(srv: Running, sdp: str) -> dict[str, str]:
    req = urllib.request.Request(f"{srv.http}/rtc/offer", method="POST",
                                 data=json.dumps({"sdp": sdp, "type": "offer"}).encode(),
                                 headers={"Authorization": f"Bearer {srv.auth.token_for('operator')}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        doc: dict[str, str] = json.loads(r.read())
        return doc


async def _drain(track: MediaStreamTrack, counter: list[int]) -> None:
    try:
        while True:
            await track.recv()
            counter[0] += 1
    except MediaStreamError:
        return


async def run(size: tuple[int, int], cameras: tuple[str, ...], seconds: float) -> dict[str, float]:
    twin = DigitalTwin(TwinConfig(seed=0, width_px=size[0], height_px=size[1]))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServerConfig(storage=StorageConfig(db_path=Path(tmp) / "r.db"),
                           analyzer=AnalyzerConfig(kind="diagnostic"))
        async with run_server(cfg, [TwinSource.from_twin(twin, 10, cameras)]) as srv:
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
            tasks: list[asyncio.Task[None]] = []
            pc.on("track", lambda t: tasks.append(asyncio.ensure_future(_drain(t, frames))))
            for _ in cameras:
                pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            answer = await asyncio.to_thread(_offer, srv, pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
            await asyncio.sleep(3)
            lat.clear()
            frames[0] = 0
            c1 = time.process_time()
            await asyncio.sleep(seconds)
            peer_cpu = (time.process_time() - c1) / seconds
            n_frames = frames[0]
            await pc.close()
            for t in tasks:
                t.cancel()
    a = np.asarray(lat)
    return {"dc_p50_ms": float(np.percentile(a, 50)), "dc_p95_ms": float(np.percentile(a, 95)),
            "dc_p99_ms": float(np.percentile(a, 99)), "n": len(a), "base_cpu": base_cpu,
            "with_peer_cpu": peer_cpu, "video_fps_per_track": n_frames / seconds / len(cameras)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--cameras", default="lower,oblique_left,oblique_right,oblique_front")
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cams = tuple(args.cameras.split(","))
    r = asyncio.run(run((w, h), cams, args.seconds))
    print(f"{w}x{h}, {len(cams)} video tracks, {args.seconds:g} s, {platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}")
    print("| capture -> data channel p50 | p95 | p99 | n | CPU no peer | CPU with peer | extra CPU | video fps/track |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {r['dc_p50_ms']:.1f} ms | {r['dc_p95_ms']:.1f} | {r['dc_p99_ms']:.1f} | {r['n']:.0f} | "
          f"{r['base_cpu']:.2f} | {r['with_peer_cpu']:.2f} | {r['with_peer_cpu'] - r['base_cpu']:.2f} | "
          f"{r['video_fps_per_track']:.1f} |")


if __name__ == "__main__":
    main()
