"""xrcalib as an integrator runs it, command by command, on the twin's cell with known ground truth:
synth -> rig (bundle adjustment into the cell frame), conveyor, register, coverage, plan, and export
then import in every interop format."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from calibration.boards import BoardSpec
from calibration.cli import main
from calibration.rig import Marker, load_rig, save_rig
from calibration.se3 import invert, rotation_angle_deg, translation
from calibration.synthetic import BoardRenderer
from calibration.underbody import save_underbody
from pipeline.twin import DigitalTwin

BOARD = "chessboard:8x5:0.1"


@pytest.fixture(scope="module")
def cell(small_twin: DigitalTwin, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The twin's true rig and underbody as files, as `xrserver twin model` writes them."""
    d = tmp_path_factory.mktemp("cell")
    save_rig(small_twin.rig, d / "truth.yaml")
    save_underbody(small_twin.underbody, d / "underbody.yaml")
    return d


def _json(path: Path) -> dict:  # type: ignore[type-arg]
    doc: dict = json.loads(path.read_text())  # type: ignore[type-arg]
    return doc


@pytest.fixture(scope="module")
def shots(cell: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("shots")
    assert main(["synth", "--rig", str(cell / "truth.yaml"), "--out", str(d), "--poses", "30",
                 "--intrinsic-views", "4", "--board", BOARD, "--json", str(d / "synth.json")]) == 0
    return d


def _rig_within_2mm(truth_file: Path, got_file: Path) -> None:
    truth, got = load_rig(truth_file), load_rig(got_file)
    for t in truth.cameras:
        E = invert(t.T_cell_cam) @ got.camera(t.camera_id).T_cell_cam
        assert 1000 * np.linalg.norm(E[:3, 3]) < 2.0 and rotation_angle_deg(E[:3, :3]) < 0.1, t.camera_id


def _camera_args(rig_file: Path, shots: Path) -> list[str]:
    return [f"--camera={c.camera_id}={shots}/joint/{c.camera_id}/*.png" for c in load_rig(rig_file).cameras]


def test_synth_then_rig_recovers_the_cameras_in_the_cell_frame(cell: Path, shots: Path, tmp_path: Path) -> None:
    out = tmp_path / "rig.yaml"
    code = main(["rig", *_camera_args(cell / "truth.yaml", shots), "--board", BOARD,
                 "--intrinsics", str(cell / "truth.yaml"), "--reference", str(shots / "references.yaml"),
                 "--out", str(out), "--report", str(tmp_path / "rig.html"), "--json", str(tmp_path / "rig.json")])
    assert code == 0
    doc = _json(tmp_path / "rig.json")
    assert doc["frame"] == "cell" and doc["rms_px"] < 0.3
    _rig_within_2mm(cell / "truth.yaml", out)
    truth = load_rig(cell / "truth.yaml")
    for t in truth.cameras:
        assert doc["cameras"][t.camera_id]["verdict"] in ("good", "usable")  # "good" needs more views
    report = (tmp_path / "rig.html").read_text()
    assert all(c.camera_id in report for c in truth.cameras) and "data:image/png" in report  # residual plots


def test_rig_in_the_cell_frame_from_a_surveyed_marker(cell: Path, shots: Path, tmp_path: Path) -> None:
    (view, T_cell_board), = yaml.safe_load((shots / "references.yaml").read_text())["references"].items()
    base = load_rig(cell / "truth.yaml")
    # the board fixed in the cell and surveyed once: a marker of the rig file
    with_marker = tmp_path / "base.yaml"
    save_rig(replace(base, markers=(Marker("BOARD-1", np.asarray(T_cell_board), 0.8, "aruco"),)), with_marker)
    out = tmp_path / "rig.yaml"
    assert main(["rig", *_camera_args(with_marker, shots), "--board", BOARD, "--intrinsics", str(with_marker),
                 "--reference-marker", f"BOARD-1={view}", "--out", str(out)]) == 0
    _rig_within_2mm(cell / "truth.yaml", out)
    assert main(["rig", *_camera_args(with_marker, shots), "--board", BOARD, "--intrinsics", str(with_marker),
                 "--reference-marker", f"NOPE={view}", "--out", str(tmp_path / "no.yaml")]) == 2
    assert not (tmp_path / "no.yaml").exists()


def test_conveyor_axis_and_speed_from_a_board_riding_it(cell: Path, tmp_path: Path) -> None:
    rig = load_rig(cell / "truth.yaml")
    cam = rig.camera("lower")
    axis = np.array([np.cos(np.deg2rad(1.5)), np.sin(np.deg2rad(1.5)), 0.0])  # a slightly skewed conveyor
    speed = 0.12
    T0 = translation(cam.T_cell_cam[:3, 3] + np.array([-0.5, -0.2, 1.0]))  # the print faces down at the camera
    r = BoardRenderer(cam, BoardSpec.parse(BOARD))
    (tmp_path / "ride").mkdir()
    rows = []
    for k in range(10):
        t = 0.25 * k
        T = invert(cam.T_cell_cam) @ translation(axis * speed * t) @ T0
        assert r.visible(T), k
        cv2.imwrite(str(tmp_path / "ride" / f"f{k:02d}.png"), r.render(T, np.random.default_rng(k)))
        rows.append((f"f{k:02d}", f"{t:.3f}"))
    with (tmp_path / "ts.csv").open("w", newline="") as f:
        csv.writer(f).writerows([("name", "t_s"), *rows])
    out = tmp_path / "rig_conveyor.yaml"
    assert main(["conveyor", "--rig", str(cell / "truth.yaml"), "--camera", "lower", "--images",
                 str(tmp_path / "ride"), "--timestamps", str(tmp_path / "ts.csv"), "--board", BOARD,
                 "--out", str(out), "--json", str(tmp_path / "c.json")]) == 0
    conv = load_rig(out).conveyor
    assert np.degrees(np.arccos(min(1.0, abs(float(conv.axis_cell @ axis))))) < 0.1
    assert abs(conv.speed_mps / speed - 1) < 0.01


def test_register_coverage_and_plan(small_twin: DigitalTwin, cell: Path, tmp_path: Path) -> None:
    s_m = 0.3
    sample = small_twin.render(small_twin.vehicle(0, defect_types=[]), s_m)
    depth_args = []
    for f in sample.frameset.frames:
        if f.depth_m is not None:
            np.save(tmp_path / f"{f.camera_id}.npy", f.depth_m.astype(np.float64))
            depth_args += ["--depth", f"{f.camera_id}={tmp_path / f'{f.camera_id}.npy'}"]
    out = tmp_path / "rig_registered.yaml"
    assert main(["register", "--rig", str(cell / "truth.yaml"), "--underbody", str(cell / "underbody.yaml"),
                 *depth_args, "--s-m", str(s_m), "--init", "nominal", "--out", str(out),
                 "--json", str(tmp_path / "reg.json")]) == 0
    reg = _json(tmp_path / "reg.json")
    E = invert(small_twin.rig.conveyor.T_cell_vehicle(s_m)) @ np.asarray(reg["T_cell_vehicle"])
    assert 1000 * np.linalg.norm(E[:3, 3]) < 2.0 and reg["fitness"] > 0.9
    assert out.is_file()

    png = tmp_path / "coverage.png"
    assert main(["coverage", "--rig", str(cell / "truth.yaml"), "--underbody", str(cell / "underbody.yaml"),
                 "--s-step", "0.5", "--png", str(png), "--json", str(tmp_path / "cov.json")]) == 0
    cov = _json(tmp_path / "cov.json")
    assert 0.5 < cov["fraction_ge1"] <= 1.0 and cov["fraction_ge2"] <= cov["fraction_ge1"]
    img = cv2.imread(str(png))
    assert img is not None and img.std() > 10, "a picture of the underbody coloured by coverage"

    cands = {"candidates": [
        {"id": "below", "eye": [0.0, 0.0, 0.0], "target": [0.0, 0.0, 1.0], "hfov_deg": 90, "size": [320, 240]},
        {"id": "sky", "eye": [0.0, 0.0, 3.0], "target": [0.0, 0.0, 6.0], "hfov_deg": 60, "size": [320, 240]},
    ]}
    (tmp_path / "cands.yaml").write_text(yaml.safe_dump(cands))
    code = main(["plan", "--rig", str(cell / "truth.yaml"), "--underbody", str(cell / "underbody.yaml"),
                 "--candidates", str(tmp_path / "cands.yaml"), "--s-step", "0.5", "--target-ge2", "0",
                 "--target-ge1", "0.3", "--json", str(tmp_path / "plan.json")])
    plan = _json(tmp_path / "plan.json")
    assert plan["chosen"][0] == "below" and "sky" not in plan["chosen"], plan
    assert plan["single"]["sky"]["fraction_ge1"] == 0.0
    assert code == (0 if plan["target_met"] else 1)


@pytest.mark.parametrize("fmt", ["kalibr", "opencv", "ros"])
def test_export_then_import_gives_the_same_cameras(cell: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / ("ros" if fmt == "ros" else f"rig.{fmt}.yaml")
    assert main(["export", "--rig", str(cell / "truth.yaml"), "--format", fmt, "--out", str(target)]) == 0
    inputs = sorted(str(p) for p in target.iterdir()) if fmt == "ros" else [str(target)]
    back = tmp_path / "back.yaml"
    assert main(["import", "--format", fmt, "--input", *inputs, "--out", str(back)]) == 0
    truth, got = load_rig(cell / "truth.yaml"), load_rig(back)
    for t in truth.cameras:
        g = got.camera(t.camera_id)
        assert np.allclose(g.K, t.K) and (g.width_px, g.height_px) == (t.width_px, t.height_px)
        if fmt != "ros":  # ROS camera_info carries no extrinsics
            assert np.allclose(invert(truth.cameras[0].T_cell_cam) @ t.T_cell_cam,
                               invert(got.cameras[0].T_cell_cam) @ g.T_cell_cam, atol=1e-6)
