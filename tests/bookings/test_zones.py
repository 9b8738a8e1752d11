"""Every site keeps its own time (campus.clock): a room's opening hours, its free slots, its
series and its calendar feed are in its site's time zone, not in the default zone (Paris).

NOW is Monday 2 March 2026, 08:00 in Paris: 16:00 in Tokyo, 02:00 in Montréal, whose clocks
go forward on Sunday 8 March (Paris' on the 29th).
"""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from bookings import availability, catalogue, engine, ical
from bookings.engine import Slot, book
from bookings.models import Booking, BookingPolicy, Resource
from bookings.policy import PolicyRefused
from bookings.series import Recurrence, book_series
from campus.models import Site, Space
from labs.models import Equipment
from tests.bookings.conftest import NOW, PARIS, at

TOKYO = ZoneInfo("Asia/Tokyo")
MONTREAL = ZoneInfo("America/Montreal")
EIGHT_TO_SIX = [[d, "08:00", "18:00"] for d in range(1, 6)]


def local(tz: ZoneInfo, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=tz)


@pytest.fixture
def eight_to_six(db):
    return BookingPolicy.objects.create(
        name="Eight to six",
        opening_hours=EIGHT_TO_SIX,
        slot_minutes=15,
        min_duration_minutes=30,
        max_duration_minutes=480,
        max_advance_days=365,
    )


def room_of(site: dict, policy: BookingPolicy) -> Resource:
    space = site["meeting"]
    return Resource.objects.create(
        code=space.code, name=space.name, kind="meeting_room", space=space, policy=policy
    )


def test_a_room_opens_at_its_own_site_s_local_hours(bob, campus, tokyo, montreal, eight_to_six):
    for site, tz in ((tokyo, TOKYO), (montreal, MONTREAL)):
        room = room_of(site, eight_to_six)
        booked = book(bob, Slot(room, local(tz, 3, 9), local(tz, 3, 10)), now=NOW)
        assert booked.status == "confirmed"
        # 09:00–11:00 in Paris is 17:00–19:00 in Tokyo and 03:00–05:00 in Montréal.
        with pytest.raises(PolicyRefused) as refused:
            book(bob, Slot(room, at(3, 9), at(3, 11)), now=NOW)
        assert refused.value.code == "outside_opening_hours"
    paris = Resource.objects.create(
        code="B-1.50",
        name="Loire",
        kind="meeting_room",
        space=campus["meeting"],
        policy=eight_to_six,
    )
    assert book(bob, Slot(paris, at(3, 9), at(3, 11)), now=NOW).status == "confirmed"


def test_a_room_is_closed_on_the_closure_days_of_its_own_calendar(bob, montreal):
    from bookings.models import Closure

    Closure.objects.create(name="Fermeture", start_date=date(2026, 3, 4), end_date=date(2026, 3, 4))
    room = room_of(montreal, BookingPolicy.objects.create(name="Always", max_advance_days=365))
    # Wednesday 4 March, 20:00 in Montréal: already Thursday 5 March, 02:00, in Paris.
    with pytest.raises(PolicyRefused) as refused:
        book(bob, Slot(room, local(MONTREAL, 4, 20), local(MONTREAL, 4, 21)), now=NOW)
    assert refused.value.code == "closed"
    # Thursday 5 March, 00:30 in Montréal: 06:30 in Paris, the same day, open.
    assert book(bob, Slot(room, local(MONTREAL, 5, 0, 30), local(MONTREAL, 5, 1)), now=NOW)


def test_availability_and_free_slots_follow_each_room_s_site(as_bob, campus, tokyo, eight_to_six):
    room = room_of(tokyo, eight_to_six)
    paris = Resource.objects.create(
        code="B-1.50",
        name="Loire",
        kind="meeting_room",
        space=campus["meeting"],
        policy=eight_to_six,
    )
    free = availability.free_entries(local(TOKYO, 3, 9), local(TOKYO, 3, 10))
    assert [e.code for e in free] == [room.code]  # 01:00 in Paris: the Paris room is shut
    slots = availability.free_slots(room, date(2026, 3, 3))
    assert slots == [(local(TOKYO, 3, 8), local(TOKYO, 3, 18))]
    answer = as_bob.get(f"/api/v1/resources/{room.pk}/free-slots", {"date": "2026-03-03"})
    assert answer.json()["items"] == [
        {"start": "2026-03-03T08:00:00+09:00", "end": "2026-03-03T18:00:00+09:00"}
    ]
    assert availability.free_slots(paris, date(2026, 3, 3)) == [(at(3, 8), at(3, 18))]


def test_a_weekly_series_keeps_its_local_hour_across_its_own_site_s_dst_change(bob, montreal):
    always = BookingPolicy.objects.create(name="Always", max_advance_days=365)
    room = room_of(montreal, always)
    first = Slot(room, local(MONTREAL, 2, 9), local(MONTREAL, 2, 10), "Stand-up")
    result = book_series(bob, first, Recurrence("weekly", count=4), now=NOW)
    assert [b.start.astimezone(MONTREAL) for b in result.booked] == [
        local(MONTREAL, day, 9) for day in (2, 9, 16, 23)
    ]
    # UTC-5 before 8 March, UTC-4 after: Paris' clock (UTC+1 all month) would have kept 15:00.
    assert [b.start.astimezone(UTC).hour for b in result.booked] == [14, 13, 13, 13]


def test_a_series_until_a_day_ends_on_that_local_day_of_its_site(bob, montreal):
    always = BookingPolicy.objects.create(name="Always", max_advance_days=365)
    room = room_of(montreal, always)
    evening = Slot(room, local(MONTREAL, 2, 20), local(MONTREAL, 2, 21), "Evening")
    # 20:00 on 3 March in Montréal is 02:00 on 4 March in Paris: still within "until 3 March".
    result = book_series(bob, evening, Recurrence("daily", until=date(2026, 3, 3)), now=NOW)
    assert [b.start for b in result.booked] == [local(MONTREAL, 2, 20), local(MONTREAL, 3, 20)]
    assert result.series.rrule.endswith("UNTIL=20260304T045959Z")


def test_a_room_s_feed_and_invitations_carry_its_site_s_time_zone(bob, montreal):
    always = BookingPolicy.objects.create(name="Always", max_advance_days=365)
    room = room_of(montreal, always)
    result = book_series(
        bob,
        Slot(room, local(MONTREAL, 2, 9), local(MONTREAL, 2, 10), "Stand-up"),
        Recurrence("weekly", count=4),
        now=NOW,
    )
    engine.cancel(bob, result.booked[2], now=NOW)  # 16 March, after Montréal's change
    one_off = book(bob, Slot(room, local(MONTREAL, 4, 14), local(MONTREAL, 4, 15)), now=NOW)
    cal = icalendar.Calendar.from_ical(ical.feed("Salon", Booking.objects.filter(resource=room)))
    assert str(cal["X-WR-TIMEZONE"]) == "America/Montreal"
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["America/Montreal"]
    events = cal.walk("VEVENT")
    master = next(e for e in events if "RRULE" in e)
    assert master["DTSTART"].params["TZID"] == "America/Montreal"
    assert master.decoded("DTSTART") == local(MONTREAL, 2, 9)
    [exdate] = [d.dt for d in master["EXDATE"].dts]
    assert exdate == local(MONTREAL, 16, 9) and exdate.utcoffset().total_seconds() == -4 * 3600
    single = next(e for e in events if "RRULE" not in e)
    assert single["DTSTART"].params["TZID"] == "America/Montreal"
    assert single.decoded("DTSTART") == local(MONTREAL, 4, 14)
    invite = icalendar.Calendar.from_ical(ical.invitation(one_off, cancelled=False))
    [event] = invite.walk("VEVENT")
    assert event["DTSTART"].params["TZID"] == "America/Montreal"


def test_a_person_s_feed_across_sites_shows_each_booking_in_its_room_s_zone(
    bob, campus, room, montreal
):
    always = BookingPolicy.objects.create(name="Always", max_advance_days=365)
    far = room_of(montreal, always)
    book(bob, Slot(far, local(MONTREAL, 4, 9), local(MONTREAL, 4, 10)), now=NOW)
    book(bob, Slot(room, at(4, 9), at(4, 10)), now=NOW)
    cal = icalendar.Calendar.from_ical(ical.feed("Bob", Booking.objects.filter(person=bob)))
    assert str(cal["X-WR-TIMEZONE"]) == settings.TIME_ZONE  # several zones: the default one
    zones = {str(e["DTSTART"].params["TZID"]) for e in cal.walk("VEVENT")}
    assert zones == {"America/Montreal", "Europe/Paris"}
    assert {str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")} == zones


def test_the_catalogue_follows_a_resource_s_site_and_its_zone(campus, tokyo, montreal):
    room = Resource.objects.create(
        code="M-0.50", name="Salon", kind="meeting_room", space=montreal["meeting"]
    )
    chamber = Resource.objects.create(code="EQ-1", name="Chamber", kind="equipment")
    machine = Equipment.objects.create(
        resource=chamber, equipment_class="emc", location=tokyo["lab"]
    )
    loose = Resource.objects.create(code="X-1", name="Nowhere", kind="desk")
    cat = catalogue.current()
    assert cat.zone_of(room.pk) == MONTREAL
    assert cat.zone_of(chamber.pk) == TOKYO  # a machine: its lab's site
    assert cat.zone_of(loose.pk) == PARIS  # no place: the default zone
    Site.objects.filter(pk=montreal["site"].pk).update(time_zone="Asia/Tokyo")
    assert catalogue.current().zone_of(room.pk) == TOKYO
    Space.objects.filter(pk=montreal["meeting"].pk).update(floor=campus["first"])
    assert catalogue.current().zone_of(room.pk) == PARIS
    Equipment.objects.filter(pk=machine.pk).update(location=campus["lab"])
    assert catalogue.current().zone_of(chamber.pk) == PARIS


def test_a_site_s_zone_is_one_the_time_zone_database_knows(db):
    site = Site(name="Mars", slug="mars", time_zone="Mars/Olympus")
    with pytest.raises(ValidationError) as invalid:
        site.full_clean()
    assert "time_zone" in invalid.value.message_dict
    assert Site(name="New", slug="new").time_zone == settings.TIME_ZONE
    Site(name="Tokyo", slug="tokyo", time_zone="Asia/Tokyo").full_clean()
