"""``xrserver train | eval | export`` (and the same under ``xrserver models``): anomaly models on the
twin or on any MVTec-layout folder.

``train`` fits a model on the normal training frames, calibrates its thresholds on the validation
split (the twin export's ``validation/``, else every third test image), evaluates on the test split
and writes a verified artifact (weights, ``model.onnx``, ``manifest.json`` with the metrics and the
preprocessing) that a server config names under ``models:``. ``eval`` scores an artifact on a test
split with the preprocessing it was trained with. ``export`` (re)writes ``model.onnx`` of an artifact
and checks torch-vs-ONNX Runtime parity. ``--roi/--no-roi`` and ``--template/--no-template`` switch
the paper's preprocessing (§4.1, §4.4) so that masked (†) and unmasked runs compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.data.mvtec import AnomalySet, MvtecSplits, read_mvtec
from pipeline.evaluation import Predictions, write_report
from pipeline.metrics import (
    auroc_by_type,
    auroc_interval,
    fn_size_tertiles,
    image_metrics,
    peak_in_defect_by_type,
    pixel_metrics,
)
from pipeline.metrics.sizes import area_ratio
from pipeline.models import MODELS, ConfigError, FitContext, ModelError, TrainedModel, make_config
from pipeline.models.backbones import BACKBONES
from pipeline.models.export import export_artifact
from pipeline.models.pretrain import PretrainConfig, pretrain
from pipeline.models.registry import parse_options
from pipeline.preprocess import (
    PreprocessConfig,
    PreprocessedModel,
    calibrate_preprocessed,
    contrast_frames,
    load_preprocessed,
    predict_dataset,
    save_preprocessed,
    train_preprocessed,
    widen_each,
)
from pipeline.preprocess.contrast import check_contrast_sizes
from xrserver.commands.common import (
    add_json_arg,
    image_size,
    non_negative_int,
    positive_int,
    progress_bar,
    write_json,
)
from xrserver.errors import CliError

log = logging.getLogger(__name__)
#: where the ROI of masked runs comes from (``--roi-source``)
ROI_SOURCES = ("reference", "frame")

Handler = Callable[[argparse.Namespace], int]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the documented top-level ``train``, ``eval``, ``export`` and the ``models`` group
    (``list`` and the same three actions, for existing scripts). Both share parsers and handlers."""
    for name, help_text, add in _ACTIONS:
        add(sub.add_parser(name, help=help_text, description=help_text))
    p = sub.add_parser("models", help="list models; train/eval/export (same as the top-level commands)",
                       description=__doc__.splitlines()[0] if __doc__ else None)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    msub.add_parser("list", help="models and their presets").set_defaults(func=cmd_list)
    for name, help_text, add in _ACTIONS:
        add(msub.add_parser(name, help=help_text, description=help_text))


def _add_data_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="MVTec-layout folder (e.g. from `xrserver twin export`)")
    src.add_argument("--twin", metavar="CAMERA", help="render the splits of this twin camera in memory (e.g. lower)")
    p.add_argument("--twin-size", type=image_size, default=(320, 240), help="twin image size WIDTHxHEIGHT (320x240)")
    p.add_argument("--twin-seed", type=non_negative_int, default=0, help="twin seed (default 0)")
    p.add_argument("--twin-train-frames", type=positive_int, default=12, help="normal training frames (12)")
    p.add_argument("--twin-val", type=positive_int, nargs=2, default=(4, 1), metavar=("NORMAL", "PER_TYPE"),
                   help="validation frames, on which the thresholds are fitted: normal, and defects per type (4 1; "
                        "the accuracy benchmark's 12 2 for an artifact to serve)")
    p.add_argument("--twin-test", type=positive_int, nargs=2, default=(6, 2), metavar=("NORMAL", "PER_TYPE"),
                   help="test frames: normal, and defects per type (6 2)")
    p.add_argument("--twin-viewpoint", choices=("front", "centre", "back"), default=None,
                   help="the paper's setting: every frame at the station where this sub-region faces the camera, "
                        "defects on its seams (default: frames over the whole pass)")


def _add_preprocess_switches(p: argparse.ArgumentParser, *, train: bool) -> None:
    g = p.add_argument_group("preprocessing (paper §4.1, §4.4)")
    roi_help = ("zero input and anomaly map outside the ROI (seams + margin); default: on when the data has ROI "
                "masks or --seam-mask is given" if train else "ROI masking as trained (default) or --no-roi to skip it")
    tpl_help = ("match the view's template (cut from the first training frame) and reject frames below "
                "--template-threshold; default off" if train else
                "template matching as trained (default) or --no-template to skip it")
    g.add_argument("--roi", action=argparse.BooleanOptionalAction, default=None, help=roi_help)
    g.add_argument("--template", action=argparse.BooleanOptionalAction, default=None, help=tpl_help)
    g.add_argument("--photometric", action=argparse.BooleanOptionalAction, default=None,
                   help="standardise each frame's colour channels first (paint, light, exposure); default off"
                   if train else "the photometric step as trained (default) or --no-photometric to skip it")
    g.add_argument("--roi-source", choices=ROI_SOURCES, default=None,
                   help="ROI for masking: 'reference' = the first training frame's seams moved with the template "
                        "match (the paper's mask, and what a served model uses); 'frame' = each frame's own masks "
                        "in the data's roi/ folder (frames that are not aligned, e.g. the twin's whole pass). "
                        "Default: reference with template matching, frame without")
    if train:
        g.add_argument("--contrast", action="store_true",
                       help="the model sees each pixel's colour distance from its neighbourhood's median instead of "
                            "its colour: sealant stands out from paint whatever either colour is (window and "
                            "pooling scaled to the frame width); default off")
        g.add_argument("--contrast-pool", type=positive_int, default=None, metavar="PX",
                       help="the contrast step's max-pool (odd px; 1 = none). Default: the model's own, 1 for "
                            "seamseg, else 3 px per 640 px of frame width")
        g.add_argument("--roi-margin", type=non_negative_int, default=8, metavar="PX",
                       help="widen seam/ROI masks by this many pixels (8)")
        g.add_argument("--seam-mask", type=Path, default=None,
                       help="seam mask image of the first training frame (non-zero = sealant), for folders "
                            "without roi/ masks")
        g.add_argument("--template-threshold", type=float, default=0.7, help="TM_CCOEFF_NORMED threshold (0.7)")
        g.add_argument("--template-box", type=_box, default=None, metavar="X,Y,W,H",
                       help="template crop in the first training frame (default: centred half-size box)")


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--preset", default="tiny", help="preset (tiny: CPU-sized; paper: Table 3 settings)")
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--input-size", type=image_size, default=None, metavar="WxH",
                   help="the model's input size (default: the preset's, e.g. SeamSeg tiny 160x120); the "
                        "frame's own size keeps its detail, e.g. 640x480 for a 640x480 twin")
    p.add_argument("--backbone-weights", type=Path, default=None, help="local torchvision state dict (optional)")
    p.add_argument("--station-travel-m", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="the conveyor travel (m) at which the station camera takes this model's frames: a server "
                        "scores a frame with it only when the vehicle is there, 1 cm either side. Default with "
                        "--twin-viewpoint: the station's, within the twin's trigger jitter; else at any travel")
    p.add_argument("--set", dest="options", nargs="+", default=[], metavar="OPTION=VALUE",
                   help="change an option of the preset's model config (VALUE a Python literal), e.g. "
                        "--set steps=3000; the manifest records the config")
    _add_preprocess_switches(p, train=True)
    add_json_arg(p)
    p.set_defaults(func=cmd_train)


def _add_pretrain(p: argparse.ArgumentParser) -> None:
    _add_data_args(p)
    p.add_argument("--out", type=Path, required=True, help="state dict to write (torchvision format, stem..layer3)")
    p.add_argument("--backbone", choices=BACKBONES, default="resnet18")
    p.add_argument("--steps", type=positive_int, default=300, help="optimiser steps (300)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="crops per step (32)")
    p.add_argument("--crop", type=positive_int, default=64, help="crop side in px (64)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--contrast", action="store_true",
                   help="pretrain on the local contrast of the frames: for a backbone that models trained with "
                        "--contrast will use; default off (the colour frames)")
    add_json_arg(p)
    p.set_defaults(func=cmd_pretrain)


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", type=Path, required=True)
    _add_data_args(p)
    p.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    p.add_argument("--report", type=Path, default=None, metavar="DIR",
                   help="write the paper's figures here: ROC/PR curves, heatmap grid, misclassified samples")
    _add_preprocess_switches(p, train=False)
    add_json_arg(p)
    p.set_defaults(func=cmd_eval)


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", type=Path, required=True)
    p.add_argument("--out", type=Path, default=None,
                   help="write the ONNX file here instead of refreshing the artifact's model.onnx")
    p.add_argument("--probe", type=positive_int, default=2, help="random frames for the parity check (2)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random probe frames")
    add_json_arg(p)
    p.set_defaults(func=cmd_export)


_ACTIONS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    ("train", "train, calibrate, evaluate and save an anomaly-model artifact", _add_train),
    ("eval", "evaluate an artifact on a test split", _add_eval),
    ("export", "(re)write an artifact's model.onnx and check ONNX Runtime parity", _add_export),
    ("pretrain", "self-supervised (SimCLR) backbone weights from the normal training frames, for "
     "--backbone-weights where no ImageNet weights can be downloaded", _add_pretrain),
)


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H in pixels, got {text!r}") from None
    return (x, y, w, h)


def cmd_list(args: argparse.Namespace) -> int:
    for name, entry in sorted(MODELS.items()):
        print(f"{name:<15} {entry.version:<6} presets: {', '.join(sorted(entry.presets))}  - {entry.summary}")
    return 0


# --- data -----------------------------------------------------------------------------------------

def _read(args: argparse.Namespace, train_only: bool = False) -> MvtecSplits:
    """The MVTec folder ``--data``, else the twin's splits (only the training frames with ``train_only``)."""
    if args.data is not None:
        try:
            return read_mvtec(args.data)
        except (ValueError, OSError) as e:
            raise CliError(f"--data {args.data}: {e}") from None
    return _render_twin(args, train_only)


def _render_twin(args: argparse.Namespace, train_only: bool) -> MvtecSplits:
    from pipeline.data.twinset import TwinSetPlan, render_twin_splits, station_travel
    from pipeline.twin import DigitalTwin, TwinConfig

    w, h = args.twin_size
    twin = DigitalTwin(TwinConfig(seed=args.twin_seed, width_px=w, height_px=h))
    # margin 0: the ROI masks are the seams themselves, widened by the preprocessing's own margin
    (val_normal, val_per_type), (test_normal, test_per_type) = args.twin_val, args.twin_test
    plan = TwinSetPlan(camera_id=args.twin, train_frames=args.twin_train_frames, roi_margin_px=0,
                       viewpoint=args.twin_viewpoint, val_normal=val_normal, val_defects_per_type=val_per_type,
                       test_normal=test_normal, test_defects_per_type=test_per_type)
    if train_only:
        plan = dataclasses.replace(plan, val_normal=0, val_defects_per_type=0, test_normal=0, test_defects_per_type=0)
    if args.twin not in twin.rig.camera_ids:
        raise CliError(f"--twin {args.twin}: unknown camera; the twin has {list(twin.rig.camera_ids)}")
    n_types = len(plan.defect_types)
    total = (plan.train_frames + plan.val_normal + plan.test_normal
             + n_types * (plan.val_defects_per_type + plan.test_defects_per_type))
    with progress_bar(total, f"twin {args.twin}") as bar:
        def tick(n: int) -> None:
            bar.update(n)

        train, val, test = render_twin_splits(twin, plan, progress=tick)
    where = f"twin:{args.twin}" + (f":{args.twin_viewpoint}" if args.twin_viewpoint else "")
    station = None
    if args.twin_viewpoint is not None:
        s = station_travel(twin, args.twin, args.twin_viewpoint)
        station = (s - plan.station_jitter_m, s + plan.station_jitter_m)
    return MvtecSplits(train, val, test, where, "twin validation vehicles", station)


def _seam_mask(path: Path, shape_hw: tuple[int, int]) -> npt.NDArray[np.bool_]:
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise CliError(f"--seam-mask {path}: not a readable image")
    if m.shape != shape_hw:
        raise CliError(f"--seam-mask {path} is {m.shape[1]}x{m.shape[0]} px, the frames {shape_hw[1]}x{shape_hw[0]}")
    return np.asarray(m > 0)


def _frame_rois(split: AnomalySet, config: PreprocessConfig, source: str | None) -> npt.NDArray[np.bool_] | None:
    """The split's per-frame ROI masks widened by the margin where ``source`` (default: ``frame``
    without template matching) asks for them; None = the reference ROI (or no masking)."""
    if config.roi and source == "frame" and split.roi is None:
        raise CliError("--roi-source frame needs per-frame ROI masks in the data (roi/<split>/<type>/*.png)")
    if source is None:
        source = "reference" if config.template else "frame"
    if not config.roi or source == "reference" or split.roi is None:
        return None
    return widen_each(split.roi, config.roi_margin_px)


# --- evaluation -----------------------------------------------------------------------------------

def evaluate(model: PreprocessedModel, test: AnomalySet, roi: npt.NDArray[np.bool_] | None = None,
             report_dir: Path | None = None, title: str = "", per_image: bool = False) -> dict[str, Any]:
    """Image and pixel metrics of the paper on ``test`` (needs normal and anomalous frames).

    Frames rejected by template matching are left out and counted under ``n_rejected``. With
    ``per_image``, ``per_image`` holds each scored frame's name, defect type and image score, in order
    (which frames a model missed, and what lets two models be compared frame by frame).
    ``fn_tertiles`` counts the missed anomalous images (at the image operating point) per size
    tertile of the defect's area ratio (Eqs. 14-15); ``image_auroc_by_type`` ranks each defect type
    against the normal frames, and ``peak_in_defect_by_type`` gives the share of each type's frames
    whose map peaks inside the defect. With ``report_dir``, the paper's figures
    (ROC/PR curves, heatmap grid, misclassified samples) are written there too.
    """
    with progress_bar(len(test), "eval") as bar:
        scores, maps, ok = [], [], []
        for i in range(0, len(test), 4):
            s, m, a = predict_dataset(model, test.images[i:i + 4], None if roi is None else roi[i:i + 4])
            scores.append(s)
            maps.append(m)
            ok.append(a)
            bar.update(len(s))
    keep = np.concatenate(ok)
    s_all, m_all = np.concatenate(scores)[keep], np.concatenate(maps)[keep]
    labels, masks = test.labels[keep], test.masks[keep]
    img = image_metrics(labels, s_all)
    out: dict[str, Any] = {"n_images": int(keep.sum()), "n_anomalous": int(labels.sum()),
                           "n_rejected": int((~keep).sum()),
                           "image": {"auroc": img.auroc, "au_pr": img.au_pr, "precision": img.precision,
                                     "recall": img.recall, "f1": img.f1, "fp_share": img.fp_share,
                                     "threshold": img.point.threshold, "auroc_ci95": auroc_interval(labels, s_all)}}
    types = tuple(t for t, k in zip(test.types, keep, strict=True) if k)
    names = tuple(n for n, k in zip(test.names, keep, strict=True) if k)
    if per_image:
        out["per_image"] = {"names": list(names), "types": list(types), "scores": s_all.tolist()}
    if by_type := auroc_by_type(types, s_all):
        out["image_auroc_by_type"] = by_type
    missed = labels & (s_all < img.point.threshold)
    if labels.any():
        t = fn_size_tertiles(["test"] * int(labels.sum()), [area_ratio(m) for m in masks[labels]], missed[labels])[0]
        out["fn_tertiles"] = {"b1": t.b1, "b2": t.b2, "fn": [t.fn_small, t.fn_medium, t.fn_large],
                              "n": [t.n_small, t.n_medium, t.n_large]}
    if masks.any():
        pix = pixel_metrics(masks, m_all)
        out["peak_in_defect_by_type"] = peak_in_defect_by_type(types, m_all, masks)
        out["pixel"] = {"auroc": pix.auroc, "au_pr": pix.au_pr, "aupro_0.3": pix.aupro, "iou": pix.iou,
                        "precision": pix.precision, "recall": pix.recall, "f1": pix.f1, "fp_share": pix.fp_share,
                        "threshold": pix.point.threshold}
        if report_dir is not None:
            pred = Predictions(test.images[keep], masks, labels, s_all, m_all, types, img.point.threshold,
                               pix.point.threshold, title, names)
            out["figures"] = write_report(pred, report_dir)
    return out


def _roi_source(config: PreprocessConfig, frame_rois: npt.NDArray[np.bool_] | None) -> str | None:
    """Which ROI masked the frames, for the output: ``frame``, ``reference`` or None (no masking)."""
    return None if not config.roi else "frame" if frame_rois is not None else "reference"


def _print_metrics(m: dict[str, Any]) -> None:
    lo, hi = m["image"]["auroc_ci95"]
    parts = [f"image AUROC {m['image']['auroc']:.3f} (95% bootstrap interval over the test images {lo:.3f}-{hi:.3f}), "
             f"F1 {m['image']['f1']:.3f}"]
    if "pixel" in m:
        parts.append(f"pixel AUROC {m['pixel']['auroc']:.3f}, AUPRO {m['pixel']['aupro_0.3']:.3f}, "
                     f"IoU {m['pixel']['iou']:.3f}")
    rejected = f", {m['n_rejected']} rejected by the template" if m.get("n_rejected") else ""
    print(f"test ({m['n_images']} images, {m['n_anomalous']} anomalous{rejected}): " + "; ".join(parts))
    if "fn_tertiles" in m:
        t = m["fn_tertiles"]
        print("missed by defect size (small/medium/large area tertiles): "
              + ", ".join(f"{fn}/{n}" for fn, n in zip(t["fn"], t["n"], strict=True)))
    if "image_auroc_by_type" in m:
        print("image AUROC by defect type: "
              + ", ".join(f"{t} {a:.3f}" for t, a in m["image_auroc_by_type"].items()))
    if m.get("peak_in_defect_by_type"):
        print("maps peaking inside the defect, by type: "
              + ", ".join(f"{t} {100 * a:.0f}%" for t, a in m["peak_in_defect_by_type"].items()))
    for name, path in m.get("figures", {}).items():
        print(f"figure {name}: {path}")


# --- handlers -------------------------------------------------------------------------------------

def _train_config(args: argparse.Namespace,
                  splits: MvtecSplits) -> tuple[PreprocessConfig, npt.NDArray[np.bool_] | None]:
    """The preprocessing config and the reference seam mask (None when ROI masking is off)."""
    seams: npt.NDArray[np.bool_] | None = None
    if args.seam_mask is not None:
        seams = _seam_mask(args.seam_mask, splits.train.images.shape[1:3])
    elif splits.train.roi is not None:
        seams = splits.train.roi[0]
    use_roi = args.roi if args.roi is not None else seams is not None
    if use_roi and seams is None:
        raise CliError(f"--roi needs ROI masks in the data ({splits.root}/roi/train/good/*.png) or --seam-mask")
    try:
        cfg = PreprocessConfig(template=bool(args.template), template_threshold=args.template_threshold,
                               template_box_xywh=args.template_box, roi=use_roi, roi_margin_px=args.roi_margin,
                               photometric=bool(args.photometric), contrast=args.contrast,
                               contrast_pool_px=args.contrast_pool)
    except ModelError as e:
        raise CliError(str(e)) from None
    return cfg, seams


def cmd_train(args: argparse.Namespace) -> int:
    try:  # before the data is read (or rendered)
        make_config(args.model, args.preset)
    except ConfigError as e:
        raise CliError(str(e)) from None
    try:
        options = parse_options(args.options)
        if args.input_size is not None:
            if "input_size_wh" in options:
                raise CliError("give the input size once: --input-size or --set input_size_wh=..., not both")
            options["input_size_wh"] = args.input_size
        in_w, in_h = make_config(args.model, args.preset, **options).input_size_wh
    except ConfigError as e:
        raise CliError(f"--set: {e}") from None
    if args.station_travel_m is not None:
        lo, hi = args.station_travel_m
        if not (np.isfinite([lo, hi]).all() and lo <= hi):
            raise CliError(f"--station-travel-m: MIN <= MAX, both finite, got {lo} {hi}")
    if args.contrast_pool is not None:
        if not args.contrast:
            raise CliError("--contrast-pool needs --contrast")
        try:
            check_contrast_sizes(None, args.contrast_pool)
        except ModelError as e:
            raise CliError(f"--contrast-pool: {e}") from None
    splits = _read(args)
    h, w = splits.train.images.shape[1:3]
    if w >= 2 * in_w and h >= 2 * in_h:
        log.warning("the %dx%d frames are shrunk to the %s input of %dx%d, which loses beads and holes of a few "
                    "pixels; --input-size %dx%d keeps their detail", w, h, args.preset, in_w, in_h, w, h)
    cfg, seams = _train_config(args, splits)
    rois = {name: _frame_rois(s, cfg, args.roi_source)
            for name, s in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))}
    t0 = time.perf_counter()
    try:
        with progress_bar(1, f"train {args.model}") as bar:
            def tick(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            ctx = FitContext(seed=args.seed, backbone_weights=args.backbone_weights, progress=tick)
            model = train_preprocessed(args.model, splits.train.images, cfg, rois["train"], args.preset, ctx,
                                       seam_mask=seams, **options)
        model = calibrate_preprocessed(model, splits.validation.images, splits.validation.masks,
                                       splits.validation.labels, rois["validation"])
        metrics = evaluate(model, splits.test, rois["test"])
        if isinstance(model.inner, TrainedModel):
            model.inner.metrics.update({"test": metrics, "validation_source": splits.validation_source})
            station = args.station_travel_m or splits.station_travel_m
            if station is not None:  # where a server lets it score (xrserver.heatmaps.station_travel)
                model.inner.training["station_travel_m"] = [float(v) for v in station]
        manifest = save_preprocessed(model, args.out)
    except ModelError as e:
        raise CliError(str(e)) from None
    _print_metrics(metrics)
    print(f"preprocessing: {model.preprocessor.describe()}"
          + (f"; ROI {_roi_source(cfg, rois['test'])}" if cfg.roi else ""))
    print(f"artifact written to {args.out} ({time.perf_counter() - t0:.1f} s)")
    write_json(args.json, {"artifact": str(args.out), "model": args.model, "preset": args.preset,
                           "data": splits.root, "preprocess": manifest.get("preprocess"),
                           "roi_source": _roi_source(cfg, rois["test"]),
                           "metrics": metrics, "manifest": manifest})
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    try:  # before minutes of training: the weights must have somewhere to go
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"--out {args.out}: cannot write the weights: {e}") from None
    splits = _read(args, train_only=True)
    try:
        cfg = PretrainConfig(backbone=args.backbone, crop_px=args.crop, batch_size=args.batch_size, steps=args.steps)
        with progress_bar(args.steps, f"pretrain {args.backbone}", unit="step") as bar:
            def tick(done: int, total: int) -> None:
                bar.n = done
                bar.refresh()

            t0 = time.perf_counter()
            images = contrast_frames(splits.train.images) if args.contrast else splits.train.images
            result = pretrain(images, args.out, cfg, FitContext(seed=args.seed, progress=tick))
    except ModelError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"--out {args.out}: cannot write the weights: {e}") from None
    k = max(1, len(result.losses) // 10)
    first, last = float(np.mean(result.losses[:k])), float(np.mean(result.losses[-k:]))
    what = "the local contrast of " if args.contrast else ""
    print(f"SimCLR on {what}{result.n_images} normal frames of {splits.root}: loss {first:.3f} -> {last:.3f} "
          f"({time.perf_counter() - t0:.0f} s); weights in {args.out} (use --backbone-weights {args.out})")
    write_json(args.json, {"weights": str(args.out), "backbone": args.backbone, "data": splits.root,
                           "contrast": args.contrast, "n_images": result.n_images, "steps": args.steps,
                           "loss_first": first, "loss_last": last})
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    splits = _read(args)
    try:
        model = load_preprocessed(args.artifact, runtime=args.runtime)
    except ModelError as e:
        raise CliError(str(e)) from None
    pre = model.preprocessor
    for flag, trained in (("roi", pre.config.roi), ("template", pre.config.template),
                          ("photometric", pre.config.photometric)):
        if getattr(args, flag) and not trained:
            raise CliError(f"--{flag}: artifact {args.artifact} was trained without it; retrain with --{flag}")
    if False in (args.roi, args.template, args.photometric):  # an ablation: skip a step the model was trained with
        model = PreprocessedModel(model.inner, pre.without(roi=args.roi is False, template=args.template is False,
                                                           photometric=args.photometric is False),
                                  model.calibration)
    roi = _frame_rois(splits.test, model.preprocessor.config, args.roi_source)
    try:
        metrics = evaluate(model, splits.test, roi, args.report, f"{args.artifact.name} on {splits.root}",
                           per_image=True)
    except (ModelError, ValueError) as e:
        raise CliError(f"eval on {splits.root}: {e}") from None
    _print_metrics(metrics)
    write_json(args.json, {"artifact": str(args.artifact), "runtime": args.runtime, "data": splits.root,
                           "preprocess": {"roi": model.preprocessor.config.roi,
                                          "template": model.preprocessor.config.template,
                                          "photometric": model.preprocessor.config.photometric,
                                          "contrast": model.preprocessor.config.contrast,
                                          "roi_source": _roi_source(model.preprocessor.config, roi)},
                           "metrics": metrics})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        report = export_artifact(args.artifact, args.out, n_probe=args.probe, seed=args.seed)
    except ModelError as e:
        raise CliError(str(e)) from None
    print(f"wrote {report.onnx_path}: max abs diff {report.max_abs_diff:.3g} "
          f"(parity error {report.parity_error:.3g} <= tolerance {report.tolerance:g} on {report.n_probe} "
          f"random frames)" + ("; manifest refreshed" if report.manifest_refreshed else ""))
    write_json(args.json, {"artifact": str(args.artifact), "onnx": report.onnx_path,
                           "max_abs_diff": report.max_abs_diff, "parity_error": report.parity_error,
                           "tolerance": report.tolerance, "n_probe": report.n_probe,
                           "manifest_refreshed": report.manifest_refreshed})
    return 0
