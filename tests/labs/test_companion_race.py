"""Companion booking is atomic under a race (PostgreSQL): racers for the EMC control room
alone and racers for the chamber (which books the control room with it) all want one slot.
Exactly one wins; a chamber booking never exists without its control room."""

import threading

import pytest
from django.db import connection

from bookings.engine import Slot, book
from bookings.models import Booking
from common.errors import DomainError
from tests.bookings.conftest import NOW, at
from tests.labs.conftest import qualify

RACERS = 16


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_companion_booking_is_all_or_nothing_under_a_race(bob, alice, chamber, control_room):
    qualify(bob, chamber)
    qualify(alice, chamber)
    barrier = threading.Barrier(RACERS)
    outcomes = []

    def race(i):
        try:
            person = bob if i % 2 else alice
            resource = chamber.resource if i % 2 else control_room
            barrier.wait()
            try:
                book(person, Slot(resource, at(3, 10), at(3, 12)), now=NOW, notify=False)
                outcomes.append("booked")
            except DomainError as e:
                outcomes.append(e.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert outcomes.count("booked") == 1, outcomes
    assert set(outcomes) <= {"booked", "conflict"}, outcomes
    chamber_bookings = Booking.objects.filter(resource=chamber.resource)
    for b in chamber_bookings:
        group = Booking.objects.filter(group=b.group)
        assert sorted(group.values_list("resource_id", flat=True)) == sorted(
            [chamber.resource_id, control_room.pk]
        )
    for resource_id in (chamber.resource_id, control_room.pk):
        rows = list(
            Booking.objects.filter(resource_id=resource_id, status="confirmed").values_list(
                "blocked_start", "blocked_end"
            )
        )
        assert len(rows) <= 1
    assert Booking.objects.filter(resource=control_room).count() == 1
