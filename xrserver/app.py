"""The server object: builds sources, sync, analyzer, hub, records and the ASGI app from one config.

``XrServer(config, auth).app()`` is a Starlette app whose lifespan starts ingest and the
scheduler and, at shutdown, closes clients (1001), ends the open pass (its record committed),
closes the sources and the records. ``xrserver serve`` runs it under uvicorn; tests run it the
same way on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from calibration.meshio import glb_bytes
from calibration.rig import Rig, load_rig
from calibration.underbody import UnderbodyModel
from overlays.builders import scene_message
from overlays.codec import encode
from overlays.defect import DefectStatus
from overlays.messages import Defects, Feedback
from xrserver.analyzer import Analyzer, DiagnosticAnalyzer
from xrserver.auth import Principal, TokenAuth
from xrserver.config import FolderSourceConfig, ServerConfig, TwinSourceConfig, VideoSourceConfig, WebRtcSourceConfig
from xrserver.hub import Hub
from xrserver.ingest import Ingest
from xrserver.metrics import Metrics
from xrserver.mqtt import MqttAlerts
from xrserver.provision import Cell, prepare_inspection
from xrserver.records import FEEDBACK_STATUS, RecordError, RecordStore
from xrserver.rest import Api
from xrserver.scheduler import SCENE_ID, Scheduler
from xrserver.sources import FolderSource, PublishedSource, Source, TwinSource, VideoSource
from xrserver.sync import FrameSync
from xrserver.webrtc import WebRtcEndpoint
from xrserver.workers import Workers
from xrserver.ws import WsEndpoint

log = logging.getLogger(__name__)

#: Where clients fetch the underbody mesh (binary glTF, vehicle frame, metres) named in the scene message.
MESH_PATH = "/api/scene/mesh.glb"

_ACTION_FOR: dict[str, str] = {status: action for action, status in FEEDBACK_STATUS.items()}


def build_sources(config: ServerConfig) -> list[Source]:
    out: list[Source] = []
    for s in config.sources:
        if isinstance(s, TwinSourceConfig):
            out.append(TwinSource(s.name, s.fps, s.width_px, s.height_px, s.seed, s.speed_mps, s.cameras))
        elif isinstance(s, FolderSourceConfig):
            out.append(FolderSource(s.camera_id, s.path, s.fps, s.loop, s.depth_path, s.depth_scale_m))
        elif isinstance(s, VideoSourceConfig):
            out.append(VideoSource(s.camera_id, s.url, s.fps, s.loop))
        elif isinstance(s, WebRtcSourceConfig):
            out.append(PublishedSource(s.camera_id, s.width_px, s.height_px, s.timeout_s))
    return out


class XrServer:
    def __init__(self, config: ServerConfig, auth: TokenAuth, analyzer: Analyzer | None = None,
                 sources: Sequence[Source] | None = None, progress: bool = False) -> None:
        """Builds everything but starts nothing. Without ``analyzer``, the configured one is built here:
        the inspection analyzer loads (or, for the twin on first run, trains) its models, which blocks."""
        self.config = config
        self.auth = auth
        self.sources = list(sources) if sources is not None else build_sources(config)
        camera_ids = tuple(c for s in self.sources for c in s.camera_ids)
        self.rig: Rig | None = load_rig(config.rig) if config.rig else next(
            (s.rig for s in self.sources if isinstance(s, TwinSource)), None)
        self.cell: Cell | None = None
        if analyzer is None and config.analyzer.kind == "inspection":
            self.cell = prepare_inspection(config, self.sources, progress)
            analyzer = self.cell.analyzer
        self.analyzer: Analyzer = analyzer or DiagnosticAnalyzer(config.analyzer.heatmap_scale)
        self.mesh_glb: bytes | None = None
        self.mqtt: MqttAlerts | None = None
        self.workers = Workers()
        self.metrics = Metrics()
        self.hub = Hub(config.server.limits.client_state_queue)
        self.sync = FrameSync(camera_ids, round(config.sync.tolerance_ms * 1e6), round(config.sync.stale_after_s * 1e9))
        self.records: RecordStore | None = None
        self.scheduler: Scheduler | None = None
        self.ingest: Ingest | None = None
        self.ws = WsEndpoint(self.hub, auth, config.server.limits, self.metrics, config.server.allowed_origins,
                             self._on_ws_feedback)
        self.ws.on_send_ms = self._on_send_ms
        rig_sizes = {c.camera_id: (c.width_px, c.height_px) for c in self.rig.cameras} if self.rig else {}
        cams = [(cid, rig_sizes.get(cid) or _source_size(src) or (640, 480))
                for src in self.sources for cid in src.camera_ids]
        sinks = {s.camera_ids[0]: s for s in self.sources if isinstance(s, PublishedSource)}
        self.rtc = WebRtcEndpoint(self.hub, lambda: self.scheduler.latest_views if self.scheduler else {}, cams,
                                  sinks)
        self._metric_marks: dict[tuple[str, str], int] = {}
        self._monitor: asyncio.Task[None] | None = None
        self._views_state: dict[str, str] = {}
        self.started_ts_ns = 0
        if self.cell is not None:
            self._set_scene(self.cell.rig, self.cell.underbody)

    def _set_scene(self, rig: Rig, underbody: UnderbodyModel) -> None:
        """Serve the mesh at :data:`MESH_PATH` and send every client the scene message first."""
        self.mesh_glb = glb_bytes(underbody.vertices_vehicle_m, underbody.triangles)
        sha = hashlib.sha256(self.mesh_glb).hexdigest()
        self.hub.scene = encode(scene_message(SCENE_ID, MESH_PATH, underbody, rig, sha, self.hub.next_seq()))

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        st = self.config.storage
        self.records = await self.workers.run("io", RecordStore, st.db_path, st.heatmap_dir)
        self.scheduler = Scheduler(self.sync, self.analyzer, self.workers, self.hub, self.metrics, self.records,
                                   self.rig)
        self.ingest = Ingest(self.sources, self.sync, self.workers, self.scheduler.notify,
                             self.config.sync.reconnect_min_s, self.config.sync.reconnect_max_s)
        if self.config.mqtt is not None:
            self.mqtt = MqttAlerts(self.config.mqtt)
            self.mqtt.start()
            self.scheduler.on_alert = self.mqtt.publish
        self.scheduler.start()
        self.ingest.start()
        self._monitor = asyncio.create_task(self._watch_views(), name="view-monitor")
        self.started_ts_ns = time.time_ns()
        log.info("server started: %d sources, cameras %s, analyzer %s", len(self.sources),
                 ",".join(self.sync.camera_ids), self.analyzer.model_name)

    async def stop(self) -> None:
        """Close clients (1001), stop ingest, end the open pass (committed), close records and workers."""
        log.info("shutting down")
        await self.ws.close_all(1001, "server shutting down")
        await self.rtc.close_all()
        if self._monitor is not None:
            self._monitor.cancel()
            await asyncio.gather(self._monitor, return_exceptions=True)
        if self.ingest is not None:
            await self.ingest.stop()
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.records is not None:
            await self.workers.run("io", self.records.close)
        if self.mqtt is not None:
            await self.workers.run("io", self.mqtt.stop)
        await self.workers.aclose()
        log.info("stopped; records flushed")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def app(self) -> Starlette:
        routes: list[Any] = [*Api(self, self.auth).routes(), WebSocketRoute("/ws", self.ws.handle)]
        return Starlette(routes=routes, lifespan=self.lifespan)

    # --- health and metrics ---------------------------------------------------------------------
    def health_doc(self) -> dict[str, Any]:
        now = time.time_ns()
        cams = [vars_of(s) for s in self.sync.statuses(now)]
        degraded = list(self.sync.degraded(now))
        running = self.scheduler is not None
        status = "starting" if not running else ("degraded" if degraded else "ok")
        return {
            "status": status,
            "uptime_s": round((now - self.started_ts_ns) / 1e9, 1) if self.started_ts_ns else 0.0,
            "cameras": cams,
            "degraded_views": degraded,
            "clients": self.hub.describe(),
            "rtc_peers": self.rtc.describe(),
            "framesets": self.scheduler.framesets if self.scheduler else 0,
            "fps": round(self.scheduler.fps(), 2) if self.scheduler else 0.0,
            "latency_ms": self.scheduler.last_latency_ms if self.scheduler else {},
            "pass_id": self.scheduler.current_pass_id if self.scheduler else None,
            "analyzer": {"name": self.analyzer.model_name, "version": self.analyzer.model_version},
        }

    def refresh_metrics(self) -> None:
        now = time.time_ns()
        m = self.metrics
        for s in self.sync.statuses(now):
            m.camera_fps.labels(s.camera_id).set(s.fps)
            m.camera_up.labels(s.camera_id).set(1.0 if s.state == "up" else 0.0)
            m.camera_frame_age.labels(s.camera_id).set(s.last_frame_age_s if s.last_frame_age_s is not None else -1)
            self._inc_to("dropped", m.dropped_frames.labels(s.camera_id), s.camera_id, s.dropped)
            self._inc_to("reconnects", m.reconnects.labels(s.camera_id), s.camera_id, s.reconnects)
        replaced, coalesced = self.hub.counters()
        self._inc_to("replaced", m.client_replaced, "", replaced)
        self._inc_to("coalesced", m.client_coalesced, "", coalesced)

    def _inc_to(self, name: str, counter: Any, label: str, total: int) -> None:
        """Advance a Prometheus counter to a running total kept elsewhere (totals only go up)."""
        key = (name, label)
        delta = total - self._metric_marks.get(key, 0)
        if delta > 0:
            counter.inc(delta)
        self._metric_marks[key] = max(total, self._metric_marks.get(key, 0))

    async def _watch_views(self) -> None:
        """Log view state changes once (up -> degraded -> up), keep the gauges fresh."""
        while True:
            now = time.time_ns()
            for s in self.sync.statuses(now):
                if self._views_state.get(s.camera_id) != s.state:
                    level = logging.WARNING if s.state in ("degraded", "ended") else logging.INFO
                    log.log(level, "view %s is %s%s", s.camera_id, s.state, f" ({s.error})" if s.error else "")
                    self._views_state[s.camera_id] = s.state
            self.refresh_metrics()
            await asyncio.sleep(0.5)

    def _on_send_ms(self, ms: float) -> None:
        if self.scheduler is not None:
            self.scheduler.last_send_ms = ms

    # --- feedback ---------------------------------------------------------------------------------
    async def apply_feedback(self, pass_id: str, defect_id: str, status: str) -> None:
        """After a committed feedback record: update the live state when the defect belongs to it."""
        if self.scheduler is None or self.scheduler.current_pass_id != pass_id:
            return
        live = await self.workers.run("compute", self.analyzer.apply_feedback, defect_id, cast(DefectStatus, status))
        if live is not None and self.hub.pass_start is not None:
            self.hub.publish("defects", Defects(self.hub.pass_start.vehicle_id, live.last_seen_ts_ns, "delta",
                                                (live,), (), self.hub.next_seq()))

    async def _on_ws_feedback(self, principal: Principal, msg: Feedback, conn_id: str) -> None:
        """Record feedback in the pass that found the defect: the open one, or an ended one (an operator
        may fix a defect after the vehicle has left the inspection cell)."""
        if self.records is None:
            return
        pass_id = await self.workers.run("io", self.records.pass_of_defect, msg.defect_id)
        if pass_id is None:
            log.warning("[%s] feedback refused: no pass recorded defect %r", conn_id, msg.defect_id)
            return
        try:
            await self.workers.run("io", self.records.add_feedback, pass_id, msg.defect_id, _ACTION_FOR[msg.status],
                                   principal.role, msg.ts_ns, msg.comment)
        except RecordError as e:
            log.warning("[%s] feedback refused: %s", conn_id, e)
            return
        await self.apply_feedback(pass_id, msg.defect_id, msg.status)


def _source_size(src: Source) -> tuple[int, int] | None:
    """The picture size a source declares, when it does (twin, WebRTC publisher)."""
    if isinstance(src, PublishedSource):
        return src.size_wh
    if isinstance(src, TwinSource):
        return (src.config.width_px, src.config.height_px)
    return None


def vars_of(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__slots__}

