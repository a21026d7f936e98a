"""Adapters from the models to the analyzer's :class:`~xrserver.inspection.HeatmapModel`: one camera's maps.

* :class:`ModelHeatmaps`: calibrated image models (ONNX Runtime or PyTorch), one per camera or one per
  viewpoint of a camera (the paper's station cameras), chosen per frame by template matching;
* :class:`TravelHeatmaps`: a travel-keyed bank (:mod:`pipeline.models.travel_gaussian`), chosen by the
  frame's conveyor travel;
* :class:`TwinReferenceHeatmaps`: the twin's golden reference (twin only).

A view a model does not score gets an all-NaN map, which the analyzer leaves out of fusion: it
neither raises nor lowers a vertex's score, nor counts for the pass's coverage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from calibration.conveyor import Conveyor
from pipeline.frames import FrameSet
from pipeline.fusion import travel_from_pose
from pipeline.fusion.reference_diff import ReferenceDiffDetector
from pipeline.models.contract import Prediction
from pipeline.models.errors import ArtifactError, ModelError
from pipeline.models.runtime import InferenceModel
from pipeline.models.travel_gaussian import TravelGaussian
from pipeline.preprocess import PreprocessedModel
from pipeline.twin import DigitalTwin

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


#: how far (px per 640 px of frame width) a view may move beyond the moves of a model's training views
TRAINED_SHIFT_SLACK_PX_AT_640 = 3
#: how far (m) the vehicle may be beyond the conveyor travel at which a station model's frames were taken:
#: about what the template's slack above allows at the twin's lower camera (some 3.5 px per cm of travel)
STATION_TRAVEL_SLACK_M = 0.01


def shift_limits(model: PreprocessedModel, max_shift_px: int | None = None) -> npt.NDArray[np.int32] | None:
    """The template offsets (x, y) a model scores, as [[min x, min y], [max x, max y]] px: within
    ``max_shift_px`` of its reference view; else those its training views showed (the artifact's
    ``training.template_offsets_px``) widened by ``TRAINED_SHIFT_SLACK_PX_AT_640``; None: any (no
    template, or an artifact that did not record them). Raises :class:`ArtifactError` on a malformed record."""
    if model.preprocessor.template is None:
        return None
    if max_shift_px is not None:
        return np.array([[-max_shift_px] * 2, [max_shift_px] * 2], np.int32)
    trained = model.manifest.get("training", {}).get("template_offsets_px")
    size = model.preprocessor.frame_size_wh
    if trained is None or size is None:
        return None
    try:
        moves = np.array(trained, np.int32)
    except (TypeError, ValueError):
        moves = np.zeros(0, np.int32)
    if moves.shape != (2, 2) or (moves[0] > moves[1]).any():
        raise ArtifactError(f"model {model.name}: training.template_offsets_px must be [[min x, min y], "
                            f"[max x, max y]] px, got {trained!r}")
    slack = max(1, round(TRAINED_SHIFT_SLACK_PX_AT_640 * size[0] / 640))
    return moves + np.array([[-slack], [slack]], np.int32)


def station_travel(model: InferenceModel) -> tuple[float, float] | None:
    """The conveyor travel (m) at which ``model`` scores frames: its station's (the artifact's
    ``training.station_travel_m``, recorded by ``xrserver train --twin-viewpoint`` or ``--station-travel-m``)
    widened by :data:`STATION_TRAVEL_SLACK_M`; None: at any travel. Raises :class:`ArtifactError` on a
    malformed record."""
    trained = model.manifest.get("training", {}).get("station_travel_m")
    if trained is None:
        return None
    try:
        lo, hi = (float(v) for v in trained)
        ok = np.isfinite([lo, hi]).all() and lo <= hi
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ArtifactError(f"model {model.name}: training.station_travel_m must be [min, max] m, got {trained!r}")
    edge = STATION_TRAVEL_SLACK_M + 1e-6  # a position on the edge is in, whatever the pose's rounding
    return lo - edge, hi + edge


def at_station(travel: tuple[float, float] | None, s_m: float) -> bool:
    """Whether conveyor travel ``s_m`` lies within ``travel`` of :func:`station_travel` (None: any)."""
    return travel is None or travel[0] <= s_m <= travel[1]


def within_limits(limits: npt.NDArray[np.int32] | None, offsets_xy: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    """Per frame, whether its template offset (N, 2) lies within ``limits`` of :func:`shift_limits` (None: any)."""
    if limits is None:
        return np.ones(len(offsets_xy), bool)
    return np.asarray(((offsets_xy >= limits[0]) & (offsets_xy <= limits[1])).all(axis=1))


class ModelHeatmaps:
    """One camera's calibrated model, or one model per viewpoint of the camera.

    A model with template matching scores only the frames its template accepts whose view moved no
    farther than :func:`shift_limits` allow: at most ``max_shift_px`` from where it sat in the model's
    reference frame, or by default within the moves of its training views (a view that moved farther
    shows the model a part of the body, or a frame edge, it never learnt: on the twin's front viewpoint
    a SeamSeg fired on 23 of 24 normal frames whose views moved 5 px or more past them,
    docs/benchmarks.md). A model that records its station's conveyor travel (:func:`station_travel`)
    scores only frames taken there, placed by the frame set's pose on ``conveyor``: a template cannot
    tell a station from the rest of the pass where the body looks alike along the travel (the twin's
    centre viewpoint matched its template at about 0.75 over 1.3 m of a pass). Several models
    serve one camera that is triggered at several stations, as in the paper: each frame goes to the model
    whose template matches it best, so every model needs template matching. A frame no model takes is not
    scored (an all-NaN map) and is counted in ``unscored``; ``scored`` counts each model's frames.

    Raises :class:`ModelError` on a model without calibration, several models of which one has no template,
    or a model that records its station's travel without a ``conveyor``.
    """

    def __init__(self, models: InferenceModel | Sequence[InferenceModel], max_shift_px: int | None = None,
                 conveyor: Conveyor | None = None) -> None:
        self.models = [models] if isinstance(models, InferenceModel) else list(models)
        if not self.models:
            raise ModelError("a camera's model list is empty")
        for m in self.models:
            if m.calibration is None:
                raise ModelError(f"model {m.name} has no calibration; the server needs fitted thresholds")
        #: the models behind preprocessing (all of them, or none: one plain model scores every frame)
        self._preprocessed = [m for m in self.models if isinstance(m, PreprocessedModel)]
        blind = [m.name for m in self.models if not (isinstance(m, PreprocessedModel) and m.preprocessor.template)]
        if len(self.models) > 1 and blind:
            raise ModelError(f"{len(self.models)} models serve one camera, but {blind} match no template: each "
                             "needs one (train with --template) to tell the viewpoints apart")
        if max_shift_px is not None and max_shift_px < 0:
            raise ModelError(f"max_shift_px must be >= 0, got {max_shift_px}")
        self.max_shift_px = max_shift_px
        #: per model with preprocessing, the template offsets and the conveyor travel it scores (None: any)
        self.limits_px = [shift_limits(m, max_shift_px) for m in self._preprocessed]
        self.travel_m = [station_travel(m) for m in self._preprocessed]
        if conveyor is None and any(t is not None for t in self.travel_m):
            raise ModelError("a model that records its station's conveyor travel needs the conveyor to place frames")
        self.conveyor = conveyor
        self.name = "+".join(sorted({m.name for m in self.models}))
        self.version = "+".join(sorted({str(m.manifest.get("model_version", "?")) for m in self.models}))
        self.unscored = 0  # frames no model took: not its view or station, or moved too far from it
        self.scored = [0] * len(self.models)

    def _at_station(self, frameset: FrameSet | None) -> list[bool]:
        """Per preprocessed model, whether ``frameset`` was taken at its station (always, without a record)."""
        if all(t is None for t in self.travel_m):
            return [True] * len(self.travel_m)
        if frameset is None or frameset.T_cell_vehicle is None:
            raise ModelError(f"{self.name} scores frames at its stations' conveyor travel and needs the vehicle "
                             f"pose; frame set {None if frameset is None else frameset.seq} has none")
        assert self.conveyor is not None  # checked in __init__
        s_m = travel_from_pose(self.conveyor, frameset.T_cell_vehicle)
        return [at_station(t, s_m) for t in self.travel_m]

    def heatmaps(self, images: U8, camera_ids: Sequence[str], frameset: FrameSet) -> F32:
        """Calibrated maps; a frame no model takes gets an all-NaN map."""
        if not self._preprocessed:
            self.scored[0] += len(images)
            return self._norm(self.models[0].predict(images))
        here = self._at_station(frameset)
        batches = [m.preprocess(images) if ok else None for m, ok in zip(self._preprocessed, here, strict=True)]
        fit = np.full((len(batches), len(images)), -np.inf)  # the template match of each model that takes a frame
        for k, (b, limits) in enumerate(zip(batches, self.limits_px, strict=True)):
            if b is not None:
                takes = b.accepted & within_limits(limits, b.offsets_xy)
                fit[k] = np.where(takes, np.nan_to_num(b.match_scores, nan=0.0), -np.inf)
        best, taken = fit.argmax(axis=0), np.isfinite(fit.max(axis=0))
        out = np.full(images.shape[:3], np.nan, np.float32)
        for k, (model, batch) in enumerate(zip(self._preprocessed, batches, strict=True)):
            idx = np.flatnonzero(taken & (best == k))
            if idx.size and batch is not None:
                part = batch if idx.size == len(images) else batch.take(idx)
                out[idx] = self._norm(model.predict_preprocessed(part))
                self.scored[k] += idx.size
        if not taken.all():
            self.unscored += int((~taken).sum())
            log.debug("%s: %d frame(s) off every trained view not scored", self.name, int((~taken).sum()))
        return out

    @staticmethod
    def _norm(pred: Prediction) -> F32:
        assert pred.maps_norm is not None  # calibrated, checked in __init__
        return pred.maps_norm


class TwinReferenceHeatmaps:
    """Twin only: each view against a render of the same vehicle without its defects (a golden reference).

    Not a trained model: it needs the nominal body rendered at the frame's exact pose, which only
    the twin has. It exercises fusion, tracking and streaming against ground truth with a detector
    whose maps are right (``benchmarks/fusion_eval.py --detector refdiff`` measures it).
    """

    name = "twin-reference"
    version = "1"
    #: Its maps saturate on a defect, but a defect shows in few of the frames that see its vertices,
    #: so its fused scores stay low: use ``thresholds.score`` about this high (measured on the twin).
    FUSED_THRESHOLD = 0.12

    def __init__(self, twin: DigitalTwin, detector: ReferenceDiffDetector | None = None) -> None:
        """``twin``: an instance of its own (a DigitalTwin is not shared between threads)."""
        self.twin = twin
        self.detector = detector or ReferenceDiffDetector(floor=0.04, span=0.015)

    def heatmaps(self, images: U8, camera_ids: Sequence[str], frameset: FrameSet) -> F32:
        vid = frameset.vehicle_id
        prefix = f"V{self.twin.config.seed:03d}-"
        if vid is None or not vid.startswith(prefix) or frameset.T_cell_vehicle is None:
            raise ModelError(f"twin-reference needs a vehicle of this twin ({prefix}NNNNN) and a pose, got {vid!r}")
        spec = self.twin.vehicle_spec(int(vid[len(prefix):]))
        s_m = travel_from_pose(self.twin.rig.conveyor, frameset.T_cell_vehicle)
        ref = self.twin.render(self.twin.scene(spec.with_defects([])), s_m, frameset.seq + 1_000_000,
                               camera_ids=camera_ids).frameset
        return np.stack([self.detector(c, img, ref.frame(c).image) for c, img in zip(camera_ids, images, strict=True)])


class TravelHeatmaps:
    """Adapts a :class:`~pipeline.models.travel_gaussian.TravelGaussian` to the analyzer: the frame's
    conveyor travel comes from its pose. A frame off the model's travel grid is not scored: its map is
    all NaN, which the analyzer leaves out of fusion, and it is counted in ``unscored``."""

    def __init__(self, model: TravelGaussian, conveyor: Conveyor) -> None:
        self.model = model
        self.conveyor = conveyor
        self.name = model.name
        self.version = model.version
        self.unscored = 0

    def heatmaps(self, images: U8, camera_ids: Sequence[str], frameset: FrameSet) -> F32:
        if frameset.T_cell_vehicle is None:
            raise ModelError(f"{self.name} needs the vehicle pose of frame set {frameset.seq}; it has none")
        s_m = travel_from_pose(self.conveyor, frameset.T_cell_vehicle)
        out = np.full(images.shape[:3], np.nan, np.float32)
        for i, image in enumerate(images):
            m = self.model.heatmap(image, s_m)
            if m is None:
                self.unscored += 1
                log.debug("%s: frame set %d at %.4f m is off the travel grid; not scored", self.name, frameset.seq,
                          s_m)
            else:
                out[i] = m
        return out
