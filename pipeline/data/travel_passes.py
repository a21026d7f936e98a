"""Normal passes recorded at the encoder's trigger positions, as a folder, for travel-keyed banks.

A cell whose cameras the conveyor's encoder triggers at fixed travel records whole normal passes;
:func:`read_passes` checks such a folder and :func:`build_banks` turns it into one
:class:`~pipeline.models.travel_gaussian.TravelGaussian` bank per camera, which the server serves
through its config's ``models:`` entries; more passes in the same layout fit the banks' fused threshold
(``analyzer.validation_folder``, :func:`xrserver.fused_threshold.recorded_travel_threshold`). Layout under
``root``::

    grid.json                      {"s0_m": 0.35, "step_m": 0.01, "n": 681, "tolerance_m": 0.002}
    <pass>/<camera>/<k>.png        the frame camera <camera> took at trigger k (travel s0_m + k * step_m)

Every pass holds every camera, and every camera every trigger 0..n-1 (``<k>`` in any zero padding;
hidden folders, whose names start with a dot, are not read);
images are RGB (or grey) PNG, JPEG, BMP or TIFF of one size per camera. ``xrserver twin passes`` writes
the twin's normal passes in this layout. Anything else raises :class:`~pipeline.models.errors.InputError`
naming the file or the first missing triggers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.data.mvtec import IMAGE_SUFFIXES
from pipeline.models.errors import ConfigError, InputError
from pipeline.models.travel_gaussian import TravelGaussian, TravelGaussianConfig, TravelGrid

U8 = npt.NDArray[np.uint8]
GRID_FILE = "grid.json"


def write_grid(root: str | Path, grid: TravelGrid) -> Path:
    path = Path(root) / GRID_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(grid), indent=1) + "\n", encoding="utf-8")
    return path


def read_grid(root: str | Path) -> TravelGrid:
    path = Path(root) / GRID_FILE
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
        return TravelGrid(float(fields["s0_m"]), float(fields["step_m"]), int(fields["n"]),
                          float(fields["tolerance_m"]))
    except FileNotFoundError:
        raise InputError(f"{root}: no {GRID_FILE} (the trigger grid: s0_m, step_m, n, tolerance_m)") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        raise InputError(f"{path}: not a trigger grid ({e})") from None


@dataclass(frozen=True, slots=True)
class RecordedPasses:
    """A checked folder: its grid, pass names and cameras, and ``files[pass][camera][k]``."""

    root: Path
    grid: TravelGrid
    passes: tuple[str, ...]
    cameras: tuple[str, ...]
    files: dict[str, dict[str, list[Path]]]

    def image(self, pass_name: str, camera_id: str, k: int) -> U8:
        """(H, W, 3) uint8 RGB: the frame of ``camera_id`` at trigger ``k`` of pass ``pass_name``."""
        path = self.files[pass_name][camera_id][k]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read image {path} (missing, truncated or not an image)")
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.uint8)

    def frames(self, camera_id: str) -> Iterator[U8]:
        """Per trigger in order: (n_passes, H, W, 3) uint8 RGB of ``camera_id``."""
        shape: tuple[int, ...] | None = None
        for k in range(self.grid.n):
            stack = []
            for name in self.passes:
                image = self.image(name, camera_id, k)
                if shape is None:
                    shape = image.shape
                elif image.shape != shape:
                    raise InputError(f"{self.files[name][camera_id][k]} is {image.shape[1]}x{image.shape[0]}; "
                                     f"camera {camera_id}'s frames before it are {shape[1]}x{shape[0]}")
                stack.append(image)
            yield np.stack(stack)


def _triggers(folder: Path, n: int) -> list[Path]:
    by_k: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            k = int(p.stem)
        except ValueError:
            raise InputError(f"{p}: a frame's name must be its trigger index, such as 00042{p.suffix}") from None
        if not 0 <= k < n:
            raise InputError(f"{p}: trigger {k} is off the grid's {n} positions (0..{n - 1})")
        if k in by_k:
            raise InputError(f"{p} and {by_k[k]} are both trigger {k}")
        by_k[k] = p
    missing = [k for k in range(n) if k not in by_k]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{folder}: no frame for trigger {shown} of {n}")
    return [by_k[k] for k in range(n)]


def read_passes(root: str | Path, cameras: Sequence[str] | None = None) -> RecordedPasses:
    """Check the folder (see the module docstring); ``cameras`` limits it to those (default: all it holds)."""
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"{root} is not a folder of recorded passes")
    grid = read_grid(base)
    passes = tuple(sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not passes:
        raise InputError(f"{root}: no pass folders beside {GRID_FILE}")
    held = {name: {c.name for c in (base / name).iterdir() if c.is_dir() and not c.name.startswith(".")}
            for name in passes}
    wanted = tuple(cameras) if cameras else tuple(sorted(set().union(*held.values())))
    if not wanted:
        raise InputError(f"{root}: the passes hold no camera folders")
    for name, cams in held.items():
        lacking = [c for c in wanted if c not in cams]
        if lacking:
            raise InputError(f"{base / name}: no frames of camera(s) {lacking}")
    files = {name: {c: _triggers(base / name / c, grid.n) for c in wanted} for name in passes}
    return RecordedPasses(base, grid, passes, wanted, files)


def build_banks(recorded: RecordedPasses, config: TravelGaussianConfig | None = None,
                progress: Callable[[int], object] | None = None) -> dict[str, TravelGaussian]:
    """One bank per camera of ``recorded``; ``progress(1)`` after each trigger of each camera."""
    cfg = config or TravelGaussianConfig()
    if len(recorded.passes) < cfg.min_normals:
        raise InputError(f"{recorded.root}: {len(recorded.passes)} pass(es); a bank needs at least {cfg.min_normals}")
    training = {"source": str(recorded.root), "normal_passes": list(recorded.passes)}
    out = {}
    for cid in recorded.cameras:
        stacks = recorded.frames(cid)
        if progress is not None:
            stacks = _counted(stacks, progress)
        out[cid] = TravelGaussian.fit(cid, recorded.grid, stacks, cfg, training)
    return out


def _counted(items: Iterator[U8], progress: Callable[[int], object]) -> Iterator[U8]:
    for item in items:
        yield item
        progress(1)
