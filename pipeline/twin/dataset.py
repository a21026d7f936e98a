"""Export twin renders as a dataset in the MVTec AD folder layout, one category per camera.

Layout (``<root>/<camera_id>/...``)::

    train/good/*.png                              normal vehicles, several frames each
    validation/good/*.png                         normal vehicles, one frame each
    validation/<type>/*.png                       one defect per vehicle, centred in this camera
    validation_ground_truth/<type>/<stem>_mask.png
    test/good/*.png
    test/<type>/*.png
    ground_truth/<type>/<stem>_mask.png           (standard MVTec AD names for the test split)
    roi/<split>/<type>/<stem>.png                 the view's nominal seam pixels (ROI before its margin):
                                                  the seams as laid without the frame's defect

Beside the categories: ``metadata.json`` (every image with its vehicle, conveyor travel,
``T_cell_vehicle`` and defects), ``rig.yaml`` and ``underbody.yaml`` + ``underbody.ply``.
Train, validation and test use disjoint vehicles, as in the paper (5 frames per training
body, one per validation/test body). A defect that a camera cannot see is left out of that
camera's split and listed under ``not_visible`` in the metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from calibration.rig import atomic_write_text, save_rig
from calibration.underbody import save_underbody
from pipeline.data.travel_passes import GRID_FILE, read_grid, write_grid
from pipeline.models.errors import InputError
from pipeline.models.travel_gaussian import TravelGrid
from pipeline.twin import surface
from pipeline.twin.defects import DEFECT_TYPES, DefectType
from pipeline.twin.twin import DigitalTwin, TwinSample

#: A defect must cover at least this many pixels of a view to count as visible there.
MIN_VISIBLE_PX = 4
#: Conveyor travel range (m) in which the body fills the views of the default rig.
BODY_IN_VIEW_M = surface.HALF_L - 0.6


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """How many vehicles and frames go into each split."""

    train_vehicles: int = 10
    frames_per_train_vehicle: int = 5
    val_normal: int = 5
    val_defects_per_type: int = 2
    test_normal: int = 10
    test_defects_per_type: int = 4
    camera_ids: tuple[str, ...] | None = None
    defect_types: tuple[DefectType, ...] = DEFECT_TYPES

    def __post_init__(self) -> None:
        counts = asdict(self)
        for name in ("train_vehicles", "frames_per_train_vehicle", "val_normal", "val_defects_per_type",
                     "test_normal", "test_defects_per_type"):
            if counts[name] < 0:
                raise ValueError(f"export plan: {name} must be >= 0")
        if self.train_vehicles * self.frames_per_train_vehicle == 0:
            raise ValueError("export plan: need at least one training frame")
        bad = [t for t in self.defect_types if t not in DEFECT_TYPES]
        if bad:
            raise ValueError(f"export plan: unknown defect types {bad}; use {DEFECT_TYPES}")

    @property
    def total_renders(self) -> int:
        """Upper bound of render calls, for progress bars."""
        n_types = len(self.defect_types)
        n_cam = len(self.camera_ids) if self.camera_ids else 4
        defect = (self.val_defects_per_type + self.test_defects_per_type) * n_types * n_cam
        return self.train_vehicles * self.frames_per_train_vehicle + self.val_normal + self.test_normal + defect


@dataclass
class ExportSummary:
    root: str
    images: int = 0
    masks: int = 0
    per_camera: dict[str, dict[str, int]] = field(default_factory=dict)
    not_visible: list[dict[str, Any]] = field(default_factory=list)


def _write_png(path: Path, rgb_or_gray: np.ndarray[Any, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR) if rgb_or_gray.ndim == 3 else rgb_or_gray
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")


def _write_seams(path: Path, seam_pixels: np.ndarray[Any, Any]) -> None:
    """The view's nominal seam pixels (the ROI before its margin)."""
    _write_png(path, seam_pixels.astype(np.uint8) * 255)


def export_mvtec(
    twin: DigitalTwin, root: str | Path, plan: ExportPlan | None = None,
    progress: Callable[[int], object] | None = None,
) -> ExportSummary:
    """Render and write the dataset; returns counts. ``progress(n)`` is called after each render."""
    plan = plan or ExportPlan()
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    cams = plan.camera_ids or twin.rig.camera_ids
    for c in cams:
        twin.rig.camera(c)  # raises KeyError naming the known cameras
    summary = ExportSummary(str(out), per_camera={c: {} for c in cams})
    records: list[dict[str, Any]] = []
    rng = np.random.default_rng([twin.config.seed, 99])
    tick = progress or (lambda n: None)
    next_index = 0

    def record(sample: TwinSample, cam: str, split: str, kind: str, stem: str, mask_px: int) -> None:
        records.append({
            "camera_id": cam, "split": split, "type": kind, "file": f"{cam}/{split}/{kind}/{stem}.png",
            "vehicle_id": sample.vehicle.vehicle_id, "vehicle_index": sample.vehicle.index, "s_m": sample.s_m,
            "T_cell_vehicle": np.asarray(sample.frameset.T_cell_vehicle).tolist(), "mask_px": mask_px,
            "defects": [asdict(d) for d in sample.vehicle.defects],
            "defect_centroids_vehicle_m": [r.centroid_m.round(5).tolist() for r in twin.scene(sample.vehicle).regions],
        })
        summary.images += 1
        key = f"{split}/{kind}"
        summary.per_camera[cam][key] = summary.per_camera[cam].get(key, 0) + 1

    def normal_split(split: str, n_vehicles: int, frames_each: int) -> None:
        nonlocal next_index
        for _ in range(n_vehicles):
            scene = twin.vehicle(next_index, defect_types=[])
            for _ in range(frames_each):
                s = float(rng.uniform(-BODY_IN_VIEW_M, BODY_IN_VIEW_M))
                sample = twin.render(scene, s, seq=len(records), camera_ids=cams)
                stem = f"{scene.spec.vehicle_id}_s{round(s * 1000):+05d}"
                for f in sample.frameset.frames:
                    _write_png(out / f.camera_id / split / "good" / f"{stem}.png", f.image)
                    _write_seams(out / f.camera_id / "roi" / split / "good" / f"{stem}.png",
                                 sample.truth[f.camera_id].seam_index >= 0)
                    record(sample, f.camera_id, split, "good", stem, 0)
                tick(1)
            next_index += 1

    def defect_split(split: str, gt_dir: str, per_type: int) -> None:
        nonlocal next_index
        for dtype in plan.defect_types:
            for _ in range(per_type):
                scene = twin.vehicle(next_index, defect_types=[dtype])
                region = scene.regions[0]
                for cam in cams:
                    s = twin.s_centering(cam, region.centroid_m) + float(rng.uniform(-0.08, 0.08))
                    sample = twin.render(scene, s, seq=len(records), camera_ids=[cam])
                    mask = sample.truth[cam].defect_mask
                    tick(1)
                    if int(mask.sum()) < MIN_VISIBLE_PX:
                        summary.not_visible.append(
                            {"camera_id": cam, "split": split, "vehicle_id": scene.spec.vehicle_id, "type": dtype}
                        )
                        continue
                    stem = f"{scene.spec.vehicle_id}_s{round(s * 1000):+05d}"
                    _write_png(out / cam / split / dtype / f"{stem}.png", sample.frameset.frames[0].image)
                    _write_png(out / cam / gt_dir / dtype / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
                    _write_seams(out / cam / "roi" / split / dtype / f"{stem}.png",
                                 twin.nominal_seam_pixels(scene, s, cam))
                    summary.masks += 1
                    record(sample, cam, split, dtype, stem, int(mask.sum()))
                next_index += 1

    normal_split("train", plan.train_vehicles, plan.frames_per_train_vehicle)
    normal_split("validation", plan.val_normal, 1)
    defect_split("validation", "validation_ground_truth", plan.val_defects_per_type)
    normal_split("test", plan.test_normal, 1)
    defect_split("test", "ground_truth", plan.test_defects_per_type)

    save_rig(twin.rig, out / "rig.yaml")
    save_underbody(twin.underbody, out / "underbody.yaml")
    meta = {
        "format": "mvtec-ad+validation",
        "twin": asdict(twin.config),
        "plan": asdict(plan),
        "summary": asdict(summary),
        "rig": "rig.yaml",
        "underbody": "underbody.yaml",
        "images": records,
    }
    atomic_write_text(out / "metadata.json", json.dumps(meta, indent=1))
    return summary


def category_dirs(root: str | Path) -> Sequence[Path]:
    """The per-camera category folders of an exported dataset."""
    return sorted(p for p in Path(root).iterdir() if (p / "train" / "good").is_dir())


def trigger_grid(twin: DigitalTwin, step_m: float) -> TravelGrid:
    """The positions the twin's stream captures at when the conveyor moves ``step_m`` between frame sets
    (``speed / fps``): ``numpy.arange(s0, s1, step_m)`` over the pass, within a quarter step (at most 2 mm)."""
    return TravelGrid.covering(twin.pass_range_m(), step_m, tolerance_m=min(step_m / 4, 0.002))


def export_passes(twin: DigitalTwin, root: str | Path, vehicle_indices: Sequence[int], step_m: float,
                  camera_ids: Sequence[str] | None = None,
                  progress: Callable[[int], object] | None = None) -> TravelGrid:
    """Whole normal passes of the vehicles ``vehicle_indices`` at every position of :func:`trigger_grid`, in
    the layout :mod:`pipeline.data.travel_passes` reads (``grid.json``, ``<vehicle id>/<camera>/<k>.png``);
    ``progress(1)`` after each frame set."""
    cams = list(camera_ids or twin.rig.camera_ids)
    grid = trigger_grid(twin, step_m)
    base = Path(root)
    held = read_grid(base) if (base / GRID_FILE).exists() else grid
    if held != grid:
        raise InputError(f"{base} holds passes on another trigger grid ({held}); use a new folder")
    for index in vehicle_indices:
        scene = twin.vehicle(index, defect_types=[])
        for k, s in enumerate(grid.positions_m()):
            sample = twin.render(scene, float(s), seq=k, camera_ids=cams)
            for fr in sample.frameset.frames:
                _write_png(base / scene.spec.vehicle_id / fr.camera_id / f"{k:05d}.png", fr.image)
            if progress is not None:
                progress(1)
    write_grid(base, grid)  # last: a folder without it is an export that did not finish
    return grid
