"""Read a category folder in the MVTec AD layout (or the twin's export, which adds a validation split).

Accepted layout under ``root``::

    train/good/*.png
    test/good/*.png, test/<type>/*.png, ground_truth/<type>/<stem>_mask.png
    [validation/good/*.png, validation/<type>/*.png, validation_ground_truth/<type>/<stem>_mask.png]
    [roi/<split>/<type>/<stem>.png]   optional ROI masks (non-zero = inside), else none

Without ``validation/`` (standard MVTec AD), a validation split is taken from the test split: every
``val_every``-th image of each type (sorted by name, starting at the first) moves to validation, so
validation and test stay disjoint and both hold every type. Images are returned as RGB uint8.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True, slots=True, eq=False)
class AnomalySet:
    """Images (N, H, W, 3) uint8 RGB, GT masks (N, H, W) bool, labels (N,) bool, type names, file stems;
    ``roi`` (N, H, W) bool or None."""

    images: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.bool_]
    labels: npt.NDArray[np.bool_]
    types: tuple[str, ...]
    names: tuple[str, ...]
    roi: npt.NDArray[np.bool_] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def normals(self) -> npt.NDArray[np.uint8]:
        return self.images[~self.labels]


@dataclass(frozen=True, slots=True, eq=False)
class MvtecSplits:
    train: AnomalySet
    validation: AnomalySet
    test: AnomalySet
    root: str
    validation_source: str
    #: the conveyor travel range (m) at which the frames were taken, where known (the twin at a station)
    station_travel_m: tuple[float, float] | None = None


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def _read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def _read_mask(path: Path, shape: tuple[int, int]) -> npt.NDArray[np.bool_]:
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ValueError(f"cannot read mask {path}")
    if m.shape != shape:
        raise ValueError(f"mask {path} is {m.shape[::-1]} but its image is {shape[::-1]}")
    return np.asarray(m > 0)


def _collect(root: Path, split: str, gt_dir: str) -> list[tuple[Path, str, Path | None]]:
    base = root / split
    items: list[tuple[Path, str, Path | None]] = []
    if not base.is_dir():
        return items
    for tdir in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in _files(tdir):
            mask = None if tdir.name == "good" else root / gt_dir / tdir.name / f"{f.stem}_mask.png"
            items.append((f, tdir.name, mask))
    return items


def _load(root: Path, split: str, items: list[tuple[Path, str, Path | None]]) -> AnomalySet:
    if not items:
        raise ValueError(f"{root}: split {split!r} has no images")
    imgs: list[Any] = []
    masks: list[Any] = []
    rois: list[Any] = []
    types: list[str] = []
    names: list[str] = []
    for f, t, mp in items:
        img = _read_rgb(f)
        if imgs and img.shape != imgs[0].shape:
            raise ValueError(f"{f} is {img.shape[1]}x{img.shape[0]}, others are {imgs[0].shape[1]}x{imgs[0].shape[0]}")
        imgs.append(img)
        if mp is None:
            masks.append(np.zeros(img.shape[:2], bool))
        elif not mp.is_file():
            raise ValueError(f"{f}: ground-truth mask {mp} is missing")
        else:
            masks.append(_read_mask(mp, img.shape[:2]))
        roi_path = root / "roi" / split / t / f"{f.stem}.png"
        rois.append(_read_mask(roi_path, img.shape[:2]) if roi_path.is_file() else None)
        types.append(t)
        names.append(f.stem)
    roi = np.stack([r for r in rois if r is not None]) if all(r is not None for r in rois) else None
    labels = np.array([t != "good" for t in types])
    return AnomalySet(np.stack(imgs), np.stack(masks), labels, tuple(types), tuple(names), roi)


def read_mvtec(root: str | Path, val_every: int = 3, max_train: int | None = None) -> MvtecSplits:
    """Read train, validation and test splits of one category folder.

    Raises:
        ValueError: missing folders, unreadable files, missing masks, inconsistent image sizes.
    """
    r = Path(root)
    if not (r / "train" / "good").is_dir():
        raise ValueError(f"{r} is not an MVTec AD category folder (no train/good)")
    train_items = _collect(r, "train", "")[: max_train or None]
    test_items = _collect(r, "test", "ground_truth")
    val_items: list[tuple[Path, str, Path | None]]
    if (r / "validation").is_dir():
        val_items, source = _collect(r, "validation", "validation_ground_truth"), "validation/"
        val_split = "validation"
    else:
        by_type: dict[str, list[tuple[Path, str, Path | None]]] = {}
        for it in test_items:
            by_type.setdefault(it[1], []).append(it)
        val_items = []
        rest: list[tuple[Path, str, Path | None]] = []
        for group in by_type.values():
            for i, it in enumerate(group):
                (val_items if i % val_every == 0 else rest).append(it)
        test_items, source = rest, f"every {val_every}th test image per type"
        val_split = "test"
    log.info("%s: %d train, %d validation (%s), %d test", r, len(train_items), len(val_items), source,
             len(test_items))
    return MvtecSplits(_load(r, "train", train_items), _load(r, val_split, val_items),
                       _load(r, "test", test_items), str(r), source)
