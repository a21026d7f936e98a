"""Calibration boards: chessboards and ChArUco boards, their geometry and their detection.

A board is parsed from a short spec string:

* ``chessboard:COLSxROWS:SQUARE`` -- ``COLS`` x ``ROWS`` *inner* corners, squares of side
  ``SQUARE`` (any unit; the calibration then reports lengths in that unit, "board units").
* ``charuco:COLSxROWS:SQUARE:MARKER[:DICT]`` -- ``COLS`` x ``ROWS`` *squares*, marker side
  ``MARKER``, ArUco dictionary ``DICT`` (default ``DICT_5X5_100``).

Board frame: z = 0 on the board, x along a row of corners, y along a column; corner id
``k`` lies at ``object_points()[k]``. Detection returns corner ids with sub-pixel image
positions; for chessboards the ids are ordered so that the 180-degree ambiguity of the
pattern is resolved from the square colours wherever the pattern allows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from calibration.errors import CalibrationInputError

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]
BoardKind = Literal["chessboard", "charuco"]
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 60, 1e-4)


@dataclass(frozen=True, slots=True, eq=False)
class BoardDetection:
    """Corners of one board found in one image: ids into the board's object points, pixels (N, 2)."""

    corner_ids: I32
    uv_px: F64

    def __post_init__(self) -> None:
        object.__setattr__(self, "corner_ids", np.asarray(self.corner_ids, dtype=np.int32).reshape(-1))
        object.__setattr__(self, "uv_px", np.asarray(self.uv_px, dtype=np.float64).reshape(-1, 2))
        if len(self.corner_ids) != len(self.uv_px):
            raise ValueError("corner_ids and uv_px must have the same length")

    def __len__(self) -> int:
        return len(self.corner_ids)


@dataclass(frozen=True, slots=True)
class BoardSpec:
    """Geometry of a calibration board; lengths in board units (``square_size``)."""

    kind: BoardKind
    cols: int
    rows: int
    square_size: float
    marker_size: float = 0.0
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.kind == "chessboard" and (self.cols < 2 or self.rows < 2):
            raise CalibrationInputError(f"chessboard needs at least 2x2 inner corners, got {self.cols}x{self.rows}")
        if self.kind == "charuco" and (self.cols < 3 or self.rows < 3):
            raise CalibrationInputError(f"charuco board needs at least 3x3 squares, got {self.cols}x{self.rows}")
        if not (np.isfinite(self.square_size) and self.square_size > 0):
            raise CalibrationInputError("board square size must be positive")
        if self.kind == "charuco":
            if not 0 < self.marker_size < self.square_size:
                raise CalibrationInputError("charuco marker size must be positive and smaller than the square")
            if not hasattr(cv2.aruco, self.dictionary):
                raise CalibrationInputError(f"unknown ArUco dictionary {self.dictionary!r}")

    @classmethod
    def parse(cls, text: str) -> BoardSpec:
        """Parse ``chessboard:11x8:1.0`` or ``charuco:5x7:0.04:0.03[:DICT_5X5_100]``.

        Raises :class:`CalibrationInputError` naming the expected form.
        """
        parts = text.strip().split(":")
        usage = "expected chessboard:COLSxROWS:SQUARE or charuco:COLSxROWS:SQUARE:MARKER[:DICT]"
        try:
            kind = parts[0].lower()
            cols_s, rows_s = parts[1].lower().split("x")
            cols, rows, square = int(cols_s), int(rows_s), float(parts[2])
            if kind == "chessboard" and len(parts) == 3:
                return cls("chessboard", cols, rows, square)
            if kind == "charuco" and len(parts) in (4, 5):
                dictionary = parts[4] if len(parts) == 5 else "DICT_5X5_100"
                return cls("charuco", cols, rows, square, float(parts[3]), dictionary)
        except (IndexError, ValueError) as e:
            raise CalibrationInputError(f"bad board spec {text!r}: {usage}") from e
        raise CalibrationInputError(f"bad board spec {text!r}: {usage}")

    def __str__(self) -> str:
        if self.kind == "chessboard":
            return f"chessboard:{self.cols}x{self.rows}:{self.square_size:g}"
        return f"charuco:{self.cols}x{self.rows}:{self.square_size:g}:{self.marker_size:g}:{self.dictionary}"

    @property
    def n_corners(self) -> int:
        """Number of corner ids of a full view."""
        if self.kind == "chessboard":
            return self.cols * self.rows
        return (self.cols - 1) * (self.rows - 1)

    @property
    def corners_per_row(self) -> int:
        return self.cols if self.kind == "chessboard" else self.cols - 1

    def object_points(self) -> F64:
        """Board-frame corner positions (n_corners, 3), board units, z = 0."""
        if self.kind == "charuco":
            return np.asarray(self.charuco_board.getChessboardCorners(), dtype=np.float64).reshape(-1, 3)
        i, j = np.meshgrid(np.arange(self.cols), np.arange(self.rows))
        xy = np.stack([i.ravel(), j.ravel()], axis=1) * self.square_size
        return np.concatenate([xy, np.zeros((len(xy), 1))], axis=1)

    def outline(self) -> F64:
        """The board's printed area (4, 3) in the board frame, white margin of one square included."""
        s = self.square_size
        if self.kind == "chessboard":
            x0, y0, x1, y1 = -2 * s, -2 * s, (self.cols + 1) * s, (self.rows + 1) * s
        else:
            x0, y0, x1, y1 = -s, -s, (self.cols + 1) * s, (self.rows + 1) * s
        return np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]])

    @property
    def charuco_board(self) -> Any:
        """OpenCV's ``CharucoBoard`` for this spec (built once per spec)."""
        return _charuco_board(self.cols, self.rows, self.square_size, self.marker_size, self.dictionary)

    def texture(self, px_per_square: int = 24) -> tuple[U8, float, tuple[float, float]]:
        """The printed board as a grey image: ``(image, px_per_unit, (x0, y0))``.

        Pixel ``(u, v)`` of the image shows board point ``(x0 + u / px_per_unit, y0 + v / px_per_unit)``
        (pixel centres at integer u, v). Used by the synthetic renderer and reports.
        """
        s = self.square_size
        ppu = px_per_square / s
        outline = self.outline()
        x0, y0 = float(outline[0, 0]), float(outline[0, 1])
        w = round((outline[1, 0] - x0) * ppu)
        h = round((outline[2, 1] - y0) * ppu)
        if self.kind == "chessboard":
            u, v = np.meshgrid(np.arange(w), np.arange(h))
            xi = np.floor((x0 + (u + 0.5) / ppu) / s)
            yi = np.floor((y0 + (v + 0.5) / ppu) / s)
            inside = (xi >= -1) & (xi <= self.cols - 1) & (yi >= -1) & (yi <= self.rows - 1)
            black = inside & ((xi + yi) % 2 == 0)  # the square diagonally outside corner 0 is black
            img = np.where(black, 0, 255).astype(np.uint8)
        else:
            img = np.full((h, w), 255, dtype=np.uint8)
            size = (self.cols * px_per_square, self.rows * px_per_square)
            inner = self.charuco_board.generateImage(size, marginSize=0)
            img[px_per_square : px_per_square + inner.shape[0], px_per_square : px_per_square + inner.shape[1]] = inner
        return img, float(ppu), (x0 + 0.5 / ppu, y0 + 0.5 / ppu)


def _subpix_window(uv: F64, per_row: int) -> int:
    """Half window for cornerSubPix: a third of the smallest corner spacing (rows and columns), 2..11 px."""
    if len(uv) % per_row or len(uv) < 2 * per_row:
        return 3
    grid = uv.reshape(-1, per_row, 2)
    along = np.linalg.norm(np.diff(grid, axis=1), axis=2)
    across = np.linalg.norm(np.diff(grid, axis=0), axis=2)
    spacing = float(min(along.min(), across.min()))
    return int(np.clip(spacing / 3.0, 2, 11))


def _orient_chessboard(gray: U8, uv: F64, board: BoardSpec) -> F64:
    """Reorder detected chessboard corners so that id 0 is the corner next to the black outside square.

    With ``cols + rows`` odd, a 180-degree turn swaps square colours, so comparing the square
    diagonally outside corner 0 with its neighbour fixes the order. Otherwise the pattern is
    symmetric and the order is made to start nearest the image's top-left.
    """
    c, r = board.cols, board.rows
    grid = uv.reshape(r, c, 2)
    if (c + r) % 2 == 1:
        ex, ey = grid[0, 1] - grid[0, 0], grid[1, 0] - grid[0, 0]
        outside = grid[0, 0] - 0.5 * ex - 0.5 * ey
        neighbour = grid[0, 0] + 0.5 * ex - 0.5 * ey
        h, w = gray.shape
        vals = []
        for p in (outside, neighbour):
            x, y = round(float(p[0])), round(float(p[1]))
            if not (1 <= x < w - 1 and 1 <= y < h - 1):
                return uv
            vals.append(float(np.mean(gray[y - 1 : y + 2, x - 1 : x + 2])))
        return uv if vals[0] < vals[1] else uv[::-1].copy()
    if float(np.sum(uv[0])) > float(np.sum(uv[-1])):
        return uv[::-1].copy()
    return uv


def detect_board(gray: U8, board: BoardSpec) -> BoardDetection | None:
    """Find the board in an 8-bit grey image and refine its corners to sub-pixel.

    Returns None when the board is not found (or, for ChArUco, fewer than 4 corners are).
    Chessboards must be seen whole; ChArUco boards may be partial.
    """
    if board.kind == "chessboard":
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
        ok, corners = cv2.findChessboardCorners(gray, (board.cols, board.rows), flags=flags)
        if not ok or corners is None or len(corners) != board.n_corners:
            return None
        uv = corners.reshape(-1, 2).astype(np.float32)
        win = _subpix_window(uv.astype(np.float64), board.cols)
        uv = np.asarray(cv2.cornerSubPix(gray, uv.reshape(-1, 1, 2), (win, win), (-1, -1), _SUBPIX_CRITERIA),
                        dtype=np.float32).reshape(-1, 2)
        uv64 = _orient_chessboard(gray, uv.astype(np.float64), board)
        return BoardDetection(np.arange(board.n_corners, dtype=np.int32), uv64)
    detector = cv2.aruco.CharucoDetector(board.charuco_board)
    ch_corners, ch_ids, _, _ = detector.detectBoard(gray)
    if ch_ids is None or len(ch_ids) < 4:
        return None
    uv = ch_corners.reshape(-1, 2).astype(np.float32)
    uv = np.asarray(cv2.cornerSubPix(gray, uv.reshape(-1, 1, 2), (3, 3), (-1, -1), _SUBPIX_CRITERIA),
                    dtype=np.float32).reshape(-1, 2)
    ids = ch_ids.reshape(-1).astype(np.int32)
    order = np.argsort(ids)
    return BoardDetection(ids[order], uv.astype(np.float64)[order])


@lru_cache(maxsize=16)
def _charuco_board(cols: int, rows: int, square: float, marker: float, dictionary: str) -> Any:
    return cv2.aruco.CharucoBoard((cols, rows), square, marker,
                                  cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)))
