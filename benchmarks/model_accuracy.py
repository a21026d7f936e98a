"""Accuracy of every anomaly model on the twin's held-out vehicles, in the shape of the paper's tables.

One camera of the twin renders a training set (normal frames), a validation set and a test set
with all five defect types (``pipeline.data.twinset``). Each model -- the per-pixel Gaussian is
the trivial baseline of the same run -- is trained per seed, unmasked and masked (†: the paper's
ROI masks around the seams), calibrated on validation and scored on test. Prints mean ± std over
the seeds as Table 4 (image level), Table 6 (pixel level) and Table 8 (CPU seconds per image),
the ratio of each model's pixel AUROC and AUPRO to the baseline's, and paired t-tests of pixel
AUROC between models with Benjamini-Hochberg FDR.

    .venv/bin/python benchmarks/model_accuracy.py --preset tiny --seeds 0 1 2 --size 160x120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.twinset import TwinSetPlan, render_twin_splits
from pipeline.metrics import mean_std, paired_tests
from pipeline.models.training import FitContext
from pipeline.preprocess import PreprocessConfig, calibrate_preprocessed, predict_dataset, train_preprocessed
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.commands.models import evaluate

IMAGE = ("auroc", "au_pr", "precision", "recall", "f1")
PIXEL = ("auroc", "au_pr", "aupro_0.3", "iou", "precision", "recall", "f1", "fp_share")


def run_one(name: str, preset: str, seed: int, masked: bool, sets: Any) -> dict[str, Any]:
    train, val, test = sets
    cfg = PreprocessConfig(template=False, roi=masked, roi_margin_px=8)
    t0 = time.perf_counter()
    model = train_preprocessed(name, train.images, cfg, roi=train.roi if masked else None, preset=preset,
                               ctx=FitContext(seed=seed))
    model = calibrate_preprocessed(model, val.images, val.masks, roi=val.roi if masked else None)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    predict_dataset(model, test.images, test.roi if masked else None, batch_size=1)
    s_per_image = (time.perf_counter() - t1) / len(test)
    metrics = evaluate(model, test, test.roi if masked else None)
    return {"model": name, "seed": seed, "masked": masked, "fit_s": fit_s, "s_per_image": s_per_image, **metrics}


def _cell(values: list[float]) -> str:
    m = mean_std(values)
    return f"{m.mean:.3f} ± {m.std:.3f}"


def tables(runs: list[dict[str, Any]], models: list[str]) -> str:
    out: list[str] = []
    groups = [(m, k) for k in (False, True) for m in models]

    def pick(model: str, masked: bool) -> list[dict[str, Any]]:
        return [r for r in runs if r["model"] == model and r["masked"] == masked]

    label = {False: "", True: " †"}
    out += ["Table 4 (image level, mean ± std over seeds)", "",
            "| model | " + " | ".join(IMAGE) + " |", "|---|" + "---|" * len(IMAGE)]
    for m, k in groups:
        rs = pick(m, k)
        out.append(f"| {m}{label[k]} | " + " | ".join(_cell([r["image"][c] for r in rs]) for c in IMAGE) + " |")
    out += ["", "Table 6 (pixel level; AUPRO up to FPR 0.3; P/R/F1 at the IoU-maximising threshold)", "",
            "| model | " + " | ".join(PIXEL) + " |", "|---|" + "---|" * len(PIXEL)]
    for m, k in groups:
        rs = pick(m, k)
        out.append(f"| {m}{label[k]} | " + " | ".join(_cell([r["pixel"][c] for r in rs]) for c in PIXEL) + " |")
    out += ["", "Table 8 (CPU seconds per image at this size, batch 1, ONNX Runtime, with preprocessing; the paper's "
            "figure is an RTX 3090 at full size, for reference only)", "",
            "| model | s/image | / baseline (same run) | paper s/image |", "|---|---|---|---|"]
    paper = {"patchcore": 3.33, "memseg": 0.17, "efficientad-s": 0.09, "efficientad-m": 0.10, "simplenet": 0.26}
    base_s = float(np.mean([r["s_per_image"] for r in pick("gaussian", False)] or [np.nan]))
    for m in models:
        s = float(np.mean([r["s_per_image"] for r in pick(m, False)]))
        out.append(f"| {m} | {s:.4f} | {s / base_s:.1f}x | {paper.get(m, '-')} |")
    out += ["", "Against the trivial baseline (per-pixel Gaussian, same run, same mask setting)", "",
            "| model | pixel AUROC / baseline | AUPRO / baseline | beats baseline (pixel AUROC) |", "|---|---|---|---|"]
    for m, k in groups:
        if m == "gaussian":
            continue
        a = np.mean([r["pixel"]["auroc"] for r in pick(m, k)])
        b = np.mean([r["pixel"]["auroc"] for r in pick("gaussian", k)])
        pa = np.mean([r["pixel"]["aupro_0.3"] for r in pick(m, k)])
        pb = np.mean([r["pixel"]["aupro_0.3"] for r in pick("gaussian", k)])
        out.append(f"| {m}{label[k]} | {a / b:.2f}x | {pa / max(pb, 1e-9):.2f}x | {'yes' if a > b else 'no'} |")
    for k in (False, True):
        per_model = {m: [r["pixel"]["auroc"] for r in sorted(pick(m, k), key=lambda r: r["seed"])] for m in models}
        out += ["", f"Paired t-tests of pixel AUROC over seeds{label[k]} (Benjamini-Hochberg FDR)", "",
                "| a | b | mean a - b | t | p | p (BH) |", "|---|---|---|---|---|---|"]
        for t in paired_tests(per_model):
            out.append(f"| {t.model_a} | {t.model_b} | {t.mean_diff:+.3f} | {t.t:.2f} | {t.p:.3g} | {t.p_bh:.3g} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--camera", default="lower")
    ap.add_argument("--models", nargs="+",
                    default=["gaussian", "patchcore", "efficientad-s", "efficientad-m", "simplenet", "memseg"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    t0 = time.perf_counter()
    twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
    sets = render_twin_splits(twin, TwinSetPlan(camera_id=args.camera))
    render_s = time.perf_counter() - t0
    runs = [run_one(m, args.preset, seed, masked, sets)
            for masked in (False, True) for m in args.models for seed in args.seeds]
    train, _, test = sets
    print(f"twin camera {args.camera} at {w}x{h}: {len(train)} training frames, {len(test)} test frames "
          f"({int(test.labels.sum())} with defects of all five types); preset {args.preset}; seeds {args.seeds}; "
          f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"rendering {render_s:.0f} s")
    print()
    print(tables(runs, args.models))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, default=str))


if __name__ == "__main__":
    main()
