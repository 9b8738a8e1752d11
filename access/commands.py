"""Remote door commands and retained desired states: unlock, site lockdown, door mode.

One function per command; the API (and any other adapter) calls these. Each writes the audit
log, then tells the controllers over MQTT through one process-wide publisher.

What happens when the broker cannot be reached:
- `unlock`: every attempt is logged, refused ones too, with its outcome in `result` (`sent`,
  `lockdown`, `controller_offline`, `broker_unavailable`), then `broker_unavailable` (503) is
  raised. Nothing is retried: an unlock is worth doing now or never (its `exp` is 5 s).
- `set_lockdown`, `set_door_mode`: the database change stands (online decisions follow it at
  once) and is logged; the retained message is not sent, and `broker_unavailable` says so.
  Calling again with the same value re-sends the same version, which devices apply at most once.
"""

import logging
import threading
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from access import protocol
from access.models import AuditEvent, Controller, Door, SiteMode, locked_down
from access.mqtt import broker_from_url, new_client
from campus.models import Person
from common.errors import Conflict, DomainError

log = logging.getLogger(__name__)

UNLOCK_VALID_FOR = timedelta(seconds=5)
OFFLINE_AFTER = timedelta(seconds=90)  # 3 missed heartbeats (one every 30 s)
PUBLISH_TIMEOUT = 2.0


class BrokerUnavailable(DomainError):
    """The MQTT broker is not configured, not reachable, or did not acknowledge in time."""

    code = "broker_unavailable"


def is_online(controller: Controller, now: datetime | None = None) -> bool:
    """Online: its last status said so and it was heard from in the last 90 seconds."""
    now = now or timezone.now()
    return bool(
        controller.is_active
        and controller.online
        and controller.last_seen
        and now - controller.last_seen <= OFFLINE_AFTER
    )


# --- publishing -------------------------------------------------------------------------------


class Publisher:
    """One MQTT connection per process for the web tier, opened on first use and kept.

    paho's network thread (`loop_start`) carries the PUBACKs; a publish waits for its PUBACK at
    most `PUBLISH_TIMEOUT` seconds. The lock makes connecting and publishing safe from several
    request threads.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._client = None
        self._url = None

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> None:
        with self._lock:
            client = self._connected_client()
            info = client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT)
        except (RuntimeError, ValueError) as e:
            log.warning("MQTT publish on %s failed: %s", topic, e)
            self.close()
            raise BrokerUnavailable("The MQTT broker did not take the message.") from None
        if not info.is_published():
            log.warning("MQTT publish on %s not acknowledged within %ss", topic, PUBLISH_TIMEOUT)
            self.close()
            raise BrokerUnavailable("The MQTT broker did not acknowledge the message in time.")

    def _connected_client(self):
        url = settings.MQTT_URL
        if not url:
            raise BrokerUnavailable("No MQTT broker is configured (MQTT_URL is empty).")
        if self._client is not None and self._url == url and self._client.is_connected():
            return self._client
        self._close_locked()
        try:
            broker = broker_from_url(url)
        except ValueError:
            raise BrokerUnavailable("MQTT_URL is not a valid broker URL.") from None
        client = new_client(f"tc-web-{uuid.uuid4().hex[:16]}", broker=broker)
        client.connect_timeout = PUBLISH_TIMEOUT
        answered = threading.Event()
        refused = []

        def on_connect(client, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                refused.append(str(reason_code))
            answered.set()

        client.on_connect = on_connect
        try:
            client.connect(broker.host, broker.port, keepalive=30)
        except (OSError, ValueError) as e:
            log.warning("MQTT broker %s:%s unreachable: %s", broker.host, broker.port, e)
            raise BrokerUnavailable("The MQTT broker cannot be reached.") from None
        client.loop_start()
        if not answered.wait(PUBLISH_TIMEOUT) or refused:
            log.warning("MQTT broker refused or did not answer: %s", refused or "timeout")
            client.loop_stop()
            client.disconnect()
            raise BrokerUnavailable("The MQTT broker did not accept the connection.")
        self._client, self._url = client, url
        return client

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self):
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self._client = self._url = None


publisher = Publisher()


def _topic(kind: str, **ids) -> str:
    return protocol.topic(kind, settings.MQTT_ROOT, **ids)


# --- commands ---------------------------------------------------------------------------------


def unlock(
    door: Door,
    *,
    by: Person,
    pulse_ms: int | None = None,
    why: str = "",
    now: datetime | None = None,
) -> dict:
    """Send a door a one-off unlock; the controller acks on `cmd/ack` (logged by the bridge).

    Refused during a site or door lockdown (`lockdown`, 409) and when the controller is offline
    (`controller_offline`, 409): a command nobody hears would look like it worked. Returns the
    command as sent (`req_id`, `exp`, `pulse_ms`).
    """
    now = now or timezone.now()
    pulse_ms = pulse_ms or door.pulse_ms
    req_id = uuid.uuid4().hex
    command = {
        "v": protocol.VERSION,
        "cmd": "unlock",
        "pulse_ms": pulse_ms,
        "exp": protocol.epoch_ms(now + UNLOCK_VALID_FOR),
        "req_id": req_id,
    }

    def record(result: str):
        AuditEvent.objects.create(
            ts=now,
            kind=AuditEvent.Kind.COMMAND,
            controller=door.controller_id,
            door=door.pk,
            result=result,
            reason="unlock",
            actor=by,
            req_id=req_id,
            detail={"pulse_ms": pulse_ms, "exp": command["exp"], **({"why": why} if why else {})},
        )

    if locked_down(SiteMode.current().lockdown, door.mode):
        record("lockdown")
        raise Conflict("The site or this door is in lockdown: no remote unlock.", code="lockdown")
    if not is_online(door.controller, now):
        record("controller_offline")
        raise Conflict(
            f"Controller {door.controller_id} is offline: the command would not be heard.",
            code="controller_offline",
        )
    topic = _topic("door_cmd", ctrl=door.controller_id, door=door.pk)
    try:
        publisher.publish(topic, protocol.encode(command), retain=False)
    except BrokerUnavailable:
        record(BrokerUnavailable.code)
        raise
    record("sent")
    return command


def site_mode_payload(mode: SiteMode) -> bytes:
    return protocol.encode(
        {
            "v": protocol.VERSION,
            "ver": mode.version,
            "mode": "lockdown" if mode.lockdown else "normal",
        }
    )


def set_lockdown(on: bool, *, by: Person, why: str = "") -> SiteMode:
    """Lock the site down (or lift it), then publish the retained, versioned `site/mode`."""
    mode = SiteMode.set_lockdown(on, actor=by, why=why)
    publisher.publish(_topic("site_mode"), site_mode_payload(mode), retain=True)
    return mode


def door_desired_payload(door: Door) -> bytes:
    return protocol.encode({"v": protocol.VERSION, "ver": door.mode_version, "mode": door.mode})


def set_door_mode(door: Door, mode: str, *, by: Person, why: str = "") -> Door:
    """Set a door normal, held open (passage) or locked down; publish its retained `desired`.

    An unchanged mode is not logged again but is re-sent with its current version.
    """
    if door.mode != mode:
        door.set_mode(mode, actor=by, why=why)
    topic = _topic("door_desired", ctrl=door.controller_id, door=door.pk)
    publisher.publish(topic, door_desired_payload(door), retain=True)
    return door
