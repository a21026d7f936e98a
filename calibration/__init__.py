"""Camera geometry, rig files, the underbody model and the calibration solvers (CLI: ``xrcalib``).

Sans-I/O core: numpy, OpenCV, open3d and scipy only; never asyncio or sockets.
"""

from calibration.camera import CameraModel, DepthIntrinsics, intrinsics_from_fov
from calibration.conveyor import Conveyor
from calibration.errors import (
    CalibrationError,
    CalibrationInputError,
    InteropError,
    RigFileError,
    SolveError,
    UnderbodyModelError,
)
from calibration.rig import Marker, Rig, load_rig, rig_from_dict, rig_to_dict, save_rig
from calibration.underbody import Seam, UnderbodyModel, load_underbody, save_underbody

__all__ = [
    "CalibrationError",
    "CalibrationInputError",
    "CameraModel",
    "Conveyor",
    "DepthIntrinsics",
    "InteropError",
    "Marker",
    "Rig",
    "RigFileError",
    "Seam",
    "SolveError",
    "UnderbodyModel",
    "UnderbodyModelError",
    "intrinsics_from_fov",
    "load_rig",
    "load_underbody",
    "rig_from_dict",
    "rig_to_dict",
    "save_rig",
    "save_underbody",
]
