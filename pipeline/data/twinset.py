"""Small in-memory train/validation/test sets for one camera, rendered directly by the digital twin.

Same split logic as the twin's MVTec export (disjoint vehicles; defect frames centred on the defect
in this camera with a little jitter), without files, for tests and quick benchmarks. Each image also
gets an ROI mask: the seam pixels of that view dilated by ``roi_margin_px`` (the ROI is known exactly
in the twin; for real images use :mod:`pipeline.preprocess`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.data.mvtec import AnomalySet
from pipeline.twin import DEFECT_TYPES, DefectType, DigitalTwin

log = logging.getLogger(__name__)
#: travel range (m) in which the body fills the views (as the twin's exporter)
BODY_IN_VIEW_M = 1.6


@dataclass(frozen=True, slots=True)
class TwinSetPlan:
    camera_id: str = "lower"
    train_frames: int = 12
    val_normal: int = 4
    val_defects_per_type: int = 1
    test_normal: int = 6
    test_defects_per_type: int = 2
    defect_types: tuple[DefectType, ...] = DEFECT_TYPES
    roi_margin_px: int = 6
    first_vehicle: int = 0
    min_defect_px: int = 4


def _roi(seam_index: npt.NDArray[np.int16], margin_px: int) -> npt.NDArray[np.bool_]:
    m = (seam_index >= 0).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    return np.asarray(cv2.dilate(m, k) > 0)


def render_twin_splits(twin: DigitalTwin, plan: TwinSetPlan | None = None,
                       progress: Callable[[int], None] | None = None) -> tuple[AnomalySet, AnomalySet, AnomalySet]:
    """Render (train, validation, test) for ``plan.camera_id``. Train holds normal frames only.

    A defect that covers fewer than ``min_defect_px`` pixels in the view is re-drawn on the next
    vehicle (a test defect must be visible to be scored).
    """
    plan = plan or TwinSetPlan()
    cam = plan.camera_id
    twin.rig.camera(cam)
    rng = np.random.default_rng([twin.config.seed, 7])
    tick = progress or (lambda n: None)
    vehicle = plan.first_vehicle

    def normal(n: int, frames_per_vehicle: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
        nonlocal vehicle
        out: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []
        while len(out) < n:
            scene = twin.vehicle(vehicle, defect_types=[])
            for _ in range(min(frames_per_vehicle, n - len(out))):
                s = float(rng.uniform(-BODY_IN_VIEW_M, BODY_IN_VIEW_M))
                smp = twin.render(scene, s, camera_ids=[cam])
                t = smp.truth[cam]
                out.append((smp.frameset.frames[0].image, t.defect_mask, _roi(t.seam_index, plan.roi_margin_px),
                            "good"))
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
                scene = twin.vehicle(vehicle, defect_types=[dtype])
                vehicle += 1
                s = twin.s_centering(cam, scene.regions[0].centroid_m) + float(rng.uniform(-0.05, 0.05))
                smp = twin.render(scene, s, camera_ids=[cam])
                t = smp.truth[cam]
                tick(1)
                if int(t.defect_mask.sum()) < plan.min_defect_px:
                    continue
                out.append((smp.frameset.frames[0].image, t.defect_mask, _roi(t.seam_index, plan.roi_margin_px),
                            dtype))
                got += 1
        return out

    def pack(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]) -> AnomalySet:
        types = tuple(r[3] for r in rows)
        return AnomalySet(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]),
                          np.array([t != "good" for t in types]), types, tuple(f"{i:04d}" for i in range(len(rows))),
                          np.stack([r[2] | r[1] for r in rows]))

    train = pack(normal(plan.train_frames, 4))
    val = pack(normal(plan.val_normal, 1) + defects(plan.val_defects_per_type))
    test = pack(normal(plan.test_normal, 1) + defects(plan.test_defects_per_type))
    return train, val, test
