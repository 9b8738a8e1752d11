"""Lab equipment for the labs tests, on the shared cast and the bookings tests' clock.

NOW is Monday 2 March 2026, 08:00 in Paris. Labs open Monday to Friday 08:00–20:00; the
machines' own policy has no opening hours (a machine allowed to run unattended may run at
night). The EMC chamber needs its control room (a companion) and has 30 min of warm-up and
15 min of cool-down; bob is trained on it until 20 March.
"""

from datetime import timedelta

import pytest

from bookings.models import BookingPolicy, Resource
from labs.models import Equipment, Qualification
from tests.bookings.conftest import NOW, WEEKDAYS_8_TO_20, at, room, room_policy  # noqa: F401


@pytest.fixture
def lab_policy(db):
    return BookingPolicy.objects.create(
        name="Labs", default_for_kind="lab", opening_hours=WEEKDAYS_8_TO_20, max_advance_days=365
    )


@pytest.fixture
def equipment_policy(db):
    return BookingPolicy.objects.create(
        name="Equipment",
        default_for_kind="equipment",
        opening_hours=[],
        min_duration_minutes=30,
        max_duration_minutes=72 * 60,
        max_advance_days=365,
        free_cancellation_hours=24,
        late_cancellation_percent=100,
        checkin_window_minutes=0,
    )


def make_equipment(code, name, cls, lab, *, member=0, non_member=0, **extra):
    resource_fields = {
        k: extra.pop(k) for k in ["warm_up_minutes", "cool_down_minutes", "policy"] if k in extra
    }
    resource = Resource.objects.create(
        code=code,
        name=name,
        kind="equipment",
        price_member_cents=member,
        price_non_member_cents=non_member,
        uses_credits=False,
        **resource_fields,
    )
    return Equipment.objects.create(
        resource=resource, equipment_class=cls, location=lab, model_name=name, **extra
    )


@pytest.fixture
def control_room(campus, lab_policy):
    return Resource.objects.create(
        code="B-0.10-CTRL", name="EMC control room", kind="lab", uses_credits=False
    )


@pytest.fixture
def chamber(campus, equipment_policy, lab_policy, control_room):
    eq = make_equipment(
        "EQ-CEM",
        "EMC chamber",
        "emc-chamber",
        campus["lab"],
        member=10000,
        non_member=15000,
        warm_up_minutes=30,
        cool_down_minutes=15,
        energy_metering=True,
        energy_price_cents_per_kwh=20,
    )
    eq.resource.companions.add(control_room)
    return eq


@pytest.fixture
def scope(campus, equipment_policy, lab_policy):
    return make_equipment(
        "EQ-OSC-1", "Oscilloscope 1", "oscilloscope", campus["lab"], member=1000, non_member=2000
    )


@pytest.fixture
def printer(campus, equipment_policy, lab_policy):
    return make_equipment(
        "EQ-3D-1",
        "3D printer",
        "3d-printer",
        campus["lab"],
        member=500,
        non_member=800,
        unattended_allowed=True,
    )


def qualify(person, equipment=None, *, cls="", until=None, since=None, **extra):
    return Qualification.objects.create(
        person=person,
        equipment=equipment,
        equipment_class=cls,
        valid_from=since or NOW - timedelta(days=30),
        valid_until=until,
        **extra,
    )


@pytest.fixture
def bob_on_chamber(bob, chamber):
    return qualify(bob, chamber, until=at(20, 23, 59))
