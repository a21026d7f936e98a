"""End-to-end latency of the server on loopback: twin capture to a WebSocket client, per stage.

Runs the real server (uvicorn, the embedded twin, the diagnostic analyzer) in this process,
connects ``--clients`` real websockets clients, and for ``--seconds`` records, from the
``stats`` messages, capture -> sync/infer/fuse/encode, plus capture -> received at the client.
Prints p50/p95/max per stage and the frame-set rate. The diagnostic analyzer is not a model:
these figures are the transport and scheduling floor that inference adds to.

    .venv/bin/python benchmarks/server_latency.py --size 320x240 --seconds 20 --clients 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect

from overlays.codec import decode, encode
from overlays.messages import Hello, Stats
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.config import ServerConfig, StorageConfig
from xrserver.sources import TwinSource
from xrserver.testing import run_server


async def _client(url: str, seconds: float, out: dict[str, list[float]]) -> None:
    async with connect(url) as ws:
        await ws.send(encode(Hello("bench", "operator")))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = decode(await asyncio.wait_for(ws.recv(decode=False), 10))
            if isinstance(m, Stats):
                out.setdefault("client", []).append((time.time_ns() - m.ts_ns) / 1e6)
                for k, v in m.latency_ms.items():
                    if k != "send":
                        out.setdefault(k, []).append(v)


async def run(size: tuple[int, int], fps: float, seconds: float, clients: int) -> dict[str, object]:
    twin = DigitalTwin(TwinConfig(seed=0, width_px=size[0], height_px=size[1]))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ServerConfig(storage=StorageConfig(db_path=Path(tmp) / "r.db"))
        async with run_server(cfg, [TwinSource.from_twin(twin, fps)]) as srv:
            await asyncio.sleep(3.0)  # first vehicle scene and kernels
            samples: list[dict[str, list[float]]] = [{} for _ in range(clients)]
            await asyncio.gather(*(_client(srv.ws_url("operator", "stats"), seconds, s) for s in samples))
            framesets = srv.xr.scheduler.framesets if srv.xr.scheduler else 0
    merged: dict[str, list[float]] = {}
    for s in samples:
        for k, v in s.items():
            merged.setdefault(k, []).extend(v)
    table = {k: {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95)),
                 "max_ms": float(np.max(v)), "n": len(v)} for k, v in merged.items()}
    return {"size": list(size), "fps_target": fps, "clients": clients, "seconds": seconds,
            "framesets": framesets, "stages": table, "machine": platform.platform()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    result = asyncio.run(run((w, h), args.fps, args.seconds, args.clients))
    print(f"{w}x{h}, 4 cameras at {args.fps:g} fps, {args.clients} clients, {args.seconds:g} s")
    print(f"{'capture ->':<12} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'n':>6}")
    stages = result["stages"]
    assert isinstance(stages, dict)
    for k in ("sync", "infer", "fuse", "encode", "client"):
        if k in stages:
            r = stages[k]
            print(f"{k:<12} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} {r['n']:>6}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
