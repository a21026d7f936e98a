"""What both command lines (``xrcalib`` and ``xrserver``) and the benchmarks share: one-line argument
errors, the ``WIDTHxHEIGHT`` argument type, ``--json PATH`` results written atomically, and the
boundary that turns domain errors into a one-line message and an exit code.

It lives in the lowest package so that ``calibration`` (which may not import ``xrserver``) and
``xrserver`` use the same code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from calibration.rig import atomic_write_text


class CliParser(argparse.ArgumentParser):
    """argparse that reports errors in one line with exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def image_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` in pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"image size {w}x{h} is out of range (16..8192)")
    return (w, h)


def json_path(text: str) -> Path:
    """A results path whose folder exists, checked before any work starts."""
    path = Path(text)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist")
    return path


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="PATH", type=json_path, help="write machine-readable results to PATH")


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    """Write results atomically when ``--json`` was given."""
    if path is not None:
        atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")


def run_cli(
    prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None,
    exit_code_for: Callable[[BaseException], int | None], log_level: int = logging.INFO,
) -> int:
    """Parse, configure logging, run ``args.func(args)``; known errors become one line on stderr.

    ``exit_code_for`` maps an exception to its exit code, or None for a bug, which keeps its traceback.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        mapped = exit_code_for(e)
        if mapped is None:
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{prog} {args.command}: error: {msg}", file=sys.stderr)
        return mapped
