"""Evaluate late fusion on the twin: 3D localisation of injected defects over full vehicle passes.

For each vehicle: render every frame set of the pass (and the same vehicle without defects as
the golden reference, with its own sensor noise), run a per-view detector, fuse with several
configurations (all views: weighted / mean / max; each view alone), and extract defects from
the end-of-pass fused map over a sweep of thresholds.

Metrics (a GT defect is *found* when a reported defect's centroid lies within 15 mm of the GT
defect, i.e. of its seam-centre axis sampled every mm; for a hole, its centre):
recall, false defects per vehicle (reported defects within 15 mm of no GT defect), localisation
error (reported centroid to GT centroid, mm, median over found defects), seam coverage (fraction
of seam vertices observed in >= 2 frames). Configurations are compared at equal false defects
per vehicle: for each budget, the threshold with the best recall whose FP/vehicle <= budget.

    .venv/bin/python benchmarks/fusion_eval.py --vehicles 8 --step-m 0.1 --out /tmp/fusion_eval.json

Detectors (``--detector``, one or more, each measured on the same frames):

* ``refdiff`` (default): :class:`pipeline.fusion.reference_diff.ReferenceDiffDetector`, the golden
  reference; it measures fusion, extraction and tracking, not a trained model;
* ``served:NAME[:PRESET]``: the models ``xrserver serve`` runs with ``analyzer.model: NAME`` and
  ``analyzer.preset: PRESET`` (default ``twin``, as the server's): one per camera, trained on the
  twin by the server's own recipe and calibrated, or loaded from ``--cache``, and run on ONNX
  Runtime; for ``served:travel-gaussian``, the server's travel-keyed banks on a grid of ``--step-m``.
  The cache is the server's ``out/cache`` by default, so models and visibility tables the
  server built are reused, and the ones built here serve. Each served model is also run at the
  fused threshold the server would use (a travel bank's fitted on ``--validation-passes`` normal
  passes first), with every defect the tracker publishes during the pass counted, as a client sees
  them;
* ``travel-bank[:K[:MM]]``: twin only, the travel-gaussian's scoring
  (:mod:`pipeline.models.travel_gaussian`) against K (default 8) normal vehicles rendered for each
  frame set at its travel, give or take MM millimetres (default 0: exactly aligned; else half the
  vehicles ahead and half behind). It measures how exact the encoder's trigger must be;
* ``config:PATH``: the models a server config (YAML) names in ``models``, loaded as ``xrserver serve --config
  PATH`` loads them (its ``analyzer`` settings apply), at its ``thresholds.score`` or else the 0.5 the server
  gives trained models;
* ``package.module:factory``: any ``HeatmapSource`` factory.

    .venv/bin/python benchmarks/fusion_eval.py --vehicles 8 --step-m 0.1 --detector refdiff served:patchcore

**Stations** (``--stations front centre back``): the paper's station camera, served by one model per
viewpoint (``configs/twin-viewpoints.yaml``). Each pass is rendered only within ``--station-window-m`` of
each station (the other frames of a pass reach no viewpoint's model, so the server would not score them),
and each vehicle's defects lie on the seams of the stations' sub-regions, in view of the cameras there
(round robin over the stations). Seam coverage counts those seams only.

    .venv/bin/python benchmarks/fusion_eval.py --cameras lower --width 640 --height 480 --step-m 0.01 \
        --stations front centre back --quiet-passes 8 --detector refdiff config:configs/twin-viewpoints.yaml

``--quiet-passes N`` also fits, per detector, the fused threshold at which N further normal passes (at the
run's positions) publish nothing, as the server fits a travel bank's (:class:`overlays.calibrate.QuietLevel`),
and counts every defect published live at it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from overlays import Defect, DefectExtractor, DefectTracker, SeamMap, Thresholds
from overlays.calibrate import QuietLevel
from overlays.tracker import TrackerConfig
from pipeline.data.twinset import VIEWPOINT_X_M, defect_in_view, seam_defect, station_travel
from pipeline.fusion import FusedState, Fuser, FusionConfig, FusionMesh, VisibilityLUT
from pipeline.fusion.reference_diff import HeatmapSource, ReferenceDiffDetector
from pipeline.models.errors import ModelError
from pipeline.models.registry import make_config
from pipeline.models.travel_gaussian import TravelGaussian, TravelGaussianConfig, TravelGrid
from pipeline.twin import DEFECT_TYPES, DefectType, DigitalTwin, TwinConfig, TwinSample, VehicleScene
from xrserver.config import AnalyzerConfig, ConfigError, ServerConfig, TwinSourceConfig, load_config
from xrserver.heatmaps import ModelHeatmaps, TwinReferenceHeatmaps
from xrserver.inspection import view_maps
from xrserver.provision import (
    VALIDATION_VEHICLES,
    cached_luts,
    load_view_model,
    twin_pass_threshold,
    twin_travel_threshold,
    twin_view_models,
)

logger = logging.getLogger(__name__)
FOUND_MM = 15.0
F32 = npt.NDArray[np.float32]
#: the travel bank's normal vehicles (indices apart from the test vehicles')
TRAVEL_BANK_FIRST = 20_000


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    cameras: tuple[str, ...]
    config: FusionConfig


@dataclass(frozen=True, slots=True)
class Detector:
    """Per-view maps for one frame set (``sample``); ``reference`` is the same vehicle without its defects,
    rendered only for detectors that need it."""

    name: str
    detect: Callable[[TwinSample, TwinSample | None], dict[str, F32]]
    needs_reference: bool
    #: the fused threshold the server would use, from the visibility tables, the other extraction settings
    #: and the number of validation passes (served models only)
    served_threshold: Callable[[dict[str, VisibilityLUT], Thresholds, int], float] | None = None
    #: views scored so far (a model that leaves views out, such as one per viewpoint; else None)
    views_scored: Callable[[], int] | None = None


def reference_detector(name: str, source: HeatmapSource) -> Detector:
    def detect(sample: TwinSample, reference: TwinSample | None) -> dict[str, F32]:
        assert reference is not None
        return {fr.camera_id: source(fr.camera_id, fr.image, reference.frameset.frame(fr.camera_id).image)
                for fr in sample.frameset.frames}

    return Detector(name, detect, True)


def served_detector(name: str, model: str, preset: str, twin: DigitalTwin, cache: Path, step_m: float) -> Detector:
    """The server's per-camera models for ``analyzer.model: model`` (built now, or loaded from ``cache``); a
    view a model does not score (an all-NaN map) is left out, by the server's own code."""
    models = twin_view_models(twin, twin.rig.camera_ids, AnalyzerConfig(model=model, preset=preset), cache, step_m,
                              progress=True)

    def detect(sample: TwinSample, reference: TwinSample | None) -> dict[str, F32]:
        return view_maps(models, sample.frameset)

    def threshold(luts: dict[str, VisibilityLUT], thresholds: Thresholds, n_passes: int) -> float:
        if model == TravelGaussian.name:
            return twin_travel_threshold(twin, models, luts, thresholds, cache, step_m, n_passes=n_passes,
                                         progress=True)
        return TwinReferenceHeatmaps.FUSED_THRESHOLD if model == TwinReferenceHeatmaps.name else 0.5

    return Detector(name, detect, False, threshold)


def config_detector(name: str, config: ServerConfig, twin: DigitalTwin, cache: Path) -> Detector:
    """The models ``config`` names for the twin's cameras, loaded as the server loads them, and the fused
    threshold the server would use: the config's, else fitted on whole normal passes as its twin source
    streams them (:func:`xrserver.provision.twin_pass_threshold`). Raises ValueError for a camera the twin
    lacks, :class:`ModelError` for an artifact the server would refuse."""
    an = config.analyzer
    models = {cid: load_view_model(cid, paths, twin.rig, an.runtime, an.device, an.max_view_shift_px)
              for cid, paths in config.models.items()}
    source = next((s for s in config.sources if isinstance(s, TwinSourceConfig)), TwinSourceConfig())

    def detect(sample: TwinSample, reference: TwinSample | None) -> dict[str, F32]:
        return view_maps(models, sample.frameset)

    def threshold(luts: dict[str, VisibilityLUT], thresholds: Thresholds, n_passes: int) -> float:
        if config.thresholds.score is not None:
            return config.thresholds.score
        return twin_pass_threshold(twin, models, luts, thresholds, cache, source.speed_mps / source.fps,
                                   an.validation_passes, progress=True)

    served = [m for m in models.values() if isinstance(m, ModelHeatmaps)]
    return Detector(name, detect, False, threshold, lambda: sum(sum(m.scored) for m in served))


def travel_bank_detector(name: str, twin: DigitalTwin, k: int, offset_m: float) -> Detector:
    """Each view against ``k`` normal vehicles at the same conveyor travel ± ``offset_m`` (see the module's
    docstring)."""
    normals = [twin.scene(twin.vehicle_spec(TRAVEL_BANK_FIRST + j, defect_types=[])) for j in range(k)]

    def detect(sample: TwinSample, reference: TwinSample | None) -> dict[str, F32]:
        bank = [twin.render(sc, sample.s_m + (offset_m if j % 2 else -offset_m), seq=sample.frameset.seq).frameset
                for j, sc in enumerate(normals)]
        here = TravelGrid(sample.s_m, 1.0, 1, 0.0)  # one position: this frame set's
        out = {}
        for fr in sample.frameset.frames:
            stack = np.stack([fs.frame(fr.camera_id).image for fs in bank])
            hm = TravelGaussian.fit(fr.camera_id, here, [stack]).heatmap(fr.image, sample.s_m)
            assert hm is not None
            out[fr.camera_id] = hm
        return out

    return Detector(name, detect, False)


#: builds one detector for the twin, with the served models' cache and the conveyor travel between frame sets
DetectorFactory = Callable[[DigitalTwin, Path, float], Detector]


def parse_detector(spec: str) -> DetectorFactory:
    """What builds the detector ``spec`` names. A bad spec fails here, before the twin, the visibility tables
    or any model is built: ValueError (ConfigError for an unknown model or preset), ImportError or
    AttributeError."""
    if spec == "refdiff":
        return lambda twin, cache, step_m: reference_detector(spec, ReferenceDiffDetector())
    if spec == "travel-bank" or spec.startswith("travel-bank:"):
        _, k, mm = [*spec.split(":"), "", ""][:3]
        try:
            n, offset_m = int(k or 8), float(mm or 0) / 1000
        except ValueError:
            raise ValueError(f"{spec}: give travel-bank[:K[:MM]] a whole number of vehicles and millimetres") from None
        if n < TravelGaussianConfig().min_normals:
            raise ValueError(f"{spec}: the travel bank needs at least {TravelGaussianConfig().min_normals} vehicles")
        return lambda twin, cache, step_m: travel_bank_detector(spec, twin, n, offset_m)
    if spec.startswith("served:"):
        model, _, preset = spec.removeprefix("served:").partition(":")
        if model not in (TravelGaussian.name, TwinReferenceHeatmaps.name):
            make_config(model, preset or "twin")  # the check twin_models would make after minutes of other work
        return lambda twin, cache, step_m: served_detector(spec, model, preset or "twin", twin, cache, step_m)
    if spec.startswith("config:"):
        try:
            config = load_config(spec.removeprefix("config:"))
        except ConfigError as e:
            raise ValueError(str(e)) from None
        if not config.models:
            raise ValueError(f"{spec}: the config names no models")
        return lambda twin, cache, step_m: config_detector(spec, config, twin, cache)
    module, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    return lambda twin, cache, step_m: reference_detector(spec, factory())


def match(centroids: npt.NDArray[np.float64], gt_axes: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """(n_reported, n_gt) distances in mm from each reported centroid to each GT axis."""
    out = np.full((len(centroids), len(gt_axes)), np.inf)
    for j, axis in enumerate(gt_axes):
        if len(centroids):
            out[:, j] = 1000.0 * np.min(np.linalg.norm(centroids[:, None, :] - axis[None], axis=2), axis=1)
    return out


def station_positions(twin: DigitalTwin, camera_id: str, stations: list[str], window_m: float,
                      step_m: float) -> npt.NDArray[np.float64]:
    """The conveyor travels within ``window_m`` of each station (where a viewpoint faces ``camera_id``), ``step_m``
    apart, in pass order."""
    n = round(window_m / step_m)
    centres = [station_travel(twin, camera_id, vp) for vp in stations]
    return np.unique(np.round([c + k * step_m for c in centres for k in range(-n, n + 1)], 6))


def station_vehicle(twin: DigitalTwin, rng: np.random.Generator, vehicle: int, types: list[DefectType],
                    stations: list[str], camera_ids: tuple[str, ...], first: int) -> VehicleScene:
    """Vehicle ``vehicle`` with one defect per type of ``types``, the k-th on a seam of station
    ``stations[(first + k) % len(stations)]``, drawn again until its whole region is in view of one of
    ``camera_ids`` there (as the twin's viewpoint datasets draw them)."""
    spec = twin.vehicle_spec(vehicle, defect_types=[])
    defects = []
    for k, dtype in enumerate(types):
        vp = stations[(first + k) % len(stations)]
        seams = [sm for sm in twin.seams if sm.region == vp]
        views = [(twin.rig.camera(c), twin.rig.conveyor.T_cell_vehicle(station_travel(twin, c, vp)))
                 for c in camera_ids]
        for _ in range(100):
            d = seam_defect(rng, f"v{vehicle:05d}-d{k}", dtype, seams)
            region = twin.scene(spec.with_defects([d])).regions[0]
            if any(defect_in_view(cam, T, region, 0.02) for cam, T in views):
                defects.append(d)
                break
        else:
            raise RuntimeError(f"no {dtype} on the seams of station {vp} lies in view of {camera_ids}")
    return twin.scene(spec.with_defects(defects))


def quiet_threshold(detector: Detector, twin: DigitalTwin, camera_ids: tuple[str, ...],
                    positions: npt.NDArray[np.float64], fuser: Fuser, quiet: QuietLevel, n_passes: int) -> float:
    """``quiet.level`` after ``n_passes`` normal vehicles (none of the run's or the served models') pass the
    ``camera_ids`` at ``positions``, scored by ``detector`` and fused by ``fuser`` (the server's weighted fusion)."""
    for j in range(n_passes):
        scene = twin.vehicle(VALIDATION_VEHICLES + j, defect_types=[])
        fuser.begin_pass(scene.spec.vehicle_id)
        quiet.begin_pass()
        for i, s in enumerate(positions):
            sample = twin.render(scene, float(s), seq=i, camera_ids=camera_ids)
            ref = twin.render(scene, float(s), seq=i + 1_000_000, camera_ids=camera_ids) if detector.needs_reference \
                else None
            quiet.observe(fuser.update(sample.frameset, detector.detect(sample, ref)))
    return quiet.level


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=8)
    ap.add_argument("--defects-per-vehicle", type=int, default=2)
    ap.add_argument("--step-m", type=float, default=0.1, help="conveyor travel between frame sets")
    ap.add_argument("--lut-step-m", type=float, default=0.02)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector", nargs="+", default=["refdiff"], help="refdiff, served:MODEL[:PRESET], "
                    "travel-bank[:K[:MM]] or package.module:factory; several are measured on the same frames")
    ap.add_argument("--cache", type=Path, default=Path("out/cache"),
                    help="the served models and the visibility tables (the server's storage.cache_dir)")
    ap.add_argument("--budgets", default="0.5,1,2", help="false defects per vehicle to compare at")
    ap.add_argument("--validation-passes", type=int, default=3,
                    help="normal passes that fit a served travel-gaussian's fused threshold (the server's default)")
    ap.add_argument("--cameras", nargs="+", default=None, help="the cameras to render and fuse (default: all)")
    ap.add_argument("--stations", nargs="+", choices=sorted(VIEWPOINT_X_M), default=None,
                    help="render only near these viewpoints' stations, with the defects on their seams")
    ap.add_argument("--station-window-m", type=float, default=0.05,
                    help="with --stations: conveyor travel rendered either side of each station")
    ap.add_argument("--quiet-passes", type=int, default=0,
                    help="also fit each detector's fused threshold on this many normal passes (0: not)")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    if len(set(args.detector)) < len(args.detector):
        ap.error(f"--detector: a detector is named twice in {args.detector}")
    try:
        factories = [parse_detector(spec) for spec in args.detector]
    except (ValueError, ImportError, AttributeError) as e:
        ap.error(f"--detector: {e}")
    logging.basicConfig(level=logging.WARNING)

    twin = DigitalTwin(TwinConfig(seed=args.seed, width_px=args.width, height_px=args.height))
    cams = tuple(args.cameras or twin.rig.camera_ids)
    unknown = sorted(set(cams) - set(twin.rig.camera_ids))
    if unknown:
        ap.error(f"--cameras: the twin has no camera {unknown}; it has {list(twin.rig.camera_ids)}")
    model = twin.underbody
    mesh = FusionMesh.from_underbody(model)
    t0 = time.perf_counter()
    luts = cached_luts(twin.rig, mesh, twin.pass_range_m(), args.lut_step_m, args.cache, list(cams), progress=True)
    lut_s = time.perf_counter() - t0
    variants = [Variant(f"all views, {m}", cams, FusionConfig(view_mode=m)) for m in ("weighted", "mean", "max")
                if len(cams) > 1]
    variants += [Variant(f"{c} alone", (c,), FusionConfig(view_mode="weighted")) for c in cams]
    seam_map = SeamMap.build(mesh.vertices_vehicle_m, model.seams)
    seam_vertices = seam_map.dist_mm <= 6.0
    if args.stations:  # coverage of the stations' seams only
        inspected = [k for k, sm in enumerate(seam_map.seams) if sm.region in args.stations]
        seam_vertices &= np.isin(seam_map.seam_index, inspected)
    try:
        detectors = [make(twin, args.cache, args.step_m) for make in factories]
    except (ModelError, ValueError) as e:
        ap.error(f"--detector: {e}")
    needs_reference = any(d.needs_reference for d in detectors)
    runs = [(d, v) for d in detectors for v in variants]
    fusers = {(d.name, v.name): Fuser(twin.rig, mesh, luts, None, v.config) for d, v in runs}
    # a served model's own fused threshold (a travel bank's is fitted on normal passes now), at which each pass
    # is also extracted and tracked live, frame set by frame set, as the server publishes defects
    s0, s1 = twin.pass_range_m()
    positions = (station_positions(twin, cams[0], args.stations, args.station_window_m, args.step_m)
                 if args.stations else np.arange(s0, s1 + 1e-9, args.step_m))
    extraction = Thresholds(min_frames=2)
    # fused thresholds at which each pass is also extracted and tracked live, frame set by frame set, as the
    # server publishes defects: a served model's own (a travel bank's is fitted on normal passes now), and with
    # --quiet-passes the lowest at which that many normal passes publish nothing
    levels: dict[str, dict[str, float]] = {d.name: {} for d in detectors}
    for d in detectors:
        if d.served_threshold is not None:
            levels[d.name]["served"] = d.served_threshold(luts, extraction, args.validation_passes)
        if args.quiet_passes:
            t1 = time.perf_counter()
            levels[d.name]["quiet"] = quiet_threshold(d, twin, cams, positions, Fuser(twin.rig, mesh, luts),
                                                      QuietLevel(mesh, seam_map, extraction,
                                                                 TrackerConfig().confirm_hits), args.quiet_passes)
            print(f"{d.name}: quiet on {args.quiet_passes} normal passes at {levels[d.name]['quiet']:.4f} "
                  f"({time.perf_counter() - t1:.0f} s)", flush=True)
    live = {(d.name, v.name, label): (DefectExtractor(mesh, seam_map, replace(extraction, score=t)),
                                      DefectTracker(mesh.n_vertices))
            for d, v in runs for label, t in levels[d.name].items()}
    published: dict[tuple[str, str, str], list[npt.NDArray[np.float64]]] = {k: [] for k in live}
    scores: dict[tuple[str, str], list[F32]] = {k: [] for k in fusers}
    n_frames: dict[tuple[str, str], list[npt.NDArray[np.int32]]] = {k: [] for k in fusers}
    gts: list[list[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.float64]]]] = []
    fuse_s = 0.0
    detect_s = {d.name: 0.0 for d in detectors}
    scored_before = {d.name: d.views_scored() for d in detectors if d.views_scored is not None}
    n_updates = 0
    rng = np.random.default_rng([args.seed, 1000])
    for k in range(args.vehicles):
        types = [DEFECT_TYPES[(k * args.defects_per_vehicle + j) % len(DEFECT_TYPES)]
                 for j in range(args.defects_per_vehicle)]
        scene = (station_vehicle(twin, rng, 1000 + k, types, args.stations, cams, k * args.defects_per_vehicle)
                 if args.stations else twin.vehicle(1000 + k, defect_types=types))
        ref = twin.scene(scene.spec.with_defects([])) if needs_reference else None
        gts.append([(r.spec.defect_type, r.centroid_m, r.centers_m) for r in scene.regions])
        for f in fusers.values():
            f.begin_pass(scene.spec.vehicle_id)
        for _, tracker in live.values():
            tracker.begin_pass(scene.spec.vehicle_id)
        reports: dict[tuple[str, str, str], dict[str, Defect]] = {k: {} for k in live}
        t_v = time.perf_counter()
        for i, s in enumerate(positions):
            sample = twin.render(scene, float(s), seq=i, camera_ids=cams)
            ref_sample = twin.render(ref, float(s), seq=i + 1_000_000, camera_ids=cams) if ref is not None else None
            for d in detectors:
                t1 = time.perf_counter()
                hm = d.detect(sample, ref_sample)
                detect_s[d.name] += time.perf_counter() - t1
                for v in variants:
                    t1 = time.perf_counter()
                    state = fusers[d.name, v.name].update(sample.frameset, {c: hm[c] for c in v.cameras if c in hm})
                    fuse_s += time.perf_counter() - t1
                    n_updates += 1
                    for label in levels[d.name]:
                        extractor, tracker = live[d.name, v.name, label]
                        delta = tracker.update(extractor.extract(state), state.capture_ts_ns)
                        reports[d.name, v.name, label].update({r.defect_id: r for r in (*delta.added, *delta.updated)})
        for live_key, by_id in reports.items():
            published[live_key].append(np.array([r.centroid_vehicle_m for r in by_id.values()]).reshape(-1, 3))
        for key, fuser in fusers.items():
            scores[key].append(fuser.temporal_score())
            n_frames[key].append(fuser._n_frames.copy())
        print(f"vehicle {k + 1}/{args.vehicles} {types}: {time.perf_counter() - t_v:.0f} s", flush=True)

    def tally(thr: float, reported: list[npt.NDArray[np.float64]]) -> dict[str, Any]:
        """Recall (also by defect type), false defects per vehicle (and each one's distance to the vehicle's
        nearest defect) and localisation error of the centroids reported per vehicle."""
        found_by: dict[str, list[bool]] = {}
        errs: list[float] = []
        false_mm: list[float] = []
        for k, cent in enumerate(reported):
            dist = match(cent, [g[2] for g in gts[k]])
            for j, g in enumerate(gts[k]):
                hit = bool(len(cent)) and dist[:, j].min() <= FOUND_MM
                found_by.setdefault(g[0], []).append(hit)
                if hit:
                    i_best = int(np.argmin(dist[:, j]))
                    errs.append(float(1000 * np.linalg.norm(cent[i_best] - g[1])))
            false = ~np.any(dist <= FOUND_MM, axis=1)
            false_mm += dist[false].min(axis=1, initial=np.inf).tolist()
        hits = [h for v in found_by.values() for h in v]
        return {"threshold": float(thr), "recall": sum(hits) / max(len(hits), 1),
                "fp_per_vehicle": len(false_mm) / args.vehicles,
                "loc_err_mm_median": float(np.median(errs)) if errs else None,
                "recall_by_type": {t: float(np.mean(v)) for t, v in found_by.items()},
                "false_to_nearest_defect_mm": sorted(round(d, 1) for d in false_mm)}

    def end_of_pass(key: tuple[str, str], thr: float) -> dict[str, Any]:
        """:func:`tally` of the defects extracted from each pass's final fused map at ``thr``."""
        ex = DefectExtractor(mesh, seam_map, replace(extraction, score=float(min(max(thr, 1e-6), 1.0))))
        reported = []
        for sc, nf in zip(scores[key], n_frames[key], strict=True):
            zeros32 = np.zeros_like(sc)
            st = FusedState(0, 0, None, 0.0, cams, sc, zeros32, nf, nf, zeros32,
                            np.zeros(len(sc), np.uint16), {}, 0.0, 0.0, 0)
            reported.append(np.array([c.centroid_vehicle_m for c in ex.extract(st)]).reshape(-1, 3))
        return tally(thr, reported)

    budgets = [float(b) for b in args.budgets.split(",")]
    results: dict[str, dict[str, Any]] = {d.name: {} for d in detectors}
    for d, v in runs:
        key = (d.name, v.name)
        allv = np.concatenate(scores[key])
        pos = allv[allv > 0]
        # thresholds at quantiles of the fused scores: fine above the 90th (where a whole pass's defects lie), coarse
        # below it (where they lie when few vertices score, as near the stations)
        quantiles = np.concatenate([np.linspace(0.0, 0.9, 15, endpoint=False), np.linspace(0.9, 0.99999, 60)])
        grid = np.unique(np.quantile(pos, quantiles)) if len(pos) else np.array([0.5])
        sweep = [end_of_pass(key, float(thr)) for thr in grid]
        cov = float(np.mean([np.mean(nf[seam_vertices] >= 2) for nf in n_frames[key]]))
        at = {}
        for b in budgets:
            ok = [s for s in sweep if s["fp_per_vehicle"] <= b]
            at[str(b)] = max(ok, key=lambda s: (s["recall"], -s["fp_per_vehicle"])) if ok else None
        row: dict[str, Any] = {"seam_coverage": cov, "at_budget": at, "sweep": sweep}
        for label in ("served", "quiet"):
            t = levels[d.name].get(label)
            row[f"at_{label}"] = None if t is None else tally(t, published[(*key, label)])
        results[d.name][v.name] = row

    report = {
        "command": "benchmarks/fusion_eval.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()} ({platform.system()}), CPU only",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "detectors": args.detector, "vehicles": args.vehicles, "frames_per_pass": len(positions),
        "image": f"{args.width}x{args.height}", "cameras": list(cams), "stations": args.stations,
        "quiet_passes": args.quiet_passes, "mesh_vertices": mesh.n_vertices, "lut_s": lut_s,
        "mean_fuse_ms_per_update": 1000 * fuse_s / max(n_updates, 1),
        "detect_ms_per_frame_set": {k: 1000 * t / (args.vehicles * len(positions)) for k, t in detect_s.items()},
        "views_scored_per_pass": {d.name: (d.views_scored() - scored_before[d.name]) / args.vehicles
                                  for d in detectors if d.views_scored is not None},
        "gt": [[g[0] for g in v] for v in gts], "results": results,
    }
    print_table(report, budgets)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
    return report


def print_table(report: dict[str, Any], budgets: list[float]) -> None:
    where = f"near the stations {report['stations']}" if report["stations"] else "over the whole pass"
    print(f"\n{report['vehicles']} vehicles, {report['frames_per_pass']} frame sets per pass {where}, "
          f"{report['image']}, mesh {report['mesh_vertices']} vertices; detector ms per frame set "
          f"({len(report['cameras'])} views): "
          + ", ".join(f"{k} {v:.0f}" for k, v in report["detect_ms_per_frame_set"].items()))
    for name, n in report["views_scored_per_pass"].items():
        print(f"{name}: {n:.1f} views scored per pass, of {report['frames_per_pass'] * len(report['cameras'])}")
    points: list[tuple[str, Any]] = [(f"at <= {b} false defects / vehicle (threshold in-sample)", str(b))
                                     for b in budgets]
    points.append(("at the served threshold (fitted apart from these vehicles), every defect published live", "served"))
    if report["quiet_passes"]:
        points.append((f"at the lowest threshold at which {report['quiet_passes']} other normal passes publish "
                       "nothing, every defect published live", "quiet"))
    for title, budget in points:
        live = budget in ("served", "quiet")
        notes: list[str] = []
        print(f"\n{title}")
        print("| detector | configuration | recall | false defects / vehicle | loc. error median (mm) "
              "| seam coverage | threshold |")
        print("|---|---|---|---|---|---|---|")
        for detector, rows in report["results"].items():
            for name, r in rows.items():
                s = r[f"at_{budget}"] if live else r["at_budget"][budget]
                if s is None and live:
                    continue
                if s is None:
                    print(f"| {detector} | {name} | n/a | n/a | n/a | {r['seam_coverage']:.3f} | n/a |")
                    continue
                err = "n/a" if s["loc_err_mm_median"] is None else f"{s['loc_err_mm_median']:.1f}"
                print(f"| {detector} | {name} | {s['recall']:.2f} | {s['fp_per_vehicle']:.2f} | {err} "
                      f"| {r['seam_coverage']:.3f} | {s['threshold']:.4f} |")
                if live:
                    notes.append(f"{detector}, {name}: recall by type " + ", ".join(
                        f"{t} {v:.2f}" for t, v in s["recall_by_type"].items()) + "; false defects' distance to "
                        f"the nearest defect (mm): {s['false_to_nearest_defect_mm']}")
        if notes:
            print("\n" + "\n".join(notes))


if __name__ == "__main__":
    main()
