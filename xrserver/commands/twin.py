"""``xrserver twin``: the digital twin of the inspection cell (preview, dataset export, model files)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import cv2

from calibration.rig import save_rig
from calibration.underbody import save_underbody
from pipeline.models.errors import ModelError
from pipeline.twin import DEFECT_TYPES, DigitalTwin, TwinConfig
from pipeline.twin.dataset import ExportPlan, export_mvtec, export_passes, trigger_grid
from pipeline.twin.preview import preview_render_count, render_preview
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


def _add_twin_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=non_negative_int, default=0, help="twin seed (default 0); same seed, same bytes")
    p.add_argument("--size", type=image_size, default=(640, 480), help="camera image size WIDTHxHEIGHT (640x480)")


def _twin(args: argparse.Namespace) -> DigitalTwin:
    w, h = args.size
    return DigitalTwin(TwinConfig(seed=args.seed, width_px=w, height_px=h))


def _defect_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if items == ["all"]:
        return list(DEFECT_TYPES)
    bad = [t for t in items if t not in DEFECT_TYPES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown defect type(s) {bad}; use 'all' or some of {list(DEFECT_TYPES)}")
    return items


def _out_file(path: Path) -> Path:
    if path.exists() and path.is_dir():
        raise CliError(f"--out {path} is a folder; give a file name such as {path / 'twin-preview.png'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def cmd_preview(args: argparse.Namespace) -> int:
    out = _out_file(args.out)
    t0 = time.perf_counter()
    twin = _twin(args)
    with progress_bar(preview_render_count(twin, len(args.defects)), "rendering") as bar:
        img, info = render_preview(twin, vehicle_index=args.vehicle, defect_types=args.defects, progress=bar.update)
    if not cv2.imwrite(str(out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
        raise CliError(f"cannot write {out}")
    elapsed = time.perf_counter() - t0
    print(f"wrote {out} ({info.size_px[0]}x{info.size_px[1]} px): vehicle {info.vehicle_id}, "
          f"{info.frames_rendered} renders of {len(twin.rig.cameras)} cameras, "
          f"{len(info.defects)} defects, {elapsed:.1f} s")
    for d in info.defects:
        print(f"  {d['type']:<13} {d['size_mm']:>6} mm on seam {d['seam']}, best seen by {d['best_view']}"
              f" ({d['mask_px']} px)")
    write_json(args.json, {"command": "twin preview", "out": str(out), "vehicle_id": info.vehicle_id,
                           "frames_rendered": info.frames_rendered, "defects": list(info.defects),
                           "elapsed_s": elapsed, "size_px": list(info.size_px)})
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    twin = _twin(args)
    plan = ExportPlan(
        train_vehicles=args.train_vehicles, frames_per_train_vehicle=args.frames_per_vehicle,
        val_normal=args.val_normal, val_defects_per_type=args.val_defects, test_normal=args.test_normal,
        test_defects_per_type=args.test_defects, camera_ids=tuple(args.cameras) if args.cameras else None,
    )
    for c in plan.camera_ids or ():
        if c not in twin.rig.camera_ids:
            raise CliError(f"--cameras: unknown camera {c!r}; the twin has {list(twin.rig.camera_ids)}")
    t0 = time.perf_counter()
    with progress_bar(plan.total_renders, "rendering") as bar:
        summary = export_mvtec(twin, args.out, plan, progress=bar.update)
    elapsed = time.perf_counter() - t0
    print(f"wrote {summary.images} images and {summary.masks} masks to {args.out} in {elapsed:.1f} s")
    for cam, counts in summary.per_camera.items():
        print(f"  {cam}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if summary.not_visible:
        print(f"  {len(summary.not_visible)} defect/camera pairs not visible (listed in metadata.json)")
    result: dict[str, Any] = {"command": "twin export", "out": str(args.out), "images": summary.images,
                              "masks": summary.masks, "per_camera": summary.per_camera,
                              "not_visible": summary.not_visible, "elapsed_s": elapsed}
    write_json(args.json, result)
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    twin = _twin(args)
    for c in args.cameras or ():
        if c not in twin.rig.camera_ids:
            raise CliError(f"--cameras: unknown camera {c!r}; the twin has {list(twin.rig.camera_ids)}")
    if not args.step_m > 0:
        raise CliError(f"--step-m must be positive, got {args.step_m}")
    vehicles = range(args.first_vehicle, args.first_vehicle + args.vehicles)
    n = trigger_grid(twin, args.step_m).n
    t0 = time.perf_counter()
    try:
        with progress_bar(n * len(vehicles), "rendering", unit="frame set") as bar:
            grid = export_passes(twin, args.out, vehicles, args.step_m, args.cameras, progress=bar.update)
    except ModelError as e:
        raise CliError(str(e)) from None
    elapsed = time.perf_counter() - t0
    cams = args.cameras or list(twin.rig.camera_ids)
    print(f"wrote {len(vehicles)} normal passes to {args.out}: {grid.n} trigger positions from {grid.s0_m:.4f} m "
          f"every {grid.step_m:.4f} m, {len(cams)} camera(s), in {elapsed:.1f} s")
    write_json(args.json, {"command": "twin passes", "out": str(args.out), "vehicles": list(vehicles),
                           "cameras": cams, "positions": grid.n, "s0_m": grid.s0_m, "step_m": grid.step_m,
                           "elapsed_s": elapsed})
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    twin = _twin(args)
    args.out.mkdir(parents=True, exist_ok=True)
    rig_path = args.out / "rig.yaml"
    save_rig(twin.rig, rig_path)
    ub_path = args.out / "underbody.yaml"
    mesh_path = save_underbody(twin.underbody, ub_path, mesh_format=args.mesh_format)
    ub = twin.underbody
    print(f"wrote {rig_path} ({len(twin.rig.cameras)} cameras) and {ub_path} + {mesh_path.name} "
          f"({len(ub.vertices_vehicle_m)} vertices, {len(ub.triangles)} triangles, {len(ub.seams)} seams)")
    write_json(args.json, {"command": "twin model", "rig": str(rig_path), "underbody": str(ub_path),
                           "mesh": str(mesh_path), "vertices": len(ub.vertices_vehicle_m),
                           "triangles": len(ub.triangles), "seams": [s.seam_id for s in ub.seams]})
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    twin = sub.add_parser("twin", help="the digital twin: preview, dataset export, rig and underbody files")
    tsub = twin.add_subparsers(dest="twin_command", metavar="TWIN_COMMAND")
    tsub.required = True

    p = tsub.add_parser("preview", help="render a short sequence and write a contact sheet PNG")
    _add_twin_args(p)
    p.add_argument("--out", type=Path, default=Path("out/twin-preview.png"), help="PNG path (out/twin-preview.png)")
    p.add_argument("--vehicle", type=non_negative_int, default=0, help="vehicle index (0)")
    p.add_argument("--defects", type=_defect_list, default=list(DEFECT_TYPES),
                   help="comma-separated defect types to plant, or 'all' (default all five)")
    add_json_arg(p)
    p.set_defaults(func=cmd_preview)

    p = tsub.add_parser("export", help="render a dataset in the MVTec AD layout, one category per camera")
    _add_twin_args(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--cameras", nargs="+", metavar="ID", help="camera ids (default: all)")
    p.add_argument("--train-vehicles", type=positive_int, default=10)
    p.add_argument("--frames-per-vehicle", type=positive_int, default=5, help="training frames per vehicle (5)")
    p.add_argument("--val-normal", type=non_negative_int, default=5)
    p.add_argument("--val-defects", type=non_negative_int, default=2, help="validation vehicles per defect type")
    p.add_argument("--test-normal", type=non_negative_int, default=10)
    p.add_argument("--test-defects", type=non_negative_int, default=4, help="test vehicles per defect type")
    add_json_arg(p)
    p.set_defaults(func=cmd_export)

    p = tsub.add_parser("passes", help="render whole normal passes at every trigger position (for xrserver bank "
                        "build)")
    _add_twin_args(p)
    p.add_argument("--out", type=Path, required=True, help="output folder (grid.json, <vehicle>/<camera>/<k>.png)")
    p.add_argument("--cameras", nargs="+", metavar="ID", help="camera ids (default: all)")
    p.add_argument("--vehicles", type=positive_int, default=8, help="normal vehicles, one pass each (8)")
    p.add_argument("--first-vehicle", type=non_negative_int, default=10_000,
                   help="index of the first (10000: the server's own bank vehicles)")
    p.add_argument("--step-m", type=float, default=0.01,
                   help="conveyor travel between triggers, speed / fps of the source (0.01: the server's default)")
    add_json_arg(p)
    p.set_defaults(func=cmd_passes)

    p = tsub.add_parser("model", help="write the twin's rig file and underbody model (YAML + mesh)")
    _add_twin_args(p)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mesh-format", choices=("ply", "glb"), default="ply")
    add_json_arg(p)
    p.set_defaults(func=cmd_model)
