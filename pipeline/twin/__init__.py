"""The digital twin: a procedural inspection cell with exact ground truth.

The names below load on first use (PEP 562), so that ``pipeline.twin.defects`` (the defect types the
models' synthetic generators share) imports without the renderer and its open3d: an inference or
training host needs no 3D stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.twin.defects import DEFECT_TYPES, DefectSpec, DefectType
    from pipeline.twin.rig import default_rig
    from pipeline.twin.twin import DigitalTwin, TwinConfig, TwinSample, ViewTruth
    from pipeline.twin.vehicle import VehicleScene, VehicleSpec

_HOME = {
    "DEFECT_TYPES": "defects", "DefectSpec": "defects", "DefectType": "defects",
    "default_rig": "rig",
    "DigitalTwin": "twin", "TwinConfig": "twin", "TwinSample": "twin", "ViewTruth": "twin",
    "VehicleScene": "vehicle", "VehicleSpec": "vehicle",
}
__all__ = ["DEFECT_TYPES", "DefectSpec", "DefectType", "DigitalTwin", "TwinConfig", "TwinSample", "VehicleScene",
           "VehicleSpec", "ViewTruth", "default_rig"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
