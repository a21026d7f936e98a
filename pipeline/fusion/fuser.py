"""Late fusion of per-view heatmaps onto the underbody mesh, across views and across one vehicle pass.

Per frame set (:meth:`Fuser.update`):

1. The pose ``T_cell_vehicle`` gives the conveyor travel ``s_m``.
2. Per camera, the visibility table gives the vertices seen at ``s_m`` (no raycast); they are
   projected at the exact pose; RGB-D views also drop vertices that the sensor's depth shows
   occluded; the view's heatmap is sampled bilinearly there.
3. Across views, per vertex: ``max``, ``mean``, or ``weighted`` mean (weight = cosine of the
   viewing angle times ``(ref_distance_m / distance)²``).
4. Across time, per vertex, over the pass: counts of frames and of view observations, the
   running mean, max, spread (std of all view observations) and the robust ``trimmed``
   statistic, the mean without the single highest frame value (one-frame glints and
   misregistrations do not make a defect).

The returned :class:`FusedState` is a snapshot; the fuser keeps accumulating until
:meth:`Fuser.begin_pass` resets it for the next vehicle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from calibration.rig import Rig
from pipeline.frames import FrameSet
from pipeline.fusion.errors import FusionError
from pipeline.fusion.kernels import accumulate_view
from pipeline.fusion.lut import VisibilityLUT, travel_from_pose
from pipeline.fusion.mesh import FusionMesh
from pipeline.fusion.sampling import check_heatmap, fuse_image_scores, image_score
from pipeline.fusion.visibility import (
    MeshRaycaster,
    Projected,
    VisibilityConfig,
    project_vertices,
    raycast_visible,
    sensor_depth_consistent,
)

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
ViewFusionMode = Literal["max", "mean", "weighted"]
TemporalMode = Literal["trimmed", "mean", "max"]
MAX_CAMERAS = 16  # views_mask is uint16


@dataclass(frozen=True, slots=True)
class FusionConfig:
    """How scores are fused. ``min_frames_trimmed``: below this many frames ``trimmed`` is the mean."""

    view_mode: ViewFusionMode = "weighted"
    temporal_mode: TemporalMode = "trimmed"
    ref_distance_m: float = 1.0
    use_sensor_depth: bool = True
    min_frames_trimmed: int = 3
    visibility: VisibilityConfig = field(default_factory=VisibilityConfig)

    def __post_init__(self) -> None:
        if self.view_mode not in ("max", "mean", "weighted"):
            raise FusionError(f"unknown view fusion mode {self.view_mode!r}")
        if self.temporal_mode not in ("trimmed", "mean", "max"):
            raise FusionError(f"unknown temporal mode {self.temporal_mode!r}")
        if not self.ref_distance_m > 0 or self.min_frames_trimmed < 2:
            raise FusionError("ref_distance_m must be > 0 and min_frames_trimmed >= 2")


@dataclass(frozen=True, slots=True, eq=False)
class FusedState:
    """Snapshot of the fused map after one frame set. Arrays are per vertex (V,) and owned by the snapshot.

    ``score``: the temporal statistic in [0, 1] (0 where never observed); ``frame_score``: this
    frame set's cross-view value (0 where not seen now); ``n_frames``: frames that observed the
    vertex this pass; ``n_obs``: view observations; ``spread``: std of the view observations;
    ``views_mask``: bit ``k`` set when ``camera_ids[k]`` contributed this pass.
    """

    seq: int
    capture_ts_ns: int
    vehicle_id: str | None
    s_m: float
    camera_ids: tuple[str, ...]
    score: F32
    frame_score: F32
    n_frames: I32
    n_obs: I32
    spread: F32
    views_mask: npt.NDArray[np.uint16]
    image_scores: dict[str, float]
    image_score_max: float
    image_score_mean: float
    frame_vertices_seen: int

    def coverage(self, vertex_mask: npt.NDArray[np.bool_] | None = None, min_frames: int = 1) -> float:
        """Fraction of the (masked) vertices observed in at least ``min_frames`` frames this pass."""
        seen = self.n_frames >= min_frames
        if vertex_mask is not None:
            seen = seen[vertex_mask]
        return float(seen.mean()) if seen.size else 0.0

    def views_of(self, vertex_index: npt.NDArray[np.integer]) -> tuple[str, ...]:
        """Camera ids that contributed to any of the given vertices this pass."""
        bits = int(np.bitwise_or.reduce(self.views_mask[vertex_index])) if len(vertex_index) else 0
        return tuple(c for k, c in enumerate(self.camera_ids) if bits >> k & 1)


class Fuser:
    """Stateful per-pass fusion for one rig and one mesh.

    ``luts``: one :class:`VisibilityLUT` per camera (the per-frame path); with ``luts=None`` the
    fuser raycasts every frame through ``raycaster`` instead (the baseline the LUT is measured
    against). Raises :class:`FusionError` when neither is given or they do not match the mesh.
    """

    def __init__(
        self, rig: Rig, mesh: FusionMesh, luts: Mapping[str, VisibilityLUT] | None = None,
        raycaster: MeshRaycaster | None = None, config: FusionConfig | None = None,
    ) -> None:
        if len(rig.cameras) > MAX_CAMERAS:
            raise FusionError(f"at most {MAX_CAMERAS} cameras are supported")
        if luts is None and raycaster is None:
            raise FusionError("Fuser needs visibility LUTs or a raycaster")
        if luts is not None:
            for cid, lut in luts.items():
                rig.camera(cid)
                if lut.n_vertices != mesh.n_vertices:
                    raise FusionError(f"LUT {cid} was built for {lut.n_vertices} vertices, mesh has {mesh.n_vertices}")
        self.rig = rig
        self.mesh = mesh
        self.luts = dict(luts) if luts is not None else None
        self.raycaster = raycaster
        self.config = config or FusionConfig()
        self.camera_ids = rig.camera_ids
        n = mesh.n_vertices
        self._n_frames = np.zeros(n, np.int32)
        self._sum = np.zeros(n, np.float64)
        self._max = np.zeros(n, np.float32)
        self._n_obs = np.zeros(n, np.int32)
        self._obs_sum = np.zeros(n, np.float64)
        self._obs_sq = np.zeros(n, np.float64)
        self._views = np.zeros(n, np.uint16)
        self.vehicle_id: str | None = None

    @classmethod
    def with_luts(
        cls, rig: Rig, mesh: FusionMesh, s_range_m: tuple[float, float], step_m: float = 0.02,
        config: FusionConfig | None = None,
    ) -> Fuser:
        """Build the visibility tables for every camera (one raycast per camera and grid position)."""
        cfg = config or FusionConfig()
        rc = MeshRaycaster(mesh)
        luts = {c.camera_id: VisibilityLUT.build(c, rc, rig.conveyor, s_range_m, step_m, cfg.visibility)
                for c in rig.cameras}
        return cls(rig, mesh, luts, None, cfg)

    def begin_pass(self, vehicle_id: str | None = None) -> None:
        """Forget the previous pass; the next frame sets accumulate for ``vehicle_id``."""
        for a in (self._n_frames, self._sum, self._max, self._n_obs, self._obs_sum, self._obs_sq, self._views):
            a.fill(0)
        self.vehicle_id = vehicle_id

    def visible(self, camera_id: str, T_cell_vehicle: F64, s_m: float) -> Projected:
        """Vertices of ``camera_id`` at this pose: from the LUT (nearest grid position) or a raycast."""
        cam = self.rig.camera(camera_id)
        vis = self.config.visibility
        if self.luts is not None:
            lut = self.luts.get(camera_id)
            if lut is None:
                raise FusionError(f"no visibility LUT for camera {camera_id!r}")
            return project_vertices(cam, self.mesh, T_cell_vehicle, lut.lookup(s_m), vis)
        assert self.raycaster is not None
        return raycast_visible(cam, self.raycaster, T_cell_vehicle, vis)

    def update(self, frameset: FrameSet, heatmaps: Mapping[str, npt.NDArray[np.float32]]) -> FusedState:
        """Fuse one frame set's heatmaps (camera id -> (H, W) float32 in [0, 1]) into the pass.

        Uses ``frameset.T_cell_vehicle`` (required), its depth images (RGB-D views, when
        ``use_sensor_depth``), ``seq``, ``capture_ts_ns`` and ``vehicle_id``. A view without a
        heatmap is skipped. Raises :class:`FusionError` on a missing pose, an unknown camera or
        a malformed heatmap; the pass state is unchanged then.
        """
        if frameset.T_cell_vehicle is None:
            raise FusionError(f"frame set {frameset.seq} has no T_cell_vehicle; fusion needs the pose")
        depths = {f.camera_id: f.depth_m for f in frameset.frames if f.depth_m is not None}
        if self.vehicle_id is None:
            self.vehicle_id = frameset.vehicle_id
        return self.update_pose(np.asarray(frameset.T_cell_vehicle, np.float64), heatmaps, depths,
                                frameset.seq, frameset.capture_ts_ns)

    def update_pose(
        self, T_cell_vehicle: F64, heatmaps: Mapping[str, npt.NDArray[np.float32]],
        depths_m: Mapping[str, npt.NDArray[np.float32]] | None = None, seq: int = 0, capture_ts_ns: int = 0,
    ) -> FusedState:
        """:meth:`update` without a :class:`FrameSet`: pose, heatmaps and optional sensor depths."""
        cfg = self.config
        checked: dict[str, F32] = {}
        for cid, hm in heatmaps.items():
            if cid not in self.camera_ids:
                raise FusionError(f"heatmap for unknown camera {cid!r}; the rig has {list(self.camera_ids)}")
            cam = self.rig.camera(cid)
            checked[cid] = check_heatmap(cid, hm, cam.width_px, cam.height_px)
        s_m = travel_from_pose(self.rig.conveyor, T_cell_vehicle)

        n = self.mesh.n_vertices
        acc_w = np.zeros(n, np.float64)
        acc_ws = np.zeros(n, np.float64)
        acc_sum = np.zeros(n, np.float64)
        acc_max = np.zeros(n, np.float32)
        acc_cnt = np.zeros(n, np.int32)
        views_now = np.zeros(n, np.uint16)
        image_scores: dict[str, float] = {}
        for k, cid in enumerate(self.camera_ids):
            if cid not in checked:
                continue
            hm = checked[cid]
            image_scores[cid] = image_score(hm)
            proj = self.visible(cid, T_cell_vehicle, s_m)
            depth = (depths_m or {}).get(cid)
            if cfg.use_sensor_depth and depth is not None:
                proj = proj.subset(sensor_depth_consistent(proj, depth, cfg.visibility))
            if len(proj.index) == 0:
                continue
            accumulate_view(proj.index, proj.uv_px, proj.cos_view, proj.dist_m, hm, cfg.ref_distance_m, 1 << k,
                            acc_w, acc_ws, acc_sum, acc_max, acc_cnt, views_now, self._obs_sum, self._obs_sq)

        seen = np.flatnonzero(acc_cnt)
        if cfg.view_mode == "max":
            x = acc_max[seen].astype(np.float64)
        elif cfg.view_mode == "mean":
            x = acc_sum[seen] / acc_cnt[seen]
        else:
            x = acc_ws[seen] / np.maximum(acc_w[seen], 1e-12)
        x = np.clip(x, 0.0, 1.0)
        self._n_frames[seen] += 1
        self._sum[seen] += x
        self._max[seen] = np.maximum(self._max[seen], x.astype(np.float32))
        self._n_obs[seen] += acc_cnt[seen]
        self._views[seen] |= views_now[seen]
        frame_score = np.zeros(n, np.float32)
        frame_score[seen] = x
        return FusedState(
            seq=seq, capture_ts_ns=capture_ts_ns, vehicle_id=self.vehicle_id, s_m=s_m, camera_ids=self.camera_ids,
            score=self.temporal_score(), frame_score=frame_score, n_frames=self._n_frames.copy(),
            n_obs=self._n_obs.copy(), spread=self._spread(), views_mask=self._views.copy(),
            image_scores=image_scores,
            image_score_max=fuse_image_scores(image_scores, "max") if image_scores else 0.0,
            image_score_mean=fuse_image_scores(image_scores, "mean") if image_scores else 0.0,
            frame_vertices_seen=len(seen),
        )

    def temporal_score(self) -> F32:
        """The per-vertex temporal statistic of the pass so far (0 where never observed)."""
        n = self._n_frames
        mode = self.config.temporal_mode
        out = np.zeros(len(n), np.float64)
        obs = n > 0
        if mode == "max":
            out[obs] = self._max[obs]
        elif mode == "mean":
            out[obs] = self._sum[obs] / n[obs]
        else:
            out[obs] = self._sum[obs] / n[obs]
            many = n >= self.config.min_frames_trimmed
            out[many] = (self._sum[many] - self._max[many]) / (n[many] - 1)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def _spread(self) -> F32:
        n = np.maximum(self._n_obs, 1)
        mean = self._obs_sum / n
        var = np.maximum(self._obs_sq / n - mean * mean, 0.0)
        return np.sqrt(var).astype(np.float32)
