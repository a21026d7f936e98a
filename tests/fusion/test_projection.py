"""Projection and visibility: planted defects land on the right vertices; hidden vertices get nothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.se3 import translation
from pipeline.fusion import (
    Fuser,
    FusionConfig,
    FusionError,
    MeshRaycaster,
    VisibilityLUT,
    project_vertices,
    raycast_visible,
    travel_from_pose,
)
from pipeline.fusion.synthetic import disc_heatmap, panels_mesh, upward_rig

BACK = ((-0.5, 0.5), (-0.4, 0.4), 1.0)
OCCLUDER = ((-0.1, 0.1), (-0.1, 0.1), 0.8)
DIST = (-0.05, 0.01, 0.0004, -0.0003, 0.0)


def test_kernel_matches_opencv_projection() -> None:
    rig = upward_rig([("up", (0.02, -0.01, 0.0), (0.05, 0.02, 1.0))], 320, 240, dist=DIST)
    cam = rig.cameras[0]
    mesh = panels_mesh([BACK], 0.01)
    T = translation((0.03, 0.0, 0.0))
    proj = project_vertices(cam, mesh, T)
    assert len(proj.index) > 1000
    p_cell = mesh.vertices_vehicle_m[proj.index] + T[:3, 3]
    uv_cv, z_cv = cam.project(p_cell)
    np.testing.assert_allclose(proj.uv_px, uv_cv, atol=1e-6)
    np.testing.assert_allclose(proj.z_m, z_cv, atol=1e-9)
    # and cv2 itself agrees (no hidden reuse of the same code)
    uv2, _ = cv2.projectPoints(p_cell @ cam.T_cam_cell[:3, :3].T + cam.T_cam_cell[:3, 3], np.zeros(3), np.zeros(3),
                               cam.K, cam.dist)
    np.testing.assert_allclose(proj.uv_px, uv2.reshape(-1, 2), atol=1e-6)


def test_planted_defect_lands_on_the_right_vertices() -> None:
    rig = upward_rig([("up", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], 320, 240, dist=DIST)
    mesh = panels_mesh([BACK], 0.005)
    fuser = Fuser.with_luts(rig, mesh, (-0.1, 0.1), 0.02, FusionConfig(view_mode="max", use_sensor_depth=False))
    cam = rig.cameras[0]
    T = rig.conveyor.T_cell_vehicle(0.05)
    p = np.array([0.1, -0.05, 1.0])
    radius_px = 6.0
    state = fuser.update_pose(T, {"up": disc_heatmap(cam, T, p, radius_px)})
    px_per_m = cam.K[0, 0] / 1.0  # the panel is 1 m away along the optical axis
    d = np.linalg.norm(mesh.vertices_vehicle_m - p, axis=1)
    hot = state.frame_score >= 0.5
    assert hot.sum() > 20
    assert d[hot].max() <= (radius_px + 1.5) / px_per_m  # nothing far from the defect lights up
    assert np.all(state.frame_score[d <= (radius_px - 2.0) / px_per_m] > 0.99)  # everything near it does
    centroid = mesh.vertices_vehicle_m[hot].mean(axis=0)
    assert np.linalg.norm(centroid - p) < 0.004


def test_hidden_vertex_gets_nothing_from_the_camera() -> None:
    rig = upward_rig([("up", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], 320, 240)
    mesh = panels_mesh([BACK, OCCLUDER], 0.01)
    fuser = Fuser.with_luts(rig, mesh, (0.0, 0.0), 0.02)
    ones = np.ones((240, 320), np.float32)
    state = fuser.update_pose(rig.conveyor.T_cell_vehicle(0.0), {"up": ones})
    v = mesh.vertices_vehicle_m
    back = v[:, 2] > 0.9
    shadow = back & (np.abs(v[:, 0]) < 0.115) & (np.abs(v[:, 1]) < 0.115)
    outside_shadow = (np.abs(v[:, 0]) > 0.14) | (np.abs(v[:, 1]) > 0.14)
    lit = back & outside_shadow & (np.abs(v[:, 0]) < 0.4) & (np.abs(v[:, 1]) < 0.3)
    assert shadow.sum() > 300
    assert np.all(state.n_frames[shadow] == 0) and np.all(state.score[shadow] == 0.0)
    assert np.all(state.views_mask[shadow] == 0)
    assert np.all(state.n_frames[lit] == 1) and np.all(state.score[lit] == 1.0)
    assert np.all(state.score[v[:, 2] < 0.9] == 1.0)  # the occluder itself is seen


def test_sensor_depth_hides_what_the_model_does_not_know() -> None:
    """The LUT knows only the back panel; the sensor's depth shows an occluder at capture time."""
    rig = upward_rig([("up", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], 320, 240)
    cam = rig.cameras[0]
    nominal = panels_mesh([BACK], 0.01)
    T = rig.conveyor.T_cell_vehicle(0.0)
    depth = MeshRaycaster(panels_mesh([BACK, OCCLUDER], 0.01)).depth_map(cam, T)
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    ones = {"up": np.ones((240, 320), np.float32)}
    v = nominal.vertices_vehicle_m
    shadow = (np.abs(v[:, 0]) < 0.115) & (np.abs(v[:, 1]) < 0.115)
    for use_depth, expect_seen in ((True, False), (False, True)):
        fuser = Fuser.with_luts(rig, nominal, (0.0, 0.0), 0.02, FusionConfig(use_sensor_depth=use_depth))
        state = fuser.update_pose(T, ones, depths_m={"up": depth})
        assert np.all((state.n_frames[shadow] > 0) == expect_seen)
        outside_shadow = (np.abs(v[:, 0]) > 0.14) | (np.abs(v[:, 1]) > 0.14)
        clear = outside_shadow & (np.abs(v[:, 0]) < 0.3) & (np.abs(v[:, 1]) < 0.3)
        assert state.n_frames[clear].min() == 1


def test_lut_lookup_equals_raycast_on_the_grid_and_round_trips(tmp_path: Path) -> None:
    rig = upward_rig([("up", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], 160, 120)
    cam = rig.cameras[0]
    mesh = panels_mesh([BACK, OCCLUDER], 0.02)
    rc = MeshRaycaster(mesh)
    lut = VisibilityLUT.build(cam, rc, rig.conveyor, (-0.2, 0.2), 0.05)
    assert len(lut.s_grid_m) == 9
    for s in (-0.2, 0.05, 0.2):
        expect = raycast_visible(cam, rc, rig.conveyor.T_cell_vehicle(s)).index
        np.testing.assert_array_equal(lut.lookup(s + 0.01), np.sort(expect))
    assert lut.grid_index(-5.0) == 0 and lut.grid_index(5.0) == 8
    lut.save(tmp_path / "up.npz")
    back = VisibilityLUT.load(tmp_path / "up.npz")
    np.testing.assert_array_equal(back.bits, lut.bits)
    assert back.camera_id == "up" and back.n_vertices == mesh.n_vertices
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FusionError):
        VisibilityLUT.load(tmp_path / "bad.npz")


def test_bad_inputs_raise_fusion_error() -> None:
    rig = upward_rig([("up", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], 160, 120)
    mesh = panels_mesh([BACK], 0.05)
    fuser = Fuser.with_luts(rig, mesh, (0.0, 0.0), 0.05)
    T = rig.conveyor.T_cell_vehicle(0.0)
    good = np.zeros((120, 160), np.float32)
    bad_maps: list[dict[str, np.ndarray]] = [
        {"up": np.zeros((120, 161), np.float32)},
        {"up": np.zeros((120, 160), np.float64)},
        {"up": np.full((120, 160), 1.5, np.float32)},
        {"up": np.full((120, 160), np.nan, np.float32)},
        {"nope": good},
    ]
    for hm in bad_maps:
        with pytest.raises(FusionError):
            fuser.update_pose(T, hm)
    with pytest.raises(FusionError, match="off the conveyor"):
        fuser.update_pose(translation((0.0, 0.5, 0.0)), {"up": good})
    assert travel_from_pose(rig.conveyor, translation((0.37, 0.0, 0.0))) == pytest.approx(0.37)
    with pytest.raises(FusionError):
        Fuser(rig, mesh)
    with pytest.raises(FusionError):
        FusionConfig(view_mode="median")  # type: ignore[arg-type]
