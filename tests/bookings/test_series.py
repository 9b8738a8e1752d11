"""Recurring series: expanded in Paris time across DST, per-occurrence conflicts, all or
nothing, cancelling one or the following occurrences, the iCal feed read back."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from django.test import Client

from bookings import engine, series
from bookings.engine import Slot, book
from bookings.models import Booking, PersonFeed
from bookings.series import Recurrence, SeriesRefused, book_series
from common.errors import DomainError
from tests.bookings.conftest import NOW, PARIS, at


def weekly_nine(room, weeks, **kw):
    return Slot(room, at(16, 9), at(16, 10), "Weekly sync"), Recurrence("weekly", count=weeks, **kw)


def test_a_weekly_0900_meeting_stays_at_0900_across_both_dst_changes(bob, room):
    # 16 March 2026 is a Monday; 29 March (spring) and 25 October (autumn) change the clocks.
    slot, rule = weekly_nine(room, 34)
    result = book_series(bob, slot, rule, now=NOW)
    assert len(result.booked) == 34 and result.refused == []
    local_hours = {b.start.astimezone(PARIS).strftime("%H:%M") for b in result.booked}
    assert local_hours == {"09:00"}
    utc_hours = {b.start.astimezone(ZoneInfo("UTC")).hour for b in result.booked}
    assert utc_hours == {8, 7}  # winter UTC+1, summer UTC+2
    last = max(b.start for b in result.booked).astimezone(PARIS)
    assert last.date() == date(2026, 11, 2) and last.hour == 9  # after the October change


def test_each_conflicting_occurrence_is_reported_and_the_rest_booked(bob, charlie, room):
    book(charlie, Slot(room, at(23, 9, 30), at(23, 10, 30)), now=NOW)
    slot, rule = weekly_nine(room, 4)
    result = book_series(bob, slot, rule, now=NOW)
    assert [b.start.astimezone(PARIS).day for b in result.booked] == [16, 30, 6]
    [refusal] = result.refused
    assert refusal.code == "conflict" and refusal.start == at(23, 9)


def test_all_or_nothing_books_none_when_one_occurrence_conflicts(bob, charlie, room):
    book(charlie, Slot(room, at(23, 9, 30), at(23, 10, 30)), now=NOW)
    slot, rule = weekly_nine(room, 4)
    with pytest.raises(SeriesRefused) as refused:
        book_series(bob, slot, rule, skip_conflicts=False, now=NOW)
    assert len(refused.value.data["refused"]) == 1
    assert not Booking.objects.filter(person=bob).exists()


def test_occurrences_beyond_the_horizon_wait_for_the_horizon_job(bob, room, room_policy):
    room_policy.max_advance_days = 22
    room_policy.save()
    slot, rule = weekly_nine(room, 10)
    result = book_series(bob, slot, rule, now=NOW)
    assert len(result.booked) == 2  # 16 and 23 March are within 22 days of 2 March
    assert series.extend_series(now=NOW + timedelta(days=14)) == 2
    assert series.extend_series(now=NOW + timedelta(days=14)) == 0
    assert Booking.objects.filter(series=result.series).count() == 4


def test_a_series_lists_the_occurrences_deferred_beyond_the_horizon(bob, room, room_policy):
    room_policy.max_advance_days = 22
    room_policy.save()
    slot, rule = weekly_nine(room, 5)
    result = book_series(bob, slot, rule, now=NOW)
    assert result.horizon == NOW + timedelta(days=22)
    assert [b.start for b in result.booked] == [at(16, 9), at(23, 9)]
    assert result.deferred == [
        (at(30, 9), at(30, 10)),
        (at(6, 9, month=4), at(6, 10, month=4)),
        (at(13, 9, month=4), at(13, 10, month=4)),
    ]
    assert "22 days" in result.deferred_reason


def test_a_series_entirely_beyond_the_horizon_is_refused_as_too_far_ahead(bob, room, room_policy):
    """Nothing booked and nothing refused is no series conflict: a single booking then would
    be too far ahead, and so is the series."""
    room_policy.max_advance_days = 10  # 16 March is 14 days after NOW
    room_policy.save()
    slot, rule = weekly_nine(room, 4)
    for dry_run in (True, False):
        with pytest.raises(DomainError) as refused:
            book_series(bob, slot, rule, now=NOW, dry_run=dry_run)
        assert (refused.value.code, refused.value.status) == ("too_far_ahead", 422)
    assert not series.BookingSeries.objects.exists()


def test_a_recurrence_without_any_occurrence_is_invalid(bob, room):
    slot = Slot(room, at(16, 9), at(16, 10))  # a Monday
    rule = Recurrence("weekly", weekdays=(2,), until=date(2026, 3, 16))  # Tuesdays until Monday
    with pytest.raises(DomainError) as refused:
        book_series(bob, slot, rule, now=NOW)
    assert (refused.value.code, refused.value.status) == ("invalid", 422)
    assert refused.value.data == {"field": "recurrence"}
    assert not Booking.objects.exists()


def test_a_series_conflict_always_lists_the_refused_occurrences(bob, charlie, room):
    book(charlie, Slot(room, at(16, 9), at(16, 10)), now=NOW)
    slot, rule = weekly_nine(room, 1)
    for skip_conflicts in (True, False):
        with pytest.raises(SeriesRefused) as refused:
            book_series(bob, slot, rule, skip_conflicts=skip_conflicts, now=NOW)
        assert [r["code"] for r in refused.value.data["refused"]] == ["conflict"]


def test_cancel_one_occurrence_or_this_and_the_following(bob, room):
    slot, rule = weekly_nine(room, 6)
    result = book_series(bob, slot, rule, now=NOW)
    second, fourth = result.booked[1], result.booked[3]
    engine.cancel(bob, second, now=NOW)
    cancelled = series.cancel_following(bob, fourth, now=NOW)
    assert len(cancelled) == 3
    live = Booking.objects.filter(series=result.series, status="confirmed").order_by("start")
    assert [b.start.astimezone(PARIS).day for b in live] == [16, 30]
    result.series.refresh_from_db()
    assert "UNTIL=" in result.series.rrule and "COUNT" not in result.series.rrule


# Feeds show the last 90 days and the future, so these tests book in 2027.
NOW_2027 = at(1, 8, year=2027)


def at27(day, hour):
    return at(day, hour, year=2027)


def test_the_person_feed_exports_the_series_as_rrule_with_exdate(bob, room, charlie):
    slot = Slot(room, at27(15, 9), at27(15, 10), "Weekly sync")  # Monday 15 March 2027
    result = book_series(bob, slot, Recurrence("weekly", count=6), now=NOW_2027)
    engine.cancel(bob, result.booked[2], now=NOW_2027)
    one_off = book(bob, Slot(room, at27(17, 14), at27(17, 15), "One-off"), now=NOW_2027)
    feed = PersonFeed.objects.create(person=bob)

    response = Client().get(f"/calendar/person/{feed.token}.ics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(response.content)
    events = [c for c in cal.walk("VEVENT")]
    master = next(e for e in events if "RRULE" in e)
    assert master["RRULE"]["FREQ"] == ["WEEKLY"] and master["RRULE"]["COUNT"] == [6]
    start = master.decoded("DTSTART")
    assert start == datetime(2027, 3, 15, 9, 0, tzinfo=start.tzinfo)
    assert str(start.tzinfo) in ("Europe/Paris", "CET") or "Paris" in str(master["DTSTART"].params)
    exdates = [
        d.dt
        for x in (master["EXDATE"] if isinstance(master["EXDATE"], list) else [master["EXDATE"]])
        for d in x.dts
    ]
    assert [d.astimezone(PARIS) for d in exdates] == [at27(29, 9)]  # after the DST change
    single = next(e for e in events if str(e["SUMMARY"]) == "One-off")
    assert single.decoded("DTSTART").astimezone(PARIS) == at27(17, 14)
    assert str(single["UID"]) == f"booking-{one_off.uid}@technocampus"
    assert cal.walk("VTIMEZONE"), "the feed carries its VTIMEZONE"
    assert Client().get("/calendar/person/not-a-token.ics").status_code == 404


def test_the_resource_feed_hides_who_booked_and_why(bob, room):
    book(bob, Slot(room, at27(3, 10), at27(3, 11), "Secret project"), now=NOW_2027)
    response = Client().get(f"/calendar/resource/{room.feed_token}.ics")
    assert b"Secret project" not in response.content
    assert b"Booked" in response.content


def test_a_dry_run_answers_like_booking_and_keeps_nothing(bob, charlie, room, room_policy):
    room_policy.max_advance_days = 22
    room_policy.save()
    book(charlie, Slot(room, at(23, 9, 30), at(23, 10, 30)), now=NOW)
    slot, rule = weekly_nine(room, 5)
    preview = book_series(bob, slot, rule, skip_conflicts=False, now=NOW, dry_run=True)
    assert preview.series is None and preview.later == 3  # 30 March, 6 and 13 April
    outcomes = [
        (start.day, b is not None, r.code if r else None) for start, _e, b, r in preview.outcomes()
    ]
    assert outcomes == [(16, True, None), (23, False, "conflict")]
    assert "B-1.50 is already booked from 23/03/2026 09:30" in preview.refused[0].detail
    assert Booking.objects.filter(person=bob).count() == 0
    assert not series.BookingSeries.objects.exists()
    assert not series.Event.objects.exists() and not series.Rule.objects.exists()
