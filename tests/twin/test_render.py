"""The twin's renders: determinism, depth against geometry, and defects that change pixels only in their GT."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from calibration.se3 import invert, transform_points
from pipeline.twin import DEFECT_TYPES, DigitalTwin, TwinConfig, surface
from pipeline.twin.defects import DefectSpec, DefectType


def test_same_seed_same_bytes_other_seed_other_bytes(small_twin: DigitalTwin) -> None:
    a = small_twin.render(small_twin.vehicle(5), s_m=0.3, seq=7)
    other = DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240))
    b = other.render(other.vehicle(5), s_m=0.3, seq=7)
    for fa, fb in zip(a.frameset.frames, b.frameset.frames, strict=True):
        assert fa.image.tobytes() == fb.image.tobytes()
        if fa.depth_m is not None:
            assert fb.depth_m is not None and fa.depth_m.tobytes() == fb.depth_m.tobytes()
    seeded = DigitalTwin(TwinConfig(seed=1, width_px=320, height_px=240))
    c = seeded.render(seeded.vehicle(5), s_m=0.3, seq=7)
    assert c.frameset.frames[0].image.tobytes() != a.frameset.frames[0].image.tobytes()


def test_frameset_contents(small_twin: DigitalTwin) -> None:
    sample = small_twin.render(small_twin.vehicle(2), s_m=-0.4, seq=3, capture_ts_ns=123)
    fs = sample.frameset
    assert fs.camera_ids == ("lower", "oblique_left", "oblique_right", "oblique_front")
    assert fs.capture_ts_ns == 123 and fs.seq == 3
    assert fs.T_cell_vehicle is not None
    np.testing.assert_allclose(fs.T_cell_vehicle, small_twin.rig.conveyor.T_cell_vehicle(-0.4))
    rgbd = [f for f in fs.frames if f.depth_m is not None]
    assert len(rgbd) >= 2
    for f in fs.frames:
        assert f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8
        assert 20 < f.image.mean() < 235  # exposed sensibly: neither black nor blown out


def test_depth_agrees_with_geometry(small_twin: DigitalTwin) -> None:
    s_m = 0.2
    sample = small_twin.render(small_twin.vehicle(1, defect_types=[]), s_m=s_m)
    T_vehicle_cell = invert(small_twin.rig.conveyor.T_cell_vehicle(s_m))
    for cam in small_twin.rig.cameras:
        truth = sample.truth[cam.camera_id]
        v, u = np.nonzero((truth.depth_true_m > 0) & (truth.seam_index < 0))
        pick = np.random.default_rng(0).choice(len(u), size=min(3000, len(u)), replace=False)
        uv = np.stack([u[pick], v[pick]], axis=1).astype(float)
        p_cam = cam.unproject(uv, truth.depth_true_m[v[pick], u[pick]])
        p_veh = transform_points(T_vehicle_cell @ cam.T_cell_cam, p_cam)
        on_floor = np.abs(p_veh[:, 2] - surface.height_m(p_veh[:, 0], p_veh[:, 1]))
        on_interior = np.abs(p_veh[:, 2] - surface.INTERIOR_Z_M)
        err = np.minimum(on_floor, on_interior)
        # the floor is a 6 mm triangulation of a smooth surface: chords deviate by well under a millimetre
        assert np.percentile(err, 99) < 1e-3, cam.camera_id
        frame = sample.frameset.frame(cam.camera_id)
        if frame.depth_m is not None:
            valid = (frame.depth_m > 0) & (truth.depth_true_m > 0)
            assert valid.mean() > 0.5
            noise = frame.depth_m[valid] - truth.depth_true_m[valid]
            assert abs(float(np.median(noise))) < 1e-3  # unbiased
            assert 0.3e-3 < float(np.std(noise)) < 6e-3  # noisy like a real sensor, not wildly


Mask = npt.NDArray[np.bool_]


def _defect_and_reference(twin: DigitalTwin, dtype: DefectType, index: int) -> tuple[str, Mask, Mask, Mask]:
    scene = twin.vehicle(index, defect_types=[dtype])
    ref = twin.scene(scene.spec.with_defects([]))
    region = scene.regions[0]
    best: tuple[int, str, float] = (-1, "", 0.0)
    for cam in twin.rig.camera_ids:
        s = twin.s_centering(cam, region.centroid_m)
        px = int(twin.render(scene, s, camera_ids=[cam]).truth[cam].defect_mask.sum())
        best = max(best, (px, cam, s))
    _, cam, s = best
    with_defect = twin.render(scene, s, seq=11, camera_ids=[cam])
    without = twin.render(ref, s, seq=11, camera_ids=[cam])
    changed = np.any(with_defect.frameset.frames[0].image != without.frameset.frames[0].image, axis=2)
    return cam, changed, with_defect.truth[cam].defect_mask, without.truth[cam].defect_mask


@pytest.mark.parametrize("dtype", DEFECT_TYPES)
def test_defect_changes_pixels_inside_its_mask_only(dtype: DefectType) -> None:
    twin = DigitalTwin(TwinConfig(seed=3, width_px=640, height_px=480))
    for index in (10, 11):
        cam, changed, mask, ref_mask = _defect_and_reference(twin, dtype, index)
        assert not ref_mask.any()  # the reference has no defects, so no GT
        assert mask.sum() > 0, f"{dtype} not visible in its best view {cam}"
        assert changed[mask].sum() > 0, f"{dtype}: nothing changed inside the mask"
        border = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # 2 px border
        outside = changed & ~border
        assert outside.sum() == 0, f"{dtype}: {outside.sum()} changed pixels outside the GT mask in {cam}"


@pytest.mark.parametrize("dtype", DEFECT_TYPES)
def test_every_defect_type_is_visible_in_some_default_view(dtype: DefectType) -> None:
    twin = DigitalTwin(TwinConfig(seed=4, width_px=640, height_px=480))
    scene = twin.vehicle(20, defect_types=[dtype])
    region = scene.regions[0]
    seen = {}
    for cam in twin.rig.camera_ids:
        sample = twin.render(scene, twin.s_centering(cam, region.centroid_m), camera_ids=[cam])
        seen[cam] = int(sample.truth[cam].defect_mask.sum())
    assert max(seen.values()) >= 3, seen


def test_stream_is_a_paced_pass(small_twin: DigitalTwin) -> None:
    samples = []
    for k, smp in enumerate(small_twin.stream(fps=2.0, n_vehicles=1, start_ts_ns=10**18, camera_ids=["lower"])):
        samples.append(smp)
        if k == 3:
            break
    ts = [s.frameset.capture_ts_ns for s in samples]
    assert ts == [10**18 + k * 500_000_000 for k in range(4)]
    assert [s.frameset.seq for s in samples] == [0, 1, 2, 3]
    x = [s.frameset.T_cell_vehicle[0, 3] for s in samples]  # type: ignore[index]
    np.testing.assert_allclose(np.diff(x), small_twin.config.speed_mps / 2.0)
    assert samples[0].s_m == pytest.approx(small_twin.pass_range_m()[0])


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="image size"):
        TwinConfig(width_px=4)
    with pytest.raises(ValueError, match="speed"):
        TwinConfig(speed_mps=0.0)
    twin = DigitalTwin(TwinConfig(width_px=32, height_px=24))
    stray = DefectSpec("x", "hole", "NOPE", 0.1, 0.01)
    with pytest.raises(ValueError, match="unknown seam"):
        twin.scene(twin.vehicle_spec(0, []).with_defects([stray]))
    with pytest.raises(ValueError, match="unknown defect type"):
        DefectSpec("x", "scratch", "C1", 0.1, 0.01)  # type: ignore[arg-type]


def test_defect_ground_truth_on_the_mesh(small_twin: DigitalTwin) -> None:
    scene = small_twin.vehicle(30, defect_types=["missing", "hole"])
    truth = small_twin.mesh_truth(scene)
    verts = small_twin.underbody.vertices_vehicle_m
    for k, region in enumerate(scene.regions):
        inside = verts[truth == k]
        assert len(inside) >= 3, region.spec
        # the labelled vertices lie around the defect: within half its length, the 2 mm end margin
        # and the tube radius of its centroid
        reach = region.spec.length_m / 2 + 0.002 + region.radius_m + 1e-3
        assert np.linalg.norm(inside - region.centroid_m, axis=1).max() <= reach
    assert (truth == -1).mean() > 0.99


def test_the_scene_cache_tells_apart_vehicles_that_differ_beyond_their_defects(small_twin: DigitalTwin) -> None:
    """A vehicle drawn with a defect has other colours than the same index drawn without; its defect-free
    twin (``with_defects([])``) must render as itself, not as whichever scene the cache met first."""
    plain = small_twin.vehicle(7, defect_types=[]).spec
    twin_of_defective = small_twin.vehicle(7, defect_types=["hole"]).spec.with_defects([])
    assert twin_of_defective.index == plain.index and twin_of_defective.sealant_rgb != plain.sealant_rgb
    assert small_twin.scene(twin_of_defective).spec == twin_of_defective
    assert small_twin.scene(plain).spec == plain
