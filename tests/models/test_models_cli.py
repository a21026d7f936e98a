"""``xrserver models`` as an integrator runs it: twin export -> train -> eval, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xrserver.cli import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ds")
    assert main(["twin", "export", "--out", str(out), "--size", "160x120", "--cameras", "lower",
                 "--train-vehicles", "2", "--frames-per-vehicle", "3", "--val-normal", "1", "--val-defects", "1",
                 "--test-normal", "2", "--test-defects", "1"]) == 0
    return out / "lower"


def test_train_then_eval_an_artifact(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    art = tmp_path / "patchcore-lower"
    assert main(["models", "train", "--model", "patchcore", "--preset", "tiny", "--data", str(dataset),
                 "--out", str(art), "--json", str(tmp_path / "train.json")]) == 0
    result = json.loads((tmp_path / "train.json").read_text())
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["metrics"]["test"] == result["metrics"] and manifest["calibration"] is not None
    assert 0.0 <= result["metrics"]["pixel"]["auroc"] <= 1.0
    assert main(["models", "eval", "--artifact", str(art), "--data", str(dataset),
                 "--json", str(tmp_path / "eval.json")]) == 0
    again = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert again["image"]["auroc"] == pytest.approx(result["metrics"]["image"]["auroc"], abs=1e-6)
    assert "patchcore" in capsys.readouterr().out


def test_bad_input_gives_one_line_and_exit_2(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "train", "--model", "patchcore", "--data", str(tmp_path / "none"),
                 "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no train/good" in err
    assert not (tmp_path / "a").exists()
    assert main(["models", "eval", "--artifact", str(tmp_path / "missing"), "--data", str(dataset)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["models", "train", "--model", "nosuch", "--data", str(dataset), "--out", str(tmp_path / "b")])
    assert e.value.code == 2
