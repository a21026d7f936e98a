"""Board inputs beyond image folders: a video sampled at a step, and a ChArUco board, each driven
through xrcalib as a user would, on renders of a twin camera with known intrinsics."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from calibration.boards import BoardSpec
from calibration.cli import main
from calibration.synthetic import BoardRenderer, sample_camera_poses
from pipeline.twin import default_rig


def _renders(board: str, n: int, seed: int) -> tuple[float, list[np.ndarray]]:
    cam = default_rig(480, 360).camera("lower")
    spec = BoardSpec.parse(board)
    r = BoardRenderer(cam, spec)
    rng = np.random.default_rng(seed)
    d = (6.0 * spec.square_size, 10.0 * spec.square_size)
    return float(cam.K[0, 0]), [r.render(T, rng) for T in sample_camera_poses(cam, spec, n, d, 40.0, rng)]


def test_intrinsics_from_a_video_sampled_at_a_step(tmp_path: Path) -> None:
    fx, frames = _renders("chessboard:8x5:0.1", 24, 1)
    video = tmp_path / "board.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (480, 360))
    for g in frames:
        for _ in range(2):  # each pose held for two frames: --step 2 takes one of each
            writer.write(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    writer.release()
    assert main(["intrinsics", "--images", str(video), "--step", "2", "--board", "chessboard:8x5:0.1",
                 "--json", str(tmp_path / "i.json")]) == 0
    doc = json.loads((tmp_path / "i.json").read_text())
    cam = doc["cameras"]["cam0"] if "cameras" in doc else doc
    assert abs(cam["fx_px"] / fx - 1) < 0.005, (cam["fx_px"], fx)
    assert cam["views_used"] + len(cam["rejected"]) == 24, "one view per pose: the step skipped the repeats"
    assert cam["rms_px"] < 0.3


def test_charuco_board_is_detected_and_calibrates(tmp_path: Path) -> None:
    board = "charuco:9x6:0.08:0.06"
    fx, frames = _renders(board, 16, 2)
    (tmp_path / "imgs").mkdir()
    for k, g in enumerate(frames):
        cv2.imwrite(str(tmp_path / "imgs" / f"c{k:02d}.png"), g)
    assert main(["intrinsics", "--images", str(tmp_path / "imgs"), "--board", board,
                 "--json", str(tmp_path / "c.json")]) == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    cam = doc["cameras"]["cam0"] if "cameras" in doc else doc
    assert cam["views_used"] >= 12 and abs(cam["fx_px"] / fx - 1) < 0.005 and cam["rms_px"] < 0.3
