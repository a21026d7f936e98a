"""``xrserver twin passes`` and ``xrserver bank build`` as an integrator runs them: recorded normal passes in a
folder -> one travel-keyed bank per camera, which the server serves through a `models:` entry."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.models.errors import InputError
from pipeline.models.travel_gaussian import TravelGaussian
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.config import load_config
from xrserver.heatmaps import TravelHeatmaps
from xrserver.provision import (
    NORMAL_VEHICLES,
    VALIDATION_VEHICLES,
    load_view_model,
    prepare_inspection,
    twin_travel_models,
    twin_travel_threshold,
)

SIZE = (160, 120)
STEP_M = 0.25  # 28 trigger positions over the twin's pass


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "xrserver.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def passes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three normal passes of the twin's first bank vehicles, two cameras, as `twin passes` records them."""
    out = tmp_path_factory.mktemp("passes")
    res = run("twin", "passes", "--size", f"{SIZE[0]}x{SIZE[1]}", "--step-m", str(STEP_M), "--vehicles", "3",
              "--cameras", "lower", "oblique_left", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "wrote 3 normal passes" in res.stdout and "28 trigger positions" in res.stdout
    return out


def test_banks_built_from_recorded_passes_are_the_ones_the_server_builds_and_serve(passes: Path,
                                                                                  tmp_path: Path) -> None:
    res = run("bank", "build", str(passes), "--out", str(tmp_path / "banks"), "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["banks"]) == {"lower", "oblique_left"} and report["grid"]["n"] == 28
    assert report["passes"] == [f"V000-{NORMAL_VEHICLES + j:05d}" for j in range(3)]
    # the same vehicles, grid and settings give the same statistics as the server's first start on the twin
    twin = DigitalTwin(TwinConfig(seed=0, width_px=SIZE[0], height_px=SIZE[1]))
    built = twin_travel_models(twin, ["lower"], tmp_path / "cache", STEP_M, n_normals=3)["lower"]
    recorded = TravelGaussian.load(report["banks"]["lower"])
    assert recorded.grid == built.grid
    np.testing.assert_array_equal(recorded.mean, built.mean)
    np.testing.assert_array_equal(recorded.std_code, built.std_code)
    assert recorded.training["normal_passes"] == report["passes"]
    # what a `models:` entry of the server config loads, for its own camera
    served = load_view_model("lower", Path(report["banks"]["lower"]), twin.rig)
    assert isinstance(served, TravelHeatmaps) and served.model.camera_id == "lower"


def _damaged(passes: Path, tmp_path: Path, how: str) -> Path:
    root = tmp_path / "passes"
    shutil.copytree(passes, root)
    first = root / "V000-10000" / "lower"
    if how == "missing frame":
        (first / "00005.png").unlink()
    elif how == "truncated frame":
        (first / "00007.png").write_bytes((first / "00007.png").read_bytes()[:100])
    elif how == "misnamed frame":
        (first / "00003.png").rename(first / "frame3.png")
    elif how == "no grid":
        (root / "grid.json").unlink()
    elif how == "bad grid":
        (root / "grid.json").write_text('{"s0_m": 0, "step_m": -1, "n": 28, "tolerance_m": 0}')
    elif how == "camera missing":
        shutil.rmtree(root / "V000-10001" / "oblique_left")
    elif how == "one pass":
        for name in ("V000-10001", "V000-10002"):
            shutil.rmtree(root / name)
    return root


@pytest.mark.parametrize(("how", "message"), [
    ("missing frame", "V000-10000/lower: no frame for trigger 5 of 28"),
    ("truncated frame", "cannot read image"),
    ("misnamed frame", "a frame's name must be its trigger index"),
    ("no grid", "no grid.json"),
    ("bad grid", "not a trigger grid"),
    ("camera missing", "V000-10001: no frames of camera(s) ['oblique_left']"),
    ("one pass", "1 pass(es); a bank needs at least 2"),
])
def test_a_damaged_recording_gives_one_clear_line(passes: Path, tmp_path: Path, how: str, message: str) -> None:
    res = run("bank", "build", str(_damaged(passes, tmp_path, how)), "--out", str(tmp_path / "banks"))
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "banks").exists(), "nothing is written from a damaged recording"


def test_passes_on_another_grid_are_not_mixed_into_a_recording(passes: Path, tmp_path: Path) -> None:
    root = tmp_path / "passes"
    shutil.copytree(passes, root)
    res = run("twin", "passes", "--size", f"{SIZE[0]}x{SIZE[1]}", "--step-m", "0.5", "--vehicles", "1",
              "--first-vehicle", "20000", "--out", str(root))
    assert res.returncode == 2 and "holds passes on another trigger grid" in res.stderr
    assert not (root / "V000-20000").exists()


def test_recorded_validation_passes_fit_the_recorded_banks_fused_threshold(
        passes: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A line without the twin: rig and underbody files, banks built from recorded passes, and two more
    recorded normal passes in `analyzer.validation_folder`. The server fits the fused threshold on them at
    start (the same as the twin's fit on the same vehicles), caches it, and fits again when they change."""
    banks, model, validation = tmp_path / "banks", tmp_path / "model", tmp_path / "validation"
    for args in (["bank", "build", str(passes), "--out", str(banks)],
                 ["twin", "model", "--size", f"{SIZE[0]}x{SIZE[1]}", "--out", str(model)],
                 ["twin", "passes", "--size", f"{SIZE[0]}x{SIZE[1]}", "--step-m", str(STEP_M), "--vehicles", "2",
                  "--first-vehicle", str(VALIDATION_VEHICLES), "--cameras", "lower", "oblique_left",
                  "--out", str(validation)]):
        res = run(*args)
        assert res.returncode == 0, res.stderr
    config_file = tmp_path / "line.yaml"
    config_file.write_text(yaml.safe_dump({
        "rig": str(model / "rig.yaml"), "underbody": str(model / "underbody.yaml"),
        "storage": {"db_path": str(tmp_path / "records.db"), "cache_dir": str(tmp_path / "cache")},
        "sources": [{"kind": "folder", "camera_id": c, "path": str(passes / "V000-10000" / c)}
                    for c in ("lower", "oblique_left")],
        "models": {c: str(banks / c) for c in ("lower", "oblique_left")},
        "analyzer": {"lut_step_m": 0.05, "validation_folder": str(validation)}}))
    config = load_config(config_file)
    with caplog.at_level(logging.INFO, logger="xrserver"):
        cell = prepare_inspection(config, [])
    (fitted,) = (tmp_path / "cache" / "thresholds").glob("fused-threshold-*.json")
    record = json.loads(fitted.read_text())
    assert cell.analyzer.extractor.thresholds.score == record["threshold"]
    assert record["normal_vehicles"] == [f"V000-{VALIDATION_VEHICLES + j:05d}" for j in range(2)]
    assert record["snapshots"] == 2 * 28, "every trigger of every validation pass"
    assert "no fitted fused threshold" not in caplog.text
    # the twin's own fit, rendering the same two vehicles, with the same banks and tables, gives the same level
    twin = DigitalTwin(TwinConfig(seed=0, width_px=SIZE[0], height_px=SIZE[1]))
    luts = cell.analyzer.fuser.luts
    assert luts is not None
    assert twin_travel_threshold(twin, cell.analyzer.models, luts, cell.analyzer.extractor.thresholds,
                                 tmp_path / "twin-cache", STEP_M, n_normals=3, n_passes=2) == record["threshold"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="xrserver"):
        prepare_inspection(config, [])
    assert "loaded from" in caplog.text, "the next start reads the cached fit"
    shutil.rmtree(validation / f"V000-{VALIDATION_VEHICLES + 1:05d}")
    prepare_inspection(config, [])
    assert len(list((tmp_path / "cache" / "thresholds").glob("fused-threshold-*.json"))) == 2, "fitted again"
    # without the folder, 0.5 with a warning; a score in the config wins, and an unused folder is named
    caplog.clear()
    unset = config.model_copy(update={"analyzer": config.analyzer.model_copy(update={"validation_folder": None})})
    assert prepare_inspection(unset, []).analyzer.extractor.thresholds.score == 0.5
    assert "no fitted fused threshold without analyzer.validation_folder" in caplog.text
    fixed = config.model_copy(update={"thresholds": config.thresholds.model_copy(update={"score": 0.4})})
    assert prepare_inspection(fixed, []).analyzer.extractor.thresholds.score == 0.4
    assert "analyzer.validation_folder is not used" in caplog.text
    # the banks' own passes do not validate them
    caplog.clear()
    same = config.model_copy(update={"analyzer": config.analyzer.model_copy(update={"validation_folder": passes})})
    prepare_inspection(same, [])
    assert "the bank of lower was built from passes ['V000-10000', 'V000-10001', 'V000-10002'] too" in caplog.text
    # passes recorded on another grid than the banks' are refused by name
    shutil.rmtree(validation)
    assert run("twin", "passes", "--size", f"{SIZE[0]}x{SIZE[1]}", "--step-m", "0.5", "--vehicles", "1",
               "--first-vehicle", str(VALIDATION_VEHICLES), "--out", str(validation)).returncode == 0
    with pytest.raises(InputError, match=r"validation passes on .* the bank of lower on"):
        prepare_inspection(config, [])
