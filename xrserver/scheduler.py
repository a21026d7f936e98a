"""The frame-set loop: sync -> analyze (compute worker) -> encode -> hub, with passes and records.

One frame set is in analysis at a time. While it runs, newer frames overwrite the sync slots
(latest-wins), so when the worker is free it takes the freshest set and latency never builds
up. The capture time of the set travels into every message (``capture_ts_ns`` or ``ts_ns``),
and each stage's end is observed as capture -> stage latency:

    capture -> sync -> infer -> fuse -> encode -> send (per client, in :mod:`xrserver.ws`)

Vehicle passes follow ``FrameSet.vehicle_id``: a new id ends the previous pass (records, alerts)
and starts the next; every record write is awaited (committed) before its message is sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.rig import Rig
from overlays.alerts import AlertEvent
from overlays.builders import alert_message, defects_message, pose_message, quantize_scores
from overlays.codec import encode
from overlays.messages import Heatmap, Message, PassEnd, PassStart, Pose, Stats, ViewState
from xrserver.analyzer import Analysis, Analyzer, PassSummary
from xrserver.hub import Hub
from xrserver.metrics import Metrics
from xrserver.outbox import Channel
from xrserver.records import RecordStore
from xrserver.sync import FrameSync, SyncedSet
from xrserver.workers import Workers

log = logging.getLogger(__name__)

SCENE_ID = "cell"


@dataclass(frozen=True, slots=True, eq=False)
class Processed:
    """A compute job's output: encoded messages per channel and when each stage ended (epoch ns)."""

    analysis: Analysis
    messages: tuple[tuple[Channel, Message, bytes], ...]
    stage_end_ns: dict[str, int]


@dataclass(slots=True)
class _Pass:
    pass_id: str
    vehicle_id: str
    start_ts_ns: int


class Scheduler:
    def __init__(self, sync: FrameSync, analyzer: Analyzer, workers: Workers, hub: Hub, metrics: Metrics,
                 records: RecordStore, rig: Rig | None = None) -> None:
        self.sync = sync
        self.analyzer = analyzer
        self.workers = workers
        self.hub = hub
        self.metrics = metrics
        self.records = records
        self.rig = rig
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pass: _Pass | None = None
        self._done_ts: list[int] = []
        self.framesets = 0
        self.n_passes = 0
        self.last_send_ms = 0.0
        self.last_latency_ms: dict[str, float] = {}
        #: Per-robot and per-seam defect rates over the alert window, and the window's size (vehicles).
        self.rates: tuple[dict[str, float], dict[str, float], int] = ({}, {}, 0)
        self.latest_views: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None]] = {}
        self.on_alert: Callable[[AlertEvent], None] | None = None  # e.g. MQTT; called on the loop, must not block

    @property
    def current_pass_id(self) -> str | None:
        return self._pass.pass_id if self._pass else None

    def notify(self) -> None:
        """Called by ingest when a frame arrived (or a view changed state)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        """Stop taking frame sets, then end the open pass so its record is complete and committed."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pass is not None:
            await self._end_pass(time.time_ns())

    def fps(self) -> float:
        t = self._done_ts[-30:]
        if len(t) < 2 or time.time_ns() - t[-1] > 2_000_000_000:
            return 0.0
        return (len(t) - 1) * 1e9 / max(t[-1] - t[0], 1)

    async def _run(self) -> None:
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that lands
                # just as the wake-up fires (CPython bpo-42130), and stop() then waits for this loop forever
                async with asyncio.timeout(1.0):
                    await self._wake.wait()
            except TimeoutError:
                continue
            self._wake.clear()
            synced = self.sync.take(time.time_ns())
            if synced is None:
                continue
            try:
                await self._process(synced)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.analyzer_errors.inc()
                log.exception("frame set %d failed; continuing with the next", synced.frameset.seq)

    async def _process(self, synced: SyncedSet) -> None:
        fs = synced.frameset
        sync_end = time.time_ns()
        if fs.vehicle_id != (self._pass.vehicle_id if self._pass else None):
            if self._pass is not None:
                await self._end_pass(fs.capture_ts_ns)
            if fs.vehicle_id is not None:
                await self._begin_pass(fs.vehicle_id, fs.capture_ts_ns)
        views = {s.camera_id: s.state for s in self.sync.statuses(sync_end)}
        out = await self.workers.run("compute", self._compute, synced, sync_end, views)
        delta = out.analysis.defects_delta
        if self._pass is not None and delta is not None and (delta.added or delta.updated):
            # committed before clients see them, so feedback on a live defect always finds its record
            await self.workers.run("io", self.records.upsert_defects, self._pass.pass_id, delta.added + delta.updated)
        for channel, msg, data in out.messages:
            self.hub.publish(channel, msg, data, fs.capture_ts_ns)
        self.framesets += 1
        self._done_ts.append(time.time_ns())
        del self._done_ts[:-64]
        self.metrics.framesets.inc()
        for stage, end_ns in out.stage_end_ns.items():
            self.metrics.stage_latency.labels(stage).observe(max(0, end_ns - fs.capture_ts_ns) / 1e9)

    # --- compute worker -------------------------------------------------------------------------
    def _compute(self, synced: SyncedSet, sync_end_ns: int, views: dict[str, ViewState]) -> Processed:
        """Runs in the compute worker: analyze, then build and encode every message of this set."""
        fs = synced.frameset
        ts = fs.capture_ts_ns
        t0 = time.time_ns()
        analysis = self.analyzer.analyze(fs)
        maps = {v.camera_id: v.heatmap for v in analysis.views}
        for f in fs.frames:  # for video peers: the newest image of each view and its map (one dict swap)
            self.latest_views = {**self.latest_views, f.camera_id: (f.image, maps.get(f.camera_id))}
        infer_end = t0 + round(analysis.stage_ms.get("infer", (time.time_ns() - t0) / 1e6) * 1e6)
        fuse_end = infer_end + round((analysis.stage_ms.get("fuse", 0.0) + analysis.stage_ms.get("track", 0.0)) * 1e6)
        ends = {"sync": sync_end_ns, "infer": infer_end, "fuse": fuse_end}
        msgs: list[tuple[Channel, Message]] = []
        vid = fs.vehicle_id
        if vid is not None and fs.T_cell_vehicle is not None:
            s_m = synced.s_m if synced.s_m is not None else 0.0
            if self.rig is not None:
                pose = pose_message(vid, ts, self.rig, fs.T_cell_vehicle, s_m, self.hub.next_seq())
            else:
                pose = Pose(vid, ts, np.asarray(fs.T_cell_vehicle, np.float64), (0.0, 0.0, 0.0), s_m,
                            self.hub.next_seq())
            msgs.append(("pose", pose))
        if vid is not None and analysis.vertex_scores is not None:
            q = quantize_scores(analysis.vertex_scores)
            msgs.append(("heatmap", Heatmap(vid, ts, len(q), "full", q, None, self.hub.next_seq())))
        if analysis.defects_delta is not None and not analysis.defects_delta.is_empty:
            msgs.append(("defects", defects_message(analysis.defects_delta, self.hub.next_seq())))
        encoded = [(ch, m, encode(m)) for ch, m in msgs]
        ends["encode"] = time.time_ns()
        latency = {k: (v - ts) / 1e6 for k, v in ends.items()}
        latency["send"] = self.last_send_ms
        self.last_latency_ms = latency
        robot_rate, seam_rate, n_window = self.rates
        stats = Stats(ts, {k: max(0.0, v) for k, v in latency.items()}, robot_rate, seam_rate, n_window, self.fps(),
                      self.hub.next_seq(), views)
        encoded.append(("stats", stats, encode(stats)))
        return Processed(analysis, tuple(encoded), ends)

    # --- passes and records ---------------------------------------------------------------------
    async def _begin_pass(self, vehicle_id: str, start_ts_ns: int) -> None:
        p = _Pass(f"{vehicle_id}:{start_ts_ns}", vehicle_id, start_ts_ns)
        await self.workers.run("io", self.records.start_pass, p.pass_id, vehicle_id, start_ts_ns,
                               self.analyzer.model_name, self.analyzer.model_version)
        await self.workers.run("compute", self.analyzer.begin_pass, vehicle_id)
        self._pass = p
        self.hub.publish("passes", PassStart(vehicle_id, SCENE_ID, start_ts_ns, self.hub.next_seq()))
        log.info("pass %s started", p.pass_id)

    async def _end_pass(self, end_ts_ns: int) -> None:
        p, self._pass = self._pass, None
        if p is None:
            return
        summary: PassSummary = await self.workers.run("compute", self.analyzer.end_pass, p.vehicle_id)
        await self.workers.run("io", self._write_pass, p, summary, end_ts_ns)
        self.n_passes += 1
        if summary.rates is not None:
            self.rates = summary.rates
        self.hub.publish("passes", PassEnd(p.vehicle_id, end_ts_ns, len(summary.defects),
                                           summary.coverage if summary.coverage is not None else 0.0,
                                           summary.seam_coverage,
                                           self.hub.next_seq()))
        for ev in summary.alerts:
            self.hub.publish("alerts", alert_message(ev, self.hub.next_seq()))
            if self.on_alert is not None:
                self.on_alert(ev)
        log.info("pass %s ended: %d defects", p.pass_id, len(summary.defects))

    def _write_pass(self, p: _Pass, summary: PassSummary, end_ts_ns: int) -> None:
        """Runs in an io worker; each call commits, so a returned write survives a crash."""
        if summary.defects:
            self.records.upsert_defects(p.pass_id, summary.defects)
        if summary.vertex_scores is not None:
            self.records.save_heatmap(p.pass_id, summary.vertex_scores)
        for ev in summary.alerts:
            self.records.add_alert(ev.ts_ns, {"alert_id": ev.alert_id, "kind": ev.kind, "scope": ev.scope,
                                              "key": ev.key, "rate": ev.rate, "vehicle_id": ev.vehicle_id})
        self.records.end_pass(p.pass_id, end_ts_ns, summary.coverage)
