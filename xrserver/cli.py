"""The ``xrserver`` command line: one entry point, one module per subcommand group.

Each module under :mod:`xrserver.commands` exposes ``register(subparsers)``, which adds its
subcommands and sets ``func`` on each parser. ``func(args) -> int`` returns the exit code and
raises :class:`xrserver.errors.CliError` (or a domain error) for a clean one-line message.

Exit codes: 0 success, 1 the work failed (bad data, failed check), 2 bad arguments or input files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from calibration.clikit import CliParser, run_cli
from xrserver.commands import COMMAND_MODULES
from xrserver.errors import exit_code_for


def build_parser() -> argparse.ArgumentParser:
    parser = CliParser(prog="xrserver", description="XR sealant inspection: twin, models, server.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("xrserver", build_parser(), argv, exit_code_for)


if __name__ == "__main__":
    sys.exit(main())
