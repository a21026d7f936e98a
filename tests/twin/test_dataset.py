from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.rig import load_rig
from calibration.underbody import load_underbody
from pipeline.twin import DEFECT_TYPES, DigitalTwin, TwinSample
from pipeline.twin.dataset import ExportPlan, category_dirs, export_mvtec


def test_exported_layout_is_complete(small_twin: DigitalTwin, tmp_path: Path) -> None:
    plan = ExportPlan(train_vehicles=2, frames_per_train_vehicle=2, val_normal=1, val_defects_per_type=1,
                      test_normal=2, test_defects_per_type=1)
    ticks: list[int] = []
    summary = export_mvtec(small_twin, tmp_path, plan, progress=ticks.append)
    assert 0 < len(ticks) <= plan.total_renders
    cats = category_dirs(tmp_path)
    assert [c.name for c in cats] == sorted(small_twin.rig.camera_ids)
    for cat in cats:
        assert len(list((cat / "train" / "good").glob("*.png"))) == 4
        assert len(list((cat / "test" / "good").glob("*.png"))) == 2
        assert len(list((cat / "validation" / "good").glob("*.png"))) == 1
        for split, gt in (("test", "ground_truth"), ("validation", "validation_ground_truth")):
            for type_dir in (cat / split).iterdir():
                if type_dir.name == "good":
                    continue
                for img_path in type_dir.glob("*.png"):
                    mask_path = cat / gt / type_dir.name / f"{img_path.stem}_mask.png"
                    assert mask_path.is_file(), mask_path
                    img = cv2.imread(str(img_path))
                    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
                    assert img is not None and mask is not None
                    assert img.shape[:2] == mask.shape == (240, 320)
                    assert set(np.unique(mask)) <= {0, 255} and (mask > 0).sum() >= 4
    # every planted test defect is either exported in some camera or reported as not visible there
    types = {p.name for cat in cats for p in (cat / "test").iterdir()} - {"good"}
    hidden = {n["type"] for n in summary.not_visible if n["split"] == "test"}
    assert types | hidden == set(DEFECT_TYPES)
    assert len(types) >= 4  # at 320x240 only a tiny hole may be invisible everywhere

    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert len(meta["images"]) == summary.images
    files = {r["file"] for r in meta["images"]}
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.glob("*/*/*/*.png") if "ground_truth" not in str(p)}
    assert files == on_disk
    assert load_rig(tmp_path / meta["rig"]).camera_ids == small_twin.rig.camera_ids
    assert len(load_underbody(tmp_path / meta["underbody"]).seams) == 17

    # train/validation/test use disjoint vehicles
    by_split: dict[str, set[str]] = {}
    for r in meta["images"]:
        by_split.setdefault(r["split"], set()).add(r["vehicle_id"])
    assert not (by_split["train"] & by_split["test"]) and not (by_split["validation"] & by_split["test"])


def test_viewpoint_splits_show_one_sub_region_with_defects_on_its_seams(small_twin: DigitalTwin) -> None:
    from pipeline.data.twinset import TwinSetPlan, render_twin_splits

    plan = TwinSetPlan(viewpoint="back", train_frames=3, val_normal=1, test_normal=1, test_defects_per_type=1,
                       defect_types=("missing", "hole"))
    train, _, test = render_twin_splits(small_twin, plan)
    assert len(train) == 3 and not train.labels.any()
    assert test.types == ("good", "missing", "hole") and test.labels.tolist() == [False, True, True]
    assert all(m.any() for m in test.masks[1:])
    # the same station every time, within the trigger jitter: normal frames of different vehicles nearly align
    grey = train.images.astype(np.float32).mean(axis=3)
    corr = np.corrcoef(grey.reshape(3, -1))
    assert corr.min() > 0.5
    with pytest.raises(ValueError, match="viewpoint"):
        TwinSetPlan(viewpoint="roof")


def test_a_plan_draws_the_same_defects_wholly_in_view_at_every_frame_size(small_twin: DigitalTwin) -> None:
    from pipeline.data.twinset import TwinSetPlan, render_twin_splits
    from pipeline.twin import TwinConfig

    plan = TwinSetPlan(viewpoint="centre", train_frames=1, val_normal=0, val_defects_per_type=0, test_normal=0,
                       test_defects_per_type=2)
    _, _, big = render_twin_splits(small_twin, plan)
    _, _, small = render_twin_splits(DigitalTwin(TwinConfig(seed=0, width_px=160, height_px=120)), plan)
    assert big.types == small.types and len(big) == 2 * len(DEFECT_TYPES)
    for m_big, m_small in zip(big.masks, small.masks, strict=True):
        # the same defect: where the small frame resolves it, the bounding boxes agree to its pixel
        if m_small.any():
            box_big, box_small = (np.r_[np.argwhere(m).min(0), np.argwhere(m).max(0)] for m in (m_big, m_small))
            assert np.abs(box_big / 2 - box_small).max() <= 1.5
        # wholly in view: no slivers at the frame's edge
        h, w = m_big.shape
        m = round(plan.edge_margin * w)
        assert not m_big[:m].any() and not m_big[h - m:].any() and not m_big[:, :m].any() and not m_big[:, w - m:].any()
    with pytest.raises(ValueError, match="edge_margin"):
        TwinSetPlan(edge_margin=0.5)


def test_a_plan_may_ask_for_training_frames_only(small_twin: DigitalTwin) -> None:
    from pipeline.data.twinset import TwinSetPlan, render_twin_splits

    plan = TwinSetPlan(viewpoint="centre", train_frames=2, frames_per_train_vehicle=2, val_normal=0,
                       val_defects_per_type=0, test_normal=0, test_defects_per_type=0)
    train, val, test = render_twin_splits(small_twin, plan)
    assert len(train) == 2 and len(val) == len(test) == 0
    assert val.images.shape[1:] == train.images.shape[1:] and test.masks.shape[1:] == train.masks.shape[1:]
    with pytest.raises(ValueError, match="frames_per_train_vehicle"):
        TwinSetPlan(frames_per_train_vehicle=0)


def test_each_kept_frame_is_handed_over_with_its_vehicle_and_travel(small_twin: DigitalTwin) -> None:
    """``rendered`` gets every frame the splits keep, in their order, so that a caller can render the same
    vehicle again (``benchmarks/twin_ceiling.py`` renders it without its defect); views drawn again are
    not handed over."""
    from pipeline.data.twinset import TwinSetPlan, render_twin_splits

    plan = TwinSetPlan(viewpoint="front", train_frames=2, frames_per_train_vehicle=2, val_normal=1,
                       val_defects_per_type=0, test_normal=1, test_defects_per_type=1)
    got: list[TwinSample] = []
    train, val, test = render_twin_splits(small_twin, plan, rendered=got.append)
    assert len(got) == len(train) + len(val) + len(test)
    for image, dtype, smp in zip(test.images, test.types, got[-len(test):], strict=True):
        assert [d.defect_type for d in smp.vehicle.defects] == ([] if dtype == "good" else [dtype])
        again = small_twin.render(small_twin.scene(smp.vehicle), smp.s_m, camera_ids=["lower"])
        assert np.array_equal(again.frameset.frames[0].image, image)


def test_the_roi_comes_from_the_nominal_seams_not_from_the_defect(small_twin: DigitalTwin) -> None:
    """A line knows its ROI from the seam plan. A defective frame's own seam pixels lack a missing bead
    and follow a misaligned one, so an ROI drawn from them would hand the ground truth to a masked model."""
    from pipeline.data.twinset import TwinSetPlan, render_twin_splits

    cam = "lower"
    for dtype in ("missing", "misalignment"):
        scene = small_twin.vehicle(3, defect_types=[dtype])
        s = small_twin.s_centering(cam, scene.regions[0].centroid_m)
        truth = small_twin.render(scene, s, camera_ids=[cam]).truth[cam]
        own, gt = truth.seam_index >= 0, truth.defect_mask
        nominal = small_twin.nominal_seam_pixels(scene, s, cam)
        assert gt.any()
        if dtype == "missing":  # the gap is where the nominal bead lies, and the frame shows no bead there
            assert (nominal & gt).sum() > 2 * (own & gt).sum()
        else:  # the displaced bead lies partly off its nominal seam
            assert (own & gt & ~nominal).any()
    # a ray cast without shading, in every view: the seams a full render of the defect-free vehicle shows
    bare = small_twin.scene(scene.spec.with_defects([]))
    for view in small_twin.rig.camera_ids:
        assert np.array_equal(small_twin.nominal_seam_pixels(scene, s, view),
                              small_twin.render(bare, s, camera_ids=[view]).truth[view].seam_index >= 0)
    normal = small_twin.vehicle(4, defect_types=[])
    s = small_twin.s_centering(cam, np.zeros(3))
    assert np.array_equal(small_twin.nominal_seam_pixels(normal, s, cam),
                          small_twin.render(normal, s, camera_ids=[cam]).truth[cam].seam_index >= 0)

    # the sets carry that ROI: with no margin, a misaligned bead's ground truth reaches outside it
    plan = TwinSetPlan(viewpoint="centre", train_frames=1, val_normal=0, val_defects_per_type=0, test_normal=0,
                       test_defects_per_type=2, defect_types=("misalignment",), roi_margin_px=0)
    _, _, test = render_twin_splits(small_twin, plan)
    assert test.roi is not None
    assert all((m & ~r).any() for m, r in zip(test.masks, test.roi, strict=True))
