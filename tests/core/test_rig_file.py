from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from calibration.errors import RigFileError
from calibration.rig import load_rig, rig_from_dict, rig_to_dict, save_rig
from pipeline.twin import default_rig


def _doc() -> dict[str, Any]:
    return rig_to_dict(default_rig(320, 240))


def test_round_trip(tmp_path: Path) -> None:
    rig = default_rig(320, 240)
    save_rig(rig, tmp_path / "rig.yaml")
    back = load_rig(tmp_path / "rig.yaml")
    assert back.camera_ids == rig.camera_ids
    for a, b in zip(rig.cameras, back.cameras, strict=True):
        np.testing.assert_allclose(a.K, b.K)
        np.testing.assert_allclose(a.dist, b.dist)
        np.testing.assert_allclose(a.T_cell_cam, b.T_cell_cam)
        assert (a.depth is None) == (b.depth is None)
    np.testing.assert_allclose(back.conveyor.T_cell_vehicle(0.5), rig.conveyor.T_cell_vehicle(0.5))
    assert back.markers[0].marker_id == rig.markers[0].marker_id


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["cameras"][1].update(K=[[1, 0], [0, 1]]), r"cameras\[1\]\.K: .*3x3"),
        (lambda d: d["cameras"][0].update(T_cell_cam=np.diag([2.0, 1, 1, 1]).tolist()), r"cameras\[0\]\.T_cell_cam"),
        (lambda d: d.update(version=7), r"version: .*unsupported rig file version 7"),
        (lambda d: d["cameras"][2].pop("dist"), r"cameras\[2\]\.dist: Field required"),
        (lambda d: d["cameras"][0].update(colour="red"), r"cameras\[0\]\.colour: Extra inputs"),
        (lambda d: d["cameras"][0].update(id="bad id"), r"cameras\[0\]\.id"),
        (lambda d: d["conveyor"].update(speed_mps=-1), r"conveyor\.speed_mps"),
        (lambda d: d["cameras"][0].update(dist=[0.1, 0.2]), r"cameras\[0\] \(lower\): pinhole distortion"),
        (lambda d: d["cameras"][1].update(id="lower"), r"camera ids must be unique"),
    ],
)
def test_validation_errors_name_the_field(mutate: Any, expected: str) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(RigFileError, match=expected):
        rig_from_dict(doc, source="rig.yaml")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(RigFileError, match="cannot read"):
        load_rig(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [unclosed")
    with pytest.raises(RigFileError, match="not valid YAML"):
        load_rig(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(RigFileError, match="mapping"):
        load_rig(bad)


def test_failed_write_leaves_old_file_and_no_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rig.yaml"
    save_rig(default_rig(320, 240), path)
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(RigFileError, match="No space left"):
        save_rig(default_rig(640, 480), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rig.yaml"]


def test_failed_first_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(RigFileError):
        save_rig(default_rig(320, 240), tmp_path / "rig.yaml")
    assert list(tmp_path.iterdir()) == []


def test_saved_file_is_versioned_yaml(tmp_path: Path) -> None:
    save_rig(default_rig(320, 240), tmp_path / "rig.yaml")
    doc = yaml.safe_load((tmp_path / "rig.yaml").read_text())
    assert doc["version"] == 1 and len(doc["cameras"]) == 4
    assert sum(c.get("depth") is not None for c in doc["cameras"]) >= 2


def test_written_file_has_the_usual_mode(tmp_path: Path) -> None:
    save_rig(default_rig(320, 240), tmp_path / "rig.yaml")
    assert (tmp_path / "rig.yaml").stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
