"""Alerts to the plant over MQTT (optional): one JSON message per raised or cleared alert.

Topic ``{topic_prefix}/alerts/{scope}/{key}`` (e.g. ``xr/cell1/alerts/robot/R4``), QoS 1, not
retained; the payload is the alert's fields. paho-mqtt runs its own network thread and
reconnects by itself, so a missing broker never blocks or stops the server: messages published
while it is away are queued by paho (up to ``max_queued``) and the outage is logged.
"""

from __future__ import annotations

import json
import logging
import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from overlays.alerts import AlertEvent
from xrserver.config import MqttConfig

log = logging.getLogger(__name__)


def alert_payload(ev: AlertEvent) -> dict[str, Any]:
    return {"alert_id": ev.alert_id, "kind": ev.kind, "scope": ev.scope, "key": ev.key, "rate": ev.rate,
            "threshold": ev.threshold, "n_defective": ev.n_defective, "n_vehicles": ev.n_vehicles,
            "vehicle_id": ev.vehicle_id, "ts_ns": ev.ts_ns}


class MqttAlerts:
    """Publishes alert events; :meth:`start` connects in the background, :meth:`stop` flushes and disconnects."""

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id,
                                  protocol=mqtt.MQTTv311)
        self.client.max_queued_messages_set(config.max_queued)
        self.client.reconnect_delay_set(1, 30)
        if config.username:
            self.client.username_pw_set(config.username, config.password)
        if config.tls:
            self.client.tls_set(ca_certs=str(config.ca_file) if config.ca_file else None,
                                cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.config.host, self.config.port, reason)
        else:
            log.info("MQTT connected to %s:%d", self.config.host, self.config.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.config.host, self.config.port, reason)

    def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, keepalive=30)
        self.client.loop_start()

    def topic(self, ev: AlertEvent) -> str:
        return f"{self.config.topic_prefix}/alerts/{ev.scope}/{ev.key}"

    def publish(self, ev: AlertEvent) -> None:
        """Queue one alert (never blocks)."""
        info = self.client.publish(self.topic(ev), json.dumps(alert_payload(ev)), qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("MQTT alert %s not queued: %s", ev.alert_id, mqtt.error_string(info.rc))

    def stop(self, timeout_s: float = 2.0) -> None:
        self.client.disconnect()
        self.client.loop_stop()
