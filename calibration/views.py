"""Calibration views: images from folders, globs or videos, board detection and view screening.

Each view gets a :class:`ViewResult` that carries either the detected board or the reason it
was rejected, so a run can report what happened to every input:

* ``unreadable``: the file is not an image OpenCV can decode (raises instead, see below);
* ``no board``: the board was not found (occluded, out of frame, or a different board size);
* ``partial``: corners touch the image border, or too few ChArUco corners were found;
* ``blurred``: the board's sharpness (variance of the Laplacian over the board) is too low;
* ``near-duplicate``: the board barely moved since an accepted view (it adds no information).
"""

from __future__ import annotations

import glob
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from calibration.boards import BoardDetection, BoardSpec, detect_board
from calibration.errors import CalibrationInputError

log = logging.getLogger(__name__)
U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass(frozen=True, slots=True)
class ScreeningConfig:
    """Thresholds for rejecting views.

    ``min_sharpness``: variance of the Laplacian over the board's bounding box (grey levels²).
    ``min_corner_fraction``: ChArUco views need this share of the board's corners.
    ``edge_margin_px``: a corner closer than this to the image border marks the view partial.
    ``min_motion_fraction``: a view whose corners moved less than this fraction of the image
    diagonal (mean over shared corners) from an accepted view, in every camera, is a near-duplicate.
    """

    min_sharpness: float = 20.0
    min_corner_fraction: float = 0.3
    edge_margin_px: float = 2.0
    min_motion_fraction: float = 0.01


@dataclass(frozen=True, slots=True, eq=False)
class ViewResult:
    """One image of one camera: the detected board, or why the view is not used (``reason``)."""

    view_id: str
    source: str
    width_px: int
    height_px: int
    detection: BoardDetection | None
    sharpness: float = 0.0
    reason: str = ""

    @property
    def accepted(self) -> bool:
        return self.detection is not None and not self.reason


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def list_images(pattern: str | Path) -> list[Path]:
    """Image files named by a folder, a glob pattern or one file, in natural order (2 before 10).

    Raises :class:`CalibrationInputError` when nothing matches.
    """
    p = Path(pattern)
    if p.is_dir():
        files = [f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES]
    elif p.is_file():
        files = [p]
    else:
        files = [Path(f) for f in glob.glob(str(pattern)) if Path(f).is_file()]
    if not files:
        raise CalibrationInputError(f"{pattern}: no images found (give a folder, a glob or a file)")
    return sorted(files, key=_natural_key)


def read_gray(path: Path) -> U8:
    """Read an image as 8-bit grey; raises :class:`CalibrationInputError` when it cannot be read."""
    if not path.is_file():
        raise CalibrationInputError(f"{path}: image not found")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise CalibrationInputError(f"{path}: cannot read image (not an image file, or corrupt)")
    return np.asarray(img, dtype=np.uint8)


def video_frames(path: Path, step: int) -> Iterator[tuple[str, U8, float]]:
    """Every ``step``-th frame of a video as ``(view_id, grey, t_s)``; ``t_s`` is the frame's timestamp.

    Raises :class:`CalibrationInputError` when the video cannot be opened or has no frames.
    """
    if step < 1:
        raise CalibrationInputError("video step must be >= 1")
    if not path.is_file():
        raise CalibrationInputError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise CalibrationInputError(f"{path}: cannot open video")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
    index = 0
    n_out = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                t_s = index / fps if fps > 0 else float(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
                n_out += 1
                yield f"{path.stem}#{index:06d}", np.asarray(gray, dtype=np.uint8), t_s
            index += 1
    finally:
        cap.release()
    if n_out == 0:
        raise CalibrationInputError(f"{path}: video has no readable frames")


def board_sharpness(gray: U8, uv_px: F64) -> float:
    """Variance of the Laplacian over the bounding box of the detected corners (grey levels²)."""
    x0, y0 = np.floor(uv_px.min(axis=0)).astype(int)
    x1, y1 = np.ceil(uv_px.max(axis=0)).astype(int)
    h, w = gray.shape
    roi = gray[max(y0, 0) : min(y1 + 1, h), max(x0, 0) : min(x1 + 1, w)]
    if roi.size < 16:
        return 0.0
    return float(cv2.Laplacian(roi, cv2.CV_64F).var())


def screen_view(
    view_id: str, source: str, gray: U8, board: BoardSpec, config: ScreeningConfig = ScreeningConfig()
) -> ViewResult:
    """Detect the board in one image and apply the blur and partial-view checks."""
    h, w = gray.shape[:2]
    det = detect_board(gray, board)
    if det is None:
        return ViewResult(view_id, source, w, h, None, 0.0, f"no board: {board} not found (occluded, out of frame, or "
                          "a different board size)")
    sharp = board_sharpness(gray, det.uv_px)
    m = config.edge_margin_px
    uv = det.uv_px
    if np.any((uv[:, 0] < m) | (uv[:, 1] < m) | (uv[:, 0] > w - 1 - m) | (uv[:, 1] > h - 1 - m)):
        return ViewResult(view_id, source, w, h, det, sharp, "partial: corners at the image border")
    if board.kind == "charuco" and len(det) < config.min_corner_fraction * board.n_corners:
        return ViewResult(view_id, source, w, h, det, sharp, f"partial: {len(det)}/{board.n_corners} corners")
    if sharp < config.min_sharpness:
        return ViewResult(view_id, source, w, h, det, sharp,
                          f"blurred: sharpness {sharp:.1f} < {config.min_sharpness:g}")
    return ViewResult(view_id, source, w, h, det, sharp)


def detect_views(
    items: Iterable[tuple[str, str, U8]], board: BoardSpec, config: ScreeningConfig = ScreeningConfig(),
    label: str = "detect", total: int | None = None,
) -> list[ViewResult]:
    """Screen ``(view_id, source, grey)`` items with a progress bar on stderr."""
    out = []
    for view_id, source, gray in tqdm(items, desc=label, total=total, unit="view", leave=False):
        out.append(screen_view(view_id, source, gray, board, config))
    return out


def detect_image_views(
    paths: Sequence[Path], board: BoardSpec, config: ScreeningConfig = ScreeningConfig(), label: str = "detect"
) -> list[ViewResult]:
    """Read and screen image files; the view id is the file stem. Unreadable files raise."""
    items = ((p.stem, str(p), read_gray(p)) for p in paths)
    return detect_views(items, board, config, label, total=len(paths))


def _mean_motion_px(a: BoardDetection, b: BoardDetection) -> float | None:
    common, ia, ib = np.intersect1d(a.corner_ids, b.corner_ids, return_indices=True)
    if len(common) < 4:
        return None
    return float(np.mean(np.linalg.norm(a.uv_px[ia] - b.uv_px[ib], axis=1)))


def reject_near_duplicates(
    views: Mapping[str, Sequence[ViewResult]], config: ScreeningConfig = ScreeningConfig()
) -> dict[str, list[ViewResult]]:
    """Mark near-duplicate views across synchronised cameras (``views[camera][k]`` is shot k).

    Shot k is a near-duplicate of an earlier kept shot j when, in every camera where both were
    accepted, the corners moved less than ``min_motion_fraction`` of the image diagonal.
    """
    cams = list(views)
    n = len(next(iter(views.values()))) if views else 0
    out = {c: list(views[c]) for c in cams}
    kept: list[int] = []
    for k in range(n):
        dup_of = None
        for j in kept:
            motions = []
            for c in cams:
                a, b = out[c][k], out[c][j]
                if a.accepted and b.accepted and a.detection is not None and b.detection is not None:
                    mo = _mean_motion_px(a.detection, b.detection)
                    if mo is not None:
                        diag = float(np.hypot(a.width_px, a.height_px))
                        motions.append(mo < config.min_motion_fraction * diag)
            if motions and all(motions):
                dup_of = j
                break
        if dup_of is None:
            if any(out[c][k].accepted for c in cams):
                kept.append(k)
            continue
        for c in cams:
            if out[c][k].accepted:
                out[c][k] = replace(out[c][k], reason=f"near-duplicate of view {out[c][dup_of].view_id}")
    return out
