"""Recurring bookings from "Book a room": the repetition is part of the search, each room's
button previews every time through the booking code itself (a dry run), then books all or
nothing or skipping conflicts."""

from datetime import timedelta
from unittest import mock

from bookings import engine, series
from bookings.engine import Slot, book
from bookings.models import Booking, BookingSeries
from tests.portal.conftest import signed_in, tomorrow


def weekly(**extra):
    day = tomorrow(10).date()
    return {
        "date": day.isoformat(),
        "start": "10:00",
        "end": "11:00",
        "capacity": "4",
        "title": "Weekly sync",
        "repeat": "weekly",
        "interval": "1",
        "ends": "count",
        "count": "3",
        **extra,
    }


def test_a_repeating_search_offers_to_check_every_time_instead_of_booking(bob, rooms):
    body = signed_in(bob).get("/book/", weekly()).content.decode()
    assert "every week, 3 times" in body
    assert 'name="action" value="preview"' in body and ">Book<" not in body
    assert '<details class="repeat" open>' in body


def test_the_preview_lists_every_time_with_the_conflict_and_books_nothing(bob, charlie, rooms):
    taken = book(charlie, Slot(rooms["loire"], tomorrow(10, days=8), tomorrow(11, days=8)))
    client = signed_in(bob)
    with mock.patch.object(series, "book_series", wraps=series.book_series) as spy:
        response = client.post(
            "/book/", {**weekly(), "resource": rooms["loire"].pk, "action": "preview"}
        )
    assert spy.call_args.kwargs["dry_run"] is True
    assert response.status_code == 200
    rows = response.context["preview"]["rows"]
    assert [r["free"] for r in rows] == [True, False, True]
    assert rows[1]["code"] == "conflict" and "B-1.50 is already booked from" in rows[1]["detail"]
    body = response.content.decode()
    assert "2 of 3 times can be booked." in body and "not bookable" in body
    assert "Notify me if it frees up" in body  # the waitlist, from the conflict
    assert 'value="skip" checked' in body and 'value="all"' in body
    assert 'value="Weekly sync"' in body and 'value="3"' in body  # the search is kept
    assert Booking.objects.exclude(pk=taken.pk).count() == 0
    assert not BookingSeries.objects.exists()


def test_skipping_conflicts_books_the_free_times(bob, charlie, rooms):
    book(charlie, Slot(rooms["loire"], tomorrow(10, days=8), tomorrow(11, days=8)))
    data = {**weekly(), "resource": rooms["loire"].pk, "action": "series", "mode": "skip"}
    with mock.patch.object(series, "book", wraps=engine.book) as spy:
        response = signed_in(bob).post("/book/", data, follow=True)
    assert spy.call_count == 3  # every occurrence through the one booking function
    mine = Booking.objects.filter(person=bob).order_by("start")
    assert [b.start for b in mine] == [tomorrow(10), tomorrow(10, days=15)]
    assert mine[0].series.rrule == "FREQ=WEEKLY;COUNT=3"
    body = response.content.decode()
    assert "Booked 2 times: Salle Loire on" in body and "Not booked on" in body
    assert "Part of a recurring booking" in body


def test_all_or_nothing_books_nothing_and_shows_the_preview_again(bob, charlie, rooms):
    book(charlie, Slot(rooms["loire"], tomorrow(10, days=8), tomorrow(11, days=8)))
    data = {**weekly(), "resource": rooms["loire"].pk, "action": "series", "mode": "all"}
    response = signed_in(bob).post("/book/", data)
    assert response.status_code == 409
    body = response.content.decode()
    assert "1 of the occurrences cannot be booked; nothing was booked." in body
    assert response.context["preview"]["refused"] == 1
    assert not Booking.objects.filter(person=bob).exists()


def test_a_free_series_books_every_time(bob, rooms):
    data = {**weekly(ends="until", count="", until=(tomorrow(10) + timedelta(days=14)).date())}
    response = signed_in(bob).post(
        "/book/", {**data, "resource": rooms["maine"].pk, "action": "series"}, follow=True
    )
    assert Booking.objects.filter(person=bob, resource=rooms["maine"]).count() == 3
    assert "Booked 3 times" in response.content.decode()


def test_the_repetition_is_checked_next_to_its_fields(bob, rooms):
    client = signed_in(bob)
    body = client.get("/book/", weekly(count="")).content.decode()
    assert "Say how many times." in body
    assert 'aria-describedby="id_count_error"' in body and 'value="Weekly sync"' in body
    before = (tomorrow(10) - timedelta(days=1)).date().isoformat()
    body = client.get("/book/", weekly(ends="until", until=before)).content.decode()
    assert "The last date cannot be before the first." in body
    body = client.get("/book/", weekly(interval="99")).content.decode()
    assert 'id="id_interval_error"' in body
