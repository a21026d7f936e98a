"""A model with its preprocessing: train, calibrate, save and load so that serving sees what training saw.

>>> pre = PreprocessConfig(template=True, roi=True, roi_margin_px=8)
>>> model = train_preprocessed("patchcore", train_images, pre, roi=train_roi, preset="tiny")
>>> model = calibrate_preprocessed(model, val_images, val_masks, val_labels, roi=val_roi)
>>> save_preprocessed(model, "artifacts/patchcore-lower")   # + manifest "preprocess", template.png, roi.png
>>> served = load_preprocessed("artifacts/patchcore-lower")  # re-applies the same preprocessing
>>> pred = served.predict(frames)                           # maps in frame coordinates, 0 outside the ROI

An artifact without a ``preprocess`` section loads with preprocessing switched off.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.models import api, artifacts
from pipeline.models.api import TrainedModel
from pipeline.models.contract import (
    Prediction,
    ScoreCalibration,
    check_batch,
    finish_prediction,
    top_fraction_scores,
)
from pipeline.models.errors import ArtifactError, TrainingError
from pipeline.models.registry import get_entry
from pipeline.models.runtime import InferenceModel
from pipeline.models.training import FitContext, InputSources
from pipeline.preprocess.errors import PreprocessError
from pipeline.preprocess.preprocessor import PreprocessConfig, PreprocessedBatch, Preprocessor
from pipeline.preprocess.roi import Mask, translate
from pipeline.preprocess.template import U8, ViewTemplate

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]


class PreprocessedModel(InferenceModel):
    """``inner`` (a trained or loaded model) behind a :class:`Preprocessor`.

    ``predict(frames, roi=None)``: frames (N, H, W, 3) uint8 of the fitted view → :class:`Prediction`
    whose maps are in frame coordinates and least anomalous outside the ROI; the calibration (fitted on these
    final maps) belongs to this wrapper.

    Scores: where the network's image score is a statistic of its dense map (the Gaussian's and
    EfficientAD's max, MemSeg's top-k mean) and the map is restored (ROI masking or template alignment
    on), the same statistic of the restored map. The score then sees the ROI only, not the blacked-out
    input around it, whose constant response could otherwise be every normal frame's score. PatchCore
    and SimpleNet keep the network's score (see ``ModelEntry.score_top_fraction``). ``"auto"`` derives
    this rule; the artifact stores it (``preprocess.score_top_fraction``), and an artifact saved without
    it keeps the network's score, on which its thresholds were fitted.

    Raises:
        FrameRejectedError: a frame's template match is below the threshold (filter with :meth:`preprocess`).
        InputError: a bad batch.
    """

    def __init__(self, inner: InferenceModel, preprocessor: Preprocessor,
                 calibration: ScoreCalibration | None = None,
                 score_top_fraction: float | Literal["auto"] | None = "auto") -> None:
        super().__init__(inner.name, inner.input_size_wh, inner.runtime, calibration, inner.manifest)
        self.inner = inner.with_calibration(None) if inner.calibration is not None else inner
        self.preprocessor = preprocessor
        if score_top_fraction == "auto":  # the model's rule where the map is restored; else the network's score
            restores = preprocessor.config.roi or preprocessor.config.template
            score_top_fraction = api.score_top_fraction(self.inner) if restores else None
        #: the image score's rule, saved with the artifact (None: the network's own score)
        self.score_top_fraction: float | None = score_top_fraction

    def preprocess(self, frames: Any, roi: Mask | None = None) -> PreprocessedBatch:
        return self.preprocessor.apply(check_batch(frames), roi)

    def predict(self, batch: Any, roi: Mask | None = None) -> Prediction:
        t0 = time.perf_counter()
        prepped = self.preprocess(batch, roi)
        prepped.require_accepted()
        return self.predict_preprocessed(prepped, 1e3 * (time.perf_counter() - t0))

    def predict_preprocessed(self, prepped: PreprocessedBatch, preprocess_ms: float = 0.0) -> Prediction:
        """Score an already preprocessed (accepted) batch; ``timings_ms`` gains ``preprocess_ms``
        (matching, aligning, masking, and moving the maps back)."""
        raw = self.inner.predict(prepped.images)
        t0 = time.perf_counter()
        maps = self.preprocessor.restore_maps(raw.maps, prepped)
        scores = raw.scores if self.score_top_fraction is None else top_fraction_scores(maps, self.score_top_fraction)
        timings = {**raw.timings_ms, "preprocess_ms": preprocess_ms + 1e3 * (time.perf_counter() - t0)}
        return finish_prediction(scores, maps, self.calibration, timings)

    def with_calibration(self, calibration: ScoreCalibration | None) -> PreprocessedModel:
        return PreprocessedModel(self.inner, self.preprocessor, calibration, self.score_top_fraction)


def _drop_rejected(prepped: PreprocessedBatch, what: str) -> npt.NDArray[np.bool_]:
    keep = prepped.accepted
    if not keep.any():
        raise PreprocessError(f"all {len(keep)} {what} frame(s) were rejected by template matching "
                              f"(best score {np.nanmax(prepped.match_scores):.3f}); lower the threshold or "
                              f"cut the template elsewhere")
    if not keep.all():
        log.warning("%d of %d %s frame(s) rejected by template matching", int((~keep).sum()), len(keep), what)
    return keep


def with_model_defaults(name: str, config: PreprocessConfig) -> PreprocessConfig:
    """``config`` with model ``name``'s own contrast max-pool (``ModelEntry.contrast_pool_px``) where the
    contrast step is on and ``config`` sets no pool. Raises ConfigError for an unknown model."""
    pool = get_entry(name).contrast_pool_px
    if config.contrast and config.contrast_pool_px is None and pool is not None:
        return dataclasses.replace(config, contrast_pool_px=pool)
    return config


def train_preprocessed(name: str, images: U8, config: PreprocessConfig, roi: Mask | None = None,
                       preset: str = "tiny", ctx: FitContext | None = None, seam_mask: Mask | None = None,
                       **overrides: Any) -> PreprocessedModel:
    """Fit the preprocessing on ``images[0]`` (the reference normal frame), then the model on the
    preprocessed ``images`` (N, H, W, 3) uint8; frames rejected by the template are left out.

    The reference ROI is ``seam_mask`` (H, W) of the reference frame widened by the margin, else
    ``roi[0]`` widened likewise. ``roi`` (N, H, W) are per-frame ROI masks, used as given. A contrast
    step without a max-pool takes the model's own (:func:`with_model_defaults`).

    Raises:
        PreprocessError: no seam/ROI mask with ROI masking on, every frame rejected.
        ConfigError, InputError, TrainingError: as :func:`pipeline.models.api.train`.
    """
    imgs = check_batch(images)
    config = with_model_defaults(name, config)
    seams = seam_mask if seam_mask is not None else (roi[0] if roi is not None else None)
    pre = Preprocessor.fit(config, imgs[0], seams if config.roi else None)
    prepped = pre.apply(imgs, roi)
    keep = _drop_rejected(prepped, "training")
    frames, frame_roi = imgs, prepped.roi  # no copy of the training set unless some frames were rejected
    if not keep.all():
        frames, frame_roi = imgs[keep], None if prepped.roi is None else prepped.roi[keep]
    sources = input_sources(pre, frames, prepped.offsets_xy[keep], frame_roi)
    ctx = dataclasses.replace(ctx or FitContext(), sources=sources)
    model = api.train(name, prepped.images[keep], preset=preset, ctx=ctx, **overrides)
    model.training["preprocess_rejected"] = int((~keep).sum())
    if pre.template is not None:  # how far the training views moved: the views a server should let it score
        offsets = prepped.offsets_xy[keep]
        model.training["template_offsets_px"] = [offsets.min(axis=0).tolist(), offsets.max(axis=0).tolist()]
    log.info("preprocessing: %s", pre.describe())
    return PreprocessedModel(model, pre)


def input_sources(pre: Preprocessor, frames: U8, offsets_xy: npt.NDArray[np.int32],
                  roi: Mask | None) -> InputSources | None:
    """With the contrast step, what a model that plants synthetic defects draws them on: the raw
    ``frames`` moved into the reference coordinates by their matched ``offsets_xy`` (on demand), and the rest of the
    preprocessing: a drawn-on frame is moved back and goes through :meth:`Preprocessor.finish` as the
    frame did, so its input equals the frame's own outside the edits (and the contrast window's reach
    of the border the moves shifted out). None without the contrast step: the inputs are then the
    (masked) frames themselves. ``roi``: the frames' ROI in reference coordinates, None for the reference ROI."""
    if not pre.config.contrast:
        return None
    offsets = [(int(dx), int(dy)) for dx, dy in offsets_xy]
    if len(offsets) != len(frames):
        raise PreprocessError(f"{len(offsets)} offsets for {len(frames)} frames")

    def aligned(i: int) -> U8:
        return translate(frames[i], (-offsets[i][0], -offsets[i][1]))

    def to_input(i: int, frame: U8) -> U8:
        return pre.finish(translate(frame, offsets[i]), offsets[i], None if roi is None else roi[i])

    return InputSources(len(frames), aligned, to_input)


def predict_dataset(model: PreprocessedModel, images: U8, roi: Mask | None = None,
                    batch_size: int = 4) -> tuple[F32, F32, npt.NDArray[np.bool_]]:
    """Raw scores (N,), maps (N, H, W) and the template's ``accepted`` flags (N,) for many frames.

    Rejected frames get score −inf and an all-zero map; leave them out of metrics with the flags.
    """
    scores, maps, accepted = [], [], []
    for i in range(0, len(images), batch_size):
        prepped = model.preprocess(images[i:i + batch_size], None if roi is None else roi[i:i + batch_size])
        s = np.full(len(prepped.accepted), -np.inf, np.float32)
        m = np.zeros(prepped.images.shape[:3], np.float32)
        ok = prepped.accepted
        if ok.any():
            p = model.predict_preprocessed(prepped.take(np.flatnonzero(ok)))
            s[ok], m[ok] = p.scores, p.maps
        scores.append(s)
        maps.append(m)
        accepted.append(ok)
    return np.concatenate(scores), np.concatenate(maps), np.concatenate(accepted)


def calibrate_preprocessed(model: PreprocessedModel, images: U8, masks: Mask | None = None,
                           labels: npt.NDArray[np.bool_] | None = None, roi: Mask | None = None) -> PreprocessedModel:
    """Fit thresholds and normalisation on the final (restored, ROI-masked) maps of validation frames.

    Raises:
        PreprocessError: every validation frame rejected. InputError: masks of the wrong shape.
    """
    imgs = check_batch(images)
    if masks is not None and masks.shape != imgs.shape[:3]:
        raise PreprocessError(f"validation masks {masks.shape} do not match images {imgs.shape[:3]}")
    if labels is None:
        labels = (np.asarray(masks.reshape(len(masks), -1).any(1), bool) if masks is not None
                  else np.zeros(len(imgs), bool))
    scores, maps, ok = predict_dataset(model, imgs, roi)
    if not ok.any():
        raise PreprocessError(f"all {len(ok)} validation frame(s) were rejected by template matching")
    cal = api.fit_calibration(scores[ok], maps[ok], labels[ok], None if masks is None else masks[ok])
    return model.with_calibration(cal)


def _png(image: U8) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ArtifactError("cannot encode a preprocessing image as PNG")
    return bytes(buf.tobytes())


def save_preprocessed(model: PreprocessedModel, directory: str | Path,
                      parity_images: U8 | None = None) -> dict[str, Any]:
    """Save the inner model with this wrapper's calibration (weights, ONNX, manifest), then the
    preprocessing: ``preprocess`` in the manifest, ``template.png`` and ``roi.png`` hashed beside it.

    Raises:
        ModelError: export or parity failed. TrainingError: ``model`` was loaded, not trained.
    """
    if not isinstance(model.inner, TrainedModel):
        raise TrainingError("only a freshly trained model can be saved; this one was loaded from an artifact")
    d = Path(directory)
    api.save(model.inner.with_calibration(model.calibration), d, parity_images)
    pre = model.preprocessor
    section: dict[str, Any] = {"config": pre.config.to_dict(),
                               "frame_size_wh": list(pre.frame_size_wh) if pre.frame_size_wh else None,
                               "score_top_fraction": model.score_top_fraction}
    for name, image in ((artifacts.TEMPLATE, None if pre.template is None else pre.template.image),
                        (artifacts.ROI_MASK, None if pre.roi_reference is None else
                         pre.roi_reference.astype(np.uint8) * 255)):
        if image is None:
            (d / name).unlink(missing_ok=True)  # a stale file from an earlier save would be hashed otherwise
        else:
            artifacts.atomic_write(d / name, _png(image))
    if pre.template is not None:
        section["template_box_xywh"] = list(pre.template.box_xywh)
    manifest = artifacts.read_manifest(d)
    manifest["preprocess"] = section
    artifacts.write_manifest(d, manifest)
    return artifacts.read_manifest(d)


def preprocessor_from_manifest(directory: str | Path, manifest: dict[str, Any]) -> Preprocessor:
    """The :class:`Preprocessor` an artifact was trained with (off when the manifest has none).

    Raises:
        ArtifactError: an invalid section, or a missing/corrupt ``template.png`` / ``roi.png``.
    """
    d = Path(directory)
    section = manifest.get("preprocess")
    if not section:
        return Preprocessor(PreprocessConfig())
    try:
        config = PreprocessConfig.from_dict(section.get("config", {}))
        size = section.get("frame_size_wh")
        size_wh = (int(size[0]), int(size[1])) if size else None
        template = None
        if config.template:
            img = _read_png(d, manifest, artifacts.TEMPLATE)
            x, y, w, h = (int(v) for v in section["template_box_xywh"])
            template = ViewTemplate(img, (x, y, w, h), config.template_threshold)
        roi = _read_png(d, manifest, artifacts.ROI_MASK) > 0 if config.roi else None
        return Preprocessor(config, template, roi, size_wh)
    except (PreprocessError, KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"artifact {d}: preprocess section is invalid: {e}") from e


def _read_png(d: Path, manifest: dict[str, Any], name: str) -> U8:
    p = artifacts.verify_file(d, manifest, name)
    img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ArtifactError(f"artifact {d}: {name} is not a readable image")
    return np.asarray(img, np.uint8)


def load_preprocessed(directory: str | Path, runtime: str = "onnx", device: str = "cpu", fp16: bool = False,
                      channels_last: bool = False) -> PreprocessedModel:
    """:func:`pipeline.models.api.load_model` plus the artifact's preprocessing, re-applied on every predict.

    Raises:
        ArtifactError: missing, corrupt or mismatched files (preprocessing images included).
        ConfigError: unknown runtime/device.
    """
    inner = api.load_model(directory, runtime, device, fp16, channels_last)
    fraction = (inner.manifest.get("preprocess") or {}).get("score_top_fraction")
    if fraction is not None and not (isinstance(fraction, float | int) and 0.0 <= fraction <= 1.0):
        raise ArtifactError(f"artifact {directory}: preprocess score_top_fraction {fraction!r} is not in [0, 1]")
    # an artifact saved without the rule kept the network's score: its thresholds were fitted on that
    return PreprocessedModel(inner, preprocessor_from_manifest(directory, inner.manifest), inner.calibration,
                             None if fraction is None else float(fraction))
