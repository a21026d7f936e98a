"""The paper's preprocessing on synthetic views: template matching finds a planted offset and rejects
another view, ROI margins are exact, and a masked tiny PatchCore keeps its maps inside the ROI through
an artifact round trip (ONNX Runtime), so serving applies what training applied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.models import ArtifactError, FitContext, TrainedModel, get_entry, make_config
from pipeline.models.artifacts import write_manifest
from pipeline.models.contract import top_fraction_scores
from pipeline.models.errors import ModelError
from pipeline.preprocess import (
    FrameRejectedError,
    PreprocessConfig,
    PreprocessedModel,
    PreprocessError,
    Preprocessor,
    calibrate_preprocessed,
    cut_template,
    load_preprocessed,
    match_template,
    roi_from_polylines,
    roi_mask,
    save_preprocessed,
    train_preprocessed,
    translate,
)
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.heatmaps import ModelHeatmaps
from xrserver.provision import load_view_model

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
SIZE_HW = (96, 128)


def _scene(rng: np.random.Generator, h: int, w: int) -> tuple[U8, Mask]:
    """A textured panel (blocks + blobs, fixed by ``rng``) with two sealant beads; (image, seam mask)."""
    img = cv2.resize(rng.integers(40, 200, (h // 8, w // 8, 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_NEAREST)
    img = cv2.GaussianBlur(img, (5, 5), 0)
    seams = np.zeros((h, w), np.uint8)
    xs = np.linspace(10, w - 10, 4)
    bead = np.stack([xs, rng.integers(h // 4, 3 * h // 4, 4)], 1).astype(np.int32)
    cv2.polylines(seams, [bead], False, 255, 5)
    x0, x1 = (int(v) for v in rng.integers(w // 4, 3 * w // 4, 2))
    cv2.line(seams, (x0, 10), (x1, h - 10), 255, 5)
    img[seams > 0] = (220, 210, 120)
    return np.asarray(img, np.uint8), seams > 0


@dataclass(frozen=True)
class View:
    """Frames of one view shifted by a few px (conveyor jitter), with their seam masks."""

    frames: U8
    seams: Mask
    offsets_xy: list[tuple[int, int]]


def synthetic_view(n: int, seed: int = 0, view_seed: int = 1, max_shift_px: int = 4) -> View:
    """``n`` frames (N, 96, 128, 3) of one fixed scene (``view_seed``), frame 0 unshifted, the others moved
    by up to ``max_shift_px`` with sensor noise; seam masks (N, 96, 128) moved alike."""
    H, W = SIZE_HW
    pad = 16
    big, big_seams = _scene(np.random.default_rng(view_seed), H + 2 * pad, W + 2 * pad)
    rng = np.random.default_rng(seed)
    frames, seams, offs = [], [], []
    for i in range(n):
        dx, dy = (0, 0) if i == 0 else (int(v) for v in rng.integers(-max_shift_px, max_shift_px + 1, 2))
        # the view moved by (dx, dy): the frame's window into the scene moves the other way
        win = (slice(pad - dy, pad - dy + H), slice(pad - dx, pad - dx + W))
        noise = rng.normal(0, 2.0, (H, W, 3))
        frames.append(np.clip(big[win].astype(np.float64) + noise, 0, 255).astype(np.uint8))
        seams.append(big_seams[win])
        offs.append((dx, dy))
    return View(np.stack(frames), np.stack(seams), offs)


def test_template_matching_finds_a_planted_offset_and_rejects_another_view() -> None:
    ref = synthetic_view(1).frames[0]
    tpl = cut_template(ref, (32, 24, 64, 48), threshold=0.7)
    assert match_template(ref, tpl).score == pytest.approx(1.0, abs=1e-4)
    shifted = translate(ref, (7, -5))
    m = match_template(shifted, tpl)
    assert m.offset_xy == (7, -5) and m.top_left_xy == (39, 19) and m.accepted and m.score > 0.95
    other = synthetic_view(1, view_seed=99).frames[0]
    wrong = match_template(other, tpl)
    assert not wrong.accepted and wrong.score < 0.7


def test_template_rejects_bad_boxes_and_flat_crops() -> None:
    ref = synthetic_view(1).frames[0]
    with pytest.raises(PreprocessError, match="inside"):
        cut_template(ref, (100, 80, 64, 48))
    with pytest.raises(PreprocessError, match="flat"):
        cut_template(np.full((96, 128, 3), 90, np.uint8))


def test_roi_margin_is_exact() -> None:
    seams = np.zeros((41, 41), bool)
    seams[20, 20] = True
    roi = roi_mask(seams, 5)
    yy, xx = np.mgrid[:41, :41]
    r = np.hypot(yy - 20, xx - 20)
    assert roi[r <= 4.5].all() and not roi[r > 5.5].any()  # a disc of radius 5 px on the pixel grid
    assert roi[20, 15] and roi[20, 25] and not roi[20, 14] and not roi[20, 26]
    assert (roi_mask(seams, 0) == seams).all()
    line = roi_from_polylines((41, 41), [np.array([[5, 20], [35, 20]])], bead_width_px=3, margin_px=2)
    assert line[20, 20] and line[21 + 2, 20] and not line[21 + 3 + 1, 20] and not line[20, 1]
    with pytest.raises(PreprocessError, match="empty"):
        roi_mask(np.zeros((8, 8), bool), 3)


def test_preprocessor_aligns_frames_and_maps_back() -> None:
    view = synthetic_view(4, max_shift_px=6)
    cfg = PreprocessConfig(template=True, template_threshold=0.7, roi=True, roi_margin_px=3)
    pre = Preprocessor.fit(cfg, view.frames[0], view.seams[0])
    batch = pre.apply(view.frames)
    assert batch.accepted.all()
    assert [tuple(o) for o in batch.offsets_xy] == view.offsets_xy
    assert batch.roi is not None and not batch.images[~batch.roi].any()
    core = (slice(8, -8), slice(8, -8))  # aligned: every frame now shows the view where the reference does
    for img in batch.images[1:]:
        assert np.abs(img[core].astype(np.int16) - batch.images[0][core]).mean() < 3.0
    assert pre.roi_reference is not None
    ones = np.ones((4, *SIZE_HW), np.float32)
    back = pre.restore_maps(ones, batch)
    for i, off in enumerate(view.offsets_xy):  # maps come back in each frame's own coordinates
        assert (back[i] > 0).sum() == pre.roi_reference.sum() - _cut(pre.roi_reference, off)
        inner = (slice(4, -4), slice(4, -4))  # a seam just outside the frame widens the ROI at its edge
        assert not back[i][inner][~roi_mask(view.seams[i], 3)[inner]].any()


def test_maps_that_go_below_zero_stay_least_anomalous_outside_the_roi() -> None:
    # EfficientAD's quantile-normalised maps and SimpleNet's negated discriminator are mostly negative on
    # normal pixels: a zero outside the ROI would outrank them all and turn pixel AUROC upside down
    view = synthetic_view(2, max_shift_px=6)
    pre = Preprocessor.fit(PreprocessConfig(template=True, roi=True, roi_margin_px=3), view.frames[0], view.seams[0])
    batch = pre.apply(view.frames)
    assert batch.roi is not None
    maps = np.random.default_rng(0).uniform(-1.0, -0.5, (2, *SIZE_HW)).astype(np.float32)
    back, positive = pre.restore_maps(maps, batch), pre.restore_maps(-maps, batch)
    for i in range(2):
        dx, dy = (int(v) for v in batch.offsets_xy[i])
        inside = translate(batch.roi[i], (dx, dy))  # the ROI in the frame's own coordinates
        assert back[i][~inside].max() == back[i].min() == maps[i].min() < 0
        assert np.isin(back[i][inside], maps[i]).all()
        assert not positive[i][~inside].any() and (positive[i][inside] > 0).all()  # non-negative maps: zero


def test_a_masked_score_sees_the_roi_only(tmp_path: Path) -> None:
    # the network's own image score is its map's maximum over the whole input, blacked-out area included;
    # behind ROI masking the score must come from the ROI, or that area's response becomes the score
    view = synthetic_view(6)
    cfg = PreprocessConfig(template=True, roi=True, roi_margin_px=3)
    model = train_preprocessed("gaussian", view.frames[:5], cfg, preset="tiny", seam_mask=view.seams[0])
    roi_ref = model.preprocessor.roi_reference
    assert roi_ref is not None and model.score_top_fraction == 0.0
    half = roi_ref.copy()
    half[:, SIZE_HW[1] // 2:] = False  # this frame's ROI: the left half; the right half's seams are blacked out
    frame = view.frames[5:]
    net = model.inner.predict(model.preprocess(frame, half[None]).images)
    got = model.predict(frame, half[None])
    assert got.scores[0] == pytest.approx(got.maps[0].max()) == pytest.approx(got.maps[0][half].max())
    assert net.scores[0] > 2 * got.scores[0]  # the blacked-out seams, where the network saw beads in training
    # the rule travels with the artifact
    manifest = save_preprocessed(model, tmp_path)
    assert manifest["preprocess"]["score_top_fraction"] == 0.0
    served = load_preprocessed(tmp_path)
    assert served.score_top_fraction == 0.0
    assert served.predict(frame, half[None]).scores[0] == pytest.approx(got.scores[0], rel=1e-4)
    # an artifact saved before the rule existed keeps the score its thresholds were fitted on
    del manifest["preprocess"]["score_top_fraction"]
    write_manifest(tmp_path, manifest)
    old = load_preprocessed(tmp_path)
    assert old.score_top_fraction is None
    assert old.predict(frame, half[None]).scores[0] == pytest.approx(net.scores[0], rel=1e-4)
    manifest["preprocess"]["score_top_fraction"] = 3
    write_manifest(tmp_path, manifest)
    with pytest.raises(ArtifactError, match="score_top_fraction"):
        load_preprocessed(tmp_path)


def test_which_models_take_their_score_from_the_map() -> None:
    view = synthetic_view(2)
    unmasked = train_preprocessed("gaussian", view.frames, PreprocessConfig(), preset="tiny")
    assert unmasked.score_top_fraction is None  # no map to restore: the network's own score
    # SimpleNet keeps its own score; MemSeg's top_k is a fraction of the input's pixels
    assert get_entry("simplenet").score_top_fraction is None
    assert get_entry("efficientad-s").score_top_fraction is not None
    patchcore_rule = get_entry("patchcore").score_top_fraction
    assert patchcore_rule is not None and patchcore_rule(make_config("patchcore", "tiny")) == 0.0  # the map's max
    memseg = get_entry("memseg")
    assert memseg.score_top_fraction is not None
    assert memseg.score_top_fraction(make_config("memseg", "tiny", top_k=12, input_size_wh=(96, 72))) == 12 / 6912


def test_top_fraction_scores_by_hand() -> None:
    maps = np.array([[[0.0, 1.0], [4.0, 2.0]], [[-3.0, -1.0], [-2.0, -4.0]]], np.float32)
    np.testing.assert_allclose(top_fraction_scores(maps, 0.0), [4.0, -1.0])  # the max
    np.testing.assert_allclose(top_fraction_scores(maps, 0.5), [3.0, -1.5])  # the mean of the top 2 of 4
    np.testing.assert_allclose(top_fraction_scores(maps, 1.0), [1.75, -2.5])


def _cut(mask: Mask, off: tuple[int, int]) -> int:
    """ROI pixels pushed out of the frame by a shift."""
    return int(mask.sum() - translate(mask, off).sum())


def _masked_artifact(view: View, d: Path) -> PreprocessedModel:
    """A masked, template-matching PatchCore of ``view``, calibrated on a planted defect and saved in ``d``."""
    cfg = PreprocessConfig(template=True, template_threshold=0.7, roi=True, roi_margin_px=4)
    model = train_preprocessed("patchcore", view.frames[:6], cfg, preset="tiny", ctx=FitContext(seed=0),
                               seam_mask=view.seams[0])
    val = view.frames[6:].copy()
    masks = np.zeros(val.shape[:3], bool)
    masks[1, 30:36, 60:66] = True
    val[1][masks[1]] = (20, 20, 20)
    model = calibrate_preprocessed(model, val, masks)
    save_preprocessed(model, d)
    return model


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> tuple[PreprocessedModel, Path, View]:
    view = synthetic_view(8)
    d = tmp_path_factory.mktemp("masked")
    return _masked_artifact(view, d), d, view


@pytest.fixture(scope="module")
def second_viewpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, View]:
    """The same camera's model of another viewpoint (another scene), trained alike."""
    view = synthetic_view(8, seed=1, view_seed=5)
    d = tmp_path_factory.mktemp("second_viewpoint")
    _masked_artifact(view, d)
    return d, view


def test_masked_patchcore_zeroes_maps_outside_the_roi_after_a_round_trip(
        masked: tuple[PreprocessedModel, Path, View]) -> None:
    model, d, view = masked
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["preprocess"]["config"]["roi"] and manifest["preprocess"]["config"]["template"]
    assert manifest["preprocess"]["score_top_fraction"] == 0.0
    assert {"template.png", "roi.png"} <= set(manifest["files"])
    frames = np.stack([view.frames[7], translate(view.frames[7], (3, 2))])
    ref = model.predict(frames)
    served = load_preprocessed(d, runtime="onnx")
    got = served.predict(frames)
    assert served.preprocessor.config == model.preprocessor.config and got.timings_ms["preprocess_ms"] > 0
    np.testing.assert_array_equal(served.preprocessor.roi_reference, model.preprocessor.roi_reference)
    np.testing.assert_allclose(got.maps, ref.maps, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(got.scores, ref.scores, rtol=1e-3, atol=1e-4)
    batch = served.preprocess(frames)
    roi_ref = served.preprocessor.roi_reference
    assert roi_ref is not None
    for i in range(2):
        outside = ~translate(roi_ref, (int(batch.offsets_xy[i, 0]), int(batch.offsets_xy[i, 1])))
        assert outside.any() and not got.maps[i][outside].any()  # zero outside the ROI, in frame coordinates
        assert got.maps[i][~outside].max() > 0
    np.testing.assert_allclose(got.scores, got.maps.reshape(2, -1).max(axis=1), rtol=1e-6)  # the ROI's maximum
    # without preprocessing the same network scores the background too
    unmasked = served.inner.predict(frames)
    assert unmasked.maps[0][~roi_ref].max() > 0


def test_served_model_rejects_another_view(masked: tuple[PreprocessedModel, Path, View]) -> None:
    _, d, _ = masked
    served = load_preprocessed(d)
    with pytest.raises(FrameRejectedError, match="do not show the trained view") as e:
        served.predict(np.stack([synthetic_view(2).frames[1], synthetic_view(1, view_seed=5).frames[0]]))
    assert e.value.indices == (1,)


def test_the_server_serves_the_artifact_with_its_preprocessing(masked: tuple[PreprocessedModel, Path, View]) -> None:
    _, d, view = masked
    served = ModelHeatmaps(load_preprocessed(d), max_shift_px=4)  # as xrserver.provision loads configured models
    other = synthetic_view(1, view_seed=5).frames[0]
    maps = served.heatmaps(np.stack([view.frames[7], other]), ("lower", "lower"), None)  # type: ignore[arg-type]
    (model,) = served.models
    assert isinstance(model, PreprocessedModel) and model.preprocessor.roi_reference is not None
    off = model.preprocess(view.frames[7:8]).offsets_xy[0]
    roi = translate(model.preprocessor.roi_reference, (int(off[0]), int(off[1])))  # in frame coordinates
    assert maps.shape == (2, *SIZE_HW) and maps[0].max() > 0 and not maps[0][~roi].any()
    assert np.isnan(maps[1]).all() and served.unscored == 1, "a frame of another view is not scored"


def test_one_camera_serves_a_model_per_viewpoint(masked: tuple[PreprocessedModel, Path, View],
                                                 second_viewpoint: tuple[Path, View],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The paper's station camera: the config lists an artifact per viewpoint; each frame goes to the model
    whose template matches it, scored as that model alone would; a frame of no viewpoint is not scored."""
    (_, d1, view1), (d2, view2) = masked, second_viewpoint
    rig = DigitalTwin(TwinConfig(seed=0, width_px=SIZE_HW[1], height_px=SIZE_HW[0])).rig
    with caplog.at_level("WARNING", logger="xrserver.provision"):
        served = load_view_model("lower", [d1, d2], rig, max_shift_px=4)  # the synthetic views move up to 4 px
    assert f"{d1} records no station travel" in caplog.text, "trained from a folder without --station-travel-m"
    assert isinstance(served, ModelHeatmaps) and served.name == "patchcore"
    stranger = synthetic_view(1, view_seed=99).frames[0]
    frames = np.stack([view2.frames[7], view1.frames[7], stranger, view2.frames[6]])
    maps = served.heatmaps(frames, ["lower"] * 4, None)  # type: ignore[arg-type]
    assert served.scored == [1, 2] and served.unscored == 1
    assert np.isnan(maps[2]).all() and not np.isnan(maps[[0, 1, 3]]).any()
    for d, idx in ((d1, [1]), (d2, [0, 3])):
        alone = ModelHeatmaps(load_preprocessed(d), max_shift_px=4)
        np.testing.assert_allclose(maps[idx], alone.heatmaps(frames[idx], ["lower"] * len(idx), None),  # type: ignore[arg-type]
                                   atol=1e-6)
    with pytest.raises(ArtifactError, match=r"fitted on 128x96 frames, given for camera lower at 320x240"):
        load_view_model("lower", [d1, d2], DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240)).rig)
    second = served.models[1]
    assert isinstance(second, PreprocessedModel)
    blind = PreprocessedModel(second.inner, second.preprocessor.without(template=True), second.calibration)
    with pytest.raises(ModelError, match=r"2 models serve one camera, but \['patchcore'\] match no template"):
        ModelHeatmaps([served.models[0], blind])


def test_an_artifact_that_records_no_training_moves_is_named_at_load(
        masked: tuple[PreprocessedModel, Path, View], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, d, _ = masked
    for f in d.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["training"]["template_offsets_px"]  # as saved before the record existed
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    rig = DigitalTwin(TwinConfig(seed=0, width_px=SIZE_HW[1], height_px=SIZE_HW[0])).rig
    with caplog.at_level("WARNING", logger="xrserver.provision"):
        served = load_view_model("lower", tmp_path, rig)
    assert f"{tmp_path} records no moves of its training views" in caplog.text
    assert isinstance(served, ModelHeatmaps) and served.max_shift_px is None
    caplog.clear()
    with caplog.at_level("WARNING", logger="xrserver.provision"):
        load_view_model("lower", tmp_path, rig, max_shift_px=4)
        load_view_model("lower", d, rig)
    assert not caplog.text, "a set limit, or a recorded one, needs no warning"


def test_a_view_moved_too_far_from_the_trained_one_is_not_scored(
        masked: tuple[PreprocessedModel, Path, View]) -> None:
    _, d, view = masked
    loaded = load_preprocessed(d)
    moves = np.array(view.offsets_xy[:6])  # the training frames'
    trained = [moves.min(axis=0).tolist(), moves.max(axis=0).tolist()]
    assert loaded.manifest["training"]["template_offsets_px"] == trained
    by_default = ModelHeatmaps(loaded)  # within the training views' moves, and 1 px more at this width
    far = translate(view.frames[0], (trained[1][0] + 2, 0))
    maps = by_default.heatmaps(np.stack([view.frames[4], far]), ["lower"] * 2, None)  # type: ignore[arg-type]
    assert not np.isnan(maps[0]).any() and np.isnan(maps[1]).all() and by_default.unscored == 1
    served = ModelHeatmaps(load_preprocessed(d), max_shift_px=2)
    maps = served.heatmaps(view.frames, ["lower"] * len(view.frames), None)  # type: ignore[arg-type]
    near = np.array([max(abs(dx), abs(dy)) <= 2 for dx, dy in view.offsets_xy])
    assert near.any() and not near.all(), "the synthetic view has frames on either side of the limit"
    assert (np.isnan(maps).all(axis=(1, 2)) == ~near).all() and served.unscored == int((~near).sum())
    with pytest.raises(ModelError, match="max_shift_px"):
        ModelHeatmaps(load_preprocessed(d), max_shift_px=-1)
    loaded.manifest["training"]["template_offsets_px"] = [[3, 0], [1, 2]]  # as a hand-edited manifest might
    with pytest.raises(ArtifactError, match=r"training\.template_offsets_px must be \[\[min x, min y\]"):
        ModelHeatmaps(loaded)
    loaded.manifest["training"]["template_offsets_px"] = trained
    loaded.manifest["training"]["station_travel_m"] = [0.2, 0.1]
    with pytest.raises(ArtifactError, match=r"training\.station_travel_m must be \[min, max\] m, got \[0\.2, 0\.1\]"):
        ModelHeatmaps(loaded)
    loaded.manifest["training"]["station_travel_m"] = [0.1, 0.2]  # frames placed by travel: served on a conveyor
    with pytest.raises(ModelError, match="records its station's conveyor travel needs the conveyor"):
        ModelHeatmaps(loaded)


def test_a_tampered_roi_file_is_caught(masked: tuple[PreprocessedModel, Path, View], tmp_path: Path) -> None:
    _, d, _ = masked
    for f in d.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    cv2.imwrite(str(tmp_path / "roi.png"), np.full(SIZE_HW, 255, np.uint8))
    with pytest.raises(ArtifactError, match=r"roi\.png is corrupt"):
        load_preprocessed(tmp_path)


def test_config_round_trips_and_rejects_unknown_fields() -> None:
    cfg = PreprocessConfig(template=True, template_box_xywh=(1, 2, 30, 20), roi=True, roi_margin_px=3)
    assert PreprocessConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(PreprocessError, match="unknown field"):
        PreprocessConfig.from_dict({"roi": True, "roi_margin": 3})
    with pytest.raises(PreprocessError, match="margin"):
        PreprocessConfig(roi_margin_px=-1)


def test_an_artifact_without_preprocessing_loads_with_it_off(tmp_path: Path) -> None:
    from pipeline.models import load_model, save, train

    view = synthetic_view(3)
    save(train("gaussian", view.frames[:2]), tmp_path)
    served = load_preprocessed(tmp_path)
    assert not served.preprocessor.enabled
    frames = np.stack([view.frames[2], synthetic_view(1, view_seed=7).frames[0]])  # any view: nothing rejects
    np.testing.assert_array_equal(served.predict(frames).maps, load_model(tmp_path).predict(frames).maps)


def test_training_leaves_out_frames_of_another_view() -> None:
    frames = np.concatenate([synthetic_view(3).frames, synthetic_view(1, view_seed=42).frames])
    model = train_preprocessed("gaussian", frames, PreprocessConfig(template=True), preset="tiny")
    assert isinstance(model.inner, TrainedModel)
    assert model.inner.training["preprocess_rejected"] == 1 and model.inner.training["n_images"] == 3


def test_photometric_step_removes_paint_and_lighting_changes() -> None:
    view = synthetic_view(2)
    frame = view.frames[1]
    # another body colour under a brighter light: a per-channel gain and offset
    relit = np.clip(frame.astype(np.float32) * np.array([1.1, 0.7, 1.05]) + np.array([10, -5, 0]), 0, 255)
    frames = np.stack([frame, relit.astype(np.uint8)])
    plain = Preprocessor.fit(PreprocessConfig(), view.frames[0]).apply(frames).images
    pre = Preprocessor.fit(PreprocessConfig(photometric=True), view.frames[0])
    out = pre.apply(frames).images
    assert pre.enabled and pre.describe() == "photometric"
    assert np.abs(plain[0].astype(np.int16) - plain[1]).mean() > 15
    assert np.abs(out[0].astype(np.int16) - out[1]).mean() < 1.5
    means = out.reshape(2, -1, 3).mean(axis=1)
    np.testing.assert_allclose(means, 128.0, atol=2.0)
    assert np.array_equal(pre.without(photometric=True).apply(frames).images, frames)


def test_photometric_step_survives_the_artifact(tmp_path: Path) -> None:
    view = synthetic_view(5)
    cfg = PreprocessConfig(photometric=True, roi=True, roi_margin_px=3)
    model = train_preprocessed("gaussian", view.frames[:4], cfg, preset="tiny", seam_mask=view.seams[0])
    save_preprocessed(model, tmp_path)
    served = load_preprocessed(tmp_path)
    assert served.preprocessor.config == cfg
    darker = (view.frames[4:] * 0.6).astype(np.uint8)  # the same view under less light scores the same
    np.testing.assert_allclose(served.predict(darker).maps, model.predict(view.frames[4:]).maps, atol=0.5)
