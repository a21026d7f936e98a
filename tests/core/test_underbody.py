from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from calibration.errors import UnderbodyModelError
from calibration.underbody import load_underbody, save_underbody
from pipeline.twin import DigitalTwin


def test_seam_layout_follows_the_paper(small_twin: DigitalTwin) -> None:
    seams = small_twin.seams
    assert Counter(s.region for s in seams) == {"front": 4, "centre": 8, "back": 5}
    for region in ("front", "centre", "back"):
        subs = sorted(s.sub_region for s in seams if s.region == region)
        assert subs == list(range(1, len(subs) + 1))
    for s in seams:
        assert 2.0 <= s.bead_width_mm <= 12.0 and 1.0 <= s.bead_height_mm <= 6.0
        assert s.length_m > 0.25
        assert np.all(s.normals_vehicle[:, 2] < -0.5)  # the underbody faces down, towards the cameras


def test_underbody_size_is_realistic(small_twin: DigitalTwin) -> None:
    v = small_twin.underbody.vertices_vehicle_m
    extent = v.max(axis=0) - v.min(axis=0)
    assert extent[0] == pytest.approx(4.2, abs=0.05)
    assert extent[1] == pytest.approx(1.6, abs=0.05)
    assert len(v) >= 200_000


@pytest.mark.parametrize("fmt", ["ply", "glb"])
def test_round_trip(small_twin: DigitalTwin, tmp_path: Path, fmt: str) -> None:
    model = small_twin.underbody
    mesh_path = save_underbody(model, tmp_path / "ub.yaml", mesh_format=fmt)
    assert mesh_path.suffix == f".{fmt}"
    back = load_underbody(tmp_path / "ub.yaml")
    assert len(back.triangles) == len(model.triangles)
    assert [s.seam_id for s in back.seams] == [s.seam_id for s in model.seams]
    np.testing.assert_allclose(back.seams[3].points_vehicle_m, model.seams[3].points_vehicle_m, atol=1e-6)
    np.testing.assert_allclose(back.vertices_vehicle_m.min(axis=0), model.vertices_vehicle_m.min(axis=0), atol=1e-5)


def test_broken_files(small_twin: DigitalTwin, tmp_path: Path) -> None:
    save_underbody(small_twin.underbody, tmp_path / "ub.yaml")
    (tmp_path / "ub.ply").write_bytes(b"ply\nformat garbage\n")
    with pytest.raises(UnderbodyModelError, match="no triangles"):
        load_underbody(tmp_path / "ub.yaml")
    (tmp_path / "ub.yaml").write_text("version: 1\nmesh: ub.ply\nseams: [{id: X}]\n")
    with pytest.raises(UnderbodyModelError, match=r"seams\[0\]\.region"):
        load_underbody(tmp_path / "ub.yaml")
    with pytest.raises(UnderbodyModelError, match="cannot read"):
        load_underbody(tmp_path / "nope.yaml")
