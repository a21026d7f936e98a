"""The server's one settings object: a validated YAML file, read once at start.

``load_config(path)`` returns a frozen :class:`ServerConfig` or raises :class:`ConfigError`
whose one-line message names the offending field (``sources[1].fps: ...``). With no file,
``ServerConfig()`` is the default cell: the embedded twin with its four cameras, generated
tokens, records under ``out/records``. ``configs/example.yaml`` shows every section.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from xrserver.auth import MIN_TOKEN_CHARS, ROLES

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration file that cannot be read or does not validate; the message names the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    """PEM files; both or neither. Browsers need TLS for WebXR and camera capture."""

    certfile: Path
    keyfile: Path


class LimitsConfig(_Model):
    max_message_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_messages_per_s: float = Field(50.0, gt=0, le=10_000)
    rate_burst: int = Field(100, ge=1, le=100_000)
    hello_timeout_s: float = Field(5.0, gt=0, le=120)
    send_timeout_s: float = Field(10.0, gt=0, le=600)
    client_state_queue: int = Field(64, ge=4, le=10_000)
    max_clients: int = Field(64, ge=1, le=10_000)


class ServerSection(_Model):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    tls: TlsConfig | None = None
    allowed_origins: tuple[str, ...] = ()
    public_url: str | None = None
    limits: LimitsConfig = LimitsConfig()
    # after SIGTERM/SIGINT: a shutdown still running this long dumps every thread's stack and exits 1
    shutdown_timeout_s: float = Field(20.0, gt=0)


class TokensConfig(_Model):
    """Tokens per role. A role left out gets a generated token at start (printed once, never logged)."""

    operator: tuple[str, ...] = ()
    supervisor: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    camera: tuple[str, ...] = ()

    @field_validator("operator", "supervisor", "admin", "camera")
    @classmethod
    def _long_enough(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            if len(t) < MIN_TOKEN_CHARS:
                raise ValueError(f"tokens must have at least {MIN_TOKEN_CHARS} characters")
        return v


class StorageConfig(_Model):
    db_path: Path = Path("out/records/records.db")
    heatmap_dir: Path | None = None
    cache_dir: Path = Path("out/cache")  # trained twin models, visibility tables


class TwinSourceConfig(_Model):
    kind: Literal["twin"] = "twin"
    name: str = "twin"
    cameras: tuple[str, ...] | None = None
    fps: float = Field(10.0, gt=0, le=120)
    width_px: int = Field(320, ge=16, le=8192)
    height_px: int = Field(240, ge=16, le=8192)
    seed: int = Field(0, ge=0)
    speed_mps: float = Field(0.1, gt=0, le=2.0)


class FolderSourceConfig(_Model):
    kind: Literal["folder"]
    camera_id: str
    path: Path
    fps: float = Field(10.0, gt=0, le=120)
    loop: bool = True
    depth_path: Path | None = None  # a recorded RGB-D sequence: 16-bit PNG depth, same name stems
    depth_scale_m: float = Field(0.001, gt=0, le=1.0)


class VideoSourceConfig(_Model):
    """A video file, or an ``rtsp://`` / ``http(s)://`` stream read with PyAV."""

    kind: Literal["video"]
    camera_id: str
    url: str
    fps: float | None = Field(None, gt=0, le=120)
    loop: bool = False


class WebRtcSourceConfig(_Model):
    """A camera that publishes over WebRTC (a browser's camera as a test source, a WebRTC camera);
    its frames are resized to ``width_px`` x ``height_px``. Needs a ``camera`` role token."""

    kind: Literal["webrtc"]
    camera_id: str
    width_px: int = Field(640, ge=16, le=8192)
    height_px: int = Field(480, ge=16, le=8192)
    timeout_s: float = Field(2.0, gt=0, le=60)


SourceConfig = Annotated[TwinSourceConfig | FolderSourceConfig | VideoSourceConfig | WebRtcSourceConfig,
                         Field(discriminator="kind")]


class SyncConfig(_Model):
    tolerance_ms: float = Field(60.0, gt=0, le=10_000)
    stale_after_s: float = Field(2.0, gt=0, le=600)
    reconnect_min_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(10.0, gt=0, le=600)


class AnalyzerConfig(_Model):
    """What runs per frame set.

    ``inspection`` (default): one anomaly model per view, late fusion on the underbody mesh,
    tracked defects and alerts. With the twin and no ``models``, a ``model``/``preset`` is
    trained per camera on first start and cached under ``storage.cache_dir``; ``model:
    twin-reference`` instead compares each view with the twin's render of the same vehicle
    without defects (twin only: it checks fusion and tracking against ground truth); ``model:
    travel-gaussian`` scores each view against ``normal_passes`` normal vehicles rendered at
    the same conveyor travel (built on first start and cached; see
    :mod:`pipeline.models.travel_gaussian`), and fits its fused threshold on
    ``validation_passes`` further normal vehicles. When ``models`` names every served camera's model (trained
    artifacts or recorded travel banks), that threshold is fitted on the normal passes recorded in
    ``validation_folder`` (the layout of :mod:`pipeline.data.travel_passes`), else with the twin on
    ``validation_passes`` whole normal passes as the twin source streams them.
    ``diagnostic``: an image statistic for plumbing checks, NOT detection.

    ``max_view_shift_px``: a model with template matching scores a frame only when its view moved at most
    this far (px) from where it sat in the model's reference frame; null (the default): no farther than
    its training frames' views did, plus a slack (:func:`xrserver.heatmaps.shift_limits`). Other frames
    are not scored. With the conveyor travel its artifact records for its station
    (:func:`xrserver.heatmaps.station_travel`), it keeps a viewpoint's model to the frames at its station
    (``models``: a list of artifacts per camera).
    """

    kind: Literal["inspection", "diagnostic"] = "inspection"
    model: str = "patchcore"
    preset: str = "twin"
    runtime: Literal["onnx", "torch"] = "onnx"
    device: str = "cpu"
    train_frames: int = Field(24, ge=4, le=10_000)
    normal_passes: int = Field(8, ge=2, le=64)
    validation_passes: int = Field(3, ge=1, le=64)
    validation_folder: Path | None = None
    lut_step_m: float = Field(0.02, gt=0, le=1.0)
    heatmap_scale: int = Field(8, ge=1, le=64)
    max_view_shift_px: int | None = Field(None, ge=0, le=8192)


class ThresholdsConfig(_Model):
    """Defect extraction on the fused map, scores in [0, 1].

    ``score``: null (the default) takes the model's own: 0.5 for a trained model (its maps put the
    threshold fitted on validation frames at 0.5), ``TwinReferenceHeatmaps.FUSED_THRESHOLD`` for the
    twin's golden reference, and the level at which normal passes report nothing for the twin's travel banks
    (``analyzer.validation_passes`` of the twin's) and for models that ``models`` names for every served
    camera (the passes in ``analyzer.validation_folder``; without it, the twin's whole passes, or for
    recorded travel banks without the twin 0.5 with a warning). A number overrides it."""

    score: float | None = Field(None, gt=0, le=1)
    per_seam: dict[str, float] = Field(default_factory=dict)
    min_area_mm2: float = Field(4.0, ge=0)
    min_frames: int = Field(2, ge=1)
    seam_band_mm: float | None = Field(25.0, gt=0)  # defects only within this of a seam; null: anywhere

    @field_validator("per_seam")
    @classmethod
    def _in_range(cls, v: dict[str, float]) -> dict[str, float]:
        for seam, t in v.items():
            if not 0 < t <= 1:
                raise ValueError(f"{seam}: thresholds must lie in (0, 1]")
        return v


class MqttConfig(_Model):
    """Publish alerts to an MQTT broker (e.g. the compose file's mosquitto)."""

    host: str
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("xr/cell", pattern=r"^[A-Za-z0-9_./-]{1,128}$")
    client_id: str = "xrserver"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    max_queued: int = Field(1000, ge=1, le=1_000_000)


class ServerConfig(_Model):
    server: ServerSection = ServerSection()
    tokens: TokensConfig = TokensConfig()
    storage: StorageConfig = StorageConfig()
    sources: tuple[SourceConfig, ...] = (TwinSourceConfig(),)
    rig: Path | None = None
    sync: SyncConfig = SyncConfig()
    underbody: Path | None = None
    analyzer: AnalyzerConfig = AnalyzerConfig()
    models: dict[str, Path | list[Path]] = Field(default_factory=dict)
    thresholds: ThresholdsConfig = ThresholdsConfig()
    mqtt: MqttConfig | None = None

    @field_validator("models")
    @classmethod
    def _viewpoint_lists(cls, v: dict[str, Path | list[Path]]) -> dict[str, Path | list[Path]]:
        for cid, paths in v.items():
            if isinstance(paths, list) and not paths:
                raise ValueError(f"{cid}: give an artifact directory, or a list of one per viewpoint")
            if isinstance(paths, list) and len(set(paths)) != len(paths):
                raise ValueError(f"{cid}: the same artifact is listed more than once")
        return v

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        if not self.sources:
            raise ValueError("sources: give at least one source")
        ids: list[str] = []
        for s in self.sources:
            if isinstance(s, TwinSourceConfig):
                ids.extend(s.cameras or ())
            else:
                ids.append(s.camera_id)
        if len(set(ids)) != len(ids):
            raise ValueError(f"sources: camera ids repeat: {sorted(ids)}")
        n_twin = sum(isinstance(s, TwinSourceConfig) for s in self.sources)
        if n_twin > 1:
            raise ValueError("sources: at most one twin source")
        needs = self.rig is None or self.underbody is None or not self.models
        if self.analyzer.kind == "inspection" and n_twin == 0 and needs:
            raise ValueError("analyzer: inspection without the twin needs rig, underbody and models "
                                 "(camera id -> model artifact directory)")
        all_tokens = [t for role in ROLES for t in getattr(self.tokens, role)]
        if len(set(all_tokens)) != len(all_tokens):
            raise ValueError("tokens: the same token is given more than once")
        return self


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("twin", "folder", "video", "webrtc") and out.endswith("]"):
            continue  # the discriminator's tag adds nothing for a reader
        else:
            out += f".{part}" if out else str(part)
    return out or "config"


def parse_config(data: Any, origin: str = "config") -> ServerConfig:
    """Validate a decoded document; raises :class:`ConfigError` naming the first bad field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        msg = str(err["msg"]).removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
        raise ConfigError(f"{origin}: {_field_path(tuple(err['loc']))}: {msg}{more}") from None


def load_config(path: str | Path) -> ServerConfig:
    """Read and validate a YAML config file. Raises :class:`ConfigError` (one line, names the field)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {str(e).splitlines()[0]}") from None
    return parse_config(data, str(p))
