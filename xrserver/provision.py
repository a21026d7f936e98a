"""What the inspection analyzer needs before the first frame: visibility tables and view models.

Both are cached on disk under a key of everything they depend on, so only the first start pays:

* :func:`cached_luts` builds one :class:`~pipeline.fusion.VisibilityLUT` per camera (a raycast per
  camera and conveyor step, ~30 s for the default twin on 2 cores) and stores it as ``.npz``.
* :func:`twin_models` trains one anomaly model per twin camera on normal frames rendered by the
  twin, calibrates its thresholds on frames with planted defects (ground-truth masks from the
  twin), and saves a verified artifact (weights, ONNX, manifest); later starts load the artifact
  with ONNX Runtime.
* :func:`twin_travel_models` builds one travel-keyed bank per camera
  (:mod:`pipeline.models.travel_gaussian`) from normal vehicles rendered at every trigger position,
  and :func:`twin_travel_threshold` fits their fused threshold on passes of further normal vehicles
  (:mod:`xrserver.fused_threshold`, which also fits it on recorded passes).
* :func:`load_view_model` loads what the config's ``models`` names for a camera instead, and
  :func:`twin_pass_threshold` fits those models' fused threshold on the twin's whole normal passes.

Each comes wrapped in its adapter of :mod:`xrserver.heatmaps`. A damaged cache entry is rebuilt, with a
warning. Blocking; called before the server listens.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from calibration.rig import Rig, load_rig, rig_to_dict
from calibration.underbody import UnderbodyModel, load_underbody
from overlays.extract import Thresholds
from pipeline.frames import FrameSet
from pipeline.fusion import FusionError, FusionMesh, MeshRaycaster, VisibilityLUT
from pipeline.models import api as models_api
from pipeline.models.artifacts import replace_dir
from pipeline.models.errors import ArtifactError, ModelError
from pipeline.models.registry import config_to_dict, make_config
from pipeline.models.training import FitContext
from pipeline.models.travel_gaussian import TravelGaussian, TravelGaussianConfig, TravelGrid, is_travel_artifact
from pipeline.preprocess import load_preprocessed
from pipeline.twin import DigitalTwin, VehicleScene
from pipeline.twin.dataset import trigger_grid
from pipeline.twin.defects import DEFECT_TYPES
from xrserver.config import AnalyzerConfig, ServerConfig
from xrserver.fused_threshold import Pass, cached, digest, fit_key, quiet_level, recorded_threshold, served_key
from xrserver.heatmaps import ModelHeatmaps, TravelHeatmaps, TwinReferenceHeatmaps, shift_limits
from xrserver.inspection import HeatmapModel, InspectionAnalyzer
from xrserver.sources import Source, TwinSource

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: Bump when the training recipe below changes, so old cached models are not reused.
RECIPE_VERSION = "1"


@dataclass(frozen=True, slots=True, eq=False)
class Cell:
    """The inspected cell as the server sees it: geometry for clients and the analyzer over it."""

    rig: Rig
    underbody: UnderbodyModel
    analyzer: InspectionAnalyzer


def cached_luts(rig: Rig, mesh: FusionMesh, s_range_m: tuple[float, float], step_m: float,
                cache_dir: Path, camera_ids: Sequence[str] | None = None,
                progress: bool = False) -> dict[str, VisibilityLUT]:
    """One visibility table per camera (all, or ``camera_ids``), from ``cache_dir`` or built (and stored) now."""
    key = digest(rig_to_dict(rig), mesh.vertices_vehicle_m.tobytes(), mesh.normals_vehicle.tobytes(),
                 list(s_range_m), step_m)
    folder = cache_dir / "luts" / key
    out: dict[str, VisibilityLUT] = {}
    raycaster: MeshRaycaster | None = None
    wanted = [c for c in rig.cameras if camera_ids is None or c.camera_id in camera_ids]
    cams = tqdm(wanted, desc="visibility tables", unit="camera", disable=not progress)
    for cam in cams:
        path = folder / f"{cam.camera_id}.npz"
        if path.exists():
            try:
                lut = VisibilityLUT.load(path)
                if lut.n_vertices == mesh.n_vertices and lut.camera_id == cam.camera_id:
                    out[cam.camera_id] = lut
                    continue
                log.warning("%s does not match the mesh; rebuilding it", path)
            except FusionError as e:
                log.warning("cached visibility table unusable (%s); rebuilding it", e)
        raycaster = raycaster or MeshRaycaster(mesh)
        lut = VisibilityLUT.build(cam, raycaster, rig.conveyor, s_range_m, step_m)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        lut.save(tmp)
        tmp.replace(path)
        out[cam.camera_id] = lut
    return out


#: first index of the twin's normal vehicles whose frames train the models (none is ever a test vehicle)
NORMAL_VEHICLES = 10_000
#: first index of the twin's normal vehicles that validate them (none trains a model or is a test vehicle)
VALIDATION_VEHICLES = 30_000


def _training_frames(twin: DigitalTwin, camera_ids: Sequence[str], n: int, seed: int) -> dict[str, U8]:
    """Normal frames per camera: ``n`` defect-free frame sets (4 vehicles) at random conveyor positions."""
    rng = np.random.default_rng(seed)
    s0, s1 = twin.pass_range_m()
    out: dict[str, list[U8]] = {c: [] for c in camera_ids}
    per_vehicle = -(-n // 4)
    for v in range(4):
        scene = twin.vehicle(NORMAL_VEHICLES + v, defect_types=[])
        for s in rng.uniform(s0, s1, per_vehicle):
            for f in twin.render(scene, float(s), camera_ids=camera_ids).frameset.frames:
                out[f.camera_id].append(f.image)
    return {c: np.stack(v[:n]) for c, v in out.items()}


def _validation_frames(twin: DigitalTwin, camera_ids: Sequence[str],
                       n_vehicles: int) -> dict[str, tuple[U8, npt.NDArray[np.bool_]]]:
    """Per camera: frames with each planted defect centred in view, one normal frame per vehicle, and masks."""
    imgs: dict[str, list[U8]] = {c: [] for c in camera_ids}
    masks: dict[str, list[npt.NDArray[np.bool_]]] = {c: [] for c in camera_ids}
    s_lo, s_hi = twin.pass_range_m()
    for k in range(n_vehicles):
        types = [DEFECT_TYPES[(2 * k + j) % len(DEFECT_TYPES)] for j in range(2)]
        scene = twin.vehicle(20_000 + k, defect_types=types)
        shots = [(scene, float(np.clip(twin.s_centering(c, r.centroid_m), s_lo, s_hi)), c)
                 for r in scene.regions for c in camera_ids]
        shots += [(twin.vehicle(VALIDATION_VEHICLES + k, defect_types=[]), 0.0, c) for c in camera_ids]
        for sc, s, cid in shots:
            sample = twin.render(sc, s, camera_ids=[cid])
            imgs[cid].append(sample.frameset.frames[0].image)
            masks[cid].append(sample.truth[cid].defect_mask)
    return {c: (np.stack(imgs[c]), np.stack(masks[c])) for c in camera_ids}


def twin_models(twin: DigitalTwin, camera_ids: Sequence[str], cache_dir: Path, model: str = "patchcore",
                preset: str = "twin", n_train: int = 24, n_val_vehicles: int = 3, seed: int = 0,
                progress: bool = False, runtime: str = "onnx") -> dict[str, ModelHeatmaps]:
    """One calibrated model per camera, loaded from ``cache_dir`` or trained on the twin now.

    Raises :class:`~pipeline.models.errors.ModelError` when training or export fails.
    """
    settings = config_to_dict(make_config(model, preset))  # a changed preset trains again
    key = digest(RECIPE_VERSION, asdict(twin.config), model, preset, settings, n_train, n_val_vehicles, seed)
    out: dict[str, ModelHeatmaps] = {}
    todo = []
    for cid in camera_ids:
        folder = cache_dir / "models" / f"{model}-{preset}-{key}" / cid
        try:
            out[cid] = ModelHeatmaps(load_preprocessed(folder, runtime=runtime))
            log.info("model for %s loaded from %s", cid, folder)
        except ModelError as e:
            if folder.exists():
                log.warning("cached model for %s unusable (%s); training it again", cid, e)
                shutil.rmtree(folder)
            todo.append((cid, folder))
    if not todo:
        return out
    bar = tqdm(total=1 + 3 * len(todo), desc=f"training {model} on the twin (first run only)", unit="step",
               disable=not progress)
    bar.set_postfix_str("rendering")
    ids = [cid for cid, _ in todo]
    train = _training_frames(twin, ids, n_train, seed)
    val = _validation_frames(twin, ids, n_val_vehicles)
    bar.update()
    for cid, folder in todo:
        bar.set_postfix_str(cid)
        val_imgs, val_masks = val[cid]
        trained = models_api.train(model, train[cid], preset=preset, ctx=FitContext(seed=seed))
        bar.update()
        trained = models_api.calibrate(trained, val_imgs, val_masks)
        bar.update()
        replace_dir(folder, partial(models_api.save, trained))
        out[cid] = ModelHeatmaps(load_preprocessed(folder, runtime=runtime))
        bar.update()
    bar.close()
    return dict(sorted(out.items(), key=lambda kv: list(camera_ids).index(kv[0])))


def _travel_recipe(twin: DigitalTwin, cache_dir: Path, step_m: float,
                   n_normals: int) -> tuple[TravelGrid, TravelGaussianConfig, Path]:
    """The twin's trigger grid at ``step_m``, the bank settings, and the cache folder of the banks."""
    grid = trigger_grid(twin, step_m)
    config = TravelGaussianConfig()
    key = digest(RECIPE_VERSION, TravelGaussian.version, asdict(twin.config), asdict(grid), asdict(config), n_normals)
    return grid, config, cache_dir / "models" / f"{TravelGaussian.name}-{key}"


def twin_travel_models(twin: DigitalTwin, camera_ids: Sequence[str], cache_dir: Path, step_m: float,
                       n_normals: int = 8, progress: bool = False) -> dict[str, TravelGaussian]:
    """One travel-keyed model per camera, loaded from ``cache_dir`` or built now from ``n_normals`` normal
    vehicles rendered at each trigger position ``numpy.arange(s0, s1, step_m)`` of the pass (where the
    twin's stream captures at ``step_m = speed / fps``). Raises :class:`ModelError`."""
    grid, config, banks = _travel_recipe(twin, cache_dir, step_m, n_normals)
    out: dict[str, TravelGaussian] = {}
    todo = []
    for cid in camera_ids:
        folder = banks / cid
        if folder.exists():
            try:
                out[cid] = TravelGaussian.load(folder)
                log.info("travel model for %s loaded from %s", cid, folder)
                continue
            except ModelError as e:
                log.warning("cached travel model for %s unusable (%s); building it again", cid, e)
                shutil.rmtree(folder)
        todo.append((cid, folder))
    if not todo:
        return out
    scenes = [twin.vehicle(NORMAL_VEHICLES + j, defect_types=[]) for j in range(n_normals)]
    training = {"source": "digital twin", "twin_seed": twin.config.seed,
                "normal_vehicles": [sc.spec.vehicle_id for sc in scenes]}
    for cid, folder in todo:
        positions = tqdm(grid.positions_m(), desc=f"normal passes for {cid} (first run only)", unit="position",
                         disable=not progress)
        stacks = (np.stack([twin.render(sc, float(s), seq=k, camera_ids=[cid]).frameset.frames[0].image
                            for sc in scenes]) for k, s in enumerate(positions))
        model = TravelGaussian.fit(cid, grid, stacks, config, training)
        replace_dir(folder, model.save)
        out[cid] = model
    return dict(sorted(out.items(), key=lambda kv: list(camera_ids).index(kv[0])))


def _twin_passes(twin: DigitalTwin, models: Mapping[str, HeatmapModel], positions: npt.NDArray[np.float64],
                 n_passes: int) -> list[Pass]:
    """Whole passes of ``n_passes`` normal vehicles (none of them trains a model), captured at ``positions``
    (rendered as they are read)."""
    def frames(scene: VehicleScene) -> Iterator[FrameSet]:
        for k, s in enumerate(positions):
            yield twin.render(scene, float(s), seq=k, camera_ids=list(models)).frameset

    scenes = [twin.vehicle(VALIDATION_VEHICLES + j, defect_types=[]) for j in range(n_passes)]
    return [(sc.spec.vehicle_id, frames(sc)) for sc in scenes]


def _fit_on_twin(twin: DigitalTwin, models: Mapping[str, HeatmapModel], luts: Mapping[str, VisibilityLUT],
                 thresholds: Thresholds, positions: npt.NDArray[np.float64], n_passes: int,
                 progress: bool) -> dict[str, Any]:
    with tqdm(total=n_passes * len(positions), desc="normal passes for the fused threshold (first run only)",
              unit="frame set", disable=not progress) as bar:
        return quiet_level(twin.rig, twin.underbody, models, luts, thresholds,
                           _twin_passes(twin, models, positions, n_passes), bar.update)


def twin_travel_threshold(twin: DigitalTwin, models: Mapping[str, HeatmapModel], luts: Mapping[str, VisibilityLUT],
                          thresholds: Thresholds, cache_dir: Path, step_m: float, n_normals: int = 8,
                          n_passes: int = 3, progress: bool = False) -> float:
    """The fused threshold of the twin's travel banks ``models`` (built by :func:`twin_travel_models` with
    ``step_m`` and ``n_normals``): the lowest at which the server would publish no defect over whole passes of
    ``n_passes`` normal vehicles, none of them in the banks, captured at every trigger position, with the other
    settings of ``thresholds`` (:mod:`xrserver.fused_threshold`). Cached beside the banks."""
    grid, _, banks = _travel_recipe(twin, cache_dir, step_m, n_normals)
    key = digest(RECIPE_VERSION, fit_key(models, luts, thresholds), n_passes)
    return cached(banks / f"fused-threshold-{key}.json",
                  partial(_fit_on_twin, twin, models, luts, thresholds, grid.positions_m(), n_passes, progress))


def twin_pass_threshold(twin: DigitalTwin, models: Mapping[str, HeatmapModel], luts: Mapping[str, VisibilityLUT],
                        thresholds: Thresholds, cache_dir: Path, step_m: float, n_passes: int = 3,
                        progress: bool = False) -> float:
    """The fused threshold of the ``models`` a config names (trained models or travel banks) served on the twin:
    the lowest at which the server would publish no defect over whole passes of ``n_passes`` normal vehicles
    (none of them trains a model) as the twin source streams them, a frame set every ``step_m`` of travel.
    Cached under ``cache_dir/thresholds`` by the models, the twin and the settings; a retrained model is
    fitted again."""
    positions = trigger_grid(twin, step_m).positions_m()  # where DigitalTwin.stream captures
    key = digest(RECIPE_VERSION, fit_key(models, luts, thresholds), served_key(models), asdict(twin.config), step_m,
                 n_passes)
    return cached(cache_dir / "thresholds" / f"fused-threshold-{key}.json",
                  partial(_fit_on_twin, twin, models, luts, thresholds, positions, n_passes, progress))


def twin_view_models(twin: DigitalTwin, camera_ids: Sequence[str], analyzer: AnalyzerConfig, cache_dir: Path,
                     step_m: float, progress: bool = False) -> dict[str, HeatmapModel]:
    """The served model of each camera for ``analyzer.model``, made from the twin: its golden reference, a
    travel-keyed bank at ``step_m`` (the source's conveyor travel between frame sets), or a model trained
    (on first run) or loaded from ``cache_dir``. Raises :class:`ModelError`."""
    if analyzer.model == TwinReferenceHeatmaps.name:
        reference = TwinReferenceHeatmaps(DigitalTwin(twin.config, twin.rig))  # its own: renders off-thread
        return {c: reference for c in camera_ids}
    if analyzer.model == TravelGaussian.name:
        travel = twin_travel_models(twin, camera_ids, cache_dir, step_m, analyzer.normal_passes, progress)
        return {c: TravelHeatmaps(m, twin.rig.conveyor) for c, m in travel.items()}
    return dict(twin_models(twin, camera_ids, cache_dir, analyzer.model, analyzer.preset, analyzer.train_frames,
                           progress=progress, runtime=analyzer.runtime))


def load_view_model(camera_id: str, paths: Path | Sequence[Path], rig: Rig, runtime: str = "onnx",
                    device: str = "cpu", max_shift_px: int | None = None) -> HeatmapModel:
    """Camera ``camera_id``'s served model from its artifact directory: a travel-gaussian bank (recorded for
    this camera, at its image size) or a trained image model; or from one trained image model per viewpoint
    of the camera (a list of directories; see :class:`~xrserver.heatmaps.ModelHeatmaps`). Raises
    :class:`ModelError` (an :class:`ArtifactError` for an artifact of another camera or image size), or
    :class:`ValueError` for a camera the rig does not have."""
    if camera_id not in rig.camera_ids:
        raise ValueError(f"models: camera {camera_id!r} is not in the rig, which has {list(rig.camera_ids)}")
    cam = rig.camera(camera_id)
    size = (cam.width_px, cam.height_px)
    several = [paths] if isinstance(paths, Path) else list(paths)
    if len(several) == 1 and is_travel_artifact(several[0]):
        bank = TravelGaussian.load(several[0])
        if bank.camera_id != camera_id or bank.size_wh != size:
            raise ArtifactError(f"{several[0]}: a travel bank of camera {bank.camera_id} at {bank.size_wh[0]}x"
                                f"{bank.size_wh[1]}, given for camera {camera_id} at {size[0]}x{size[1]}")
        return TravelHeatmaps(bank, rig.conveyor)
    models = []
    for path in several:
        if is_travel_artifact(path):
            raise ArtifactError(f"{path}: a travel bank serves its camera alone, not in a list of viewpoints")
        model = load_preprocessed(path, runtime, device)
        if max_shift_px is None and model.preprocessor.template is not None and shift_limits(model) is None:
            log.warning("%s records no moves of its training views (trained before 2026-12-05): it scores every frame "
                        "its template accepts, however far the view moved; set analyzer.max_view_shift_px or train it "
                        "again", path)
        fitted = model.preprocessor.frame_size_wh
        if fitted is not None and fitted != size:
            raise ArtifactError(f"{path}: fitted on {fitted[0]}x{fitted[1]} frames, given for camera {camera_id} "
                                f"at {size[0]}x{size[1]}")
        models.append(model)
    try:
        served = ModelHeatmaps(models, max_shift_px, rig.conveyor)
    except ModelError as e:
        raise ModelError(f"models.{camera_id}: {e}") from e
    if len(models) > 1:  # a station camera: every model has a template, so one travel per artifact
        for path, travel in zip(several, served.travel_m, strict=True):
            if travel is None:
                log.warning("%s records no station travel (trained before 2026-12-05, or without "
                            "--station-travel-m): it scores every frame its template accepts wherever the vehicle "
                            "is, which on a continuous stream is more than its station", path)
    return served


def prepare_inspection(config: ServerConfig, sources: Sequence[Source], progress: bool = False) -> Cell:
    """Build the inspection analyzer (and the cell it sees) for ``config``; trains twin models on first run.

    Raises :class:`ModelError` (a model cannot be loaded or trained) or :class:`ValueError`
    (rig, underbody and models do not fit together).
    """
    twin_src = next((s for s in sources if isinstance(s, TwinSource)), None)
    cache = config.storage.cache_dir
    an = config.analyzer
    if config.rig is not None:
        rig = load_rig(config.rig)
    elif twin_src is not None:
        rig = twin_src.rig
    else:
        raise ValueError("rig: a rig file is needed without the twin")
    if twin_src is not None and twin_src.twin is None:
        twin_src.twin = DigitalTwin(twin_src.config, twin_src.rig)
    twin = twin_src.twin if twin_src is not None else None
    underbody = load_underbody(config.underbody) if config.underbody else twin.underbody if twin else None
    if underbody is None:
        raise ValueError("underbody: an underbody mesh is needed without the twin")
    models: dict[str, HeatmapModel] = {
        cid: load_view_model(cid, paths, rig, an.runtime, an.device, an.max_view_shift_px)
        for cid, paths in config.models.items()}
    step_m = 0.0  # the twin source's conveyor travel between frame sets
    if twin is not None and twin_src is not None:
        step_m = twin.config.speed_mps / (twin_src.fps or 10.0)
        missing = [c for c in twin_src.camera_ids if c not in models]
        if missing:
            models.update(twin_view_models(twin, missing, an, cache, step_m, progress))
    elif an.model == TwinReferenceHeatmaps.name:
        raise ValueError("analyzer.model: twin-reference works with the twin source only")
    mesh = FusionMesh.from_underbody(underbody)
    s_range = twin.pass_range_m() if twin is not None else pass_range_from_mesh(mesh)
    luts = cached_luts(rig, mesh, s_range, an.lut_step_m, cache, list(models), progress)
    th = config.thresholds
    thresholds = Thresholds(score=th.score or 0.5, per_seam=dict(th.per_seam), min_area_mm2=th.min_area_mm2,
                            min_frames=th.min_frames, seam_band_mm=th.seam_band_mm)
    travel = any(isinstance(m, TravelHeatmaps) for m in models.values())
    named = bool(config.models) and len(config.models) == len(models)  # every served model named in `models`
    folder = an.validation_folder if th.score is None and named else None  # recorded passes that fit it
    if th.score is None:
        if any(isinstance(m, TwinReferenceHeatmaps) for m in models.values()):
            thresholds = replace(thresholds, score=TwinReferenceHeatmaps.FUSED_THRESHOLD)
        elif twin is not None and step_m and not config.models and an.model == TravelGaussian.name:
            thresholds = replace(thresholds, score=twin_travel_threshold(
                twin, models, luts, thresholds, cache, step_m, an.normal_passes, an.validation_passes, progress))
        elif folder is not None:
            thresholds = replace(thresholds, score=recorded_threshold(
                rig, underbody, models, luts, thresholds, folder, cache, progress))
        elif named and twin is not None and step_m:
            thresholds = replace(thresholds, score=twin_pass_threshold(
                twin, models, luts, thresholds, cache, step_m, an.validation_passes, progress))
        elif travel:
            log.warning("thresholds.score: travel banks recorded off the twin have no fitted fused threshold %s; "
                        "using 0.5 (3 standard deviations in every view). Set thresholds.score for this line",
                        "without analyzer.validation_folder" if named else "while other models serve beside them")
    if an.validation_folder is not None and folder is None:
        log.warning("analyzer.validation_folder is not used: it fits the fused threshold of the models named in "
                    "`models` for every served camera, when thresholds.score is unset")
    log.info("fused threshold %.4f", thresholds.score)
    analyzer = InspectionAnalyzer(rig, underbody, models, luts, thresholds)
    return Cell(rig, underbody, analyzer)


def pass_range_from_mesh(mesh: FusionMesh, margin_m: float = 0.6) -> tuple[float, float]:
    """Conveyor travel over which a body of this mesh passes (the vehicle frame is centred at s = 0)."""
    half = float(np.abs(mesh.vertices_vehicle_m[:, 0]).max()) + margin_m
    return (-half, half)
