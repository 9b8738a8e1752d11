"""The portal's pages, on the shared cast and the booking tests' rooms.

The portal runs on the real clock, like the API tests: rooms open every day, and bookings
are made for tomorrow.
"""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from bookings.engine import Slot, book
from tests.bookings.conftest import PARIS, auditorium, big_room, room, room_policy  # noqa: F401


def tomorrow(hour, minute=0, days=1):
    day = timezone.localtime().date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def signed_in(person) -> Client:
    client = Client()
    client.force_login(person)
    return client


@pytest.fixture
def always_open(room_policy):  # noqa: F811
    """The portal uses the real clock: open the rooms every day so tests run any day."""
    room_policy.opening_hours = []
    room_policy.save()
    return room_policy


@pytest.fixture
def rooms(room, big_room, always_open):  # noqa: F811
    return {"loire": room, "maine": big_room}


@pytest.fixture
def bobs_booking(bob, rooms):
    return book(bob, Slot(rooms["loire"], tomorrow(10), tomorrow(11), "Bob's review"))
