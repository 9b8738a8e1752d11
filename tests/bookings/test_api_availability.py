"""The booking API: what is free (resources for a window, free slots of a day, the resource
list, in a constant number of queries) and booking a slot."""

import dataclasses
from datetime import datetime, time, timedelta

from django.utils import timezone

from bookings import catalogue
from bookings.engine import Slot, book
from bookings.models import Booking, Closure, Resource
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
    assert found["B-1.50"].pop("policy")["opening_hours"][0] == {
        "weekday": 1,
        "opens": "08:00",
        "closes": "20:00",
    }
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


def test_a_resource_answers_its_policy_so_that_a_client_offers_only_bookable_slots(
    as_bob, room, big_room, room_policy
):
    room_policy.min_notice_minutes = 60
    room_policy.buffer_before_minutes = 10
    room_policy.buffer_after_minutes = 5
    room_policy.max_advance_days = 30
    room_policy.save()
    today = timezone.localdate()
    day = lambda n: today + timedelta(days=n)  # noqa: E731
    Closure.objects.create(name="Inventory", start_date=day(3), end_date=day(4))
    Closure.objects.create(
        name="Holiday", start_date=day(5), end_date=day(5), is_public_holiday=True
    )
    Closure.objects.create(name="Long ago", start_date=day(-10), end_date=day(-9))
    Closure.objects.create(name="Next year", start_date=day(40), end_date=day(41))
    policy = as_bob.get(f"/api/v1/resources/{room.pk}").json()["policy"]
    assert policy == {
        "opening_hours": [{"weekday": d, "opens": "08:00", "closes": "20:00"} for d in range(1, 6)],
        "closures": [
            {"name": "Inventory", "first_day": day(3).isoformat(), "last_day": day(4).isoformat()},
            {"name": "Holiday", "first_day": day(5).isoformat(), "last_day": day(5).isoformat()},
        ],
        "slot_minutes": 15,
        "min_duration_minutes": 30,
        "max_duration_minutes": 480,
        "min_notice_minutes": 60,
        "max_advance_days": 30,
        "buffer_before_minutes": 10,
        "buffer_after_minutes": 5,
        "who_may_book": "tenant_members",
    }
    listed = {r["code"]: r for r in as_bob.get("/api/v1/resources").json()["items"]}
    assert listed[room.code]["policy"] == policy
    window = {"start": f"{day(1)}T10:00", "end": f"{day(1)}T11:00"}
    free = as_bob.get("/api/v1/availability", window).json()["items"]
    assert all(r["policy"] == policy for r in free)  # both rooms have the rooms' policy

    room_policy.closed_on_public_holidays = False
    room_policy.save()
    policy = as_bob.get(f"/api/v1/resources/{room.pk}").json()["policy"]
    assert [c["name"] for c in policy["closures"]] == ["Inventory"]


def test_the_closures_a_resource_answers_start_from_the_day_it_is_asked(room):
    catalogue.current()
    catalogue._cached = dataclasses.replace(
        catalogue._cached, day=catalogue._cached.day - timedelta(days=1)
    )
    assert catalogue.current().day == timezone.localdate()
