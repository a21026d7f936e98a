"""Each seam's bead against itself along the seam: a fixed score, with nothing learnt but a per-place spread.

``benchmarks/model_accuracy.py`` scores models on the twin's test frames at each viewpoint; this script renders
the same frames (the same plan options and defaults) and scores them without a model. Each seam of the seam
plan (the underbody model's seams, not the vehicle's own beads) is projected into the frame at its conveyor
travel, and the frame's grey image is resampled into a strip along it: 1 px steps along the seam, ``--half-width``
px either side. A normal bead looks the same along its own seam (its width, colours and light change slowly),
so each step is compared with the running median of the ``--window`` steps around it: the squared difference
summed across the strip, averaged over 3 steps. That is standardised by its mean and spread at the same place
of the seam (2 mm bins of arc length) over the training frames, and a frame scores its largest value.

``--render-size`` renders the frames larger and shrinks them to ``--size`` by area averaging: what a sensor
that integrates light over each pixel gives. The twin's renderer takes one sample per pixel, so a bead one or
two pixels wide aliases into steps and dots along its length at the native size.

``--fuse RUNS.json`` reads a ``model_accuracy.py --json`` run of the same frames (same plan options; its
``--size`` may be the render size) and adds each model's image scores fused with this score: both standardised
by their median and spread over the test frames (no labels), then summed, paired against the model alone.

    .venv/bin/python benchmarks/bead_profile.py --size 640x480 --render-size 1280x960 --test 96 16 \
        --viewpoints front --fuse out/front.json --json out/profile.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from scipy.ndimage import median_filter, uniform_filter1d

from calibration.clikit import image_size
from pipeline.data.twinset import TwinSetPlan, render_twin_splits, scaled_roi_margin_px
from pipeline.metrics import auroc_by_type, auroc_difference, auroc_interval, image_metrics
from pipeline.models.travel_gaussian import grey
from pipeline.twin import DigitalTwin, TwinConfig, TwinSample

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
#: arc-length bins (metres) in which the training frames' spread is kept
BIN_M = 0.002
#: seam points are projected this often along the seam (metres), then resampled to 1 px steps
SEAM_STEP_M = 0.0005
#: the score is averaged over this many steps along the seam
SMOOTH_STEPS = 3
#: a stretch of seam shorter than this many steps inside the frame is not scored
MIN_STEPS = 15


@dataclass(frozen=True, slots=True)
class Strip:
    """One seam's contiguous stretch inside a frame: its place bins and per-step score (before standardising)."""

    seam: int
    bins: npt.NDArray[np.int64]
    energy: F32


def seam_paths(twin: DigitalTwin, camera_id: str, s_m: float, scale: float, size: tuple[int, int],
               half_width: int) -> list[tuple[int, F64, F64, F64]]:
    """Each seam's projection at travel ``s_m`` in a frame of ``size`` (``scale`` times the render's pixels),
    in 1 px steps: (seam index, points (n, 2), unit normals across the seam (n, 2), arc length (n,)), cut
    into the stretches whose strips lie wholly inside the frame."""
    w, h = size
    cam = twin.rig.camera(camera_id)
    T = twin.rig.conveyor.T_cell_vehicle(s_m)
    out = []
    for j, seam in enumerate(twin.seams):
        s = np.arange(0.0, seam.length_m, SEAM_STEP_M)
        a = seam.arc_length_m
        normal = np.stack([np.interp(s, a, seam.normals_vehicle[:, k]) for k in range(3)], -1)
        p = seam.point_at(s) + normal * (seam.bead_height_mm / 2000.0)  # the bead's middle, not the panel
        uv, _ = cam.project(p @ T[:3, :3].T + T[:3, 3])
        ok = np.isfinite(uv).all(axis=1)
        if ok.sum() < 2:
            continue
        uv = (uv[ok] + 0.5) * scale - 0.5
        run = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(uv, axis=0), axis=1))])
        t = np.arange(0.0, run[-1], 1.0)
        q = np.stack([np.interp(t, run, uv[:, 0]), np.interp(t, run, uv[:, 1])], -1)
        along = np.gradient(q, axis=0)
        along /= np.maximum(np.linalg.norm(along, axis=1, keepdims=True), 1e-9)
        across = np.stack([-along[:, 1], along[:, 0]], -1)
        m = half_width + 1
        inside = (q[:, 0] >= m) & (q[:, 0] <= w - 1 - m) & (q[:, 1] >= m) & (q[:, 1] <= h - 1 - m)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
        for i0, i1 in zip(edges[::2], edges[1::2], strict=True):
            if i1 - i0 >= MIN_STEPS:
                out.append((j, q[i0:i1], across[i0:i1], np.interp(t[i0:i1], run, s[ok])))
    return out


def strips(image: npt.NDArray[np.uint8], paths: list[tuple[int, F64, F64, F64]], window: int,
           half_width: int) -> list[Strip]:
    """Each stretch's score per step: its column against the running median of ``window`` columns."""
    g = grey(image)
    u = np.arange(-half_width, half_width + 1, dtype=np.float64)
    out = []
    for j, q, across, arc in paths:
        mx = (q[:, :1] + across[:, :1] * u).astype(np.float32)
        my = (q[:, 1:] + across[:, 1:] * u).astype(np.float32)
        column = cv2.remap(g, mx, my, cv2.INTER_LINEAR)
        r = column - median_filter(column, size=(window, 1), mode="nearest")
        energy = uniform_filter1d((r * r).sum(axis=1), SMOOTH_STEPS, mode="nearest").astype(np.float32)
        out.append(Strip(j, (arc / BIN_M).astype(np.int64), energy))
    return out


class PlaceSpread:
    """The training frames' score at each place of each seam: mean and standard deviation per bin."""

    def __init__(self, frames: list[list[Strip]]) -> None:
        sums: dict[tuple[int, int], list[float]] = {}
        for strips_ in frames:
            for st in strips_:
                for b, e in zip(st.bins.tolist(), st.energy.tolist(), strict=True):
                    acc = sums.setdefault((st.seam, b), [0.0, 0.0, 0.0])
                    acc[0] += 1
                    acc[1] += e
                    acc[2] += e * e
        if not sums:
            raise ValueError("no seam lies inside the training frames")
        self.mean = {k: s / n for k, (n, s, _) in sums.items()}
        self.std = {k: float(np.sqrt(max(s2 / n - (s / n) ** 2, 0.0))) for k, (n, s, s2) in sums.items()}
        #: added to every spread: the median score, so that a quiet place does not make noise a defect
        self.floor = float(np.median([e for strips_ in frames for st in strips_ for e in st.energy.tolist()]))

    def score(self, strips_: list[Strip]) -> float:
        """The frame's largest standardised step; a place no training frame showed gets mean 0 and the floor."""
        best = 0.0
        for st in strips_:
            keys = [(st.seam, b) for b in st.bins.tolist()]
            mean = np.array([self.mean.get(k, 0.0) for k in keys])
            std = np.array([self.std.get(k, 0.0) for k in keys])
            best = max(best, float(((st.energy - mean) / (std + self.floor)).max()))
        return best


def viewpoint_run(twin: DigitalTwin, plan: TwinSetPlan, size: tuple[int, int], window: int,
                  half_width: int) -> dict[str, Any]:
    """Every test frame's score for ``plan``, its frames shrunk to ``size`` if rendered larger."""
    samples: list[TwinSample] = []
    t0 = time.perf_counter()
    train, _, test = render_twin_splits(twin, plan, rendered=samples.append)
    render_w = twin.config.width_px
    scale = size[0] / render_w

    def profile(images: npt.NDArray[np.uint8], kept: list[TwinSample]) -> list[list[Strip]]:
        out = []
        for image, smp in zip(images, kept, strict=True):
            if scale != 1.0:
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            out.append(strips(image, seam_paths(twin, plan.camera_id, smp.s_m, scale, size, half_width), window,
                              half_width))
        return out

    spread = PlaceSpread(profile(train.images, samples[:len(train)]))
    scores = [spread.score(s) for s in profile(test.images, samples[len(samples) - len(test):])]
    return {"viewpoint": plan.viewpoint, "types": list(test.types), "names": list(test.names), "scores": scores,
            "seconds": time.perf_counter() - t0}


def standardised(x: F64) -> F64:
    """``x`` less its median, over its spread (1.4826 MAD): no labels used."""
    m = float(np.median(x))
    return np.asarray((x - m) / max(1.4826 * float(np.median(np.abs(x - m))), 1e-12))


def fused_rows(run: dict[str, Any], models: list[dict[str, Any]]) -> list[tuple[str, list[str], F64]]:
    """(label, types, image scores) for this score, each model of ``models`` at this viewpoint, and the two fused;
    frames paired by name, and refused if their types differ."""
    ours = dict(zip(run["names"], zip(run["types"], run["scores"], strict=True), strict=True))
    rows: list[tuple[str, list[str], F64]] = [("bead profile", run["types"], np.asarray(run["scores"]))]
    for m in models:
        if m["viewpoint"] != run["viewpoint"]:
            continue
        pi = m["per_image"]
        names = [n for n in pi["names"] if n in ours]
        if any(ours[n][0] != t for n, t in zip(pi["names"], pi["types"], strict=True) if n in ours):
            raise SystemExit(f"--fuse: {m['model']}'s frames at {run['viewpoint']} are not this run's: "
                             "give model_accuracy.py the same plan options")
        theirs = dict(zip(pi["names"], pi["scores"], strict=True))
        types = [ours[n][0] for n in names]
        a = np.array([theirs[n] for n in names])
        b = np.array([ours[n][1] for n in names])
        label = f"{m['model']}{' †' if m['masked'] else ''} (seed {m['seed']})"
        rows += [(label, types, a), (f"{label} + bead profile", types, standardised(a) + standardised(b))]
    return rows


def tables(runs: list[dict[str, Any]], models: list[dict[str, Any]]) -> str:
    types = sorted({t for r in runs for t in r["types"] if t != "good"})
    out = ["| viewpoint | score | image AUROC | 95% interval | " + " | ".join(types) + " |",
           "|---|---|---|---|" + "---|" * len(types)]
    pairs = []
    for r in runs:
        rows = fused_rows(r, models)
        for label, ts, s in rows:
            labels = [t != "good" for t in ts]
            lo, hi = auroc_interval(labels, s)
            by_type = auroc_by_type(ts, s)
            out.append(f"| {r['viewpoint']} | {label} | {image_metrics(labels, s).auroc:.3f} | {lo:.3f}-{hi:.3f} | "
                       + " | ".join(f"{by_type[t]:.2f}" if t in by_type else "-" for t in types) + " |")
        for (label, ts, a), (_, _, fused) in zip(rows[1::2], rows[2::2], strict=True):
            d = auroc_difference([t != "good" for t in ts], a, fused)
            pairs.append(f"| {r['viewpoint']} | {label} | {d.difference:+.3f} | {d.low:+.3f} to {d.high:+.3f} | "
                         f"{'yes' if d.resolved else 'no'} |")
    if pairs:
        out += ["", "fused against the model alone, paired over the same test frames", "",
                "| viewpoint | model | fused - model | 95% paired interval | resolved |", "|---|---|---|---|---|",
                *pairs]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", type=image_size, default=(320, 240), help="frame size WIDTHxHEIGHT scored")
    ap.add_argument("--render-size", type=image_size, default=None, metavar="WxH",
                    help="render at this size and shrink to --size by area averaging (default: --size)")
    ap.add_argument("--camera", default="lower")
    ap.add_argument("--viewpoints", nargs="+", choices=("front", "centre", "back"), default=["front", "centre", "back"])
    # the defaults and meanings of model_accuracy.py's options, so that the same options give the same frames
    ap.add_argument("--train-frames", type=int, default=100, help="normal training frames per viewpoint")
    ap.add_argument("--frames-per-vehicle", type=int, default=5, help="training frames per vehicle")
    ap.add_argument("--val", type=int, nargs=2, default=[12, 2], metavar=("NORMAL", "PER_TYPE"),
                    help="validation frames: normal, and defects per type (rendered so that the test frames match)")
    ap.add_argument("--test", type=int, nargs=2, default=[24, 4], metavar=("NORMAL", "PER_TYPE"),
                    help="test frames: normal, and defects per type")
    ap.add_argument("--window", type=int, default=151, metavar="PX",
                    help="running median along the seam, in steps per 640 px of frame width (odd)")
    ap.add_argument("--half-width", type=int, default=6, metavar="PX",
                    help="the strip's reach either side of the seam, per 640 px of frame width")
    ap.add_argument("--fuse", type=Path, default=None, metavar="RUNS.json",
                    help="a model_accuracy.py --json run of the same frames, to fuse with")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = args.size
    rw, rh = args.render_size or args.size
    if args.train_frames < 1 or min(args.test) < 1:
        ap.error("--train-frames and both --test counts must be at least 1")
    if rw < w or rh * w != rw * h:
        ap.error(f"--render-size {rw}x{rh} must be --size {w}x{h} or larger, in the same proportions")
    if args.window < SMOOTH_STEPS or args.half_width < 1:
        ap.error(f"--window must be at least {SMOOTH_STEPS} and --half-width at least 1")
    try:
        models = json.loads(args.fuse.read_text()) if args.fuse else []
    except (OSError, ValueError) as e:
        ap.error(f"--fuse: cannot read {args.fuse}: {e}")
    if not isinstance(models, list) or not all(isinstance(m, dict) and "per_image" in m for m in models):
        ap.error(f"--fuse: {args.fuse} is not a model_accuracy.py --json file with per-image scores")
    window = max(SMOOTH_STEPS, round(args.window * w / 640)) | 1
    half_width = max(1, round(args.half_width * w / 640))
    twin = DigitalTwin(TwinConfig(seed=0, width_px=rw, height_px=rh))
    runs = []
    for vp in args.viewpoints:
        runs.append(viewpoint_run(twin, TwinSetPlan(
            camera_id=args.camera, train_frames=args.train_frames, frames_per_train_vehicle=args.frames_per_vehicle,
            val_normal=args.val[0], val_defects_per_type=args.val[1], test_normal=args.test[0],
            test_defects_per_type=args.test[1], roi_margin_px=scaled_roi_margin_px(rw), viewpoint=vp),
            (w, h), window, half_width))
        if args.json:
            args.json.write_text(json.dumps(runs, indent=1))
    print(f"twin camera {args.camera} at {w}x{h}" + (f" (rendered at {rw}x{rh}, area-averaged)" if rw != w else "")
          + f": {args.train_frames} training frames, test {args.test[0]} normal and {args.test[1]} per defect type "
          f"per viewpoint; window {window} steps, half-width {half_width} px; {platform.machine()}, "
          f"{sum(r['seconds'] for r in runs):.0f} s")
    print()
    print(tables(runs, models))


if __name__ == "__main__":
    main()
