"""xrcalib as a user runs it: bad input gives one line, a non-zero exit and no rig file; view screening."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.boards import BoardSpec
from calibration.cli import main
from calibration.views import read_gray, reject_near_duplicates, screen_view

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "calibration" / "stereo_chessboard_11x8"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real stereo photos not present at {DATA}")


def _stereo(tmp: Path, left: str, right: str, board: str = "chessboard:11x8:1.0") -> int:
    return main(["stereo", "--left", left, "--right", right, "--board", board, "--out", str(tmp / "rig.yaml"),
                 "--json", str(tmp / "r.json")])


def _no_outputs(tmp: Path) -> bool:
    return not (tmp / "rig.yaml").exists() and not (tmp / "r.json").exists() and not list(tmp.glob(".rig.yaml.*"))


def test_missing_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _stereo(tmp_path, str(tmp_path / "nothing/L*.jpg"), str(tmp_path / "nothing/R*.jpg"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "no images found" in err[-1] and _no_outputs(tmp_path)


@needs_data
def test_unreadable_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(1, 6):
        shutil.copy(DATA / f"L{i}.jpg", d / f"L{i}.jpg")
        shutil.copy(DATA / f"R{i}.jpg", d / f"R{i}.jpg")
    (d / "L3.jpg").write_bytes(b"not a jpeg")
    code = _stereo(tmp_path, str(d / "L*.jpg"), str(d / "R*.jpg"))
    assert code == 2 and "cannot read image" in capsys.readouterr().err and _no_outputs(tmp_path)


@needs_data
def test_wrong_board_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _stereo(tmp_path, str(DATA / "L1*.jpg"), str(DATA / "R1*.jpg"), board="chessboard:9x6:1.0")
    assert code == 2 and "check --board" in capsys.readouterr().err and _no_outputs(tmp_path)


@needs_data
def test_too_few_views(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _stereo(tmp_path, str(DATA / "L1.jpg"), str(DATA / "R1.jpg"))
    err = capsys.readouterr().err
    assert code == 1 and "need at least" in err and _no_outputs(tmp_path)


@needs_data
def test_degenerate_views_are_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "dup"
    d.mkdir()
    for i in range(8):  # the same pair eight times: no new information
        shutil.copy(DATA / "L2.jpg", d / f"L{i}.jpg")
        shutil.copy(DATA / "R2.jpg", d / f"R{i}.jpg")
    code = _stereo(tmp_path, str(d / "L*.jpg"), str(d / "R*.jpg"))
    assert code == 1 and "usable board views" in capsys.readouterr().err and _no_outputs(tmp_path)


def test_unknown_camera_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rig = tmp_path / "rig.yaml"
    assert main(["import", "--format", "ros", "--input", str(_ros_file(tmp_path)), "--out", str(rig)]) == 0
    out = tmp_path / "out.yaml"
    code = main(["rig", "--camera", f"ghost={tmp_path}/*.png", "--board", "chessboard:8x5:0.1",
                 "--intrinsics", str(rig), "--out", str(out)])
    assert code == 2 and "unknown camera ids ['ghost']" in capsys.readouterr().err and not out.exists()


def _ros_file(tmp: Path) -> Path:
    p = tmp / "cam0.yaml"
    p.write_text(
        "image_width: 320\nimage_height: 240\ncamera_name: cam0\n"
        "camera_matrix: {rows: 3, cols: 3, data: [200, 0, 160, 0, 200, 120, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\ndistortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n"
    )
    return p


@pytest.mark.parametrize("fmt", ["kalibr", "opencv", "ros"])
def test_malformed_import_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cam0: [this is: not {valid\n")
    out = tmp_path / "rig.yaml"
    code = main(["import", "--format", fmt, "--input", str(bad), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and str(bad) in err and len(err.splitlines()) == 1 and not out.exists()


def test_subprocess_prints_one_line_without_traceback(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "calibration.cli", "intrinsics", "--images", str(tmp_path / "x/*.png"),
                          "--board", "chessboard:11x8:1.0", "--out", str(tmp_path / "rig.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stderr.strip().startswith("xrcalib intrinsics: error:")
    bad_board = subprocess.run([sys.executable, "-m", "calibration.cli", "detect", "--images", "x",
                                "--board", "chessboard:eleven"], capture_output=True, text=True, timeout=120)
    assert bad_board.returncode == 2 and "bad board spec" in bad_board.stderr


@needs_data
def test_screening_reports_blur_and_near_duplicates() -> None:
    board = BoardSpec.parse("chessboard:11x8:1.0")
    img = read_gray(DATA / "L1.jpg")
    sharp = screen_view("a", "", img, board)
    assert sharp.accepted
    blurred = screen_view("b", "", np.asarray(cv2.GaussianBlur(img, (0, 0), 4.0), dtype=np.uint8), board)
    assert blurred.reason.startswith("blurred: sharpness")
    shifted = screen_view("c", "", np.roll(img, 3, axis=1), board)  # a 3 px shift: nearly the same view
    other = screen_view("d", "", read_gray(DATA / "L9.jpg"), board)
    out = reject_near_duplicates({"cam": [sharp, shifted, other]})["cam"]
    assert out[0].accepted and out[2].accepted
    assert out[1].reason == "near-duplicate of view a"
