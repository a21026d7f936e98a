"""Artifact directories: ``weights.pt`` + ``model.onnx`` + ``manifest.json``, verified on load.

Manifest fields: ``format``, ``model`` / ``model_version`` / ``preset`` / ``config``,
``input`` (size, dtype, layout), ``normalization``, ``calibration`` (score normalisation and
thresholds fitted on validation data), ``training`` (data hash, image count, seed, ...),
``metrics``, ``onnx`` (opset, parity), optionally ``preprocess`` (template matching and ROI
masking, with ``template.png`` / ``roi.png`` beside the manifest, see :mod:`pipeline.preprocess`),
and ``files`` with the sha256 and size of each file.
Loading checks every hash and the manifest against the weights, and raises
:class:`~pipeline.models.errors.ArtifactError` with what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.models.contract import Normalization, ScoreCalibration
from pipeline.models.errors import ArtifactError, ModelError
from pipeline.models.registry import config_from_dict, get_entry

log = logging.getLogger(__name__)

FORMAT = "xr-sealant-model/1"
MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"
ONNX = "model.onnx"
TEMPLATE = "template.png"
ROI_MASK = "roi.png"
#: every file the manifest hashes when present
HASHED_FILES = (WEIGHTS, ONNX, TEMPLATE, ROI_MASK)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_hash(images: np.ndarray[Any, Any]) -> str:
    """sha256 over the shape and bytes of the training images (N, H, W, 3) uint8, in order."""
    h = hashlib.sha256(repr(images.shape).encode())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def replace_dir(folder: Path, write: Callable[[Path], object]) -> Path:
    """Write an artifact directory whole: ``write(tmp)`` into a sibling folder, then swap it in for ``folder``
    (a crash leaves the old one or a ``.tmp`` beside it, never half of either)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.replace(folder)
    return folder


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """(Re)write the manifest, refreshing the file hashes of weights, ONNX and preprocessing images."""
    files = {}
    for name in HASHED_FILES:
        p = directory / name
        if p.is_file():
            files[name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    manifest = {**manifest, "format": FORMAT, "files": files}
    atomic_write(directory / MANIFEST, (json.dumps(manifest, indent=2, default=float) + "\n").encode())


def save_weights(directory: Path, net: nn.Module) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{WEIGHTS}.tmp"
    torch.save(net.state_dict(), tmp)
    os.replace(tmp, directory / WEIGHTS)


def read_manifest(directory: str | Path, fmt: str = FORMAT) -> dict[str, Any]:
    """Parse and check the manifest of an artifact directory of format ``fmt`` (not the files).

    Raises:
        ArtifactError: missing directory or manifest, invalid JSON, wrong format, missing fields.
    """
    d = Path(directory)
    if not d.is_dir():
        raise ArtifactError(f"artifact directory {d} does not exist")
    p = d / MANIFEST
    if not p.is_file():
        raise ArtifactError(f"artifact {d} has no {MANIFEST}")
    try:
        manifest = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"artifact {d}: {MANIFEST} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        raise ArtifactError(f"artifact {d}: {MANIFEST} is not a {fmt} manifest")
    for key in ("model", "model_version", "config", "input", "files"):
        if key not in manifest:
            raise ArtifactError(f"artifact {d}: {MANIFEST} lacks {key!r}")
    return manifest


def verify_file(directory: Path, manifest: dict[str, Any], name: str) -> Path:
    """Check that ``name`` exists and matches its recorded sha256. Raises ArtifactError."""
    p = directory / name
    rec = manifest["files"].get(name)
    if rec is None:
        raise ArtifactError(f"artifact {directory}: manifest lists no {name}")
    if not p.is_file():
        raise ArtifactError(f"artifact {directory}: {name} is missing")
    if sha256_file(p) != rec.get("sha256"):
        raise ArtifactError(f"artifact {directory}: {name} is corrupt or was changed (sha256 differs from manifest)")
    return p


def load_network(directory: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network of an artifact and load its verified weights.

    Raises:
        ArtifactError: missing/corrupt files, or weights that do not match the manifest's model/config.
    """
    d = Path(directory)
    manifest = read_manifest(d)
    try:
        entry = get_entry(manifest["model"])
        cfg = config_from_dict(manifest["model"], manifest["config"])
    except ModelError as e:
        raise ArtifactError(f"artifact {d}: {e}") from e
    if manifest["model_version"] != entry.version:
        raise ArtifactError(f"artifact {d}: {manifest['model']} version {manifest['model_version']} is not "
                            f"the installed version {entry.version}")
    if list(manifest["input"].get("size_wh", [])) != list(cfg.input_size_wh):
        raise ArtifactError(f"artifact {d}: manifest input size {manifest['input'].get('size_wh')} "
                            f"disagrees with its config {list(cfg.input_size_wh)}")
    p = verify_file(d, manifest, WEIGHTS)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ArtifactError(f"artifact {d}: {WEIGHTS} cannot be read: {e}") from e
    net = entry.build(cfg)
    _resize_buffers(net, state)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ArtifactError(f"artifact {d}: {WEIGHTS} does not match the manifest's {manifest['model']} config "
                            f"({first})") from e
    return net.eval(), manifest


def _resize_buffers(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Buffers sized by the data (memory banks: PatchCore's, SeamSeg's frames and their keys) take the saved
    shape before loading."""
    for name, buf in list(net.named_buffers()):
        saved = state.get(name)
        if saved is not None and saved.shape != buf.shape and name.rpartition(".")[2].startswith("memory_bank"):
            owner, _, attr = name.rpartition(".")
            module = net.get_submodule(owner) if owner else net
            setattr(module, attr, torch.empty_like(saved))


def calibration_from_manifest(manifest: dict[str, Any]) -> ScoreCalibration | None:
    c = manifest.get("calibration")
    if not c:
        return None
    try:
        return ScoreCalibration(**c)
    except TypeError as e:
        raise ArtifactError(f"manifest calibration is invalid: {e}") from e


def calibration_to_dict(c: ScoreCalibration | None) -> dict[str, Any] | None:
    return dataclasses.asdict(c) if c is not None else None


def normalization_dict(n: Normalization) -> dict[str, Any]:
    return dataclasses.asdict(n)
