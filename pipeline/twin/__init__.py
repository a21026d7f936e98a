"""The digital twin: a procedural inspection cell with exact ground truth."""

from pipeline.twin.defects import DEFECT_TYPES, DefectSpec, DefectType
from pipeline.twin.rig import default_rig
from pipeline.twin.twin import DigitalTwin, TwinConfig, TwinSample, ViewTruth
from pipeline.twin.vehicle import VehicleScene, VehicleSpec

__all__ = [
    "DEFECT_TYPES",
    "DefectSpec",
    "DefectType",
    "DigitalTwin",
    "TwinConfig",
    "TwinSample",
    "VehicleScene",
    "VehicleSpec",
    "ViewTruth",
    "default_rig",
]
