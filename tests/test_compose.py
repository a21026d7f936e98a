"""docker-compose.yml and the Dockerfile, checked without a Docker engine: YAML parse plus structure."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_structure() -> None:
    doc = _compose()
    assert set(doc) <= {"name", "services", "volumes", "networks", "configs", "secrets"}
    services = doc["services"]
    server = services["xrserver"]
    assert (REPO / server["build"]["context"] / server["build"]["dockerfile"]).is_file()
    named_volumes = set(doc["volumes"])
    for service in services.values():
        assert "image" in service or "build" in service
        for vol in service.get("volumes", []):
            source, target = vol.split(":")[:2]
            assert target.startswith("/")
            assert source in named_volumes or source.startswith((".", "/")), vol
        for port in service.get("ports", []):
            assert re.fullmatch(r"(127\.0\.0\.1:)?\d+:\d+", port), port
    devices = server["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["mqtt"]["profiles"] == ["mqtt"]


def test_compose_command_is_a_real_cli_command() -> None:
    from xrserver.cli import build_parser

    server = _compose()["services"]["xrserver"]
    args = build_parser().parse_args(server["command"])
    assert callable(args.func)


def test_compose_config_file_validates() -> None:
    from xrserver.config import load_config

    server = _compose()["services"]["xrserver"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in server["volumes"] if v.startswith(".")}
    config_path = server["command"][server["command"].index("--config") + 1]
    cfg = load_config(REPO / mounted[config_path])
    assert cfg.server.host == "0.0.0.0" and cfg.server.port == 8765
    assert cfg.mqtt is not None and cfg.mqtt.host == "mqtt", "alerts go to the compose broker"
    assert str(cfg.storage.db_path).startswith("/data/") and str(cfg.storage.cache_dir).startswith("/models/")
    grace = re.fullmatch(r"(\d+)s", server["stop_grace_period"])
    assert grace and int(grace.group(1)) > cfg.server.shutdown_timeout_s, "the engine's kill comes after our watchdog"


def test_dockerfile_pins_torch_and_installs_open3d_dependency() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert '"torch==2.13.0"' in text and "libusb-1.0-0" in text
    for line in re.findall(r"^COPY (\S+)", text, flags=re.MULTILINE):
        assert (REPO / line).exists(), line
