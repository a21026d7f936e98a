"""Fusion modes across views and over time, image-level fusion and coverage."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.fusion import Fuser, FusionConfig, FusionError, fuse_image_scores
from pipeline.fusion.synthetic import panels_mesh, upward_rig

PANEL = ((-0.2, 0.2), (-0.2, 0.2), 1.0)
CAMS = [("a", (0.0, -0.3, 0.0), (0.0, 0.0, 1.0)), ("b", (0.0, 0.3, 0.0), (0.0, 0.0, 1.0))]


def _two_view(mode: str) -> tuple[Fuser, np.ndarray]:
    rig = upward_rig(CAMS, 160, 120, hfov_deg=80.0)
    mesh = panels_mesh([PANEL], 0.02)
    fuser = Fuser.with_luts(rig, mesh, (0.0, 0.0), 0.02, FusionConfig(view_mode=mode))  # type: ignore[arg-type]
    T = rig.conveyor.T_cell_vehicle(0.0)
    maps = {"a": np.full((120, 160), 0.2, np.float32), "b": np.full((120, 160), 0.6, np.float32)}
    state = fuser.update_pose(T, maps)
    both = state.views_mask == 0b11
    assert both.sum() > 100
    return fuser, np.flatnonzero(both)


@pytest.mark.parametrize(("mode", "expect"), [("max", 0.6), ("mean", 0.4)])
def test_view_fusion_max_and_mean(mode: str, expect: float) -> None:
    fuser, both = _two_view(mode)
    state = fuser.update_pose(fuser.rig.conveyor.T_cell_vehicle(0.0),
                              {"a": np.full((120, 160), 0.2, np.float32), "b": np.full((120, 160), 0.6, np.float32)})
    np.testing.assert_allclose(state.frame_score[both], expect, atol=1e-6)


def test_view_fusion_weighted_by_angle_and_distance() -> None:
    fuser, both = _two_view("weighted")
    state = fuser.update_pose(fuser.rig.conveyor.T_cell_vehicle(0.0),
                              {"a": np.full((120, 160), 0.2, np.float32), "b": np.full((120, 160), 0.6, np.float32)})
    p = fuser.mesh.vertices_vehicle_m[both]
    n = np.array([0.0, 0.0, -1.0])
    w = []
    for _, eye, _ in CAMS:
        to_cam = np.asarray(eye) - p
        d = np.linalg.norm(to_cam, axis=1)
        w.append((to_cam @ n) / d * (1.0 / d) ** 2)
    expect = (0.2 * w[0] + 0.6 * w[1]) / (w[0] + w[1])
    np.testing.assert_allclose(state.frame_score[both], expect, atol=1e-5)
    # a vertex nearer camera b leans towards b's score
    near_b = p[:, 1] > 0.1
    assert np.all(state.frame_score[both][near_b] > 0.4)


@pytest.mark.parametrize(("mode", "expect"), [("trimmed", 0.2), ("mean", 0.375), ("max", 0.9)])
def test_temporal_statistics_and_counts(mode: str, expect: float) -> None:
    rig = upward_rig(CAMS[:1], 160, 120, hfov_deg=80.0)
    mesh = panels_mesh([PANEL], 0.02)
    fuser = Fuser.with_luts(rig, mesh, (0.0, 0.0), 0.02, FusionConfig(temporal_mode=mode))  # type: ignore[arg-type]
    T = rig.conveyor.T_cell_vehicle(0.0)
    fuser.begin_pass("V1")
    for value in (0.2, 0.2, 0.9, 0.2):  # one glint in the third frame
        state = fuser.update_pose(T, {"a": np.full((120, 160), value, np.float32)})
    seen = state.n_frames > 0
    assert np.all(state.n_frames[seen] == 4) and np.all(state.n_obs[seen] == 4)
    np.testing.assert_allclose(state.score[seen], expect, atol=1e-6)
    np.testing.assert_allclose(state.spread[seen], np.std([0.2, 0.2, 0.9, 0.2]), atol=1e-5)
    assert state.vehicle_id == "V1" and state.views_of(np.flatnonzero(seen)[:3]) == ("a",)
    assert state.coverage() == pytest.approx(seen.mean())
    fuser.begin_pass("V2")
    fresh = fuser.update_pose(T, {"a": np.full((120, 160), 0.5, np.float32)})
    assert fresh.n_frames.max() == 1 and fresh.vehicle_id == "V2"


def test_image_level_fusion() -> None:
    scores = {"a": 0.2, "b": 0.8, "c": 0.5}
    assert fuse_image_scores(scores, "max") == 0.8
    assert fuse_image_scores(scores, "mean") == pytest.approx(0.5)
    with pytest.raises(FusionError):
        fuse_image_scores({}, "max")
    with pytest.raises(FusionError):
        fuse_image_scores(scores, "median")  # type: ignore[arg-type]
    fuser, _ = _two_view("max")
    hm_a = np.zeros((120, 160), np.float32)
    hm_a[3, 4] = 0.9
    T = fuser.rig.conveyor.T_cell_vehicle(0.0)
    state = fuser.update_pose(T, {"a": hm_a, "b": np.zeros((120, 160), np.float32)})
    assert state.image_scores == {"a": pytest.approx(0.9), "b": 0.0}
    assert state.image_score_max == pytest.approx(0.9) and state.image_score_mean == pytest.approx(0.45)
