"""The fused-map threshold at which normal passes report nothing (sans-I/O).

A model whose maps are not calibrated on defects (a travel-keyed bank has only normal vehicles) gets
its fused threshold from normal validation passes instead: :class:`QuietLevel` watches every fused
snapshot of those passes, as the server extracts and tracks them, and keeps the lowest global
threshold at which :class:`DefectExtractor` (with every other setting of ``thresholds``) finds no
candidate in ``confirm`` consecutive snapshots of any pass, so the tracker, which publishes a defect
after that many hits in a row (:class:`overlays.tracker.TrackerConfig`), would publish nothing::

    quiet = QuietLevel(mesh, seam_map, thresholds, confirm=TrackerConfig().confirm_hits)
    for states in normal_passes:
        quiet.begin_pass()
        for state in states:
            quiet.observe(state)
    threshold = quiet.level

Per-seam overrides are not calibrated: the global score applies to every seam here. Consecutive
candidates count wherever they lie (the tracker also needs them within its gate), so the level errs
high.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np

from overlays.errors import DefectError
from overlays.extract import DefectExtractor, Thresholds
from overlays.seam_map import SeamMap
from pipeline.fusion import FusedState, FusionMesh

#: bisection steps per snapshot whose candidates outlast the level so far (a relative precision of 2**-12)
STEPS = 12
#: the lowest level reported: the extractor accepts thresholds in (0, 1]
FLOOR = 1e-3


class QuietLevel:
    """See the module docstring. ``level`` starts at :data:`FLOOR` and only rises. Raises
    :class:`~overlays.errors.DefectError` when ``confirm`` < 1."""

    def __init__(self, mesh: FusionMesh, seam_map: SeamMap, thresholds: Thresholds | None = None,
                 confirm: int = 1) -> None:
        if confirm < 1:
            raise DefectError(f"confirm must be at least 1, got {confirm}")
        self._mesh = mesh
        self._seam_map = seam_map
        self._template = replace(thresholds or Thresholds(), per_seam={})
        self._eligible = DefectExtractor(mesh, seam_map, self._template).eligible
        self._recent: deque[float] = deque(maxlen=confirm)
        self.level = FLOOR
        self.snapshots = 0

    def begin_pass(self) -> None:
        """A new pass: candidates of the last one do not run on into it."""
        self._recent.clear()

    def _quiet_at(self, state: FusedState, t: float) -> bool:
        extractor = DefectExtractor(self._mesh, self._seam_map, replace(self._template, score=t))
        return not extractor.extract(state)

    def _alarm(self, state: FusedState) -> float:
        """The lowest threshold at which ``state`` has no candidate where that is above ``level``; else ``level``."""
        usable = self._eligible & (state.n_frames >= self._template.min_frames)
        top = float(state.score[usable].max()) if usable.any() else 0.0
        # a candidate's peak reaches the threshold, so just above ``top`` nothing is found
        if top <= self.level or (self.level > FLOOR and self._quiet_at(state, self.level)):
            return self.level
        lo, hi = self.level, min(float(np.nextafter(np.float32(top), np.float32(2))), 1.0)
        for _ in range(STEPS):
            mid = 0.5 * (lo + hi)
            if self._quiet_at(state, mid):
                hi = mid
            else:
                lo = mid
        return hi

    def observe(self, state: FusedState) -> float:
        """Raise ``level`` to where this snapshot and the ``confirm - 1`` before it are not all alarms."""
        self.snapshots += 1
        self._recent.append(self._alarm(state))
        if len(self._recent) == self._recent.maxlen:
            self.level = max(self.level, min(self._recent))
        return self.level
