"""The xrserver CLI as a user runs it: a real subprocess, real files, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xrserver.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_preview_writes_png_and_json(tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    res = run("twin", "preview", "--size", "160x120", "--out", str(out), "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 400
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["out"] == str(out)
    assert {d["type"] for d in result["defects"]} == {"missing", "misalignment", "bifurcation", "narrowing", "hole"}


def test_model_writes_rig_and_underbody(tmp_path: Path) -> None:
    res = run("twin", "model", "--size", "160x120", "--out", str(tmp_path), "--mesh-format", "glb")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "rig.yaml").is_file() and (tmp_path / "underbody.glb").stat().st_size > 1_000_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["twin", "preview", "--size", "big"], "expected WIDTHxHEIGHT"),
        (["twin", "preview", "--defects", "scratch"], "unknown defect type"),
        (["twin", "preview", "--seed", "-3"], "integer >= 0"),
        (["twin", "export", "--out", "x", "--cameras", "nope"], "unknown camera 'nope'"),
        (["twin", "frobnicate"], "invalid choice"),
        (["twin", "preview", "--json", "/no/such/dir/r.json", "--size", "32x24"], "does not exist"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    res = run(*args, cwd=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "rendering" not in ln]
    assert len(lines) == 1, res.stderr
