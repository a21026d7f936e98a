"""The ``xrserver`` command line: one entry point, one module per subcommand group.

Each module under :mod:`xrserver.commands` exposes ``register(subparsers)``, which adds its
subcommands and sets ``func`` on each parser. ``func(args) -> int`` returns the exit code and
raises :class:`CliError` (or a domain error) for a clean one-line message.

Exit codes: 0 success, 1 the work failed (bad data, failed check), 2 bad arguments or input files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from xrserver.commands import COMMAND_MODULES
from xrserver.errors import exit_code_for

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line with exit code 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xrserver", description="XR sealant inspection: twin, models, server.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        print("xrserver: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        mapped = exit_code_for(e)
        if mapped is None:
            raise
        print(f"xrserver {args.command}: error: {e}", file=sys.stderr)
        return mapped


if __name__ == "__main__":
    sys.exit(main())
