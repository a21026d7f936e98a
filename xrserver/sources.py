"""Frame sources behind one small blocking protocol; :mod:`xrserver.ingest` paces and supervises them.

A :class:`Source` is opened, read and closed from a worker thread (never the event loop).
``read()`` returns one :class:`Capture` (the frames taken at one instant by this source, with
``capture_ts_ns`` stamped from ``time.time_ns()`` when the frame was taken) or ``None`` at
the end of a finite stream. Any exception means the source failed: ingest closes it, backs off
and opens it again.

Implementations: :class:`TwinSource` (the digital twin, all its cameras at once),
:class:`FolderSource` (an image folder), :class:`VideoSource` (a video file or an RTSP/HTTP
stream through PyAV) and :class:`PublishedSource` (a camera peer publishing over WebRTC).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from pipeline.frames import Frame

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class SourceError(Exception):
    """A source that cannot be opened or read (missing folder, unreadable stream)."""


@dataclass(frozen=True, slots=True, eq=False)
class Capture:
    """Frames one source took at one instant; the pose when the source knows it (the twin)."""

    frames: tuple[Frame, ...]
    capture_ts_ns: int
    T_cell_vehicle: F64 | None = None
    vehicle_id: str | None = None
    s_m: float | None = None


class Source(Protocol):
    name: str
    camera_ids: tuple[str, ...]
    fps: float | None  # pacing target; None: as fast as the source delivers (live streams)

    def open(self) -> None: ...
    def read(self) -> Capture | None: ...
    def close(self) -> None: ...


class TwinSource:
    """The embedded digital twin: vehicles pass through the cell, all cameras render each tick.

    ``open()`` builds the twin (seconds); each ``read()`` renders the next conveyor step.
    """

    def __init__(self, name: str, fps: float, width_px: int, height_px: int, seed: int = 0,
                 speed_mps: float = 0.1, camera_ids: tuple[str, ...] | None = None, twin: Any = None,
                 first_vehicle: int = 0) -> None:
        from pipeline.twin import TwinConfig, default_rig

        self.name = name
        self.fps: float | None = fps
        self.first_vehicle = first_vehicle
        self.twin: Any = twin  # a prebuilt DigitalTwin (tests share one); else built by open()
        if twin is not None:
            self.config, self.rig = twin.config, twin.rig
        else:
            self.config = TwinConfig(seed=seed, width_px=width_px, height_px=height_px, speed_mps=speed_mps)
            self.rig = default_rig(width_px, height_px, self.config.hfov_deg, speed_mps)
        all_ids = tuple(c.camera_id for c in self.rig.cameras)
        unknown = set(camera_ids or ()) - set(all_ids)
        if unknown:
            raise SourceError(f"twin has no camera(s) {sorted(unknown)}; it has {list(all_ids)}")
        self.camera_ids = tuple(camera_ids) if camera_ids else all_ids
        self._stream: Iterator[Any] | None = None

    @classmethod
    def from_twin(cls, twin: Any, fps: float, camera_ids: tuple[str, ...] | None = None,
                  name: str = "twin", first_vehicle: int = 0) -> TwinSource:
        c = twin.config
        return cls(name, fps, c.width_px, c.height_px, c.seed, c.speed_mps, camera_ids, twin, first_vehicle)

    def open(self) -> None:
        from pipeline.twin import DigitalTwin

        if self._stream is None:
            if self.twin is None:
                self.twin = DigitalTwin(self.config, self.rig)
            self._stream = self.twin.stream(self.fps or 10.0, first_vehicle=self.first_vehicle,
                                            camera_ids=self.camera_ids)

    def read(self) -> Capture | None:
        if self._stream is None:
            raise SourceError(f"source {self.name} is not open")
        ts = time.time_ns()  # the twin's "exposure" is the moment we ask for the render
        sample = next(self._stream, None)
        if sample is None:
            return None
        fs = sample.frameset
        frames = tuple(Frame(f.camera_id, f.image, ts, f.seq, f.depth_m) for f in fs.frames)
        return Capture(frames, ts, fs.T_cell_vehicle, fs.vehicle_id, sample.s_m)

    def close(self) -> None:
        """The stream position is kept, so a reopened twin carries on where it stopped."""


class FolderSource:
    """Images of one camera from a folder, in name order; ``loop`` starts again at the end.

    A recorded RGB-D sequence adds ``depth_path``: a folder with one 16-bit PNG per colour
    image, of the same name stem, holding depth in units of ``depth_scale_m`` (0: no reading).
    """

    def __init__(self, camera_id: str, path: Path, fps: float, loop: bool = True,
                 depth_path: Path | None = None, depth_scale_m: float = 0.001) -> None:
        self.name = f"folder:{camera_id}"
        self.camera_ids: tuple[str, ...] = (camera_id,)
        self.fps: float | None = fps
        self.path = Path(path)
        self.loop = loop
        self.depth_path = Path(depth_path) if depth_path is not None else None
        self.depth_scale_m = depth_scale_m
        self._files: list[Path] = []
        self._index = 0
        self._seq = 0

    def open(self) -> None:
        if not self.path.is_dir():
            raise SourceError(f"{self.name}: {self.path} is not a folder")
        self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"{self.name}: no images in {self.path}")
        if self.depth_path is not None and not self.depth_path.is_dir():
            raise SourceError(f"{self.name}: depth folder {self.depth_path} is not a folder")

    def read(self) -> Capture | None:
        if self._index >= len(self._files):
            if not self.loop or not self._files:
                return None
            self._index = 0
        f = self._files[self._index]
        self._index += 1
        ts = time.time_ns()
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"{self.name}: cannot read {f.name}")
        rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        depth = self._depth(f, rgb.shape[:2]) if self.depth_path is not None else None
        self._seq += 1
        return Capture((Frame(self.camera_ids[0], rgb, ts, self._seq, depth),), ts)

    def _depth(self, colour_file: Path, hw: tuple[int, ...]) -> npt.NDArray[np.float32]:
        assert self.depth_path is not None
        f = self.depth_path / f"{colour_file.stem}.png"
        raw = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise SourceError(f"{self.name}: no readable depth image {f.name} for {colour_file.name}")
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise SourceError(f"{self.name}: {f.name} must be a single-channel 16-bit PNG, got {raw.dtype} "
                              f"with shape {raw.shape}")
        if raw.shape != hw:
            raise SourceError(f"{self.name}: depth {f.name} is {raw.shape[1]}x{raw.shape[0]}, "
                              f"colour is {hw[1]}x{hw[0]}")
        depth: npt.NDArray[np.float32] = raw.astype(np.float32) * np.float32(self.depth_scale_m)  # 0 stays invalid
        return depth

    def close(self) -> None:
        self._files = []


class VideoSource:
    """A video file or a network stream (``rtsp://``, ``http(s)://``) decoded by PyAV.

    Files are paced to ``fps`` (default: the file's rate) and may loop; live streams are read
    as they come (``fps=None``) and a broken stream raises, so ingest reconnects with backoff.
    """

    def __init__(self, camera_id: str, url: str, fps: float | None = None, loop: bool = False,
                 open_timeout_s: float = 5.0) -> None:
        self.name = f"video:{camera_id}"
        self.camera_ids: tuple[str, ...] = (camera_id,)
        self.url = url
        self.loop = loop
        self.live = url.split("://", 1)[0].lower() in ("rtsp", "rtsps", "http", "https", "rtmp", "udp", "tcp")
        self.fps: float | None = fps
        self.open_timeout_s = open_timeout_s
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._seq = 0

    def open(self) -> None:
        import av

        options = {"rtsp_transport": "tcp"} if self.url.lower().startswith("rtsp") else {}
        try:
            self._container = av.open(self.url, options=options, timeout=self.open_timeout_s)
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"{self.name}: cannot open the stream: {e}") from e
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if self.fps is None and not self.live and stream.average_rate:
            self.fps = float(stream.average_rate)
        self._frames = self._container.decode(stream)

    def read(self) -> Capture | None:
        import av

        if self._frames is None:
            raise SourceError(f"{self.name} is not open")
        try:
            frame = next(self._frames, None)
            if frame is None and self.loop and not self.live:
                self.close()
                self.open()
                frame = next(self._frames, None)
        except av.FFmpegError as e:
            raise SourceError(f"{self.name}: decoding failed: {e}") from e
        if frame is None:
            return None
        ts = time.time_ns()
        rgb = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
        self._seq += 1
        return Capture((Frame(self.camera_ids[0], rgb, ts, self._seq),), ts)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None


class PublishedSource:
    """A camera that publishes into the server over WebRTC (``POST /rtc/publish/{camera_id}``).

    The WebRTC endpoint pushes each decoded frame (latest wins); ``read()`` waits up to
    ``timeout_s`` for a newer one, converts it to RGB at ``width_px`` x ``height_px`` and stamps
    it on arrival (the publisher's clock is not ours). With no publisher, or one that stalls,
    ``read()`` fails and the view is degraded until frames come again.
    """

    def __init__(self, camera_id: str, width_px: int, height_px: int, timeout_s: float = 2.0) -> None:
        self.name = f"webrtc:{camera_id}"
        self.camera_ids: tuple[str, ...] = (camera_id,)
        self.fps: float | None = None  # as the publisher delivers
        self.size_wh = (width_px, height_px)
        self.timeout_s = timeout_s
        self.publisher: str | None = None  # the peer id publishing now
        self._cond = threading.Condition()
        self._frame: Any = None  # an av.VideoFrame
        self._arrived_ns = 0
        self._seq = 0

    def push(self, frame: Any) -> None:
        """Called on the event loop for each decoded frame; never blocks on the reader."""
        with self._cond:
            self._frame, self._arrived_ns = frame, time.time_ns()
            self._cond.notify_all()

    def open(self) -> None:
        """Nothing to open: the publisher connects on its own."""

    def read(self) -> Capture | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None, self.timeout_s):
                who = "its publisher stalled" if self.publisher else "no camera is publishing"
                raise SourceError(f"{self.name}: no frame for {self.timeout_s:g} s ({who})")
            frame, ts = self._frame, self._arrived_ns
            self._frame = None
        rgb = frame.to_ndarray(format="rgb24")
        if rgb.shape[1::-1] != self.size_wh:
            rgb = cv2.resize(rgb, self.size_wh, interpolation=cv2.INTER_AREA)
        self._seq += 1
        return Capture((Frame(self.camera_ids[0], np.ascontiguousarray(rgb, dtype=np.uint8), ts, self._seq),), ts)

    def close(self) -> None:
        with self._cond:
            self._frame = None
