"""ONNX export of an inference network (dynamic batch axis) and a torch-vs-ORT parity check."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.models.errors import ModelError

log = logging.getLogger(__name__)

OPSET = 17
#: Parity tolerance on maps and scores: |torch − ORT| ≤ ATOL + RTOL·|torch| (fp32 on CPU).
PARITY_ATOL = 1e-3
PARITY_RTOL = 1e-3


def export_onnx(net: nn.Module, input_size_wh: tuple[int, int], path: str | Path) -> Path:
    """Write ``net`` to ``path`` as ONNX: input ``images`` (N, 3, H, W) float32 0..255, outputs
    ``scores`` (N,) and ``maps`` (N, 1, H, W).

    Uses the TorchScript exporter (torch 2.13 still ships it; the dynamo exporter needs
    ``onnxscript``). Raises ModelError when the export fails.
    """
    out = Path(path)
    w, h = input_size_wh
    net = net.eval()
    dummy = torch.zeros(2, 3, h, w)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
            torch.onnx.export(
                net, (dummy,), str(out), dynamo=False, opset_version=OPSET, input_names=["images"],
                output_names=["scores", "maps"],
                dynamic_axes={"images": {0: "n"}, "scores": {0: "n"}, "maps": {0: "n"}},
            )
    except Exception as e:
        raise ModelError(f"ONNX export failed: {e}") from e
    log.info("exported %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out


def parity_error(torch_out: tuple[np.ndarray, np.ndarray], ort_out: tuple[np.ndarray, np.ndarray]) -> float:
    """Largest violation ``|a − b| − RTOL·|a|`` over scores and maps (≤ ATOL means parity holds)."""
    worst = 0.0
    for a, b in zip(torch_out, ort_out, strict=True):
        worst = max(worst, float(np.max(np.abs(a - b) - PARITY_RTOL * np.abs(a))))
    return worst
