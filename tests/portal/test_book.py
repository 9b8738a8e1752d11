"""Book a room: search free rooms, book in one click through the engine, readable refusals,
and a form that keeps what the person typed."""

from datetime import timedelta
from unittest import mock

from django.utils import timezone

from bookings import engine
from bookings.models import Booking
from tests.portal.conftest import signed_in, tomorrow


def search(**extra):
    day = tomorrow(10).date().isoformat()
    query = {"date": day, "start": "10:00", "end": "11:00", "capacity": "6", **extra}
    return query


def free_rooms(response) -> list[str]:
    return [r.code for r in response.context["free"]]


def test_the_page_opens_on_an_empty_search_for_today(bob, rooms):
    response = signed_in(bob).get("/book/")
    assert response.status_code == 200
    assert response.context["free"] is None
    body = response.content.decode()
    assert f'value="{timezone.localdate().isoformat()}"' in body
    assert '<label for="id_date">' in body and '<label for="id_capacity">' in body


def test_a_search_lists_the_free_rooms_that_fit(bob, rooms, bobs_booking):
    client = signed_in(bob)
    assert free_rooms(client.get("/book/", search())) == ["B-0.03"]
    later = search(start="14:00", end="15:00")
    assert free_rooms(client.get("/book/", later)) == ["B-1.50", "B-0.03"]  # best fit first
    assert free_rooms(client.get("/book/", {**later, "capacity": "10"})) == ["B-0.03"]
    assert free_rooms(client.get("/book/", {**later, "kind": "auditorium"})) == []
    assert free_rooms(client.get("/book/", {**later, "feature": "projector"})) == [
        "B-1.50",
        "B-0.03",
    ]


def test_each_free_room_has_a_book_button_carrying_the_search(bob, rooms):
    body = signed_in(bob).get("/book/", search(feature="projector")).content.decode()
    assert body.count('name="resource"') == 2
    assert 'name="csrfmiddlewaretoken"' in body
    assert '<input type="hidden" name="feature" value="projector">' in body


def test_booking_from_the_page_goes_through_the_engine(bob, rooms):
    client = signed_in(bob)
    data = search(title="Sprint review", resource=rooms["loire"].pk)
    with mock.patch.object(engine, "book", wraps=engine.book) as spy:
        response = client.post("/book/", data, follow=True)
    assert spy.call_count == 1
    booking = Booking.objects.get()
    assert (booking.person, booking.resource, booking.status) == (bob, rooms["loire"], "confirmed")
    assert (booking.start, booking.end) == (tomorrow(10), tomorrow(11))
    assert booking.attendees == 6 and booking.title == "Sprint review"
    assert response.redirect_chain[-1][0] == f"/bookings/#booking-{booking.pk}"
    body = response.content.decode()
    assert "Booked: Salle Loire on" in body and f'id="booking-{booking.pk}"' in body


def test_a_room_needing_approval_is_requested(bob, auditorium, always_open):
    data = search(resource=auditorium.pk)
    response = signed_in(bob).post("/book/", data, follow=True)
    assert Booking.objects.get().status == "pending"
    assert "awaits staff approval" in response.content.decode()


def test_a_conflict_shows_the_taken_slot_and_keeps_the_form(charlie, rooms, bobs_booking):
    data = search(start="10:30", end="11:30", title="Our demo", feature="projector")
    response = signed_in(charlie).post("/book/", {**data, "resource": rooms["loire"].pk})
    assert response.status_code == 409
    body = response.content.decode()
    assert "B-1.50 is already booked from" in body
    assert "Taken slots:" in body and "10:00–11:00" in body
    assert "Salle Loire is next free on" in body and "from 11:00 to 24:00" in body
    assert "Bob" not in body  # who booked is not disclosed to another tenant
    for kept in ['value="10:30"', 'value="11:30"', 'value="6"', 'value="Our demo"']:
        assert kept in body
    assert 'value="projector"' in body and "checked" in body
    assert free_rooms(response) == ["B-0.03"]  # the alternatives, listed again
    assert Booking.objects.count() == 1


def test_a_policy_refusal_is_explained(bob, rooms):
    data = search(start="10:05", end="11:00", resource=rooms["loire"].pk)
    response = signed_in(bob).post("/book/", data)
    assert response.status_code == 422
    assert "Bookings start and end on 15-minute steps." in response.content.decode()
    assert not Booking.objects.exists()


def test_an_invalid_form_shows_its_errors_and_keeps_the_values(bob, rooms):
    client = signed_in(bob)
    response = client.get("/book/", search(start="11:00", end="10:00", title="Kept"))
    body = response.content.decode()
    assert response.status_code == 200 and response.context["free"] is None
    assert "The end time must be after the start time." in body
    assert 'aria-invalid="true"' in body and 'value="Kept"' in body
    posted = client.post("/book/", search(capacity="0", resource=rooms["loire"].pk))
    assert posted.status_code == 422 and not Booking.objects.exists()


def test_a_vanished_room_is_a_readable_refusal(bob, rooms):
    response = signed_in(bob).post("/book/", search(resource=999999))
    assert response.status_code == 422
    assert "cannot be booked any more" in response.content.decode()


def test_now_fills_in_the_next_quarter_hour_for_an_hour(bob, rooms):
    response = signed_in(bob).get("/book/", {"now": "1", "capacity": "2"})
    form = response.context["form"]
    assert form.is_valid(), form.errors
    start = form.cleaned_data["start_at"]
    assert start.minute % 15 == 0 and timedelta(0) <= start - timezone.now() < timedelta(minutes=15)
    assert form.cleaned_data["capacity"] == 2


def test_booking_needs_the_csrf_token(bob, rooms):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    response = client.post("/book/", search(resource=rooms["loire"].pk))
    assert response.status_code == 403 and not Booking.objects.exists()


def test_the_day_grid_marks_taken_slots_in_words(bob, rooms, bobs_booking, campus):
    day = tomorrow(10).date().isoformat()
    response = signed_in(bob).get("/book/day/", {"date": day, "floor": campus["first"].pk})
    assert response.status_code == 200
    row = next(r for r in response.context["rows"] if r["resource"].code == "B-1.50")
    taken = [f"{c['start']:%H:%M}" for c in row["cells"] if c["state"] == "taken"]
    assert taken == ["10:00", "10:30"]
    assert '<td class="taken">taken</td>' in response.content.decode()


def test_the_day_grid_of_another_site_s_floor_is_in_that_site_s_local_time(bob, tokyo):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bookings.models import BookingPolicy, Resource

    eight_to_six = BookingPolicy.objects.create(
        name="Eight to six", opening_hours=[[d, "08:00", "18:00"] for d in range(1, 8)]
    )
    salon = Resource.objects.create(
        code="T-0.50",
        name="Salon",
        kind="meeting_room",
        space=tokyo["meeting"],
        policy=eight_to_six,
    )
    start = datetime(2026, 3, 3, 9, tzinfo=ZoneInfo("Asia/Tokyo"))  # 01:00 in Paris
    Booking.objects.create(
        resource=salon,
        person=bob,
        start=start,
        end=start + timedelta(hours=1),
        blocked_start=start,
        blocked_end=start + timedelta(hours=1),
        status="confirmed",
    )
    response = signed_in(bob).get("/book/day/", {"date": "2026-03-03", "floor": tokyo["ground"].pk})
    [row] = response.context["rows"]
    states = {f"{c['start']:%H:%M}": c["state"] for c in row["cells"]}
    assert (states["08:30"], states["09:00"], states["09:30"]) == ("free", "taken", "taken")
    assert (states["17:30"], states["18:00"]) == ("free", "closed")
    assert '<th scope="col">09:00</th>' in response.content.decode()  # Tokyo's hours
