"""A contact sheet of the twin: what each camera sees, its depth, its ground truth, and every defect.

Rows: one per camera, with (RGB + defect outlines in red) | (depth as a colour map, or the seam
ground truth for RGB-only cameras) | (seam ground truth coloured by region). Then a strip of the
lower camera over the pass, and close-ups of each planted defect in the view that sees it best.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.twin.defects import DEFECT_TYPES, DefectType
from pipeline.twin.twin import DigitalTwin, TwinSample

U8 = npt.NDArray[np.uint8]
RED = (235, 40, 40)
REGION_RGB = {"front": (70, 160, 255), "centre": (90, 210, 110), "back": (250, 170, 60)}
LABEL_H = 22


@dataclass(frozen=True, slots=True)
class PreviewInfo:
    vehicle_id: str
    frames_rendered: int
    defects: tuple[dict[str, object], ...]
    size_px: tuple[int, int]


def _label(img: U8, text: str) -> U8:
    bar = np.full((LABEL_H, img.shape[1], 3), 245, np.uint8)
    cv2.putText(bar, text, (6, LABEL_H - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def _outline(rgb: U8, mask: npt.NDArray[np.bool_], colour: tuple[int, int, int] = RED, thickness: int = 1) -> U8:
    out = rgb.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def _depth_colour(depth_m: npt.NDArray[np.float32]) -> U8:
    valid = depth_m > 0
    if not np.any(valid):
        return np.zeros((*depth_m.shape, 3), np.uint8)
    lo, hi = np.percentile(depth_m[valid], [1, 99])
    norm = np.clip((depth_m - lo) / max(hi - lo, 1e-6), 0, 1)
    bgr = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb: U8 = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb


def _seam_gt(twin: DigitalTwin, sample: TwinSample, cam: str) -> U8:
    truth = sample.truth[cam]
    img = (sample.frameset.frame(cam).image // 3).astype(np.uint8)
    for i, seam in enumerate(twin.seams):
        img[truth.seam_index == i] = REGION_RGB[seam.region]
    img[truth.defect_mask] = RED
    return img


def _closeup(sample: TwinSample, cam: str, k: int, size: int, zoom: int) -> U8:
    image = sample.frameset.frame(cam).image
    mask = sample.truth[cam].defect_index == k
    ys, xs = np.nonzero(mask)
    cy, cx = int(ys.mean()), int(xs.mean())
    h, w = mask.shape
    half = size // 2
    y0, x0 = min(max(cy - half, 0), max(h - size, 0)), min(max(cx - half, 0), max(w - size, 0))
    crop = image[y0 : y0 + size, x0 : x0 + size]
    big = np.asarray(cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    mbig = cv2.resize(mask[y0 : y0 + size, x0 : x0 + size].astype(np.uint8), None, fx=zoom, fy=zoom,
                      interpolation=cv2.INTER_NEAREST)
    return _outline(big, mbig.astype(bool), thickness=2)


def _grid(tiles: Sequence[U8], cols: int, pad: int = 4) -> U8:
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = []
    for r in range(0, len(tiles), cols):
        row = [np.pad(t, ((0, h - t.shape[0]), (0, w - t.shape[1]), (0, 0)), constant_values=255)
               for t in tiles[r : r + cols]]
        row += [np.full((h, w, 3), 255, np.uint8)] * (cols - len(row))
        rows.append(np.hstack([np.pad(t, ((pad, pad), (pad, pad), (0, 0)), constant_values=255) for t in row]))
    return np.vstack(rows)


def preview_render_count(twin: DigitalTwin, n_defects: int, sequence_frames: int = 6) -> int:
    """How many render calls :func:`render_preview` makes, for progress bars."""
    return 1 + sequence_frames + n_defects * len(twin.rig.cameras)


def render_preview(
    twin: DigitalTwin, vehicle_index: int = 0, defect_types: Sequence[DefectType] = DEFECT_TYPES,
    sequence_frames: int = 6, progress: Callable[[int], object] | None = None,
) -> tuple[U8, PreviewInfo]:
    """Render a short sequence of one vehicle with the given defects; return the sheet (RGB) and a summary.

    ``progress(n)`` is called after each render; :func:`preview_render_count` tells the total.
    """
    tick = progress or (lambda n: None)
    scene = twin.vehicle(vehicle_index, defect_types=list(defect_types))
    n_rendered = 0
    mid = twin.render(scene, 0.0, seq=0)
    n_rendered += 1
    tick(1)
    cams = twin.rig.camera_ids
    tiles: list[U8] = []
    for cam in cams:
        frame = mid.frameset.frame(cam)
        truth = mid.truth[cam]
        kind = "RGB-D" if frame.depth_m is not None else "RGB"
        tiles.append(_label(_outline(frame.image, truth.defect_mask), f"{cam} ({kind}) s=0.00 m"))
        if frame.depth_m is not None:
            lo, hi = float(frame.depth_m[frame.depth_m > 0].min()), float(frame.depth_m.max())
            tiles.append(_label(_depth_colour(frame.depth_m), f"depth {lo:.2f}-{hi:.2f} m"))
        else:
            tiles.append(_label(_depth_colour(truth.depth_true_m), "exact depth (GT; no sensor)"))
        tiles.append(_label(_seam_gt(twin, mid, cam), "GT: seams by region, defects red"))
    sheet = [_grid(tiles, cols=3)]

    s0, s1 = twin.pass_range_m()
    strip: list[U8] = []
    lower = cams[0]
    for j, s in enumerate(np.linspace(s0 + 0.8, s1 - 0.8, sequence_frames)):
        smp = twin.render(scene, float(s), seq=1 + j, camera_ids=[lower])
        n_rendered += 1
        tick(1)
        img = _outline(smp.frameset.frame(lower).image, smp.truth[lower].defect_mask, thickness=2)
        small = np.asarray(
            cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA), dtype=np.uint8
        )
        strip.append(_label(small, f"{lower} t={(s - s0) / twin.config.speed_mps:.0f} s, s={s:+.2f} m"))
    sheet.append(_grid(strip, cols=3))

    closeups: list[U8] = []
    defects: list[dict[str, object]] = []
    width_px = twin.config.width_px
    for k, region in enumerate(scene.regions):
        best: tuple[int, str, TwinSample] | None = None
        for cam in cams:
            smp = twin.render(scene, twin.s_centering(cam, region.centroid_m), seq=100 + k, camera_ids=[cam])
            n_rendered += 1
            tick(1)
            px = int((smp.truth[cam].defect_index == k).sum())
            if best is None or px > best[0]:
                best = (px, cam, smp)
        assert best is not None
        px, cam, smp = best
        d = region.spec
        defects.append({"id": d.defect_id, "type": d.defect_type, "seam": d.seam_id, "size_mm": round(d.size_mm, 1),
                        "best_view": cam, "mask_px": px})
        text = f"{d.defect_type} {d.size_mm:.0f} mm, seam {d.seam_id}, {cam}"
        if px == 0:
            closeups.append(_label(np.full((width_px // 2, width_px // 2, 3), 200, np.uint8), text + " (not visible)"))
        else:
            closeups.append(_label(_closeup(smp, cam, k, size=max(24, width_px // 8), zoom=4), text))
    if closeups:
        sheet.append(_grid(closeups, cols=min(len(closeups), 5)))

    width = max(s.shape[1] for s in sheet)
    sheet = [np.pad(s, ((0, 0), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in sheet]
    title = np.full((34, width, 3), 255, np.uint8)
    cv2.putText(title, f"Digital twin preview: vehicle {scene.spec.vehicle_id}, seed {twin.config.seed}, "
                f"{len(cams)} cameras, {len(scene.regions)} planted defects", (8, 24),
                cv2.FONT_HERSHEY_SIMPLEX, 0.65, (10, 10, 10), 1, cv2.LINE_AA)
    out = np.vstack([title, *sheet])
    info = PreviewInfo(scene.spec.vehicle_id, n_rendered, tuple(defects), (out.shape[1], out.shape[0]))
    return out, info
