from __future__ import annotations

import numpy as np
import pytest

from calibration.camera import CameraModel, DepthIntrinsics, intrinsics_from_fov
from calibration.se3 import from_rotvec, invert, is_rigid, look_at, rotation_angle_deg, transform_points

K = intrinsics_from_fov(640, 480, 90.0)
MODELS = {
    "plumb_bob": ("pinhole", np.array([-0.08, 0.02, 0.001, -0.0005, 0.003])),
    "rational": ("pinhole", np.array([-0.1, 0.03, 0.0005, 0.0002, 0.0, 0.01, 0.002, 0.0])),
    "fisheye": ("fisheye", np.array([0.05, -0.01, 0.002, -0.0005])),
}


def _camera(name: str) -> CameraModel:
    model, dist = MODELS[name]
    T = look_at((0.1, -0.2, 0.0), (0.0, 0.0, 1.0), up=(1.0, 0.0, 0.0))
    return CameraModel("cam", K, dist, 640, 480, T, model)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_pixel_depth_round_trip_with_distortion(name: str) -> None:
    cam = _camera(name)
    rng = np.random.default_rng(0)
    uv = rng.uniform([5, 5], [634, 474], size=(500, 2))
    z = rng.uniform(0.3, 3.0, size=500)
    p_cam = cam.unproject(uv, z)
    np.testing.assert_allclose(p_cam[:, 2], z, rtol=1e-12)
    uv2, z2 = cam.project_cam(p_cam)
    np.testing.assert_allclose(uv2, uv, atol=1e-4)
    np.testing.assert_allclose(z2, z)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cell_points_round_trip(name: str) -> None:
    cam = _camera(name)
    rng = np.random.default_rng(1)
    p_cam = np.column_stack([rng.uniform(-0.4, 0.4, 200), rng.uniform(-0.3, 0.3, 200), rng.uniform(0.8, 1.5, 200)])
    p_cell = transform_points(cam.T_cell_cam, p_cam)
    uv, z = cam.project(p_cell)
    assert np.all(cam.in_image(uv))
    back = transform_points(cam.T_cell_cam, cam.unproject(uv, z))
    np.testing.assert_allclose(back, p_cell, atol=1e-6)


def test_distortion_actually_moves_pixels() -> None:
    """Guards the round-trip tests: they would pass trivially if distortion were ignored."""
    cam = _camera("plumb_bob")
    ideal = CameraModel("cam", K, np.zeros(5), 640, 480, cam.T_cell_cam)
    p = np.array([[0.5, 0.35, 1.0]])
    assert np.linalg.norm(cam.project_cam(p)[0] - ideal.project_cam(p)[0]) > 5.0


def test_points_behind_camera_are_nan() -> None:
    cam = _camera("plumb_bob")
    uv, _ = cam.project_cam(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]))
    assert np.isnan(uv[0]).all() and not np.isnan(uv[1]).any()
    assert not cam.in_image(uv)[0]


def test_pixel_rays_match_unproject() -> None:
    cam = CameraModel("c", intrinsics_from_fov(64, 48, 80), MODELS["plumb_bob"][1], 64, 48)
    rays = cam.pixel_rays_cam()
    assert rays.shape == (48, 64, 3)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=2), 1.0)
    uv, _ = cam.project_cam(rays.reshape(-1, 3))
    grid = np.stack(np.meshgrid(np.arange(64), np.arange(48)), axis=-1).reshape(-1, 2)
    np.testing.assert_allclose(uv, grid, atol=1e-4)


def test_fov_and_validation() -> None:
    cam = _camera("plumb_bob")
    assert cam.fov_deg[0] == pytest.approx(90.0)
    with pytest.raises(ValueError, match="3x3"):
        CameraModel("c", np.eye(2), np.zeros(5), 10, 10)
    with pytest.raises(ValueError, match="coefficients"):
        CameraModel("c", K, np.zeros(3), 640, 480)
    with pytest.raises(ValueError, match="rigid"):
        CameraModel("c", K, np.zeros(5), 640, 480, np.diag([2.0, 1, 1, 1]))
    with pytest.raises(ValueError, match="camera_id"):
        CameraModel("bad id!", K, np.zeros(5), 640, 480)
    with pytest.raises(ValueError, match="depth_scale_m"):
        DepthIntrinsics(K, np.zeros(5), 640, 480, depth_scale_m=0.0)


def test_se3_helpers() -> None:
    T = from_rotvec([0.1, -0.2, 0.3], [1.0, 2.0, 3.0])
    assert is_rigid(T)
    np.testing.assert_allclose(T @ invert(T), np.eye(4), atol=1e-12)
    assert rotation_angle_deg(T) == pytest.approx(np.degrees(np.linalg.norm([0.1, -0.2, 0.3])))
    cam = look_at((0, 0, 0), (0, 0, 5), up=(1, 0, 0))
    np.testing.assert_allclose(cam[:3, 2], [0, 0, 1])  # optical axis points at the target
    np.testing.assert_allclose(cam[:3, 1], [-1, 0, 0])  # image down is world -x when up is +x
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 0), (0, 0, 1), up=(0, 0, 1))
