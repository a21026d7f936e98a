"""Inference latency of every anomaly model per runtime, at batch 1 and at batch = the number of views.

Each model is fitted briefly on normal twin frames at the input size (``--fit-steps`` optimiser steps:
the weights' values do not change the work per image; PatchCore's memory bank is built from
``--train-frames`` frames as in training), then the network alone is timed on each runtime:

* ``torch-cpu``, ``onnx-cpu`` (ONNX Runtime's CPU provider) everywhere;
* with CUDA: ``torch-cuda`` (fp32), ``torch-cuda-fp16-cl`` (fp16 weights and inputs, channels-last),
  ``onnx-cuda`` and ``onnx-tensorrt`` where ONNX Runtime has those providers.

The time of a call includes the host-to-device copy of the batch and the copy of scores and maps
back (what the server pays). Prints the median over ``--repeats`` calls after ``--warmup``, per
batch and per image, the ratio to the per-pixel Gaussian on the same runtime (the baseline of the
same run), the speed-up over the paper's Table 8 (RTX 3090, its own resolutions), and each
runtime's error against PyTorch fp32 on the CPU on the same batch (||maps - ref|| / ||ref||), so a
fast path that computes something else shows. A runtime that fails is reported and skipped.

The normal frames come from the twin (``centre`` viewpoint), or with ``--frames DIR`` from an MVTec
AD category folder's ``train/good`` (resized to the input): then the twin's renderer (open3d) is
not needed, e.g. on a GPU host with a bare ML image (``xrserver twin export`` writes such folders).

    .venv/bin/python benchmarks/model_latency.py --size 256x256 --views 4
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import torch

from calibration.clikit import image_size
from pipeline.models import MODELS, FitContext
from pipeline.models.api import train
from pipeline.models.export import export_onnx
from pipeline.models.runtime import ORT_PROVIDERS, OnnxRuntime, Runtime, TorchRuntime

#: the paper's Table 8: seconds per image on an RTX 3090
PAPER_S_PER_IMAGE = {"patchcore": 3.33, "memseg": 0.17, "efficientad-s": 0.09, "efficientad-m": 0.10,
                     "simplenet": 0.26}


#: builds one runtime for a network and its ONNX file
RuntimeFactory = Callable[[torch.nn.Module, Path], Runtime]


def runtime_factories() -> dict[str, RuntimeFactory]:
    """Every runtime this machine has, by name, known before any model is fitted. Each PyTorch runtime gets
    its own copy of the network: moving a module to a device or to fp16 changes it in place."""
    out: dict[str, RuntimeFactory] = {
        "torch-cpu": lambda net, _: TorchRuntime(copy.deepcopy(net), "cpu"),
        "onnx-cpu": lambda _, path: OnnxRuntime(path, "cpu"),
    }
    if torch.cuda.is_available():
        out["torch-cuda"] = lambda net, _: TorchRuntime(copy.deepcopy(net), "cuda")
        out["torch-cuda-fp16-cl"] = lambda net, _: TorchRuntime(copy.deepcopy(net), "cuda", fp16=True,
                                                                channels_last=True)
        available = set(ort.get_available_providers())
        if ORT_PROVIDERS["cuda"][0] in available:
            out["onnx-cuda"] = lambda _, path: OnnxRuntime(path, "cuda")
        if ORT_PROVIDERS["tensorrt"][0] in available:
            out["onnx-tensorrt"] = lambda _, path: OnnxRuntime(path, "tensorrt")
    return out


def normal_frames(folder: Path | None, w: int, h: int, n: int) -> np.ndarray:
    """``n`` normal frames at ``w`` x ``h``: rendered by the twin, or read from an MVTec folder's train/good."""
    if folder is None:
        from pipeline.data.twinset import TwinSetPlan, render_twin_splits
        from pipeline.twin import DigitalTwin, TwinConfig

        twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
        plan = TwinSetPlan(viewpoint="centre", train_frames=n, val_normal=1, val_defects_per_type=0,
                           test_normal=1, test_defects_per_type=0)
        return render_twin_splits(twin, plan)[0].images
    from pipeline.data.mvtec import read_mvtec

    images = read_mvtec(folder, max_train=n).train.normals()
    return np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images])


def relative_error(maps: np.ndarray, ref: np.ndarray) -> float | None:
    """||maps - ref|| / ||ref||; inf where the runtime returned non-finite values; None where the reference
    map is flat (one value everywhere, as a briefly fitted model's saturated map can be): any runtime that
    saturates too would match it, so the check would say nothing."""
    if np.ptp(ref) == 0:
        return None
    if not np.isfinite(maps).all():
        return float("inf")
    return float(np.linalg.norm(maps.astype(np.float64) - ref)) / max(float(np.linalg.norm(ref)), 1e-12)


def error_cell(err: float | None) -> str:
    return "- (flat reference)" if err is None else f"{err:.1e}"


def time_runtime(rt: Runtime, x: np.ndarray, warmup: int, repeats: int) -> float:
    """Median wall-clock seconds of ``rt.run(x)``."""
    for _ in range(warmup):
        rt.run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rt.run(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--models", nargs="+",
                    default=list(MODELS))
    ap.add_argument("--preset", default="tiny", help="architecture preset (tiny: CPU-sized; paper: Table 3)")
    ap.add_argument("--size", type=image_size, default="256x256", help="model input size WIDTHxHEIGHT (256x256)")
    ap.add_argument("--views", type=int, default=4, help="the second batch size: one frame per camera (4)")
    ap.add_argument("--train-frames", type=int, default=8)
    ap.add_argument("--fit-steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--frames", type=Path, help="MVTec AD category folder whose train/good are the normal frames "
                    "(default: render the twin)")
    ap.add_argument("--runtimes", nargs="+", help="time only these runtimes (default: every one this machine has)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    here = runtime_factories()
    chosen = [make for n, make in here.items() if not args.runtimes or n in args.runtimes]
    if args.runtimes:  # before minutes of fitting: a GPU run on a machine whose CUDA is not visible stops here
        if not chosen:
            ap.error(f"--runtimes: none of {args.runtimes} is on this machine; it has {list(here)}")
        if missing := sorted(set(args.runtimes) - set(here)):
            print(f"not on this machine, skipped: {missing}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
    w, h = args.size
    frames = normal_frames(args.frames, w, h, args.train_frames)
    rng = np.random.default_rng(0)
    inputs = {b: rng.uniform(0, 255, (b, 3, h, w)).astype(np.float32) for b in sorted({1, args.views})}
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            model = train(name, frames, args.preset, FitContext(seed=0, max_steps=args.fit_steps),
                          input_size_wh=(w, h))
            onnx_path = export_onnx(model.net, (w, h), Path(tmp) / f"{name}.onnx")
            cpu = TorchRuntime(copy.deepcopy(model.net), "cpu")
            ref = {b: cpu.run(x)[1].astype(np.float64) for b, x in inputs.items()}
            for make in chosen:  # one at a time: a runtime's copy of the network is freed before the next
                rt = make(model.net, onnx_path)
                for batch, x in inputs.items():
                    try:
                        err = relative_error(rt.run(x)[1], ref[batch])
                        s = time_runtime(rt, x, args.warmup, args.repeats)
                    except Exception as e:  # a runtime that cannot run this model is reported, not fatal
                        print(f"{name} {rt.name} batch {batch}: failed: {type(e).__name__}: {e}", flush=True)
                        continue
                    rows.append({"model": name, "runtime": rt.name, "batch": batch, "s_per_batch": s,
                                 "s_per_image": s / batch, "rel_error": err})
                    print(f"{name} {rt.name} batch {batch}: {1000 * s:.2f} ms, error {error_cell(err)}", flush=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print()
    print(f"input {w}x{h}, preset {args.preset}, batch 1 and {args.views}; {platform.machine()}, {os.cpu_count()} "
          f"cores, {gpu}; torch {torch.__version__}, onnxruntime {ort.__version__}; median of {args.repeats}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print()
    print("| model | runtime | batch | ms / batch | ms / image | / gaussian (same runtime, batch) | paper s/image "
          "| speed-up vs paper | error vs torch-cpu |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = {(r["runtime"], r["batch"]): r["s_per_image"] for r in rows if r["model"] == "gaussian"}
    for r in rows:
        b = base.get((r["runtime"], r["batch"]))
        ratio = f"{r['s_per_image'] / b:.1f}x" if b else "-"
        paper = PAPER_S_PER_IMAGE.get(r["model"])
        speedup = f"{paper / r['s_per_image']:.1f}x" if paper else "-"
        print(f"| {r['model']} | {r['runtime']} | {r['batch']} | {1000 * r['s_per_batch']:.2f} | "
              f"{1000 * r['s_per_image']:.2f} | {ratio} | {paper if paper else '-'} | {speedup} | "
              f"{error_cell(r['rel_error'])} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
