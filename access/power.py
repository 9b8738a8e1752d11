"""Machine power for equipment sessions (docs/mqtt.md, "Equipment"): the bridge's
half of a session. `labs.sessions` alone opens and closes sessions; this module switches the
power that goes with them and keeps it on while the session lasts.

- A granted `session_start` scan opens a session (source controller) and powers the machine:
  a native node gets `enable`; a Tasmota relay gets `PulseTime 100+lease_s` then `POWER ON`,
  and the grant is only sent once the relay answers `stat/<t>/POWER ON` (within EQ_CONFIRM_S):
  otherwise the session is closed (`relay_offline`) and the scan denied `maintenance`.
- The power thread (`run`, one bridge worker) renews every open session's lease every
  `lease_s/3`, warns EQ_WARN_S before the booking ends, and stops a session at booking end plus
  EQ_GRACE_S, when the relay goes offline, or when the lease was lost (the relay switched off by
  itself). A session closed elsewhere (staff in the API or the admin) is switched off on its
  next pass: the web process never talks MQTT.
- A relay that comes back online while its machine has no open session is switched off.

Relay and node reports are written by the bridge's writer thread (never on the network thread)
onto the Equipment row (relay_online, powered, meter_kwh): the staff console reads them there,
and the power thread decides from them, so that every stop is decided in one place.
"""

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from access import decision, protocol
from access.models import Controller
from campus.models import Person
from labs import sessions
from labs.models import Equipment, UsageSession

log = logging.getLogger(__name__)

NATIVE = Equipment.ControllerKind.NATIVE
TASMOTA = Equipment.ControllerKind.TASMOTA


def tasmota_prefix() -> str:
    prefix = settings.TASMOTA_PREFIX.strip("/")
    return f"{prefix}/" if prefix else ""


def lease_s() -> int:
    return max(3, settings.EQ_LEASE_S)


@dataclass
class Powered:
    """A session this bridge keeps powered: when its lease was last renewed, whether warned."""

    session_id: int
    renewed: float = 0.0
    warned: bool = False
    pending: bool = False  # started, waiting for the relay to confirm


def energy_wh(session: UsageSession, equipment: Equipment) -> int | None:
    """The meter's difference since the start, in whole Wh; None without both readings."""
    if session.meter_start_kwh is None or equipment.meter_kwh is None:
        return None
    return max(0, round((equipment.meter_kwh - session.meter_start_kwh) * 1000))


class Power:
    """Power switching and leases for one bridge worker (see the module docstring)."""

    def __init__(self, root: str, publish, writer):
        self.root = root
        self.publish = publish  # (topic, payload) → None, QoS 1, never retained
        self.writer = writer
        self.prefix = tasmota_prefix()
        self.lock = threading.RLock()  # guards `powered`; held while a session stops
        self.powered: dict[int, Powered] = {}  # equipment id → its session
        self.confirmations: dict[str, threading.Event] = {}
        # The power thread sleeps until a machine with a controller exists or shows up, so that
        # a site (or a test) without any costs no database round trip per second.
        self.wake = threading.Event()

    # --- MQTT: what to subscribe to, what is ours

    def topics(self) -> list[str]:
        """Plain subscriptions: LWTs are retained, and every worker needs the confirmations."""
        p = self.prefix
        return [
            f"{p}stat/+/POWER",
            f"{p}tele/+/LWT",
            f"{p}tele/+/SENSOR",
            f"{self.root}/ctrl/+/eq/+/state",
        ]

    def relay_topic(self, topic: str) -> tuple[str, str] | None:
        """(device, what) for a Tasmota report this module reads, else None."""
        if not topic.startswith(self.prefix):
            return None
        levels = topic[len(self.prefix) :].split("/")
        if len(levels) != 3 or (levels[0], levels[2]) not in (
            ("stat", "POWER"),
            ("tele", "LWT"),
            ("tele", "SENSOR"),
        ):
            return None
        return levels[1], levels[2]

    def on_relay(self, device: str, what: str, payload: bytes, now: datetime):
        """A Tasmota report, on the network thread: memory only, database writes queued."""
        self.wake.set()
        text = payload.decode("utf-8", "replace").strip()
        if what == "POWER":
            on = text.upper() == "ON"
            if on and (waiting := self.confirmations.get(device)) is not None:
                waiting.set()
            self.writer.call(record_power, {"tasmota_topic": device}, on, now)
        elif what == "LWT":
            if text in ("Online", "Offline"):
                self.writer.call(self.record_relay, device, text == "Online")
        else:
            try:
                total = Decimal(str(json.loads(text)["ENERGY"]["Total"]))
            except (ValueError, KeyError, TypeError, InvalidOperation):
                return  # a SENSOR without an energy meter
            self.writer.call(record_meter, device, total)

    def on_eq_state(self, where: protocol.Topic, payload: bytes, now: datetime):
        """A native node's retained state: powered or not (lease loss is read from it)."""
        if not payload:
            return
        self.wake.set()
        state = protocol.parse_eq_state(payload)
        lookup = {
            "controller_kind": NATIVE,
            "controller_id": where.ctrl,
            "resource__code": where.eq,
        }
        self.writer.call(record_power, lookup, state.enabled, now)

    def record_relay(self, device: str, online: bool):
        """LWT, in the writer thread. A relay back online with nothing to power is switched off
        (it may have been left on by a session that ended while it was away)."""
        Equipment.objects.filter(tasmota_topic=device).update(relay_online=online)
        if not online:
            log.warning("Tasmota relay %s offline", device)
            return
        running = UsageSession.objects.filter(equipment=OuterRef("pk"), stopped_at__isnull=True)
        idle = Equipment.objects.filter(controller_kind=TASMOTA, tasmota_topic=device)
        if idle.filter(~Exists(running)).exists():
            self._tasmota(device, "POWER", "OFF")

    # --- scans at a machine

    def on_scan(self, equipment, scan, holder_id, answer: decision.Decision, now: datetime):
        """(answer, grant extras) for a machine scan the decision already answered."""
        if equipment is None or equipment.controller_kind == Equipment.ControllerKind.NONE:
            return answer, {}
        self.wake.set()
        if scan.purpose == "session_stop":
            if answer.reason in decision.REQUEST_REFUSALS:
                return answer, {}  # a stale scan, or one from the future, stops nothing
            return self.badge_out(equipment, holder_id, now)
        if not answer.granted or holder_id is None:
            return answer, {}
        return self.start(equipment, holder_id, answer, now)

    def start(self, equipment: Equipment, person_id: int, answer, now: datetime):
        person = Person.objects.get(pk=person_id)
        try:
            session = sessions.start_session(person, equipment, source="controller", now=now)
        except sessions.SessionRefused as e:
            # Not a rule of ours: labs.sessions refused (another session got in meanwhile).
            return decision.deny(e.code), {}
        entry = Powered(session.pk, pending=True)
        with self.lock:
            self.powered[equipment.pk] = entry
        if not self._power_on(equipment, session, confirm=True):
            log.warning("%s: the relay did not confirm POWER ON; session refused", equipment.code)
            with self.lock:
                self.powered.pop(equipment.pk, None)
                sessions.stop_session(session, reason="relay_offline", now=timezone.now())
                self._power_off(equipment, session.pk)
            # Not a rule either: the decision granted, but the machine could not be powered;
            # the device must not believe it is on, and `maintenance` is the protocol's code
            # for a machine that cannot be used now.
            return decision.deny("maintenance"), {}
        meter = Equipment.objects.filter(pk=equipment.pk).values_list("meter_kwh", flat=True)[0]
        UsageSession.objects.filter(pk=session.pk).update(meter_start_kwh=meter)
        entry.renewed, entry.pending = time.monotonic(), False
        self._event(equipment, session, "start", now)
        log.info("%s: session %s started by %s", equipment.code, session.pk, person)
        return answer, {"session_id": str(session.pk), "lease_s": lease_s()}

    def badge_out(self, equipment: Equipment, person_id: int | None, now: datetime):
        session = UsageSession.objects.filter(equipment=equipment, stopped_at__isnull=True).first()
        answer = decision.decide_session_stop(person_id, session.person_id if session else None)
        if session is None:
            self._power_off(equipment, None)  # nothing runs: make sure it is off
            return answer, {}
        if not answer.granted:
            return answer, {}
        with self.lock:
            self.stop(session, "badge_out", now)
        return answer, {"session_id": str(session.pk)}

    # --- the power thread

    def run(self, stop: threading.Event, every: float = 1.0):
        every = min(every, lease_s() / 6)
        delay = every
        try:
            if Equipment.objects.exclude(controller_kind=Equipment.ControllerKind.NONE).exists():
                self.wake.set()
        except DatabaseError:
            self.wake.set()
        while not self.wake.wait(every):
            if stop.is_set():
                return
        while not stop.wait(delay):
            try:
                self.tick(timezone.now())
                delay = every
            except DatabaseError:
                log.exception("power: database unavailable")
                connection.close()
                delay = min(delay * 2, 5.0)
            except Exception:  # the power thread must outlive one bad row
                log.exception("power: failed pass")

    def tick(self, now: datetime):
        """Renew, warn and stop: one pass over the open sessions of machines with a controller."""
        running = list(
            UsageSession.objects.filter(stopped_at__isnull=True)
            .exclude(equipment__controller_kind=Equipment.ControllerKind.NONE)
            .select_related("equipment__resource", "booking", "person")
        )
        with self.lock:
            open_ids = {s.pk for s in running}
            for eq_id, entry in list(self.powered.items()):
                if not entry.pending and entry.session_id not in open_ids:
                    self._stopped_elsewhere(eq_id, entry)
            for session in running:
                self._keep(session, now)

    def _keep(self, session: UsageSession, now: datetime):
        equipment = session.equipment
        entry = self.powered.get(equipment.pk)
        if entry is None or entry.session_id != session.pk:
            if now - session.started_at < timedelta(seconds=settings.EQ_CONFIRM_S + 1):
                return  # another worker may still be waiting for its relay
            entry = self.powered[equipment.pk] = Powered(session.pk)
        if entry.pending:
            return
        reason = self._stop_reason(session, now)
        if reason:
            self.stop(session, reason, now)
            return
        end = session.booking.end
        if not entry.warned and now >= end - timedelta(seconds=settings.EQ_WARN_S):
            entry.warned = True
            self._event(equipment, session, "warn", now, ends=protocol.epoch_ms(end))
        if time.monotonic() - entry.renewed >= lease_s() / 3:
            self._power_on(equipment, session, renew=True)
            entry.renewed = time.monotonic()

    def _stop_reason(self, session: UsageSession, now: datetime) -> str | None:
        equipment = session.equipment
        if session.booking is None or now >= session.booking.end + timedelta(
            seconds=settings.EQ_GRACE_S
        ):
            return "booking_end"
        if equipment.controller_kind == TASMOTA:
            online = equipment.relay_online is not False
        else:
            online = Controller.objects.filter(pk=equipment.controller_id, online=True).exists()
        if not online:
            return "relay_offline"
        seen = equipment.power_seen_at
        if equipment.powered is False and seen is not None and seen > session.started_at:
            return "lease_lost"
        return None

    def stop(self, session: UsageSession, reason: str, now: datetime):
        """Close the session, switch off, tell (with the lock held)."""
        equipment = Equipment.objects.select_related("resource").get(pk=session.equipment_id)
        session = sessions.stop_session(
            session, reason=reason, now=now, energy_wh=energy_wh(session, equipment)
        )
        self.powered.pop(equipment.pk, None)
        self._power_off(equipment, session.pk)
        self._event(equipment, session, "stop", now)
        log.info("%s: session %s stopped (%s)", equipment.code, session.pk, session.stop_reason)

    def _stopped_elsewhere(self, eq_id: int, entry: Powered):
        """Closed by staff (API, admin): switch off, and meter it if they could not."""
        del self.powered[eq_id]
        equipment = Equipment.objects.select_related("resource").get(pk=eq_id)
        session = UsageSession.objects.select_related("person").get(pk=entry.session_id)
        self._power_off(equipment, session.pk)
        if session.energy_wh is None and (wh := energy_wh(session, equipment)) is not None:
            UsageSession.objects.filter(pk=session.pk, energy_wh__isnull=True).update(energy_wh=wh)
            session.energy_wh = wh
        self._event(equipment, session, "stop", session.stopped_at or timezone.now())

    # --- commands

    def _power_on(self, equipment, session, *, confirm=False, renew=False) -> bool:
        lease = lease_s()
        if equipment.controller_kind == NATIVE:
            self._native(equipment, "extend" if renew else "enable", session.pk, lease)
            return True
        device = equipment.tasmota_topic
        waiting = threading.Event()
        if confirm:
            self.confirmations[device] = waiting
        try:
            # PulseTime above 111 is seconds + 100: the relay drops by itself unless renewed.
            self._tasmota(device, "PulseTime", str(100 + lease))
            self._tasmota(device, "POWER", "ON")
            if not confirm:
                return True
            if not waiting.wait(settings.EQ_CONFIRM_S):
                return False
        finally:
            self.confirmations.pop(device, None)
        Equipment.objects.filter(pk=equipment.pk).update(powered=True, power_seen_at=timezone.now())
        return True

    def _power_off(self, equipment, session_id: int | None):
        if equipment.controller_kind == NATIVE:
            self._native(equipment, "disable", session_id, 0)
        else:
            self._tasmota(equipment.tasmota_topic, "POWER", "OFF")

    def _native(self, equipment, cmd: str, session_id, lease: int):
        topic = protocol.topic("eq_cmd", self.root, ctrl=equipment.controller_id, eq=equipment.code)
        body = {"v": protocol.VERSION, "req_id": uuid.uuid4().hex, "cmd": cmd, "lease_s": lease}
        if session_id is not None:
            body["session_id"] = str(session_id)
        self.publish(topic, protocol.encode(body))

    def _tasmota(self, device: str, command: str, value: str):
        self.publish(self.prefix + protocol.tasmota_topic("cmnd", device, command), value.encode())

    def _event(self, equipment, session, event: str, now: datetime, **extra):
        end = session.stopped_at or now
        body = {
            "v": protocol.VERSION,
            "event": event,
            "session_id": str(session.pk),
            "user": str(session.person),
            "ts": protocol.epoch_ms(now),
            "duration_s": max(0, int((end - session.started_at).total_seconds())),
            **extra,
        }
        if event == "stop":
            body.update(reason=session.stop_reason, energy_wh=session.energy_wh)
        self.publish(
            protocol.topic("eq_session", self.root, eq=equipment.code), protocol.encode(body)
        )


# --- writes done in the writer thread -----------------------------------------------------------


def record_power(lookup: dict, on: bool, at: datetime):
    """A power report; an older one never overwrites a newer (the bridge writes one itself when
    a relay confirms a start)."""
    Equipment.objects.filter(**lookup).filter(
        Q(power_seen_at__isnull=True) | Q(power_seen_at__lte=at)
    ).update(powered=on, power_seen_at=at)


def record_meter(device: str, total: Decimal):
    Equipment.objects.filter(tasmota_topic=device).update(meter_kwh=total)
