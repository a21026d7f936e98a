"""``xrserver bank``: travel-keyed banks (``analyzer.model: travel-gaussian``) from recorded normal passes."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from pipeline.data.travel_passes import build_banks, read_passes
from pipeline.models.artifacts import replace_dir
from pipeline.models.errors import ModelError
from xrserver.commands.common import add_json_arg, progress_bar, write_json
from xrserver.errors import CliError


def cmd_build(args: argparse.Namespace) -> int:
    try:
        recorded = read_passes(args.passes, args.cameras)
    except ModelError as e:
        raise CliError(str(e)) from None
    grid = recorded.grid
    t0 = time.perf_counter()
    try:
        with progress_bar(grid.n * len(recorded.cameras), "banks", unit="position") as bar:
            banks = build_banks(recorded, progress=bar.update)
    except ModelError as e:
        raise CliError(str(e)) from None
    written = {}
    for cid, bank in banks.items():
        written[cid] = str(replace_dir(args.out / cid, bank.save))
    elapsed = time.perf_counter() - t0
    w, h = next(iter(banks.values())).size_wh
    print(f"wrote {len(banks)} bank(s) to {args.out} from {len(recorded.passes)} normal passes, {grid.n} trigger "
          f"positions from {grid.s0_m:.4f} m every {grid.step_m:.4f} m, {w}x{h}, in {elapsed:.1f} s")
    for cid, folder in written.items():
        print(f"  {cid}: {folder}")
    print("serve them with a `models:` entry per camera, e.g. `models: {" + ", ".join(
        f"{c}: {f}" for c, f in list(written.items())[:2]) + "}`")
    write_json(args.json, {"command": "bank build", "passes": list(recorded.passes), "banks": written,
                           "grid": asdict(grid), "size_wh": [w, h], "elapsed_s": elapsed})
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bank = sub.add_parser("bank", help="travel-keyed banks (travel-gaussian) from recorded normal passes")
    bsub = bank.add_subparsers(dest="bank_command", metavar="BANK_COMMAND")
    bsub.required = True
    p = bsub.add_parser("build", help="one bank per camera from a folder of normal passes (docs/models.md)",
                        description="PASSES holds grid.json and <pass>/<camera>/<trigger index>.png for every "
                                    "pass, camera and trigger (xrserver twin passes writes the twin's). Writes "
                                    "OUT/<camera>/, a verified artifact a `models:` entry of the server config "
                                    "can name.")
    p.add_argument("passes", type=Path, metavar="PASSES", help="folder of recorded normal passes")
    p.add_argument("--out", type=Path, required=True, help="output folder: one bank per camera under it")
    p.add_argument("--cameras", nargs="+", metavar="ID", help="camera ids (default: every camera in the passes)")
    add_json_arg(p)
    p.set_defaults(func=cmd_build)
