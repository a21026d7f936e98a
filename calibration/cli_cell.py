"""``xrcalib`` subcommands for the cell geometry: conveyor, register, coverage, plan, import, export."""

from __future__ import annotations

import argparse
import csv
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import yaml

from calibration.camera import CameraModel, intrinsics_from_fov
from calibration.cli_calib import add_board, screening
from calibration.clikit import CliParser, add_json_arg, write_json
from calibration.conveyor import Conveyor
from calibration.conveyor_calib import calibrate_conveyor
from calibration.coverage import CoverageResult, coverage_png, plan_cameras, seam_coverage
from calibration.errors import CalibrationInputError
from calibration.interop import FORMATS, export_rig, import_rig
from calibration.pose import board_pose
from calibration.registration import depth_cloud_cell, kabsch, register_underbody
from calibration.report import write_html_report
from calibration.rig import Rig, load_rig, save_rig
from calibration.se3 import look_at, translation
from calibration.underbody import load_underbody
from calibration.views import list_images, read_gray, screen_view, video_frames

log = logging.getLogger(__name__)
F64 = npt.NDArray[np.float64]


def camera_of(rig: Rig, camera_id: str) -> CameraModel:
    try:
        return rig.camera(camera_id)
    except KeyError as e:
        raise CalibrationInputError(str(e.args[0])) from e


def _read_timestamps(path: Path) -> dict[str, float]:
    """CSV rows ``name,t_s`` (name = image file stem); raises :class:`CalibrationInputError`."""
    try:
        with path.open(encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
        return {Path(r[0]).stem: float(r[1]) for r in rows if r[0] != "name"}
    except (OSError, IndexError, ValueError) as e:
        raise CalibrationInputError(f"{path}: cannot read timestamps (CSV 'name,t_s'): {e}") from e


def cmd_conveyor(args: argparse.Namespace) -> int:
    rig = load_rig(args.rig)
    cam = camera_of(rig, args.camera)
    src = Path(args.images)
    items: list[tuple[str, str, Any, float]] = []
    if src.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm"):
        items = [(vid, str(src), g, t) for vid, g, t in video_frames(src, args.step)]
    else:
        if args.timestamps is None:
            raise CalibrationInputError("--timestamps CSV is needed with images (videos carry their own)")
        ts = _read_timestamps(args.timestamps)
        for p in list_images(args.images):
            if p.stem not in ts:
                raise CalibrationInputError(f"{args.timestamps}: no timestamp for image {p.name}")
            items.append((p.stem, str(p), read_gray(p), ts[p.stem]))
    poses, times, names, rejected = [], [], [], {}
    for vid, source, gray, t in items:
        v = screen_view(vid, source, gray, args.board, screening(args))
        if not v.accepted or v.detection is None:
            rejected[vid] = v.reason
            continue
        poses.append(cam.T_cell_cam @ board_pose(cam, args.board, v.detection))
        times.append(t)
        names.append(vid)
    res = calibrate_conveyor(poses, times, names)
    conveyor = Conveyor(res.axis_cell, res.speed_mps, rig.conveyor.T_cell_vehicle0)
    if args.out is not None:
        save_rig(replace(rig, conveyor=conveyor), args.out)
    print(f"conveyor axis {np.round(res.axis_cell, 5).tolist()}, speed {res.speed_mps:.5f} /s from {res.n_samples} "
          f"views; timestamps {'consistent' if res.timestamps_consistent else 'INCONSISTENT'}")
    for issue in res.timestamp_issues:
        print(f"  timestamp: {issue}")
    write_json(args.json, {
        "axis_cell": res.axis_cell.tolist(), "speed_mps": res.speed_mps, "speed_units": "board units per second",
        "off_axis_rms_m": res.off_axis_rms_m, "travel_rms_m": res.travel_rms_m,
        "rotation_drift_deg": res.rotation_drift_deg, "n_samples": res.n_samples,
        "timestamps_consistent": res.timestamps_consistent, "timestamp_issues": list(res.timestamp_issues),
        "rejected": rejected,
    })
    return 0


def read_depth(path: Path, scale_m: float) -> F64:
    if path.suffix == ".npy":
        try:
            return np.asarray(np.load(path), dtype=np.float64)
        except (OSError, ValueError) as e:
            raise CalibrationInputError(f"{path}: cannot read depth array: {e}") from e
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if img is None or img.ndim != 2:
        raise CalibrationInputError(f"{path}: cannot read depth image (16-bit single-channel PNG or .npy in metres)")
    return np.asarray(img, dtype=np.float64) * scale_m


def _read_correspondences(path: Path) -> F64:
    """``pairs: [[[x,y,z]_vehicle, [x,y,z]_cell], ...]`` -> initial ``T_cell_vehicle``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        pairs = np.asarray(data["pairs"], dtype=np.float64)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise CalibrationInputError(f"{path}: cannot read correspondences ('pairs: [[vehicle xyz, cell xyz]]'): {e}") \
            from e
    if pairs.ndim != 3 or pairs.shape[1:] != (2, 3):
        raise CalibrationInputError(f"{path}: pairs must be a list of [[x,y,z], [x,y,z]]")
    return kabsch(pairs[:, 0], pairs[:, 1])


def cmd_register(args: argparse.Namespace) -> int:
    rig = load_rig(args.rig)
    model = load_underbody(args.underbody)
    clouds = []
    for item in args.depth:
        if "=" not in item:
            raise CalibrationInputError(f"--depth {item!r}: expected ID=PATH")
        cid, p = item.split("=", 1)
        cam = camera_of(rig, cid)
        scale = cam.depth.depth_scale_m if cam.depth is not None else 0.001
        clouds.append(depth_cloud_cell(cam, read_depth(Path(p), scale)))
    if args.init == "global":
        init = None
    elif args.init == "nominal":
        init = rig.conveyor.T_cell_vehicle(args.s_m)
    else:
        init = _read_correspondences(Path(args.init))
    res = register_underbody(model, clouds, init)
    T0 = translation(-rig.conveyor.axis_cell * args.s_m) @ res.T_cell_vehicle
    if args.out is not None:
        conv = Conveyor(rig.conveyor.axis_cell, rig.conveyor.speed_mps, T0)
        save_rig(replace(rig, conveyor=conv), args.out)
    print(f"registration ({res.init}): fitness {res.fitness:.3f}, inlier RMSE {1000 * res.inlier_rmse_m:.2f} mm, "
          f"{res.n_points} points")
    write_json(args.json, {"T_cell_vehicle": res.T_cell_vehicle.tolist(), "T_cell_vehicle0": T0.tolist(),
                           "s_m": args.s_m, "fitness": res.fitness, "inlier_rmse_m": res.inlier_rmse_m,
                           "init": res.init, "n_points": res.n_points})
    return 0


def _coverage_json(res: CoverageResult) -> dict[str, Any]:
    f1, f2 = res.totals()
    return {"fraction_ge1": f1, "fraction_ge2": f2,
            "seams": {s.seam_id: {"length_m": s.length_m, "fraction_ge1": s.fraction_ge1,
                                  "fraction_ge2": s.fraction_ge2} for s in res.seams},
            "per_camera": {c: dict(zip(("fraction_ge1", "fraction_ge2"), res.totals([c]), strict=True))
                           for c in res.seen}}


def _pass_s(rig: Rig, args: argparse.Namespace) -> F64:
    return np.arange(args.s_start, args.s_end + 1e-9, args.s_step)


def cmd_coverage(args: argparse.Namespace) -> int:
    rig = load_rig(args.rig)
    model = load_underbody(args.underbody)
    res = seam_coverage(rig.cameras, rig.conveyor, model, _pass_s(rig, args))
    img = coverage_png(model, res)
    if args.png is not None and not cv2.imwrite(str(args.png), img):
        raise CalibrationInputError(f"{args.png}: cannot write PNG")
    if args.report is not None:
        f1, f2 = res.totals()
        write_html_report(args.report, "Seam coverage", [], {"seen by >= 1": f"{100 * f1:.1f}%",
                                                             "seen by >= 2": f"{100 * f2:.1f}%"},
                          [("coverage map", img)])
    for s in res.seams:
        print(f"seam {s.seam_id}: {100 * s.fraction_ge1:5.1f}% seen by >=1, {100 * s.fraction_ge2:5.1f}% by >=2 "
              f"({s.length_m:.2f} m)")
    f1, f2 = res.totals()
    print(f"all seams: {100 * f1:.1f}% by >=1 camera, {100 * f2:.1f}% by >=2 cameras")
    write_json(args.json, _coverage_json(res))
    return 0


def _read_candidates(path: Path) -> list[CameraModel]:
    """``candidates: [{id, eye: [x,y,z], target: [x,y,z], hfov_deg, size: [w, h]}]`` in the cell frame."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        out = []
        for c in data["candidates"]:
            w, h = (int(x) for x in c.get("size", (640, 480)))
            K = intrinsics_from_fov(w, h, float(c.get("hfov_deg", 90.0)))
            T = look_at(c["eye"], c["target"], up=c.get("up", (1.0, 0.0, 0.0)))
            out.append(CameraModel(str(c["id"]), K, np.zeros(5), w, h, T))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as e:
        raise CalibrationInputError(f"{path}: cannot read candidates "
                                    "('candidates: [{id, eye, target, hfov_deg, size}]'): {e}") from e
    if not out:
        raise CalibrationInputError(f"{path}: no candidates")
    return out


def cmd_plan(args: argparse.Namespace) -> int:
    rig = load_rig(args.rig)
    model = load_underbody(args.underbody)
    cands = _read_candidates(args.candidates)
    res = seam_coverage(cands, rig.conveyor, model, _pass_s(rig, args))
    plan = plan_cameras(res, args.max_cameras, args.target_ge1, args.target_ge2)
    for c, (f1, _f2) in sorted(plan.single.items(), key=lambda kv: -kv[1][0]):
        print(f"candidate {c}: alone sees {100 * f1:.1f}% of the seam length")
    for c, (f1, f2) in zip(plan.chosen, plan.totals_after_each, strict=True):
        print(f"+ {c}: {100 * f1:.1f}% by >=1, {100 * f2:.1f}% by >=2")
    print(f"{len(plan.chosen)} cameras chosen; targets {'met' if plan.target_met else 'NOT met'}")
    if args.png is not None:
        chosen = CoverageResult(res.seams, res.samples, res.weights, {c: res.seen[c] for c in plan.chosen})
        cv2.imwrite(str(args.png), coverage_png(model, chosen))
    write_json(args.json, {"single": {c: {"fraction_ge1": a, "fraction_ge2": b} for c, (a, b) in plan.single.items()},
                           "chosen": list(plan.chosen),
                           "totals_after_each": [{"fraction_ge1": a, "fraction_ge2": b}
                                                 for a, b in plan.totals_after_each],
                           "target_met": plan.target_met})
    return 0 if plan.target_met else 1


def cmd_export(args: argparse.Namespace) -> int:
    rig = load_rig(args.rig)
    paths = export_rig(rig, args.format, args.out)
    for p in paths:
        print(f"wrote {p}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    rig = import_rig(args.format, [Path(p) for p in args.input])
    save_rig(rig, args.out)
    print(f"wrote {args.out} ({len(rig.cameras)} cameras)")
    return 0


def _add_pass(p: argparse.ArgumentParser) -> None:
    p.add_argument("--s-start", type=float, default=-3.5, help="conveyor travel where the pass starts (m)")
    p.add_argument("--s-end", type=float, default=3.5, help="conveyor travel where the pass ends (m)")
    p.add_argument("--s-step", type=float, default=0.1, help="travel between evaluated instants (m)")


def register(sub: Any) -> None:
    p: CliParser = sub.add_parser("conveyor", help="conveyor axis and speed from a board riding the conveyor")
    p.add_argument("--rig", type=Path, required=True, help="calibrated rig file")
    p.add_argument("--camera", required=True, help="camera id that filmed the board")
    p.add_argument("--images", required=True, help="image folder/glob (with --timestamps) or a video")
    p.add_argument("--timestamps", type=Path, help="CSV 'name,t_s' per image (name = file stem)")
    add_board(p)
    p.add_argument("--out", type=Path, help="rig file to write with the conveyor updated")
    add_json_arg(p)
    p.set_defaults(func=cmd_conveyor)

    p = sub.add_parser("register", help="align the underbody mesh to RGB-D depth (ICP) -> conveyor T_cell_vehicle0")
    p.add_argument("--rig", type=Path, required=True)
    p.add_argument("--underbody", type=Path, required=True, help="underbody model YAML")
    p.add_argument("--depth", action="append", required=True, metavar="ID=PATH",
                   help="depth of an RGB-D camera: 16-bit PNG (rig depth scale) or .npy in metres")
    p.add_argument("--s-m", type=float, default=0.0, help="conveyor travel at the capture (m)")
    p.add_argument("--init", default="global",
                   help="'global' (FPFH+RANSAC), 'nominal' (the rig's conveyor pose) or a correspondences YAML")
    p.add_argument("--out", type=Path, help="rig file to write with the registration")
    add_json_arg(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("coverage", help="seam coverage over a vehicle pass: numbers and a map")
    p.add_argument("--rig", type=Path, required=True)
    p.add_argument("--underbody", type=Path, required=True)
    _add_pass(p)
    p.add_argument("--png", type=Path, help="coverage map PNG")
    p.add_argument("--report", type=Path, help="HTML report")
    add_json_arg(p)
    p.set_defaults(func=cmd_coverage)

    p = sub.add_parser("plan", help="score candidate camera placements by coverage; pick a minimal set")
    p.add_argument("--rig", type=Path, required=True, help="rig file (for the conveyor)")
    p.add_argument("--underbody", type=Path, required=True)
    p.add_argument("--candidates", type=Path, required=True, help="YAML list of candidate placements")
    p.add_argument("--max-cameras", type=int, default=6)
    p.add_argument("--target-ge1", type=float, default=0.95)
    p.add_argument("--target-ge2", type=float, default=0.8)
    _add_pass(p)
    p.add_argument("--png", type=Path, help="coverage map of the chosen set")
    add_json_arg(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("export", help="export a rig as Kalibr camchain, OpenCV FileStorage or ROS camera_info")
    p.add_argument("--rig", type=Path, required=True)
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True, help="file (kalibr, opencv) or folder (ros)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="import Kalibr / OpenCV / ROS calibration files into a rig file")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--input", nargs="+", required=True, help="file(s); ROS takes one per camera")
    p.add_argument("--out", type=Path, required=True, help="rig file to write")
    p.set_defaults(func=cmd_import)
