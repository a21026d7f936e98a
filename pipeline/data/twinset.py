"""Small in-memory train/validation/test sets for one camera, rendered directly by the digital twin.

Two layouts, both with disjoint vehicles per split:

* a **viewpoint** (``plan.viewpoint`` = ``"front"``, ``"centre"`` or ``"back"``): the paper's setting
  (§4.1). Every frame is taken at the conveyor station where that sub-region of the underbody faces
  the camera, with a trigger jitter of ``station_jitter_m`` (the template matching aligns it again),
  and every defect sits on a seam of that sub-region. One model per viewpoint, as the paper trains.
* the whole pass (``viewpoint=None``): normal frames at random travel, defect frames centred on the
  defect. What a served model sees, and a much harder task for the memory-bank models.

Each image also gets an ROI mask: the pixels of the vehicle's nominal seams in that view (as laid
without defects, at the frame's travel) dilated by ``roi_margin_px``. The ROI is known exactly in the
twin; for real images use :mod:`pipeline.preprocess`. It never follows the defect: a missing bead's
gap stays inside it, and a misaligned bead may leave it, as on a line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from calibration.camera import CameraModel
from calibration.underbody import Seam
from pipeline.data.mvtec import AnomalySet
from pipeline.preprocess.roi import widen_each
from pipeline.twin import DEFECT_TYPES, DefectType, DigitalTwin, TwinSample, VehicleScene
from pipeline.twin.defects import DefectSpec, sample_defect
from pipeline.twin.render import project_vehicle_points
from pipeline.twin.vehicle import DefectRegion

log = logging.getLogger(__name__)
#: travel range (m) in which the body fills the views (as the twin's exporter)
BODY_IN_VIEW_M = 1.6
#: the paper's three viewpoints of the lower camera, by the vehicle-frame x (m) brought to the optical axis
VIEWPOINT_X_M = {"front": 1.6, "centre": 0.0, "back": -1.6}


@dataclass(frozen=True, slots=True)
class TwinSetPlan:
    camera_id: str = "lower"
    train_frames: int = 12
    #: training frames taken of each vehicle at different travels (the paper: 5 per underbody, §4)
    frames_per_train_vehicle: int = 5
    val_normal: int = 4
    val_defects_per_type: int = 1
    test_normal: int = 6
    test_defects_per_type: int = 2
    defect_types: tuple[DefectType, ...] = DEFECT_TYPES
    roi_margin_px: int = 6
    first_vehicle: int = 0
    #: a defect is drawn again on the next vehicle unless its whole ground-truth region projects
    #: inside the frame, at least this share of the frame's width away from its edges
    edge_margin: float = 0.02
    viewpoint: str | None = None
    station_jitter_m: float = 0.01

    def __post_init__(self) -> None:
        if self.frames_per_train_vehicle < 1:
            raise ValueError(f"frames_per_train_vehicle must be >= 1, got {self.frames_per_train_vehicle}")
        if not 0.0 <= self.edge_margin < 0.5:
            raise ValueError(f"edge_margin must be within [0, 0.5), got {self.edge_margin}")
        if self.viewpoint is not None and self.viewpoint not in VIEWPOINT_X_M:
            raise ValueError(f"unknown viewpoint {self.viewpoint!r}; use one of {sorted(VIEWPOINT_X_M)} or None")


def station_travel(twin: DigitalTwin, camera_id: str, viewpoint: str) -> float:
    """The conveyor travel (m) of ``viewpoint``'s station: where that sub-region faces ``camera_id``."""
    return twin.s_centering(camera_id, np.array([VIEWPOINT_X_M[viewpoint], 0.0, 0.0]))


def scaled_roi_margin_px(width_px: int) -> int:
    """6 px per 640 px of frame width (about 16 mm at the lower camera's underbody), so that every
    frame size of the default rig masks the same area around the seams."""
    return max(1, round(6 * width_px / 640))


def defect_in_view(camera: CameraModel, T_cell_vehicle: npt.NDArray[np.float64], region: DefectRegion,
                   edge_margin: float) -> bool:
    """Whether the defect's whole ground-truth region (its centreline widened by the region's radius)
    lies in front of ``camera`` and inside its frame, ``edge_margin`` x the frame's width away from
    the edges. Normalised to the frame, so the answer does not depend on the camera's resolution."""
    uv, z = project_vehicle_points(camera, T_cell_vehicle, region.centers_m)
    if not np.all(z > 0):
        return False
    radius_px = region.radius_m * float(camera.K[0, 0]) / float(z.min())
    return bool(np.all(camera.in_image(uv, edge_margin * camera.width_px + radius_px)))


def seam_defect(rng: np.random.Generator, defect_id: str, dtype: DefectType, seams: Sequence[Seam]) -> DefectSpec:
    """A defect of ``dtype`` on a seam drawn from ``seams``."""
    seam = seams[int(rng.integers(0, len(seams)))]
    return sample_defect(rng, defect_id, dtype, seam.seam_id, seam.length_m, seam.bead_width_mm)


def defect_on_seams(twin: DigitalTwin, rng: np.random.Generator, vehicle: int, dtype: DefectType,
                    seams: Sequence[Seam]) -> VehicleScene:
    """Vehicle ``vehicle`` without its own defects, with one defect of ``dtype`` on a seam drawn from ``seams``."""
    spec = twin.vehicle_spec(vehicle, defect_types=[])
    return twin.scene(spec.with_defects([seam_defect(rng, f"v{vehicle:05d}-d0", dtype, seams)]))


def render_twin_splits(twin: DigitalTwin, plan: TwinSetPlan | None = None,
                       progress: Callable[[int], None] | None = None,
                       rendered: Callable[[TwinSample], None] | None = None,
                       ) -> tuple[AnomalySet, AnomalySet, AnomalySet]:
    """Render (train, validation, test) for ``plan.camera_id``. Train holds normal frames only; a split
    the plan gives no frames is empty. ``rendered`` is given each kept frame's sample (its vehicle and
    travel) in the order of the splits' frames: train, validation, test.

    A defect that does not lie wholly in the view (:func:`defect_in_view`) is drawn again on the next
    vehicle. The rule is geometric, not a pixel count, so the same plan draws the same vehicles and
    defects at every frame size: results at two camera resolutions compare the same defects, and a
    defect too small for a camera to resolve stays in its test set, as on a line.
    """
    plan = plan or TwinSetPlan()
    cam = plan.camera_id
    camera = twin.rig.camera(cam)
    rng = np.random.default_rng([twin.config.seed, 7])
    tick = progress or (lambda n: None)
    keep = rendered or (lambda smp: None)
    vehicle = plan.first_vehicle
    station = None
    if plan.viewpoint is not None:
        station = station_travel(twin, cam, plan.viewpoint)
        seams = [sm for sm in twin.seams if sm.region == plan.viewpoint]

    def travel() -> float:
        if station is None:
            return float(rng.uniform(-BODY_IN_VIEW_M, BODY_IN_VIEW_M))
        return station + float(rng.uniform(-plan.station_jitter_m, plan.station_jitter_m))

    def scene_with(dtype: DefectType) -> tuple[VehicleScene, float]:
        """Vehicle ``vehicle`` with one defect of ``dtype``, and the travel to render it at."""
        if station is None:
            scene = twin.vehicle(vehicle, defect_types=[dtype])
            return scene, twin.s_centering(cam, scene.regions[0].centroid_m) + float(rng.uniform(-0.05, 0.05))
        return defect_on_seams(twin, rng, vehicle, dtype, seams), travel()

    def normal(n: int, frames_per_vehicle: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
        nonlocal vehicle
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []
        while len(out) < n:
            scene = twin.vehicle(vehicle, defect_types=[])
            for _ in range(min(frames_per_vehicle, n - len(out))):
                smp = twin.render(scene, travel(), camera_ids=[cam])
                keep(smp)
                t = smp.truth[cam]
                out.append((smp.frameset.frames[0].image, t.defect_mask, t.seam_index >= 0, "good"))
                tick(1)
            vehicle += 1
        return out

    def defects(per_type: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
        nonlocal vehicle
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []
        for dtype in plan.defect_types:
            got, tries = 0, 0
            while got < per_type and tries < 10 * per_type + 10:
                tries += 1
                scene, s = scene_with(dtype)
                vehicle += 1
                tick(1)
                if not defect_in_view(camera, twin.rig.conveyor.T_cell_vehicle(s), scene.regions[0],
                                      plan.edge_margin):
                    continue
                smp = twin.render(scene, s, camera_ids=[cam])
                keep(smp)
                out.append((smp.frameset.frames[0].image, smp.truth[cam].defect_mask,
                            twin.nominal_seam_pixels(scene, s, cam), dtype))
                got += 1
        return out

    def pack(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]) -> AnomalySet:
        if not rows:  # a split the caller asked none of
            hw = (0, camera.height_px, camera.width_px)
            return AnomalySet(np.zeros((*hw, 3), np.uint8), np.zeros(hw, bool), np.zeros(0, bool), (), (),
                              np.zeros(hw, bool))
        types = tuple(r[3] for r in rows)
        return AnomalySet(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
                          np.array([t != "good" for t in types]), types, tuple(f"{i:04d}" for i in range(len(rows))),
                          widen_each(np.stack([r[2] for r in rows]), plan.roi_margin_px))

    train = pack(normal(plan.train_frames, plan.frames_per_train_vehicle))
    val = pack(normal(plan.val_normal, 1) + defects(plan.val_defects_per_type))
    test = pack(normal(plan.test_normal, 1) + defects(plan.test_defects_per_type))
    return train, val, test
