"""Runtimes behind one ``run`` contract: PyTorch eager (fp32, or fp16/channels-last on CUDA) and ONNX Runtime.

``run(x)``: x (N, 3, h, w) float32 0..255 at the model's input size → (scores (N,), maps (N, 1, h, w)).
:class:`InferenceModel` adds the numpy pre/post-processing shared by every runtime.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from pipeline.models.contract import (
    F32,
    Prediction,
    ScoreCalibration,
    check_batch,
    finish_prediction,
    maps_to_input_size,
    to_network_input,
)
from pipeline.models.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

#: ONNX Runtime execution providers for each ``device`` name, best first.
ORT_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class Runtime(Protocol):
    name: str

    def run(self, x: F32) -> tuple[F32, F32]: ...


class TorchRuntime:
    """PyTorch eager. ``fp16`` and ``channels_last`` apply on CUDA only (fp16 on CPU is slow and lossy)."""

    def __init__(self, net: nn.Module, device: str = "cpu", fp16: bool = False, channels_last: bool = False) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        if (fp16 or channels_last) and not device.startswith("cuda"):
            raise ConfigError("fp16 and channels_last are CUDA-only options")
        self.device = torch.device(device)
        self.fp16 = fp16
        self.channels_last = channels_last
        self.net = net.eval().to(self.device)
        if fp16:
            self.net = self.net.half()
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.name = f"torch-{device}" + ("-fp16" if fp16 else "") + ("-cl" if channels_last else "")

    @torch.inference_mode()
    def run(self, x: F32) -> tuple[F32, F32]:
        t = torch.from_numpy(x).to(self.device)
        if self.fp16:
            t = t.half()
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        scores, maps = self.net(t)
        return (scores.float().cpu().numpy().astype(np.float32), maps.float().cpu().numpy().astype(np.float32))


class OnnxRuntime:
    """ONNX Runtime with providers chosen by ``device`` ("cpu", "cuda", "tensorrt"); missing ones are skipped."""

    def __init__(self, onnx_path: str | Path, device: str = "cpu", intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort

        if device not in ORT_PROVIDERS:
            raise ConfigError(f"unknown ONNX Runtime device {device!r}; use one of {sorted(ORT_PROVIDERS)}")
        available = set(ort.get_available_providers())
        providers = [p for p in ORT_PROVIDERS[device] if p in available]
        if device != "cpu" and providers == ["CPUExecutionProvider"]:
            raise ConfigError(f"ONNX Runtime has no {device} provider here (available: {sorted(available)})")
        opts = ort.SessionOptions()
        if intra_op_threads:
            opts.intra_op_num_threads = intra_op_threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=providers)
        except Exception as e:
            raise ArtifactError(f"ONNX model {onnx_path} cannot be loaded: {e}") from e
        self.name = f"onnx-{device}"
        self.providers = self.session.get_providers()

    def run(self, x: F32) -> tuple[F32, F32]:
        scores, maps = self.session.run(["scores", "maps"], {"images": x})
        return np.asarray(scores, np.float32), np.asarray(maps, np.float32)


class InferenceModel:
    """A model ready to score frames: what the server holds.

    ``predict(batch)``: uint8 RGB (N, H, W, 3) of any size → :class:`Prediction` with scores (N,) and
    maps (N, H, W) at the batch's resolution; normalised values and labels when calibrated.
    Raises :class:`~pipeline.models.errors.InputError` for a bad batch.
    """

    def __init__(self, name: str, input_size_wh: tuple[int, int], runtime: Runtime,
                 calibration: ScoreCalibration | None = None, manifest: dict[str, Any] | None = None) -> None:
        self.name = name
        self.input_size_wh = input_size_wh
        self.runtime = runtime
        self.calibration = calibration
        self.manifest = manifest or {}

    def predict(self, batch: Any) -> Prediction:
        t0 = time.perf_counter()
        b = check_batch(batch)
        x = to_network_input(b, self.input_size_wh)
        t1 = time.perf_counter()
        scores, maps = self.runtime.run(x)
        t2 = time.perf_counter()
        full = maps_to_input_size(maps, (b.shape[1], b.shape[2]))
        t3 = time.perf_counter()
        timings = {"pre_ms": 1e3 * (t1 - t0), "infer_ms": 1e3 * (t2 - t1), "post_ms": 1e3 * (t3 - t2)}
        return finish_prediction(scores, full, self.calibration, timings)

    def with_calibration(self, calibration: ScoreCalibration | None) -> InferenceModel:
        return InferenceModel(self.name, self.input_size_wh, self.runtime, calibration, self.manifest)
