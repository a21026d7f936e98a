"""SQLite records: real database files, a real crashing process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from overlays.defect import Defect
from xrserver.records import RecordError, RecordStore


def _defect(defect_id: str, score: float = 0.8) -> Defect:
    return Defect(
        defect_id=defect_id, vehicle_id="V1", status="open", centroid_vehicle_m=(0.1, 0.2, 0.0),
        normal_vehicle=(0.0, 0.0, -1.0), extent_mm=(20.0, 8.0, 3.0), area_mm2=160.0, peak_score=score,
        mean_score=score / 2, uncertainty=0.05, seam_id="C1", s_mm=412.0, robot_id="R3", views=("lower",),
        first_seen_ts_ns=1, last_seen_ts_ns=2, n_updates=3,
    )


def test_pass_defects_feedback_round_trip(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records.db")
    store.start_pass("P1", "V1", 100, "patchcore", "1.0")
    store.upsert_defects("P1", [_defect("D1"), _defect("D2", 0.6)])
    store.upsert_defects("P1", [_defect("D1", 0.9)])  # evidence accumulates: same id, new numbers
    fid = store.add_feedback("P1", "D1", "confirm", "operator", ts_ns=150, comment="seen")
    store.upsert_defects("P1", [_defect("D1", 0.95)])  # the tracker never overrides an operator's status
    store.end_pass("P1", 200, coverage=0.93)
    got = store.get_pass("P1")
    assert got["ended_ts_ns"] == 200 and got["coverage"] == pytest.approx(0.93)
    d1 = next(d for d in got["defects"] if d["defect_id"] == "D1")
    assert d1["status"] == "confirmed" and d1["peak_score"] == pytest.approx(0.95)
    assert got["feedback"][0]["feedback_id"] == fid and got["feedback"][0]["comment"] == "seen"
    assert store.list_passes()[0]["n_defects"] == 2
    store.close()
    # reopening finds everything
    again = RecordStore(tmp_path / "records.db")
    assert again.get_pass("P1")["defects"][0]["defect_id"] == "D1"
    assert again.integrity_check() == "ok"


def test_refusals(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "r.db")
    with pytest.raises(RecordError, match="unknown pass"):
        store.upsert_defects("nope", [_defect("D1")])
    store.start_pass("P1", None, 1, "m", "1")
    with pytest.raises(RecordError, match="unknown defect"):
        store.add_feedback("P1", "D9", "confirm", "operator", 2)
    with pytest.raises(RecordError, match="unknown feedback action"):
        store.add_feedback("P1", "D9", "approve", "operator", 2)
    (tmp_path / "broken.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RecordError, match="cannot open"):
        RecordStore(tmp_path / "broken.db")


def test_heatmaps_on_disk_with_checksum(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "r.db")
    store.start_pass("P/1", None, 1, "m", "1")
    scores = np.random.default_rng(0).random(1000).astype(np.float32)
    path = store.save_heatmap("P/1", scores)
    assert path.parent == tmp_path / "heatmaps" and path.name == "P_1.npy"
    np.testing.assert_array_equal(store.load_heatmap("P/1"), scores)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(RecordError, match="corrupt"):
        store.load_heatmap("P/1")


WRITER = textwrap.dedent(
    """
    import sys
    from overlays.defect import Defect
    from xrserver.records import RecordStore

    def _defect(defect_id):
        return Defect(defect_id, "V1", "open", (0.1, 0.2, 0.0), (0.0, 0.0, -1.0), (20.0, 8.0, 3.0), 160.0, 0.8,
                      0.4, 0.05, "C1", 412.0, "R3", ("lower",), 1, 2, 3)

    store = RecordStore(sys.argv[1])
    store.start_pass("P1", "V1", 1, "m", "1")
    print("ack pass", flush=True)
    i = 0
    while True:
        store.upsert_defects("P1", [_defect(f"D{i}")])
        print(f"ack defect D{i}", flush=True)
        if i % 3 == 0:
            store.add_feedback("P1", f"D{i}", "confirm", "operator", ts_ns=i)
            print(f"ack feedback D{i}", flush=True)
        i += 1
    """
)


def test_kill_9_mid_pass_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True, cwd=repo)
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert len(acked) >= 200, acked[-3:]
    store = RecordStore(db)
    assert store.integrity_check() == "ok"
    got = store.get_pass("P1")
    have = {d["defect_id"]: d["status"] for d in got["defects"]}
    for line in acked[1:]:
        kind, defect_id = line.split()[1:]
        assert defect_id in have, line
        if kind == "feedback":
            assert have[defect_id] == "confirmed", line
    assert json.dumps(got)  # the record is whole and serialisable
