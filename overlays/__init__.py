"""Overlays: defects on the mesh, stable ids, alerts, and the versioned overlay protocol (sans-I/O).

Per frame set the server calls::

    state = fuser.update(frameset, heatmaps)                 # pipeline.fusion
    delta = tracker.update(extractor.extract(state), state.capture_ts_ns)
    wire = encode(defects_message(delta))                    # bytes for every client

and :func:`decode` on everything a client sends.
"""

from overlays.alerts import AlertConfig, AlertEvent, AlertMonitor, RateStats
from overlays.builders import (
    HeatmapEncoder,
    alert_message,
    apply_heatmap,
    defects_full_message,
    defects_message,
    pose_message,
    quantize_scores,
    scene_message,
)
from overlays.codec import decode, encode, from_wire, to_wire
from overlays.defect import DEFECT_STATUSES, Defect, DefectStatus
from overlays.errors import DefectError, OverlayError, ProtocolError
from overlays.extract import DefectCandidate, DefectExtractor, SizeAwareThreshold, Thresholds
from overlays.messages import (
    PROTOCOL_VERSION,
    Alert,
    Defects,
    Feedback,
    Heatmap,
    Hello,
    Message,
    PassEnd,
    PassStart,
    Pose,
    Scene,
    Stats,
    Welcome,
)
from overlays.seam_map import SeamMap
from overlays.tracker import DefectsDelta, DefectTracker, TrackerConfig

__all__ = [
    "DEFECT_STATUSES",
    "PROTOCOL_VERSION",
    "Alert",
    "AlertConfig",
    "AlertEvent",
    "AlertMonitor",
    "Defect",
    "DefectCandidate",
    "DefectError",
    "DefectExtractor",
    "DefectStatus",
    "DefectTracker",
    "Defects",
    "DefectsDelta",
    "Feedback",
    "Heatmap",
    "HeatmapEncoder",
    "Hello",
    "Message",
    "OverlayError",
    "PassEnd",
    "PassStart",
    "Pose",
    "ProtocolError",
    "RateStats",
    "Scene",
    "SeamMap",
    "SizeAwareThreshold",
    "Stats",
    "Thresholds",
    "TrackerConfig",
    "Welcome",
    "alert_message",
    "apply_heatmap",
    "decode",
    "defects_full_message",
    "defects_message",
    "encode",
    "from_wire",
    "pose_message",
    "quantize_scores",
    "scene_message",
    "to_wire",
]
