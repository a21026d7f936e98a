"""Helpers shared by the subcommands: --json output, progress bars, argument types."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from calibration.rig import atomic_write_text


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
    if path is None:
        return
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")


def progress_bar(total: int, desc: str) -> tqdm[Any]:
    """A progress bar on stderr, quiet when stderr is not a terminal and CI asks for quiet."""
    return tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def image_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` in pixels."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"image size {w}x{h} is out of range (16..8192)")
    return (w, h)
