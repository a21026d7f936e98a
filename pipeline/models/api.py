"""The model zoo's public entry points: train, calibrate, save, load.

>>> model = train("patchcore", train_images, preset="tiny")            # in memory, torch runtime
>>> model = calibrate(model, val_images, val_masks)                     # thresholds + normalisation
>>> save(model, "artifacts/patchcore-lower")                            # weights, ONNX, manifest
>>> served = load_model("artifacts/patchcore-lower", runtime="onnx")   # what the server holds
>>> pred = served.predict(batch_uint8_nhwc)                             # pred.scores (N,), pred.maps (N, H, W)
"""

from __future__ import annotations

import logging
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from pipeline.metrics.thresholds import best_f1_point, best_iou_point
from pipeline.models import artifacts
from pipeline.models.contract import U8, Normalization, ScoreCalibration, check_batch
from pipeline.models.errors import ArtifactError, ConfigError, InputError
from pipeline.models.export import PARITY_ATOL, export_onnx, parity_error
from pipeline.models.registry import config_from_dict, config_to_dict, get_entry, make_config
from pipeline.models.runtime import InferenceModel, OnnxRuntime, TorchRuntime
from pipeline.models.training import FitContext

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnx")


class TrainedModel(InferenceModel):
    """An :class:`InferenceModel` that also holds its network, config and training record (to save)."""

    def __init__(self, name: str, preset: str, config: Any, net: nn.Module, training: dict[str, Any],
                 calibration: ScoreCalibration | None = None, metrics: dict[str, Any] | None = None) -> None:
        super().__init__(name, tuple(config.input_size_wh), TorchRuntime(net), calibration)
        self.preset = preset
        self.config = config
        self.net = net
        self.training = training
        self.metrics: dict[str, Any] = metrics or {}

    def with_calibration(self, calibration: ScoreCalibration | None) -> TrainedModel:
        return TrainedModel(self.name, self.preset, self.config, self.net, self.training, calibration, self.metrics)


def train(name: str, images: U8, preset: str = "tiny", ctx: FitContext | None = None,
          **overrides: Any) -> TrainedModel:
    """Fit model ``name`` on normal ``images`` (N, H, W, 3) uint8 with a preset (+ config overrides).

    Raises:
        ConfigError: unknown model/preset/option. InputError: bad images. TrainingError: fit failed.
    """
    imgs = check_batch(images)
    ctx = ctx or FitContext()
    cfg = make_config(name, preset, **overrides)
    entry = get_entry(name)
    t0 = time.perf_counter()
    net = entry.fit(cfg, imgs, ctx)
    fit_s = time.perf_counter() - t0
    log.info("trained %s/%s on %d images in %.1f s", name, preset, len(imgs), fit_s)
    training = {
        "data_sha256": artifacts.data_hash(imgs), "n_images": len(imgs), "image_size_hw": list(imgs.shape[1:3]),
        "seed": ctx.seed, "fit_s": round(fit_s, 3), "max_steps": ctx.max_steps,
        "backbone_weights": str(ctx.backbone_weights) if ctx.backbone_weights else None,
        "torch": torch.__version__, "machine": platform.machine(),
        "trained_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return TrainedModel(name, preset, cfg, net, training)


def score_top_fraction(model: InferenceModel) -> float | None:
    """How a trained or loaded model's image score follows from its map (see
    :attr:`~pipeline.models.registry.ModelEntry.score_top_fraction`); None when it does not.

    Raises:
        ArtifactError: a loaded model whose manifest has no config.
    """
    rule = get_entry(model.name).score_top_fraction
    if rule is None:
        return None
    if isinstance(model, TrainedModel):
        return rule(model.config)
    if "config" not in model.manifest:
        raise ArtifactError(f"model {model.name!r} has no config in its manifest")
    return rule(config_from_dict(model.name, model.manifest["config"]))


def predict_all(model: InferenceModel, images: U8, batch_size: int = 4) -> tuple[npt.NDArray[np.float32],
                                                                                 npt.NDArray[np.float32]]:
    """Raw scores (N,) and maps (N, H, W) for many images, in batches."""
    scores, maps = [], []
    for i in range(0, len(images), batch_size):
        p = model.predict(images[i:i + batch_size])
        scores.append(p.scores)
        maps.append(p.maps)
    return np.concatenate(scores), np.concatenate(maps)


def fit_calibration(scores: npt.NDArray[np.float32], maps: npt.NDArray[np.float32],
                    labels: npt.NDArray[np.bool_], masks: npt.NDArray[np.bool_] | None) -> ScoreCalibration:
    """Thresholds and min-max normalisation from validation predictions.

    Image threshold: F1-optimal when anomalous images exist, placed halfway down to the next lower
    validation score (the same validation frames are flagged, and a runtime's rounding cannot unflag
    the lowest of them), else the max normal score. Pixel threshold: IoU-optimal (the paper's τ*) when
    GT masks have defect pixels, else the 99.9th percentile of normal pixels.
    """
    if labels.any() and not labels.all():
        img_thr = best_f1_point(labels, scores).threshold
        below = scores[scores < img_thr]
        if below.size:
            img_thr = 0.5 * (img_thr + float(below.max()))
        src = "validation (F1-optimal image, IoU-optimal pixel)"
    else:
        img_thr, src = float(np.max(scores)), "validation normals only (max score, 99.9th pixel percentile)"
    if masks is not None and masks.any() and not masks.all():
        pix_thr = best_iou_point(masks, maps).threshold
    else:
        pix_thr = float(np.quantile(maps, 0.999))
    return ScoreCalibration(float(img_thr), float(scores.min()), float(scores.max()), float(pix_thr),
                            float(maps.min()), float(maps.max()), src)


def calibrate(model: TrainedModel, images: U8, masks: npt.NDArray[np.bool_] | None = None,
              labels: npt.NDArray[np.bool_] | None = None) -> TrainedModel:
    """Fit thresholds/normalisation on validation ``images`` with GT ``masks`` (N, H, W) bool.

    ``labels`` default to "mask has a defect pixel". Returns a new model carrying the calibration.
    """
    imgs = check_batch(images)
    if masks is not None and masks.shape != imgs.shape[:3]:
        raise InputError(f"validation masks {masks.shape} do not match images {imgs.shape[:3]}")
    if labels is None:
        labels = (np.asarray(masks.reshape(len(masks), -1).any(1), bool) if masks is not None
                  else np.zeros(len(imgs), bool))
    scores, maps = predict_all(model, imgs)
    return model.with_calibration(fit_calibration(scores, maps, labels, masks))


def save(model: TrainedModel, directory: str | Path, parity_images: U8 | None = None) -> dict[str, Any]:
    """Write weights, ONNX and manifest into ``directory``; check torch-vs-ORT parity on ``parity_images``
    (default: two mid-grey frames). Returns the manifest.

    Raises:
        ModelError: export failed or parity is violated.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    artifacts.save_weights(d, model.net)
    export_onnx(model.net, model.input_size_wh, d / artifacts.ONNX)
    w, h = model.input_size_wh
    probe = parity_images if parity_images is not None else np.full((2, h, w, 3), 128, np.uint8)
    ort_model = InferenceModel(model.name, model.input_size_wh, OnnxRuntime(d / artifacts.ONNX))
    a, b = model.predict(probe), ort_model.predict(probe)
    err = parity_error((a.scores, a.maps), (b.scores, b.maps))
    if err > PARITY_ATOL:
        raise ArtifactError(f"ONNX parity failed for {model.name}: error {err:.3g} > tolerance {PARITY_ATOL}")
    entry = get_entry(model.name)
    manifest = {
        "model": model.name, "model_version": entry.version, "preset": model.preset,
        "config": config_to_dict(model.config),
        "input": {"size_wh": list(model.input_size_wh), "dtype": "uint8", "layout": "NHWC", "color": "RGB",
                  "network_input": "float32 NCHW 0..255 (normalisation inside the graph)"},
        "normalization": artifacts.normalization_dict(Normalization()),
        "calibration": artifacts.calibration_to_dict(model.calibration),
        "training": model.training, "metrics": model.metrics,
        "onnx": {"opset": 17, "parity_error": err, "parity_tolerance": PARITY_ATOL},
    }
    artifacts.write_manifest(d, manifest)
    log.info("saved %s to %s", model.name, d)
    return artifacts.read_manifest(d)


def load_model(directory: str | Path, runtime: str = "onnx", device: str = "cpu", fp16: bool = False,
               channels_last: bool = False) -> InferenceModel:
    """Load a verified artifact for inference with the chosen runtime.

    ``runtime="onnx"``: ONNX Runtime, ``device`` "cpu" | "cuda" | "tensorrt". ``runtime="torch"``:
    PyTorch eager on ``device`` ("cpu", "cuda", "cuda:1"), optionally fp16/channels-last on CUDA.

    Raises:
        ArtifactError: missing, corrupt or mismatched files. ConfigError: unknown runtime/device.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; use one of {RUNTIMES}")
    d = Path(directory)
    if runtime == "torch":
        net, manifest = artifacts.load_network(d)
        rt: TorchRuntime | OnnxRuntime = TorchRuntime(net, device, fp16, channels_last)
    else:
        manifest = artifacts.read_manifest(d)
        rt = OnnxRuntime(artifacts.verify_file(d, manifest, artifacts.ONNX), device)
    size = manifest["input"].get("size_wh")
    if not (isinstance(size, list) and len(size) == 2):
        raise ArtifactError(f"artifact {d}: manifest input size_wh is invalid: {size!r}")
    return InferenceModel(manifest["model"], (int(size[0]), int(size[1])), rt,
                          artifacts.calibration_from_manifest(manifest), manifest)
