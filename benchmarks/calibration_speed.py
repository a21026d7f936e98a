"""Calibration solver speed: one camera from 30 views, and the 4-camera joint refinement with 100 board poses.

Detections are exact projections of the board corners through the twin's default rig plus 0.1 px
Gaussian noise (the solvers' cost does not depend on how corners were found). Baselines measured
in the same run: bare ``cv2.calibrateCamera`` for the intrinsics, and the same bundle adjustment
with a dense finite-difference Jacobian (on a 20-pose subset; dense at 100 poses needs ~0.4 GB).

    .venv/bin/python benchmarks/calibration_speed.py
"""

from __future__ import annotations

import argparse
import platform
import time

import cv2
import numpy as np

from calibration.boards import BoardDetection, BoardSpec
from calibration.bundle import bundle_adjust
from calibration.camera import CameraModel
from calibration.intrinsics import calibrate_intrinsics
from calibration.se3 import invert
from calibration.synthetic import sample_board_poses, sample_camera_poses
from pipeline.twin import default_rig

BOARD = BoardSpec.parse("chessboard:8x5:0.1")


def _detect(cam: CameraModel, T_cam_board: np.ndarray, rng: np.random.Generator) -> BoardDetection:
    obj = BOARD.object_points()
    uv, _ = cam.project_cam(obj @ T_cam_board[:3, :3].T + T_cam_board[:3, 3])
    return BoardDetection(np.arange(len(obj), dtype=np.int32), uv + rng.normal(0, 0.1, uv.shape))


def _timed(fn, repeat: int = 1):  # type: ignore[no-untyped-def]
    best = float("inf")
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--poses", type=int, default=100)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rig = default_rig(640, 480)
    cam = rig.cameras[0]
    intr_poses = sample_camera_poses(cam, BOARD, 30, (0.7, 1.1), 45, rng)
    dets = {f"i{k}": _detect(cam, T, rng) for k, T in enumerate(intr_poses)}
    t_ours, res = _timed(lambda: calibrate_intrinsics(cam.camera_id, dets, BOARD, (640, 480)), 3)
    obj = [BOARD.object_points().astype(np.float32)] * len(dets)
    img = [d.uv_px.astype(np.float32) for d in dets.values()]
    t_cv, _ = _timed(lambda: cv2.calibrateCamera(obj, img, (640, 480), None, None), 3)

    poses = sample_board_poses(rig.cameras, BOARD, args.poses, np.array([0.1, 0.0, 0.8]),
                               np.array([0.35, 0.35, 0.12]), 35.0, rng, min_cameras=2)
    views: dict[str, dict[str, BoardDetection]] = {c.camera_id: {} for c in rig.cameras}
    for k, T in enumerate(poses):
        for c in rig.cameras:
            T_cam_board = invert(c.T_cell_cam) @ T
            uv, z = c.project_cam(BOARD.object_points() @ T_cam_board[:3, :3].T + T_cam_board[:3, 3])
            if np.all(z > 0) and np.all(c.in_image(uv, 6.0)) and T_cam_board[:3, 2] @ T_cam_board[:3, 3] > 0:
                views[c.camera_id][f"v{k:03d}"] = _detect(c, T_cam_board, rng)
    n_obs = sum(len(v) for v in views.values())
    t_sparse, ba = _timed(lambda: bundle_adjust(rig.cameras, views, BOARD, progress=False))
    sub = {c: {v: d for v, d in vs.items() if int(v[1:]) < 20} for c, vs in views.items()}
    t_sparse20, _ = _timed(lambda: bundle_adjust(rig.cameras, sub, BOARD, progress=False))
    t_dense20, _ = _timed(lambda: bundle_adjust(rig.cameras, sub, BOARD, use_sparsity=False, progress=False))

    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| case | ours (s) | baseline (s) | ratio | notes |")
    print("|---|---|---|---|---|")
    print(f"| 1 camera, 30 views, 640x480 | {t_ours:.3f} | {t_cv:.3f} (bare cv2.calibrateCamera) | "
          f"{t_ours / t_cv:.2f}x | outlier rounds + per-point residuals; RMS {res.rms_px:.3f} px |")
    print(f"| BA 4 cams, {len(poses)} poses, {n_obs} views | {t_sparse:.2f} | - | - | sparse Jacobian; "
          f"RMS {ba.rms_px:.3f} px, {ba.n_function_evals} evals, {ba.n_observations} corners |")
    print(f"| BA 4 cams, 20 poses | {t_sparse20:.2f} | {t_dense20:.2f} (dense Jacobian) | "
          f"{t_dense20 / t_sparse20:.1f}x faster | same solver, same data |")


if __name__ == "__main__":
    main()
