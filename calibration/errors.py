"""Domain errors of the calibration package.

::

    CalibrationError            anything the calibration core refuses
     ├── RigFileError           a rig file that cannot be read, parsed or validated
     ├── UnderbodyModelError    an underbody model (mesh + seams) that cannot be used
     ├── CalibrationInputError  unreadable images or videos, unknown camera ids, a wrong board spec
     │    └── InteropError      an import file (Kalibr, OpenCV FileStorage, ROS camera_info) that is malformed
     └── SolveError             the data cannot determine the answer: too few or degenerate views,
                                no convergence, a registration that does not fit

Adapters (CLIs, the server) turn these into one-line messages and exit codes:
``xrcalib`` exits 2 for input errors (rig, underbody, input, interop) and 1 for a failed solve.
"""

from __future__ import annotations


class CalibrationError(Exception):
    """Base class for every error raised by :mod:`calibration`."""


class RigFileError(CalibrationError):
    """A rig file is missing, malformed or fails validation; the message names the field."""


class UnderbodyModelError(CalibrationError):
    """An underbody model file is missing, malformed or inconsistent."""


class CalibrationInputError(CalibrationError):
    """Input the calibration cannot use: a missing or unreadable image, an unknown camera id, a bad board spec."""


class InteropError(CalibrationInputError):
    """An imported calibration file (Kalibr, OpenCV, ROS) is malformed; the message names the file and field."""


class SolveError(CalibrationError):
    """The views or measurements do not determine the result (too few, degenerate, or no convergence)."""
