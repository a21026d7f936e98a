"""End-to-end latency of the server on loopback: twin capture to a WebSocket client, per stage.

Runs the real server (uvicorn, the embedded twin) in this process twice in one run: first with
the ``diagnostic`` analyzer (an image statistic: the transport and scheduling floor, the
baseline) and then with the ``inspection`` analyzer (the default models + fusion + tracking; its
models come from ``--cache`` or are trained there first). ``--clients`` real websockets clients
record, from the ``stats`` messages, capture -> sync/infer/fuse/encode and capture -> received.
Prints p50/p95/p99/max per stage, the frame-set rate, the server process's CPU use, the fewest
messages any client received (starvation check), and the ratio of the two end-to-end medians.

    .venv/bin/python benchmarks/server_latency.py --size 320x240 --seconds 120 --clients 2
    .venv/bin/python benchmarks/server_latency.py --seconds 30 --clients 50      # fan-out
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from calibration.clikit import image_size
from overlays.codec import decode, encode
from overlays.messages import Hello, Stats
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig
from xrserver.sources import TwinSource
from xrserver.testing import run_server


async def _client(url: str, seconds: float, out: dict[str, list[float]]) -> None:
    async with connect(url) as ws:
        await ws.send(encode(Hello("bench", "operator")))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            async with asyncio.timeout(10):
                m = decode(await ws.recv(decode=False))
            if isinstance(m, Stats):
                out.setdefault("client", []).append((time.time_ns() - m.ts_ns) / 1e6)
                for k, v in m.latency_ms.items():
                    if k != "send":
                        out.setdefault(k, []).append(v)


async def run(twin: DigitalTwin, fps: float, seconds: float, clients: int, analyzer: str,
              cache: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServerConfig(storage=StorageConfig(db_path=Path(tmp) / "r.db", cache_dir=cache),
                           analyzer=AnalyzerConfig(kind=analyzer))
        async with run_server(cfg, [TwinSource.from_twin(twin, fps)]) as srv:
            await asyncio.sleep(3.0)  # first vehicle scene and kernels
            samples: list[dict[str, list[float]]] = [{} for _ in range(clients)]
            cpu0, f0 = time.process_time(), srv.xr.scheduler.framesets if srv.xr.scheduler else 0
            await asyncio.gather(*(_client(srv.ws_url("operator", "stats"), seconds, s) for s in samples))
            cpu = time.process_time() - cpu0
            framesets = (srv.xr.scheduler.framesets if srv.xr.scheduler else 0) - f0
    merged: dict[str, list[float]] = {}
    for s in samples:
        for k, v in s.items():
            merged.setdefault(k, []).extend(v)
    table = {k: {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
                 "p99_ms": float(np.percentile(v, 99)), "max_ms": float(np.max(v)), "n": len(v)}
             for k, v in merged.items()}
    least = min(len(s.get("client", [])) for s in samples)
    return {"analyzer": analyzer, "framesets": framesets, "fps": framesets / seconds, "stages": table,
            "cpu_cores_used": cpu / seconds, "fewest_messages_per_client": least}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", type=image_size, default="320x240", help="frame size WIDTHxHEIGHT")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("out/cache"), help="model cache (as xrserver serve uses)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = args.size
    twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
    results = [asyncio.run(run(twin, args.fps, args.seconds, args.clients, kind, args.cache))
               for kind in ("diagnostic", "inspection")]
    print(f"{w}x{h}, 4 cameras at {args.fps:g} fps, {args.clients} clients, {args.seconds:g} s each, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d', time.gmtime())}")
    print("| analyzer | capture -> | p50 ms | p95 ms | p99 ms | max ms | n |\n|---|---|---|---|---|---|---|")
    for res in results:
        for k in ("sync", "infer", "fuse", "encode", "client"):
            if k in res["stages"]:
                r = res["stages"][k]
                print(f"| {res['analyzer']} | {k} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} "
                      f"| {r['max_ms']:.1f} | {r['n']} |")
    for res in results:
        print(f"{res['analyzer']}: {res['fps']:.2f} frame sets/s, server process CPU {res['cpu_cores_used']:.2f} "
              f"cores, fewest stats messages received by one client: {res['fewest_messages_per_client']}")
    base, insp = (r["stages"].get("client", {}).get("p50_ms", float("nan")) for r in results)
    print(f"capture -> client p50: inspection / diagnostic = {insp / base:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
