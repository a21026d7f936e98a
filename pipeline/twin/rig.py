"""The twin's default inspection cell: 4 cameras below the conveyor, 2 of them RGB-D.

The paper's "lower" camera looks straight up at the underbody; three oblique
views (left, right, front) cover the flanks, sills and the seams that the lower
view sees at grazing angles. The vehicle's underbody is ``UNDERBODY_Z_M`` above
the cell floor, travelling along +x at ``speed_mps``.
"""

from __future__ import annotations

import numpy as np

from calibration.camera import CameraModel, DepthIntrinsics, intrinsics_from_fov
from calibration.conveyor import Conveyor
from calibration.rig import Marker, Rig
from calibration.se3 import look_at, make_T, translation

UNDERBODY_Z_M = 1.0
DEFAULT_HFOV_DEG = 90.0
#: (id, eye in cell, target in cell, RGB-D?)
CAMERA_LAYOUT: tuple[tuple[str, tuple[float, float, float], tuple[float, float, float], bool], ...] = (
    ("lower", (0.0, 0.0, 0.12), (0.0, 0.0, 1.0), True),
    ("oblique_left", (0.05, 1.05, 0.30), (0.0, 0.25, 1.0), False),
    ("oblique_right", (-0.05, -1.05, 0.30), (0.0, -0.25, 1.0), False),
    ("oblique_front", (1.25, 0.0, 0.30), (0.25, 0.0, 1.0), True),
)
#: Mild barrel distortion (plumb_bob k1 k2 p1 p2 k3), as on typical wide-angle industrial lenses.
DEFAULT_DIST = (-0.06, 0.015, 0.0003, -0.0002, 0.0)


def default_rig(
    width_px: int = 640, height_px: int = 480, hfov_deg: float = DEFAULT_HFOV_DEG, speed_mps: float = 0.1
) -> Rig:
    """The default 4-camera rig; the conveyor puts the vehicle origin above the cell origin at s = 0."""
    cams = []
    K = intrinsics_from_fov(width_px, height_px, hfov_deg)
    for cam_id, eye, target, rgbd in CAMERA_LAYOUT:
        # RGB-D cameras deliver depth registered to the colour image: same intrinsics, identity extrinsics
        dist = np.asarray(DEFAULT_DIST)
        depth = DepthIntrinsics(K=K, dist=dist, width_px=width_px, height_px=height_px) if rgbd else None
        cams.append(
            CameraModel(
                camera_id=cam_id, K=K, dist=np.asarray(DEFAULT_DIST), width_px=width_px, height_px=height_px,
                T_cell_cam=look_at(eye, target, up=(1.0, 0.0, 0.0)), depth=depth,
            )
        )
    conveyor = Conveyor(np.array([1.0, 0.0, 0.0]), speed_mps, translation((0.0, 0.0, UNDERBODY_Z_M)))
    # a QR marker on the pit wall, facing the operator's side of the line
    marker = Marker("cell-qr-1", make_T(np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float), (3.0, -1.2, 1.2)))
    return Rig(tuple(cams), conveyor, (marker,), name="twin-cell")
