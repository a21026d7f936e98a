"""Domain errors of the calibration package.

::

    CalibrationError            anything the calibration core refuses
     ├── RigFileError           a rig file that cannot be read, parsed or validated
     └── UnderbodyModelError    an underbody model (mesh + seams) that cannot be used

Adapters (CLIs, the server) turn these into one-line messages and exit codes.
"""

from __future__ import annotations


class CalibrationError(Exception):
    """Base class for every error raised by :mod:`calibration`."""


class RigFileError(CalibrationError):
    """A rig file is missing, malformed or fails validation; the message names the field."""


class UnderbodyModelError(CalibrationError):
    """An underbody model file is missing, malformed or inconsistent."""
