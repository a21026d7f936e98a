"""One example of every protocol message: the source of the golden vectors and of docs/protocol.md."""

from __future__ import annotations

import numpy as np

from calibration.se3 import make_T, translation
from overlays.defect import Defect
from overlays.messages import (
    Alert,
    CameraInfo,
    Defects,
    Feedback,
    Heatmap,
    Hello,
    MarkerInfo,
    Message,
    PassEnd,
    PassStart,
    Pose,
    RigInfo,
    Scene,
    SeamInfo,
    Stats,
    Welcome,
)

TS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


def example_defect(status: str = "open") -> Defect:
    return Defect(
        defect_id="V000-01000-D001", vehicle_id="V000-01000", status=status,  # type: ignore[arg-type]
        centroid_vehicle_m=(0.5, -0.4625, -0.0015), normal_vehicle=(0.0, 0.0, -1.0), extent_mm=(12.5, 9.0, 3.25),
        area_mm2=84.5, peak_score=0.875, mean_score=0.5, uncertainty=0.125, seam_id="C6", s_mm=127.0,
        robot_id="R4", views=("lower", "oblique_right"), first_seen_ts_ns=TS, last_seen_ts_ns=TS + 500_000_000,
        n_updates=5,
    )


def example_messages() -> dict[str, Message]:
    """Name -> message; names are the golden file stems (``tests/overlays/golden/<name>.msgpack``)."""
    seam = SeamInfo("C6", "centre", "R4", np.array([[0.5, -0.29, 0.0], [0.5, -0.59, 0.0]], np.float32))
    rig = RigInfo(
        "twin-cell",
        (CameraInfo("lower", 640, 480, True, make_T([[0, -1, 0], [1, 0, 0], [0, 0, 1]], (0.0, 0.0, 0.12))),),
        (1.0, 0.0, 0.0), 0.1,
    )
    marker = MarkerInfo("cell-qr-1", "qr", 0.2, translation((3.0, -1.2, 1.2)))
    T = translation((0.25, 0.0, 1.0))
    return {
        "hello": Hello("hololens-sample/1.0", "operator", (1,), seq=0),
        "welcome": Welcome("s-7f3a", 1, "xrserver/0.1", TS, seq=0),
        "scene": Scene("twin-underbody", "/mesh/twin-underbody.glb", "0" * 64, 4, (seam,), (marker,), rig, seq=1),
        "pass_start": PassStart("V000-01000", "twin-underbody", TS, seq=2),
        "pose": Pose("V000-01000", TS + 100_000_000, T, (0.1, 0.0, 0.0), 0.25, seq=3),
        "heatmap_full": Heatmap("V000-01000", TS + 100_000_000, 4, "full", np.array([0, 12, 255, 3], np.uint8),
                                None, seq=4),
        "heatmap_delta": Heatmap("V000-01000", TS + 200_000_000, 4, "delta", np.array([40, 0], np.uint8),
                                 np.array([1, 3], np.uint32), seq=5),
        "defects_full": Defects("V000-01000", TS + 500_000_000, "full", (example_defect(),), (), seq=6),
        "defects_delta": Defects("V000-01000", TS + 600_000_000, "delta", (example_defect("confirmed"),),
                                 ("V000-01000-D002",), seq=7),
        "pass_end": PassEnd("V000-01000", TS + 68_000_000_000, 1, 0.93, {"C6": 0.99, "F1": 0.87}, seq=8),
        "alert": Alert("A00001", "raised", "robot", "R4", 0.3, 0.25, 6, 20, "V000-01000", TS + 68_000_000_000, seq=9),
        "stats": Stats(TS + 68_000_000_000, {"infer": 41.5, "fuse": 12.25, "broadcast": 55.0},
                       {"R3": 0.05, "R4": 0.3}, {"C6": 0.25}, 20, 10.0, seq=10,
                       views={"lower": "up", "oblique_left": "up", "oblique_right": "degraded"}),
        "feedback": Feedback("V000-01000-D001", "V000-01000", "confirmed", "op-17", TS + 70_000_000_000,
                             "bead missing, fixed by hand", seq=3),
    }
