"""The current state a client keeps from the message stream (sans-I/O: messages in, state out)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from overlays.builders import apply_heatmap
from overlays.defect import Defect
from overlays.messages import Alert, Defects, Heatmap, Message, PassEnd, PassStart, Pose, Scene, Stats, Welcome


@dataclass
class ClientState:
    """What the server has told this client so far. ``apply`` returns the ids of defects it changed."""

    session_id: str | None = None
    scene: Scene | None = None
    vehicle_id: str | None = None
    defects: dict[str, Defect] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)  # active ("raised") alerts by scope:key
    pose: Pose | None = None
    heatmap: npt.NDArray[np.uint8] | None = None
    stats: Stats | None = None
    last_pass: PassEnd | None = None

    def apply(self, msg: Message) -> tuple[str, ...]:
        if isinstance(msg, Welcome):
            self.session_id = msg.session_id
        elif isinstance(msg, Scene):
            self.scene = msg
        elif isinstance(msg, PassStart):
            if msg.vehicle_id != self.vehicle_id:
                self.defects, self.heatmap = {}, None
            self.vehicle_id = msg.vehicle_id
        elif isinstance(msg, PassEnd):
            self.last_pass = msg
        elif isinstance(msg, Defects):
            if msg.vehicle_id != self.vehicle_id:
                self.vehicle_id, self.defects = msg.vehicle_id, {}
            if msg.mode == "full":
                self.defects = {d.defect_id: d for d in msg.defects}
                return tuple(self.defects)
            self.defects.update({d.defect_id: d for d in msg.defects})
            for k in msg.removed:
                self.defects.pop(k, None)
            return tuple(d.defect_id for d in msg.defects) + msg.removed
        elif isinstance(msg, Alert):
            key = f"{msg.scope}:{msg.key}"
            if msg.kind == "raised":
                self.alerts[key] = msg
            else:
                self.alerts.pop(key, None)
        elif isinstance(msg, Pose):
            self.pose = msg
        elif isinstance(msg, Heatmap):
            self.heatmap = apply_heatmap(self.heatmap if msg.mode == "delta" else None, msg)
        elif isinstance(msg, Stats):
            self.stats = msg
        return ()
