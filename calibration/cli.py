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
import logging
import sys
from collections.abc import Sequence

from calibration.clikit import CliParser, add_json_arg, run_cli, write_json
from calibration.errors import CalibrationError, SolveError

__all__ = ["CliParser", "add_json_arg", "build_parser", "exit_code_for", "main", "write_json"]

log = logging.getLogger(__name__)


def exit_code_for(exc: BaseException) -> int | None:
    """1 for a failed solve, 2 for bad input, None for a bug (which keeps its traceback)."""
    if isinstance(exc, SolveError):
        return 1
    if isinstance(exc, (CalibrationError, OSError, ValueError)):
        return 2
    return None


def build_parser() -> argparse.ArgumentParser:
    from calibration import cli_calib, cli_cell, cli_rgbd

    parser = CliParser(prog="xrcalib", description="Calibrate the inspection cell: cameras, rig, conveyor, underbody.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    sub.required = True
    cli_calib.register(sub)
    cli_cell.register(sub)
    cli_rgbd.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xrcalib``; returns the exit code."""
    return run_cli("xrcalib", build_parser(), argv, exit_code_for, log_level=logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
