"""The pluggable processing stage: frame set in, per-view heatmaps + fused state + defects out.

The server calls an :class:`Analyzer` from the compute worker (never the event loop), one frame
set at a time, and publishes what it returns. The model + fusion analyzer plugs in here::

    class ModelFusionAnalyzer:                      # to be written with pipeline.models/fusion
        model_name = manifest.name; model_version = manifest.version
        def begin_pass(self, vehicle_id):           tracker.begin_pass(vehicle_id); fuser reset
        def analyze(self, fs: FrameSet) -> Analysis:
            maps = {cid: model.predict(batch) ...}  # batch the views that share a model
            state = fuser.update(fs, maps)          # pipeline.fusion.Fuser
            delta = tracker.update(extractor.extract(state), fs.capture_ts_ns)
            return Analysis(..., vertex_scores=state.scores, defects_delta=delta,
                            defects=tracker.state(), stage_ms={"infer": .., "fuse": .., "track": ..})
        def end_pass(self, vehicle_id) -> PassSummary:
            alerts = monitor.record_vehicle(vehicle_id, tracker.state(), ts)
            return PassSummary(coverage, tracker.state(), state.scores, tuple(alerts))
        def apply_feedback(self, defect_id, status) -> Defect | None: tracker.apply_feedback(...)

:class:`DiagnosticAnalyzer` is the one implementation today. It is NOT detection: it computes
an image statistic per view (local contrast) so the transport, scheduling, queues, records and
health can run end to end with real frames. It never reports defects.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from overlays.alerts import AlertEvent
from overlays.defect import Defect, DefectStatus
from overlays.tracker import DefectsDelta
from pipeline.frames import FrameSet

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class ViewResult:
    """One view's result: ``score`` in [0, 1] and a heatmap (h, w) float32 in [0, 1] (any resolution)."""

    camera_id: str
    score: float
    heatmap: F32


@dataclass(frozen=True, slots=True, eq=False)
class Analysis:
    """What one frame set produced. ``vertex_scores`` (V,) are the fused per-vertex scores (None
    without fusion); ``defects`` the vehicle's full current defect state, ``defects_delta`` the
    change this frame set made (None: no change); ``stage_ms`` durations of the analyzer's inner
    stages (``infer``, ``fuse``, ``track``), which become latency histograms."""

    capture_ts_ns: int
    views: tuple[ViewResult, ...]
    vertex_scores: F32 | None = None
    defects: tuple[Defect, ...] = ()
    defects_delta: DefectsDelta | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, eq=False)
class PassSummary:
    """The end of one vehicle pass: what the record keeps and which alerts it raised or cleared."""

    coverage: float | None
    defects: tuple[Defect, ...] = ()
    vertex_scores: F32 | None = None
    alerts: tuple[AlertEvent, ...] = ()
    rates: tuple[dict[str, float], dict[str, float], int] | None = None  # robot rates, seam rates, window size
    seam_coverage: dict[str, float] = field(default_factory=dict)


class Analyzer(Protocol):
    """A frame-set stage. Every method is blocking and called from ONE worker thread in order."""

    model_name: str
    model_version: str

    def begin_pass(self, vehicle_id: str | None) -> None: ...

    def analyze(self, frameset: FrameSet) -> Analysis: ...

    def end_pass(self, vehicle_id: str | None) -> PassSummary: ...

    def apply_feedback(self, defect_id: str, status: DefectStatus) -> Defect | None:
        """Apply an operator's status to the live state; None when the defect is not live."""
        ...


class DiagnosticAnalyzer:
    """A diagnostic stage, not a detector: per view, local contrast ``|gray - blur(gray)|``.

    ``scale``: heatmap downscale factor. Views of equal size are processed as one batch array,
    as a model runtime would batch them.
    """

    model_name = "diagnostic-image-stats"
    model_version = "1"

    def __init__(self, scale: int = 8) -> None:
        if scale < 1:
            raise ValueError("scale must be >= 1")
        self.scale = scale
        self.frames_seen = 0

    def begin_pass(self, vehicle_id: str | None) -> None:
        self.frames_seen = 0

    def analyze(self, frameset: FrameSet) -> Analysis:
        t0 = time.perf_counter()
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(frameset.frames):
            by_size.setdefault(f.size_px, []).append(i)
        results: dict[int, ViewResult] = {}
        for (w, h), idx in by_size.items():
            batch = np.stack([frameset.frames[i].image for i in idx]).astype(np.float32).mean(axis=3)  # (B, H, W)
            small = np.stack([cv2.resize(g, (max(1, w // self.scale), max(1, h // self.scale)),
                                         interpolation=cv2.INTER_AREA) for g in batch])
            blur = np.stack([cv2.blur(g, (5, 5)) for g in small])
            maps = np.clip(np.abs(small - blur) / 64.0, 0.0, 1.0).astype(np.float32)
            for k, i in enumerate(idx):
                results[i] = ViewResult(frameset.frames[i].camera_id, float(maps[k].mean()), maps[k])
        self.frames_seen += 1
        infer_ms = (time.perf_counter() - t0) * 1e3
        views = tuple(results[i] for i in range(len(frameset.frames)))
        return Analysis(frameset.capture_ts_ns, views, stage_ms={"infer": infer_ms})

    def end_pass(self, vehicle_id: str | None) -> PassSummary:
        return PassSummary(coverage=None)

    def apply_feedback(self, defect_id: str, status: DefectStatus) -> Defect | None:
        return None
