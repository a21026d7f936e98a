"""ONNX export of an inference network (dynamic batch axis) and a torch-vs-ORT parity check.

:func:`export_artifact` (re)writes ``model.onnx`` of a saved artifact from its verified weights, or
writes it to another path, and checks parity on random frames before anything is replaced.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.models import artifacts
from pipeline.models.errors import ArtifactError, ModelError
from pipeline.models.runtime import OnnxRuntime

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


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What :func:`export_artifact` did: the ONNX file written, the largest absolute torch-vs-ORT
    difference over scores and maps (``max_abs_diff``), the tolerance check (``parity_error`` ≤
    ``tolerance`` means parity holds), the probe batch size, and whether the manifest was refreshed."""

    onnx_path: str
    max_abs_diff: float
    parity_error: float
    tolerance: float
    n_probe: int
    manifest_refreshed: bool


def export_artifact(directory: str | Path, out: str | Path | None = None, n_probe: int = 2,
                    seed: int = 0) -> ExportReport:
    """Export the artifact's network (rebuilt from its verified weights) to ONNX and check parity.

    ``out`` None writes the artifact's own ``model.onnx`` and refreshes the manifest's hashes and
    ``onnx`` record (this repairs a missing or corrupt ``model.onnx``); another path leaves the
    artifact untouched. Parity: ``n_probe`` random uint8 frames at the input size through PyTorch
    and ONNX Runtime (CPU), compared with :func:`parity_error` against ``PARITY_ATOL``. The file is
    written to a temporary name and moved into place only when parity holds.

    Raises:
        ArtifactError: missing/corrupt weights or manifest, an ``out`` folder that does not exist.
        ModelError: export failed or parity is violated (the old file is kept).
    """
    d = Path(directory)
    net, manifest = artifacts.load_network(d)
    target = d / artifacts.ONNX if out is None else Path(out)
    if not target.parent.is_dir():
        raise ArtifactError(f"cannot write {target}: folder {target.parent} does not exist")
    w, h = (int(v) for v in manifest["input"]["size_wh"])
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".onnx")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        export_onnx(net, (w, h), tmp)
        x = np.random.default_rng(seed).integers(0, 256, (n_probe, 3, h, w)).astype(np.float32)
        with torch.inference_mode():
            ts, tm = (t.numpy() for t in net(torch.from_numpy(x)))
        ort_s, ort_m = OnnxRuntime(tmp).run(x)
        diff = max(float(np.max(np.abs(ts - ort_s))), float(np.max(np.abs(tm - ort_m))))
        err = parity_error((ts, tm), (ort_s, ort_m))
        if not err <= PARITY_ATOL:
            raise ModelError(f"ONNX parity failed for {manifest['model']}: error {err:.3g} > tolerance "
                             f"{PARITY_ATOL} (max abs diff {diff:.3g}); {target} was not changed")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    refreshed = out is None
    if refreshed:
        onnx_rec = {**manifest.get("onnx", {}), "opset": OPSET, "parity_error": err, "parity_tolerance": PARITY_ATOL,
                    "parity_max_abs_diff": diff}
        artifacts.write_manifest(d, {**manifest, "onnx": onnx_rec})
    log.info("exported %s: max abs diff %.3g (parity error %.3g, tolerance %g)", target, diff, err, PARITY_ATOL)
    return ExportReport(str(target), diff, err, PARITY_ATOL, n_probe, refreshed)
