"""The server's main job end to end: the twin -> trained models -> fusion -> defects -> a real client.

The models are trained once per session into a temporary cache (the same code path as the
first ``xrserver serve``); every test then starts the real server on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from clients.python import XrClient
from overlays.defect import Defect
from overlays.extract import Thresholds
from overlays.messages import PassEnd, Scene
from pipeline.fusion import FusionMesh
from pipeline.models.errors import ArtifactError, ModelError
from pipeline.models.travel_gaussian import TravelGaussian, TravelGrid
from pipeline.twin import DigitalTwin, TwinConfig
from xrserver.config import AnalyzerConfig, ServerConfig, StorageConfig, SyncConfig
from xrserver.heatmaps import TravelHeatmaps, TwinReferenceHeatmaps
from xrserver.inspection import InspectionAnalyzer
from xrserver.provision import (
    NORMAL_VEHICLES,
    cached_luts,
    load_view_model,
    twin_travel_models,
    twin_travel_threshold,
)
from xrserver.sources import TwinSource
from xrserver.testing import REPO_ROOT, run_server, scaled

#: The issue's acceptance: reported defects lie within this distance of the twin's ground truth.
MATCH_MM = 15.0
PRESET = os.environ.get("XR_TEST_PRESET", "tiny")
VEHICLE = 5  # seed 0's vehicle 5 has a misalignment and a hole


@dataclass(frozen=True)
class Cell:
    twin: DigitalTwin
    cache: Path


@pytest.fixture(scope="session")
def cell(tmp_path_factory: pytest.TempPathFactory) -> Cell:
    """A fast conveyor (0.5 m/s: one vehicle in ~14 s) and its models, trained on first use."""
    twin = DigitalTwin(TwinConfig(seed=0, width_px=320, height_px=240, speed_mps=0.5))
    return Cell(twin, tmp_path_factory.mktemp("cache"))


def _config(cell: Cell, tmp_path: Path, model: str = "patchcore") -> ServerConfig:
    """The server's defaults but for the cache, the preset and the tables' step; the fused threshold is the model's."""
    return ServerConfig(storage=StorageConfig(db_path=tmp_path / "records.db", cache_dir=cell.cache),
                        sync=SyncConfig(tolerance_ms=60, stale_after_s=2.0),
                        analyzer=AnalyzerConfig(model=model, preset=PRESET, lut_step_m=0.05))


def _gt_distance_mm(twin: DigitalTwin, vehicle_index: int, p_vehicle_m: tuple[float, float, float]) -> float:
    """Distance from a point to the nearest ground-truth defect (its sample points) of one vehicle."""
    scene = twin.vehicle(vehicle_index)
    if not scene.regions:
        return float("inf")
    p = np.asarray(p_vehicle_m)
    return 1000.0 * min(float(np.linalg.norm(r.centers_m - p, axis=1).min()) for r in scene.regions)


async def _first_pass(cell: Cell, tmp_path: Path, model: str,
                      vehicle: int = VEHICLE) -> tuple[PassEnd, list[Defect], InspectionAnalyzer]:
    """Run the server until a supervisor client sees ``vehicle`` leave; the defects the client then holds."""
    source = TwinSource.from_twin(cell.twin, fps=10, first_vehicle=vehicle)
    vid = cell.twin.vehicle(vehicle).spec.vehicle_id
    async with run_server(_config(cell, tmp_path, model), [source]) as srv:
        assert isinstance(srv.xr.analyzer, InspectionAnalyzer)
        async with XrClient(srv.ws_url().split("?")[0], srv.auth.token_for("supervisor"), "supervisor") as client:
            async with asyncio.timeout(scaled(120)):
                async for msg in client:
                    if isinstance(msg, PassEnd) and msg.vehicle_id == vid:
                        return msg, list(client.state.defects.values()), srv.xr.analyzer
    raise AssertionError("the pass never ended")


async def test_defects_streamed_to_a_client_match_the_twin_ground_truth(cell: Cell, tmp_path: Path) -> None:
    """The whole server path (twin -> views -> fusion -> tracking -> WebSocket) against ground truth, with the
    twin's golden-reference detector, whose per-view maps are right: what reaches the client is where the
    defects are."""
    ended, defects, analyzer = await _first_pass(cell, tmp_path, "twin-reference")
    assert analyzer.extractor.thresholds.score == TwinReferenceHeatmaps.FUSED_THRESHOLD, "the model's own, unset"
    truth = cell.twin.vehicle(VEHICLE)
    assert len(truth.regions) == 2, "this vehicle carries two planted defects"
    print(f"planted {[r.spec.defect_type for r in truth.regions]}; reported "
          f"{[(d.seam_id, round(_gt_distance_mm(cell.twin, VEHICLE, d.centroid_vehicle_m))) for d in defects]}")
    assert ended.coverage > 0.9, "the four cameras see most of the seams over a pass"
    assert ended.n_defects == len(defects)
    for d in defects:
        assert d.vehicle_id == truth.spec.vehicle_id and d.seam_id is not None
        assert _gt_distance_mm(cell.twin, VEHICLE, d.centroid_vehicle_m) <= MATCH_MM, f"{d.defect_id} is a false defect"
    found = {min(range(len(truth.regions)), key=lambda k: float(np.linalg.norm(
        truth.regions[k].centers_m - np.asarray(d.centroid_vehicle_m), axis=1).min())) for d in defects}
    assert found, "planted defects were reported"  # recall over many vehicles: benchmarks/fusion_eval.py


@pytest.mark.xfail(strict=True, reason="issue 3 open: the default PatchCore (random-init backbone, 320x240) "
                   "does not localize the twin's 1-2 px beads; the pass itself runs and is covered")
async def test_trained_default_models_find_the_planted_defects(cell: Cell, tmp_path: Path) -> None:
    ended, defects, analyzer = await _first_pass(cell, tmp_path, "patchcore")
    assert analyzer.model_name == "patchcore"
    assert ended.coverage > 0.9
    assert defects and all(_gt_distance_mm(cell.twin, VEHICLE, d.centroid_vehicle_m) <= MATCH_MM for d in defects)


async def test_the_travel_keyed_model_serves_a_pass(cell: Cell, tmp_path: Path) -> None:
    """``analyzer.model: travel-gaussian``: banks of normal vehicles at every trigger position (the conveyor's
    5 cm steps here) and their fused threshold, fitted on three more normal passes, built on first start; then
    a pass of seed 0's vehicle 4, whose misalignment it finds. This checks the served path end to end, not
    recall (docs/benchmarks.md)."""
    ended, defects, analyzer = await _first_pass(cell, tmp_path, "travel-gaussian", vehicle=4)
    models = list(analyzer.models.values())
    assert all(isinstance(m, TravelHeatmaps) for m in models)
    assert sum(m.unscored for m in models if isinstance(m, TravelHeatmaps)) == 0, "every frame is on the grid"
    (fitted,) = cell.cache.glob("models/travel-gaussian-*/fused-threshold-*.json")
    record = json.loads(fitted.read_text())
    assert analyzer.extractor.thresholds.score == record["threshold"], "unset in the config: the fitted one serves"
    assert len(record["normal_vehicles"]) == AnalyzerConfig().validation_passes
    assert record["snapshots"] == AnalyzerConfig().validation_passes * TravelGrid.covering(
        cell.twin.pass_range_m(), 0.05, 0.0125).n, "every trigger position of every validation pass"
    assert ended.coverage > 0.9
    assert defects and all(_gt_distance_mm(cell.twin, 4, d.centroid_vehicle_m) <= MATCH_MM for d in defects)


def test_a_view_off_the_travel_grid_is_left_out_of_fusion(cell: Cell, tmp_path: Path) -> None:
    """A travel-keyed model does not score a frame captured between its trigger positions: the analyzer
    fuses the views it did score and says how many it did not; a frame set without a pose is refused."""
    twin = cell.twin
    cams = ("lower", "oblique_left")
    s0 = 0.0
    normals = [twin.render(twin.vehicle(NORMAL_VEHICLES + j, defect_types=[]), s0, camera_ids=cams).frameset
               for j in range(2)]
    grid = TravelGrid(s0, 0.05, 1, tolerance_m=0.002)
    conveyor = twin.rig.conveyor
    models = {c: TravelHeatmaps(TravelGaussian.fit(c, grid, [np.stack([fs.frame(c).image for fs in normals])]),
                                conveyor) for c in cams}
    mesh = FusionMesh.from_underbody(twin.underbody)
    luts = cached_luts(twin.rig, mesh, twin.pass_range_m(), 0.05, cell.cache, list(cams))
    analyzer = InspectionAnalyzer(twin.rig, twin.underbody, models, luts)
    analyzer.begin_pass("V000-00000")
    on_grid = twin.render(twin.vehicle(0), s0, seq=0, camera_ids=cams).frameset
    assert {v.camera_id for v in analyzer.analyze(on_grid).views} == set(cams)
    off_grid = twin.render(twin.vehicle(0), s0 + 0.01, seq=1, camera_ids=cams).frameset
    result = analyzer.analyze(off_grid)
    assert result.views == () and result.vertex_scores is not None
    assert [m.unscored for m in models.values()] == [1, 1]
    with pytest.raises(ModelError, match="needs the vehicle pose"):
        analyzer.analyze(dataclasses.replace(off_grid, T_cell_vehicle=None))
    # a bank recorded elsewhere serves through the config's `models`, for its own camera only
    bank = models["lower"].model.save(tmp_path / "lower-bank")
    loaded = load_view_model("lower", bank, twin.rig)
    assert isinstance(loaded, TravelHeatmaps) and loaded.model.grid == grid
    with pytest.raises(ArtifactError, match="travel bank of camera lower at 320x240, given for camera oblique_left"):
        load_view_model("oblique_left", bank, twin.rig)
    with pytest.raises(ArtifactError, match="a travel bank serves its camera alone"):
        load_view_model("lower", [bank, tmp_path / "lower-front"], twin.rig)
    with pytest.raises(ValueError, match="models: camera 'nosuch' is not in the rig, which has \\['lower'"):
        load_view_model("nosuch", bank, twin.rig)  # a config's typo: one line from `xrserver serve`, not a KeyError


def test_the_fitted_travel_threshold_is_cached_and_fitted_again_when_damaged(
        cell: Cell, caplog: pytest.LogCaptureFixture) -> None:
    twin = cell.twin
    banks = twin_travel_models(twin, ["lower"], cell.cache, 0.05)
    models = {"lower": TravelHeatmaps(banks["lower"], twin.rig.conveyor)}
    luts = cached_luts(twin.rig, FusionMesh.from_underbody(twin.underbody), twin.pass_range_m(), 0.05, cell.cache,
                       ["lower"])
    thresholds = Thresholds(seam_band_mm=25.0)

    def fit() -> float:
        return twin_travel_threshold(twin, models, luts, thresholds, cell.cache, 0.05, n_passes=1)

    level = fit()
    (path,) = [p for p in cell.cache.glob("models/travel-gaussian-*/fused-threshold-*.json")
               if json.loads(p.read_text())["cameras"] == ["lower"]]
    assert 0 < level <= 1 and json.loads(path.read_text())["normal_vehicles"] == ["V000-30000"]
    path.write_text(json.dumps({**json.loads(path.read_text()), "threshold": 0.77}))
    assert fit() == 0.77, "a later start reads the cached value"
    for damaged in ("{not json", json.dumps({"threshold": 7})):
        path.write_text(damaged)
        with caplog.at_level("WARNING", logger="xrserver.provision"):
            assert fit() == level, "fitted again, to the same level"
        assert "unusable" in caplog.text
        caplog.clear()


async def test_scene_comes_first_and_the_mesh_it_names_is_served(cell: Cell, tmp_path: Path) -> None:
    source = TwinSource.from_twin(cell.twin, fps=10)
    async with run_server(_config(cell, tmp_path), [source]) as srv:
        token = srv.auth.token_for("operator")
        async with XrClient(srv.ws_url().split("?")[0], token, "operator") as client:
            first = await client.receive(scaled(10))
        assert isinstance(first, Scene)
        assert len(first.seams) == len(cell.twin.seams)
        assert {c.camera_id for c in first.rig.cameras} == set(cell.twin.rig.camera_ids)

        def fetch(tok: str | None) -> tuple[int, bytes]:
            req = urllib.request.Request(srv.http + first.mesh_url,
                                         headers={"Authorization": f"Bearer {tok}"} if tok else {})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as e:
                return e.code, b""

        status, glb = await asyncio.to_thread(fetch, token)
        assert status == 200 and glb[:4] == b"glTF"
        assert hashlib.sha256(glb).hexdigest() == first.mesh_sha256
        assert (await asyncio.to_thread(fetch, None))[0] == 401


async def test_watch_prints_live_defects(cell: Cell, tmp_path: Path) -> None:
    source = TwinSource.from_twin(cell.twin, fps=10)
    async with run_server(_config(cell, tmp_path), [source]) as srv:
        env = {**os.environ, "XR_TOKEN": srv.auth.token_for("operator")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xrserver.cli", "watch", srv.ws_url().split("?")[0], "--json",
            "--max-events", "2", cwd=REPO_ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), scaled(90))
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 2
    assert '"event": "pass_start"' in lines[0]
