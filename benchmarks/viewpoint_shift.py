"""How far from its station a viewpoint's model stays right, on the twin (docs/benchmarks.md).

The paper's station camera is triggered where each sub-region of the underbody faces it; a served
viewpoint model (``xrserver train --twin lower --twin-viewpoint V --template ...``) sees frames a few
centimetres off that station whenever the trigger is late or early, or the stream runs at a fixed rate.
This renders held-out vehicles at the station moved by each of ``--shifts-cm``: ``--normal`` normal
vehicles and ``--defects-per-type`` vehicles per defect type, each with one defect on the viewpoint's
seams, and scores them with the artifact (ONNX Runtime). Per shift:

* how far the views moved (the template offsets' vertical range, px) and how many frames the template
  accepted;
* how many of those the server scores by default (within the training views' moves,
  :func:`xrserver.heatmaps.shift_limits`, and at the station's conveyor travel the artifact records,
  :func:`xrserver.heatmaps.station_travel`);
* the normal frames' highest calibrated map values (0.5 is the artifact's fitted threshold): their
  median, and how many exceed 0.5;
* image AUROC of the accepted frames, and its ratio to the station's (0 cm, the baseline, same run).

    .venv/bin/python benchmarks/viewpoint_shift.py out/models/lower-front --viewpoint front
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from pipeline.data.twinset import VIEWPOINT_X_M, defect_in_view, defect_on_seams
from pipeline.data.twinset import station_travel as station_of
from pipeline.preprocess import PreprocessedModel, load_preprocessed
from pipeline.twin import DEFECT_TYPES, DigitalTwin, TwinConfig, VehicleScene
from xrserver.heatmaps import at_station, shift_limits, station_travel, within_limits

#: first twin vehicle of this benchmark's normal and defect sets: none trains, validates or tests a model
FIRST_NORMAL, FIRST_DEFECT = 40_000, 41_000
EDGE_MARGIN = 0.02  # as the twin's datasets: a defect lies wholly in view


def defect_scenes(twin: DigitalTwin, camera_id: str, viewpoint: str, station_m: float,
                  per_type: int) -> list[VehicleScene]:
    """``per_type`` vehicles per defect type, each with one defect on a seam of ``viewpoint`` in view at the station."""
    rng = np.random.default_rng([twin.config.seed, 41])
    seams = [sm for sm in twin.seams if sm.region == viewpoint]
    camera, T = twin.rig.camera(camera_id), twin.rig.conveyor.T_cell_vehicle(station_m)
    out, vehicle = [], FIRST_DEFECT
    for dtype in DEFECT_TYPES:
        got = 0
        while got < per_type:
            scene = defect_on_seams(twin, rng, vehicle, dtype, seams)
            vehicle += 1
            if defect_in_view(camera, T, scene.regions[0], EDGE_MARGIN):
                out.append(scene)
                got += 1
    return out


def score_at(model: PreprocessedModel, twin: DigitalTwin, camera_id: str, scenes: list[VehicleScene],
             s_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per accepted frame: its highest calibrated map value, its template offset (x, y), and whether it shows a
    defect."""
    camera, T = twin.rig.camera(camera_id), twin.rig.conveyor.T_cell_vehicle(s_m)
    peaks, offsets, defective = [], [], []
    for scene in scenes:
        if scene.regions and not defect_in_view(camera, T, scene.regions[0], EDGE_MARGIN):
            continue  # the defect left the view at this shift
        batch = model.preprocess(twin.render(scene, s_m, camera_ids=[camera_id]).frameset.frames[0].image[None])
        if not batch.accepted[0]:
            continue
        pred = model.predict_preprocessed(batch)
        assert pred.maps_norm is not None
        peaks.append(float(pred.maps_norm[0].max()))
        offsets.append(batch.offsets_xy[0])
        defective.append(bool(scene.regions))
    return np.array(peaks), np.array(offsets, np.int32).reshape(-1, 2), np.array(defective, bool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path, help="a viewpoint model's artifact directory (trained with --template)")
    ap.add_argument("--viewpoint", choices=sorted(VIEWPOINT_X_M), required=True)
    ap.add_argument("--camera", default="lower")
    ap.add_argument("--twin-seed", type=int, default=0)
    ap.add_argument("--normal", type=int, default=24, help="normal vehicles")
    ap.add_argument("--defects-per-type", type=int, default=4)
    ap.add_argument("--shifts-cm", type=float, nargs="+", default=[0, -1, 1, -2, 2, -4, 4, -7, 7, -10, 10])
    args = ap.parse_args()
    model = load_preprocessed(args.artifact, runtime="onnx")
    size = model.preprocessor.frame_size_wh
    if model.calibration is None or size is None or model.preprocessor.template is None:
        ap.error(f"{args.artifact}: needs a calibrated artifact with template matching (train with --template)")
    limits, travel = shift_limits(model), station_travel(model)
    twin = DigitalTwin(TwinConfig(seed=args.twin_seed, width_px=size[0], height_px=size[1]))
    station = station_of(twin, args.camera, args.viewpoint)
    scenes = [twin.vehicle(FIRST_NORMAL + j, defect_types=[]) for j in range(args.normal)]
    scenes += defect_scenes(twin, args.camera, args.viewpoint, station, args.defects_per_type)
    print(f"{args.artifact} ({model.name}, {size[0]}x{size[1]}), viewpoint {args.viewpoint} (station s = "
          f"{station:.3f} m); {args.normal} normal and {len(scenes) - args.normal} defect vehicles; scored by "
          f"default: template offsets {'any' if limits is None else limits.tolist()} px, conveyor travel "
          f"{'any' if travel is None else f'{travel[0]:.3f} to {travel[1]:.3f} m'}")
    print(f"{platform.machine()}, {os.cpu_count()} cores, ONNX Runtime\n")
    print("| shift (cm) | views moved, y (px) | accepted normal / defect | scored by default | "
          "normal peak, median | normals > 0.5 | image AUROC | vs 0 cm |")
    print("|---|---|---|---|---|---|---|---|")
    base = None
    for cm in args.shifts_cm:
        s_m = station + cm / 100
        peaks, offsets, defective = score_at(model, twin, args.camera, scenes, s_m)
        inside = within_limits(limits, offsets) & at_station(travel, s_m)
        normal = peaks[~defective]
        auc = roc_auc_score(defective, peaks) if 0 < defective.sum() < len(peaks) else float("nan")
        if cm == 0:
            base = auc
        ratio = f"{auc / base:.2f}x" if base else "n/a"
        moved = f"{offsets[:, 1].min()} to {offsets[:, 1].max()}" if len(offsets) else "n/a"
        print(f"| {cm:+g} | {moved} | {(~defective).sum()} / {defective.sum()} | {inside.sum()} of {len(peaks)} | "
              f"{np.median(normal) if normal.size else float('nan'):.2f} | {(normal > 0.5).sum()} | {auc:.3f} | "
              f"{ratio} |")


if __name__ == "__main__":
    main()
