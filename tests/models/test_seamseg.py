"""SeamSeg's own parts: where its generator plants defects, and its errors. Its contract, detection
of a planted defect and ONNX parity are checked with the other models in test_models.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from pipeline.models import FitContext, TrainedModel, load_model, save, train
from pipeline.models.errors import ConfigError, TrainingError
from pipeline.models.seamseg import (
    DEFICIT_PLANES,
    PRESETS,
    FrameKeys,
    Head,
    SeamSegConfig,
    SeamSegNet,
    deficit_planes,
    gap_depth,
    near_frame_stats,
    neighbour_stats,
)
from pipeline.models.seamseg_fit import bead_mask, synthetic_defects
from pipeline.models.training import InputSources
from pipeline.preprocess import PreprocessConfig, Preprocessor, load_preprocessed, save_preprocessed, train_preprocessed
from pipeline.preprocess.model import input_sources
from pipeline.preprocess.roi import translate
from tests.models.test_preprocess import synthetic_view


def _frames(n: int) -> np.ndarray:
    """Grey paint with one bright vertical bead (x 78-81) wandering by a pixel, zero outside an ROI
    band (x 60-99), as the masked contrast input of one view: (n, 120, 160, 3) uint8."""
    rng = np.random.default_rng(0)
    out = np.zeros((n, 120, 160, 3), np.uint8)
    for i in range(n):
        out[i, :, 60:100] = 20 + rng.integers(0, 6, (120, 40, 1))
        x0 = 78 + int(rng.integers(-1, 2))
        out[i, :, x0:x0 + 3] = 200
    return out


def test_the_generator_plants_every_type_on_the_bead_and_inside_the_roi() -> None:
    frames = _frames(2)
    roi = frames.max(axis=(0, 3)) > 0
    bead = bead_mask(frames[0], roi, PRESETS["tiny"])
    assert bead.any() and not (bead & ~roi).any()
    assert set(np.nonzero(bead)[1]) <= set(range(76, 84))  # the bright bead, not the paint's noise
    synth = synthetic_defects(frames, roi, PRESETS["tiny"], np.random.default_rng(0))
    assert len(synth) >= 15  # 2 images x 5 types x 2, less those with no place to fit
    for i, img, mask in synth:
        assert i in (0, 1) and mask.any() and not (mask & ~roi).any()
        assert not img[~roi].any()  # what a masked model is shown: nothing outside the ROI
        assert (img != frames[i]).any(axis=2)[mask].any()


def test_the_generator_options_reach_its_holes() -> None:
    frames = _frames(3)
    roi = frames.max(axis=(0, 3)) > 0

    def cut_beads(cfg: SeamSegConfig) -> int:
        """How many holes (compact masks) cut the bead down to the paint (20-25) somewhere."""
        count = 0
        for i, img, mask in synthetic_defects(frames, roi, cfg, np.random.default_rng(0)):
            ys, xs = np.nonzero(mask)
            if max(np.ptp(ys), np.ptp(xs)) <= 8:  # a hole; every other type spans 4-9 bead widths
                count += int(((img[..., 0] < 28) & (frames[i, ..., 0] == 200) & mask).any())
        return count

    assert cut_beads(PRESETS["tiny"]) == 0, "the paper's dark void keeps 15-80 % of the bead"
    through = dataclasses.replace(PRESETS["tiny"], hole_through_share=1.0, hole_radius_widths=(0.8, 0.8))
    assert cut_beads(through) >= 5, "a hole through the bead shows the paint"
    with pytest.raises(ConfigError, match="hole_through_share must be in"):
        dataclasses.replace(PRESETS["tiny"], hole_through_share=2.0)


def test_too_few_frames_frames_without_a_bead_and_no_neighbours_are_clear_errors() -> None:
    with pytest.raises(TrainingError, match="at least 3"):
        train("seamseg", _frames(2), preset="tiny", ctx=FitContext(max_steps=1))
    with pytest.raises(ConfigError, match="neighbours"):
        train("seamseg", _frames(4), preset="tiny", ctx=FitContext(max_steps=1), neighbours=0)
    flat = np.full((4, 120, 160, 3), 90, np.uint8)
    with pytest.raises(TrainingError, match="no sealant bead"):
        train("seamseg", flat, preset="tiny", ctx=FitContext(max_steps=1))


def test_a_masked_seamseg_learns_the_reference_roi_and_keeps_its_maps_inside_it(tmp_path: Path) -> None:
    view = synthetic_view(10)
    cfg = PreprocessConfig(template=True, roi=True, roi_margin_px=4)
    model = train_preprocessed("seamseg", view.frames[:8], cfg, preset="tiny", seam_mask=view.seams[0],
                               ctx=FitContext(seed=0, max_steps=5), input_size_wh=(128, 96), crop_px=48,
                               max_bank_frames=5)
    roi = model.preprocessor.roi_reference
    assert roi is not None and 0 < roi.mean() < 0.5
    assert isinstance(model.inner, TrainedModel) and isinstance(model.inner.net, SeamSegNet)
    net = model.inner.net
    np.testing.assert_array_equal(net.roi[0, 0].numpy() > 0, roi)  # where the training inputs were not zeroed
    assert net.memory_bank.shape == (5, 96, 128) and net.memory_bank.dtype == torch.uint8  # 5 of the 8 frames
    assert net.memory_bank_keys.shape == (5, 24 * 32)
    save_preprocessed(model, tmp_path)
    got = load_preprocessed(tmp_path, runtime="onnx").predict(view.frames[8:])
    ref = model.predict(view.frames[8:])
    np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-3, atol=1e-3)
    batch = model.preprocess(view.frames[8:])
    for i in range(2):
        outside = ~translate(roi, (int(batch.offsets_xy[i, 0]), int(batch.offsets_xy[i, 1])))
        assert not got.maps[i][outside].any() and got.maps[i][~outside].min() > 0


def test_the_nearest_frames_statistics_follow_the_frames_most_like_the_input() -> None:
    """Two groups of bank frames whose bead lies 6 px apart (parallax at two conveyor positions): an input
    like the second group gets that group's mean and the variance floor, not the band of both groups."""
    def frame(x0: int) -> torch.Tensor:
        f = torch.full((1, 1, 24, 24), 20.0)
        f[..., x0:x0 + 2] = 200.0
        return f

    bank = torch.cat([frame(6)] * 3 + [frame(12)] * 3)
    keys = FrameKeys()
    query = frame(12)
    mean, var = neighbour_stats(keys(query), bank[:, 0].to(torch.uint8), keys(bank), 3, 100.0)
    torch.testing.assert_close(mean, frame(12))
    torch.testing.assert_close(var, torch.full_like(var, 100.0))
    mean_all, _ = neighbour_stats(keys(query), bank[:, 0].to(torch.uint8), keys(bank), 6, 100.0)
    assert mean_all[0, 0, 0, 6] == mean_all[0, 0, 0, 12] == 110.0  # all frames: a two-bead band


def test_with_the_contrast_step_defects_are_drawn_on_the_raw_frame_and_reach_the_model_through_it() -> None:
    """The inputs are contrast images; each synthetic one is the contrast image of an edited raw frame
    (a defect drawn on the contrast image itself would be pooled as no real one is)."""
    view = synthetic_view(3)
    cfg = PreprocessConfig(template=True, roi=True, roi_margin_px=6, contrast=True, contrast_kernel_px=5,
                           contrast_pool_px=3)
    pre = Preprocessor.fit(cfg, view.frames[0], view.seams[0])
    batch = pre.apply(view.frames)
    sources = input_sources(pre, view.frames, batch.offsets_xy, batch.roi)
    assert sources is not None and batch.roi is not None
    drawn: list[tuple[int, np.ndarray, np.ndarray]] = []

    def to_input(i: int, frame: np.ndarray) -> np.ndarray:
        out = sources.to_input(i, frame)
        drawn.append((i, frame, out))
        return out

    roi = np.asarray(batch.roi.any(axis=0))
    synth = synthetic_defects(batch.images, roi, PRESETS["tiny"], np.random.default_rng(0),
                              InputSources(sources.count, sources.frame, to_input))
    assert len(synth) >= 20 and len(drawn) >= len(synth)  # 3 frames x 5 types x 2, less misfits
    inner = np.zeros(roi.shape, bool)
    inner[8:-8, 8:-8] = True  # the border the alignment shifted out differs anyway (see test_contrast)
    for i, img, mask in synth:
        frame = next(f for j, f, out in drawn if j == i and np.array_equal(out * roi[..., None], img))
        assert not (mask & ~roi).any() and not img[~roi].any()
        touched = (frame != sources.frame(i)).any(axis=2)  # the raw frame was drawn on, at the mask
        assert touched[mask].any() and not (touched & roi & ~mask).any()  # the mask is cut to the ROI
        changed = (img != batch.images[i]).any(axis=2) & inner  # and its input differs where it was
        near = cv2.dilate(touched.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # window 5 + pooling 3
        assert changed.any() and not (changed & ~near).any()
    with pytest.raises(TrainingError, match="source frames"):
        train("seamseg", np.concatenate([batch.images] * 2), preset="tiny",
              ctx=FitContext(max_steps=1, sources=sources), input_size_wh=(128, 96), draw_on_frames=True)
    train("seamseg", np.concatenate([batch.images] * 2), preset="tiny",  # off by default: the sources are unused
          ctx=FitContext(max_steps=1, sources=sources), input_size_wh=(128, 96))


def test_a_seamseg_drawing_on_the_frames_trains_at_an_input_size_other_than_the_frames() -> None:
    view = synthetic_view(6)
    cfg = PreprocessConfig(template=True, roi=True, roi_margin_px=4, contrast=True)
    model = train_preprocessed("seamseg", view.frames, cfg, preset="tiny", seam_mask=view.seams[0],
                               ctx=FitContext(seed=0, max_steps=2), input_size_wh=(64, 48), crop_px=32,
                               draw_on_frames=True)
    pred = model.predict(view.frames[:2])
    assert pred.maps.shape == (2, 96, 128) and np.isfinite(pred.scores).all()
    assert model.preprocessor.config.contrast_pool_px == 1, "SeamSeg's own default: no max-pool"


def test_the_gap_depth_is_the_hole_in_a_bead_and_zero_on_the_bead_and_the_paint() -> None:
    g = torch.full((1, 1, 20, 30), 20.0)
    g[..., 9:11, :] = 200.0  # a bead two pixels high along the frame
    g[..., 9:11, 12:15] = 20.0  # a hole three pixels long through it
    depth = gap_depth(g, 5)
    expected = torch.zeros_like(g)
    expected[..., 9:11, 12:15] = 180.0
    torch.testing.assert_close(depth, expected)
    assert not gap_depth(g, 3)[..., 9:11, 12:15].any(), "a closing narrower than the hole does not fill it"


def test_the_deficit_is_larger_where_a_bead_narrowed_than_where_it_moved() -> None:
    """Against frames whose bead lies four pixels high on rows 8-11 or 9-12, a bead narrowed to rows 9-10
    shows a large deficit; a bead moved to rows 10-13 a smaller one, at the window's edge."""
    def frame(top: int, height: int = 4, narrowed: slice = slice(0)) -> torch.Tensor:
        f = torch.full((1, 1, 20, 30), 20.0)
        f[..., top:top + height, :] = 200.0
        f[..., top:top + height, narrowed] = 20.0
        f[..., top + 1:top + 3, narrowed] = 200.0
        return f

    normal = torch.cat([frame(8), frame(9), frame(8), frame(9)], dim=1)  # (1, k=4, H, W)
    _, _, mean, var = near_frame_stats(normal, 100.0, 0, 5)
    narrowed = deficit_planes(frame(8, narrowed=slice(10, 20)), 5, mean, var)
    moved = deficit_planes(frame(10), 5, mean, var)
    assert narrowed.shape == (1, DEFICIT_PLANES, 20, 30)
    assert narrowed[0, 0, 10, 13:17].min() * 64 > 50, "half the bead's grey level is gone from the window"
    assert narrowed[0, 1, 10, 13:17].min() > 2, "far outside the normal frames' spread"
    assert narrowed[0, 1, :, :5].max() < 1, "beside the narrowing: within the spread (a z-score of about 1)"
    assert moved[0, 1].max() < narrowed[0, 1].max(), "a moved bead keeps most of its grey level in the window"


def test_a_seamseg_with_gap_and_deficit_planes_and_scaled_dilations_exports_and_onnx_gives_its_maps(
        tmp_path: Path) -> None:
    frames = _frames(10)
    model = train("seamseg", frames[:8], preset="tiny", ctx=FitContext(seed=0, max_steps=20), gap_px=5, deficit_px=5,
                  dilation_scale=2)
    assert isinstance(model.net, SeamSegNet) and model.net.head.body[0].in_channels == 11
    val = frames[8:].copy()
    val[1, 50:53, 77:82] = 22  # a hole through the bead
    save(model, tmp_path, parity_images=val)
    ref = model.predict(val)
    got = load_model(tmp_path, runtime="onnx").predict(val)
    np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-3, atol=1e-4)


def test_the_gap_planes_scale_with_the_input_and_can_be_switched_off_or_set_to_an_odd_size() -> None:
    assert PRESETS["paper"].gap_size_px() == 11 and PRESETS["tiny"].gap_size_px() == 3  # 640 and 160 px wide
    assert dataclasses.replace(PRESETS["paper"], input_size_wh=(1280, 960)).gap_size_px() == 21
    assert SeamSegNet(PRESETS["tiny"]).head.body[0].in_channels == 9
    assert SeamSegNet(dataclasses.replace(PRESETS["tiny"], gap_px=0)).head.body[0].in_channels == 7
    with pytest.raises(ConfigError, match="gap_px must be None"):
        dataclasses.replace(PRESETS["tiny"], gap_px=4)
    with pytest.raises(ConfigError, match="deficit_px must be 0"):
        dataclasses.replace(PRESETS["tiny"], deficit_px=2)


@pytest.mark.parametrize(("scale", "field_px"), [(1, 33), (2, 65)])
def test_the_heads_receptive_field_grows_with_its_dilation_scale(scale: int, field_px: int) -> None:
    head = Head(4, 2, scale)
    for conv in head.body.modules():  # positive weights on a positive input: no ReLU blocks the gradient
        if isinstance(conv, nn.Conv2d):
            nn.init.constant_(conv.weight, 0.1)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
    planes = torch.ones(1, 2, 101, 101, requires_grad=True)
    head(planes)[0, 0, 50, 50].backward()
    assert planes.grad is not None
    reached = torch.nonzero(planes.grad.abs().sum(dim=(0, 1)))
    assert (reached.max(dim=0).values - reached.min(dim=0).values + 1).tolist() == [field_px, field_px]
    with pytest.raises(ConfigError, match="dilation_scale must be >= 1"):
        dataclasses.replace(PRESETS["tiny"], dilation_scale=0)
