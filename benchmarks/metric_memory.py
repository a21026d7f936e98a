"""Peak memory and time of the pixel metrics on full-size maps, the step that bounds how many test
frames one evaluation can hold.

Every metric is exact over all pixels, so its memory grows with frames x pixels. Each one runs in a
fresh process on the same data: ``--frames`` float32 maps of ``--size`` pixels, uniform noise
(drawn in float64: as many distinct values as float32 holds, as a model's smooth maps have), and on
the second half of the frames a planted 40x30 px defect that scores 0.5 higher. With
``--roi-share`` below 1, only a horizontal band of that share of each map's rows (around the defect)
keeps its scores and the rest holds 0, as a masked model's maps do outside their ROI (the twin's ROI
is about 5 % of a frame): the pixel metrics then see mostly ties. The peak is the process's maximum
resident set above what it held once the data were made.

* ``roc_auc_score``: scikit-learn's pixel AUROC alone, one exact ROC curve (the baseline);
* ``aupro``: ``pipeline.metrics.aupro`` (AUPRO up to FPR 0.3);
* ``pixel_metrics``: ``pipeline.metrics.pixel_metrics``, everything the benchmark and ``xrserver
  eval`` compute per pixel (AUROC, AU-PR, AUPRO, the IoU-optimal operating point).

    .venv/bin/python benchmarks/metric_memory.py --frames 88 --size 1280x960
    .venv/bin/python benchmarks/metric_memory.py --frames 88 --size 1280x960 --roi-share 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from calibration.clikit import image_size
from pipeline.metrics import aupro, pixel_metrics

Maps = npt.NDArray[np.float32]
METRICS: dict[str, Callable[[npt.NDArray[np.bool_], Maps], float]] = {
    "roc_auc_score": lambda m, s: float(roc_auc_score(m.ravel(), s.ravel())),
    "aupro": aupro,
    "pixel_metrics": lambda m, s: pixel_metrics(m, s).aupro,
}
BASELINE = "roc_auc_score"


def peak_bytes() -> int:
    """This process's maximum resident set so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(metric: str, frames: int, w: int, h: int, roi_share: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    m = np.zeros((frames, h, w), bool)
    m[frames // 2:, h // 2 - 15:h // 2 + 15, w // 2 - 20:w // 2 + 20] = True
    s = np.empty(m.shape, np.float32)
    for i in range(frames):  # drawn in float64, one frame at a time: float32 draws hold only 2^24 values
        s[i] = rng.random((h, w))
    s[m] += 0.5
    band = max(1, round(h * roi_share))
    s[:, :h // 2 - band // 2] = 0.0
    s[:, h // 2 - band // 2 + band:] = 0.0
    before = peak_bytes()
    t = time.perf_counter()
    value = float(METRICS[metric](m, s))
    return {"seconds": time.perf_counter() - t, "peak_above_data": peak_bytes() - before, "value": value}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=88, help="maps in one evaluation")
    ap.add_argument("--size", type=image_size, default=(1280, 960), help="WxH of each map")
    ap.add_argument("--roi-share", type=float, default=1.0, metavar="SHARE",
                    help="share of each map's rows inside the ROI; 0 outside it, as masked maps (default 1: none)")
    ap.add_argument("--child", choices=list(METRICS), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not 0.0 < args.roi_share <= 1.0:
        ap.error(f"--roi-share must be in (0, 1], got {args.roi_share}")
    w, h = args.size
    if args.child:
        print(json.dumps(child(args.child, args.frames, w, h, args.roi_share)))
        return
    pixels = args.frames * w * h
    print(f"{args.frames} maps of {w}x{h} ({pixels / 1e6:.0f} M pixels, float32, ROI {args.roi_share:.0%} of the "
          f"rows); {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}\n")
    print("| metric | seconds | peak above the data (MB) | bytes per pixel | memory / baseline | time / baseline |")
    print("|---|---|---|---|---|---|")
    runs = {name: json.loads(subprocess.run(
        [sys.executable, __file__, "--child", name, "--frames", str(args.frames), "--size", f"{w}x{h}",
         "--roi-share", str(args.roi_share)],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]) for name in METRICS}
    base = runs[BASELINE]
    for name, r in runs.items():
        peak = r["peak_above_data"]
        print(f"| {name}{' (baseline)' if name == BASELINE else ''} | {r['seconds']:.1f} | {peak / 1e6:.0f} | "
              f"{peak / pixels:.1f} | {peak / max(base['peak_above_data'], 1):.2f}x | "
              f"{r['seconds'] / base['seconds']:.2f}x |")


if __name__ == "__main__":
    main()
