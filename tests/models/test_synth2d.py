"""The paper's 2D synthetic defect generator on twin frames: local edits, masks covering every change,
determinism, clear errors, and the MVTec-layout validation/test sets it builds."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.data import read_mvtec
from pipeline.data.synth2d import (
    SynthConfig,
    SynthError,
    SynthSetPlan,
    bead_width_px,
    build_synthetic_sets,
    seam_mask_from_polylines,
    synthesize,
)
from pipeline.twin import DEFECT_TYPES, DigitalTwin

Frame = tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]


@pytest.fixture(scope="module")
def frames(small_twin: DigitalTwin) -> list[Frame]:
    """Three normal 320x240 'lower' frames with their seam (bead) masks."""
    out = []
    for vehicle, s_m in ((0, 0.3), (1, -0.4), (2, 0.1)):
        sample = small_twin.render(small_twin.vehicle(vehicle, defect_types=[]), s_m, camera_ids=["lower"])
        out.append((sample.frameset.frames[0].image, sample.truth["lower"].seam_index >= 0))
    return out


def _dilate(m: npt.NDArray[np.bool_], px: int) -> npt.NDArray[np.bool_]:
    return np.asarray(cv2.dilate(m.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0)


@pytest.mark.parametrize("defect_type", DEFECT_TYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_type_edits_only_near_the_seam_and_its_mask_covers_the_change(
        frames: list[Frame], defect_type: str, seed: int) -> None:
    img, seam = frames[seed % len(frames)]
    d = synthesize(img, seam, defect_type, seed)
    changed = np.any(d.image != img, axis=2)
    assert d.image.shape == img.shape and d.image.dtype == np.uint8
    assert changed.any() and d.mask.any()
    assert not (changed & ~d.mask).any(), "a changed pixel lies outside the ground-truth mask"
    # every edit stays within the stretch's radius of the seam (+2 px of dilation and rounding)
    reach = int(np.ceil(d.radius_px)) + 2
    assert not (changed & ~_dilate(seam, reach)).any()
    yy, xx = np.nonzero(changed)
    cx, cy = d.center_xy_px
    assert np.hypot(xx - cx, yy - cy).max() <= reach
    assert seam[cy, cx], "the defect is centred on the bead"
    # the mask is local too: a few bead stretches, not the frame
    assert d.mask.sum() < 0.02 * seam.size


def test_same_seed_same_defect_and_another_seed_another(frames: list[Frame]) -> None:
    img, seam = frames[0]
    a = synthesize(img, seam, "misalignment", 7)
    b = synthesize(img, seam, "misalignment", 7)
    c = synthesize(img, seam, "misalignment", 8)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.mask, c.mask)


def test_polylines_stand_in_for_a_seam_mask() -> None:
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(150, 8, (120, 160, 3)), 0, 255).astype(np.uint8)
    line = np.array([[20.0, 60.0], [140.0, 64.0]])
    seam = seam_mask_from_polylines(img.shape[:2], [line], 5)
    img[seam] = (60, 60, 70)  # a dark bead
    assert 4.0 <= bead_width_px(seam) <= 6.0
    for t in DEFECT_TYPES:
        d = synthesize(img, None, t, 3, polylines=[line], bead_width=5)
        changed = np.any(d.image != img, axis=2)
        assert changed.any() and not (changed & ~d.mask).any()
    missing = synthesize(img, seam, "missing", 0)
    # inpainting replaces the dark bead by the bright surroundings
    assert img[missing.mask].mean() < missing.image[missing.mask].mean() - 30


def _straight_bead() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """A bright 3 px bead along row 60 of a flat grey 120x160 image."""
    img = np.full((120, 160, 3), 90, np.uint8)
    seam = seam_mask_from_polylines(img.shape[:2], [np.array([[10.0, 60.0], [150.0, 60.0]])], 3)
    img[seam] = 230
    return img, seam


def _bead_rows(image: npt.NDArray[np.uint8], x: int) -> list[int]:
    """The first row of each run of bead pixels in column ``x``."""
    bright = image[:, x, 0] > 160
    return [int(y) for y in np.nonzero(bright & ~np.r_[False, bright[:-1]])[0]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_split_stream_parts_into_two_strands_that_rejoin(seed: int) -> None:
    img, seam = _straight_bead()
    d = synthesize(img, seam, "bifurcation", seed, config=SynthConfig(split_share=1.0))
    cx, _ = d.center_xy_px
    assert len(_bead_rows(d.image, cx)) == 2, "two strands across the middle of the stretch"
    outside = cx + int(d.radius_px) + 3 if cx + d.radius_px + 3 < 150 else cx - int(d.radius_px) - 3
    assert _bead_rows(d.image, outside) == _bead_rows(img, outside), "the bead is untouched beyond the stretch"
    bright = (d.image[..., 0] > 160).astype(np.uint8)
    assert cv2.connectedComponents(bright, connectivity=8)[0] == 2, "the strands rejoin the bead at both ends"
    assert not (np.any(d.image != img, axis=2) & ~d.mask).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_strands_are_fainter_with_a_strand_opacity_and_full_at_their_ends(seed: int) -> None:
    img, seam = _straight_bead()  # bead 230 on a surface of 90
    d = synthesize(img, seam, "bifurcation", seed, config=SynthConfig(split_share=1.0, strand_opacity=0.5))
    cx, _ = d.center_xy_px
    column = d.image[:, cx, 0].astype(int)
    peaks = [y for y in range(1, 119) if column[y] > 110 and column[y] >= column[y - 1] and column[y] > column[y + 1]]
    assert len(peaks) == 2, "two strands across the middle of the stretch"
    assert all(abs(column[y] - (90 + 0.5 * 140)) <= 12 for y in peaks), "each strand shows at half opacity"
    assert (d.image[..., 0] > 220).sum() >= 0.8 * (img[..., 0] > 220).sum() - d.mask.sum(), "full beyond the split"
    assert not (np.any(d.image != img, axis=2) & ~d.mask).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_hole_through_the_bead_shows_the_surface_and_by_default_is_the_papers_dark_void(seed: int) -> None:
    img, seam = _straight_bead()
    through = synthesize(img, seam, "hole", seed,
                         config=SynthConfig(hole_through_share=1.0, hole_radius_widths=(0.8, 0.8)))
    cx, cy = through.center_xy_px
    assert through.image[cy, cx].tolist() == [90, 90, 90], "the surface's colour at the hole's centre"
    assert _bead_rows(through.image, cx) == [], "a hole wider than the bead cuts it"
    assert not (np.any(through.image != img, axis=2) & ~through.mask).any()
    void = synthesize(img, seam, "hole", seed, config=SynthConfig(hole_radius_widths=(0.8, 0.8)))
    assert void.image[void.center_xy_px[1], void.center_xy_px[0], 0] < 0.4 * 230 + 1, "the paper's dark void"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_misaligned_stretch_is_shifted_sideways(seed: int) -> None:
    img, seam = _straight_bead()
    d = synthesize(img, seam, "misalignment", seed)
    cx, _ = d.center_xy_px
    (row,) = _bead_rows(d.image, cx)
    (original,) = _bead_rows(img, cx)
    assert abs(row - original) >= 4, "the middle of the stretch moved by at least 1.5 bead widths"


def test_bad_inputs_raise_clear_errors(frames: list[Frame]) -> None:
    img, seam = frames[0]
    with pytest.raises(SynthError, match="does not match the image"):
        synthesize(img, seam[:-1], "hole")
    with pytest.raises(SynthError, match="empty"):
        synthesize(img, np.zeros_like(seam), "hole")
    with pytest.raises(SynthError, match="uint8"):
        synthesize(img.astype(np.float32), seam, "hole")
    with pytest.raises(SynthError, match="unknown defect type"):
        synthesize(img, seam, "scratch")
    with pytest.raises(SynthError, match="polylines together with bead_width"):
        synthesize(img, None, "hole")
    with pytest.raises(SynthError, match="strand_opacity must be in"):
        SynthConfig(strand_opacity=1.5)
    with pytest.raises(SynthError, match="K >= 2"):
        seam_mask_from_polylines((10, 10), [np.zeros((1, 2))], 2)


def test_builds_validation_and_test_sets_in_the_mvtec_layout(frames: list[Frame], tmp_path: Path) -> None:
    normal, masks = tmp_path / "normal", tmp_path / "masks"
    normal.mkdir()
    masks.mkdir()
    for i in range(4):
        img, seam = frames[i % len(frames)]
        cv2.imwrite(str(normal / f"f{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(masks / f"f{i}.png"), seam.astype(np.uint8) * 255)
    out = tmp_path / "set"
    plan = SynthSetPlan(val_normal=1, test_normal=2, val_per_type=1, test_per_type=1, seed=0)
    summary = build_synthetic_sets(normal, masks, out, plan)
    assert summary.counts["train/good"] == 1 and summary.counts["test/good"] == 2
    assert len(summary.defects) == 2 * len(DEFECT_TYPES)
    splits = read_mvtec(out)
    assert splits.validation_source == "validation/"
    for part, n_good in ((splits.validation, 1), (splits.test, 2)):
        assert len(part) == n_good + len(DEFECT_TYPES)
        assert set(part.types) == {"good", *DEFECT_TYPES}
        assert all(part.masks[i].any() == part.labels[i] for i in range(len(part)))
        assert part.roi is not None and part.roi.any(axis=(1, 2)).all(), "every image has its seam ROI"
    record = json.loads((out / "synth2d.json").read_text())
    assert record["plan"]["seed"] == 0 and len(record["defects"]) == 10
    # the same plan and seed rebuild the same files
    again = build_synthetic_sets(normal, masks, tmp_path / "again", plan)
    assert again.defects == summary.defects
    a = cv2.imread(str(out / "test" / "hole" / f"{summary.defects[-1]['file']}.png"))
    b = cv2.imread(str(tmp_path / "again" / "test" / "hole" / f"{summary.defects[-1]['file']}.png"))
    assert a is not None and b is not None and np.array_equal(a, b)


def test_dataset_errors_name_the_problem(frames: list[Frame], tmp_path: Path) -> None:
    normal, masks = tmp_path / "normal", tmp_path / "masks"
    normal.mkdir()
    masks.mkdir()
    with pytest.raises(SynthError, match="need at least 3 normal images"):
        build_synthetic_sets(normal, masks, tmp_path / "o", SynthSetPlan(val_normal=1, test_normal=1))
    img, seam = frames[0]
    for i in range(3):
        cv2.imwrite(str(normal / f"f{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    with pytest.raises(SynthError, match="no seam mask for image"):
        build_synthetic_sets(normal, masks, tmp_path / "o", SynthSetPlan(val_normal=1, test_normal=1))
    for i in range(3):
        cv2.imwrite(str(masks / f"f{i}_mask.png"), np.zeros(seam.shape, np.uint8))
    with pytest.raises(SynthError, match="empty"):
        build_synthetic_sets(normal, masks, tmp_path / "o", SynthSetPlan(val_normal=1, test_normal=1))
