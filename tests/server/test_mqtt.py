"""Alerts reach a real MQTT broker (Debian's mosquitto, the broker of docker-compose.yml)."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from overlays.alerts import AlertEvent
from xrserver.config import ConfigError, MqttConfig, parse_config
from xrserver.mqtt import MqttAlerts

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Any) -> Iterator[int]:
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _subscriber(port: int, topic: str) -> tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage]]:
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plant-test")
    sub.on_message = lambda c, u, m: got.put(m)
    sub.connect("127.0.0.1", port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    time.sleep(0.3)
    return sub, got


def test_alerts_are_published_to_the_broker(broker: int) -> None:
    sub, got = _subscriber(broker, "xr/cell7/alerts/#")
    pub = MqttAlerts(MqttConfig(host="127.0.0.1", port=broker, topic_prefix="xr/cell7"))
    pub.start()
    try:
        ev = AlertEvent("A00001", "raised", "robot", "R4", 0.3, 0.25, 6, 20, "V000-00042", 123)
        pub.publish(ev)
        msg = got.get(timeout=10)
        assert msg.topic == "xr/cell7/alerts/robot/R4"
        doc = json.loads(msg.payload)
        assert doc["alert_id"] == "A00001" and doc["kind"] == "raised" and doc["rate"] == 0.3
    finally:
        pub.stop()
        sub.loop_stop()
        sub.disconnect()


def test_a_missing_broker_never_blocks_the_caller() -> None:
    port = _free_port()
    pub = MqttAlerts(MqttConfig(host="127.0.0.1", port=port))
    pub.start()
    t0 = time.perf_counter()
    pub.publish(AlertEvent("A00002", "cleared", "seam", "C3", 0.1, 0.25, 2, 20, "V000-00043", 456))
    pub.stop()
    assert time.perf_counter() - t0 < 5, "publishing and stopping never wait for the broker"


def test_mqtt_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        parse_config({"mqtt": {"host": "broker", "port": 0}})
    with pytest.raises(ConfigError, match=r"mqtt\.topic_prefix"):
        parse_config({"mqtt": {"host": "broker", "topic_prefix": "bad topic #"}})
