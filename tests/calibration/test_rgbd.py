"""RGB-D on a camera of the twin's rig: depth-to-colour registration against a planted sensor offset,
and the depth scale and bias check with a known depth error applied."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.boards import BoardDetection, BoardSpec
from calibration.camera import CameraModel
from calibration.cli import main
from calibration.errors import CalibrationInputError, SolveError
from calibration.pose import board_pose
from calibration.rgbd import depth_scale_check, register_depth_to_color
from calibration.rig import load_rig, save_rig
from calibration.se3 import from_rotvec, invert, rotation_angle_deg
from calibration.synthetic import BoardRenderer, sample_camera_poses
from calibration.views import screen_view
from pipeline.twin import default_rig

BOARD = BoardSpec.parse("chessboard:8x5:0.1")


def test_depth_scale_and_bias_recovered() -> None:
    rig = default_rig(320, 240)
    cam = rig.camera("lower")
    r = BoardRenderer(cam, BOARD)
    rng = np.random.default_rng(5)
    views = []
    for T in sample_camera_poses(cam, BOARD, 6, (0.6, 1.2), 40.0, rng):
        v = screen_view("d", "", r.render(T, rng), BOARD)
        if v.accepted and v.detection is not None:
            z = r.depth(T).astype(np.float64)
            noisy = np.where(z > 0, 1.01 * z + 0.003 + rng.normal(0, 0.001, z.shape), 0.0)  # 1% scale, +3 mm
            views.append((v.detection, noisy))
    assert len(views) >= 4
    res = depth_scale_check(cam, BOARD, views)
    assert abs(res.scale - 1.01) < 0.002
    assert abs(res.bias_m - 0.003) < 0.0015
    assert res.rms_m < 0.0015
    with pytest.raises(CalibrationInputError, match="no depth"):
        depth_scale_check(rig.camera("oblique_left"), BOARD, views)


def _depth_views(T_color_depth: np.ndarray, n: int = 6) -> tuple[CameraModel, list[tuple[BoardDetection, np.ndarray]]]:
    """Colour views of the board and the depth sensor's images of it, the sensor sitting at
    ``T_color_depth``; off the board the depth sensor sees a wall 2.5 m away."""
    cam = default_rig(320, 240).camera("lower")
    assert cam.depth is not None
    d = cam.depth
    dcam = CameraModel("lower-depth", d.K, d.dist, d.width_px, d.height_px)
    colour, depth = BoardRenderer(cam, BOARD), BoardRenderer(dcam, BOARD)
    rng = np.random.default_rng(11)
    views = []
    for T in sample_camera_poses(cam, BOARD, n, (0.6, 1.2), 40.0, rng):
        v = screen_view("d", "", colour.render(T, rng), BOARD)
        if v.accepted and v.detection is not None:
            z = depth.depth(invert(T_color_depth) @ T).astype(np.float64)
            z = np.where(z > 0, z + rng.normal(0, 0.001, z.shape), 2.5)
            views.append((v.detection, z))
    return cam, views


def test_depth_to_colour_registration_recovers_a_planted_offset() -> None:
    T_true = from_rotvec(np.deg2rad([0.6, -0.4, 0.8]), (0.025, -0.004, 0.003))  # 25 mm baseline, < 1 deg
    cam, views = _depth_views(T_true, 8)
    assert len(views) >= 4
    res = register_depth_to_color(cam, BOARD, views)  # starts from the rig's nominal (identity)
    err_mm = 1000 * np.linalg.norm(res.T_color_depth[:3, 3] - T_true[:3, 3])
    err_deg = rotation_angle_deg(res.T_color_depth[:3, :3].T @ T_true[:3, :3])
    assert err_mm < 0.5 and err_deg < 0.1, (err_mm, err_deg)
    assert res.rms_m < 0.002 and res.n_views == len(views)


def test_depth_registration_refuses_too_few_or_parallel_views() -> None:
    cam, views = _depth_views(np.eye(4))
    with pytest.raises(CalibrationInputError, match="at least 3"):
        register_depth_to_color(cam, BOARD, views[:2])
    with pytest.raises(SolveError, match="nearly parallel"):
        register_depth_to_color(cam, BOARD, [views[0]] * 4)


def test_xrcalib_rgbd_writes_the_registration_into_the_rig(tmp_path: Path) -> None:
    T_true = from_rotvec(np.deg2rad([0.5, 0.0, -0.5]), (0.02, 0.003, -0.002))
    cam, views = _depth_views(T_true, 8)
    rig_file = tmp_path / "rig.yaml"
    save_rig(default_rig(320, 240), rig_file)
    (tmp_path / "c").mkdir()
    (tmp_path / "d").mkdir()
    for k, (det, depth) in enumerate(views):  # the colour pictures again, and depth as a sensor writes it
        T = board_pose(cam, BOARD, det)
        cv2.imwrite(str(tmp_path / "c" / f"{k:02d}.png"), BoardRenderer(cam, BOARD).render(T))
        cv2.imwrite(str(tmp_path / "d" / f"{k:02d}.png"), np.round(depth * 1000).astype(np.uint16))  # mm
    out, res = tmp_path / "rig_rgbd.yaml", tmp_path / "rgbd.json"
    code = main(["rgbd", "--rig", str(rig_file), "--camera", "lower", "--board", "chessboard:8x5:0.1",
                 "--color", str(tmp_path / "c"), "--depth", str(tmp_path / "d"), "--out", str(out), "--json", str(res)])
    assert code == 0
    doc = json.loads(res.read_text())
    assert np.allclose(doc["translation_mm"], 1000 * T_true[:3, 3], atol=1.0), doc["translation_mm"]
    assert doc["verdict"] == "good" and abs(doc["depth_scale"] - 1) < 0.003 and abs(doc["depth_bias_mm"]) < 2
    sensor = load_rig(out).camera("lower").depth
    assert sensor is not None and np.allclose(sensor.T_color_depth, doc["T_color_depth"])
    # a depth image short: a clear error and no rig file
    (tmp_path / "d" / "00.png").unlink()
    out.unlink()
    assert main(["rgbd", "--rig", str(rig_file), "--camera", "lower", "--board", "chessboard:8x5:0.1",
                 "--color", str(tmp_path / "c"), "--depth", str(tmp_path / "d"), "--out", str(out)]) == 2
    assert not out.exists()
