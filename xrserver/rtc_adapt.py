"""Per-peer video adaptation (sans-I/O): a slow peer gets smaller and fewer frames, never older ones.

Two signals say a peer is not keeping up:

* **lag** -- how late the peer's encoder asks for the next frame against the frame schedule.
  aiortc pulls a frame, encodes it in a thread and sends it; when encoding or the sender falls
  behind, the pulls come late.
* **loss** -- the fraction of packets the peer reports lost in its RTCP receiver reports (a
  congested link or a receiver that cannot keep up).

:class:`VideoAdaptation` steps down a fixed ladder of (resolution scale, frame-rate factor) when
either signal stays high, waits ``hold_s`` between steps, and steps back up after ``up_after_s``
of clean running. The clock is passed in, so the behaviour is exact in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

#: (resolution scale, frame-rate factor), best first.
LADDER: tuple[tuple[float, float], ...] = ((1.0, 1.0), (0.75, 1.0), (0.5, 0.5), (0.5, 0.25), (0.25, 0.25))


@dataclass(frozen=True, slots=True)
class Level:
    index: int
    scale: float
    fps: float

    def frame_size(self, size_wh: tuple[int, int]) -> tuple[int, int]:
        """A camera's full size scaled to this level; even and at least 16 px, as encoders want."""
        w, h = (max(16, round(v * self.scale / 2.0) * 2) for v in size_wh)
        return w, h


class VideoAdaptation:
    """The resolution and frame rate for one peer's tracks from how the peer keeps up.

    ``fps`` is the full frame rate. ``down_lag`` is the smoothed lag, in
    frame periods, that steps down; ``down_loss`` the smoothed loss fraction that steps down.
    """

    def __init__(self, fps: float, *, down_lag: float = 0.5, down_loss: float = 0.05,
                 hold_s: float = 2.0, up_after_s: float = 10.0, smoothing: float = 0.2) -> None:
        if fps <= 0:
            raise ValueError(f"video adaptation needs a positive frame rate, got {fps}")
        self.fps = fps
        self.down_lag = down_lag
        self.down_loss = down_loss
        self.hold_s = hold_s
        self.up_after_s = up_after_s
        self.smoothing = smoothing
        self.index = 0
        self.lag_periods = 0.0
        self.loss = 0.0
        self.steps_down = 0
        self._changed_s: float | None = None
        self._clean_since_s: float | None = None

    @property
    def level(self) -> Level:
        scale, rate = LADDER[self.index]
        return Level(self.index, scale, self.fps * rate)

    def observe_lag(self, now_s: float, lag_s: float) -> None:
        """The encoder asked for a frame ``lag_s`` after it was due (0 when on time)."""
        period = 1.0 / self.level.fps
        self.lag_periods += self.smoothing * (max(0.0, lag_s) / period - self.lag_periods)
        self._decide(now_s)

    def observe_loss(self, now_s: float, fraction_lost: float) -> None:
        """The loss fraction (0..1) of the peer's latest receiver report."""
        self.loss += 0.5 * (min(max(fraction_lost, 0.0), 1.0) - self.loss)
        self._decide(now_s)

    def _decide(self, now_s: float) -> None:
        if self._changed_s is None:
            self._changed_s = now_s
        if now_s - self._changed_s < self.hold_s:
            return
        behind = self.lag_periods > self.down_lag or self.loss > self.down_loss
        if behind:
            self._clean_since_s = None
            if self.index < len(LADDER) - 1:
                self._step(now_s, +1)
                self.steps_down += 1
            return
        clean = self.lag_periods < 0.2 * self.down_lag and self.loss < 0.2 * self.down_loss
        if not clean:
            self._clean_since_s = None
            return
        if self._clean_since_s is None:
            self._clean_since_s = now_s
        elif self.index > 0 and now_s - self._clean_since_s >= self.up_after_s:
            self._step(now_s, -1)

    def _step(self, now_s: float, direction: int) -> None:
        self.index += direction
        self._changed_s = now_s
        self._clean_since_s = None
        self.lag_periods = 0.0  # the new level starts from a clean slate
        self.loss = 0.0
