"""Helpers shared by the subcommands: --json output, progress bars, argument types."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from calibration.clikit import add_json_arg, image_size, json_path, write_json

__all__ = ["add_json_arg", "image_size", "json_path", "non_negative_int", "positive_int", "progress_bar", "write_json"]


def progress_bar(total: int, desc: str, unit: str = "frame") -> tqdm[Any]:
    """A progress bar on stderr, quiet when stderr is not a terminal and CI asks for quiet."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


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
