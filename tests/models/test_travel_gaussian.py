"""The travel-keyed view model: grid lookup, the subspace fit, scoring a planted deposit on the twin, and its
artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.models.artifacts import MANIFEST
from pipeline.models.errors import ArtifactError, ConfigError, InputError, TrainingError
from pipeline.models.travel_gaussian import (
    BANK,
    TravelGaussian,
    TravelGaussianConfig,
    TravelGrid,
    decode_std,
    encode_std,
    is_travel_artifact,
)
from pipeline.twin import DigitalTwin

CAM = "lower"
STEP_M = 0.05


def test_the_grid_holds_a_stepping_sources_positions_and_nothing_between() -> None:
    grid = TravelGrid.covering((-1.0, 1.0), 0.01, tolerance_m=0.002)
    positions = np.arange(-1.0, 1.0, 0.01)
    assert grid.n == len(positions)
    assert [grid.index(float(s)) for s in positions] == list(range(grid.n))
    assert grid.index(-1.0 + 0.0015) == 0 and grid.index(-1.0 + 0.005) is None  # 5 mm off: not scored
    assert grid.index(-1.01) is None and grid.index(1.0) is None  # outside the pass
    with pytest.raises(ConfigError, match="tolerance"):
        TravelGrid(0.0, 0.01, 10, tolerance_m=0.006)
    with pytest.raises(ConfigError, match="positive step"):
        TravelGrid(0.0, 0.0, 10, tolerance_m=0.0)


def test_standard_deviations_are_coded_within_two_percent() -> None:
    std = np.geomspace(1.0, 250.0, 1000).astype(np.float32)
    back = decode_std(encode_std(std))
    assert np.abs(back / std - 1).max() < 0.012
    assert encode_std(np.array([1e6], np.float32))[0] == 255


@pytest.fixture(scope="module")
def fitted(small_twin: DigitalTwin) -> tuple[TravelGaussian, DigitalTwin, float]:
    """The 'lower' camera's model over three positions 5 cm apart, from 8 normal vehicles."""
    s0 = 0.2
    grid = TravelGrid(s0, STEP_M, 3, tolerance_m=0.002)
    normals = [small_twin.vehicle(10_000 + j, defect_types=[]) for j in range(8)]
    stacks = (np.stack([small_twin.render(sc, float(s), seq=k, camera_ids=[CAM]).frameset.frames[0].image
                        for sc in normals]) for k, s in enumerate(grid.positions_m()))
    return TravelGaussian.fit(CAM, grid, stacks, training={"source": "test"}), small_twin, s0


def test_a_dark_deposit_scores_above_unseen_normal_vehicles_and_peaks_on_it(
        fitted: tuple[TravelGaussian, DigitalTwin, float]) -> None:
    """Per frame, at the same travel: a dark 12x12 px deposit on an unseen vehicle. The model sees grey levels:
    a deposit of the body's own grey would pass. The twin's seam defects, 1-2 px wide here, need the pass's
    fusion: tests/server/test_inspection.py."""
    model, twin, s0 = fitted
    maps = []
    for v in range(20, 24):  # unseen normal vehicles at a grid position, 1 mm off it (inside the tolerance)
        frame = twin.render(twin.vehicle(v, defect_types=[]), s0 + 0.001, seq=0, camera_ids=[CAM]).frameset.frames[0]
        m = model.heatmap(frame.image, s0 + 0.001)
        assert m is not None and m.shape == (240, 320) and m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() < 1.0
        maps.append((frame.image, m))
    defect = maps[0][0].copy()
    defect[100:112, 150:162] = (20, 15, 10)
    hm = model.heatmap(defect, s0 + 0.001)
    assert hm is not None
    y, x = np.unravel_index(int(np.argmax(hm)), hm.shape)
    assert 98 <= y < 114 and 148 <= x < 164, f"the map peaks at {(y, x)}, not on the deposit"
    assert hm.max() > max(float(m.max()) for _, m in maps)


def test_frames_off_the_grid_or_of_the_wrong_shape(fitted: tuple[TravelGaussian, DigitalTwin, float]) -> None:
    model, _, s0 = fitted
    image = np.zeros((240, 320, 3), np.uint8)
    assert model.heatmap(image, s0 + STEP_M) is not None
    assert model.heatmap(image, s0 + 0.01) is None  # between two positions
    assert model.heatmap(image, s0 + 3 * STEP_M) is None  # past the last one
    with pytest.raises(InputError, match=r"\(240, 320, 3\) uint8"):
        model.heatmap(np.zeros((120, 160, 3), np.uint8), s0)
    with pytest.raises(InputError, match="uint8"):
        model.heatmap(image.astype(np.float32), s0)


def test_fitting_needs_enough_frames_at_every_position() -> None:
    grid = TravelGrid(0.0, STEP_M, 2, tolerance_m=0.0)
    two = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(TrainingError, match="1 normal frame"):
        TravelGaussian.fit(CAM, grid, [two, two[:1]])
    with pytest.raises(TrainingError, match="3 positions, the grid has 2"):
        TravelGaussian.fit(CAM, grid, [two, two, two])
    with pytest.raises(ConfigError, match="min_normals >= 2"):
        TravelGaussianConfig(min_normals=1)


def test_a_frame_is_scored_by_its_positions_mean_and_spread() -> None:
    """z = (grey - mean) / sqrt(var + floor) at the frame's own position, mapped to z²/(z² + 9)."""
    normals = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (90, 110)])  # grey mean 100, variance 100
    brighter = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (180, 200)])
    model = TravelGaussian.fit(CAM, TravelGrid(0.0, STEP_M, 2, 0.0), [normals, brighter],
                               TravelGaussianConfig(min_var=125.0, blur_sigma_px=0))  # spread 15
    frame = np.full((4, 4, 3), 145, np.uint8)  # 3 spreads above the first position's mean
    assert model.heatmap(frame, 0.0) == pytest.approx(np.full((4, 4), 0.5), abs=0.02)
    assert model.heatmap(frame, STEP_M) == pytest.approx(np.full((4, 4), 0.5), abs=0.02)  # 3 below the second's
    assert model.heatmap(np.full((4, 4, 3), 100, np.uint8), 0.0) == pytest.approx(np.zeros((4, 4)), abs=1e-3)


def test_the_artifact_round_trips_and_refuses_damage(fitted: tuple[TravelGaussian, DigitalTwin, float],
                                                     tmp_path: Path) -> None:
    model, twin, s0 = fitted
    d = model.save(tmp_path / "lower")
    assert is_travel_artifact(d) and not is_travel_artifact(tmp_path)
    back = TravelGaussian.load(d)
    assert back.camera_id == CAM and back.grid == model.grid and back.config == model.config
    assert back.training == {"source": "test"}
    image = twin.render(twin.vehicle(5), s0, camera_ids=[CAM]).frameset.frames[0].image
    np.testing.assert_array_equal(back.heatmap(image, s0), model.heatmap(image, s0))

    manifest = json.loads((d / MANIFEST).read_text())
    (d / MANIFEST).write_text(json.dumps({**manifest, "grid": {**manifest["grid"], "n": 4}}))
    with pytest.raises(ArtifactError, match=r"holds \(3, 240, 320\), the manifest says \(4, 240, 320\)"):
        TravelGaussian.load(d)
    (d / MANIFEST).write_text(json.dumps(manifest))
    raw = bytearray((d / BANK).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (d / BANK).write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="corrupt"):
        TravelGaussian.load(d)
    (d / BANK).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        TravelGaussian.load(d)
    (d / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        TravelGaussian.load(d)
    with pytest.raises(ArtifactError, match="does not exist"):
        TravelGaussian.load(tmp_path / "nowhere")
    (d / MANIFEST).write_text(json.dumps({**manifest, "format": "xr-sealant-model/1"}))
    with pytest.raises(ArtifactError, match="not a xr-sealant-travel-gaussian/1 manifest"):
        TravelGaussian.load(d)
