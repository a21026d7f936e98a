"""The ``xrcalib`` command line: calibrate cameras, rigs, the conveyor and the underbody registration.

Subcommands live in :mod:`calibration.cli_calib` (board views: detect, intrinsics, stereo, rig,
synth) and :mod:`calibration.cli_cell` (cell geometry: conveyor, rgbd, register, coverage, plan,
import, export). Each computing command accepts ``--json PATH``.

Exit codes: 0 success; 1 the work failed (a solve the data cannot support); 2 bad arguments or
input (unreadable images, wrong board, unknown camera ids, malformed files). Errors are printed
as one line, without a traceback, and no rig file is written when a command fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from calibration.errors import CalibrationError, SolveError
from calibration.rig import atomic_write_text

log = logging.getLogger(__name__)


class CliParser(argparse.ArgumentParser):
    """argparse that reports errors in one line with exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", type=Path, help="write machine-readable results to PATH")


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically when ``path`` is given."""
    if path is not None:
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def exit_code_for(exc: BaseException) -> int | None:
    """1 for a failed solve, 2 for bad input, None for a bug (which keeps its traceback)."""
    if isinstance(exc, SolveError):
        return 1
    if isinstance(exc, (CalibrationError, OSError, ValueError)):
        return 2
    return None


def build_parser() -> argparse.ArgumentParser:
    from calibration import cli_calib, cli_cell

    parser = CliParser(prog="xrcalib", description="Calibrate the inspection cell: cameras, rig, conveyor, underbody.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    sub.required = True
    cli_calib.register(sub)
    cli_cell.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xrcalib``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("xrcalib: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        mapped = exit_code_for(e)
        if mapped is None:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"xrcalib {args.command}: error: {msg}", file=sys.stderr)
        return mapped


if __name__ == "__main__":
    sys.exit(main())
