"""The server with the twin and real websockets clients on loopback: streaming, slow clients, bad input."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import msgpack
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from overlays.codec import decode, encode
from overlays.messages import Defects, Feedback, Heatmap, Hello, Message, PassStart, Pose, Stats, Welcome
from pipeline.frames import FrameSet
from pipeline.twin import DigitalTwin
from xrserver.analyzer import Analysis, DiagnosticAnalyzer
from xrserver.config import AnalyzerConfig, LimitsConfig, ServerConfig, ServerSection, StorageConfig, SyncConfig
from xrserver.sources import TwinSource
from xrserver.testing import Running, run_server, scaled

pytestmark = pytest.mark.usefixtures("no_slow_callbacks")


def _config(tmp_path: Any, **limits: Any) -> ServerConfig:
    return ServerConfig(
        server=ServerSection(limits=LimitsConfig(**limits)),
        storage=StorageConfig(db_path=tmp_path / "records.db"),
        sync=SyncConfig(tolerance_ms=60, stale_after_s=1.0, reconnect_min_s=0.2),
        analyzer=AnalyzerConfig(kind="diagnostic"),  # transport tests; tests/server/test_inspection.py runs models
    )


async def _join(srv: Running, role: str = "operator", channels: str | None = None, **kw: Any) -> ClientConnection:
    ws = await connect(srv.ws_url(role, channels), **kw)
    await ws.send(encode(Hello("test-client", role)))  # type: ignore[arg-type]
    return ws


async def _recv(ws: ClientConnection, timeout: float = 10.0) -> Message:
    return decode(await asyncio.wait_for(ws.recv(decode=False), scaled(timeout)))


async def _close_code(ws: ClientConnection, timeout: float = 10.0) -> tuple[int | None, str]:
    """Read until the server closes; the close code and reason it sent."""
    try:
        async with asyncio.timeout(scaled(timeout)):
            while True:
                await ws.recv()
    except ConnectionClosed as e:
        return (e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else "")
    raise AssertionError("unreachable")


async def test_client_receives_welcome_state_pose_and_stats(tmp_path: Any, tiny_twin: DigitalTwin) -> None:
    src = TwinSource.from_twin(tiny_twin, fps=10)
    async with run_server(_config(tmp_path), [src]) as srv:
        ws = await _join(srv)
        got: list[Message] = []
        async with asyncio.timeout(scaled(20)):
            while sum(isinstance(m, Stats) for m in got) < 5:
                got.append(await _recv(ws))
        await ws.close()
        again = await _join(srv)  # a client that (re)connects mid-pass gets the whole state at once
        first = [await _recv(again) for _ in range(3)]
        await again.close()
    assert isinstance(got[0], Welcome) and got[0].version == 1
    assert any(isinstance(m, PassStart) for m in got)
    assert isinstance(first[0], Welcome) and isinstance(first[1], PassStart)
    assert isinstance(first[2], Defects) and first[2].mode == "full"
    assert first[1].vehicle_id == next(m for m in got if isinstance(m, PassStart)).vehicle_id
    poses = [m for m in got if isinstance(m, Pose)]
    stats = [m for m in got if isinstance(m, Stats)]
    assert len(poses) >= 3 and poses[0].vehicle_id.startswith("V000")
    assert np.allclose(poses[0].T_cell_vehicle[3], [0, 0, 0, 1])
    # the capture timestamp travels end to end: each stats message carries its frame set's capture time
    pose_ts = {p.capture_ts_ns for p in poses}
    assert sum(s.ts_ns in pose_ts for s in stats) >= 3
    assert all(b.capture_ts_ns > a.capture_ts_ns for a, b in itertools.pairwise(poses))
    lat = stats[-1].latency_ms
    assert set(lat) >= {"sync", "infer", "fuse", "encode", "send"}
    assert 0 <= lat["sync"] <= lat["infer"] <= lat["encode"] < 2000
    assert time.time_ns() - stats[-1].ts_ns < scaled(5) * 1e9


class WideHeatmapAnalyzer(DiagnosticAnalyzer):
    """The diagnostic analyzer plus a 400k-vertex heatmap, so each frame set sends ~400 kB: enough
    for a client that does not read to fill the socket buffers within seconds."""

    n_vertices = 400_000

    def analyze(self, frameset: FrameSet) -> Analysis:
        a = super().analyze(frameset)
        rng = np.random.default_rng(frameset.seq)  # incompressible, as real heatmaps nearly are
        scores = rng.random(self.n_vertices, dtype=np.float32)
        return Analysis(a.capture_ts_ns, a.views, scores, stage_ms=a.stage_ms)


async def test_stalled_client_does_not_delay_the_other(tmp_path: Any, tiny_twin: DigitalTwin) -> None:
    src = TwinSource.from_twin(tiny_twin, fps=10, camera_ids=("lower", "oblique_left"))
    async with run_server(_config(tmp_path, send_timeout_s=120), [src], WideHeatmapAnalyzer()) as srv:
        stalled = await _join(srv, "supervisor", max_queue=1, max_size=None)
        healthy = await _join(srv, "operator", channels="heatmap,stats,passes", max_size=None)
        latencies_ms: list[float] = []
        async with asyncio.timeout(scaled(30)):
            while len(latencies_ms) < 60:  # ~6 s of stream while the other client reads nothing
                m = await _recv(healthy)
                if isinstance(m, Stats):
                    latencies_ms.append((time.time_ns() - m.ts_ns) / 1e6)
        stalled_box = next(b for i, b in srv.xr.hub.clients.values() if i.role == "supervisor")
        replaced = stalled_box.replaced
        assert srv.xr.scheduler is not None
        fps = srv.xr.scheduler.fps()
        await healthy.close()
        await stalled.close()
    assert replaced > 0, "the stalled client's queue never backed up: the test did not stall anything"
    late = sorted(latencies_ms[20:])
    assert late[len(late) // 2] < scaled(500), f"median latency of the healthy client {late[len(late) // 2]:.0f} ms"
    assert fps > 5, f"the pipeline slowed to {fps:.1f} frame sets/s"


async def test_a_client_that_stops_reading_is_closed_4408_while_the_other_streams_on(
        tmp_path: Any, tiny_twin: DigitalTwin) -> None:
    src = TwinSource.from_twin(tiny_twin, fps=10, camera_ids=("lower", "oblique_left"))
    async with run_server(_config(tmp_path, send_timeout_s=1.0), [src], WideHeatmapAnalyzer()) as srv:
        stalled = await _join(srv, "supervisor", max_queue=1, max_size=None)  # reads nothing from here on
        healthy = await _join(srv, "operator", channels="stats", max_size=None)
        async with asyncio.timeout(scaled(30)):  # until the server gives up on the stalled client
            while any(info.role == "supervisor" for info, _ in srv.xr.hub.clients.values()):
                await _recv(healthy)
        code, reason = await _close_code(stalled, 30)  # what it finds once it reads again
        assert isinstance(await _recv(healthy), Stats), "the other client streams on"
        await healthy.close()
    assert (code, reason) == (4408, "client reads too slowly")


async def test_a_client_joining_mid_pass_gets_the_last_heatmap(tmp_path: Any, tiny_twin: DigitalTwin) -> None:
    analyzer = WideHeatmapAnalyzer()
    analyzer.n_vertices = 1000
    async with run_server(_config(tmp_path), [TwinSource.from_twin(tiny_twin, fps=10)], analyzer) as srv:
        first = await _join(srv)
        async with asyncio.timeout(scaled(20)):
            while not isinstance(m := await _recv(first), Heatmap):
                pass
        late = await _join(srv, channels="heatmap,passes,defects")  # no pose or stats: nothing else interleaves
        joined = [await _recv(late) for _ in range(4)]
        await first.close()
        await late.close()
    assert [type(x) for x in joined] == [Welcome, PassStart, Heatmap, Defects]
    hm, start = joined[2], joined[1]
    assert isinstance(hm, Heatmap) and isinstance(start, PassStart)
    assert hm.mode == "full" and hm.n_vertices == len(hm.values) == 1000 and hm.vehicle_id == start.vehicle_id
    assert hm.capture_ts_ns >= m.capture_ts_ns  # the newest, not a stale one


def _hello_with_int_role() -> bytes:
    return bytes(msgpack.packb({"v": 1, "type": "hello", "seq": 0, "client_name": "x", "role": 7, "versions": [1]}))


async def test_bad_input_is_closed_with_clear_codes_while_others_stream(
        tmp_path: Any, tiny_twin: DigitalTwin) -> None:
    src = TwinSource.from_twin(tiny_twin, fps=10, camera_ids=("lower",))
    cfg = _config(tmp_path, max_message_bytes=64 * 1024, max_messages_per_s=5, rate_burst=5, hello_timeout_s=2)
    async with run_server(cfg, [src]) as srv:
        watcher = await _join(srv, channels="stats")
        assert isinstance(await _recv(watcher), Welcome)

        async def raw(url: str, payload: bytes | str | None) -> tuple[int | None, str]:
            async with connect(url) as ws:
                if payload is not None:
                    await ws.send(payload)
                return await _close_code(ws)

        url = srv.ws_url("operator")
        assert (await raw(url, b"\xc1\xff garbage"))[0] == 1007
        code, reason = await raw(url, _hello_with_int_role())
        assert code == 1007 and "role" in reason
        assert (await raw(url, "{not json"))[0] == 1007
        assert (await raw(url, b"\x00" * (100 * 1024)))[0] == 1009
        assert (await raw(srv.ws_url(token="not-a-valid-token-at-all"), None))[0] == 4401
        assert (await raw(f"ws://127.0.0.1:{srv.port}/ws", None))[0] == 4401
        assert (await raw(srv.ws_url("camera"), None))[0] == 4403
        assert (await raw(url, encode(Hello("x", "admin"))))[0] == 4403  # hello role must match the token
        assert (await raw(url, None))[0] == 1008  # no hello in time
        assert (await raw(srv.ws_url("operator", channels="pose,bogus"), None))[0] == 1008
        async with connect(url, origin="http://evil.example") as ws:  # type: ignore[arg-type]
            assert (await _close_code(ws))[0] == 4403

        flood = await _join(srv, "operator", channels="stats")
        fb = Feedback("D0001", "V000-00000", "confirmed", "op1", time.time_ns())
        for _ in range(12):
            await flood.send(encode(fb))
        assert (await _close_code(flood))[0] == 4429
        await flood.close()

        # the watcher was never disturbed: it keeps receiving stats of frames captured from now on
        mark_ns = time.time_ns()
        async with asyncio.timeout(scaled(10)):
            while not isinstance(m := await _recv(watcher), Stats) or m.ts_ns <= mark_ns:
                pass
        closed = {k: v for k, v in _samples(srv, "xr_ws_closed_total").items()}
        await watcher.close()
    assert closed.get("4401", 0) >= 2 and closed.get("1007", 0) >= 3


def _samples(srv: Running, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in srv.xr.metrics.registry.collect():
        for s in metric.samples:
            if s.name == name:
                out[s.labels.get("code", "")] = s.value
    return out
