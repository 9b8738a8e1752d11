"""MQTT plumbing shared by every client we write (the bridge and its allow-list connection,
the simulated devices of `simulate_controller`, `door_scan` and the demo, the web tier's
publisher): where the broker is, and paho clients that log in, speak TLS for `mqtts://`,
reconnect with backoff and set TCP_NODELAY (without it QoS 1 round trips stall at tens of
milliseconds: docs/mqtt.md)."""

import contextlib
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from paho.mqtt.enums import CallbackAPIVersion

# The demo's embedded broker leaves its URL in VAR_DIR under this name, for the other commands.
EMBEDDED_URL_FILE = "embedded_mqtt_url"


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how the backend logs in, from `mqtt[s]://user:pw@host:port`."""

    host: str
    port: int
    username: str
    password: str
    tls: bool


def broker_from_url(url: str) -> Broker:
    parts = urlsplit(url or "")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"an MQTT URL is mqtt://user:password@host:port, not {url!r}")
    tls = parts.scheme == "mqtts"
    return Broker(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        tls=tls,
    )


def configured_broker_url() -> str:
    """MQTT_URL, else the embedded broker the demo started (its URL is left in VAR_DIR), else
    the default local broker."""
    if settings.MQTT_URL:
        return settings.MQTT_URL
    path = Path(settings.VAR_DIR) / EMBEDDED_URL_FILE
    if path.exists():
        return path.read_text().strip()
    return "mqtt://127.0.0.1:1883"


def configured_broker() -> Broker:
    return broker_from_url(configured_broker_url())


def random_client_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def set_nodelay(client, userdata, sock):
    """paho's on_socket_open: turn Nagle off on the connection's socket."""
    # A websockets transport hands over a wrapper without setsockopt: nothing to set there.
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def new_client(
    client_id: str,
    *,
    broker: Broker | None = None,
    username: str | None = None,
    password: str | None = None,
    protocol=mqtt.MQTTv311,
    clean_session: bool | None = None,
    manual_ack: bool = False,
    reconnect_max: int | None = None,
) -> mqtt.Client:
    """A paho 2 client (callback API v2) that sets TCP_NODELAY on every connection.

    `broker`: log in with its user and password (else `username`, `password`) and use TLS for
    `mqtts://`. `protocol`: MQTT 3.1.1 (most devices) or `mqtt.MQTTv5`. `clean_session` is
    MQTT 3.1.1's (False keeps the session across reconnections; MQTT 5 says it with
    `clean_start` at connect instead). `manual_ack`: the caller acknowledges each QoS 1
    message itself, once handled, so that one not handled is delivered again.
    `reconnect_max`: after a lost connection paho tries again after 1 s, then doubles the wait
    up to this many seconds (paho's own default: 120).
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=clean_session,
        manual_ack=manual_ack,
    )
    if broker is not None:
        username, password = broker.username or None, broker.password or None
    if username:
        client.username_pw_set(username, password)
    if broker is not None and broker.tls:
        client.tls_set()
    if reconnect_max is not None:
        client.reconnect_delay_set(1, reconnect_max)
    client.on_socket_open = set_nodelay
    return client
