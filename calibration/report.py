"""Calibration reports: a one-line verdict per camera and a self-contained HTML page with PNG figures.

Verdict thresholds (stated in every report):

* ``good``: RMS reprojection error <= 0.5 px and at least 10 views used;
* ``usable``: RMS <= 1.0 px and at least 5 views used;
* ``redo``: anything else.

Figures are drawn with OpenCV (no plotting library): per-view RMS bars per camera, and for a
few views the image with detected corners and residual vectors magnified.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from calibration.boards import BoardDetection
from calibration.rig import atomic_write_text

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
GOOD_RMS_PX, USABLE_RMS_PX = 0.5, 1.0
GOOD_MIN_VIEWS, USABLE_MIN_VIEWS = 10, 5
THRESHOLDS_TEXT = (
    f"good: RMS <= {GOOD_RMS_PX} px and >= {GOOD_MIN_VIEWS} views; "
    f"usable: RMS <= {USABLE_RMS_PX} px and >= {USABLE_MIN_VIEWS} views; otherwise redo"
)


def verdict(rms_px: float, n_views: int) -> str:
    """``good``, ``usable`` or ``redo`` for a camera; see the module docstring for the thresholds."""
    if rms_px <= GOOD_RMS_PX and n_views >= GOOD_MIN_VIEWS:
        return "good"
    if rms_px <= USABLE_RMS_PX and n_views >= USABLE_MIN_VIEWS:
        return "usable"
    return "redo"


def verdict_line(camera_id: str, rms_px: float, n_views: int) -> str:
    """One line for the terminal: ``camera left: good (RMS 0.07 px over 16 views)``."""
    return f"camera {camera_id}: {verdict(rms_px, n_views)} (RMS {rms_px:.3f} px over {n_views} views)"


def bar_chart_png(values: Mapping[str, float], title: str, limit_px: float = USABLE_RMS_PX) -> U8:
    """A horizontal bar chart of per-view RMS (px) with the ``usable`` limit drawn in red."""
    names = list(values)
    row_h, left, width = 16, 110, 420
    img = np.full((30 + row_h * max(len(names), 1), left + width + 70, 3), 255, np.uint8)
    cv2.putText(img, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    vmax = max([limit_px * 1.2, *values.values()]) if values else 1.0
    x_lim = left + int(width * limit_px / vmax)
    for i, n in enumerate(names):
        y = 26 + i * row_h
        v = values[n]
        colour = (60, 160, 60) if v <= GOOD_RMS_PX else ((0, 170, 230) if v <= USABLE_RMS_PX else (40, 40, 220))
        cv2.rectangle(img, (left, y), (left + int(width * v / vmax), y + row_h - 4), colour, -1)
        cv2.putText(img, n[:14], (4, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{v:.3f}", (left + int(width * v / vmax) + 4, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.38,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cv2.line(img, (x_lim, 24), (x_lim, img.shape[0] - 2), (0, 0, 255), 1)
    return img


def residual_image(image_path: str, det: BoardDetection, residuals_px: F64, gain: float = 50.0) -> U8 | None:
    """The view with detected corners (green) and residual vectors (red, magnified ``gain`` times)."""
    img = cv2.imread(image_path, cv2.IMREAD_COLOR) if image_path else None
    if img is None:
        return None
    for (u, v), (du, dv) in zip(det.uv_px, residuals_px, strict=True):
        p0 = (round(float(u)), round(float(v)))
        p1 = (round(float(u + gain * du)), round(float(v + gain * dv)))
        cv2.circle(img, p0, 2, (0, 200, 0), -1, cv2.LINE_AA)
        cv2.line(img, p0, p1, (0, 0, 255), 1, cv2.LINE_AA)
    cv2.putText(img, f"residuals x{gain:g}", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 255), 2, cv2.LINE_AA)
    scale = min(1.0, 640.0 / img.shape[1])
    if scale < 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.asarray(img, dtype=np.uint8)


def _png_tag(img: U8, alt: str) -> str:
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        return ""
    data = base64.b64encode(buf.tobytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


@dataclass(frozen=True, slots=True, eq=False)
class CameraSection:
    """What the report shows for one camera."""

    camera_id: str
    rms_px: float
    per_view_rms_px: dict[str, float]
    rejected: dict[str, str]
    facts: dict[str, str]
    residual_images: tuple[tuple[str, U8], ...] = ()


def write_html_report(
    path: Path, title: str, cameras: Sequence[CameraSection], summary: Mapping[str, str],
    figures: Sequence[tuple[str, U8]] = (),
) -> None:
    """Write one self-contained HTML page (PNG figures inlined) atomically."""
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}"
        "img{margin:4px;border:1px solid #ccc}.good{color:#080}.usable{color:#b70}.redo{color:#c00}</style>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Verdict thresholds: {html.escape(THRESHOLDS_TEXT)}.</p><table>",
    ]
    for k, v in summary.items():
        parts.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>")
    parts.append("</table>")
    for cam in cameras:
        n = len(cam.per_view_rms_px)
        vd = verdict(cam.rms_px, n)
        parts.append(f"<h2>Camera {html.escape(cam.camera_id)}: <span class='{vd}'>{vd}</span></h2><table>")
        parts.append(f"<tr><th>RMS</th><td>{cam.rms_px:.3f} px over {n} views</td></tr>")
        for k, v in cam.facts.items():
            parts.append(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>")
        parts.append("</table>")
        parts.append(_png_tag(bar_chart_png(cam.per_view_rms_px, f"{cam.camera_id}: RMS per view (px)"), "per view"))
        if cam.rejected:
            parts.append("<h3>Rejected views</h3><table>")
            for k, why in cam.rejected.items():
                parts.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(why)}</td></tr>")
            parts.append("</table>")
        for name, img in cam.residual_images:
            parts.append(_png_tag(img, name))
    for name, img in figures:
        parts.append(f"<h2>{html.escape(name)}</h2>{_png_tag(img, name)}")
    atomic_write_text(path, "\n".join(parts) + "\n")
    log.info("wrote report %s", path)
