"""Speed of PatchCore's greedy coreset, the step that dominates its fit, on this machine's CPU.

The bank of the ``twin`` preset on the accuracy benchmark's training set: 100 frames at 320x240,
ResNet18 layer2+3 (384 channels) on a stride-8 grid, 1200 patches per frame, so 120k features,
projected to 128 dimensions. Random features stand in for them (the cost does not depend on the
values). Timed, in the same process on the same features, for ``--steps`` selections:

* ``broadcast``: each step's distances as ``((z - z[c]) ** 2).sum(1)`` (an (M, 128) temporary per
  step; the first implementation, kept here as the baseline);
* ``greedy_coreset``: ``pipeline.models.coreset`` (one mat-vec per step, ``||z||² - 2 z·z_c + ||z_c||²``).

    .venv/bin/python benchmarks/coreset_speed.py --features 120000 --steps 2000
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from pipeline.models.coreset import greedy_coreset


def broadcast_coreset(z: torch.Tensor, n_select: int, start: int) -> torch.Tensor:
    selected = torch.empty(n_select, dtype=torch.long)
    selected[0] = start
    min_d = ((z - z[start]) ** 2).sum(1)
    for i in range(1, n_select):
        nxt = int(torch.argmax(min_d).item())
        selected[i] = nxt
        min_d = torch.minimum(min_d, ((z - z[nxt]) ** 2).sum(1))
    return selected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--features", type=int, default=120_000, help="bank features before the coreset (M)")
    ap.add_argument("--channels", type=int, default=384)
    ap.add_argument("--projection-dim", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2000, help="selections timed per path")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(args.features, args.channels, generator=g)
    proj = torch.randn(args.channels, args.projection_dim, generator=g) / args.projection_dim**0.5
    z = feats @ proj
    times: dict[str, list[float]] = {"broadcast": [], "greedy_coreset": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ours = greedy_coreset(z, args.steps, projection_dim=0, seed=0)
        times["greedy_coreset"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base = broadcast_coreset(z, args.steps, int(ours[0]))
        times["broadcast"].append(time.perf_counter() - t0)
    agree = float((ours == base).float().mean())
    print(f"M={args.features} features, {args.projection_dim}-d projection, {args.steps} selections, best of "
          f"{args.repeats}; torch {torch.__version__}, {torch.get_num_threads()} threads; {platform.machine()}, "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; selections agree: "
          f"{100 * agree:.1f}%")
    print()
    print("| path | s | ms per selection | speed-up vs broadcast |")
    print("|---|---|---|---|")
    base_s = min(times["broadcast"])
    for name, ts in times.items():
        s = min(ts)
        print(f"| {name} | {s:.2f} | {1e3 * s / args.steps:.2f} | {base_s / s:.2f}x |")


if __name__ == "__main__":
    main()
