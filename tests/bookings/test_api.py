"""The booking API: status codes, conflicts as 409 with slots, validation as 422, and every
endpoint scoped to the caller's tenant (another tenant's booking is a 404)."""

import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from bookings.engine import Slot, book
from bookings.models import Booking, BookingPolicy
from tests.bookings.conftest import PARIS

JSON = "application/json"


@pytest.fixture
def always_open(room_policy):
    """The API uses the real clock: open the rooms every day so tests run any day."""
    room_policy.opening_hours = []
    room_policy.save()
    return room_policy


def tomorrow(hour, minute=0, days=1):
    day = timezone.localtime().date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def body(resource, start, end, **extra):
    return {"resource_id": resource.pk, "start": start.isoformat(), "end": end.isoformat(), **extra}


@pytest.fixture
def bobs_booking(bob, room, always_open):
    return book(bob, Slot(room, tomorrow(10), tomorrow(11), "Bob's review"))


def test_booking_a_free_slot_answers_201(as_bob, room, always_open):
    response = as_bob.post(
        "/api/v1/bookings",
        body(room, tomorrow(10), tomorrow(11), title="Review"),
        content_type=JSON,
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "confirmed" and data["price_cents"] == 2000
    assert data["resource"]["code"] == "B-1.50"


def test_naive_times_are_read_as_paris_time(as_bob, room, always_open):
    naive = {
        "resource_id": room.pk,
        "start": tomorrow(10).strftime("%Y-%m-%dT%H:%M"),
        "end": tomorrow(11).strftime("%Y-%m-%dT%H:%M"),
    }
    response = as_bob.post("/api/v1/bookings", naive, content_type=JSON)
    assert response.status_code == 201, response.content
    assert Booking.objects.get().start == tomorrow(10)


def test_a_taken_slot_answers_409_with_the_conflicting_slots(as_charlie, bobs_booking, room):
    response = as_charlie.post(
        "/api/v1/bookings", body(room, tomorrow(10, 30), tomorrow(11, 30)), content_type=JSON
    )
    assert response.status_code == 409
    data = response.json()
    assert data["code"] == "conflict"
    assert data["conflicts"][0]["resource"] == "B-1.50"
    assert "Bob" not in str(data)  # who booked is not disclosed to another tenant


@pytest.mark.parametrize(
    "change",
    [
        {"resource_id": 999999},
        {"resource_id": "room"},
        {"start": "tomorrow"},
        {"end": "2020-01-01T10:00:00+01:00"},
        {"attendees": 0},
        {"title": "x" * 161},
        {"colour": "blue"},
        {"recurrence": {"freq": "hourly"}},
        {"recurrence": {"freq": "weekly", "count": 0}},
        {"recurrence": {"freq": "weekly", "weekdays": [8]}},
        {"recurrence": {"freq": "weekly", "count": 3, "until": "2030-01-01"}},
    ],
)
def test_bad_booking_input_answers_422(as_bob, room, always_open, change):
    payload = body(room, tomorrow(10), tomorrow(11))
    payload.update(change)
    response = as_bob.post("/api/v1/bookings", payload, content_type=JSON)
    assert response.status_code == 422, response.content
    assert response.json()["detail"]
    assert not Booking.objects.exists()


def test_a_policy_refusal_answers_422_with_its_code(as_bob, room, always_open):
    response = as_bob.post(
        "/api/v1/bookings", body(room, tomorrow(10, 5), tomorrow(11)), content_type=JSON
    )
    assert response.status_code == 422
    assert response.json()["code"] == "not_aligned"


def test_a_recurring_booking_reports_each_occurrence(as_bob, room, always_open):
    payload = body(room, tomorrow(9), tomorrow(10), recurrence={"freq": "weekly", "count": 3})
    response = as_bob.post("/api/v1/bookings", payload, content_type=JSON)
    assert response.status_code == 201, response.content
    data = response.json()
    assert len(data["booked"]) == 3 and data["refused"] == []
    assert data["rrule"] == "FREQ=WEEKLY;COUNT=3"


def test_a_series_answer_says_which_occurrences_are_deferred_and_why(
    as_bob, room, always_open, room_policy
):
    room_policy.max_advance_days = 20
    room_policy.save()
    payload = body(room, tomorrow(9), tomorrow(10), recurrence={"freq": "weekly", "count": 5})
    response = as_bob.post("/api/v1/bookings", payload, content_type=JSON)
    assert response.status_code == 201, response.content
    data = response.json()
    assert len(data["booked"]) == 3 and data["refused"] == []  # days 1, 8 and 15
    assert [d["start"] for d in data["deferred"]] == [
        tomorrow(9, days=22).isoformat(),
        tomorrow(9, days=29).isoformat(),
    ]
    assert "20 days" in data["deferred_reason"]
    assert datetime.fromisoformat(data["horizon"]) < tomorrow(9, days=22)


@pytest.mark.parametrize(
    "recurrence, code",
    [
        ({"freq": "weekly", "count": 3}, "too_far_ahead"),  # the first beyond the horizon
        ({"freq": "daily", "until": "2020-01-01"}, "invalid"),  # no occurrence at all
    ],
)
def test_a_series_with_nothing_to_book_or_refuse_is_no_series_conflict(
    as_bob, room, always_open, recurrence, code
):
    far = tomorrow(9, days=400) if code == "too_far_ahead" else tomorrow(9)
    payload = body(room, far, far + timedelta(hours=1), recurrence=recurrence)
    response = as_bob.post("/api/v1/bookings", payload, content_type=JSON)
    assert (response.status_code, response.json()["code"]) == (422, code), response.content
    assert not Booking.objects.exists()


def test_members_see_their_tenants_bookings_and_not_others(as_alice, as_charlie, bobs_booking):
    assert [b["id"] for b in as_alice.get("/api/v1/bookings").json()["items"]] == [bobs_booking.pk]
    assert as_charlie.get("/api/v1/bookings").json()["items"] == []
    assert as_charlie.get(f"/api/v1/bookings/{bobs_booking.pk}").status_code == 404
    assert as_alice.get(f"/api/v1/bookings/{bobs_booking.pk}").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("patch", "", {"title": "mine now"}),
        ("post", "/cancel", {}),
        ("post", "/check-in", None),
    ],
)
def test_another_tenant_cannot_touch_a_booking(as_charlie, bobs_booking, method, path, payload):
    client_call = getattr(as_charlie, method)
    kwargs = {"content_type": JSON} if payload is not None else {}
    args = (payload,) if payload is not None else ()
    response = client_call(f"/api/v1/bookings/{bobs_booking.pk}{path}", *args, **kwargs)
    assert response.status_code == 404
    bobs_booking.refresh_from_db()
    assert bobs_booking.status == "confirmed" and bobs_booking.title == "Bob's review"


def test_a_tenant_admin_may_cancel_a_colleagues_booking(as_alice, bobs_booking):
    response = as_alice.post(f"/api/v1/bookings/{bobs_booking.pk}/cancel", {}, content_type=JSON)
    assert response.status_code == 200, response.content
    assert response.json()[0]["status"] == "cancelled"


def test_a_colleague_who_is_not_admin_cannot(as_bob, alice, room, always_open):
    alices = book(alice, Slot(room, tomorrow(14), tomorrow(15)))
    response = as_bob.post(f"/api/v1/bookings/{alices.pk}/cancel", {}, content_type=JSON)
    assert response.status_code == 403


def test_cancelling_twice_answers_409(as_bob, bobs_booking):
    url = f"/api/v1/bookings/{bobs_booking.pk}/cancel"
    assert as_bob.post(url, content_type=JSON).status_code == 200
    response = as_bob.post(url, content_type=JSON)
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"


def test_moving_a_booking_through_patch(as_bob, bobs_booking):
    response = as_bob.patch(
        f"/api/v1/bookings/{bobs_booking.pk}",
        {"start": tomorrow(15).isoformat(), "end": tomorrow(16).isoformat()},
        content_type=JSON,
    )
    assert response.status_code == 200, response.content
    bobs_booking.refresh_from_db()
    assert bobs_booking.start == tomorrow(15)


def test_approval_is_for_staff(as_bob, as_sam, bob, auditorium):
    request = book(bob, Slot(auditorium, tomorrow(14), tomorrow(16)))
    assert as_bob.post(f"/api/v1/bookings/{request.pk}/approve").status_code == 403
    response = as_sam.post(f"/api/v1/bookings/{request.pk}/approve")
    assert response.status_code == 200 and response.json()["status"] == "confirmed"


def test_lab_technicians_do_not_approve_rooms(as_tina, bob, auditorium):
    request = book(bob, Slot(auditorium, tomorrow(14), tomorrow(16)))
    response = as_tina.post(f"/api/v1/bookings/{request.pk}/reject", content_type=JSON)
    assert response.status_code == 403


def test_check_in_before_the_window_answers_409(as_bob, bobs_booking):
    response = as_bob.post(f"/api/v1/bookings/{bobs_booking.pk}/check-in")
    assert response.status_code == 409 and response.json()["code"] == "check_in_closed"


def test_availability_lists_free_rooms_with_filters(as_bob, room, big_room, bobs_booking):
    def free(query):
        response = as_bob.get(f"/api/v1/availability?{query}")
        assert response.status_code == 200, response.content
        return [r["code"] for r in response.json()["items"]]

    window = f"start={tomorrow(10).isoformat()}&end={tomorrow(11).isoformat()}".replace("+", "%2B")
    assert free(window) == ["B-0.03"]
    later = f"start={tomorrow(12).isoformat()}&end={tomorrow(13).isoformat()}".replace("+", "%2B")
    assert free(later) == ["B-0.03", "B-1.50"]
    assert free(later + "&min_capacity=10") == ["B-0.03"]
    assert free(later + "&feature=projector&kind=meeting_room") == ["B-0.03", "B-1.50"]
    assert free(later + "&feature=esd-floor") == []


@pytest.mark.parametrize(
    "query",
    [
        "start=2026-01-01T10:00&end=2026-01-01T09:00",
        "start=soon&end=later",
        "start=2026-01-01T10:00&end=2026-03-01T10:00",
        "start=2026-01-01T10:00",
    ],
)
def test_bad_availability_queries_answer_422(as_bob, room, query):
    assert as_bob.get(f"/api/v1/availability?{query}").status_code == 422


def test_free_slots_of_a_day(as_bob, room, bobs_booking, always_open):
    day = tomorrow(0).date().isoformat()
    response = as_bob.get(f"/api/v1/resources/{room.pk}/free-slots?date={day}")
    assert response.status_code == 200
    slots = [(s["start"][11:16], s["end"][11:16]) for s in response.json()["items"]]
    assert slots == [("00:00", "10:00"), ("11:00", "00:00")]
    assert as_bob.get(f"/api/v1/resources/{room.pk}/free-slots?date=someday").status_code == 422


def test_waitlist_through_the_api(as_charlie, bobs_booking, room):
    payload = body(room, tomorrow(10), tomorrow(11))
    payload.pop("title", None)
    response = as_charlie.post("/api/v1/waitlist", payload, content_type=JSON)
    assert response.status_code == 201, response.content
    entry_id = response.json()["id"]
    assert as_charlie.get("/api/v1/waitlist").json()["items"][0]["state"] == "waiting"
    assert as_charlie.post(f"/api/v1/waitlist/{entry_id}/accept").status_code == 422
    assert as_charlie.post(f"/api/v1/waitlist/{entry_id}/cancel").json()["state"] == "cancelled"


def test_nobody_accepts_someone_elses_waitlist_entry(as_alice, charlie, bobs_booking, room):
    from bookings import waitlist

    entry = waitlist.join(charlie, room, tomorrow(10), tomorrow(11))
    assert as_alice.post(f"/api/v1/waitlist/{entry.pk}/accept").status_code == 404


def test_calendar_feed_urls_are_given_and_can_be_reset(as_bob, room):
    first = as_bob.get("/api/v1/me/calendar").json()
    assert first["person_feed"].endswith(".ics")
    assert "B-1.50" in first["resource_feeds"]
    second = as_bob.post("/api/v1/me/calendar/reset").json()
    assert second["person_feed"] != first["person_feed"]


def test_resources_are_listed_with_the_callers_price(as_bob, as_charlie, room):
    assert as_bob.get(f"/api/v1/resources/{room.pk}").json()["price_per_hour_cents"] == 2000
    assert as_charlie.get(f"/api/v1/resources/{room.pk}").json()["price_per_hour_cents"] == 3500
    assert as_bob.get("/api/v1/resources?kind=teleporter").status_code == 422


def test_staff_see_all_bookings_and_filter_them(as_sam, bobs_booking, charlie, big_room):
    book(charlie, Slot(big_room, tomorrow(10), tomorrow(11)))
    items = as_sam.get("/api/v1/bookings").json()["items"]
    assert len(items) == 2
    mine = as_sam.get(f"/api/v1/bookings?resource={big_room.pk}").json()["items"]
    assert [b["resource"]["code"] for b in mine] == ["B-0.03"]
    assert as_sam.get("/api/v1/bookings?status=pending").json()["items"] == []
    assert as_sam.get("/api/v1/bookings?status=lost").status_code == 422


def test_staff_only_policy_refuses_members_with_403(as_bob, room):
    policy = BookingPolicy.objects.create(name="Staff", who_may_book="staff")
    room.policy = policy
    room.save()
    response = as_bob.post(
        "/api/v1/bookings", body(room, tomorrow(10), tomorrow(11)), content_type=JSON
    )
    assert response.status_code == 403 and response.json()["code"] == "not_authorized"


# ------------------------------------------------------------------ strict types, sane dates

RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


def assert_invalid(response, field: str):
    """A 422 in the API's format that names the field."""
    assert response.status_code == 422, response.content
    data = response.json()
    assert data["code"] == "invalid" and data["detail"], data
    assert field in [e["field"] for e in data["errors"]], data
    return data


@pytest.mark.parametrize(
    "change, field",
    [
        ({"start": "1970-01-01T00:00:00+01:00", "end": "2000-01-01T00:00:00+01:00"}, "start"),
        ({"start": "0458-06-01T10:00", "end": "0458-06-01T11:00"}, "start"),
        ({"end": "2101-01-01T00:00"}, "end"),
        ({"recurrence": {"freq": "weekly", "until": "2250-01-01"}}, "recurrence.until"),
    ],
)
def test_dates_outside_the_window_are_a_422_even_for_staff(as_sam, room, change, field):
    payload = body(room, tomorrow(10), tomorrow(11))
    payload.update(change)
    data = assert_invalid(as_sam.post("/api/v1/bookings", payload, content_type=JSON), field)
    assert "2000-01-01" in data["detail"] and "2100-12-31" in data["detail"]
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"resource_id": True}, "resource_id"),
        ({"resource_id": 1.0}, "resource_id"),
        ({"resource_id": "1"}, "resource_id"),
        ({"start": 1797591600}, "start"),
        ({"start": "1797591600"}, "start"),
        ({"start": 0.5}, "start"),
        ({"start": "2030-01-07"}, "start"),
        ({"start": "2030-01-07T10:00:00+00:09:21"}, "start"),
        ({"attendees": True}, "attendees"),
        ({"attendees": 2.0}, "attendees"),
        ({"recurrence": {"freq": "weekly", "count": 2, "skip_conflicts": 0}}, "recurrence"),
        ({"recurrence": {"freq": "weekly", "count": True}}, "recurrence.count"),
        ({"recurrence": {"freq": "weekly", "count": 2, "weekdays": [True]}}, "recurrence"),
    ],
)
def test_loose_types_are_a_422_not_a_booking(as_sam, room, always_open, change, field):
    payload = body(room, tomorrow(10), tomorrow(11))
    payload.update(change)
    response = as_sam.post("/api/v1/bookings", payload, content_type=JSON)
    assert response.status_code == 422, response.content
    data = response.json()
    assert data["code"] == "invalid"
    assert any(e["field"].startswith(field) for e in data["errors"]), data
    assert not Booking.objects.exists()


def test_a_strict_body_still_books(as_sam, room, always_open):
    payload = body(room, tomorrow(10), tomorrow(11), attendees=2)
    payload["recurrence"] = {"freq": "weekly", "count": 2, "weekdays": [1], "skip_conflicts": True}
    response = as_sam.post("/api/v1/bookings", payload, content_type=JSON)
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "query, field",
    [
        ("to=0.5", "to"),
        ("from=1797591600", "from"),
        ("from=2030-01-07", "from"),
        ("from=1900-01-01T00:00", "from"),
        ("to=2200-01-01T00:00Z", "to"),
        ("resource=1.0", "resource"),
        ("resource=true", "resource"),
        ("tenant=1_0", "tenant"),
        ("mine=2", "mine"),
        ("mine=yes", "mine"),
    ],
)
def test_loose_or_out_of_window_query_parameters_are_a_422(as_bob, query, field):
    assert_invalid(as_bob.get(f"/api/v1/bookings?{query}"), field)


def test_strict_query_parameters_still_filter(as_bob, bobs_booking, room):
    since = tomorrow(9).isoformat().replace("+", "%2B")
    found = as_bob.get(f"/api/v1/bookings?mine=true&resource={room.pk}&from={since}")
    assert found.status_code == 200, found.content
    assert [b["id"] for b in found.json()["items"]] == [bobs_booking.pk]


@pytest.mark.parametrize(
    "query, field",
    [
        ("start=1797591600&end=1797595200", "start"),
        ("start=1850-01-01T10:00&end=1850-01-01T11:00", "start"),
    ],
)
def test_availability_takes_only_rfc3339_times_in_the_window(as_bob, room, query, field):
    assert_invalid(as_bob.get(f"/api/v1/availability?{query}"), field)


@pytest.mark.parametrize("day", ["1800-01-01", "20300107", "0", "2030-01-07T00:00"])
def test_free_slots_take_only_a_date_in_the_window(as_bob, room, day):
    assert_invalid(as_bob.get(f"/api/v1/resources/{room.pk}/free-slots?date={day}"), "date")


def test_a_booking_from_before_1911_is_answered_with_an_rfc3339_offset(as_sam, room, bob):
    # Paris' local mean time (+00:09:21) applied before 1911: stored through the back door,
    # a booking of then must still be answered with an offset RFC 3339 can write.
    start = datetime(1900, 6, 1, 10, 0, tzinfo=PARIS)
    old = Booking.objects.create(
        resource=room,
        person=bob,
        title="Exposition universelle",
        start=start,
        end=start + timedelta(hours=1),
        blocked_start=start,
        blocked_end=start + timedelta(hours=1),
        status="confirmed",
        created_at=start,
    )
    data = as_sam.get(f"/api/v1/bookings/{old.pk}").json()
    for name in ("start", "end", "created_at"):
        assert re.match(RFC3339, data[name]), (name, data[name])
        assert datetime.fromisoformat(data[name]) == start + (name == "end") * timedelta(hours=1)
