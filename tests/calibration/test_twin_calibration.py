"""Calibration against the twin's rig: exact synthetic board views with known ground truth (480x360)."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.boards import BoardDetection, BoardSpec
from calibration.bundle import bundle_adjust, express_in_cell
from calibration.camera import CameraModel
from calibration.conveyor_calib import calibrate_conveyor
from calibration.errors import CalibrationInputError
from calibration.intrinsics import calibrate_intrinsics
from calibration.pose import board_pose
from calibration.rig import Rig
from calibration.se3 import invert, make_T, rotation_angle_deg
from calibration.synthetic import BoardRenderer, sample_board_poses, sample_camera_poses
from calibration.views import screen_view
from pipeline.twin import default_rig

BOARD = BoardSpec.parse("chessboard:8x5:0.1")
W, H = 480, 360


@pytest.fixture(scope="module")
def twin_rig() -> Rig:
    return default_rig(W, H)


@pytest.fixture(scope="module")
def sessions(twin_rig: Rig) -> tuple[dict[str, CameraModel], dict[str, dict[str, BoardDetection]], list[np.ndarray]]:
    """Per camera: intrinsics from its own session; then joint views of 30 shared board poses."""
    rng = np.random.default_rng(7)
    poses = sample_board_poses(twin_rig.cameras, BOARD, 30, np.array([0.1, 0.0, 0.8]), np.array([0.35, 0.35, 0.12]),
                               35.0, rng, min_cameras=2)
    cams: dict[str, CameraModel] = {}
    joint: dict[str, dict[str, BoardDetection]] = {}
    for cam in twin_rig.cameras:
        r = BoardRenderer(cam, BOARD)
        intr = {}
        for k, T in enumerate(sample_camera_poses(cam, BOARD, 25, (0.7, 1.1), 45.0, rng)):
            v = screen_view(f"i{k}", "", r.render(T, rng), BOARD)
            if v.accepted and v.detection is not None:
                intr[v.view_id] = v.detection
        cams[cam.camera_id] = calibrate_intrinsics(cam.camera_id, intr, BOARD, (W, H)).camera
        joint[cam.camera_id] = {}
        for k, T_cell_board in enumerate(poses):
            T = invert(cam.T_cell_cam) @ T_cell_board
            if r.visible(T):
                v = screen_view(f"v{k:03d}", "", r.render(T, rng), BOARD)
                if v.accepted and v.detection is not None:
                    joint[cam.camera_id][v.view_id] = v.detection
    return cams, joint, poses


def test_focal_length_within_half_percent(twin_rig: Rig, sessions: tuple) -> None:  # type: ignore[type-arg]
    cams, _, _ = sessions
    for truth in twin_rig.cameras:
        est = cams[truth.camera_id]
        assert abs(est.K[0, 0] / truth.K[0, 0] - 1) < 0.005, truth.camera_id
        assert abs(est.K[1, 1] / truth.K[1, 1] - 1) < 0.005, truth.camera_id


def test_bundle_adjustment_recovers_camera_poses(twin_rig: Rig, sessions: tuple) -> None:  # type: ignore[type-arg]
    cams, joint, poses = sessions
    ba = bundle_adjust(list(cams.values()), joint, BOARD, progress=False)
    assert ba.rms_px < 0.3
    # the surveyed reference: the three board poses seen by the most cameras
    counts = {v: sum(v in joint[c] for c in joint) for v in ba.T_ref_board}
    refs = {v: poses[int(v[1:])] for v in sorted(counts, key=lambda v: -counts[v])[:3]}
    cell = {c.camera_id: c for c in express_in_cell(list(cams.values()), ba, refs)}
    for truth in twin_rig.cameras:
        est = cell[truth.camera_id]
        err_mm = 1000 * np.linalg.norm(est.T_cell_cam[:3, 3] - truth.T_cell_cam[:3, 3])
        err_deg = rotation_angle_deg(invert(est.T_cell_cam) @ truth.T_cell_cam)
        assert err_mm < 2.0 and err_deg < 0.1, (truth.camera_id, err_mm, err_deg)
        if truth.camera_id != ba.reference_camera:
            assert 0 < ba.sigma_t[truth.camera_id] < 0.002  # one-sigma, metres


def test_bundle_adjustment_rejects_unknown_camera(sessions: tuple) -> None:  # type: ignore[type-arg]
    cams, joint, _ = sessions
    with pytest.raises(CalibrationInputError, match="unknown camera ids"):
        bundle_adjust(list(cams.values()), {**joint, "nope": {}}, BOARD, progress=False)


def test_conveyor_axis_and_speed_from_a_riding_board(twin_rig: Rig) -> None:
    cam = twin_rig.camera("lower")
    r = BoardRenderer(cam, BOARD)
    rng = np.random.default_rng(3)
    axis_true = np.array([np.cos(np.radians(2.0)), np.sin(np.radians(2.0)), 0.0])  # a slightly skewed conveyor
    speed = 0.12
    R0 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # short side along the travel
    start = np.array([-0.5, -0.35, 0.85])
    t = np.arange(30) * 0.25
    poses, times = [], []
    for ti in t:
        T_cell_board = make_T(R0, start + axis_true * speed * ti)
        T = invert(cam.T_cell_cam) @ T_cell_board
        if not r.visible(T):
            continue
        v = screen_view("c", "", r.render(T, rng), BOARD)
        if not v.accepted or v.detection is None:
            continue
        poses.append(cam.T_cell_cam @ board_pose(cam, BOARD, v.detection))
        times.append(float(ti))
    assert len(poses) >= 8
    res = calibrate_conveyor(poses, times)
    angle = np.degrees(np.arccos(np.clip(res.axis_cell @ axis_true, -1, 1)))
    assert angle < 0.1
    assert abs(res.speed_mps / speed - 1) < 0.01
    assert res.timestamps_consistent
    bad = list(times)
    bad[4] += 0.2  # one frame stamped 0.2 s late
    flagged = calibrate_conveyor(poses, bad)
    assert not flagged.timestamps_consistent
    assert any("travel" in s for s in flagged.timestamp_issues)
    with pytest.raises(CalibrationInputError, match="timestamps must increase"):
        calibrate_conveyor(poses, times[::-1])
