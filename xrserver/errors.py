"""Errors at the CLI and server boundary, and how domain errors map to exit codes."""

from __future__ import annotations

from calibration.errors import CalibrationError
from xrserver.config import ConfigError
from xrserver.records import RecordError
from xrserver.sources import SourceError


class CliError(Exception):
    """A user-facing failure: bad arguments or input files. Printed as one line, exit code 2."""

    exit_code = 2


#: Domain error types and their CLI exit codes. Packages add theirs here as they appear.
DOMAIN_EXIT_CODES: dict[type[BaseException], int] = {
    CliError: 2,
    CalibrationError: 2,
    FileNotFoundError: 2,
    PermissionError: 2,
    ValueError: 2,
    ConfigError: 2,
    RecordError: 2,
    SourceError: 2,
}


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for a known error type, or None for a bug (which keeps its traceback)."""
    for cls in type(exc).__mro__:
        if cls in DOMAIN_EXIT_CODES:
            return DOMAIN_EXIT_CODES[cls]
    return None
