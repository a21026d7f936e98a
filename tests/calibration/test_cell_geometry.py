"""Underbody registration (twin depth), seam coverage and placement planning, interop round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.camera import CameraModel
from calibration.coverage import plan_cameras, seam_coverage
from calibration.errors import InteropError
from calibration.interop import export_rig, import_rig
from calibration.registration import depth_cloud_cell, kabsch, register_underbody
from calibration.se3 import invert, look_at, rotation_angle_deg, transform_points
from pipeline.twin import DigitalTwin


def test_registration_recovers_vehicle_pose_within_2mm(small_twin: DigitalTwin) -> None:
    scene = small_twin.vehicle(0, defect_types=[])
    s_m = 0.3
    sample = small_twin.render(scene, s_m)
    clouds = [depth_cloud_cell(small_twin.rig.camera(f.camera_id), f.depth_m)
              for f in sample.frameset.frames if f.depth_m is not None]
    assert len(clouds) == 2
    T_true = small_twin.rig.conveyor.T_cell_vehicle(s_m)
    # four picked correspondences, each off by up to 2 cm, as a person clicking on a screen would be
    rng = np.random.default_rng(0)
    p_vehicle = small_twin.underbody.vertices_vehicle_m[rng.choice(len(small_twin.underbody.vertices_vehicle_m), 4)]
    p_cell = transform_points(T_true, p_vehicle) + rng.uniform(-0.02, 0.02, (4, 3))
    init = kabsch(p_vehicle, p_cell)
    res = register_underbody(small_twin.underbody, clouds, init)
    E = invert(T_true) @ res.T_cell_vehicle
    assert 1000 * np.linalg.norm(E[:3, 3]) < 2.0
    assert rotation_angle_deg(E) < 0.1
    assert res.fitness > 0.9 and res.inlier_rmse_m < 0.005


def test_coverage_full_pass_partial_instant_and_a_useless_camera(small_twin: DigitalTwin) -> None:
    rig = small_twin.rig
    s0, s1 = small_twin.pass_range_m()
    full = seam_coverage(rig.cameras, rig.conveyor, small_twin.underbody, np.arange(s0, s1, 0.1), progress=False)
    f1, f2 = full.totals()
    assert f1 > 0.95 and f2 > 0.8
    one = seam_coverage(rig.cameras, rig.conveyor, small_twin.underbody, [0.0], progress=False)
    assert one.totals()[0] < f1  # one instant sees less than a whole pass
    # a camera above the car looking up at the roof sees no underbody seam
    up = CameraModel("roof", rig.cameras[0].K, np.zeros(5), 320, 240, look_at((0, 0, 3.0), (0, 0, 5.0), up=(1, 0, 0)))
    roof = seam_coverage([up], rig.conveyor, small_twin.underbody, np.arange(s0, s1, 0.2), progress=False)
    assert roof.totals() == (0.0, 0.0)
    plan = plan_cameras(full, 4)
    assert plan.target_met and 1 <= len(plan.chosen) <= 4
    assert plan.totals_after_each[-1][0] >= 0.95


def test_interop_round_trips(small_twin: DigitalTwin, tmp_path: Path) -> None:
    rig = small_twin.rig
    for fmt, out in (("kalibr", tmp_path / "camchain.yaml"), ("opencv", tmp_path / "cv.yaml"),
                     ("ros", tmp_path / "ros")):
        back = import_rig(fmt, export_rig(rig, fmt, out))
        assert back.camera_ids == rig.camera_ids
        for a, b in zip(rig.cameras, back.cameras, strict=True):
            assert np.allclose(a.K, b.K) and np.allclose(a.dist[: b.dist.size], b.dist)
            if fmt == "opencv":
                assert np.allclose(a.T_cell_cam, b.T_cell_cam)
            if fmt == "kalibr":  # Kalibr keeps relative poses; cam0 becomes the origin
                rel = invert(rig.cameras[0].T_cell_cam) @ a.T_cell_cam
                assert np.allclose(rel, b.T_cell_cam, atol=1e-9)


def test_kalibr_refuses_rational_and_reads_bad_files_cleanly(small_twin: DigitalTwin, tmp_path: Path) -> None:
    cam = small_twin.rig.cameras[0]
    rational = CameraModel("r", cam.K, np.r_[cam.dist, 0.01, 0.0, 0.0], 320, 240)
    from calibration.rig import Rig

    with pytest.raises(InteropError, match="4 coefficients"):
        export_rig(Rig((rational,)), "kalibr", tmp_path / "k.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cam0: {intrinsics: [1, 2]}\n")
    with pytest.raises(InteropError, match="cam0"):
        import_rig("kalibr", [bad])
    bad.write_text("image_width: 10\ncamera_matrix: {data: [1]}\n")
    with pytest.raises(InteropError):
        import_rig("ros", [bad])
