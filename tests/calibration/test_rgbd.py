"""Depth scale and bias check on an RGB-D camera of the twin's rig, with a known depth error applied."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.boards import BoardSpec
from calibration.errors import CalibrationInputError
from calibration.rgbd import depth_scale_check
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
