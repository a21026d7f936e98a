"""The local contrast step: sealant stands out from paint whatever either colour is, so a model trained
on bodies of some paints finds a missing bead on a paint it never saw; the step survives the artifact."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.preprocess import (
    PreprocessConfig,
    PreprocessError,
    Preprocessor,
    load_preprocessed,
    save_preprocessed,
    train_preprocessed,
)
from pipeline.preprocess.contrast import contrast_frames, local_contrast, scaled_contrast_px
from pipeline.preprocess.model import input_sources, with_model_defaults
from pipeline.preprocess.roi import translate
from tests.models.test_preprocess import synthetic_view

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
H, W = 96, 128
SEALANTS = ((200, 200, 195), (150, 150, 150), (225, 215, 170))


def _seams() -> Mask:
    """Two rails and three rungs, like the underbody's floor seams."""
    m = np.zeros((H, W), np.uint8)
    for x in (24, 104):
        cv2.line(m, (x, 8), (x, H - 8), 255, 2)
    for y in (20, 48, 76):
        cv2.line(m, (24, y), (104, y), 255, 2)
    return m > 0


def _body(paint: tuple[int, int, int], sealant: tuple[int, int, int], rng: np.random.Generator,
          gap: bool = False) -> U8:
    """A painted panel under a soft light gradient with sensor noise; the beads laid on the seams, one
    rung's bead missing over 20 px when ``gap``."""
    light = np.linspace(0.85, 1.1, W)[None, :, None]
    img = np.ones((H, W, 3)) * np.array(paint) * light
    bead = _seams()
    if gap:
        bead[46:51, 54:74] = False
    img[bead] = sealant
    noisy: U8 = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    return noisy


def test_contrast_is_high_on_sealant_and_low_on_paint_for_any_colours() -> None:
    rng = np.random.default_rng(0)
    seams = _seams()
    paint_px = ~cv2.dilate(seams.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    for paint in ((170, 60, 55), (60, 62, 66), (190, 190, 185), (70, 90, 160)):
        for sealant in SEALANTS:
            c = local_contrast(_body(paint, sealant, rng), 7, 1)[..., 0].astype(float)
            diff = np.linalg.norm(np.subtract(sealant, paint, dtype=float))
            assert c[seams].mean() > 0.5 * diff  # the bead: its colour distance from the paint
            assert c[paint_px].mean() < 8  # the paint: noise only
    # a brighter exposure moves every colour, not the contrast between the bead and the paint
    frame = _body((120, 40, 40), SEALANTS[1], rng)
    brighter = np.clip(frame.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    assert np.abs(local_contrast(frame, 7, 3).astype(int) - local_contrast(brighter, 7, 3)).mean() < 2


def test_a_model_on_contrast_finds_a_missing_bead_on_an_unseen_paint(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    train_paints = ((170, 60, 55), (60, 62, 66), (70, 90, 160), (120, 120, 125))
    train = np.stack([_body(train_paints[i % 4], SEALANTS[i % 3], rng) for i in range(12)])
    cfg = PreprocessConfig(roi=True, roi_margin_px=3, contrast=True, contrast_kernel_px=7, contrast_pool_px=3)
    model = train_preprocessed("gaussian", train, cfg, preset="tiny", seam_mask=_seams())
    save_preprocessed(model, tmp_path)
    served = load_preprocessed(tmp_path)
    assert served.preprocessor.config == cfg
    assert "local contrast 7 px pooled 3 px" in served.preprocessor.describe()
    new_paints = ((40, 120, 60), (200, 160, 40), (90, 40, 110))  # green, yellow, purple: never seen
    normal = np.stack([_body(p, s, rng) for p in new_paints for s in SEALANTS])
    missing = np.stack([_body(p, SEALANTS[i], rng, gap=True) for i, p in enumerate(new_paints)])
    normal_scores = served.predict(normal).scores
    result = served.predict(missing)
    assert result.scores.min() > normal_scores.max()
    for m in result.maps:
        y, x = np.unravel_index(int(np.argmax(m)), m.shape)
        assert 44 <= y <= 52 and 52 <= x <= 76  # the peak sits in the gap


def test_contrast_sizes_scale_with_the_frame_and_bad_ones_are_refused() -> None:
    assert scaled_contrast_px(640) == (9, 3) and scaled_contrast_px(1280) == (17, 5)
    assert scaled_contrast_px(160) == (3, 1)
    pre = Preprocessor.fit(PreprocessConfig(contrast=True), np.zeros((480, 640, 3), np.uint8))
    assert (pre.config.contrast_kernel_px, pre.config.contrast_pool_px) == (9, 3)
    for kernel, pool in ((4, 3), (1, 3), (9, 0)):
        with pytest.raises(PreprocessError, match="odd"):
            PreprocessConfig(contrast=True, contrast_kernel_px=kernel, contrast_pool_px=pool)
    with pytest.raises(PreprocessError, match="uint8"):
        local_contrast(np.zeros((8, 8), np.uint8), 3, 1)
    old = PreprocessConfig.from_dict({"roi": True, "roi_margin_px": 4})  # a manifest from before the step
    assert not old.contrast


def test_contrast_frames_are_what_a_contrast_model_sees_before_alignment() -> None:
    rng = np.random.default_rng(2)
    frames = np.stack([_body(paint, SEALANTS[0], rng) for paint in ((170, 60, 55), (60, 62, 66))])
    seen = Preprocessor.fit(PreprocessConfig(contrast=True), frames[0]).apply(frames).images
    np.testing.assert_array_equal(contrast_frames(frames), seen)
    with pytest.raises(PreprocessError, match=r"\(N, H, W, 3\)"):
        contrast_frames(frames[0])


def test_input_sources_remake_each_training_input_from_its_aligned_frame() -> None:
    """A model that plants synthetic defects (SeamSeg) draws them on the aligned raw frame and remakes
    the input through the same steps: untouched, it gets the very input the preprocessing made (away
    from the frame's border), and an edit changes the input only within the contrast window's reach."""
    view = synthetic_view(5)
    cfg = PreprocessConfig(template=True, roi=True, roi_margin_px=6, contrast=True, contrast_kernel_px=9,
                           contrast_pool_px=3)  # a 9 px window runs on the frame shrunk 2x: the phase matters
    pre = Preprocessor.fit(cfg, view.frames[0], view.seams[0])
    batch = pre.apply(view.frames)
    assert batch.accepted.all() and (batch.offsets_xy != 0).any()
    sources = input_sources(pre, view.frames, batch.offsets_xy, batch.roi)
    assert sources is not None and sources.count == len(view.frames)
    inner = (slice(16, H - 16), slice(16, W - 16))  # shifts up to 4 px + the window's reach
    for i, (dx, dy) in enumerate(batch.offsets_xy):
        np.testing.assert_array_equal(sources.frame(i), translate(view.frames[i], (-int(dx), -int(dy))))
        np.testing.assert_array_equal(sources.to_input(i, sources.frame(i))[inner], batch.images[i][inner])
    edited = sources.frame(1).copy()
    edited[40:44, 60:64] = 0
    changed = np.argwhere((sources.to_input(1, edited) != sources.to_input(1, sources.frame(1))).any(axis=2))
    assert len(changed) and changed.min(axis=0).tolist() >= [30, 50] and changed.max(axis=0).tolist() <= [54, 74]
    plain = Preprocessor.fit(PreprocessConfig(template=True), view.frames[0])
    assert input_sources(plain, view.frames, batch.offsets_xy, None) is None  # the inputs are the frames


def test_each_model_takes_its_own_contrast_pool_unless_one_is_set() -> None:
    """SeamSeg learns the bead's place from the neighbouring frames: it is fitted without the max-pool that
    absorbs misalignment for the per-pixel models (docs/benchmarks.md: +0.047 image AUROC over three viewpoints)."""
    on = PreprocessConfig(contrast=True)
    assert with_model_defaults("seamseg", on).contrast_pool_px == 1
    assert with_model_defaults("gaussian", on).contrast_pool_px is None  # scaled to the frame width when fitted
    assert with_model_defaults("seamseg", PreprocessConfig(contrast=True, contrast_pool_px=3)).contrast_pool_px == 3
    assert with_model_defaults("seamseg", PreprocessConfig()).contrast_pool_px is None  # no contrast step
