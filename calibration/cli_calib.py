"""``xrcalib`` subcommands over board views: detect, intrinsics, stereo, rig, synth."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from calibration.boards import BoardDetection, BoardSpec
from calibration.bundle import BundleResult, bundle_adjust, express_in_cell
from calibration.camera import CameraModel
from calibration.clikit import CliParser, add_json_arg, write_json
from calibration.errors import CalibrationInputError
from calibration.intrinsics import DISTORTION_CHOICES, IntrinsicsConfig, IntrinsicsResult, calibrate_intrinsics
from calibration.report import CameraSection, residual_image, verdict, verdict_line, write_html_report
from calibration.rig import Rig, load_rig, save_rig
from calibration.se3 import invert
from calibration.stereo import calibrate_stereo
from calibration.views import (
    ScreeningConfig,
    ViewResult,
    detect_views,
    list_images,
    read_gray,
    reject_near_duplicates,
    video_frames,
)

log = logging.getLogger(__name__)


# --- shared helpers ------------------------------------------------------------------------------
def board_arg(text: str) -> BoardSpec:
    try:
        return BoardSpec.parse(text)
    except CalibrationInputError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def add_board(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", type=board_arg, required=True,
                   help="chessboard:COLSxROWS:SQUARE (inner corners) or charuco:COLSxROWS:SQUARE:MARKER[:DICT]")
    p.add_argument("--min-sharpness", type=float, default=ScreeningConfig().min_sharpness,
                   help="reject views whose board sharpness (Laplacian variance) is below this")
    p.add_argument("--step", type=int, default=10, help="use every STEP-th frame of a video (10)")


def screening(args: argparse.Namespace) -> ScreeningConfig:
    return ScreeningConfig(min_sharpness=args.min_sharpness)


def load_views(source: str, args: argparse.Namespace, label: str) -> list[ViewResult]:
    """Screen the views of one camera from a folder, glob, image or video file."""
    p = Path(source)
    if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm"):
        items = ((vid, str(p), g) for vid, g, _t in video_frames(p, args.step))
        views = detect_views(items, args.board, screening(args), label)
    else:
        paths = list_images(source)
        views = detect_views(((q.stem, str(q), read_gray(q)) for q in paths), args.board, screening(args), label,
                             total=len(paths))
    if not any(v.detection is not None for v in views):
        raise CalibrationInputError(
            f"{label}: board {args.board} found in none of {len(views)} views; check --board (a chessboard's size "
            "counts inner corners, COLSxROWS)"
        )
    return views


def align_views(per_camera: dict[str, list[ViewResult]]) -> dict[str, list[ViewResult]]:
    """Pair synchronised views of several cameras: by file stem when all cameras share stems,
    else by order (equal counts needed). View ids become the shared key."""
    stems = [[v.view_id for v in vs] for vs in per_camera.values()]
    if all(set(s) == set(stems[0]) for s in stems) and len(set(stems[0])) == len(stems[0]):
        keys = stems[0]
        return {c: [next(v for v in vs if v.view_id == k) for k in keys] for c, vs in per_camera.items()}
    counts = {c: len(vs) for c, vs in per_camera.items()}
    if len(set(counts.values())) != 1:
        raise CalibrationInputError(f"cannot pair views: file names differ and counts differ {counts}")
    out: dict[str, list[ViewResult]] = {}
    for c, vs in per_camera.items():
        out[c] = []
        for i, v in enumerate(vs):
            others = "|".join(per_camera[o][i].view_id for o in per_camera)
            out[c].append(ViewResult(others, v.source, v.width_px, v.height_px, v.detection, v.sharpness, v.reason))
    return out


def accepted(views: list[ViewResult]) -> dict[str, BoardDetection]:
    return {v.view_id: v.detection for v in views if v.accepted and v.detection is not None}


def image_size(views: list[ViewResult], label: str) -> tuple[int, int]:
    sizes = {(v.width_px, v.height_px) for v in views}
    if len(sizes) != 1:
        raise CalibrationInputError(f"{label}: images have different sizes {sorted(sizes)}")
    return sizes.pop()


def view_report(views: list[ViewResult]) -> dict[str, str]:
    return {v.view_id: (v.reason or "accepted") for v in views}


def camera_json(res: IntrinsicsResult, views: list[ViewResult]) -> dict[str, Any]:
    c = res.camera
    rejected = {v.view_id: v.reason for v in views if v.reason}
    rejected.update(res.rejected)
    return {
        "model": res.distortion, "rms_px": res.rms_px, "fx_px": float(c.K[0, 0]), "fy_px": float(c.K[1, 1]),
        "cx_px": float(c.K[0, 2]), "cy_px": float(c.K[1, 2]), "dist": c.dist.tolist(),
        "focal_std_px": list(res.focal_std_px), "image_size": [c.width_px, c.height_px],
        "views_used": len(res.per_view_rms_px), "verdict": verdict(res.rms_px, len(res.per_view_rms_px)),
        "per_view_rms_px": res.per_view_rms_px, "rejected": rejected,
    }


def solve_camera(camera_id: str, views: list[ViewResult], args: argparse.Namespace) -> IntrinsicsResult:
    cfg = IntrinsicsConfig(distortion=args.model)
    return calibrate_intrinsics(camera_id, accepted(views), args.board, image_size(views, camera_id), cfg)


def camera_section(res: IntrinsicsResult, views: list[ViewResult], n_images: int = 2) -> CameraSection:
    by_id = {v.view_id: v for v in views}
    worst = sorted(res.per_view_rms_px, key=lambda k: -res.per_view_rms_px[k])[:n_images]
    imgs = []
    for k in worst:
        v = by_id.get(k)
        if v is not None and v.detection is not None:
            im = residual_image(v.source, v.detection, res.residuals_px[k])
            if im is not None:
                imgs.append((f"{res.camera.camera_id} {k}", im))
    rejected = {v.view_id: v.reason for v in views if v.reason}
    rejected.update(res.rejected)
    c = res.camera
    facts = {"model": res.distortion, "fx, fy (px)": f"{c.K[0, 0]:.2f}, {c.K[1, 1]:.2f}",
             "cx, cy (px)": f"{c.K[0, 2]:.2f}, {c.K[1, 2]:.2f}", "dist": ", ".join(f"{d:.5f}" for d in c.dist)}
    return CameraSection(c.camera_id, res.rms_px, res.per_view_rms_px, rejected, facts, tuple(imgs))


def add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=DISTORTION_CHOICES, default="plumb_bob",
                   help="distortion model: plumb_bob (k1 k2 p1 p2 k3), rational (+k4 k5 k6) or fisheye")


def print_verdicts(results: list[IntrinsicsResult]) -> None:
    for r in results:
        print(verdict_line(r.camera.camera_id, r.rms_px, len(r.per_view_rms_px)))


# --- commands ------------------------------------------------------------------------------------
def cmd_detect(args: argparse.Namespace) -> int:
    views = load_views(args.images, args, "detect")
    views = reject_near_duplicates({"cam": views}, screening(args))["cam"]
    for v in views:
        print(f"{v.view_id}: {v.reason or 'accepted'}")
    n_ok = sum(v.accepted for v in views)
    print(f"{n_ok}/{len(views)} views accepted")
    write_json(args.json, {"board": str(args.board), "views": view_report(views), "accepted": n_ok})
    return 0


def cmd_intrinsics(args: argparse.Namespace) -> int:
    views = load_views(args.images, args, args.camera)
    views = reject_near_duplicates({args.camera: views}, screening(args))[args.camera]
    res = solve_camera(args.camera, views, args)
    cams: list[CameraModel] = [res.camera]
    if args.base_rig is not None:
        base = load_rig(args.base_rig)
        cams = [res.camera.with_pose(c.T_cell_cam) if c.camera_id == args.camera else c for c in base.cameras]
        if args.camera not in base.camera_ids:
            cams.append(res.camera)
        rig = Rig(tuple(cams), base.conveyor, base.markers, base.name)
    else:
        rig = Rig(tuple(cams))
    if args.report is not None:
        write_html_report(args.report, f"Intrinsics: {args.camera}", [camera_section(res, views)],
                          {"board": str(args.board)})
    if args.out is not None:
        save_rig(rig, args.out)
    print_verdicts([res])
    write_json(args.json, {"board": str(args.board), "cameras": {args.camera: camera_json(res, views)}})
    return 0


def cmd_stereo(args: argparse.Namespace) -> int:
    if args.left_id == args.right_id:
        raise CalibrationInputError("--left-id and --right-id must differ")
    raw = {args.left_id: load_views(args.left, args, args.left_id),
           args.right_id: load_views(args.right, args, args.right_id)}
    views = reject_near_duplicates(align_views(raw), screening(args))
    lres = solve_camera(args.left_id, views[args.left_id], args)
    rres = solve_camera(args.right_id, views[args.right_id], args)
    st = calibrate_stereo(lres.camera, rres.camera, accepted(views[args.left_id]), accepted(views[args.right_id]),
                          args.board)
    left = lres.camera
    right = rres.camera.with_pose(st.T_left_right)
    pair = {"left": args.left_id, "right": args.right_id, "rms_px": st.rms_px, "baseline": st.baseline,
            "baseline_units": "board units (square size)", "rotation_deg": st.rotation_deg,
            "epipolar_rms_px": st.epipolar_rms_px, "T_left_right": st.T_left_right.tolist(),
            "views_used": len(st.per_view_rms_px), "per_view_rms_px": st.per_view_rms_px}
    if args.report is not None:
        write_html_report(args.report, f"Stereo: {args.left_id} + {args.right_id}",
                          [camera_section(lres, views[args.left_id]), camera_section(rres, views[args.right_id])],
                          {"board": str(args.board), "stereo RMS": f"{st.rms_px:.3f} px",
                           "rectified epipolar RMS": f"{st.epipolar_rms_px:.3f} px",
                           "baseline": f"{st.baseline:.4f} board units", "rotation": f"{st.rotation_deg:.3f} deg"})
    if args.out is not None:
        save_rig(Rig((left, right), name="stereo"), args.out)
    print_verdicts([lres, rres])
    print(f"pair {args.left_id}-{args.right_id}: RMS {st.rms_px:.3f} px, epipolar {st.epipolar_rms_px:.3f} px, "
          f"baseline {st.baseline:.4f} board units, rotation {st.rotation_deg:.3f} deg")
    write_json(args.json, {
        "board": str(args.board),
        "cameras": {args.left_id: camera_json(lres, views[args.left_id]),
                    args.right_id: camera_json(rres, views[args.right_id])},
        "pair": pair,
    })
    return 0


def parse_camera_sources(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise CalibrationInputError(f"--camera {item!r}: expected ID=GLOB")
        cid, src = item.split("=", 1)
        if cid in out:
            raise CalibrationInputError(f"camera id {cid!r} given twice")
        out[cid] = src
    return out


def load_references(path: Path) -> dict[str, np.ndarray]:
    """``{view_id: T_cell_board (4x4)}`` from a YAML mapping ``references: {view: 4x4 rows}``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        refs = {str(k): np.asarray(v, dtype=np.float64) for k, v in data["references"].items()}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise CalibrationInputError(f"{path}: cannot read references (expected 'references: {{VIEW: 4x4}}'): {e}") \
            from e
    for k, T in refs.items():
        if T.shape != (4, 4):
            raise CalibrationInputError(f"{path}: references.{k}: expected a 4x4 matrix")
    return refs


def marker_references(items: list[str], base: Rig | None, source: Path | None) -> dict[str, np.ndarray]:
    """``MARKER=VIEW`` items: in VIEW the board sat on the surveyed marker, so ``T_cell_board`` is the
    marker's ``T_cell_marker`` from the rig file given with ``--intrinsics``."""
    out: dict[str, np.ndarray] = {}
    for item in items:
        if "=" not in item:
            raise CalibrationInputError(f"--reference-marker {item!r}: expected MARKER=VIEW")
        mid, view = item.split("=", 1)
        markers = {m.marker_id: m for m in base.markers} if base is not None else {}
        if mid not in markers:
            where = f"{source} has {sorted(markers)}" if base is not None else "give --intrinsics RIG with the markers"
            raise CalibrationInputError(f"--reference-marker: unknown marker {mid!r}; {where}")
        out[view] = markers[mid].T_cell_marker
    return out


def cmd_rig(args: argparse.Namespace) -> int:
    sources = parse_camera_sources(args.camera)
    base = load_rig(args.intrinsics) if args.intrinsics is not None else None
    if base is not None:
        unknown = [c for c in sources if c not in base.camera_ids]
        if unknown:
            raise CalibrationInputError(f"unknown camera ids {unknown}; {args.intrinsics} has {list(base.camera_ids)}")
    refs = load_references(args.reference) if args.reference is not None else {}
    refs |= marker_references(args.reference_marker or [], base, args.intrinsics)
    raw = {cid: load_views(src, args, cid) for cid, src in sources.items()}
    views = reject_near_duplicates(align_views(raw), screening(args))
    intr: dict[str, IntrinsicsResult] = {}
    cams = []
    for cid in sources:
        if base is not None:
            cams.append(base.camera(cid))
        else:
            intr[cid] = solve_camera(cid, views[cid], args)
            cams.append(intr[cid].camera)
    dets = {cid: accepted(vs) for cid, vs in views.items()}
    ba = bundle_adjust(cams, dets, args.board, args.reference_camera)
    cams_cell = (express_in_cell(cams, ba, refs) if refs
                 else tuple(c.with_pose(ba.T_ref_cam[c.camera_id]) for c in cams))
    rig = Rig(tuple(cams_cell), base.conveyor, base.markers, base.name) if base is not None else Rig(cams_cell)
    result = _rig_json(args, ba, cams_cell, intr, views, refs)
    if args.report is not None:
        sections = []
        for c in cams_cell:
            cid = c.camera_id
            rej = {v.view_id: v.reason for v in views[cid] if v.reason}
            facts = {"T_cell_cam t": ", ".join(f"{x:.4f}" for x in c.T_cell_cam[:3, 3]),
                     "σ rotation": f"{ba.sigma_rot_deg[cid]:.4f} deg", "σ position": f"{ba.sigma_t[cid]:.5f}"}
            sections.append(CameraSection(cid, ba.per_camera_rms_px.get(cid, float("nan")),
                                          ba.per_view_rms_px.get(cid, {}), rej, facts))
        write_html_report(args.report, "Rig calibration (bundle adjustment)", sections,
                          {"board": str(args.board), "RMS": f"{ba.rms_px:.3f} px",
                           "frame": "cell (reference board poses)" if refs else f"camera {ba.reference_camera}"})
    if args.out is not None:
        save_rig(rig, args.out)
    for c in cams_cell:
        cid = c.camera_id
        print(verdict_line(cid, ba.per_camera_rms_px.get(cid, float("inf")), len(ba.per_view_rms_px.get(cid, {}))))
    print(f"bundle adjustment: RMS {ba.rms_px:.3f} px over {ba.n_observations} corners, "
          f"{len(ba.T_ref_board)} board poses")
    write_json(args.json, result)
    return 0


def _rig_json(
    args: argparse.Namespace, ba: BundleResult, cams: tuple[CameraModel, ...], intr: dict[str, IntrinsicsResult],
    views: dict[str, list[ViewResult]], refs: dict[str, np.ndarray],
) -> dict[str, Any]:
    out: dict[str, Any] = {"board": str(args.board), "rms_px": ba.rms_px, "board_poses": len(ba.T_ref_board),
                           "frame": "cell" if refs else f"camera:{ba.reference_camera}", "cameras": {}}
    for c in cams:
        cid = c.camera_id
        n = len(ba.per_view_rms_px.get(cid, {}))
        entry: dict[str, Any] = {
            "rms_px": ba.per_camera_rms_px.get(cid), "views_used": n,
            "verdict": verdict(ba.per_camera_rms_px.get(cid, float("inf")), n),
            "T_cell_cam": c.T_cell_cam.tolist(), "sigma_rot_deg": ba.sigma_rot_deg[cid], "sigma_t": ba.sigma_t[cid],
            "fx_px": float(c.K[0, 0]), "fy_px": float(c.K[1, 1]),
            "per_view_rms_px": ba.per_view_rms_px.get(cid, {}),
            "rejected": {v.view_id: v.reason for v in views[cid] if v.reason},
        }
        if cid in intr:
            entry["intrinsics"] = camera_json(intr[cid], views[cid])
        out["cameras"][cid] = entry
    return out


def cmd_synth(args: argparse.Namespace) -> int:
    """Render board views of a rig's cameras with exact ground truth (see calibration.synthetic)."""
    from calibration.synthetic import BoardRenderer, sample_board_poses, sample_camera_poses

    rig = load_rig(args.rig)
    rng = np.random.default_rng(args.seed)
    board = args.board
    out = Path(args.out)
    center = np.asarray(args.center, dtype=np.float64)
    poses = sample_board_poses(rig.cameras, board, args.poses, center, np.array([0.35, 0.35, 0.1]), 35.0, rng,
                               min_cameras=2)
    seen: dict[int, int] = {}
    for cam in rig.cameras:
        r = BoardRenderer(cam, board)
        d_intr = out / "intrinsics" / cam.camera_id
        d_joint = out / "joint" / cam.camera_id
        d_intr.mkdir(parents=True, exist_ok=True)
        d_joint.mkdir(parents=True, exist_ok=True)
        dist = (6.0 * board.square_size, 11.0 * board.square_size)
        for k, T in enumerate(sample_camera_poses(cam, board, args.intrinsic_views, dist, 45.0, rng)):
            cv2.imwrite(str(d_intr / f"i{k:03d}.png"), r.render(T, rng))
        for k, T_cell_board in enumerate(poses):
            T = invert(cam.T_cell_cam) @ T_cell_board
            if r.visible(T):
                seen[k] = seen.get(k, 0) + 1
                cv2.imwrite(str(d_joint / f"v{k:03d}.png"), r.render(T, rng))
            else:  # the shot exists for every camera; this one shows no board
                cv2.imwrite(str(d_joint / f"v{k:03d}.png"), np.full((cam.height_px, cam.width_px), 70, np.uint8))
    ref = max(seen, key=lambda k: seen[k])
    refs = {f"v{ref:03d}": poses[ref].tolist()}
    (out / "references.yaml").write_text(yaml.safe_dump({"references": refs}), encoding="utf-8")
    print(f"wrote {args.poses} shots for {len(rig.cameras)} cameras under {out}; reference view v{ref:03d}")
    write_json(args.json, {"out": str(out), "poses": args.poses, "reference_view": f"v{ref:03d}"})
    return 0


def register(sub: Any) -> None:
    p: CliParser = sub.add_parser("detect", help="detect the board in images or a video; report each view")
    p.add_argument("--images", required=True, help="folder, glob ('dir/*.png'), image or video file")
    add_board(p)
    add_json_arg(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("intrinsics", help="calibrate one camera's intrinsics")
    p.add_argument("--camera", default="cam0", help="camera id (cam0)")
    p.add_argument("--images", required=True, help="folder, glob, image or video file")
    add_board(p)
    add_model(p)
    p.add_argument("--base-rig", type=Path, help="rig file to update (keeps the other cameras and poses)")
    p.add_argument("--out", type=Path, help="rig file to write (atomically)")
    p.add_argument("--report", type=Path, help="HTML report to write")
    add_json_arg(p)
    p.set_defaults(func=cmd_intrinsics)

    p = sub.add_parser("stereo", help="calibrate two cameras and their relative pose")
    p.add_argument("--left", required=True, help="left images: folder, glob or video")
    p.add_argument("--right", required=True, help="right images: folder, glob or video")
    p.add_argument("--left-id", default="left")
    p.add_argument("--right-id", default="right")
    add_board(p)
    add_model(p)
    p.add_argument("--out", type=Path, help="rig file to write (the left camera defines the frame)")
    p.add_argument("--report", type=Path, help="HTML report to write")
    add_json_arg(p)
    p.set_defaults(func=cmd_stereo)

    p = sub.add_parser("rig", help="calibrate 2-6 cameras jointly (bundle adjustment) into the cell frame")
    p.add_argument("--camera", action="append", required=True, metavar="ID=GLOB",
                   help="one per camera; views pair by file name (or by order)")
    add_board(p)
    add_model(p)
    p.add_argument("--intrinsics", type=Path, help="rig file with the cameras' intrinsics (else solved here)")
    p.add_argument("--reference", type=Path, help="YAML 'references: {VIEW: T_cell_board 4x4}' (surveyed poses)")
    p.add_argument("--reference-marker", action="append", metavar="MARKER=VIEW",
                   help="in VIEW the board sat on a surveyed marker of the --intrinsics rig file (its T_cell_marker)")
    p.add_argument("--reference-camera", help="camera fixing the frame when no reference is given (first)")
    p.add_argument("--out", type=Path, help="rig file to write (atomically)")
    p.add_argument("--report", type=Path, help="HTML report to write")
    add_json_arg(p)
    p.set_defaults(func=cmd_rig)

    p = sub.add_parser("synth", help="render exact synthetic board views through a rig's cameras")
    p.add_argument("--rig", type=Path, required=True, help="rig file whose cameras render the views")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--board", type=board_arg, default=BoardSpec.parse("chessboard:8x5:0.1"))
    p.add_argument("--poses", type=int, default=30, help="joint board poses (30)")
    p.add_argument("--intrinsic-views", type=int, default=20, help="views per camera for intrinsics (20)")
    p.add_argument("--center", type=float, nargs=3, default=(0.1, 0.0, 0.8), help="board centre in the cell (m)")
    p.add_argument("--seed", type=int, default=0)
    add_json_arg(p)
    p.set_defaults(func=cmd_synth)
