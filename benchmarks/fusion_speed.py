"""Speed of late fusion + defect extraction + tracking per frame set, on CPU, LUT vs per-frame raycast.

Both paths run in the same process on the same frame sets (the twin's 4 views at 640x480, the
default underbody mesh) and the same heatmaps (reference-difference detector on real twin
renders; detector time is *not* included). Timed per frame set:

* ``lut``: :meth:`Fuser.update` with visibility tables (lookup + exact projection + sampling),
  then :meth:`DefectExtractor.extract` and :meth:`DefectTracker.update`;
* ``raycast``: the same with ``Fuser(luts=None, raycaster=...)``, which raycasts every view
  every frame (the baseline).

    .venv/bin/python benchmarks/fusion_speed.py --frames 6 --out /tmp/fusion_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from overlays import DefectExtractor, DefectTracker, SeamMap, Thresholds
from pipeline.frames import FrameSet
from pipeline.fusion import Fuser, FusionMesh, MeshRaycaster, VisibilityLUT
from pipeline.fusion.reference_diff import ReferenceDiffDetector
from pipeline.twin import DigitalTwin, TwinConfig


def _time_path(fuser: Fuser, extractor: DefectExtractor, tracker: DefectTracker,
               frames: list[tuple[FrameSet, dict[str, npt.NDArray[np.float32]]]]) -> tuple[list[float], list[float]]:
    fuse_ms: list[float] = []
    total_ms: list[float] = []
    fuser.begin_pass("V-bench")
    tracker.begin_pass("V-bench")
    for fs, hm in frames:
        t0 = time.perf_counter()
        state = fuser.update(fs, hm)
        t1 = time.perf_counter()
        tracker.update(extractor.extract(state), state.capture_ts_ns)
        t2 = time.perf_counter()
        fuse_ms.append(1000 * (t1 - t0))
        total_ms.append(1000 * (t2 - t0))
    return fuse_ms, total_ms


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=6, help="frame sets timed per path")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--lut-step-m", type=float, default=0.02)
    ap.add_argument("--threshold", type=float, default=0.03,
                    help="defect score threshold (the all-views operating point of fusion_eval.py)")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)

    twin = DigitalTwin(TwinConfig(width_px=args.width, height_px=args.height))
    mesh = FusionMesh.from_underbody(twin.underbody)
    s0, s1 = twin.pass_range_m()
    mid = 0.5 * (s0 + s1)
    positions = mid + args.lut_step_m * 1.5 * np.arange(args.frames)
    scene = twin.vehicle(7, defect_types=["missing", "hole"])
    ref = twin.scene(scene.spec.with_defects([]))
    det = ReferenceDiffDetector()
    frames = []
    for i, s in enumerate(positions):
        a = twin.render(scene, float(s), seq=i)
        b = twin.render(ref, float(s), seq=i + 10_000)
        hm = {f.camera_id: det(f.camera_id, f.image, b.frameset.frame(f.camera_id).image) for f in a.frameset.frames}
        frames.append((a.frameset, hm))

    rc = MeshRaycaster(mesh)
    t0 = time.perf_counter()
    lo, hi = float(positions[0]) - args.lut_step_m, float(positions[-1]) + args.lut_step_m
    luts = {c.camera_id: VisibilityLUT.build(c, rc, twin.rig.conveyor, (lo, hi), args.lut_step_m)
            for c in twin.rig.cameras}
    lut_build_s = time.perf_counter() - t0
    n_grid = len(next(iter(luts.values())).s_grid_m)
    full_grid = int(np.floor((s1 - s0) / args.lut_step_m)) + 1
    seam_map = SeamMap.build(mesh.vertices_vehicle_m, twin.underbody.seams)
    extractor = DefectExtractor(mesh, seam_map, Thresholds(score=args.threshold))

    lut_fuse, lut_total = _time_path(Fuser(twin.rig, mesh, luts), extractor, DefectTracker(mesh.n_vertices), frames)
    rc_fuse, rc_total = _time_path(Fuser(twin.rig, mesh, None, rc), extractor, DefectTracker(mesh.n_vertices), frames)
    # skip the first frame of each path (numba/JIT and cache warm-up)
    med = {k: statistics.median(v[1:] if len(v) > 1 else v) for k, v in
           {"lut_fuse_ms": lut_fuse, "lut_total_ms": lut_total, "raycast_fuse_ms": rc_fuse,
            "raycast_total_ms": rc_total}.items()}
    report: dict[str, Any] = {
        "command": "benchmarks/fusion_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()} ({platform.system()}), CPU only, "
                   f"{len(os.sched_getaffinity(0))} cores available (shared)",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "views": len(twin.rig.cameras), "image": f"{args.width}x{args.height}", "mesh_vertices": mesh.n_vertices,
        "frames_timed": args.frames - 1, "threshold": args.threshold, "lut_step_m": args.lut_step_m,
        "lut_build_s": lut_build_s, "lut_grid_positions_built": n_grid,
        "lut_build_s_full_pass_estimate": lut_build_s / n_grid * full_grid,
        "lut_bytes_per_camera_full_pass": full_grid * ((mesh.n_vertices + 7) // 8),
        **med, "speedup_fuse": med["raycast_fuse_ms"] / med["lut_fuse_ms"],
        "speedup_total": med["raycast_total_ms"] / med["lut_total_ms"],
    }
    print(f"{report['views']} views at {report['image']}, mesh {report['mesh_vertices']} vertices, "
          f"{report['frames_timed']} frame sets timed, {report['machine']}, {report['date_utc']} UTC")
    print("| path | fusion ms / frame set | fusion + extraction + tracking ms / frame set |")
    print("|---|---|---|")
    print(f"| LUT lookup | {med['lut_fuse_ms']:.1f} | {med['lut_total_ms']:.1f} |")
    print(f"| per-frame raycast (baseline) | {med['raycast_fuse_ms']:.1f} | {med['raycast_total_ms']:.1f} |")
    print(f"| ratio | {report['speedup_fuse']:.1f}x | {report['speedup_total']:.1f}x |")
    est_s = report["lut_build_s_full_pass_estimate"]
    print(f"LUT build: {lut_build_s:.1f} s for {n_grid} positions (full pass ~{est_s:.0f} s"
          f", {full_grid} positions, {report['lut_bytes_per_camera_full_pass'] / 1e6:.1f} MB / camera)")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
    return report


if __name__ == "__main__":
    main()
