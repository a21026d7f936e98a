"""Perlin noise and the anomaly simulation of MemSeg (Yang et al. 2023), in numpy and OpenCV.

A simulated anomaly is a Perlin-noise blob mask, intersected with the image's foreground, through
which an *anomaly source* (a texture, or the image itself shuffled on a grid) is blended in with a
transparency drawn from a range (the paper's ``I_s = I_b + I_n``, Eq. 5)::

    mask  = (perlin(rotated) > threshold) · foreground(image)
    I_s   = (1 − mask)·I + mask·(δ·source + (1 − δ)·I),      δ ~ U(transparency_range)

Every function draws from the ``numpy.random.Generator`` it is given, so a seed fixes the result.
No texture data set is downloaded: texture sources are colourised multi-octave Perlin noise or
another normal image, rotated and flipped (the reference implementation used DTD textures).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


def perlin_2d(shape_hw: tuple[int, int], periods_hw: tuple[int, int], rng: np.random.Generator) -> F32:
    """Gradient (Perlin) noise of ``shape_hw`` with ``periods_hw`` lattice cells per axis, values in about [-1, 1].

    Any size works: the lattice is laid over a padded grid and cropped.
    """
    h, w = shape_hw
    ph, pw = max(1, periods_hw[0]), max(1, periods_hw[1])
    ch, cw = math.ceil(h / ph), math.ceil(w / pw)  # pixels per lattice cell
    angles = rng.uniform(0.0, 2.0 * math.pi, (ph + 1, pw + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    ys = (np.arange(ph * ch) + 0.5) / ch
    xs = (np.arange(pw * cw) + 0.5) / cw
    yi, xi = np.floor(ys).astype(int), np.floor(xs).astype(int)
    yf, xf = (ys - yi)[:, None], (xs - xi)[None, :]

    def dot(dy: int, dx: int) -> npt.NDArray[np.float64]:
        g = grad[(yi + dy)[:, None], (xi + dx)[None, :]]
        out: npt.NDArray[np.float64] = g[..., 0] * (xf - dx) + g[..., 1] * (yf - dy)
        return out

    def fade(t: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 6 * t**5 - 15 * t**4 + 10 * t**3

    u, v = fade(xf), fade(yf)
    top = dot(0, 0) * (1 - u) + dot(0, 1) * u
    bottom = dot(1, 0) * (1 - u) + dot(1, 1) * u
    noise = (top * (1 - v) + bottom * v) * math.sqrt(2.0)
    return noise[:h, :w].astype(np.float32)


def rotate(img: npt.NDArray[np.float32] | U8, angle_deg: float, border: int = cv2.BORDER_REFLECT_101) -> F32:
    """Rotate about the centre, keeping the size (reflected borders by default); float32 out."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    return np.asarray(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border), np.float32)


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    """MemSeg's anomaly simulation (the paper's Table 3 values by default).

    ``perlin_scale_min``/``perlin_scale`` bound the exponent ``k`` of ``2**k`` noise periods per axis
    (drawn in ``[min, max)``); ``grid_size`` is the structure source's shuffle grid (cells per axis);
    ``texture_prob`` the probability of a texture source (else a structure source); ``anomaly_prob`` the
    share of training samples that get an anomaly at all (the reference alternates 1:1).
    """

    perlin_scale: int = 5
    perlin_scale_min: int = 3
    perlin_threshold: float = 0.5
    transparency_range: tuple[float, float] = (0.8, 1.0)
    grid_size: int = 8
    texture_prob: float = 0.9
    anomaly_prob: float = 0.5
    foreground: str = "otsu"
    min_mask_px: int = 16


def perlin_mask(shape_hw: tuple[int, int], cfg: SimulationConfig, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """A binary blob mask: Perlin noise with ``2**k`` periods (k per axis), rotated by ±90°, thresholded."""
    lo, hi = cfg.perlin_scale_min, max(cfg.perlin_scale_min + 1, cfg.perlin_scale)
    periods = (2 ** int(rng.integers(lo, hi)), 2 ** int(rng.integers(lo, hi)))
    noise = perlin_2d(shape_hw, periods, rng)
    noise = rotate(noise, float(rng.uniform(-90.0, 90.0)))
    return np.asarray(noise > cfg.perlin_threshold)


def foreground_mask(img: U8, mode: str) -> npt.NDArray[np.bool_]:
    """Where anomalies may be planted: ``"otsu"`` = the brighter side of Otsu's threshold on grey,
    ``"otsu_dark"`` = the darker side, ``"none"`` = everywhere. Falls back to everywhere when the
    chosen side is under 5% of the image (a near-uniform frame)."""
    full = np.ones(img.shape[:2], bool)
    if mode == "none":
        return full
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    _, th = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    fg = th > 0 if mode == "otsu" else th == 0
    return fg if fg.mean() >= 0.05 else full


def texture_source(shape_hw: tuple[int, int], rng: np.random.Generator, others: U8 | None = None) -> F32:
    """An anomaly texture (H, W, 3) float 0..255: colourised fractal Perlin noise, or (half the time when
    ``others`` are given) another normal image rotated, flipped and colour-jittered."""
    h, w = shape_hw
    if others is not None and len(others) > 0 and rng.random() < 0.5:
        src = others[int(rng.integers(len(others)))]
        src = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR) if src.shape[:2] != (h, w) else src
        out = rotate(src, float(rng.uniform(-180, 180)))
        if rng.random() < 0.5:
            out = out[:, ::-1]
        gain = rng.uniform(0.4, 1.6, 3).astype(np.float32)
        return np.asarray(np.clip(out * gain + rng.uniform(-60, 60), 0, 255), np.float32)
    noise = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    base = int(rng.integers(2, 6))
    for octave in range(4):
        noise += amp * perlin_2d((h, w), (base * 2**octave, base * 2**octave), rng)
        total += amp
        amp *= 0.5
    t = (noise / total + 1.0) / 2.0  # about 0..1
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    out = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    return np.clip(out, 0, 255).astype(np.float32)


def structure_source(img: U8, grid_size: int, rng: np.random.Generator) -> F32:
    """MemSeg's structure source: the image, contrast-jittered and flipped, cut into a ``grid_size``²
    grid whose cells are shuffled."""
    h, w = img.shape[:2]
    g = max(1, grid_size)
    ch, cw = max(1, h // g), max(1, w // g)
    gh, gw = h // ch, w // cw
    src = img.astype(np.float32)
    src = np.clip((src - 128.0) * rng.uniform(0.6, 1.4) + 128.0 + rng.uniform(-30, 30), 0, 255)
    if rng.random() < 0.5:
        src = src[::-1]
    out = src.copy()
    cells = [(i, j) for i in range(gh) for j in range(gw)]
    order = rng.permutation(len(cells))
    for (i, j), k in zip(cells, order, strict=True):
        si, sj = cells[int(k)]
        out[i * ch:(i + 1) * ch, j * cw:(j + 1) * cw] = src[si * ch:(si + 1) * ch, sj * cw:(sj + 1) * cw]
    return np.asarray(out, np.float32)


def simulate_anomaly(img: U8, cfg: SimulationConfig, rng: np.random.Generator,
                     others: U8 | None = None) -> tuple[U8, npt.NDArray[np.float32]]:
    """One simulated anomalous image and its mask (H, W) float32 in {0, 1} from a normal ``img`` (H, W, 3).

    Tries a few Perlin masks until one holds at least ``cfg.min_mask_px`` foreground pixels; if none
    does, the image comes back unchanged with an empty mask (a valid normal sample).
    """
    h, w = img.shape[:2]
    fg = foreground_mask(img, cfg.foreground)
    mask = np.zeros((h, w), bool)
    for _ in range(4):
        mask = perlin_mask((h, w), cfg, rng) & fg
        if mask.sum() >= cfg.min_mask_px:
            break
    else:
        return img, np.zeros((h, w), np.float32)
    if rng.random() < cfg.texture_prob:
        source = texture_source((h, w), rng, others)
    else:
        source = structure_source(img, cfg.grid_size, rng)
    delta = float(rng.uniform(*cfg.transparency_range))
    m = mask[..., None].astype(np.float32)
    base = img.astype(np.float32)
    out = (1 - m) * base + m * (delta * source + (1 - delta) * base)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask.astype(np.float32)
