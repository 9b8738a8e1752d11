"""The in-memory catalogue (bookings.catalogue): answers from memory while nothing changed,
and sees every change, whatever wrote it, at the next request."""

from datetime import date

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from bookings import catalogue
from bookings.models import BookingPolicy, Closure, Resource
from campus.models import Feature

WINDOW = {"start": "2026-03-03T10:00", "end": "2026-03-03T11:00"}


def free(client, **filters) -> dict:
    response = client.get("/api/v1/availability", WINDOW | filters)
    assert response.status_code == 200
    return {r["code"]: r for r in response.json()["items"]}


def test_an_unchanged_catalogue_costs_one_query(room, big_room):
    catalogue.current()
    with CaptureQueriesContext(connection) as queries:
        again = catalogue.current()
    assert len(queries) == 1
    assert [e.code for e in again.active] == ["B-0.03", "B-1.50"]


def test_every_kind_of_write_is_seen_by_the_next_request(as_bob, room, big_room, room_policy):
    assert set(free(as_bob)) == {"B-1.50", "B-0.03"}
    # A queryset update (no save(), no signal).
    Resource.objects.filter(pk=big_room.pk).update(is_active=False)
    assert set(free(as_bob)) == {"B-1.50"}
    # Raw SQL on the policies.
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE bookings_bookingpolicy SET approval_required = %s WHERE id = %s",
            [True, room_policy.pk],
        )
    assert free(as_bob)["B-1.50"]["approval_required"] is True
    # A feature added to the room's space, then searched for.
    visio = Feature.objects.create(code="visio", name="Visio")
    assert free(as_bob, feature="visio") == {}
    room.space.features.add(visio)
    assert set(free(as_bob, feature="visio")) == {"B-1.50"}
    # A closure of the day.
    Closure.objects.create(name="Works", start_date=date(2026, 3, 3), end_date=date(2026, 3, 3))
    assert free(as_bob) == {}


def test_a_rolled_back_change_is_not_served_afterwards(as_bob, room):
    with pytest.raises(RuntimeError), transaction.atomic():
        Resource.objects.filter(pk=room.pk).update(name="Renamed")
        BookingPolicy.objects.update(approval_required=True)
        seen = free(as_bob)["B-1.50"]  # cached while the change was not committed
        assert (seen["name"], seen["approval_required"]) == ("Renamed", True)
        raise RuntimeError("rolled back")
    seen = free(as_bob)["B-1.50"]
    assert (seen["name"], seen["approval_required"]) == ("Salle Loire", False)


def test_availability_answers_in_four_queries_whatever_the_number_of_resources(
    as_bob, room, big_room, auditorium, django_assert_num_queries
):
    free(as_bob)  # loads the catalogue, stamps the token
    # The token, the catalogue's version, the bookings in the window, the companions' ones.
    room.companions.add(big_room)
    free(as_bob)
    with django_assert_num_queries(4):
        assert set(free(as_bob)) == {"B-1.50", "B-0.03", "AUDI"}
    Resource.objects.bulk_create(
        Resource(code=f"X{i}", name=f"Extra {i}", kind="meeting_room") for i in range(20)
    )
    free(as_bob)
    with django_assert_num_queries(4):
        assert len(free(as_bob)) == 23


def test_every_table_the_catalogue_reads_has_its_version_trigger(db):
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname LIKE %s",
                ["%_catalogue"],
            )
        else:
            cur.execute(
                "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
                ["%_catalogue_%"],
            )
        guarded = {row[0] for row in cur.fetchall()}
    assert guarded == set(catalogue.TABLES)
