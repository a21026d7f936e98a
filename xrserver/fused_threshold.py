"""The fused threshold of served models that are not fitted on fused defects, fitted on normal passes and
cached (blocking; before the server listens).

A travel-keyed bank (:mod:`pipeline.models.travel_gaussian`) is not fitted on defects at all, and a trained
model's own threshold is fitted on single frames, not on the fused map over a pass; so the threshold on the
fused map comes from whole normal passes instead: they run through a real :class:`InspectionAnalyzer`
at every trigger position, and :class:`overlays.calibrate.QuietLevel` keeps the lowest threshold at which
the server would publish nothing on any of them. The passes are the twin's own
(:func:`xrserver.provision.twin_travel_threshold` for its banks, :func:`xrserver.provision.twin_pass_threshold`
for the models a config names) or recorded on the line in the folder layout of
:mod:`pipeline.data.travel_passes` (:func:`recorded_threshold`, ``analyzer.validation_folder``).
Each fit is cached as JSON under a key of everything it depends on (:func:`served_key` for the models); a
damaged or out-of-range cache entry is fitted again, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from calibration.rig import Rig
from calibration.underbody import UnderbodyModel
from overlays.calibrate import QuietLevel
from overlays.extract import Thresholds
from overlays.tracker import TrackerConfig
from pipeline.data.travel_passes import GRID_FILE, RecordedPasses, read_passes
from pipeline.frames import Frame, FrameSet
from pipeline.fusion import FusionConfig, VisibilityLUT
from pipeline.models.artifacts import atomic_write
from pipeline.models.errors import InputError
from xrserver.heatmaps import ModelHeatmaps, TravelHeatmaps
from xrserver.inspection import HeatmapModel, InspectionAnalyzer

log = logging.getLogger(__name__)

#: one validation pass: its vehicle id and its frame sets in trigger order
Pass = tuple[str, Iterable[FrameSet]]


def digest(*parts: Any) -> str:
    """A short key of JSON-able parts (bytes as they are)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def fit_key(models: Mapping[str, HeatmapModel], luts: Mapping[str, VisibilityLUT], thresholds: Thresholds) -> str:
    """What a fit depends on besides the banks and the passes: the cameras, their visibility tables and every
    extraction, fusion and tracking setting but the score itself."""
    tables = {c: (luts[c].step_m, len(luts[c].s_grid_m), luts[c].n_vertices) for c in models}
    return digest(list(models), asdict(replace(thresholds, score=1.0, per_seam={})), asdict(FusionConfig()),
                  asdict(TrackerConfig()), tables)


def quiet_level(rig: Rig, underbody: UnderbodyModel, models: Mapping[str, HeatmapModel],
                luts: Mapping[str, VisibilityLUT], thresholds: Thresholds, passes: Iterable[Pass],
                progress: Callable[[int], object] | None = None) -> dict[str, Any]:
    """Run ``passes`` through the analyzer; the record of the fit: ``threshold``, ``cameras``, ``snapshots``
    and ``normal_vehicles``. ``progress(1)`` after each frame set."""
    analyzer = InspectionAnalyzer(rig, underbody, models, luts, replace(thresholds, score=1.0))
    quiet = QuietLevel(analyzer.mesh, analyzer.seam_map, thresholds, TrackerConfig().confirm_hits)
    vehicles = []
    for vehicle_id, framesets in passes:
        vehicles.append(vehicle_id)
        analyzer.begin_pass(vehicle_id)
        quiet.begin_pass()
        for fs in framesets:
            analyzer.analyze(fs)
            if analyzer.last_state is not None:
                quiet.observe(analyzer.last_state)
            if progress is not None:
                progress(1)
    return {"threshold": quiet.level, "cameras": list(models), "snapshots": quiet.snapshots,
            "normal_vehicles": vehicles}


def cached(path: Path, fit: Callable[[], dict[str, Any]]) -> float:
    """The threshold recorded at ``path``, or ``fit()``'s, written there."""
    try:
        threshold = float(json.loads(path.read_text(encoding="utf-8"))["threshold"])
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold {threshold} is not in (0, 1]")
        log.info("fused threshold %.4f loaded from %s", threshold, path)
        return threshold
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("cached fused threshold %s unusable (%s); fitting it again", path, e)
    record = fit()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(record, indent=1).encode())
    log.info("fused threshold %.4f: the lowest at which %d normal passes publish nothing", record["threshold"],
             len(record["normal_vehicles"]))
    return float(record["threshold"])


def _recorded_framesets(recorded: RecordedPasses, name: str, rig: Rig) -> Iterator[FrameSet]:
    for k, s in enumerate(recorded.grid.positions_m()):
        ts = k * 100_000_000  # 10 fps; the analyzer reads no clock from it
        frames = tuple(Frame(c, recorded.image(name, c, k), ts, k) for c in recorded.cameras)
        yield FrameSet(k, ts, frames, rig.conveyor.T_cell_vehicle(float(s)), name)


def served_key(models: Mapping[str, HeatmapModel]) -> str:
    """What the served ``models`` are, per camera: a travel bank's arrays; a trained model's manifest (which
    holds its files' hashes and its training record) and the views and travel it scores. Raises TypeError
    for another kind (the twin's golden reference has a fixed threshold)."""
    h = hashlib.sha256()
    for c in sorted(models):
        h.update(c.encode())
        m = models[c]
        if isinstance(m, TravelHeatmaps):
            for a in (m.model.mean, m.model.std_code):
                h.update(np.ascontiguousarray(a).data)
        elif isinstance(m, ModelHeatmaps):
            h.update(digest([x.manifest for x in m.models], [None if a is None else a.tolist() for a in m.limits_px],
                            m.travel_m).encode())
        else:
            raise TypeError(f"camera {c}: no fused threshold is fitted for a {type(m).__name__}")
    return h.hexdigest()[:16]


def recorded_threshold(rig: Rig, underbody: UnderbodyModel, models: Mapping[str, HeatmapModel],
                       luts: Mapping[str, VisibilityLUT], thresholds: Thresholds, folder: Path, cache_dir: Path,
                       progress: bool = False) -> float:
    """The fused threshold of the ``models`` named in a config (travel banks or trained models, one entry per
    camera) from the normal passes recorded in ``folder`` (none of them in the models' training data). Travel
    banks need the passes on their own trigger grid. Cached under ``cache_dir/thresholds`` by the models, the
    folder's files and the settings. Raises :class:`~pipeline.models.errors.InputError` for a folder that
    does not fit the models."""
    recorded = read_passes(folder, list(models))
    banks = {c: m.model for c, m in models.items() if isinstance(m, TravelHeatmaps)}
    for cid, bank in banks.items():
        if bank.grid != recorded.grid:
            raise InputError(f"{folder / GRID_FILE}: validation passes on {recorded.grid}, the bank of {cid} on "
                             f"{bank.grid}; record them on the same trigger grid")
    for cid, bank in banks.items():
        shared = sorted(set(recorded.passes) & set(bank.training.get("normal_passes", [])))
        if shared:
            log.warning("analyzer.validation_folder: the bank of %s was built from passes %s too; the threshold "
                        "fitted on them errs low (validate on vehicles the banks have not seen)", cid, shared)
    files = sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                   for p in folder.rglob("*") if p.is_file())
    key = digest(fit_key(models, luts, thresholds), served_key(models), files)
    n = recorded.grid.n * len(recorded.passes)

    def fit() -> dict[str, Any]:
        with tqdm(total=n, desc="recorded normal passes for the fused threshold (first run only)",
                  unit="frame set", disable=not progress) as bar:
            record = quiet_level(rig, underbody, models, luts, thresholds,
                                 ((name, _recorded_framesets(recorded, name, rig)) for name in recorded.passes),
                                 bar.update)
        return {**record, "validation_folder": str(folder)}

    return cached(cache_dir / "thresholds" / f"fused-threshold-{key}.json", fit)
