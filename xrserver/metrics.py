"""Prometheus metrics of one server (its own registry, so several servers can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Pipeline stages; each histogram observes capture -> end of that stage, in seconds.
STAGES: tuple[str, ...] = ("sync", "infer", "fuse", "encode", "send")
_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.stage_latency = Histogram("xr_stage_latency_seconds", "Capture to the end of a pipeline stage",
                                       ["stage"], registry=r, buckets=_BUCKETS)
        self.camera_fps = Gauge("xr_camera_fps", "Frames per second delivered by a camera", ["camera"], registry=r)
        self.camera_up = Gauge("xr_camera_up", "1 when the camera delivers frames, else 0", ["camera"], registry=r)
        self.camera_frame_age = Gauge("xr_camera_last_frame_age_seconds", "Age of the camera's last frame",
                                      ["camera"], registry=r)
        self.dropped_frames = Counter("xr_dropped_frames_total", "Frames replaced before use (latest-wins)",
                                      ["camera"], registry=r)
        self.reconnects = Counter("xr_camera_reconnects_total", "Source reconnect attempts", ["camera"], registry=r)
        self.framesets = Counter("xr_framesets_total", "Frame sets analysed", registry=r)
        self.clients = Gauge("xr_clients", "Connected WebSocket clients", registry=r)
        self.client_replaced = Counter("xr_client_messages_replaced_total",
                                       "Latest-wins messages replaced in client queues", registry=r)
        self.client_coalesced = Counter("xr_client_state_coalesced_total",
                                        "State messages coalesced into a snapshot for slow clients", registry=r)
        self.ws_closed = Counter("xr_ws_closed_total", "WebSocket connections closed, by close code", ["code"],
                                 registry=r)
        self.analyzer_errors = Counter("xr_analyzer_errors_total", "Frame sets whose analysis failed", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
