"""CPU cost of the served preprocessing per frame, and of its local contrast step, on twin frames.

For each ``--sizes``, two twin vehicles (a reference and a second one, another paint) are rendered
by the lower camera at the centre station. The preprocessor is fitted on the reference frame with
the benchmark's settings (template, photometric, reference ROI with the scaled margin) and timed on
the other frame (best of ``--repeats`` means of ``--frames`` calls), in the same process:

* ``local contrast, exact median``: ``cv2.medianBlur`` over the full window, the straightforward way
  and the baseline;
* ``local contrast, shrunk median``: :func:`pipeline.preprocess.contrast.local_contrast` (a 5 px median
  on the frame shrunk by ``ceil(window / 5)``);
* ``preprocess``: ``Preprocessor.apply`` of one frame without the contrast step;
* ``preprocess + contrast``: the same with it.

    .venv/bin/python benchmarks/preprocess_speed.py --sizes 640x480 1280x960
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable

import cv2
import numpy as np

from calibration.clikit import image_size
from pipeline.data.twinset import scaled_roi_margin_px
from pipeline.preprocess import PreprocessConfig, Preprocessor
from pipeline.preprocess.contrast import colour_distance, local_contrast, scaled_contrast_px
from pipeline.preprocess.template import U8
from pipeline.twin import DigitalTwin, TwinConfig

#: each step's baseline, timed in the same run
BASELINES = {"local contrast, shrunk median": "local contrast, exact median", "preprocess + contrast": "preprocess"}


def exact_contrast(frame: U8, kernel_px: int, pool_px: int) -> U8:
    """The step with OpenCV's median over the full window (the baseline)."""
    return colour_distance(frame, np.asarray(cv2.medianBlur(frame, kernel_px), np.uint8), pool_px)


def best_ms(fn: Callable[[], object], frames: int, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(frames):
            fn()
        runs.append((time.perf_counter() - t0) / frames)
    return 1e3 * min(runs)


def time_one_size(w: int, h: int, frames: int, repeats: int) -> dict[str, float]:
    """ms per frame of each step at ``w`` x ``h``."""
    twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
    ref_scene, other_scene = twin.vehicle(0, defect_types=[]), twin.vehicle(1, defect_types=[])
    ref = twin.render(ref_scene, 0.0, camera_ids=["lower"]).frameset.frames[0].image
    frame = twin.render(other_scene, 0.0, camera_ids=["lower"]).frameset.frames[0].image
    seams = twin.nominal_seam_pixels(ref_scene, 0.0, "lower")
    kernel, pool = scaled_contrast_px(w)
    base = PreprocessConfig(template=True, roi=True, roi_margin_px=scaled_roi_margin_px(w), photometric=True)
    plain = Preprocessor.fit(base, ref, seams)
    contrast = Preprocessor.fit(dataclasses.replace(base, contrast=True), ref, seams)
    return {
        "local contrast, exact median": best_ms(lambda: exact_contrast(frame, kernel, pool), frames, repeats),
        "local contrast, shrunk median": best_ms(lambda: local_contrast(frame, kernel, pool), frames, repeats),
        "preprocess": best_ms(lambda: plain.apply(frame[None]), frames, repeats),
        "preprocess + contrast": best_ms(lambda: contrast.apply(frame[None]), frames, repeats),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", nargs="+", type=image_size, default=[(640, 480), (1280, 960)], metavar="WxH")
    ap.add_argument("--frames", type=int, default=20, help="calls per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"one frame of the twin's lower camera, centre station; {platform.machine()}, {os.cpu_count()} cores, "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; best of {args.repeats} x {args.frames} calls")
    print()
    print("| frame | window / pool px | step | ms per frame | speed-up |")
    print("|---|---|---|---|---|")
    for w, h in args.sizes:
        kernel, pool = scaled_contrast_px(w)
        rows = time_one_size(w, h, args.frames, args.repeats)
        for step, ms in rows.items():
            base = BASELINES.get(step)
            ratio = f"{rows[base] / ms:.2f}x vs {base}" if base else "baseline"
            print(f"| {w}x{h} | {kernel} / {pool} | {step} | {ms:.2f} | {ratio} |")

if __name__ == "__main__":
    main()
