"""Bookable resources for the booking tests, and a fixed clock.

NOW is Monday 2 March 2026, 08:00 in Paris. Rooms open Monday to Friday, 08:00–20:00.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from bookings.models import BookingPolicy, Resource

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=PARIS)
WEEKDAYS_8_TO_20 = [[d, "08:00", "20:00"] for d in range(1, 6)]


def at(day: int, hour: int, minute: int = 0, month: int = 3, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


@pytest.fixture
def room_policy(db):
    return BookingPolicy.objects.create(
        name="Meeting rooms",
        default_for_kind="meeting_room",
        opening_hours=WEEKDAYS_8_TO_20,
        slot_minutes=15,
        min_duration_minutes=30,
        max_duration_minutes=480,
        max_advance_days=365,
        free_cancellation_hours=24,
        late_cancellation_percent=50,
        checkin_window_minutes=15,
    )


@pytest.fixture
def room(campus, room_policy):
    return Resource.objects.create(
        code="B-1.50",
        name="Salle Loire",
        kind="meeting_room",
        space=campus["meeting"],
        capacity=8,
        price_member_cents=2000,
        price_non_member_cents=3500,
    )


@pytest.fixture
def big_room(campus, room_policy):
    return Resource.objects.create(
        code="B-0.03",
        name="Salle Maine",
        kind="meeting_room",
        space=campus["big_meeting"],
        capacity=20,
        price_member_cents=4000,
        price_non_member_cents=6000,
    )


@pytest.fixture
def auditorium(campus):
    policy = BookingPolicy.objects.create(
        name="Auditorium", approval_required=True, max_advance_days=365
    )
    return Resource.objects.create(
        code="AUDI",
        name="Auditorium",
        kind="auditorium",
        capacity=150,
        policy=policy,
        price_member_cents=10000,
        price_non_member_cents=15000,
    )
