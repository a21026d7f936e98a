"""Evaluate late fusion on the twin: 3D localisation of injected defects over full vehicle passes.

For each vehicle: render every frame set of the pass (and the same vehicle without defects as
the golden reference, with its own sensor noise), run a per-view detector, fuse with several
configurations (all views: weighted / mean / max; each view alone), and extract defects from
the end-of-pass fused map over a sweep of thresholds.

Metrics (a GT defect is *found* when a reported defect's centroid lies within 15 mm of the GT
defect, i.e. of its seam-centre axis sampled every mm; for a hole, its centre):
recall, false defects per vehicle (reported defects within 15 mm of no GT defect), localisation
error (reported centroid to GT centroid, mm, median over found defects), seam coverage (fraction
of seam vertices observed in >= 2 frames). Configurations are compared at equal false defects
per vehicle: for each budget, the threshold with the best recall whose FP/vehicle <= budget.

    .venv/bin/python benchmarks/fusion_eval.py --vehicles 8 --step-m 0.1 --out /tmp/fusion_eval.json

``--detector refdiff`` (default) is :class:`pipeline.fusion.reference_diff.ReferenceDiffDetector`;
``--detector package.module:factory`` plugs in any ``HeatmapSource`` factory (model artifacts later).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from overlays import DefectExtractor, SeamMap, Thresholds
from pipeline.fusion import Fuser, FusionConfig, FusionMesh, VisibilityLUT
from pipeline.fusion.reference_diff import HeatmapSource, ReferenceDiffDetector
from pipeline.fusion.visibility import MeshRaycaster
from pipeline.twin import DEFECT_TYPES, DigitalTwin, TwinConfig

logger = logging.getLogger(__name__)
FOUND_MM = 15.0


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    cameras: tuple[str, ...]
    config: FusionConfig


def load_detector(spec: str) -> HeatmapSource:
    if spec == "refdiff":
        return ReferenceDiffDetector()
    module, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module), attr)
    det: HeatmapSource = factory()
    return det


def match(centroids: npt.NDArray[np.float64], gt_axes: list[npt.NDArray[np.float64]]) -> npt.NDArray[np.float64]:
    """(n_reported, n_gt) distances in mm from each reported centroid to each GT axis."""
    out = np.full((len(centroids), len(gt_axes)), np.inf)
    for j, axis in enumerate(gt_axes):
        if len(centroids):
            out[:, j] = 1000.0 * np.min(np.linalg.norm(centroids[:, None, :] - axis[None], axis=2), axis=1)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vehicles", type=int, default=8)
    ap.add_argument("--defects-per-vehicle", type=int, default=2)
    ap.add_argument("--step-m", type=float, default=0.1, help="conveyor travel between frame sets")
    ap.add_argument("--lut-step-m", type=float, default=0.02)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector", default="refdiff")
    ap.add_argument("--budgets", default="0.5,1,2", help="false defects per vehicle to compare at")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    twin = DigitalTwin(TwinConfig(seed=args.seed, width_px=args.width, height_px=args.height))
    model = twin.underbody
    mesh = FusionMesh.from_underbody(model)
    t0 = time.perf_counter()
    rc = MeshRaycaster(mesh)
    luts = {c.camera_id: VisibilityLUT.build(c, rc, twin.rig.conveyor, twin.pass_range_m(), args.lut_step_m)
            for c in twin.rig.cameras}
    lut_s = time.perf_counter() - t0
    cams = twin.rig.camera_ids
    variants = [Variant("all views, weighted", cams, FusionConfig(view_mode="weighted")),
                Variant("all views, mean", cams, FusionConfig(view_mode="mean")),
                Variant("all views, max", cams, FusionConfig(view_mode="max"))]
    variants += [Variant(f"{c} alone", (c,), FusionConfig(view_mode="weighted")) for c in cams]
    fusers = {v.name: Fuser(twin.rig, mesh, luts, None, v.config) for v in variants}
    seam_map = SeamMap.build(mesh.vertices_vehicle_m, model.seams)
    seam_vertices = seam_map.dist_mm <= 6.0
    detector = load_detector(args.detector)

    s0, s1 = twin.pass_range_m()
    positions = np.arange(s0, s1 + 1e-9, args.step_m)
    scores: dict[str, list[npt.NDArray[np.float32]]] = {v.name: [] for v in variants}
    n_frames: dict[str, list[npt.NDArray[np.int32]]] = {v.name: [] for v in variants}
    gts: list[list[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.float64]]]] = []
    fuse_s = 0.0
    n_updates = 0
    for k in range(args.vehicles):
        types = [DEFECT_TYPES[(k * args.defects_per_vehicle + j) % len(DEFECT_TYPES)]
                 for j in range(args.defects_per_vehicle)]
        scene = twin.vehicle(1000 + k, defect_types=types)
        ref = twin.scene(scene.spec.with_defects([]))
        gts.append([(r.spec.defect_type, r.centroid_m, r.centers_m) for r in scene.regions])
        for f in fusers.values():
            f.begin_pass(scene.spec.vehicle_id)
        t_v = time.perf_counter()
        for i, s in enumerate(positions):
            sample = twin.render(scene, float(s), seq=i)
            ref_sample = twin.render(ref, float(s), seq=i + 1_000_000)
            hm = {fr.camera_id: detector(fr.camera_id, fr.image, ref_sample.frameset.frame(fr.camera_id).image)
                  for fr in sample.frameset.frames}
            for v in variants:
                t1 = time.perf_counter()
                fusers[v.name].update(sample.frameset, {c: hm[c] for c in v.cameras})
                fuse_s += time.perf_counter() - t1
                n_updates += 1
        for v in variants:
            st_score = fusers[v.name].temporal_score()
            scores[v.name].append(st_score)
            n_frames[v.name].append(fusers[v.name]._n_frames.copy())
        print(f"vehicle {k + 1}/{args.vehicles} {types}: {time.perf_counter() - t_v:.0f} s", flush=True)

    # threshold sweep on the end-of-pass maps
    from pipeline.fusion.fuser import FusedState

    budgets = [float(b) for b in args.budgets.split(",")]
    results: dict[str, Any] = {}
    for v in variants:
        allv = np.concatenate(scores[v.name])
        pos = allv[allv > 0]
        grid = np.unique(np.quantile(pos, np.linspace(0.9, 0.99999, 60))) if len(pos) else np.array([0.5])
        sweep = []
        for thr in grid:
            ex = DefectExtractor(mesh, seam_map, Thresholds(score=float(min(max(thr, 1e-6), 1.0)), min_frames=2))
            found = n_gt = fp = 0
            errs: list[float] = []
            for k in range(args.vehicles):
                sc = scores[v.name][k]
                nf = n_frames[v.name][k]
                zeros32 = np.zeros_like(sc)
                st = FusedState(0, 0, None, 0.0, cams, sc, zeros32, nf, nf, zeros32,
                                np.zeros(len(sc), np.uint16), {}, 0.0, 0.0, 0)
                cands = ex.extract(st)
                cent = np.array([c.centroid_vehicle_m for c in cands]).reshape(-1, 3)
                d = match(cent, [g[2] for g in gts[k]])
                n_gt += len(gts[k])
                for j, g in enumerate(gts[k]):
                    if len(cent) and d[:, j].min() <= FOUND_MM:
                        found += 1
                        i_best = int(np.argmin(d[:, j]))
                        errs.append(float(1000 * np.linalg.norm(cent[i_best] - g[1])))
                fp += int(np.sum(~np.any(d <= FOUND_MM, axis=1))) if len(cent) else 0
            sweep.append({"threshold": float(thr), "recall": found / max(n_gt, 1), "fp_per_vehicle": fp / args.vehicles,
                          "loc_err_mm_median": float(np.median(errs)) if errs else None})
        cov = float(np.mean([np.mean(nf[seam_vertices] >= 2) for nf in n_frames[v.name]]))
        at = {}
        for b in budgets:
            ok = [s for s in sweep if s["fp_per_vehicle"] <= b]
            at[str(b)] = max(ok, key=lambda s: (s["recall"], -s["fp_per_vehicle"])) if ok else None
        results[v.name] = {"seam_coverage": cov, "at_budget": at, "sweep": sweep}

    report = {
        "command": "benchmarks/fusion_eval.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.processor() or platform.machine()} ({platform.system()}), CPU only",
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "detector": args.detector, "vehicles": args.vehicles, "frames_per_pass": len(positions),
        "image": f"{args.width}x{args.height}", "mesh_vertices": mesh.n_vertices, "lut_build_s": lut_s,
        "mean_fuse_ms_per_update": 1000 * fuse_s / max(n_updates, 1),
        "gt": [[g[0] for g in v] for v in gts], "results": results,
    }
    print_table(report, budgets)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
    return report


def print_table(report: dict[str, Any], budgets: list[float]) -> None:
    print(f"\n{report['vehicles']} vehicles, {report['frames_per_pass']} frame sets per pass, {report['image']}, "
          f"mesh {report['mesh_vertices']} vertices, detector {report['detector']}")
    for b in budgets:
        print(f"\nat <= {b} false defects / vehicle")
        print("| configuration | recall | false defects / vehicle | loc. error median (mm) | seam coverage "
              "| threshold |")
        print("|---|---|---|---|---|---|")
        for name, r in report["results"].items():
            s = r["at_budget"][str(b)]
            if s is None:
                print(f"| {name} | n/a | n/a | n/a | {r['seam_coverage']:.3f} | n/a |")
                continue
            err = "n/a" if s["loc_err_mm_median"] is None else f"{s['loc_err_mm_median']:.1f}"
            print(f"| {name} | {s['recall']:.2f} | {s['fp_per_vehicle']:.2f} | {err} | {r['seam_coverage']:.3f} "
                  f"| {s['threshold']:.4f} |")


if __name__ == "__main__":
    main()
