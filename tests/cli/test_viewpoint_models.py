"""A station camera with one model per viewpoint, as the paper trains them, from the CLI to the analyzer.

``xrserver train --twin lower --twin-viewpoint ...`` writes each viewpoint's artifact; the server config lists
them under the camera; the server scores each frame with the model whose template matches it, and leaves
frames of no viewpoint out of fusion.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from pipeline.data.twinset import VIEWPOINT_X_M, station_travel
from pipeline.models.errors import ModelError
from pipeline.twin import DigitalTwin, TwinConfig
from pipeline.twin.dataset import trigger_grid
from xrserver.app import build_sources
from xrserver.config import ConfigError, load_config
from xrserver.heatmaps import STATION_TRAVEL_SLACK_M, ModelHeatmaps
from xrserver.provision import VALIDATION_VEHICLES, prepare_inspection, twin_pass_threshold

SIZE = (160, 120)
STATIONS = ("front", "back")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xrserver.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("viewpoints")
    for vp in STATIONS:
        res = run("train", "--model", "gaussian", "--preset", "tiny", "--twin", "lower", "--twin-viewpoint", vp,
                  "--twin-size", f"{SIZE[0]}x{SIZE[1]}", "--template", "--roi", "--photometric", "--contrast",
                  "--out", str(out / vp))
        assert res.returncode == 0, res.stderr
    return {vp: out / vp for vp in STATIONS}


def _config_file(tmp_path: Path, models: object, thresholds: dict[str, float] | None = None,
                 **analyzer: object) -> Path:
    """A twin station camera stepping the conveyor 2 cm per frame set (5 fps), so that a fused threshold
    fitted on whole passes takes seconds."""
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"db_path": str(tmp_path / "records.db"), "cache_dir": str(tmp_path / "cache")},
        "sources": [{"kind": "twin", "cameras": ["lower"], "width_px": SIZE[0], "height_px": SIZE[1], "fps": 5.0}],
        "models": {"lower": models}, "thresholds": thresholds or {},
        "analyzer": {"lut_step_m": 0.05, "validation_passes": 2, **analyzer}}))
    return path


def _fitted(tmp_path: Path) -> dict[str, Any]:
    (path,) = (tmp_path / "cache" / "thresholds").glob("fused-threshold-*.json")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def test_a_station_camera_serves_one_model_per_viewpoint(artifacts: dict[str, Path], tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Each artifact records its station's conveyor travel; the server scores a frame with the model of the
    station the vehicle is at whose template matches it, and fits the fused threshold at first start on
    whole normal passes streamed as the twin source streams them."""
    twin = DigitalTwin(TwinConfig(seed=0, width_px=SIZE[0], height_px=SIZE[1]))
    station = {vp: station_travel(twin, "lower", vp) for vp in VIEWPOINT_X_M}
    for vp in STATIONS:
        recorded = json.loads((artifacts[vp] / "manifest.json").read_text())["training"]["station_travel_m"]
        assert recorded == pytest.approx([station[vp] - 0.01, station[vp] + 0.01]), "within the trigger jitter"
    config = load_config(_config_file(tmp_path, [str(artifacts[vp]) for vp in STATIONS]))
    with caplog.at_level(logging.INFO, logger="xrserver"):
        cell = prepare_inspection(config, build_sources(config))
    served = cell.analyzer.models["lower"]
    assert isinstance(served, ModelHeatmaps) and len(served.models) == 2
    assert served.max_shift_px is None, "by default each model scores the views its training views showed"
    # the fit: two whole normal passes, a frame set every 2 cm; only the frames at the two stations are scored
    record = _fitted(tmp_path)
    assert cell.analyzer.extractor.thresholds.score == record["threshold"] and 0 < record["threshold"] <= 1
    assert record["normal_vehicles"] == [f"V000-{VALIDATION_VEHICLES + j:05d}" for j in range(2)]
    grid = trigger_grid(twin, 0.02)
    assert record["snapshots"] == 2 * grid.n, "every frame set of both passes"
    reach = 0.01 + STATION_TRAVEL_SLACK_M  # the trigger jitter and the slack: positions at its edge may go either way
    for vp, n in zip(STATIONS, served.scored, strict=True):
        off = np.abs(grid.positions_m() - station[vp])
        assert 2 * (off < reach - 1e-6).sum() <= n <= 2 * (off <= reach + 1e-6).sum() and n > 0, vp
    assert served.unscored == 2 * grid.n - sum(served.scored), "every other frame set of both passes"
    with caplog.at_level(logging.INFO, logger="xrserver"):
        prepare_inspection(config, build_sources(config))
    assert "loaded from" in caplog.text, "the next start reads the cached fit"
    # one frame at each station, between them, and 30 cm past the front station
    scene = twin.vehicle(40_000, defect_types=[])  # a normal vehicle no model saw
    cell.analyzer.begin_pass(scene.spec.vehicle_id)
    scored = {}
    for k, (where, s) in enumerate([("front", station["front"]), ("centre", station["centre"]),
                                    ("back", station["back"] + 0.01), ("front + 30 cm", station["front"] + 0.3)]):
        before = list(served.scored)
        views = cell.analyzer.analyze(twin.render(scene, s, seq=k, camera_ids=["lower"]).frameset).views
        scored[where] = [b - a for a, b in zip(before, served.scored, strict=True)] if views else None
    assert scored == {"front": [1, 0], "centre": None, "back": [0, 1], "front + 30 cm": None}, \
        "each station's frame by its own model; the centre (no model) and the body off any station are not scored"
    summary = cell.analyzer.end_pass(scene.spec.vehicle_id)
    assert summary.coverage is not None and 0 < summary.coverage < 0.5, "only the two stations' seams were seen"
    # a view moved 12 px at the front station: past the training views' moves, within a limit the config sets
    at_front = twin.render(scene, station["front"], camera_ids=["lower"]).frameset
    moved = np.roll(at_front.frames[0].image, 12, axis=1)[None]
    before = list(served.scored)
    assert np.isnan(served.heatmaps(moved, ["lower"], at_front)).all() and served.scored == before
    wide = load_config(_config_file(tmp_path, [str(artifacts[vp]) for vp in STATIONS], {"score": 0.5},
                                    max_view_shift_px=40))
    served = prepare_inspection(wide, build_sources(wide)).analyzer.models["lower"]
    assert isinstance(served, ModelHeatmaps) and served.max_shift_px == 40
    assert not np.isnan(served.heatmaps(moved, ["lower"], at_front)).all() and served.scored == [1, 0]
    with pytest.raises(ModelError, match="needs the vehicle pose"):
        served.heatmaps(moved, ["lower"], dataclasses.replace(at_front, T_cell_vehicle=None))
    assert len(list((tmp_path / "cache" / "thresholds").glob("*.json"))) == 1, "a score in the config is not fitted"


def test_normal_passes_recorded_at_the_station_fit_the_fused_threshold(artifacts: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    """`analyzer.validation_folder`: normal passes recorded on the line (here `xrserver twin passes`) fit the
    station models' threshold instead of the twin's; the same two vehicles give the twin's own level."""
    validation = tmp_path / "validation"
    res = run("twin", "passes", "--size", f"{SIZE[0]}x{SIZE[1]}", "--step-m", "0.02", "--vehicles", "2",
              "--first-vehicle", str(VALIDATION_VEHICLES), "--cameras", "lower", "--out", str(validation))
    assert res.returncode == 0, res.stderr
    models = [str(artifacts[vp]) for vp in STATIONS]
    config = load_config(_config_file(tmp_path, models, validation_folder=str(validation)))
    cell = prepare_inspection(config, build_sources(config))
    record = _fitted(tmp_path)
    twin = DigitalTwin(TwinConfig(seed=0, width_px=SIZE[0], height_px=SIZE[1]))
    assert record["validation_folder"] == str(validation) and record["snapshots"] == 2 * trigger_grid(twin, 0.02).n
    assert cell.analyzer.extractor.thresholds.score == record["threshold"]
    luts = cell.analyzer.fuser.luts
    assert luts is not None
    assert twin_pass_threshold(twin, cell.analyzer.models, luts, cell.analyzer.extractor.thresholds,
                               tmp_path / "twin-cache", 0.02, n_passes=2) == record["threshold"]


def test_a_camera_model_list_that_cannot_serve_is_refused_at_start(artifacts: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="models: lower: give an artifact directory, or a list"):
        load_config(_config_file(tmp_path, []))
    with pytest.raises(ConfigError, match="the same artifact is listed more than once"):
        load_config(_config_file(tmp_path, [str(artifacts["front"])] * 2))
    with pytest.raises(ConfigError, match=r"analyzer\.max_view_shift_px"):
        load_config(_config_file(tmp_path, str(artifacts["front"]), max_view_shift_px=-1))
