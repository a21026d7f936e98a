"""The paper's 2D synthetic defect generator (§4.3), for users who bring real images.

Given a normal image and where its sealant beads are (a seam mask, or polylines with a bead width),
:func:`synthesize` edits one stretch of bead into one of the five defect types and returns the edited
image with its ground-truth mask. The paper used GIMP's Resynthesizer (inpainting and texture
resynthesis); here OpenCV does the same kinds of edit:

===============  ==========================================================================
missing          the bead stretch is inpainted away (``cv2.inpaint``, Telea)
misalignment     the stretch is inpainted away and its pixels pasted shifted sideways, with abrupt
                 or ramped ends
bifurcation      the stream splits: a copy of the stretch rotated about a point on the bead forms a
                 branch, or the stretch parts into two strands (fainter with ``strand_opacity``)
                 that rejoin at its ends
narrowing        the bead's edges are removed with a smooth taper and inpainted
hole             a small dark elliptical void inside the bead, or (``hole_through_share``) a hole
                 through it that shows the surface around the bead
===============  ==========================================================================

Every edit is confined to a disk of radius ``radius_px`` (a few bead widths) around a point on the
bead's centre line, and the mask covers every changed pixel. Results are a pure function of the
inputs and the seed. :func:`build_synthetic_sets` turns a folder of normal images plus seam masks into
validation and test sets in the MVTec AD layout that :func:`pipeline.data.read_mvtec` reads.

Like the paper's generator, these are image-level edits: no sealant physics or photometry.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.twin.defects import DEFECT_TYPES, DefectType

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class SynthError(ValueError):
    """Bad input to the generator (shapes, empty seam mask, unknown type) or no place fits a defect."""


@dataclass(frozen=True, slots=True)
class SynthConfig:
    """Sizes of the edits, in bead widths (w) where noted; ranges are drawn uniformly.

    ``radius_widths``: radius of the edited stretch (at least ``min_radius_px``). ``shift_widths``:
    sideways shift of a misalignment, and the widest gap between the strands of a split.
    ``ramp_share``: the largest share of a misaligned stretch's half-length over which the shift ramps
    in (0: abrupt ends). ``split_share``: the share of bifurcations made as two strands that part and
    rejoin; the others branch off at ``branch_angle_deg`` to the bead.
    ``strand_opacity``: how much of a split strand shows at the split's middle (easing to 1 at its
    ends): below 1, each strand is fainter than the bead, as a strand of part of its width is at a
    resolution where a bead is a few pixels wide. ``narrowing``: share of the width removed at the
    stretch's middle. ``hole_radius_widths`` and ``hole_gain``: a hole's radius and the brightness
    factor at its centre. ``hole_through_share``: the share of holes that go through the bead and show
    the surface around it (the median colour of the window ``hole_window_widths`` bead widths across,
    outside the bead) instead of a dark void.
    """

    radius_widths: tuple[float, float] = (4.0, 9.0)
    min_radius_px: float = 6.0
    shift_widths: tuple[float, float] = (1.5, 3.0)
    ramp_share: float = 0.5
    split_share: float = 0.5
    strand_opacity: float = 1.0
    branch_angle_deg: tuple[float, float] = (20.0, 50.0)
    narrowing: tuple[float, float] = (0.5, 0.8)
    hole_radius_widths: tuple[float, float] = (0.3, 0.5)
    hole_gain: tuple[float, float] = (0.15, 0.4)
    hole_through_share: float = 0.0
    hole_window_widths: float = 4.0
    inpaint_radius_px: int = 3
    attempts: int = 12

    def __post_init__(self) -> None:
        for name in ("split_share", "strand_opacity", "hole_through_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SynthError(f"SynthConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.hole_window_widths <= 0:
            raise SynthError(f"SynthConfig.hole_window_widths must be > 0, got {self.hole_window_widths}")


@dataclass(frozen=True, slots=True, eq=False)
class SynthDefect:
    """An edited image (H, W, 3) uint8 and its ground-truth ``mask`` (H, W) bool, with where and how big."""

    image: U8
    mask: Mask
    defect_type: DefectType
    center_xy_px: tuple[int, int]
    radius_px: float
    bead_width_px: float


def seam_mask_from_polylines(shape_hw: tuple[int, int], polylines: Sequence[npt.ArrayLike],
                             width_px: float) -> Mask:
    """Rasterise seam polylines, each (K, 2) in pixel (x, y), as beads ``width_px`` wide.

    Raises:
        SynthError: a polyline with fewer than 2 points or a non-positive width.
    """
    if width_px <= 0:
        raise SynthError(f"bead width must be positive, got {width_px}")
    canvas = np.zeros(shape_hw, np.uint8)
    for k, line in enumerate(polylines):
        pts = np.asarray(line, np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2:
            raise SynthError(f"polyline {k} must be (K >= 2, 2) pixel points, got shape {pts.shape}")
        cv2.polylines(canvas, [np.rint(pts).astype(np.int32)], False, 255, 1, cv2.LINE_8)
    # the bead = pixels within width/2 of the centre line (cv2's thick lines come out ~2 px too wide)
    dist = cv2.distanceTransform(np.where(canvas > 0, 0, 255).astype(np.uint8), cv2.DIST_L2, 5)
    return np.asarray(dist <= max(0.5, width_px / 2.0))


def _check(image: npt.ArrayLike, seam_mask: npt.ArrayLike) -> tuple[U8, Mask]:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise SynthError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    mask = np.asarray(seam_mask)
    if mask.ndim != 2:
        raise SynthError(f"seam mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.shape != img.shape[:2]:
        raise SynthError(f"seam mask {mask.shape} does not match the image {img.shape[:2]}")
    bead = np.asarray(mask > 0)
    if not bead.any():
        raise SynthError("seam mask is empty: there is no bead to edit")
    return np.ascontiguousarray(img), bead


def bead_width_px(seam_mask: Mask) -> float:
    """Typical bead width: twice the median distance-to-edge on the bead's centre line (ridge)."""
    dt = cv2.distanceTransform(seam_mask.astype(np.uint8), cv2.DIST_L2, 5)
    ridge = seam_mask & (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8)) - 1e-6)
    vals = dt[ridge] if ridge.any() else dt[seam_mask]
    return max(1.0, 2.0 * float(np.median(vals)) - 0.5)


def _disk(shape_hw: tuple[int, int], c: tuple[int, int], r: float) -> Mask:
    yy, xx = np.ogrid[: shape_hw[0], : shape_hw[1]]
    return np.asarray((xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r * r)


def _dilate(m: Mask, px: int = 1) -> Mask:
    k = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    return np.asarray(cv2.dilate(m.astype(np.uint8), k) > 0)


def _inpaint(img: U8, region: Mask, radius: int) -> U8:
    return np.asarray(cv2.inpaint(img, region.astype(np.uint8), radius, cv2.INPAINT_TELEA), np.uint8)


@dataclass(slots=True)
class _Site:
    """One stretch of bead: centre, radius, the stretch's pixels and its local direction."""

    c: tuple[int, int]
    r: float
    seg: Mask
    tangent: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))
    normal: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))
    centroid: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))


def _site(bead: Mask, width: float, cfg: SynthConfig, rng: np.random.Generator) -> _Site | None:
    """Pick a centre-line pixel away from the border and describe the stretch around it."""
    h, w = bead.shape
    r = max(cfg.min_radius_px, float(rng.uniform(*cfg.radius_widths)) * width)
    dt = cv2.distanceTransform(bead.astype(np.uint8), cv2.DIST_L2, 5)
    ridge = bead & (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8)) - 1e-6)
    ys, xs = np.nonzero(ridge)
    inside = (xs >= r) & (xs < w - r) & (ys >= r) & (ys < h - r)
    if not inside.any():
        inside = np.ones(len(xs), bool)
    ys, xs = ys[inside], xs[inside]
    k = int(rng.integers(len(xs)))
    c = (int(xs[k]), int(ys[k]))
    near = (bead & _disk(bead.shape, c, r)).astype(np.uint8)
    _, labels = cv2.connectedComponents(near, connectivity=8)
    seg = np.asarray(labels == labels[c[1], c[0]]) & (near > 0)
    py, px = np.nonzero(seg)
    if len(px) < 3:
        return None
    pts = np.stack([px, py], 1).astype(np.float64)
    centroid = pts.mean(0)
    cov = np.cov((pts - centroid).T)
    evals, evecs = np.linalg.eigh(cov)
    t = evecs[:, int(np.argmax(evals))]
    return _Site(c, r, seg, t, np.array([-t[1], t[0]]), centroid)


def _stretch(bead: Mask, s: _Site) -> Mask:
    """The stretch's pixels and a pixel around them, inside the site's disk (+1 px)."""
    return _dilate(s.seg, 1) & _disk(bead.shape, s.c, s.r + 1)


def _missing(img: U8, bead: Mask, s: _Site, width: float, cfg: SynthConfig,
             rng: np.random.Generator) -> tuple[U8, Mask]:
    region = _stretch(bead, s)
    return _inpaint(img, region, cfg.inpaint_radius_px), region


def _along(shape_hw: tuple[int, int], s: _Site) -> npt.NDArray[np.float32]:
    """Each pixel's signed distance from the site's centre along the stretch's tangent."""
    yy, xx = np.mgrid[: shape_hw[0], : shape_hw[1]].astype(np.float32)
    return np.asarray((xx - s.c[0]) * s.tangent[0] + (yy - s.c[1]) * s.tangent[1], np.float32)


def _half_length(s: _Site) -> float:
    py, px = np.nonzero(s.seg)
    return max(1.0, float(np.abs((px - s.c[0]) * s.tangent[0] + (py - s.c[1]) * s.tangent[1]).max()))


def _bump(along: npt.NDArray[np.floating], half_length: float) -> npt.NDArray[np.float32]:
    """1 at the stretch's centre, easing (cosine) to 0 at ``half_length`` and beyond."""
    return np.asarray(0.5 * (1.0 + np.cos(np.pi * np.clip(along / half_length, -1.0, 1.0))), np.float32)


def _shifted(img: U8, region: Mask, s: _Site, shift: npt.NDArray[np.float32]) -> tuple[U8, Mask]:
    """``img`` and ``region`` moved along the stretch's normal by ``shift`` (H, W) px, which varies
    only along the stretch, so every row across the bead moves as one."""
    h, w = region.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    map_x = xx - shift * np.float32(s.normal[0])
    map_y = yy - shift * np.float32(s.normal[1])
    moved = np.asarray(cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101), np.uint8)
    moved_mask = cv2.remap(region.astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST) > 0
    return moved, np.asarray(moved_mask)


def _sideways_px(s: _Site, width: float, cfg: SynthConfig, rng: np.random.Generator) -> float:
    """A sideways distance of ``shift_widths`` bead widths (at least 2 px), kept inside the site's
    disk so the edit stays local: reach = the distance, radius ≥ 3 widths by default."""
    return min(max(2.0, float(rng.uniform(*cfg.shift_widths)) * width), s.r)


def _paste_shifted(img: U8, region: Mask, s: _Site, shifts: list[npt.NDArray[np.float32]],
                   cfg: SynthConfig, opacity: npt.NDArray[np.float32] | None = None) -> tuple[U8, Mask]:
    """Inpaint ``region`` away, then paste it back once per shift profile, blended over the inpainted
    surface by ``opacity`` (H, W) where given."""
    out = _inpaint(img, region, cfg.inpaint_radius_px)
    mask = region.copy()
    for shift in shifts:
        moved, moved_mask = _shifted(img, region, s, shift)
        if opacity is None:
            out[moved_mask] = moved[moved_mask]
        else:
            a = opacity[moved_mask][:, None]
            out[moved_mask] = np.rint(a * moved[moved_mask] + (1 - a) * out[moved_mask]).astype(np.uint8)
        mask |= moved_mask
    return out, mask


def _misalignment(img: U8, bead: Mask, s: _Site, width: float, cfg: SynthConfig,
                  rng: np.random.Generator) -> tuple[U8, Mask]:
    region = _stretch(bead, s)
    d = _sideways_px(s, width, cfg, rng) * (1 if rng.random() < 0.5 else -1)
    half = _half_length(s)
    ramp = float(rng.uniform(0.0, cfg.ramp_share)) * half
    profile = np.clip((half + 1.5 - np.abs(_along(bead.shape, s))) / max(ramp, 1e-3), 0.0, 1.0)
    return _paste_shifted(img, region, s, [np.asarray(d * profile, np.float32)], cfg)


def _split(img: U8, bead: Mask, s: _Site, width: float, cfg: SynthConfig,
           rng: np.random.Generator) -> tuple[U8, Mask]:
    """Two strands part by up to ``shift_widths`` bead widths at the stretch's middle and rejoin at its ends."""
    region = _stretch(bead, s)
    gap = _sideways_px(s, width, cfg, rng)
    bump = _bump(_along(bead.shape, s), _half_length(s))
    half = np.float32(gap / 2) * bump
    opacity = None if cfg.strand_opacity >= 1.0 else np.asarray(1.0 - (1.0 - cfg.strand_opacity) * bump, np.float32)
    return _paste_shifted(img, region, s, [half, -half], cfg, opacity)


def _bifurcation(img: U8, bead: Mask, s: _Site, width: float, cfg: SynthConfig,
                 rng: np.random.Generator) -> tuple[U8, Mask]:
    if rng.random() < cfg.split_share:
        return _split(img, bead, s, width, cfg, rng)
    angle = float(rng.uniform(*cfg.branch_angle_deg)) * (1 if rng.random() < 0.5 else -1)
    m = cv2.getRotationMatrix2D((float(s.c[0]), float(s.c[1])), angle, 1.0)
    h, w = bead.shape
    seg = _dilate(s.seg, 1) & _disk(bead.shape, s.c, s.r)
    rot_mask = cv2.warpAffine(seg.astype(np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    rot_img = np.asarray(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT_101), np.uint8)
    t_rot = m[:, :2] @ s.tangent * (1 if rng.random() < 0.5 else -1)
    yy, xx = np.mgrid[:h, :w]
    along = (xx - s.c[0]) * t_rot[0] + (yy - s.c[1]) * t_rot[1]
    branch = rot_mask & (along > 0.5 * width) & ~_dilate(bead, 1)
    out = img.copy()
    out[branch] = rot_img[branch]
    return out, branch


def _narrowing(img: U8, bead: Mask, s: _Site, width: float, cfg: SynthConfig,
               rng: np.random.Generator) -> tuple[U8, Mask]:
    py, px = np.nonzero(s.seg)
    off = (px - s.centroid[0]) * s.normal[0] + (py - s.centroid[1]) * s.normal[1]
    along = (px - s.c[0]) * s.tangent[0] + (py - s.c[1]) * s.tangent[1]
    taper = _bump(along, _half_length(s))
    frac = float(rng.uniform(*cfg.narrowing))
    half_w = max(float(np.abs(off).max()), 0.5)
    if half_w >= 1.5:  # wide enough to thin symmetrically
        drop = np.abs(off) > half_w * (1.0 - frac * taper)
    else:  # a 1–2 px bead: remove one side where the taper is strong
        side = 1.0 if rng.random() < 0.5 else -1.0
        drop = (off * side >= 0.0) & (taper > 1.0 - frac)
    removed = np.zeros_like(bead)
    removed[py[drop], px[drop]] = True
    kept = s.seg & ~removed
    region = _dilate(removed, 1) & ~kept & _disk(bead.shape, s.c, s.r + 1)
    mask = _stretch(bead, s) | region
    return _inpaint(img, region, cfg.inpaint_radius_px), mask


def _hole(img: U8, bead: Mask, s: _Site, width: float, cfg: SynthConfig,
          rng: np.random.Generator) -> tuple[U8, Mask]:
    rad = max(1.0, float(rng.uniform(*cfg.hole_radius_widths)) * width)
    aspect = float(rng.uniform(0.7, 1.3))
    theta = float(rng.uniform(0, math.pi))
    h, w = bead.shape
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    dx, dy = xx - s.c[0], yy - s.c[1]
    u = (dx * math.cos(theta) + dy * math.sin(theta)) / (rad * aspect)
    v = (-dx * math.sin(theta) + dy * math.cos(theta)) / (rad / aspect)
    q = u * u + v * v
    hole = (q <= 1.0) & _dilate(bead, 1)
    hole[s.c[1], s.c[0]] = True
    out = img.astype(np.float64)
    if cfg.hole_through_share > 0 and rng.random() < cfg.hole_through_share:
        # through the bead: the surface shows, with the soft rim of a cut (full from 3/4 of the radius)
        a = np.clip((1.0 - np.sqrt(q)) / 0.25, 0.0, 1.0)[hole][:, None]
        out[hole] = a * _surface_colour(img, bead, s.c, cfg.hole_window_widths * width) + (1 - a) * out[hole]
    else:
        gain = float(rng.uniform(*cfg.hole_gain))
        # darkest at the centre, easing to 0.8 at the rim, so the void has a soft but contained edge
        factor = gain + (0.8 - gain) * np.clip(q, 0.0, 1.0)
        out[hole] *= factor[hole][:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), hole


def _surface_colour(img: U8, bead: Mask, c: tuple[int, int], window_px: float) -> npt.NDArray[np.float64]:
    """The median colour, outside the bead (and a pixel around it), of the window ``window_px`` across at ``c``;
    the window's median where all of it is bead."""
    r = max(2, math.ceil(window_px / 2))
    ys, xs = slice(max(0, c[1] - r), c[1] + r + 1), slice(max(0, c[0] - r), c[0] + r + 1)
    patch, off = img[ys, xs].reshape(-1, img.shape[2]), ~_dilate(bead[ys, xs], 1).reshape(-1)
    return np.asarray(np.median(patch[off] if off.any() else patch, axis=0), np.float64)


_EDITS = {"missing": _missing, "misalignment": _misalignment, "bifurcation": _bifurcation,
          "narrowing": _narrowing, "hole": _hole}


def synthesize(image: npt.ArrayLike, seam_mask: npt.ArrayLike | None, defect_type: str,
               seed: int | np.random.Generator = 0, *, polylines: Sequence[npt.ArrayLike] | None = None,
               bead_width: float | None = None, config: SynthConfig | None = None) -> SynthDefect:
    """Plant one ``defect_type`` defect on a bead of ``image`` (H, W, 3) uint8 RGB.

    The beads are ``seam_mask`` (H, W), non-zero on sealant, or, when it is None, ``polylines``
    rasterised ``bead_width`` px wide. ``bead_width`` defaults to the width measured on the mask.
    The same inputs and ``seed`` give the same result.

    Raises:
        SynthError: a bad image or mask (dtype, shape mismatch, empty), an unknown type, or no
        stretch of bead on which the edit changes pixels (e.g. beads only at the image border).
    """
    if defect_type not in _EDITS:
        raise SynthError(f"unknown defect type {defect_type!r}; use one of {DEFECT_TYPES}")
    if seam_mask is None:
        if polylines is None or bead_width is None:
            raise SynthError("give a seam mask, or polylines together with bead_width")
        shape = np.asarray(image).shape[:2]
        seam_mask = seam_mask_from_polylines((int(shape[0]), int(shape[1])), polylines, bead_width)
    img, bead = _check(image, seam_mask)
    cfg = config or SynthConfig()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    width = float(bead_width) if bead_width else bead_width_px(bead)
    edit = _EDITS[defect_type]
    for _ in range(cfg.attempts):
        site = _site(bead, width, cfg, rng)
        if site is None:
            continue
        out, mask = edit(img, bead, site, width, cfg, rng)
        changed = np.any(out != img, axis=2)
        if changed.any() and mask.any():
            return SynthDefect(out, np.asarray(mask), defect_type,  # type: ignore[arg-type]
                               site.c, site.r, width)
    raise SynthError(f"found no stretch of bead where a {defect_type!r} defect changes the image "
                     f"({cfg.attempts} attempts)")


# --- data sets ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SynthSetPlan:
    """How many held-out frames and defects go to each split; the remaining normals are ``train/good``."""

    val_normal: int = 4
    test_normal: int = 4
    val_per_type: int = 2
    test_per_type: int = 2
    defect_types: tuple[DefectType, ...] = DEFECT_TYPES
    roi_margin_px: int | None = 8
    seed: int = 0


@dataclass(frozen=True, slots=True)
class SynthSetSummary:
    root: str
    counts: dict[str, int]
    defects: list[dict[str, object]]


def _find_mask(mask_dir: Path, stem: str) -> Path:
    for name in (stem, f"{stem}_mask"):
        for suf in IMAGE_SUFFIXES:
            p = mask_dir / f"{name}{suf}"
            if p.is_file():
                return p
    raise SynthError(f"no seam mask for image {stem!r} in {mask_dir} (expected {stem}.png or {stem}_mask.png)")


def _read(path: Path, flags: int) -> npt.NDArray[np.uint8]:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise SynthError(f"cannot read {path}")
    return np.asarray(img, np.uint8)


def _write(path: Path, img: npt.NDArray[np.uint8]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise SynthError(f"cannot write {path}")


def build_synthetic_sets(normal_dir: str | Path, mask_dir: str | Path, out_dir: str | Path,
                         plan: SynthSetPlan | None = None, config: SynthConfig | None = None) -> SynthSetSummary:
    """Make validation and test sets with synthetic defects from a folder of normal images.

    ``normal_dir`` holds the normal frames (any of ``IMAGE_SUFFIXES``); ``mask_dir`` a seam mask per
    frame named ``<stem>.png`` or ``<stem>_mask.png`` (non-zero = bead). Frames are shuffled by
    ``plan.seed``; ``val_normal`` + ``test_normal`` of them are held out (the rest become
    ``train/good``), and defects are planted on the held-out frames of each split in turn. Written
    under ``out_dir`` in the layout :func:`pipeline.data.read_mvtec` reads::

        train/good, validation/{good,<type>}, validation_ground_truth/<type>/<stem>_mask.png,
        test/{good,<type>}, ground_truth/<type>/<stem>_mask.png, roi/<split>/<type>/<stem>.png

    plus ``synth2d.json`` recording the plan and each defect's type, source frame, centre and radius.

    Raises:
        SynthError: too few frames, a missing/mismatched/empty seam mask, or an unplaceable defect.
    """
    plan = plan or SynthSetPlan()
    src, mdir, out = Path(normal_dir), Path(mask_dir), Path(out_dir)
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if src.is_dir() else []
    need = plan.val_normal + plan.test_normal + 1
    if len(files) < need or plan.val_normal < 1 or plan.test_normal < 1:
        raise SynthError(f"{src}: need at least {need} normal images (val_normal, test_normal ≥ 1 and "
                         f"one for training), found {len(files)}")
    rng = np.random.default_rng(plan.seed)
    order = [files[i] for i in rng.permutation(len(files))]
    held = {"validation": order[: plan.val_normal],
            "test": order[plan.val_normal: plan.val_normal + plan.test_normal]}
    train = order[plan.val_normal + plan.test_normal:]
    gt_dir = {"validation": "validation_ground_truth", "test": "ground_truth"}
    per_type = {"validation": plan.val_per_type, "test": plan.test_per_type}
    counts: dict[str, int] = {"train/good": 0}
    defects: list[dict[str, object]] = []
    margin = np.ones((2 * plan.roi_margin_px + 1,) * 2, np.uint8) if plan.roi_margin_px else None

    def roi(seam: Mask) -> npt.NDArray[np.uint8]:
        assert margin is not None
        return np.asarray(cv2.dilate(seam.astype(np.uint8), margin) * 255, np.uint8)

    for f in train:
        _write(out / "train" / "good" / f"{f.stem}.png", _read(f, cv2.IMREAD_COLOR))
        counts["train/good"] += 1
    for split, frames in held.items():
        loaded = []
        for f in frames:
            bgr = _read(f, cv2.IMREAD_COLOR)
            rgb, seam = _check(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                               _read(_find_mask(mdir, f.stem), cv2.IMREAD_GRAYSCALE))
            loaded.append((f.stem, rgb, seam))
            _write(out / split / "good" / f"{f.stem}.png", bgr)
            if margin is not None:
                _write(out / "roi" / split / "good" / f"{f.stem}.png", roi(seam))
        counts[f"{split}/good"] = len(frames)
        for t in plan.defect_types:
            for k in range(per_type[split]):
                stem, rgb, seam = loaded[k % len(loaded)]
                d = synthesize(rgb, seam, t, rng, config=config)
                name = f"{stem}_{t}_{k:02d}"
                _write(out / split / t / f"{name}.png", np.asarray(cv2.cvtColor(d.image, cv2.COLOR_RGB2BGR), np.uint8))
                _write(out / gt_dir[split] / t / f"{name}_mask.png", d.mask.astype(np.uint8) * 255)
                if margin is not None:
                    _write(out / "roi" / split / t / f"{name}.png", roi(seam))
                defects.append({"split": split, "type": t, "file": name, "source": stem,
                                "center_xy_px": list(d.center_xy_px), "radius_px": round(d.radius_px, 2),
                                "mask_px": int(d.mask.sum())})
            counts[f"{split}/{t}"] = per_type[split]
    summary = SynthSetSummary(str(out), counts, defects)
    record = {"plan": asdict(plan), "config": asdict(config or SynthConfig()), **asdict(summary)}
    (out / "synth2d.json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("synth2d: wrote %s (%s)", out, counts)
    return summary
