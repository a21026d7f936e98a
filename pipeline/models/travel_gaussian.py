"""A view model keyed to conveyor travel: the normal grey level and its spread at each trigger position.

The paper's models learn what one fixed view looks like. Over a moving pass every frame shows
another part of the body, and at the server's 320x240 a bead is 1-2 px wide, so they find nothing
there (docs/benchmarks.md, "The served models over whole passes"). This model holds instead, for
each position of a travel grid (where the conveyor's encoder triggers the cameras), the per-pixel
mean and standard deviation of the grey level of several normal vehicles at that position. A frame
is scored against its own position's statistics: the squared z-score, blurred, mapped to
``z² / (z² + z_half²)``, so that ``z = z_half`` gives 0.5, the served maps' threshold.

It sees grey levels only, and one frame of it separates little: paint, sealant and lighting change
from body to body, and the spread it learns from them is wide (a dark deposit stands out, a 1-2 px
bead defect hardly does). Over a pass, fusion gathers each seam point from many frames, which is
where it finds defects (benchmarks.md). Its alignment is the encoder's: a frame farther than the
grid's tolerance from every position is not scored (``None``); 5 mm of travel halves what it finds.
No learning, no GPU and no ONNX graph: scoring is a lookup and a few array operations.

Storage: 2 bytes per pixel and position (mean as uint8, standard deviation as a log-coded uint8,
:func:`encode_std`), in ``bank.npz`` beside a JSON manifest that records the grid, the settings
and the bank's sha256 (:meth:`TravelGaussian.save`, :meth:`TravelGaussian.load`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.models.artifacts import MANIFEST, atomic_write, read_manifest, sha256_file, verify_file
from pipeline.models.errors import ArtifactError, ConfigError, InputError, TrainingError

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

NAME = "travel-gaussian"
VERSION = "1"
FORMAT = "xr-sealant-travel-gaussian/1"
BANK = "bank.npz"
#: code steps per doubling of the standard deviation: 2.2 % apart, 1 to 256 grey levels in a uint8
STD_CODE_PER_OCTAVE = 32.0


@dataclass(frozen=True, slots=True)
class TravelGrid:
    """Trigger positions ``s0_m + k * step_m`` (k < n) of the conveyor travel; a frame within
    ``tolerance_m`` of one is scored against it."""

    s0_m: float
    step_m: float
    n: int
    tolerance_m: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.s0_m) and self.step_m > 0 and self.n >= 1):
            raise ConfigError(f"a travel grid needs a finite start, a positive step and positions, got {self}")
        if not 0 <= self.tolerance_m <= self.step_m / 2:
            raise ConfigError(f"the travel tolerance must lie in [0, step/2] = [0, {self.step_m / 2}] m, "
                              f"got {self.tolerance_m}")

    @classmethod
    def covering(cls, s_range_m: tuple[float, float], step_m: float, tolerance_m: float) -> TravelGrid:
        """The positions ``numpy.arange(s0, s1, step_m)``, the ones a source stepping the conveyor by
        ``step_m`` from ``s0`` captures at."""
        s0, s1 = s_range_m
        return cls(float(s0), float(step_m), len(np.arange(s0, s1, step_m)), float(tolerance_m))

    def positions_m(self) -> F64:
        out: F64 = self.s0_m + self.step_m * np.arange(self.n, dtype=np.float64)
        return out

    def index(self, s_m: float) -> int | None:
        """The position ``s_m`` was captured at, or None when it is off the grid."""
        k = round((s_m - self.s0_m) / self.step_m)
        if not 0 <= k < self.n or abs(s_m - (self.s0_m + k * self.step_m)) > self.tolerance_m + 1e-9:
            return None
        return k


@dataclass(frozen=True, slots=True)
class TravelGaussianConfig:
    """``min_var``: variance floor (grey levels²), ``blur_sigma_px``: blur of the squared z-score,
    ``z_half``: the z-score that maps to 0.5, ``min_normals``: normal frames needed per position."""

    min_var: float = 25.0
    blur_sigma_px: float = 1.0
    z_half: float = 3.0
    min_normals: int = 2

    def __post_init__(self) -> None:
        if self.min_var <= 0 or self.blur_sigma_px < 0 or self.z_half <= 0 or self.min_normals < 2:
            raise ConfigError(f"travel-gaussian needs min_var > 0, blur_sigma_px >= 0, z_half > 0 and "
                              f"min_normals >= 2, got {self}")


def encode_std(std: F32) -> U8:
    """Standard deviations (>= 1 grey level) as uint8 codes, ``round(32 * log2(std))``."""
    out: U8 = np.clip(np.rint(STD_CODE_PER_OCTAVE * np.log2(np.maximum(std, 1.0))), 0, 255).astype(np.uint8)
    return out


def decode_std(code: U8) -> F32:
    out: F32 = np.exp2(code.astype(np.float32) / STD_CODE_PER_OCTAVE)
    return out


def grey(images: U8) -> F32:
    """(..., H, W, 3) uint8 RGB -> (..., H, W) float32, the mean of the channels."""
    out: F32 = images.mean(axis=-1, dtype=np.float32)
    return out


def position_stats(normals: U8, config: TravelGaussianConfig) -> tuple[U8, U8]:
    """(K, H, W, 3) normal frames of one camera at one position -> the mean (uint8) and the coded
    standard deviation, floored by ``config.min_var``."""
    if normals.ndim != 4 or normals.shape[-1] != 3 or normals.dtype != np.uint8:
        raise InputError(f"normal frames must be (K, H, W, 3) uint8, got {normals.shape} {normals.dtype}")
    if len(normals) < config.min_normals:
        raise TrainingError(f"{len(normals)} normal frame(s) at a position; travel-gaussian needs "
                            f"{config.min_normals}")
    g = grey(normals)
    mean: U8 = np.clip(np.rint(g.mean(0)), 0, 255).astype(np.uint8)
    return mean, encode_std(np.sqrt(g.var(0) + config.min_var))


class TravelGaussian:
    """One camera's statistics at every grid position: ``mean`` and ``std_code``, (n, H, W) uint8."""

    name = NAME
    version = VERSION

    def __init__(self, camera_id: str, grid: TravelGrid, mean: U8, std_code: U8,
                 config: TravelGaussianConfig | None = None, training: dict[str, Any] | None = None) -> None:
        if mean.shape != std_code.shape or mean.ndim != 3 or len(mean) != grid.n:
            raise InputError(f"{camera_id}: mean {mean.shape} and std {std_code.shape} must both be "
                             f"({grid.n}, H, W), one per grid position")
        if mean.dtype != np.uint8 or std_code.dtype != np.uint8:
            raise InputError(f"{camera_id}: mean and std codes must be uint8")
        self.camera_id = camera_id
        self.grid = grid
        self.mean = mean
        self.std_code = std_code
        self.config = config or TravelGaussianConfig()
        self.training = dict(training or {})

    @classmethod
    def fit(cls, camera_id: str, grid: TravelGrid, normals_per_position: Iterable[U8],
            config: TravelGaussianConfig | None = None, training: dict[str, Any] | None = None) -> TravelGaussian:
        """From the normal frames at each grid position in order: (K, H, W, 3) uint8 each."""
        cfg = config or TravelGaussianConfig()
        stats = [position_stats(x, cfg) for x in normals_per_position]
        if len(stats) != grid.n:
            raise TrainingError(f"{camera_id}: normal frames for {len(stats)} positions, the grid has {grid.n}")
        if len({m.shape for m, _ in stats}) != 1:
            raise InputError(f"{camera_id}: the normal frames change size between positions")
        return cls(camera_id, grid, np.stack([m for m, _ in stats]), np.stack([s for _, s in stats]), cfg, training)

    @property
    def size_wh(self) -> tuple[int, int]:
        return int(self.mean.shape[2]), int(self.mean.shape[1])

    def heatmap(self, image: U8, s_m: float) -> F32 | None:
        """(H, W, 3) uint8 frame captured at travel ``s_m`` -> (H, W) float32 in [0, 1), or None off the grid."""
        if image.shape != (*self.mean.shape[1:], 3) or image.dtype != np.uint8:
            raise InputError(f"{self.camera_id}: travel-gaussian takes ({self.mean.shape[1]}, {self.mean.shape[2]}, 3) "
                             f"uint8 frames, got {image.shape} {image.dtype}")
        k = self.grid.index(s_m)
        if k is None:
            return None
        z2: F32 = ((grey(image) - self.mean[k]) / decode_std(self.std_code[k])) ** 2
        if self.config.blur_sigma_px > 0:
            z2 = np.asarray(cv2.GaussianBlur(z2, (0, 0), self.config.blur_sigma_px), np.float32)
        out: F32 = (z2 / (z2 + self.config.z_half**2)).astype(np.float32)
        return out

    def manifest(self) -> dict[str, Any]:
        w, h = self.size_wh
        return {"format": FORMAT, "model": NAME, "model_version": VERSION, "camera_id": self.camera_id,
                "grid": asdict(self.grid), "config": asdict(self.config),
                "input": {"size_wh": [w, h], "dtype": "uint8", "layout": "HWC RGB"}, "training": self.training}

    def save(self, directory: str | Path) -> Path:
        """Write ``bank.npz`` and ``manifest.json`` (with the bank's sha256) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{BANK}.tmp.npz"
        np.savez_compressed(tmp, mean=self.mean, std_code=self.std_code)
        tmp.replace(d / BANK)
        manifest = {**self.manifest(), "files": {BANK: {"sha256": sha256_file(d / BANK),
                                                        "bytes": (d / BANK).stat().st_size}}}
        atomic_write(d / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
        return d

    @classmethod
    def load(cls, directory: str | Path) -> TravelGaussian:
        """Raises :class:`ArtifactError` for a missing, corrupt or mismatched artifact."""
        d = Path(directory)
        manifest = read_manifest(d, FORMAT)
        try:
            grid = TravelGrid(**manifest["grid"])
            config = TravelGaussianConfig(**manifest["config"])
            w, h = manifest["input"]["size_wh"]
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"artifact {d}: {MANIFEST} is malformed ({e})") from e
        with np.load(verify_file(d, manifest, BANK)) as z:
            mean, std_code = z["mean"], z["std_code"]
        if mean.shape != (grid.n, h, w):
            raise ArtifactError(f"artifact {d}: the bank holds {mean.shape}, the manifest says ({grid.n}, {h}, {w})")
        try:
            return cls(str(manifest["camera_id"]), grid, mean, std_code, config, manifest.get("training"))
        except InputError as e:
            raise ArtifactError(f"artifact {d}: {e}") from e


def is_travel_artifact(directory: str | Path) -> bool:
    """Whether ``directory`` holds a travel-gaussian artifact (by its manifest's format; nothing is verified)."""
    try:
        return bool(json.loads((Path(directory) / MANIFEST).read_text()).get("format") == FORMAT)
    except (OSError, ValueError, AttributeError):
        return False
