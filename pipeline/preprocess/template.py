"""Template matching of a camera view (paper §4.1): find where a reference crop sits in a frame.

A template is a grey-level crop of a reference *normal* frame of one view. ``cv2.matchTemplate``
with ``TM_CCOEFF_NORMED`` gives a similarity map in [-1, 1]; ``cv2.minMaxLoc`` its best location.
A frame whose best score is below the threshold does not show this view (another view, an empty
conveyor, a body in the wrong position) and is rejected.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.preprocess.errors import PreprocessError

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """The best match of a template in one frame.

    ``score`` is the TM_CCOEFF_NORMED peak (1 = identical), ``top_left_xy`` where the template's top-left
    corner lands in the frame (px), ``offset_xy`` that location minus where it was cut in the reference
    frame (px; how far the view moved), ``accepted`` whether ``score >= threshold``.
    """

    score: float
    top_left_xy: tuple[int, int]
    offset_xy: tuple[int, int]
    accepted: bool


@dataclass(frozen=True, slots=True, eq=False)
class ViewTemplate:
    """A grey-level crop ``image`` (h, w) uint8 cut at ``box_xywh`` (px) of a reference frame."""

    image: U8
    box_xywh: tuple[int, int, int, int]
    threshold: float

    def __post_init__(self) -> None:
        if self.image.ndim != 2 or self.image.dtype != np.uint8:
            raise PreprocessError(f"a template is a (h, w) uint8 grey image, got {self.image.dtype} "
                                  f"{self.image.shape}")
        if self.image.shape != (self.box_xywh[3], self.box_xywh[2]):
            raise PreprocessError(f"template is {self.image.shape[1]}x{self.image.shape[0]} px but its box is "
                                  f"{self.box_xywh[2]}x{self.box_xywh[3]}")
        if not -1.0 <= self.threshold <= 1.0:
            raise PreprocessError(f"template threshold {self.threshold} is outside [-1, 1]")
        if float(self.image.std()) < 1.0:
            raise PreprocessError("the template is flat (no texture); TM_CCOEFF_NORMED cannot match it - "
                                  "cut it where the view has structure")


def to_gray(image: U8) -> U8:
    """(H, W, 3) RGB or (H, W) grey uint8 → (H, W) grey uint8."""
    if image.ndim == 2:
        return image
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), np.uint8)


def default_box(size_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred box of half the frame's width and height: big enough to be distinctive, small
    enough to be found when the view shifts by up to a quarter frame."""
    w, h = size_wh
    return (w // 4, h // 4, max(w // 2, 8), max(h // 2, 8))


def cut_template(reference: U8, box_xywh: tuple[int, int, int, int] | None = None,
                 threshold: float = 0.7) -> ViewTemplate:
    """Cut a template from ``reference`` (H, W, 3) RGB uint8 at ``box_xywh`` (default :func:`default_box`).

    Raises:
        PreprocessError: the box leaves the frame or the crop is flat.
    """
    gray = to_gray(reference)
    H, W = gray.shape
    x, y, w, h = box_xywh or default_box((W, H))
    if w < 8 or h < 8 or x < 0 or y < 0 or x + w > W or y + h > H:
        raise PreprocessError(f"template box {(x, y, w, h)} must be at least 8x8 px and inside the {W}x{H} frame")
    return ViewTemplate(np.ascontiguousarray(gray[y:y + h, x:x + w]), (x, y, w, h), threshold)


def match_template(frame: U8, template: ViewTemplate) -> TemplateMatch:
    """Best TM_CCOEFF_NORMED match of ``template`` in ``frame`` (H, W, 3) RGB or (H, W) uint8.

    Raises:
        PreprocessError: the frame is smaller than the template.
    """
    gray = to_gray(frame)
    th, tw = template.image.shape
    if gray.shape[0] < th or gray.shape[1] < tw:
        raise PreprocessError(f"frame {gray.shape[1]}x{gray.shape[0]} is smaller than the template {tw}x{th}")
    sim = cv2.matchTemplate(gray, template.image, cv2.TM_CCOEFF_NORMED)
    _, best, _, loc = cv2.minMaxLoc(sim)
    best = float(best) if np.isfinite(best) else -1.0  # a flat frame gives NaN
    x0, y0 = template.box_xywh[:2]
    return TemplateMatch(best, (int(loc[0]), int(loc[1])), (int(loc[0]) - x0, int(loc[1]) - y0),
                         best >= template.threshold)
