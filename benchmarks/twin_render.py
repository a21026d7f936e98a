"""Render rate of the twin's default 4-camera rig, in frame sets per second.

Renders ``--frames`` consecutive frame sets of one vehicle pass (the body in view) and prints a
table: the full render (raycast + shading + noise + depth + ground truth) against the open3d
raycast alone on the same rays, which is the floor any renderer built on it pays.

    .venv/bin/python benchmarks/twin_render.py --size 640x480 --frames 40
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import open3d as o3d

from calibration.clikit import image_size
from calibration.se3 import invert, rotate_vectors
from pipeline.twin import DigitalTwin, TwinConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=image_size, default="640x480", help="frame size WIDTHxHEIGHT")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    w, h = args.size
    twin = DigitalTwin(TwinConfig(seed=0, width_px=w, height_px=h))
    scene = twin.vehicle(1, defect_types=["missing", "hole", "narrowing"])
    positions = np.linspace(-1.0, 1.0, args.frames)
    twin.render(scene, 0.0)  # compile the kernel, build the noise banks

    t0 = time.perf_counter()
    for k, s in enumerate(positions):
        twin.render(scene, float(s), seq=k)
    full_s = (time.perf_counter() - t0) / len(positions)

    dirs = {c.camera_id: c.pixel_rays_cam().reshape(-1, 3) for c in twin.rig.cameras}
    batches = []
    for s in positions:
        T = invert(twin.rig.conveyor.T_cell_vehicle(float(s)))
        for cam in twin.rig.cameras:
            T_vc = T @ cam.T_cell_cam
            r = np.empty((w * h, 6), np.float32)
            r[:, :3] = T_vc[:3, 3]
            r[:, 3:] = rotate_vectors(T_vc, dirs[cam.camera_id])
            batches.append(o3d.core.Tensor.from_numpy(r))
    t0 = time.perf_counter()
    for b in batches:
        scene.raycaster.cast_rays(b)
    ray_s = (time.perf_counter() - t0) / len(positions)

    rows = [
        ("full render (4 views)", full_s, 1.0 / full_s),
        ("open3d raycast only (4 views)", ray_s, 1.0 / ray_s),
    ]
    print(f"twin render, {len(twin.rig.cameras)} cameras at {w}x{h}, {len(positions)} frame sets, "
          f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores")
    print(f"| {'path':<32} | {'ms / frame set':>14} | {'frame sets / s':>14} |")
    print(f"|{'-' * 34}|{'-' * 16}|{'-' * 16}|")
    for name, sec, fps in rows:
        print(f"| {name:<32} | {sec * 1000:>14.1f} | {fps:>14.2f} |")
    print(f"ratio full / raycast-only time: {full_s / ray_s:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"size": [w, h], "frames": len(positions), "full_ms": full_s * 1000,
                                         "raycast_ms": ray_s * 1000, "fps": 1 / full_s}, indent=2))


if __name__ == "__main__":
    main()
