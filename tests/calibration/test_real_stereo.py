"""Acceptance on real photos: a two-camera rig, 16 synchronised chessboard pairs (11x8, square unknown = 1.0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from calibration.boards import BoardSpec
from calibration.cli import main
from calibration.intrinsics import calibrate_intrinsics
from calibration.stereo import calibrate_stereo
from calibration.views import detect_image_views, list_images

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "calibration" / "stereo_chessboard_11x8"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real stereo photos not present at {DATA}")
BOARD = "chessboard:11x8:1.0"


@pytest.fixture(scope="module")
def stereo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, dict, Path]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("stereo")
    code = main(["stereo", "--left", str(DATA / "L*.jpg"), "--right", str(DATA / "R*.jpg"), "--board", BOARD,
                 "--out", str(out / "rig.yaml"), "--json", str(out / "result.json"), "--report", str(out / "r.html")])
    result = json.loads((out / "result.json").read_text()) if code == 0 else {}
    rig = yaml.safe_load((out / "rig.yaml").read_text()) if code == 0 else {}
    return code, result, rig, out


def test_every_pair_detected_and_mono_rms_small(stereo_run: tuple[int, dict, dict, Path]) -> None:  # type: ignore[type-arg]
    code, result, _, _ = stereo_run
    assert code == 0
    for cam in ("left", "right"):
        c = result["cameras"][cam]
        assert c["views_used"] == 16 and c["rejected"] == {}
        assert c["rms_px"] < 0.3
        assert c["fx_px"] > 0 and c["fy_px"] > 0 and abs(c["fx_px"] / c["fy_px"] - 1) < 0.01
        assert c["verdict"] == "good"
    assert result["pair"]["views_used"] == 16


def test_epipolar_error_and_geometry_consistent(stereo_run: tuple[int, dict, dict, Path]) -> None:  # type: ignore[type-arg]
    _, result, rig, out = stereo_run
    pair = result["pair"]
    assert pair["epipolar_rms_px"] < 0.5
    assert pair["rms_px"] < 0.3
    T = np.asarray(rig["cameras"][1]["T_cell_cam"])
    R = T[:3, :3]
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and abs(np.linalg.det(R) - 1) < 1e-9
    assert np.isclose(np.linalg.norm(T[:3, 3]), pair["baseline"])
    assert np.isclose(np.degrees(np.arccos((np.trace(R) - 1) / 2)), pair["rotation_deg"], atol=1e-6)
    assert "<img" in (out / "r.html").read_text()


def test_baseline_stable_when_views_left_out() -> None:
    board = BoardSpec.parse(BOARD)
    left = {v.view_id[1:]: v.detection for v in detect_image_views(list_images(DATA / "L*.jpg"), board)}
    right = {v.view_id[1:]: v.detection for v in detect_image_views(list_images(DATA / "R*.jpg"), board)}
    assert all(d is not None for d in (*left.values(), *right.values()))
    dl = {k: d for k, d in left.items() if d is not None}
    dr = {k: d for k, d in right.items() if d is not None}
    li = calibrate_intrinsics("left", dl, board, (1280, 720)).camera
    ri = calibrate_intrinsics("right", dr, board, (1280, 720)).camera
    full = calibrate_stereo(li, ri, dl, dr, board).baseline
    keys = sorted(dl, key=int)
    baselines = []
    for drop in (keys[0:4], keys[4:8], keys[8:12], keys[12:16]):
        sub_l = {k: d for k, d in dl.items() if k not in drop}
        sub_r = {k: d for k, d in dr.items() if k not in drop}
        lc = calibrate_intrinsics("left", sub_l, board, (1280, 720)).camera
        rc = calibrate_intrinsics("right", sub_r, board, (1280, 720)).camera
        baselines.append(calibrate_stereo(lc, rc, sub_l, sub_r, board).baseline)
    assert max(abs(b / full - 1) for b in baselines) < 0.01, (full, baselines)
