"""Defects on the mesh: extraction on planted evidence, ids stable over a pass, hysteresis, alerts at the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.underbody import Seam
from overlays import (
    AlertConfig,
    AlertMonitor,
    Defect,
    DefectError,
    DefectExtractor,
    DefectsDelta,
    DefectTracker,
    SeamMap,
    Thresholds,
    TrackerConfig,
)
from overlays.calibrate import FLOOR, QuietLevel
from overlays.extract import DefectCandidate
from pipeline.fusion import FusedState, Fuser, FusionConfig, FusionMesh
from pipeline.fusion.synthetic import disc_heatmap, panels_mesh, upward_rig

PANEL = ((-0.5, 0.5), (-0.4, 0.4), 1.0)
DEFECT_P = np.array([0.05, 0.1, 1.0])
SEAM = Seam("S-test", "centre", 0, "R7", 8.0, 3.0, np.array([[0.05, -0.3, 1.0], [0.05, 0.3, 1.0]]),
            np.array([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]]))


def _pass(n_frames: int = 9, planted: bool = True, defect_p: np.ndarray = DEFECT_P,
          thresholds: Thresholds | None = None,
          ) -> tuple[list[list[DefectCandidate]], DefectTracker, list[DefectsDelta]]:
    rig = upward_rig([("up", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], 320, 240)
    mesh = panels_mesh([PANEL], 0.005)
    fuser = Fuser.with_luts(rig, mesh, (-0.1, 0.1), 0.02, FusionConfig(use_sensor_depth=False))
    extractor = DefectExtractor(mesh, SeamMap.build(mesh.vertices_vehicle_m, [SEAM]),
                                thresholds or Thresholds(score=0.5))
    tracker = DefectTracker(mesh.n_vertices)
    fuser.begin_pass("V1")
    tracker.begin_pass("V1")
    cam = rig.cameras[0]
    cands: list[list[DefectCandidate]] = []
    deltas: list[DefectsDelta] = []
    for i, s in enumerate(np.linspace(-0.08, 0.08, n_frames)):
        T = rig.conveyor.T_cell_vehicle(float(s))
        hm = disc_heatmap(cam, T, defect_p, 6.0) if planted else np.zeros((240, 320), np.float32)
        state = fuser.update_pose(T, {"up": hm}, seq=i, capture_ts_ns=1000 * i)
        c = extractor.extract(state)
        cands.append(c)
        deltas.append(tracker.update(c, state.capture_ts_ns))
    return cands, tracker, deltas


def test_planted_defect_becomes_one_defect_on_its_seam_with_a_stable_id() -> None:
    cands, tracker, deltas = _pass()
    assert cands[0] == []  # min_frames=2: one frame is not evidence yet
    for c in cands[1:]:
        assert len(c) == 1
        d_mm = 1000 * np.linalg.norm(c[0].centroid_vehicle_m - DEFECT_P)
        assert d_mm < 3.0
    added = [d for dl in deltas for d in dl.added]
    assert [d.defect_id for d in added] == ["V1-D001"]  # published once, never re-added
    assert all(not dl.removed for dl in deltas)
    assert all(d.defect_id == "V1-D001" for dl in deltas for d in dl.updated)
    (final,) = tracker.state()
    assert final.seam_id == "S-test" and final.robot_id == "R7"
    assert final.s_mm is not None and abs(final.s_mm - 400.0) < 3.0  # 0.4 m from the seam's start
    assert final.views == ("up",) and final.status == "open"
    sent = [d for dl in deltas for d in (*dl.added, *dl.updated)]
    assert final == sent[-1]  # the full state is exactly what clients were sent last
    assert 2 <= final.n_updates <= len(cands) - 1
    assert 300.0 < final.area_mm2 < 3000.0  # a 6 px disc at 1 m is ~26 mm across
    assert final.normal_vehicle[2] < -0.9  # the panel faces down, towards the cameras


def test_seam_band_keeps_evidence_away_from_seams_out() -> None:
    on_seam = Thresholds(score=0.5, seam_band_mm=20.0)
    assert len(_pass(5, thresholds=on_seam)[1].state()) == 1  # the disc sits on the seam
    off = np.array([0.3, 0.1, 1.0])  # 25 cm beside the seam: an edge of the body, not a bead
    assert len(_pass(5, defect_p=off)[1].state()) == 1
    assert _pass(5, defect_p=off, thresholds=on_seam)[1].state() == ()
    with pytest.raises(Exception, match="seam_band_mm"):
        Thresholds(seam_band_mm=0.0)


def test_no_evidence_no_defects() -> None:
    cands, tracker, deltas = _pass(5, planted=False)
    assert all(c == [] for c in cands) and tracker.state() == () and all(dl.is_empty for dl in deltas)


def _cand(x_m: float, peak: float = 0.9, n: int = 4, first: int = 0) -> DefectCandidate:
    return DefectCandidate(np.arange(first, first + n, dtype=np.int32), np.array([x_m, 0.0, 1.0]),
                           np.array([0.0, 0.0, -1.0]), np.array([5.0, 5.0, 0.0]), 20.0, peak, peak - 0.1, 0.01,
                           None, None, None, ("up",))


def test_hysteresis_against_flicker() -> None:
    tracker = DefectTracker(100, TrackerConfig(confirm_hits=2, max_misses=3))
    tracker.begin_pass("V2")
    assert tracker.update([_cand(0.0)], 1).is_empty  # seen once: not published
    assert tracker.update([], 2).is_empty  # and a one-frame blip is forgotten silently
    assert tracker.update([_cand(0.0)], 3).is_empty
    published = tracker.update([_cand(0.0)], 4)
    assert [d.defect_id for d in published.added] == ["V2-D001"]
    for ts in (5, 6):  # fewer than max_misses frames without evidence: kept
        dl = tracker.update([], ts)
        assert not dl.removed and len(tracker.state()) == 1
    # evidence comes back shifted by 10 mm and without shared vertices: matched by distance, same id
    dl = tracker.update([_cand(0.01, first=50)], 8)
    assert not dl.added and [d.defect_id for d in dl.updated] == ["V2-D001"]
    for ts in (9, 10):
        assert not tracker.update([], ts).removed
    assert tracker.update([], 11).removed == ("V2-D001",)  # the max_misses-th consecutive miss withdraws it
    assert tracker.state() == ()


def _defect(robot: str, seam: str, status: str = "open") -> Defect:
    return Defect("D001", "V", status, (0.0, 0.0, 0.0), (0.0, 0.0, -1.0), (1.0, 1.0, 0.0), 10.0, 0.9, 0.8,  # type: ignore[arg-type]
                  0.01, seam, 1.0, robot, ("up",), 0, 0, 1)


def _run_alerts(n_bad: int, window: int = 10) -> list[str]:
    mon = AlertMonitor(["R1", "R2"], ["S1", "S2"], AlertConfig(window_vehicles=window, rate_threshold=0.3,
                                                               min_vehicles=window))
    kinds = []
    for k in range(window):
        defects = [_defect("R1", "S1")] if k < n_bad else []
        kinds += [f"{e.kind}:{e.scope}:{e.key}:{e.n_defective}/{e.n_vehicles}"
                  for e in mon.record_vehicle(f"V{k}", defects)]
    return kinds


def test_alert_fires_at_the_threshold_and_not_below() -> None:
    assert _run_alerts(2) == []  # 2/10 = 0.2 < 0.3
    assert _run_alerts(3) == ["raised:robot:R1:3/10", "raised:seam:S1:3/10"]  # exactly 0.3


def test_alert_ignores_rejected_defects_and_clears() -> None:
    mon = AlertMonitor(["R1"], ["S1"], AlertConfig(window_vehicles=4, rate_threshold=0.5, min_vehicles=4,
                                                   clear_ratio=0.8))
    events = []
    for k in range(4):
        events += mon.record_vehicle(f"V{k}", [_defect("R1", "S1", "rejected" if k == 0 else "open")])
    assert [(e.kind, e.scope, e.rate) for e in events] == [("raised", "robot", 0.75), ("raised", "seam", 0.75)]
    assert mon.stats().robot_rate == {"R1": 0.75}
    events = []
    for k in range(4, 7):  # the window slides to 1/4 = 0.25 < 0.8 * 0.5
        events += mon.record_vehicle(f"V{k}", [])
    assert [e.kind for e in events] == ["cleared", "cleared"]
    assert mon.stats().active_alerts == ()


def test_feedback_changes_status() -> None:
    tracker = DefectTracker(100)
    tracker.begin_pass("V3")
    tracker.update([_cand(0.0)], 1)
    tracker.update([_cand(0.0)], 2)
    d = tracker.apply_feedback("V3-D001", "confirmed")
    assert d.status == "confirmed" and tracker.state()[0].status == "confirmed"
    with pytest.raises(Exception, match="D999"):
        tracker.apply_feedback("V3-D999", "fixed")


def _evidence(values: list[float]) -> tuple[list[FusedState], FusionMesh, SeamMap]:
    """The fused snapshots of a pass whose one camera sees the planted disc at ``values[i]`` in frame ``i``."""
    rig = upward_rig([("up", (0.0, 0.0, 0.0), (0.0, 0.0, 1.0))], 320, 240)
    mesh = panels_mesh([PANEL], 0.005)
    fuser = Fuser.with_luts(rig, mesh, (-0.1, 0.1), 0.02, FusionConfig(use_sensor_depth=False))
    fuser.begin_pass("V3")
    states = []
    for i, (s, value) in enumerate(zip(np.linspace(-0.08, 0.08, len(values)), values, strict=True)):
        T = rig.conveyor.T_cell_vehicle(float(s))
        states.append(fuser.update_pose(T, {"up": disc_heatmap(rig.cameras[0], T, DEFECT_P, 6.0, value)},
                                        seq=i, capture_ts_ns=1000 * i))
    return states, mesh, SeamMap.build(mesh.vertices_vehicle_m, [SEAM])


def _published(states: list[FusedState], mesh: FusionMesh, seam_map: SeamMap, score: float) -> int:
    """How many defects the server's extractor and tracker (default settings) publish over the pass at ``score``."""
    extractor = DefectExtractor(mesh, seam_map, Thresholds(score=score))
    tracker = DefectTracker(mesh.n_vertices)
    tracker.begin_pass("V3")
    return sum(len(tracker.update(extractor.extract(st), st.capture_ts_ns).added) for st in states)


def test_the_quiet_level_is_where_a_normal_pass_stops_publishing() -> None:
    """A pass whose evidence flickers: the quiet level is the lowest threshold at which the tracker publishes
    nothing (two hits in a row), just below it publishes, and one hit alone sets a higher level."""
    states, mesh, seam_map = _evidence([0.2, 0.9, 0.1, 0.6, 0.7, 0.3, 0.65, 0.2, 0.1])
    quiet = QuietLevel(mesh, seam_map, Thresholds(), confirm=TrackerConfig().confirm_hits)
    for st in states:
        quiet.observe(st)
    level = quiet.level
    assert 0.1 < level < 0.9 and quiet.snapshots == len(states)
    assert _published(states, mesh, seam_map, level) == 0
    assert _published(states, mesh, seam_map, 0.98 * level) == 1
    single = QuietLevel(mesh, seam_map, Thresholds(), confirm=1)
    for st in states:
        single.observe(st)
    assert single.level > level, "a one-snapshot alarm is not published, so it does not set the level"
    # a new pass does not continue the last one's run of alarms; a pass without evidence leaves the floor
    again = QuietLevel(mesh, seam_map, Thresholds(), confirm=2)
    quiet_pass, _, _ = _evidence([0.0] * 4)
    for st in quiet_pass:
        again.begin_pass()
        again.observe(st)
    assert again.level == FLOOR
    with pytest.raises(DefectError, match="confirm"):
        QuietLevel(mesh, seam_map, confirm=0)
