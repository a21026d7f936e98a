"""The inspection analyzer: per-view anomaly maps -> late fusion on the mesh -> tracked defects -> alerts.

:class:`InspectionAnalyzer` implements :class:`xrserver.analyzer.Analyzer` with the real parts:

1. each view's frame goes through its :class:`HeatmapModel` (views that share a model run as one
   batch), which returns calibrated maps in [0, 1] with the model's fitted threshold at 0.5;
2. :class:`pipeline.fusion.Fuser` projects the maps onto the underbody mesh through the
   precomputed visibility tables (``luts``) and accumulates the pass;
3. :class:`overlays.extract.DefectExtractor` finds components above threshold on the mesh and
   :class:`overlays.tracker.DefectTracker` gives them stable ids with hysteresis;
4. at the end of a pass :class:`overlays.alerts.AlertMonitor` updates per-robot/per-seam rates.

Everything here is blocking and runs in the server's single compute worker, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from calibration.rig import Rig
from calibration.underbody import UnderbodyModel
from overlays.alerts import AlertConfig, AlertMonitor
from overlays.defect import Defect, DefectStatus
from overlays.errors import DefectError
from overlays.extract import DefectExtractor, Thresholds
from overlays.seam_map import SeamMap
from overlays.tracker import DefectTracker, TrackerConfig
from pipeline.frames import FrameSet
from pipeline.fusion import FusedState, Fuser, FusionConfig, FusionMesh, VisibilityLUT
from xrserver.analyzer import Analysis, PassSummary, ViewResult

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: Vertices within this distance of a seam count for the pass's seam coverage.
SEAM_BAND_MM = 6.0


class HeatmapModel(Protocol):
    """One view's anomaly model as the server holds it."""

    name: str
    version: str

    def heatmaps(self, images: U8, camera_ids: Sequence[str], frameset: FrameSet) -> F32:
        """(B, H, W, 3) uint8 RGB of ``camera_ids`` -> (B, H, W) float32 in [0, 1], the fitted threshold at 0.5.

        ``frameset`` is the context (pose, vehicle id); image models ignore it. An all-NaN map says the
        model did not score that view (a travel-keyed model off its grid): it is left out of fusion."""
        ...


def view_maps(models: Mapping[str, HeatmapModel], frameset: FrameSet) -> dict[str, F32]:
    """Per-view maps of ``frameset`` by camera id, for the views that have a model in ``models`` and that it
    scored (an all-NaN map is left out); views that share a model and an image size run as one batch."""
    groups: dict[tuple[int, tuple[int, int]], list[int]] = {}
    for i, f in enumerate(frameset.frames):
        model = models.get(f.camera_id)
        if model is not None:
            groups.setdefault((id(model), f.image.shape[:2]), []).append(i)
    out: dict[str, F32] = {}
    for idx in groups.values():
        frames = [frameset.frames[i] for i in idx]
        maps = models[frames[0].camera_id].heatmaps(np.stack([f.image for f in frames]),
                                                    [f.camera_id for f in frames], frameset)
        for f, m in zip(frames, maps, strict=True):
            if not np.isnan(m).all():
                out[f.camera_id] = m
    return out


class InspectionAnalyzer:
    """See the module docstring. ``models`` maps camera id -> model; a view without one is not analysed.

    Raises :class:`ValueError` when a model names a camera the rig lacks or no view has a model.
    """

    def __init__(self, rig: Rig, underbody: UnderbodyModel, models: Mapping[str, HeatmapModel],
                 luts: Mapping[str, VisibilityLUT], thresholds: Thresholds | None = None,
                 fusion: FusionConfig | None = None, tracker: TrackerConfig | None = None,
                 alerts: AlertConfig | None = None) -> None:
        unknown = set(models) - set(rig.camera_ids)
        if unknown:
            raise ValueError(f"models name cameras the rig does not have: {sorted(unknown)}")
        if not models:
            raise ValueError("the inspection analyzer needs a model for at least one view")
        self.models = dict(models)
        distinct = {id(m): m for m in models.values()}.values()
        self.model_name = "+".join(sorted({m.name for m in distinct}))
        self.model_version = "+".join(sorted({m.version for m in distinct}))
        self.mesh = FusionMesh.from_underbody(underbody)
        self.fuser = Fuser(rig, self.mesh, luts, None, fusion)
        self.seam_map = SeamMap.build(self.mesh.vertices_vehicle_m, underbody.seams)
        self.seam_band = self.seam_map.dist_mm <= SEAM_BAND_MM
        self.extractor = DefectExtractor(self.mesh, self.seam_map, thresholds)
        self.tracker = DefectTracker(self.mesh.n_vertices, tracker)
        self.monitor = AlertMonitor({s.robot_id for s in underbody.seams}, {s.seam_id for s in underbody.seams},
                                    alerts)
        self._last: FusedState | None = None

    def begin_pass(self, vehicle_id: str | None) -> None:
        self.fuser.begin_pass(vehicle_id)
        self.tracker.begin_pass(vehicle_id)
        self._last = None

    def analyze(self, frameset: FrameSet) -> Analysis:
        t0 = time.perf_counter()
        maps = view_maps(self.models, frameset)
        t1 = time.perf_counter()
        views = tuple(ViewResult(cid, float(m.max()) if m.size else 0.0, m) for cid, m in maps.items())
        if frameset.T_cell_vehicle is None:  # no pose, nothing to fuse: per-view maps only
            return Analysis(frameset.capture_ts_ns, views, stage_ms={"infer": (t1 - t0) * 1e3})
        state = self.fuser.update(frameset, maps)
        t2 = time.perf_counter()
        delta = self.tracker.update(self.extractor.extract(state), frameset.capture_ts_ns)
        t3 = time.perf_counter()
        self._last = state
        stage_ms = {"infer": (t1 - t0) * 1e3, "fuse": (t2 - t1) * 1e3, "track": (t3 - t2) * 1e3}
        return Analysis(frameset.capture_ts_ns, views, state.score, self.tracker.state(), delta, stage_ms)

    @property
    def last_state(self) -> FusedState | None:
        """The fused map after the last frame set of this pass (None before the first one with a pose)."""
        return self._last

    def end_pass(self, vehicle_id: str | None) -> PassSummary:
        defects = self.tracker.state()
        last = self._last
        coverage = last.coverage(self.seam_band) if last is not None and self.seam_band.any() else None
        alerts = tuple(self.monitor.record_vehicle(vehicle_id, defects, time.time_ns())) if vehicle_id else ()
        st = self.monitor.stats()
        return PassSummary(coverage, defects, last.score if last is not None else None, alerts,
                           (st.robot_rate, st.seam_rate, st.n_vehicles), self._seam_coverage(last))

    def _seam_coverage(self, last: FusedState | None) -> dict[str, float]:
        """Per seam: the fraction of its vertices (within the seam band) seen in at least one frame."""
        if last is None:
            return {}
        seen = last.n_frames >= 1
        out = {}
        for k, seam in enumerate(self.seam_map.seams):
            on = self.seam_band & (self.seam_map.seam_index == k)
            if on.any():
                out[seam.seam_id] = float(seen[on].mean())
        return out

    def apply_feedback(self, defect_id: str, status: DefectStatus) -> Defect | None:
        try:
            return self.tracker.apply_feedback(defect_id, status)
        except DefectError:
            return None
