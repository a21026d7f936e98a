"""``xrserver models``: train, evaluate and list anomaly models on an MVTec-layout folder.

``train`` fits a model on ``train/good``, calibrates its thresholds on the validation split
(the twin export's ``validation/``, else every third test image), evaluates on ``test/`` and
writes a verified artifact (weights, ``model.onnx``, ``manifest.json`` with the metrics) that a
server config names under ``models:``. ``eval`` scores an artifact on a folder's test split.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from pipeline.data.mvtec import AnomalySet, read_mvtec
from pipeline.metrics import image_metrics, pixel_metrics
from pipeline.models import (
    MODELS,
    FitContext,
    InferenceModel,
    ModelError,
    calibrate,
    load_model,
    predict_all,
    save,
    train,
)
from xrserver.commands.common import add_json_arg, non_negative_int, write_json
from xrserver.errors import CliError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="train, evaluate and list anomaly models",
                       description=__doc__.splitlines()[0] if __doc__ else None)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True

    lp = msub.add_parser("list", help="models and their presets")
    lp.set_defaults(func=cmd_list)

    tp = msub.add_parser("train", help="train, calibrate, evaluate and save an artifact")
    tp.add_argument("--model", required=True, choices=sorted(MODELS))
    tp.add_argument("--preset", default="tiny", help="preset (tiny: CPU-sized; paper: Table 3 settings)")
    tp.add_argument("--data", type=Path, required=True, help="MVTec-layout folder (e.g. from `xrserver twin export`)")
    tp.add_argument("--out", type=Path, required=True, help="artifact directory to write")
    tp.add_argument("--seed", type=non_negative_int, default=0)
    tp.add_argument("--backbone-weights", type=Path, default=None, help="local torchvision state dict (optional)")
    add_json_arg(tp)
    tp.set_defaults(func=cmd_train)

    ep = msub.add_parser("eval", help="evaluate an artifact on a folder's test split")
    ep.add_argument("--artifact", type=Path, required=True)
    ep.add_argument("--data", type=Path, required=True)
    ep.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    add_json_arg(ep)
    ep.set_defaults(func=cmd_eval)


def cmd_list(args: argparse.Namespace) -> int:
    for name, entry in sorted(MODELS.items()):
        print(f"{name:<15} {entry.version:<6} presets: {', '.join(sorted(entry.presets))}  - {entry.summary}")
    return 0


def evaluate(model: InferenceModel, test: AnomalySet) -> dict[str, Any]:
    """Image and pixel metrics of the paper on ``test`` (needs normal and anomalous images)."""
    scores, maps = predict_all(model, test.images)
    img = image_metrics(test.labels, scores)
    out: dict[str, Any] = {"n_images": len(test), "n_anomalous": int(test.labels.sum()),
                           "image": {"auroc": img.auroc, "au_pr": img.au_pr, "precision": img.precision,
                                     "recall": img.recall, "f1": img.f1, "fp_share": img.fp_share}}
    if test.masks.any():
        pix = pixel_metrics(test.masks, maps)
        out["pixel"] = {"auroc": pix.auroc, "au_pr": pix.au_pr, "aupro_0.3": pix.aupro, "iou": pix.iou,
                        "precision": pix.precision, "recall": pix.recall, "f1": pix.f1, "fp_share": pix.fp_share}
    return out


def _read(data: Path) -> Any:
    try:
        return read_mvtec(data)
    except (ValueError, OSError) as e:
        raise CliError(f"--data {data}: {e}") from None


def _print_metrics(m: dict[str, Any]) -> None:
    parts = [f"image AUROC {m['image']['auroc']:.3f}, F1 {m['image']['f1']:.3f}"]
    if "pixel" in m:
        parts.append(f"pixel AUROC {m['pixel']['auroc']:.3f}, AUPRO {m['pixel']['aupro_0.3']:.3f}, "
                     f"IoU {m['pixel']['iou']:.3f}")
    print(f"test ({m['n_images']} images, {m['n_anomalous']} anomalous): " + "; ".join(parts))


def cmd_train(args: argparse.Namespace) -> int:
    splits = _read(args.data)
    ctx = FitContext(seed=args.seed, backbone_weights=args.backbone_weights)
    try:
        model = train(args.model, splits.train.images, preset=args.preset, ctx=ctx)
        model = calibrate(model, splits.validation.images, splits.validation.masks, splits.validation.labels)
        metrics = evaluate(model, splits.test)
        model.metrics.update({"test": metrics, "validation_source": splits.validation_source})
        manifest = save(model, args.out)
    except ModelError as e:
        raise CliError(str(e)) from None
    _print_metrics(metrics)
    print(f"artifact written to {args.out}")
    write_json(args.json, {"artifact": str(args.out), "model": args.model, "preset": args.preset,
                           "metrics": metrics, "manifest": manifest})
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    splits = _read(args.data)
    try:
        model = load_model(args.artifact, runtime=args.runtime)
        metrics = evaluate(model, splits.test)
    except ModelError as e:
        raise CliError(str(e)) from None
    _print_metrics(metrics)
    write_json(args.json, {"artifact": str(args.artifact), "runtime": args.runtime, "metrics": metrics})
    return 0
