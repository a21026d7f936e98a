"""Late fusion of per-view heatmaps onto the underbody mesh (sans-I/O).

>>> mesh = FusionMesh.from_underbody(twin.underbody)
>>> fuser = Fuser.with_luts(twin.rig, mesh, twin.pass_range_m(), step_m=0.02)
>>> fuser.begin_pass("V000-00001")
>>> state = fuser.update(frameset, {"lower": heatmap, ...})   # per frame set
"""

from pipeline.fusion.errors import FusionError
from pipeline.fusion.fuser import FusedState, Fuser, FusionConfig, TemporalMode, ViewFusionMode
from pipeline.fusion.lut import VisibilityLUT, travel_from_pose
from pipeline.fusion.mesh import FusionMesh
from pipeline.fusion.sampling import bilinear, check_heatmap, fuse_image_scores, image_score
from pipeline.fusion.visibility import (
    MeshRaycaster,
    Projected,
    VisibilityConfig,
    project_vertices,
    raycast_visible,
    sensor_depth_consistent,
)

__all__ = [
    "FusedState",
    "Fuser",
    "FusionConfig",
    "FusionError",
    "FusionMesh",
    "MeshRaycaster",
    "Projected",
    "TemporalMode",
    "ViewFusionMode",
    "VisibilityConfig",
    "VisibilityLUT",
    "bilinear",
    "check_heatmap",
    "fuse_image_scores",
    "image_score",
    "project_vertices",
    "raycast_visible",
    "sensor_depth_consistent",
    "travel_from_pose",
]
