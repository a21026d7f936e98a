"""Accuracy of every anomaly model on the twin's held-out vehicles, in the shape of the paper's tables.

As in the paper, each viewpoint of the lower camera ("front", "centre", "back": the conveyor station
where that sub-region faces the camera, with trigger jitter) gets its own training set (normal
frames), validation set and test set with all five defect types on that sub-region's seams
(``pipeline.data.twinset``), and its own model. Each model -- the per-pixel Gaussian is the trivial
baseline of the same run -- is trained per seed and viewpoint, unmasked and masked (†: the paper's
ROI masks around the seams), calibrated on validation and scored on test; the template matching and
the photometric step are on in both unless switched off. Prints mean ± std over the seeds (each
seed's metrics averaged over the viewpoints, as the paper's tables) as Table 4 (image level),
Table 6 (pixel level) and Table 8 (CPU seconds per image), the ratio of each model's pixel AUROC and
AUPRO to the baseline's, the missed defects per size tertile, the image AUROC per defect type, the
share of each type's defect images whose map peaks inside the defect, and paired t-tests of pixel
AUROC between models with Benjamini-Hochberg FDR. ``--report DIR`` writes the paper's figures for
seed 0.

    .venv/bin/python benchmarks/model_accuracy.py --preset tiny --seeds 0 1 2 --size 320x240 --report out/report

``--set MODEL.OPTION=VALUE ...`` changes a model's config for the run (e.g. ``--set
seamseg.strand_opacity=0.55``); the saved runs record it.
``--extra-train N`` adds N normal training frames of other vehicles and keeps the validation and test
frames, so that ``--compare`` pairs a run on more normal data with one without.

Runs are long on a CPU, so seeds may be measured in separate runs: ``--from-json A.json B.json``
prints the same tables from the runs those ``--json`` files saved, without rendering or training.
It refuses files whose runs overlap, were made with other settings, or cover other viewpoints or seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from calibration.clikit import image_size
from pipeline.data.mvtec import AnomalySet
from pipeline.data.twinset import TwinSetPlan, render_twin_splits, scaled_roi_margin_px
from pipeline.metrics import AurocDifference, auroc_difference, mean_std, paired_tests
from pipeline.models import MODELS
from pipeline.models.api import TrainedModel
from pipeline.models.errors import ConfigError
from pipeline.models.registry import config_to_dict, make_config, parse_options
from pipeline.models.training import FitContext
from pipeline.preprocess import (
    PreprocessConfig,
    PreprocessError,
    calibrate_preprocessed,
    predict_dataset,
    train_preprocessed,
    widen_each,
)
from pipeline.preprocess.contrast import check_contrast_sizes
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.commands.common import non_negative_int
from xrserver.commands.models import evaluate

#: The options that decide the frames, the preprocessing and the model: runs merged by ``--from-json`` must agree.
SETTINGS = ("preset", "size", "input_size", "camera", "train_frames", "extra_train", "frames_per_vehicle", "val",
            "test", "roi_margin", "roi_source", "template", "photometric", "contrast", "contrast_pool", "options")
#: The settings that decide which frames a run is tested on: ``--compare`` pairs only runs that agree on them.
FRAMES = ("size", "camera", "train_frames", "frames_per_vehicle", "val", "test")
#: What a setting saved before it existed was: runs saved then compare and merge with runs that leave it at this.
SETTING_DEFAULTS: dict[str, Any] = {"extra_train": 0}
#: ``--extra-train``'s frames come from this vehicle on: far past the splits' own vehicles (a few hundred
#: with ``--test 96 16``), so that the validation and test frames stay those of the run without them
EXTRA_TRAIN_FIRST_VEHICLE = 5000
#: How the tables and messages mark a masked (†) run.
MARK = {False: "", True: " †"}
IMAGE = ("auroc", "au_pr", "precision", "recall", "f1")
PIXEL = ("auroc", "au_pr", "aupro_0.3", "iou", "precision", "recall", "f1", "fp_share")


def run_one(name: str, args: argparse.Namespace, seed: int, masked: bool, viewpoint: str, sets: Any,
            overrides: dict[str, Any]) -> dict[str, Any]:
    train, val, test = sets
    cfg = PreprocessConfig(template=args.template, roi=masked, roi_margin_px=args.roi_margin,
                           photometric=args.photometric, contrast=args.contrast, contrast_pool_px=args.contrast_pool)

    def rois(s: Any) -> Any:  # per-frame ROIs (``--roi-source frame``), else None: the reference ROI, as served
        return widen_each(s.roi, args.roi_margin) if masked and args.roi_source == "frame" else None

    t0 = time.perf_counter()
    model = train_preprocessed(name, train.images, cfg, roi=rois(train), preset=args.preset,
                               ctx=FitContext(seed=seed), seam_mask=train.roi[0] if masked else None, **overrides)
    model = calibrate_preprocessed(model, val.images, val.masks, roi=rois(val))
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    predict_dataset(model, test.images, rois(test), batch_size=1)
    s_per_image = (time.perf_counter() - t1) / len(test)
    label = f"{name}{MARK[masked]} ({viewpoint}, seed {seed})"
    report = args.report / f"{name}{'-masked' if masked else ''}-{viewpoint}" if args.report and seed == args.seeds[0] \
        else None
    metrics = evaluate(model, test, rois(test), report, label, per_image=True)
    return {"model": name, "seed": seed, "masked": masked, "viewpoint": viewpoint, "fit_s": fit_s,
            "s_per_image": s_per_image, **metrics, "settings": {k: getattr(args, k) for k in SETTINGS},
            "preprocess": model.preprocessor.config.to_dict(),  # as fitted: the model's own defaults filled in
            "config": config_to_dict(model.inner.config) if isinstance(model.inner, TrainedModel) else None}


def render_sets(twin: DigitalTwin, plan: TwinSetPlan, extra_train: int) -> tuple[AnomalySet, AnomalySet, AnomalySet]:
    """The plan's (train, validation, test), with ``extra_train`` more normal training frames of other
    vehicles (from ``EXTRA_TRAIN_FIRST_VEHICLE`` on) appended to train."""
    train, val, test = render_twin_splits(twin, plan)
    if extra_train == 0:
        return train, val, test
    more = render_twin_splits(twin, replace(plan, train_frames=extra_train, first_vehicle=EXTRA_TRAIN_FIRST_VEHICLE,
                                            val_normal=0, val_defects_per_type=0, test_normal=0,
                                            test_defects_per_type=0))[0]
    both = [train, more]
    roi = np.concatenate([s.roi for s in both]) if train.roi is not None and more.roi is not None else None
    return AnomalySet(np.concatenate([s.images for s in both]), np.concatenate([s.masks for s in both]),
                      np.concatenate([s.labels for s in both]), train.types + more.types,
                      train.names + tuple(f"x{n}" for n in more.names), roi), val, test


def size_text(text: str) -> str:
    """``--size`` and ``--input-size``: checked, and kept as ``WIDTHxHEIGHT`` text, as the saved runs record them."""
    w, h = image_size(text)
    return f"{w}x{h}"


def setting(settings: dict[str, Any], key: str) -> Any:
    """A saved run's setting, or what it was before it was saved (``SETTING_DEFAULTS``)."""
    return settings.get(key, SETTING_DEFAULTS.get(key))


def run_key(run: dict[str, Any]) -> tuple[Any, ...]:
    """What names one run in saved files: (model, masked, seed, viewpoint)."""
    return run["model"], run["masked"], run["seed"], run["viewpoint"]


def model_options(items: list[str], preset: str) -> dict[str, dict[str, Any]]:
    """``MODEL.OPTION=VALUE`` items (VALUE a Python literal) → {model: {option: value}}, checked against
    each model's config. Raises SystemExit on a malformed item, an unknown model or option, or a bad value."""
    out: dict[str, dict[str, Any]] = {}
    try:
        for key, value in parse_options(items).items():
            model, dot, option = key.partition(".")
            if not (dot and model and option):
                raise ConfigError(f"{key!r}: write MODEL.OPTION=VALUE, e.g. seamseg.strand_opacity=0.55")
            out.setdefault(model, {})[option] = value
        for model, opts in out.items():
            make_config(model, preset, **opts)
    except ConfigError as e:
        raise SystemExit(f"--set: {e}") from e
    return out


def merge_runs(paths: list[Path]) -> tuple[list[dict[str, Any]], str]:
    """The runs saved by several ``--json`` files, and a line that says where they came from.

    Raises SystemExit on an unreadable file, a run that is in two files, runs made with other settings,
    a (model, masking, seed) that covers other viewpoints than the rest, or models with other seeds:
    their tables would mislead."""
    runs: list[dict[str, Any]] = []
    source: dict[tuple[Any, ...], Path] = {}
    for path in paths:
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"{path}: cannot read saved runs: {e}") from e
        if not isinstance(loaded, list) or not all(
                isinstance(r, dict) and {"model", "seed", "masked", "viewpoint", "image", "pixel"} <= r.keys()
                for r in loaded):
            raise SystemExit(f"{path}: not a list of runs saved by model_accuracy.py --json")
        for r in loaded:
            key = run_key(r)
            if key in source:
                raise SystemExit(f"{r['model']}{MARK[r['masked']]} seed {r['seed']} at {r['viewpoint']} "
                                 f"is in both {source[key]} and {path}")
            source[key] = path
            runs.append(r)
    recorded = [r["settings"] for r in runs if "settings" in r]
    for other in recorded[1:]:
        differ = sorted(k for k in set(other) | set(recorded[0]) if setting(other, k) != setting(recorded[0], k))
        if differ:
            raise SystemExit(f"the runs were made with other settings: {', '.join(differ)}")
    viewpoints: dict[tuple[Any, ...], set[str]] = {}
    for r in runs:
        viewpoints.setdefault((r["model"], r["masked"], r["seed"]), set()).add(r["viewpoint"])
    if len({frozenset(v) for v in viewpoints.values()}) > 1:
        raise SystemExit("the runs cover different viewpoints: " + "; ".join(
            f"{m}{MARK[k]} seed {s}: {' '.join(sorted(v))}" for (m, k, s), v in viewpoints.items()))
    seeds: dict[tuple[Any, ...], set[int]] = {}
    for m, k, seed in viewpoints:
        seeds.setdefault((m, k), set()).add(seed)
    if len({frozenset(v) for v in seeds.values()}) > 1:  # the paired t-tests pair the models' runs seed by seed
        raise SystemExit("the models have runs of different seeds: " + "; ".join(
            f"{m}{MARK[k]}: {' '.join(map(str, sorted(v)))}" for (m, k), v in seeds.items()))
    line = f"tables from {len(runs)} saved runs in {', '.join(map(str, paths))}"
    if recorded:
        line += "; settings " + ", ".join(f"{k} {v}" for k, v in recorded[0].items())
    if len(recorded) < len(runs):
        line += (f"; {len(runs) - len(recorded)} runs do not record their settings (saved before they did): "
                 "check that they match")
    return runs, line


def per_seed(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (model, masking, seed)'s metrics averaged over the viewpoints (the paper's tables average them)."""
    keys = sorted({(r["model"], r["masked"], r["seed"]) for r in runs}, key=str)
    out = []
    for model, masked, seed in keys:
        rs = [r for r in runs if (r["model"], r["masked"], r["seed"]) == (model, masked, seed)]
        avg = {level: {k: float(np.mean([r[level][k] for r in rs])) for k, v in rs[0][level].items()
                       if not isinstance(v, list)} for level in ("image", "pixel")}  # not the intervals
        fn = np.sum([r["fn_tertiles"]["fn"] for r in rs], axis=0).tolist()
        n = np.sum([r["fn_tertiles"]["n"] for r in rs], axis=0).tolist()
        by_type = {key: _mean_by_type([r.get(key, {}) for r in rs])
                   for key in ("image_auroc_by_type", "peak_in_defect_by_type")}
        out.append({"model": model, "masked": masked, "seed": seed, **avg, "fn_tertiles": {"fn": fn, "n": n},
                    **by_type, "s_per_image": float(np.mean([r["s_per_image"] for r in rs]))})
    return out


def intervals(runs: list[dict[str, Any]], models: list[str]) -> str:
    """Each run's image AUROC with its 95% bootstrap interval over the test images (the first seed; runs
    saved before the interval was recorded are left out): how much the test set alone could move it."""
    seed = min(r["seed"] for r in runs)
    rows = [r for m in models for r in runs if r["model"] == m and r["seed"] == seed and "auroc_ci95" in r["image"]]
    if not rows:
        return ""
    out = [f"Image AUROC with its 95% bootstrap interval over the test images (seed {seed})", "",
           "| model | viewpoint | image AUROC | 95% interval | normal / defect images |", "|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["image"]["auroc_ci95"]
        out.append(f"| {r['model']}{MARK[r['masked']]} | {r['viewpoint']} | {r['image']['auroc']:.3f} | "
                   f"{lo:.3f}-{hi:.3f} | {r['n_images'] - r['n_anomalous']} / {r['n_anomalous']} |")
    return "\n".join(out)


class _Paired(NamedTuple):
    """One run in a and in b, and the frames both scored: their labels and the two runs' scores."""

    a: dict[str, Any]
    b: dict[str, Any]
    labels: list[bool]
    score_a: list[float]
    score_b: list[float]


def compare(paths_a: list[Path], paths_b: list[Path]) -> str:
    """The runs in both a and b (same model, masking, seed and viewpoint) side by side: image AUROC in a and
    in b, and b - a with its paired 95% bootstrap interval over the test images they share. Where a model
    ran at several viewpoints, a last row gives the mean over them, with the interval of that mean (each
    viewpoint's frames resampled apart, as its own test set).

    Raises SystemExit when the files cannot be read, were tested on other frames, share no run, or hold
    runs saved before the per-image scores were."""
    name_a, name_b = (", ".join(map(str, p)) for p in (paths_a, paths_b))
    a, b = (merge_runs(p)[0] for p in (paths_a, paths_b))
    sa, sb = a[0].get("settings", {}), b[0].get("settings", {})
    if other := [k for k in FRAMES if setting(sa, k) != setting(sb, k)]:
        raise SystemExit(f"{name_a} and {name_b} were tested on other frames: they differ in {', '.join(other)}")
    by_key = {run_key(r): r for r in a}
    pairs = [(by_key[k], r) for r in b if (k := run_key(r)) in by_key]
    if not pairs:
        raise SystemExit(f"{name_a} and {name_b} share no run (model, masking, seed and viewpoint)")
    differ = [f"{k} {setting(sa, k)} → {setting(sb, k)}" for k in SETTINGS if setting(sa, k) != setting(sb, k)]
    for ra, rb in pairs:  # the preprocessing as fitted, where both runs record it: a model's defaults may differ
        pa, pb = ra.get("preprocess") or {}, rb.get("preprocess") or {}
        differ += [f"{ra['model']} {k} {pa[k]} → {pb[k]}" for k in pa if k in pb and pa[k] != pb[k]]
    differ = list(dict.fromkeys(differ))  # once per model, not once per viewpoint
    out = [f"b ({name_b}) against a ({name_a}): " + ("; ".join(differ) if differ else "the same settings"), "",
           "| model | viewpoint | seed | a: image AUROC | b: image AUROC | b - a | 95% paired interval | resolved |",
           "|---|---|---|---|---|---|---|---|"]

    def row(ra: dict[str, Any], where: str, auroc_a: float, auroc_b: float, d: AurocDifference, note: str) -> str:
        return (f"| {ra['model']}{MARK[ra['masked']]} | {where} | {ra['seed']} | {auroc_a:.3f} | {auroc_b:.3f} | "
                f"{d.difference:+.3f} | {d.low:+.3f} to {d.high:+.3f} | {'yes' if d.resolved else 'no'}{note} |")

    by_run: dict[tuple[Any, ...], list[_Paired]] = {}  # (model, masked, seed) → its viewpoints
    for ra, rb in pairs:
        if "per_image" not in ra or "per_image" not in rb:
            raise SystemExit(f"{ra['model']}{MARK[ra['masked']]} at {ra['viewpoint']}: a run saved before the "
                             "per-image scores were; run it again to compare")
        score_a, score_b = ({(t, n): s for t, n, s in zip(r["per_image"]["types"], r["per_image"]["names"],
                                                          r["per_image"]["scores"], strict=True)} for r in (ra, rb))
        frames = [f for f in score_a if f in score_b]  # frames rejected by template matching in either run drop out
        p = _Paired(ra, rb, [t != "good" for t, _ in frames], [score_a[f] for f in frames],
                    [score_b[f] for f in frames])
        left_out = len(score_a) + len(score_b) - 2 * len(frames)
        out.append(row(ra, ra["viewpoint"], ra["image"]["auroc"], rb["image"]["auroc"],
                       auroc_difference(p.labels, p.score_a, p.score_b),
                       f" ({left_out} rejected frames left out)" if left_out else ""))
        by_run.setdefault(run_key(ra)[:3], []).append(p)
    for ps in by_run.values():
        if len(ps) > 1:
            d = auroc_difference([y for p in ps for y in p.labels], [x for p in ps for x in p.score_a],
                                 [x for p in ps for x in p.score_b],
                                 groups=[p.a["viewpoint"] for p in ps for _ in p.labels])
            out.append(row(ps[0].a, "mean of " + ", ".join(p.a["viewpoint"] for p in ps),
                           float(np.mean([p.a["image"]["auroc"] for p in ps])),
                           float(np.mean([p.b["image"]["auroc"] for p in ps])), d, ""))
    return "\n".join(out)


def _mean_by_type(per_viewpoint: list[dict[str, float]]) -> dict[str, float]:
    types = dict.fromkeys(t for bt in per_viewpoint for t in bt)
    return {t: float(np.mean([bt[t] for bt in per_viewpoint if t in bt])) for t in types}


def _cell(values: list[float]) -> str:
    m = mean_std(values)
    return f"{m.mean:.3f} ± {m.std:.3f}"


def tables(runs: list[dict[str, Any]], models: list[str]) -> str:
    out: list[str] = []
    settings = sorted({r["masked"] for r in runs})  # unmasked, then masked (†), as far as they ran
    groups = [(m, k) for k in settings for m in models]

    def pick(model: str, masked: bool) -> list[dict[str, Any]]:
        return [r for r in runs if r["model"] == model and r["masked"] == masked]

    out += ["Table 4 (image level, mean ± std over seeds)", "",
            "| model | " + " | ".join(IMAGE) + " |", "|---|" + "---|" * len(IMAGE)]
    for m, k in groups:
        rs = pick(m, k)
        out.append(f"| {m}{MARK[k]} | " + " | ".join(_cell([r["image"][c] for r in rs]) for c in IMAGE) + " |")
    out += ["", "Table 6 (pixel level; AUPRO up to FPR 0.3; P/R/F1 at the IoU-maximising threshold)", "",
            "| model | " + " | ".join(PIXEL) + " |", "|---|" + "---|" * len(PIXEL)]
    for m, k in groups:
        rs = pick(m, k)
        out.append(f"| {m}{MARK[k]} | " + " | ".join(_cell([r["pixel"][c] for r in rs]) for c in PIXEL) + " |")
    out += ["", "Table 8 (CPU seconds per image at this size, batch 1, PyTorch eager as fitted, with preprocessing; "
            "ONNX Runtime's: benchmarks/model_latency.py; the paper's figure is an RTX 3090 at full size, for "
            "reference only)", "",
            "| model | s/image | / baseline (same run) | paper s/image |", "|---|---|---|---|"]
    paper = {"patchcore": 3.33, "memseg": 0.17, "efficientad-s": 0.09, "efficientad-m": 0.10, "simplenet": 0.26}
    base_s = float(np.mean([r["s_per_image"] for r in pick("gaussian", settings[0])] or [np.nan]))
    for m in models:
        s = float(np.mean([r["s_per_image"] for r in pick(m, settings[0])]))
        ratio = f"{s / base_s:.1f}x" if np.isfinite(base_s) else "- (no baseline in the run)"
        out.append(f"| {m}{MARK[settings[0]]} | {s:.4f} | {ratio} | {paper.get(m, '-')} |")
    out += ["", "Against the trivial baseline (per-pixel Gaussian, same run, same mask setting)", "",
            "| model | pixel AUROC / baseline | AUPRO / baseline | beats baseline (pixel AUROC) |", "|---|---|---|---|"]
    for m, k in groups:
        if m == "gaussian" or not pick("gaussian", k):  # no baseline in these runs: the table stays empty
            continue
        a = np.mean([r["pixel"]["auroc"] for r in pick(m, k)])
        b = np.mean([r["pixel"]["auroc"] for r in pick("gaussian", k)])
        pa = np.mean([r["pixel"]["aupro_0.3"] for r in pick(m, k)])
        pb = np.mean([r["pixel"]["aupro_0.3"] for r in pick("gaussian", k)])
        out.append(f"| {m}{MARK[k]} | {a / b:.2f}x | {pa / max(pb, 1e-9):.2f}x | {'yes' if a > b else 'no'} |")
    out += ["", "Missed anomalous images by defect size (area-ratio tertiles per viewpoint, Eqs. 14-15; "
            "FN/total over seeds and viewpoints, at the F1-optimal image threshold)", "",
            "| model | small | medium | large |", "|---|---|---|---|"]
    for m, k in groups:
        fn = np.sum([r["fn_tertiles"]["fn"] for r in pick(m, k)], axis=0)
        n = np.sum([r["fn_tertiles"]["n"] for r in pick(m, k)], axis=0)
        out.append(f"| {m}{MARK[k]} | " + " | ".join(f"{int(a)}/{int(b)}" for a, b in zip(fn, n, strict=True)) + " |")
    for key, title in (("image_auroc_by_type", "Image AUROC by defect type (each type against the normal test frames"),
                       ("peak_in_defect_by_type", "Share of defect images whose map peaks inside the defect (by type")):
        types = list(dict.fromkeys(t for r in runs for t in r[key]))
        out += ["", f"{title}, mean ± std over seeds)", "",
                "| model | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
        for m, k in groups:
            cells = ([r[key][t] for r in pick(m, k) if t in r[key]] for t in types)
            out.append(f"| {m}{MARK[k]} | " + " | ".join(_cell(v) if v else "-" for v in cells) + " |")
    for k in settings if len({r["seed"] for r in runs}) >= 2 else ():
        per_model = {m: [r["pixel"]["auroc"] for r in sorted(pick(m, k), key=lambda r: r["seed"])] for m in models}
        out += ["", f"Paired t-tests of pixel AUROC over seeds{MARK[k]} (Benjamini-Hochberg FDR)", "",
                "| a | b | mean a - b | t | p | p (BH) |", "|---|---|---|---|---|---|"]
        for t in paired_tests(per_model):
            out.append(f"| {t.model_a} | {t.model_b} | {t.mean_diff:+.3f} | {t.t:.2f} | {t.p:.3g} | {t.p_bh:.3g} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", type=size_text, default="320x240", help="twin frame size WIDTHxHEIGHT")
    ap.add_argument("--input-size", type=size_text, default=None, metavar="WxH",
                    help="model input size (default: the preset's; e.g. 320x240 to keep the frame's detail)")
    ap.add_argument("--camera", default="lower")
    ap.add_argument("--viewpoints", nargs="+", default=["front", "centre", "back"],
                    help="the paper's viewpoints (front centre back), or 'pass' for frames over the whole pass")
    # the paper's centre viewpoint (Table 2) had 67 training underbodies x 5 frames, 23 + 32 validation and
    # 24 + 38 test frames; these defaults are its shape at a size two CPU cores fit in about half an hour
    ap.add_argument("--train-frames", type=int, default=100, help="normal training frames per viewpoint")
    ap.add_argument("--extra-train", type=non_negative_int, default=0, metavar="N",
                    help="N more normal training frames per viewpoint, of other vehicles; the validation and test "
                         "frames stay the same, so --compare pairs the runs with and without them")
    ap.add_argument("--frames-per-vehicle", type=int, default=5, help="training frames per vehicle (paper: 5)")
    ap.add_argument("--val", type=int, nargs=2, default=[12, 2], metavar=("NORMAL", "PER_TYPE"),
                    help="validation frames: normal, and defects per type")
    ap.add_argument("--test", type=int, nargs=2, default=[24, 4], metavar=("NORMAL", "PER_TYPE"),
                    help="test frames: normal, and defects per type")
    ap.add_argument("--masking", choices=("both", "off", "on"), default="both",
                    help="ROI masks: unmasked and masked (†) runs, or only one of them")
    ap.add_argument("--roi-margin", type=int, default=None, metavar="PX",
                    help="ROI margin around the nominal seams (default: 6 px per 640 px of frame width, about "
                         "16 mm at the underbody, so that every frame size masks the same area)")
    ap.add_argument("--roi-source", choices=("reference", "frame"), default="reference",
                    help="masked runs: the reference frame's seams moved with the template match (the paper's "
                         "mask, and what a served model uses), or each frame's own nominal seams")
    ap.add_argument("--template", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--photometric", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--contrast", action=argparse.BooleanOptionalAction, default=False,
                    help="models see the local contrast (colour distance from the neighbourhood's median)")
    ap.add_argument("--contrast-pool", type=int, default=None, metavar="PX",
                    help="the contrast step's max-pool (odd px; 1 = none; default: each model's own, 1 for "
                         "seamseg, else 3 per 640 px of frame width)")
    ap.add_argument("--models", nargs="+",
                    default=list(MODELS))
    ap.add_argument("--report", type=Path, default=None, metavar="DIR", help="write the paper's figures (seed 0)")
    ap.add_argument("--set", dest="options", nargs="+", default=None, metavar="MODEL.OPTION=VALUE",
                    help="a model's config option for this run (a Python literal), e.g. seamseg.strand_opacity=0.55")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--from-json", type=Path, nargs="+", metavar="JSON",
                    help="print the tables from runs saved by --json (e.g. one file per seed); runs nothing")
    ap.add_argument("--compare", type=Path, nargs="+", metavar="JSON",
                    help="A B: image AUROC of the runs saved in B against those in A, paired on their test frames, "
                         "with the 95%% bootstrap interval of the difference; runs nothing. With --against, "
                         "these files are all A")
    ap.add_argument("--against", type=Path, nargs="+", metavar="JSON",
                    help="with --compare: the files of B (e.g. one per viewpoint), against all the files of --compare")
    args = ap.parse_args()
    if args.against and not args.compare:
        ap.error("--against needs --compare")
    if args.compare:
        if not args.against and len(args.compare) != 2:
            ap.error("--compare takes two files, A B, or A's files followed by --against and B's")
        print(compare(args.compare, args.against) if args.against else compare(args.compare[:1], args.compare[1:]))
        return
    if args.from_json:
        saved, line = merge_runs(args.from_json)
        models = sorted(dict.fromkeys(r["model"] for r in saved), key=lambda m: m != "gaussian")  # baseline first
        print(line)
        print()
        print(tables(per_seed(saved), models))
        print()
        print(intervals(saved, models))
        return
    if args.contrast_pool is not None:  # before minutes of rendering
        if not args.contrast:
            ap.error("--contrast-pool needs --contrast")
        try:
            check_contrast_sizes(None, args.contrast_pool)
        except PreprocessError as e:
            ap.error(f"--contrast-pool: {e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    w, h = image_size(args.size)
    if args.roi_margin is None:
        args.roi_margin = scaled_roi_margin_px(w)
    overrides = {"input_size_wh": image_size(args.input_size)} if args.input_size else {}
    options = model_options(args.options or [], args.preset)
    t0 = time.perf_counter()
    twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
    data = {vp: render_sets(twin, TwinSetPlan(
        camera_id=args.camera, train_frames=args.train_frames, frames_per_train_vehicle=args.frames_per_vehicle,
        val_normal=args.val[0], val_defects_per_type=args.val[1], test_normal=args.test[0],
        test_defects_per_type=args.test[1], roi_margin_px=0, viewpoint=None if vp == "pass" else vp),
        args.extra_train) for vp in args.viewpoints}
    render_s = time.perf_counter() - t0
    runs: list[dict[str, Any]] = []
    for masked in {"both": (False, True), "off": (False,), "on": (True,)}[args.masking]:
        for m in args.models:
            for seed in args.seeds:
                for vp in args.viewpoints:
                    runs.append(run_one(m, args, seed, masked, vp, data[vp], {**overrides, **options.get(m, {})}))
                    if args.json:  # after every run, so that a long benchmark cut short keeps what it measured
                        args.json.write_text(json.dumps(runs, indent=1, default=str))
    train, val, test = data[args.viewpoints[0]]
    pool = "" if not args.contrast else f" (max-pool {args.contrast_pool} px)" if args.contrast_pool else \
        " (each model's max-pool)"
    extra = f"; {args.extra_train} of them from vehicles {EXTRA_TRAIN_FIRST_VEHICLE} on" if args.extra_train else ""
    print(f"twin camera {args.camera} at {w}x{h}, viewpoints {args.viewpoints}: {len(train)} training frames "
          f"({args.frames_per_vehicle} per vehicle{extra}), {len(val)} validation and "
          f"{len(test)} test frames per viewpoint ({int(test.labels.sum())} with defects of all five types); "
          f"preset {args.preset}{' input ' + args.input_size if args.input_size else ''}; template "
          f"{'on' if args.template else 'off'}, photometric {'on' if args.photometric else 'off'}, "
          f"local contrast {'on' if args.contrast else 'off'}"
          f"{pool}; "
          f"ROI {args.roi_source} seams + {args.roi_margin} px; seeds {args.seeds}; "
          f"{'options ' + ' '.join(args.options) + '; ' if args.options else ''}"
          f"{platform.machine()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"rendering {render_s:.0f} s, total {time.perf_counter() - t0:.0f} s")
    print()
    print(tables(per_seed(runs), args.models))
    print()
    print(intervals(runs, args.models))


if __name__ == "__main__":
    main()
