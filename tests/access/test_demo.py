"""The demo's doors, controllers and badges (the campus demo's idempotency test covers them)."""

import io
import re
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from access.models import Controller, Credential, Door, VisitorPass
from access.simulator import SimulatedController
from bookings.models import Booking
from campus.models import Person, Space
from config.demo import access as access_demo
from config.demo.access import demo_uid
from labs.models import Equipment, Qualification, UsageSession
from tests.access.broker import wait_until
from tests.access.test_bridge import BROKER, RunningBridge, root  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_every_room_has_a_door_and_every_controller_one_to_four(seeded):
    for kind in ("office", "lab", "meeting_room", "technical", "auditorium"):
        spaces = Space.objects.filter(kind=kind)
        assert spaces.exists()
        assert not spaces.filter(doors__isnull=True).exists(), kind
    perimeter = Door.objects.filter(kind="perimeter")
    assert Counter(perimeter.values_list("direction", flat=True)) == {"in": 1, "out": 1, "both": 1}
    assert Door.objects.filter(kind="floor").count() == 2
    per_controller = Counter(Door.objects.values_list("controller_id", flat=True))
    assert 35 <= len(per_controller) <= 45
    assert set(per_controller.values()) <= {1, 2, 3, 4}
    machines = set(Equipment.objects.exclude(controller_id="").values_list("controller_id"))
    assert len(per_controller) + len(machines) == Controller.objects.count()
    assert not Controller.objects.filter(mqtt_password_hash="").exists()
    for door in Door.objects.select_related("space", "controller"):
        door.full_clean()


def test_every_demo_person_has_a_badge_and_two_staff_hold_master_cards(seeded):
    assert not Person.objects.filter(credentials__isnull=True).exists()
    masters = Credential.objects.filter(override=True).select_related("holder")
    assert masters.count() == 2 and all(m.holder.is_facility_staff for m in masters)
    visit = VisitorPass.objects.get()
    assert visit.credential.kind == "visitor" and visit.credential.status == "active"


def test_the_printed_uids_are_real_badges_and_a_second_run_keeps_passwords(seeded):
    uids = re.findall(r"^\s+(04[0-9A-F]{12})\s", seeded, flags=re.MULTILINE)
    assert len(uids) == 5
    for uid in uids:
        assert Credential.objects.filter(uid_hash=Credential.hash_uid(uid)).exists(), uid
    assert "door_scan" in seeded
    before = dict(Controller.objects.values_list("id", "mqtt_password_hash"))
    call_command("seed_demo", stdout=io.StringIO())
    assert dict(Controller.objects.values_list("id", "mqtt_password_hash")) == before


def test_a_suspended_demo_badge_stays_suspended_after_a_second_run(seeded):
    badge = Credential.objects.filter(holder__isnull=False, override=False).first()
    badge.status = "suspended"
    badge.save()
    call_command("seed_demo", stdout=io.StringIO())
    badge.refresh_from_db()
    assert badge.status == "suspended"
    assert Credential.objects.filter(holder=badge.holder, override=False).count() == 1


def test_every_controller_the_demo_refers_to_is_enrolled_and_simulated(seeded):
    machines = Equipment.objects.exclude(controller_kind="none")
    referred = set(Door.objects.values_list("controller_id", flat=True))
    referred |= set(machines.values_list("controller_id", flat=True))
    assert "" not in referred  # every machine with a controller names it
    assert referred <= set(Controller.objects.filter(is_active=True).values_list("pk", flat=True))
    controllers, relays = access_demo.simulated()
    assert set(controllers) == referred
    tasmota = machines.filter(controller_kind="tasmota").values_list("tasmota_topic", flat=True)
    assert set(relays) == set(tasmota) and relays
    assert machines.filter(controller_kind="native").exists()
    for machine in machines.select_related("resource", "location"):
        machine.full_clean()


@pytest.mark.mqtt
@pytest.mark.django_db(transaction=True)
def test_sessions_at_demo_machines_keep_their_power_under_the_demo_devices(root, settings):  # noqa: F811
    """The demo's devices, a native node and a Tasmota relay's reader: a session started at
    each is powered and still runs after several passes of the power thread (a lease of 3 s,
    renewed every second), instead of stopping at once with `relay_offline`."""
    call_command("seed_demo", stdout=io.StringIO())
    settings.TASMOTA_PREFIX = f"test-{uuid.uuid4().hex[:12]}/"
    settings.EQ_LEASE_S = 3
    now = timezone.now()
    users = {}
    for code in ("EQ-CEM-01", "EQ-CLIM-01"):
        machine = Equipment.objects.select_related("resource").get(resource__code=code)
        trained = Qualification.objects.filter(equipment_class=machine.equipment_class)
        person = trained.order_by("pk").first().person
        start, end = now - timedelta(minutes=5), now + timedelta(hours=1)
        Booking.objects.filter(resource=machine.resource, blocked_end__gt=start).update(
            status="cancelled"
        )
        Booking.objects.create(
            resource=machine.resource,
            person=person,
            tenant=person.tenant,
            start=start,
            end=end,
            blocked_start=start,
            blocked_end=end,
            status="confirmed",
        )
        users[code] = (machine, person)
    bridge = RunningBridge(root)
    devices = access_demo.simulate(
        BROKER,
        key=settings.CREDENTIAL_KEY,
        root=root,
        prefix=settings.TASMOTA_PREFIX,
        client_tag=f"-{uuid.uuid4().hex[:8]}",
    )
    try:
        readers = {d.id: d for d in devices if isinstance(d, SimulatedController)}
        wired = {machine.controller_id for machine, _person in users.values()}
        assert wire_up(wired)
        granted = {}
        for code, (machine, person) in users.items():
            answer = readers[machine.controller_id].eq_scan(code, demo_uid(person.email), timeout=5)
            assert (answer["result"], answer["reason"]) == ("grant", "booking"), code
            granted[code] = int(answer["session_id"])
        assert readers["ctrl-cem"].powered("EQ-CEM-01")
        time.sleep(2.5)  # the power thread's passes: renewals, not stops
        running = UsageSession.objects.filter(pk__in=granted.values(), stopped_at__isnull=True)
        assert running.count() == 2, list(UsageSession.objects.values("stop_reason"))
    finally:
        for device in devices:
            device.stop()
        bridge.close()


def wire_up(controllers) -> bool:
    """The machines' controllers are online (their births reached the bridge)."""
    return wait_until(
        lambda: (
            Controller.objects.filter(pk__in=controllers, online=True).count() == len(controllers)
        )
    )
