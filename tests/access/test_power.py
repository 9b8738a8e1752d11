"""Machine power through the real broker: a badge at a laser cutter on a Tasmota relay, the bridge
in this process, and a simulated relay that obeys POWER and PulseTime as Tasmota does.

Alice is trained on the laser and booked it now; Bob is trained but has no booking; Charlie has
no training. Leases are 3 s, the warning 2 s before the booking end, the grace 1 s.
Each test has its own MQTT root and Tasmota prefix.
"""

import json
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from access.bridge import Bridge, BridgeConfig
from access.models import Controller, Credential
from access.mqtt import broker_from_url, new_client
from access.simulator import SimulatedController, SimulatedRelay
from bookings.models import Booking, Resource
from labs import sessions
from labs.models import Equipment, Qualification, UsageSession
from tests.access.broker import wait_until
from tests.conftest import MQTT_TEST_URL

pytestmark = [pytest.mark.mqtt, pytest.mark.django_db(transaction=True)]

BROKER = broker_from_url(MQTT_TEST_URL)
UIDS = {"alice": "A11CE000", "bob": "B0B0B0B0", "charlie": "C4A411E0"}


@pytest.fixture
def power_settings(settings):
    root = f"test/{uuid.uuid4().hex[:12]}/campus/v1"
    settings.MQTT_ROOT = root
    settings.TASMOTA_PREFIX = f"test-{uuid.uuid4().hex[:12]}/"
    settings.EQ_LEASE_S = 3
    settings.EQ_WARN_S = 2
    settings.EQ_GRACE_S = 1
    settings.EQ_CONFIRM_S = 2
    return settings


@pytest.fixture
def laser(campus, alice, bob, charlie, power_settings):
    now = timezone.now()
    Controller.objects.create(id="ctrl-m", name="Lab readers")
    resource = Resource.objects.create(code="LASER-1", name="Laser cutter", kind="equipment")
    laser = Equipment.objects.create(
        resource=resource,
        equipment_class="laser",
        location=campus["lab"],
        controller_kind="tasmota",
        tasmota_topic="laser1",
        controller_id="ctrl-m",  # the reader next to the relay
        energy_metering=True,
    )
    for who, person in (("alice", alice), ("bob", bob), ("charlie", charlie)):
        credential = Credential(holder=person)
        credential.set_uid(UIDS[who])
        credential.save()
    for person in (alice, bob):
        Qualification.objects.create(
            person=person, equipment=laser, valid_from=now - timedelta(days=1)
        )
    book(laser, alice, now + timedelta(hours=1))
    return laser


def book(laser, person, end):
    start = timezone.now() - timedelta(minutes=5)
    return Booking.objects.create(
        resource=laser.resource,
        person=person,
        tenant=person.tenant,
        start=start,
        end=end,
        blocked_start=start,
        blocked_end=end,
        status="confirmed",
    )


@pytest.fixture
def running(laser):
    """The bridge, the reader (ctrl-m), the relay and the session events seen."""
    root = settings.MQTT_ROOT
    made = {}

    def start(*, answers=True):
        relay = made["relay"] = SimulatedRelay(
            settings.TASMOTA_PREFIX, "laser1", answers=answers, broker=BROKER
        )
        relay.start()
        config = BridgeConfig(
            broker=BROKER,
            root=root,
            group=f"g{uuid.uuid4().hex[:8]}",
            client_id=f"bridge-{uuid.uuid4().hex[:8]}",
            run_jobs=False,
            poll=0.1,
            audit_delay=0.05,
        )
        bridge = Bridge(config)
        stop = threading.Event()
        thread = threading.Thread(target=bridge.run, args=(stop,), daemon=True)
        thread.start()
        made["bridge"] = (stop, thread)
        assert bridge.ready.wait(10)
        reader = made["reader"] = SimulatedController(
            "ctrl-m",
            broker=BROKER,
            key=settings.CREDENTIAL_KEY,
            root=root,
            heartbeat=0,
            client_id=f"ctrl-m-{uuid.uuid4().hex[:8]}",  # the broker is shared with other runs
        ).start()
        events = made["events"] = []
        watcher = made["watcher"] = new_client(f"watch-{uuid.uuid4().hex[:8]}")
        watcher.on_message = lambda c, u, m: events.append(json.loads(m.payload))
        watcher.connect(BROKER.host, BROKER.port)
        watcher.loop_start()
        watcher.subscribe(f"{root}/eq/LASER-1/session", qos=1)
        # The relay's birth and first reading are in (and it was switched off: no session).
        relay.sensor("10.000")
        if Equipment.objects.filter(controller_kind="tasmota").exists():
            assert wait_until(lambda: meter() == Decimal("10.000"))
        else:
            time.sleep(0.3)
        return relay, reader, events

    yield start
    if "bridge" in made:
        stop, thread = made["bridge"]
        stop.set()
        thread.join(15)
        made["reader"].stop()
        made["watcher"].disconnect()
        made["watcher"].loop_stop()
    if "relay" in made:
        made["relay"].stop()


def meter():
    return Equipment.objects.get(resource__code="LASER-1").meter_kwh


def scan(reader, who, purpose="session_start"):
    return reader.eq_scan("LASER-1", UIDS[who], purpose, timeout=5)


def test_a_session_powers_the_relay_renews_its_lease_and_stops_at_booking_end_with_its_energy(
    laser, alice, running
):
    Booking.objects.filter(person=alice).update(
        end=timezone.now() + timedelta(seconds=4), blocked_end=timezone.now() + timedelta(seconds=4)
    )
    relay, reader, events = running()
    granted = scan(reader, "alice")
    assert (granted["result"], granted["reason"], granted["lease_s"]) == ("grant", "booking", 3)
    session = UsageSession.objects.get(pk=int(granted["session_id"]))
    assert relay.on and ("PulseTime", "103") in relay.commands
    assert session.source == "controller" and session.meter_start_kwh == Decimal("10.000")
    relay.sensor("10.250")
    # Past the 3 s lease the relay is still on: renewed every second.
    time.sleep(3.5)
    assert relay.on and relay.switched_on() >= 3
    assert wait_until(lambda: not UsageSession.objects.get(pk=session.pk).is_open, timeout=4)
    session.refresh_from_db()
    assert (session.stop_reason, session.energy_wh) == ("booking_end", 250)
    assert wait_until(lambda: not relay.on)
    assert wait_until(lambda: [e["event"] for e in events] == ["start", "warn", "stop"])
    assert events[2]["energy_wh"] == 250 and events[2]["reason"] == "booking_end"
    assert events[2]["session_id"] == str(session.pk) and events[2]["duration_s"] >= 4


def test_without_training_or_booking_the_machine_stays_off(laser, running):
    relay, reader, events = running()
    assert scan(reader, "charlie")["reason"] == "not_qualified"
    assert scan(reader, "bob")["reason"] == "no_booking"
    assert relay.switched_on() == 0 and not relay.on
    assert not UsageSession.objects.exists()


def test_another_controller_can_neither_start_nor_stop_the_machine(laser, running, settings):
    Controller.objects.create(id="ctrl-x", name="Another floor")
    relay, reader, events = running()
    intruder = SimulatedController(
        "ctrl-x",
        broker=BROKER,
        key=settings.CREDENTIAL_KEY,
        root=settings.MQTT_ROOT,
        heartbeat=0,
        client_id=f"ctrl-x-{uuid.uuid4().hex[:8]}",
    ).start()
    try:
        started = intruder.eq_scan("LASER-1", UIDS["alice"], "session_start", timeout=5)
        assert (started["result"], started["reason"]) == ("deny", "bad_request")
        assert relay.switched_on() == 0 and not UsageSession.objects.exists()
        granted = scan(reader, "alice")
        assert granted["result"] == "grant" and relay.on
        stopped = intruder.eq_scan("LASER-1", UIDS["alice"], "session_stop", timeout=5)
        assert (stopped["result"], stopped["reason"]) == ("deny", "bad_request")
        assert UsageSession.objects.get(pk=int(granted["session_id"])).is_open and relay.on
    finally:
        intruder.stop()


def test_a_tasmota_machine_must_name_the_controller_of_its_reader(laser):
    with pytest.raises(IntegrityError), transaction.atomic():
        Equipment.objects.filter(pk=laser.pk).update(controller_id="")
    laser.controller_id = ""
    with pytest.raises(ValidationError, match="controller whose reader"):
        laser.full_clean()


def test_a_relay_going_offline_stops_the_session(laser, running):
    relay, reader, events = running()
    granted = scan(reader, "alice")
    assert granted["result"] == "grant" and relay.on
    relay.lwt("Offline")
    session = UsageSession.objects.get(pk=int(granted["session_id"]))
    assert wait_until(lambda: not UsageSession.objects.get(pk=session.pk).is_open, timeout=3)
    assert UsageSession.objects.get(pk=session.pk).stop_reason == "relay_offline"
    assert Equipment.objects.get(pk=laser.pk).relay_online is False


def test_a_relay_back_online_without_a_session_is_switched_off(laser, running):
    relay, reader, events = running()
    relay.on = True  # switched on by hand while the bridge could not see it
    relay.lwt("Offline")
    relay.lwt("Online")
    assert wait_until(lambda: not relay.on, timeout=3)
    assert relay.commands[-1] == ("POWER", "OFF")
    assert Equipment.objects.get(pk=laser.pk).relay_online is True


def test_badge_out_and_staff_stop_switch_the_machine_off(laser, alice, tina, running):
    relay, reader, events = running()
    first = scan(reader, "alice")
    assert scan(reader, "bob", "session_stop")["reason"] == "not_authorized"
    out = scan(reader, "alice", "session_stop")
    assert (out["result"], out["session_id"]) == ("grant", first["session_id"])
    assert UsageSession.objects.get(pk=int(first["session_id"])).stop_reason == "badge_out"
    assert wait_until(lambda: not relay.on)

    second = scan(reader, "alice")
    assert second["result"] == "grant" and relay.on
    session = UsageSession.objects.get(pk=int(second["session_id"]))
    sessions.stop_session(session, reason="staff", by=tina)
    assert wait_until(lambda: not relay.on, timeout=3)
    assert wait_until(lambda: [e["event"] for e in events] == ["start", "stop", "start", "stop"])
    assert events[-1]["reason"] == "staff"


def test_a_relay_that_does_not_confirm_refuses_the_session(laser, running):
    relay, reader, events = running(answers=False)
    denied = scan(reader, "alice")
    assert (denied["result"], denied["reason"]) == ("deny", "maintenance")
    session = UsageSession.objects.get()
    assert session.stop_reason == "relay_offline"
    # The OFF reaches the relay on its own connection, not ordered with the reply to the reader.
    assert wait_until(lambda: relay.commands[-1] == ("POWER", "OFF"), timeout=3)
    assert Equipment.objects.get(pk=laser.pk).status == "available"


def test_a_relay_that_switches_off_by_itself_loses_the_lease(laser, running):
    relay, reader, events = running()
    granted = scan(reader, "alice")
    relay._switch(False)  # the button on the plug, or a missed renewal
    session = UsageSession.objects.get(pk=int(granted["session_id"]))
    assert wait_until(lambda: not UsageSession.objects.get(pk=session.pk).is_open, timeout=3)
    assert UsageSession.objects.get(pk=session.pk).stop_reason == "lease_lost"


def test_a_native_node_is_enabled_extended_and_disabled_under_the_session(laser, running):
    Equipment.objects.filter(pk=laser.pk).update(
        controller_kind="native", controller_id="ctrl-m", tasmota_topic=""
    )
    relay, reader, events = running()
    commands = []
    root = settings.MQTT_ROOT
    node = new_client(f"node-{uuid.uuid4().hex[:8]}")
    node.on_message = lambda c, u, m: commands.append(json.loads(m.payload))
    node.connect(BROKER.host, BROKER.port)
    node.loop_start()
    node.subscribe(f"{root}/ctrl/ctrl-m/eq/LASER-1/cmd", qos=1)
    time.sleep(0.3)
    try:
        granted = scan(reader, "alice")
        assert (granted["result"], granted["lease_s"]) == ("grant", 3)
        assert wait_until(lambda: [c["cmd"] for c in commands][:2] == ["enable", "extend"])
        assert commands[0]["session_id"] == granted["session_id"]
        assert scan(reader, "alice", "session_stop")["result"] == "grant"
        assert wait_until(lambda: commands[-1]["cmd"] == "disable")
    finally:
        node.disconnect()
        node.loop_stop()
