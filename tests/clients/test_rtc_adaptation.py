"""Per-peer video adaptation: a peer that falls behind gets smaller, rarer frames (never older ones)
and recovers when it keeps up again. The controller runs on a given clock; the track test drives the
real overlay track with a consumer that is too slow, as aiortc's encoder loop would be."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from xrserver.rtc_adapt import LADDER, VideoAdaptation
from xrserver.webrtc import OverlayTrack


def test_lagging_peer_steps_down_after_the_hold_and_back_up_when_clean() -> None:
    a = VideoAdaptation(10.0, hold_s=2.0, up_after_s=5.0)
    t = 0.0
    for _ in range(10):  # on time: stays at full quality
        t += 0.1
        a.observe_lag(t, 0.0)
    assert a.level.index == 0 and a.level.fps == 10.0
    for _ in range(30):  # each frame asked 2 periods late
        t += 0.3
        a.observe_lag(t, 0.2)
    assert a.level.index >= 2, "several seconds behind: more than one step down"
    assert a.steps_down == a.level.index
    low = a.level.index
    for _ in range(200):  # clean again for 20 s
        t += 0.1
        a.observe_lag(t, 0.0)
    assert a.level.index < low, "a peer that keeps up again gets its quality back"


def test_one_late_frame_does_not_step_down() -> None:
    a = VideoAdaptation(10.0, hold_s=0.0)
    t = 0.0
    for k in range(50):
        t += 0.1
        a.observe_lag(t, 0.15 if k == 20 else 0.0)
    assert a.level.index == 0


def test_loss_reports_step_down_and_the_ladder_has_a_floor() -> None:
    a = VideoAdaptation(10.0, hold_s=1.0)
    for k in range(60):
        a.observe_loss(float(k), 0.3)
    assert a.level.index == len(LADDER) - 1, "sustained 30 % loss ends at the lowest level"
    assert a.level.frame_size((1920, 1080)) == (480, 270)
    assert a.level.frame_size((20, 20)) == (16, 16), "never below what encoders accept"


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="frame rate"):
        VideoAdaptation(0.0)


async def test_slow_consumer_of_the_overlay_track_gets_smaller_and_fewer_frames() -> None:
    picture = np.full((240, 320, 3), 90, np.uint8)
    adapt = VideoAdaptation(20.0, hold_s=0.5, up_after_s=60.0)
    track = OverlayTrack("lower", lambda: {"lower": (picture, None)}, (320, 240), adapt)
    first = await track.recv()
    assert (first.width, first.height) == (320, 240)
    t0 = time.monotonic()
    sizes = []
    while time.monotonic() - t0 < 3.0:  # the "encoder" takes 150 ms a frame: 3 periods at 20 fps
        await asyncio.sleep(0.15)
        f = await track.recv()
        sizes.append((f.width, f.height))
    assert adapt.level.index >= 2, adapt.level
    assert adapt.level.fps < 20.0
    assert sizes[-1][0] < 320 and sizes[-1][0] % 2 == 0, sizes[-1]
    track.stop()
