"""The twin's test defects against the same vehicle without them: how far the frames carry the defects.

``benchmarks/model_accuracy.py`` scores models on the twin's test frames at each viewpoint. This script
renders the same frames (the same plan options and defaults, so the same vehicles, defects and travels)
and scores each against two references, with one score and nothing learnt:

* ``nearest`` (the baseline): the training frame closest to the test frame, aligned to it by phase
  correlation. It knows what the models of model_accuracy learn from: other vehicles.
* ``golden``: the frame's own vehicle rendered without its defect at the same travel, with its own
  sensor noise. It knows everything about the vehicle but the defect and the noise.

The score is the largest mean squared grey difference over 3x3 px inside the frame's nominal seams,
widened as model_accuracy's ROI. ``golden``'s image AUROC says how far a defect of each type shows at
this camera at all; the gap to ``nearest`` is what knowing the vehicle is worth. A second table gives
each type's footprint: the pixels the defect changes by at least 10 grey levels in any channel (the
frame against its vehicle without the defect, with the same noise).

    .venv/bin/python benchmarks/twin_ceiling.py --size 640x480 --test 96 16 --json out/ceiling.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from calibration.clikit import image_size
from pipeline.data.twinset import TwinSetPlan, render_twin_splits, scaled_roi_margin_px
from pipeline.metrics import auroc_by_type, auroc_difference, auroc_interval, image_metrics
from pipeline.models.travel_gaussian import grey
from pipeline.twin import DigitalTwin, TwinConfig, TwinSample

F32 = npt.NDArray[np.float32]
#: the nearest training frame is chosen on frames shrunk by this factor, then aligned at full size
CHOOSE_SHRINK = 4
#: a pixel is in a defect's footprint where the defect changes some channel by at least this much
CHANGED_LEVELS = 10
#: each reference, as the tables name it
REFERENCES = {"nearest": "nearest training frame (baseline)", "golden": "golden: the vehicle without its defect"}


def score(frame: F32, reference: F32, roi: npt.NDArray[np.bool_]) -> float:
    """The largest mean squared difference over 3x3 px inside ``roi``."""
    d = frame - reference
    return float(cv2.boxFilter(d * d, -1, (3, 3))[roi].max())


def aligned(reference: F32, frame: F32) -> F32:
    """``reference`` moved onto ``frame`` by the shift phase correlation finds between them."""
    (dx, dy), _ = cv2.phaseCorrelate(reference, frame)
    h, w = frame.shape
    move = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return np.asarray(cv2.warpAffine(reference, move, (w, h), borderMode=cv2.BORDER_REFLECT), np.float32)


def shrink(frame: F32) -> F32:
    h, w = frame.shape
    return np.asarray(cv2.resize(frame, (w // CHOOSE_SHRINK, h // CHOOSE_SHRINK), interpolation=cv2.INTER_AREA),
                      np.float32)


def nearest(frame: F32, train: list[F32], train_small: list[F32]) -> F32:
    """The training frame closest to ``frame`` once aligned (chosen on shrunk frames), aligned at full size."""
    small = shrink(frame)
    k = int(np.argmin([np.mean((aligned(t, small) - small) ** 2) for t in train_small]))
    return aligned(train[k], frame)


def viewpoint_run(twin: DigitalTwin, plan: TwinSetPlan) -> dict[str, Any]:
    """Both references' scores for every test frame of ``plan``, and each defect's footprint."""
    samples: list[TwinSample] = []
    t0 = time.perf_counter()
    train, _, test = render_twin_splits(twin, plan, rendered=samples.append)
    assert test.roi is not None  # the twin's sets always carry their nominal seams
    samples = samples[len(samples) - len(test):]  # the test split's frames come last
    train_grey = [grey(im) for im in train.images]
    train_small = [shrink(g) for g in train_grey]
    scores: dict[str, list[float]] = {r: [] for r in REFERENCES}
    footprint: list[dict[str, Any]] = []
    for image, roi, dtype, smp in zip(test.images, test.roi, test.types, samples, strict=True):
        clean = twin.scene(smp.vehicle.with_defects([]))
        g = grey(image)
        other_noise = twin.render(clean, smp.s_m, seq=1, camera_ids=[plan.camera_id]).frameset.frames[0].image
        scores["golden"].append(score(g, grey(other_noise), roi))
        scores["nearest"].append(score(g, nearest(g, train_grey, train_small), roi))
        if dtype != "good":
            same_noise = twin.render(clean, smp.s_m, camera_ids=[plan.camera_id]).frameset.frames[0].image
            change = np.abs(image.astype(np.int16) - same_noise.astype(np.int16)).max(axis=-1)
            footprint.append({"type": dtype, "changed_px": int((change >= CHANGED_LEVELS).sum()),
                              "largest_change": int(change.max())})
    return {"viewpoint": plan.viewpoint, "types": list(test.types), "scores": scores, "footprint": footprint,
            "seconds": time.perf_counter() - t0}


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """Image AUROC with its 95% interval and by type for each reference, and golden - nearest, paired."""
    labels = [t != "good" for t in run["types"]]
    out: dict[str, Any] = {}
    for ref in REFERENCES:
        s = run["scores"][ref]
        out[ref] = {"auroc": image_metrics(labels, s).auroc, "ci95": auroc_interval(labels, s),
                    "by_type": auroc_by_type(run["types"], s)}
    out["difference"] = auroc_difference(labels, run["scores"]["nearest"], run["scores"]["golden"])
    return out


def tables(runs: list[dict[str, Any]]) -> str:
    types = sorted({t for r in runs for t in r["types"] if t != "good"})
    out = ["| viewpoint | reference | image AUROC | 95% interval | " + " | ".join(types) + " |",
           "|---|---|---|---|" + "---|" * len(types)]
    diffs = []
    for r in runs:
        s = summary(r)
        for ref in REFERENCES:
            lo, hi = s[ref]["ci95"]
            out.append(f"| {r['viewpoint']} | {REFERENCES[ref]} | {s[ref]['auroc']:.3f} | {lo:.3f}-{hi:.3f} | "
                       + " | ".join(f"{s[ref]['by_type'][t]:.2f}" for t in types) + " |")
        d = s["difference"]
        diffs.append(f"| {r['viewpoint']} | {d.difference:+.3f} | {d.low:+.3f} to {d.high:+.3f} | "
                     f"{'yes' if d.resolved else 'no'} | {s['golden']['auroc'] / s['nearest']['auroc']:.2f}x |")
    out += ["", "golden against nearest, paired over the same test frames", "",
            "| viewpoint | golden - nearest | 95% paired interval | resolved | ratio |", "|---|---|---|---|---|",
            *diffs]
    out += ["", f"Defect footprints: pixels changed by >= {CHANGED_LEVELS} grey levels (median, range) and the "
            "largest change (median)", "", "| viewpoint | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
    for r in runs:
        cells = []
        for t in types:
            px = [f["changed_px"] for f in r["footprint"] if f["type"] == t]
            big = [f["largest_change"] for f in r["footprint"] if f["type"] == t]
            cells.append(f"{np.median(px):.0f} ({min(px)}-{max(px)}), {np.median(big):.0f}" if px else "-")
        out.append(f"| {r['viewpoint']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", type=image_size, default=(320, 240), help="twin frame size WIDTHxHEIGHT")
    ap.add_argument("--camera", default="lower")
    ap.add_argument("--viewpoints", nargs="+", choices=("front", "centre", "back"), default=["front", "centre", "back"])
    # the defaults and meanings of model_accuracy.py's options, so that the same options give the same frames
    ap.add_argument("--train-frames", type=int, default=100, help="normal training frames per viewpoint")
    ap.add_argument("--frames-per-vehicle", type=int, default=5, help="training frames per vehicle")
    ap.add_argument("--val", type=int, nargs=2, default=[12, 2], metavar=("NORMAL", "PER_TYPE"),
                    help="validation frames: normal, and defects per type (rendered so that the test frames match)")
    ap.add_argument("--test", type=int, nargs=2, default=[24, 4], metavar=("NORMAL", "PER_TYPE"),
                    help="test frames: normal, and defects per type")
    ap.add_argument("--roi-margin", type=int, default=None, metavar="PX",
                    help="ROI margin around the nominal seams (default: model_accuracy's, 6 px per 640 px of width)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = args.size
    if args.train_frames < 1 or min(args.test) < 1:
        ap.error("--train-frames and both --test counts must be at least 1")
    margin = scaled_roi_margin_px(w) if args.roi_margin is None else args.roi_margin
    twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
    runs = []
    for vp in args.viewpoints:
        runs.append(viewpoint_run(twin, TwinSetPlan(
            camera_id=args.camera, train_frames=args.train_frames, frames_per_train_vehicle=args.frames_per_vehicle,
            val_normal=args.val[0], val_defects_per_type=args.val[1], test_normal=args.test[0],
            test_defects_per_type=args.test[1], roi_margin_px=margin, viewpoint=vp)))
        if args.json:
            args.json.write_text(json.dumps(runs, indent=1))
    print(f"twin camera {args.camera} at {w}x{h}: {args.train_frames} training frames, test {args.test[0]} normal "
          f"and {args.test[1]} per defect type per viewpoint; ROI margin {margin} px; "
          f"{platform.machine()}, {sum(r['seconds'] for r in runs):.0f} s")
    print()
    print(tables(runs))


if __name__ == "__main__":
    main()
