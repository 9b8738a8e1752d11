"""MQTT plumbing shared by every client we write: the broker URL and paho clients with
TCP_NODELAY (without it QoS 1 round trips stall at tens of milliseconds: docs/mqtt.md)."""

import contextlib
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


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


def set_nodelay(client, userdata, sock):
    """paho's on_socket_open: turn Nagle off on the connection's socket."""
    # A websockets transport hands over a wrapper without setsockopt: nothing to set there.
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def new_client(
    client_id: str,
    *,
    username: str | None = None,
    password: str | None = None,
    protocol=mqtt.MQTTv311,
    clean_session: bool | None = None,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A paho 2 client (callback API v2) that sets TCP_NODELAY on every connection.

    `clean_session` is MQTT 3.1.1's (False keeps the session across reconnections; MQTT 5
    says it with `clean_start` at connect instead). `manual_ack`: the caller acknowledges each
    QoS 1 message itself, once handled, so that one not handled is delivered again.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=clean_session,
        manual_ack=manual_ack,
    )
    if username:
        client.username_pw_set(username, password)
    client.on_socket_open = set_nodelay
    return client
