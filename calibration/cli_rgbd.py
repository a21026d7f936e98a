"""``xrcalib rgbd``: register an RGB-D camera's depth sensor to its colour camera and check the
depth's scale and bias, from pairs of colour and depth images of a board."""

from __future__ import annotations

import argparse
import glob
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from calibration.cli_calib import add_board, screening
from calibration.cli_cell import camera_of, read_depth
from calibration.clikit import CliParser, add_json_arg, write_json
from calibration.errors import CalibrationInputError
from calibration.rgbd import depth_scale_check, register_depth_to_color
from calibration.rig import load_rig, save_rig
from calibration.se3 import rotation_angle_deg
from calibration.views import list_images, read_gray, screen_view

log = logging.getLogger(__name__)

#: good when all hold; usable within twice these; else redo.
THRESHOLDS = {"registration_rms_mm": 3.0, "depth_scale_error": 0.005, "depth_bias_mm": 5.0}


def _verdict(rms_mm: float, scale: float, bias_mm: float) -> str:
    worst = max(rms_mm / THRESHOLDS["registration_rms_mm"], abs(scale - 1) / THRESHOLDS["depth_scale_error"],
                abs(bias_mm) / THRESHOLDS["depth_bias_mm"])
    return "good" if worst <= 1 else "usable" if worst <= 2 else "redo"


def _depth_files(spec: str) -> list[Path]:
    p = Path(spec)
    files = sorted(f for f in p.iterdir() if f.suffix in (".png", ".npy")) if p.is_dir() else \
        sorted(Path(f) for f in glob.glob(spec))
    if not files:
        raise CalibrationInputError(f"no depth images (.png or .npy) at {spec}")
    return files


def cmd_rgbd(args: argparse.Namespace) -> int:
    rig = load_rig(args.rig)
    cam = camera_of(rig, args.camera)
    if cam.depth is None:
        raise CalibrationInputError(f"camera {args.camera} has no depth sensor in {args.rig}")
    colour, depth = list_images(args.color), _depth_files(args.depth)
    if len(colour) != len(depth):
        raise CalibrationInputError(f"{len(colour)} colour images but {len(depth)} depth images; "
                                    "give one depth image per colour image (paired in name order)")
    views, rejected = [], {}
    for c, d in zip(colour, depth, strict=True):
        v = screen_view(c.stem, str(c), read_gray(c), args.board, screening(args))
        if not v.accepted or v.detection is None:
            rejected[c.stem] = v.reason
            continue
        views.append((v.detection, read_depth(d, cam.depth.depth_scale_m)))
    reg = register_depth_to_color(cam, args.board, views)
    registered = replace(cam, depth=replace(cam.depth, T_color_depth=reg.T_color_depth))
    check = depth_scale_check(registered, args.board, views)
    nominal = cam.depth.T_color_depth
    result: dict[str, Any] = {
        "camera": args.camera, "views_used": reg.n_views, "rejected": rejected,
        "T_color_depth": reg.T_color_depth.tolist(),
        "translation_mm": (1000 * reg.T_color_depth[:3, 3]).tolist(),
        "change_from_rig_mm": 1000 * float(np.linalg.norm(reg.T_color_depth[:3, 3] - nominal[:3, 3])),
        "change_from_rig_deg": rotation_angle_deg(nominal[:3, :3].T @ reg.T_color_depth[:3, :3]),
        "registration_rms_mm": 1000 * reg.rms_m, "n_pixels": reg.n_pixels,
        "depth_scale": check.scale, "depth_bias_mm": 1000 * check.bias_m, "depth_rms_mm": 1000 * check.rms_m,
        "thresholds": THRESHOLDS,
    }
    result["verdict"] = _verdict(result["registration_rms_mm"], check.scale, result["depth_bias_mm"])
    if args.out is not None:
        cams = tuple(registered if c.camera_id == cam.camera_id else c for c in rig.cameras)
        save_rig(replace(rig, cameras=cams), args.out)
    t = result["translation_mm"]
    print(f"{args.camera}: T_color_depth t = ({t[0]:.1f}, {t[1]:.1f}, {t[2]:.1f}) mm, "
          f"{result['change_from_rig_deg']:.2f} deg from the rig; plane RMS {result['registration_rms_mm']:.2f} mm; "
          f"depth scale {check.scale:.4f}, bias {result['depth_bias_mm']:+.1f} mm -> {result['verdict']} "
          f"(good: RMS <= 3 mm, |scale - 1| <= 0.5 %, |bias| <= 5 mm; usable: twice that)")
    write_json(args.json, result)
    return 0


def register(sub: Any) -> None:
    p: CliParser = sub.add_parser("rgbd", help="register a depth sensor to its colour camera; check depth scale/bias")
    p.add_argument("--rig", type=Path, required=True, help="rig file with the camera's depth sensor")
    p.add_argument("--camera", required=True, help="the RGB-D camera's id")
    p.add_argument("--color", required=True, help="colour images of the board (folder or glob)")
    p.add_argument("--depth", required=True,
                   help="depth images, one per colour image in name order: 16-bit PNG (rig depth scale) "
                        "or .npy in metres (folder or glob)")
    add_board(p)
    p.add_argument("--out", type=Path, help="rig file to write with T_color_depth updated")
    add_json_arg(p)
    p.set_defaults(func=cmd_rgbd)
