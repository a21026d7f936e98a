"""Which backbone to use without internet: random init, SimCLR on the twin's normal frames, or a PDN
teacher distilled from either (issue 3, "Backbones without internet").

One viewpoint of the twin (the paper's setting, masked † with the reference ROI as served, template
and photometric steps on). The SimCLR weights are learned once per run from the same normal training
frames the models see (``pipeline.models.pretrain``). Variants, each over the seeds:

* PatchCore with a random trunk (BatchNorm re-estimated on the frames) vs the SimCLR trunk;
* EfficientAD-S with a random PDN teacher, a teacher distilled from the random trunk, and one
  distilled from the SimCLR trunk.

Prints mean ± std of the image and pixel metrics and each variant's pixel AUROC and AUPRO relative
to the random-backbone variant of the same model (the baseline of the same run).

    .venv/bin/python benchmarks/backbone_study.py --seeds 0 1 2 --viewpoint centre [--contrast]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from calibration.clikit import image_size
from pipeline.data.twinset import TwinSetPlan, render_twin_splits, scaled_roi_margin_px
from pipeline.metrics import mean_std
from pipeline.models.pretrain import PretrainConfig, pretrain
from pipeline.models.training import FitContext
from pipeline.preprocess import PreprocessConfig, calibrate_preprocessed, contrast_frames, train_preprocessed
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.commands.models import evaluate

#: (label, model, uses the SimCLR weights, config overrides)
VARIANTS: tuple[tuple[str, str, bool, dict[str, Any]], ...] = (
    ("patchcore, random trunk", "patchcore", False, {}),
    ("patchcore, SimCLR trunk", "patchcore", True, {}),
    ("efficientad-s, random teacher", "efficientad-s", False, {}),
    ("efficientad-s, teacher distilled from the random trunk", "efficientad-s", False, {"teacher": "distilled"}),
    ("efficientad-s, teacher distilled from the SimCLR trunk", "efficientad-s", True, {"teacher": "distilled"}),
)
COLUMNS = (("image", "auroc"), ("pixel", "auroc"), ("pixel", "aupro_0.3"), ("pixel", "f1"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--efficientad-seeds", type=int, nargs="+", default=None,
                    help="seeds of the EfficientAD variants (default: --seeds; each fit takes minutes on a CPU)")
    ap.add_argument("--viewpoint", default="centre", choices=("front", "centre", "back"))
    ap.add_argument("--size", type=image_size, default="320x240", help="frame size WIDTHxHEIGHT")
    ap.add_argument("--preset", default="tiny")
    # the sets of benchmarks/model_accuracy.py (the same defaults), so that the two tables compare
    ap.add_argument("--train-frames", type=int, default=100, help="normal training frames (5 per vehicle)")
    ap.add_argument("--val", type=int, nargs=2, default=[12, 2], metavar=("NORMAL", "PER_TYPE"),
                    help="validation frames: normal, and per defect type")
    ap.add_argument("--test", type=int, nargs=2, default=[24, 4], metavar=("NORMAL", "PER_TYPE"),
                    help="test frames: normal, and per defect type")
    ap.add_argument("--roi-margin", type=int, default=None, metavar="PX",
                    help="ROI margin around the nominal seams (default: 6 px per 640 px of frame width, as "
                         "benchmarks/model_accuracy.py)")
    ap.add_argument("--ssl-steps", type=int, default=200)
    ap.add_argument("--distill-steps", type=int, default=300)
    ap.add_argument("--models", nargs="+", choices=("patchcore", "efficientad-s"),
                    default=["patchcore", "efficientad-s"])
    ap.add_argument("--contrast", action=argparse.BooleanOptionalAction, default=False,
                    help="models see the local contrast, and SimCLR learns from it (as `xrserver pretrain --contrast`)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    variants = [v for v in VARIANTS if v[1] in args.models]
    w, h = args.size
    twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
    margin = args.roi_margin if args.roi_margin is not None else scaled_roi_margin_px(w)
    train, val, test = render_twin_splits(twin, TwinSetPlan(
        viewpoint=args.viewpoint, train_frames=args.train_frames, val_normal=args.val[0],
        val_defects_per_type=args.val[1], test_normal=args.test[0], test_defects_per_type=args.test[1],
        roi_margin_px=0))
    assert train.roi is not None, "the twin's sets carry their nominal seams"
    # the reference ROI: the first training frame's nominal seams + margin, moved with the template match
    cfg = PreprocessConfig(template=True, roi=True, roi_margin_px=margin, photometric=True, contrast=args.contrast)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        ssl_frames = contrast_frames(train.images) if args.contrast else train.images
        ssl = pretrain(ssl_frames, Path(tmp) / "simclr.pt", PretrainConfig(steps=args.ssl_steps), FitContext(seed=0))
        ssl_s = time.perf_counter() - t0
        for label, name, use_ssl, overrides in variants:
            if name == "efficientad-s" and "teacher" in overrides:
                overrides = {**overrides, "distill_steps": args.distill_steps}
            for seed in (args.efficientad_seeds or args.seeds) if name == "efficientad-s" else args.seeds:
                ctx = FitContext(seed=seed, backbone_weights=ssl.path if use_ssl else None)
                model = train_preprocessed(name, train.images, cfg, None, args.preset, ctx,
                                           seam_mask=train.roi[0], **overrides)
                model = calibrate_preprocessed(model, val.images, val.masks)
                rows.append({"variant": label, "seed": seed, **evaluate(model, test)})
    print(f"twin lower, viewpoint {args.viewpoint} at {w}x{h}, {len(train)} training frames, {len(test)} test frames; "
          f"preset {args.preset}, masked (reference ROI, seams + {margin} px), template + photometric"
          f"{' + local contrast' if args.contrast else ''}; "
          f"SimCLR {args.ssl_steps} steps ({ssl_s:.0f} s, loss "
          f"{np.mean(ssl.losses[:10]):.2f} -> {np.mean(ssl.losses[-10:]):.2f}); seeds {args.seeds} (EfficientAD "
          f"{args.efficientad_seeds or args.seeds}); "
          f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    header = " | ".join(f"{lvl} {k}" for lvl, k in COLUMNS)
    print(f"| variant | {header} | pixel AUROC / random | AUPRO / random |")
    print("|---|" + "---|" * (len(COLUMNS) + 2))
    base: dict[str, tuple[float, float]] = {}
    for label, name, _, _ in variants:
        rs = [r for r in rows if r["variant"] == label]
        cells = []
        for lvl, k in COLUMNS:
            m = mean_std([r[lvl][k] for r in rs])
            cells.append(f"{m.mean:.3f} ± {m.std:.3f}")
        auroc = float(np.mean([r["pixel"]["auroc"] for r in rs]))
        aupro = float(np.mean([r["pixel"]["aupro_0.3"] for r in rs]))
        base.setdefault(name, (auroc, aupro))
        print(f"| {label} | " + " | ".join(cells) + f" | {auroc / base[name][0]:.2f}x | {aupro / base[name][1]:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
