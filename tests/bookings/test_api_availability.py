"""The booking API: what is free (resources for a window, free slots of a day, the resource
list, in a constant number of queries) and booking a slot."""

from datetime import datetime, time, timedelta

from django.utils import timezone

from bookings.engine import Slot, book
from bookings.models import Booking, Resource
from tests.bookings.conftest import NOW, PARIS, at


def test_availability_lists_the_free_resources_with_their_facts(
    as_bob, bob, room, big_room, auditorium
):
    room.companions.add(big_room)
    book(bob, Slot(auditorium, at(3, 10), at(3, 12)), now=NOW)  # pending: holds its slot
    response = as_bob.get(
        "/api/v1/availability", {"start": "2026-03-03T10:30", "end": "2026-03-03T11:30"}
    )
    assert response.status_code == 200
    found = {r["code"]: r for r in response.json()["items"]}
    assert set(found) == {"B-1.50", "B-0.03"}
    assert found["B-1.50"] | {"id": 0, "space_id": 0} == {
        "id": 0,
        "code": "B-1.50",
        "name": "Salle Loire",
        "kind": "meeting_room",
        "capacity": 8,
        "space_id": 0,
        "features": ["projector"],
        "price_per_hour_cents": 2000,
        "approval_required": False,
        "warm_up_minutes": 0,
        "cool_down_minutes": 0,
        "companions": ["B-0.03"],
        "is_active": True,
    }


def test_buffers_and_opening_hours_keep_a_resource_out_of_availability(
    as_bob, bob, room, big_room, room_policy
):
    room_policy.buffer_after_minutes = 30
    room_policy.save()
    book(bob, Slot(room, at(3, 9), at(3, 10)), now=NOW)
    codes = lambda start, end: {  # noqa: E731
        r["code"]
        for r in as_bob.get("/api/v1/availability", {"start": start, "end": end}).json()["items"]
    }
    assert codes("2026-03-03T10:15", "2026-03-03T11:00") == {"B-0.03"}  # in the buffer
    assert codes("2026-03-03T10:30", "2026-03-03T11:00") == {"B-1.50", "B-0.03"}
    assert codes("2026-03-03T20:00", "2026-03-03T21:00") == set()  # closed at 20:00


def test_free_slots_of_a_day_skip_the_bookings(as_bob, bob, room):
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    response = as_bob.get(f"/api/v1/resources/{room.pk}/free-slots", {"date": "2026-03-03"})
    assert response.json() == {
        "items": [
            {"start": "2026-03-03T08:00:00+01:00", "end": "2026-03-03T10:00:00+01:00"},
            {"start": "2026-03-03T11:00:00+01:00", "end": "2026-03-03T20:00:00+01:00"},
        ],
        "count": 2,
    }


def test_the_resource_list_and_detail_agree(as_charlie, room, big_room, auditorium):
    listed = as_charlie.get("/api/v1/resources").json()
    assert listed["count"] == 3
    detail = as_charlie.get(f"/api/v1/resources/{room.pk}").json()
    assert detail in listed["items"]
    assert detail["price_per_hour_cents"] == 3500  # non-member price for Globex


def test_availability_costs_the_same_queries_for_3_or_23_resources(
    as_bob, room, big_room, auditorium, django_assert_max_num_queries
):
    window = {"start": "2026-03-03T10:00", "end": "2026-03-03T11:00"}
    as_bob.get("/api/v1/availability", window)  # the token's last-use stamp is written once
    with django_assert_max_num_queries(14):
        assert as_bob.get("/api/v1/availability", window).json()["count"] == 3
    extra = [Resource(code=f"X{i}", name=f"Extra {i}", kind="meeting_room") for i in range(20)]
    Resource.objects.bulk_create(extra)
    room.companions.add(*Resource.objects.filter(code__startswith="X"))
    with django_assert_max_num_queries(14):
        assert as_bob.get("/api/v1/availability", window).json()["count"] == 23


def test_booking_through_the_api_answers_201_with_the_booking_then_409(as_bob, as_charlie, room):
    day = timezone.now().astimezone(PARIS).date() + timedelta(days=8)
    day += timedelta(days=(1 - day.weekday()) % 7)  # a Tuesday, the API books from today
    start = datetime.combine(day, time(10, 0), tzinfo=PARIS)
    body = {
        "resource_id": room.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
        "title": "Review",
    }
    response = as_bob.post("/api/v1/bookings", body, content_type="application/json")
    assert response.status_code == 201
    created = response.json()
    stored = Booking.objects.get(pk=created["id"])
    assert created["uid"] == str(stored.uid)
    assert created["resource"] == {
        "id": room.pk,
        "code": "B-1.50",
        "name": "Salle Loire",
        "kind": "meeting_room",
    }
    assert (created["person_name"], created["status"], created["price_cents"]) == (
        "Bob Test",
        "confirmed",
        2000,
    )
    assert created["start"] == start.isoformat()
    refused = as_charlie.post("/api/v1/bookings", body, content_type="application/json")
    assert refused.status_code == 409
    assert refused.json()["conflicts"][0]["booking_id"] == stored.pk


def test_a_resource_whose_companion_is_taken_is_not_listed_as_free(as_bob, charlie, room, big_room):
    room.companions.add(big_room)
    book(charlie, Slot(big_room, at(3, 10), at(3, 11)), now=NOW)
    response = as_bob.get(
        "/api/v1/availability", {"start": "2026-03-03T10:00", "end": "2026-03-03T11:00"}
    )
    assert response.json() == {"items": [], "count": 0}


def test_a_resource_without_any_policy_is_searched_with_the_built_in_one(as_bob, bob, room):
    """No policy of its own and none for its kind: the built-in policy (it has no primary
    key) applies, and the search must neither fail nor skip the resource."""
    desk = Resource.objects.create(code="D-1", name="Desk 1", kind="desk", capacity=1)
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    response = as_bob.get(
        "/api/v1/availability", {"start": "2026-03-03T10:00", "end": "2026-03-03T11:00"}
    )
    assert response.status_code == 200
    assert {r["code"] for r in response.json()["items"]} == {desk.code}
