"""Inspection records: SQLite in WAL mode, heatmaps as arrays on disk.

Every write method commits before it returns; a returned call is an *acknowledged* record and
survives a crash or a ``kill -9`` (WAL with ``synchronous=FULL``). Heatmaps are ``.npy`` files
written atomically (temp file, fsync, rename) with their SHA-256 kept in the database.

The store is synchronous and thread-safe (one connection behind a lock); the server calls it from
a worker thread, never from the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from overlays.defect import DEFECT_STATUSES, Defect

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FeedbackAction = Literal["confirm", "reject", "fixed", "reopen"]
FEEDBACK_STATUS: dict[str, str] = {"confirm": "confirmed", "reject": "rejected", "fixed": "fixed", "reopen": "open"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS passes (
    pass_id TEXT PRIMARY KEY,
    vehicle_id TEXT,
    started_ts_ns INTEGER NOT NULL,
    ended_ts_ns INTEGER,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    coverage REAL,
    heatmap_path TEXT,
    heatmap_sha256 TEXT
);
CREATE INDEX IF NOT EXISTS passes_started ON passes (started_ts_ns);
CREATE TABLE IF NOT EXISTS defects (
    pass_id TEXT NOT NULL REFERENCES passes (pass_id),
    defect_id TEXT NOT NULL,
    status TEXT NOT NULL,
    seam_id TEXT,
    robot_id TEXT,
    s_mm REAL,
    area_mm2 REAL NOT NULL,
    peak_score REAL NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (pass_id, defect_id)
);
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id INTEGER PRIMARY KEY AUTOINCREMENT,
    pass_id TEXT NOT NULL,
    defect_id TEXT NOT NULL,
    action TEXT NOT NULL,
    role TEXT NOT NULL,
    comment TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    FOREIGN KEY (pass_id, defect_id) REFERENCES defects (pass_id, defect_id)
);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    doc TEXT NOT NULL
);
"""


class RecordError(Exception):
    """A record operation the store refuses (unknown pass or defect, bad action), or a broken database."""


class RecordStore:
    """Inspection records of one cell. ``heatmap_dir`` defaults to ``<db folder>/heatmaps``."""

    def __init__(self, db_path: str | os.PathLike[str], heatmap_dir: str | os.PathLike[str] | None = None) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.heatmap_dir = Path(heatmap_dir) if heatmap_dir else self.db_path.parent / "heatmaps"
        self.heatmap_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise RecordError(f"{self.db_path}: schema version {row[0]}, this build reads {SCHEMA_VERSION}")
        except (sqlite3.DatabaseError, RecordError) as e:
            self._db.close()
            if isinstance(e, RecordError):
                raise
            raise RecordError(f"{self.db_path}: cannot open the records database: {e}") from e

    # --- writes (each one commits before returning) --------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def start_pass(
        self, pass_id: str, vehicle_id: str | None, started_ts_ns: int, model_name: str, model_version: str
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO passes (pass_id, vehicle_id, started_ts_ns, model_name, model_version) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (pass_id) DO NOTHING",
                (pass_id, vehicle_id, started_ts_ns, model_name, model_version),
            )

    def end_pass(self, pass_id: str, ended_ts_ns: int, coverage: float | None = None) -> None:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE passes SET ended_ts_ns = ?, coverage = ? WHERE pass_id = ?", (ended_ts_ns, coverage, pass_id)
            )
            if cur.rowcount == 0:
                raise RecordError(f"unknown pass {pass_id!r}")

    def upsert_defects(self, pass_id: str, defects: Sequence[Defect]) -> None:
        """Insert or update defects; an operator's status is kept over the tracker's."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM passes WHERE pass_id = ?", (pass_id,)).fetchone() is None:
                raise RecordError(f"unknown pass {pass_id!r}")
            db.executemany(
                "INSERT INTO defects (pass_id, defect_id, status, seam_id, robot_id, s_mm, area_mm2, peak_score, doc) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pass_id, defect_id) DO UPDATE SET "
                "seam_id = excluded.seam_id, robot_id = excluded.robot_id, s_mm = excluded.s_mm, "
                "area_mm2 = excluded.area_mm2, peak_score = excluded.peak_score, doc = excluded.doc",
                [
                    (pass_id, d.defect_id, d.status, d.seam_id, d.robot_id, d.s_mm, d.area_mm2, d.peak_score,
                     json.dumps(asdict(d)))
                    for d in defects
                ],
            )

    def add_feedback(
        self, pass_id: str, defect_id: str, action: str, role: str, ts_ns: int, comment: str = ""
    ) -> int:
        """Record an operator's feedback and apply it to the defect's status; returns the feedback id."""
        if action not in FEEDBACK_STATUS:
            raise RecordError(f"unknown feedback action {action!r}; use one of {sorted(FEEDBACK_STATUS)}")
        status = FEEDBACK_STATUS[action]
        assert status in DEFECT_STATUSES
        with self._tx() as db:
            cur = db.execute(
                "UPDATE defects SET status = ? WHERE pass_id = ? AND defect_id = ?", (status, pass_id, defect_id)
            )
            if cur.rowcount == 0:
                raise RecordError(f"unknown defect {defect_id!r} in pass {pass_id!r}")
            cur = db.execute(
                "INSERT INTO feedback (pass_id, defect_id, action, role, comment, ts_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (pass_id, defect_id, action, role, comment, ts_ns),
            )
            return int(cur.lastrowid or 0)

    def pass_of_defect(self, defect_id: str) -> str | None:
        """The newest pass that recorded ``defect_id`` (a vehicle seen twice has two), or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT d.pass_id FROM defects d JOIN passes p ON p.pass_id = d.pass_id WHERE d.defect_id = ? "
                "ORDER BY p.started_ts_ns DESC LIMIT 1", (defect_id,)).fetchone()
        return None if row is None else str(row[0])

    def add_alert(self, ts_ns: int, alert: dict[str, Any]) -> int:
        with self._tx() as db:
            cur = db.execute("INSERT INTO alerts (ts_ns, doc) VALUES (?, ?)", (ts_ns, json.dumps(alert)))
            return int(cur.lastrowid or 0)

    def save_heatmap(self, pass_id: str, scores: npt.NDArray[np.floating[Any]]) -> Path:
        """Store a pass's per-vertex heatmap as ``<heatmap_dir>/<pass_id>.npy``, atomically."""
        buf = io.BytesIO()
        np.save(buf, np.asarray(scores), allow_pickle=False)
        data = buf.getvalue()
        path = self.heatmap_dir / f"{_safe_name(pass_id)}.npy"
        fd, tmp = tempfile.mkstemp(prefix=".hm.", dir=self.heatmap_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE passes SET heatmap_path = ?, heatmap_sha256 = ? WHERE pass_id = ?",
                (path.name, hashlib.sha256(data).hexdigest(), pass_id),
            )
            if cur.rowcount == 0:
                raise RecordError(f"unknown pass {pass_id!r}")
        return path

    # --- reads ------------------------------------------------------------------------------------
    def load_heatmap(self, pass_id: str) -> npt.NDArray[Any]:
        """The stored heatmap, verified against its SHA-256; raises :class:`RecordError`."""
        with self._lock:
            row = self._db.execute(
                "SELECT heatmap_path, heatmap_sha256 FROM passes WHERE pass_id = ?", (pass_id,)
            ).fetchone()
        if row is None or row["heatmap_path"] is None:
            raise RecordError(f"no heatmap for pass {pass_id!r}")
        data = (self.heatmap_dir / row["heatmap_path"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != row["heatmap_sha256"]:
            raise RecordError(f"heatmap of pass {pass_id!r} is corrupt (checksum mismatch)")
        out: npt.NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
        return out

    def list_passes(self, limit: int = 50, before_ts_ns: int | None = None) -> list[dict[str, Any]]:
        """Newest first, with defect counts."""
        limit = max(1, min(int(limit), 1000))
        with self._lock:
            rows = self._db.execute(
                "SELECT p.*, (SELECT COUNT(*) FROM defects d WHERE d.pass_id = p.pass_id) AS n_defects "
                "FROM passes p WHERE (? IS NULL OR p.started_ts_ns < ?) ORDER BY p.started_ts_ns DESC LIMIT ?",
                (before_ts_ns, before_ts_ns, limit),
            ).fetchall()
        return [dict(r) for r in rows]

    def get_pass(self, pass_id: str) -> dict[str, Any]:
        """One pass with its defects (and their current status) and its feedback."""
        with self._lock:
            row = self._db.execute("SELECT * FROM passes WHERE pass_id = ?", (pass_id,)).fetchone()
            if row is None:
                raise RecordError(f"unknown pass {pass_id!r}")
            defects = self._db.execute(
                "SELECT status, doc FROM defects WHERE pass_id = ? ORDER BY defect_id", (pass_id,)
            ).fetchall()
            feedback = self._db.execute(
                "SELECT * FROM feedback WHERE pass_id = ? ORDER BY feedback_id", (pass_id,)
            ).fetchall()
        out = dict(row)
        out["defects"] = [{**json.loads(d["doc"]), "status": d["status"]} for d in defects]
        out["feedback"] = [dict(f) for f in feedback]
        return out

    def list_alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT alert_id, ts_ns, doc FROM alerts ORDER BY alert_id DESC LIMIT ?", (max(1, min(limit, 1000)),)
            ).fetchall()
        return [{"alert_id": r["alert_id"], "ts_ns": r["ts_ns"], **json.loads(r["doc"])} for r in rows]

    def integrity_check(self) -> str:
        """SQLite's own check: ``"ok"`` when the database is intact."""
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:128]
