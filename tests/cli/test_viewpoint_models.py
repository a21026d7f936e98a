"""A station camera with one model per viewpoint, as the paper trains them, from the CLI to the analyzer.

``xrserver train --twin lower --twin-viewpoint ...`` writes each viewpoint's artifact; the server config lists
them under the camera; the server scores each frame with the model whose template matches it, and leaves
frames of no viewpoint out of fusion.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.data.twinset import VIEWPOINT_X_M
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.app import build_sources
from xrserver.config import ConfigError, load_config
from xrserver.heatmaps import ModelHeatmaps
from xrserver.provision import prepare_inspection

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


def _config_file(tmp_path: Path, models: object, **analyzer: object) -> Path:
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"db_path": str(tmp_path / "records.db"), "cache_dir": str(tmp_path / "cache")},
        "sources": [{"kind": "twin", "cameras": ["lower"], "width_px": SIZE[0], "height_px": SIZE[1]}],
        "models": {"lower": models}, "analyzer": {"lut_step_m": 0.05, **analyzer}}))
    return path


def test_a_station_camera_serves_one_model_per_viewpoint(artifacts: dict[str, Path], tmp_path: Path) -> None:
    config = load_config(_config_file(tmp_path, [str(artifacts[vp]) for vp in STATIONS]))
    cell = prepare_inspection(config, build_sources(config))
    served = cell.analyzer.models["lower"]
    assert isinstance(served, ModelHeatmaps) and len(served.models) == 2
    assert served.max_shift_px is None, "by default each model scores the views its training views showed"
    twin = DigitalTwin(TwinConfig(seed=0, width_px=SIZE[0], height_px=SIZE[1]))
    station = {vp: twin.s_centering("lower", np.array([x, 0.0, 0.0])) for vp, x in VIEWPOINT_X_M.items()}
    scene = twin.vehicle(40_000, defect_types=[])  # a normal vehicle no model saw
    cell.analyzer.begin_pass(scene.spec.vehicle_id)
    scored = {}
    for k, (where, s) in enumerate([("front", station["front"]), ("centre", station["centre"]),
                                    ("back", station["back"] + 0.01), ("front + 30 cm", station["front"] + 0.3)]):
        before = list(served.scored)
        views = cell.analyzer.analyze(twin.render(scene, s, seq=k, camera_ids=["lower"]).frameset).views
        scored[where] = [b - a for a, b in zip(before, served.scored, strict=True)] if views else None
    assert scored == {"front": [1, 0], "centre": None, "back": [0, 1], "front + 30 cm": None}, \
        "each station's frame by its own model; the centre (no model) and a view moved too far are not scored"
    assert served.unscored == 2
    summary = cell.analyzer.end_pass(scene.spec.vehicle_id)
    assert summary.coverage is not None and 0 < summary.coverage < 0.5, "only the two stations' seams were seen"
    wide = load_config(_config_file(tmp_path, [str(artifacts[vp]) for vp in STATIONS], max_view_shift_px=40))
    served = prepare_inspection(wide, build_sources(wide)).analyzer.models["lower"]
    assert isinstance(served, ModelHeatmaps) and served.max_shift_px == 40
    served.heatmaps(twin.render(scene, station["front"] + 0.3, camera_ids=["lower"]).frameset.frames[0].image[None],
                    ["lower"], None)  # type: ignore[arg-type]
    assert served.scored == [1, 0], "a wider limit from the config lets the front model score the moved view"


def test_a_camera_model_list_that_cannot_serve_is_refused_at_start(artifacts: dict[str, Path],
                                                                   tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="models: lower: give an artifact directory, or a list"):
        load_config(_config_file(tmp_path, []))
    with pytest.raises(ConfigError, match="the same artifact is listed more than once"):
        load_config(_config_file(tmp_path, [str(artifacts["front"])] * 2))
    with pytest.raises(ConfigError, match=r"analyzer\.max_view_shift_px"):
        load_config(_config_file(tmp_path, str(artifacts["front"]), max_view_shift_px=-1))
