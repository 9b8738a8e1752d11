"""iCalendar (RFC 5545) for feeds and invitations: series as RRULE with EXDATE, stable UIDs,
each booking's times in its resource's time zone (its site's, campus.clock) with the
VTIMEZONE of every zone used."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event, vRecur

from bookings import catalogue
from bookings.models import HOLDING, Booking, BookingSeries, occurrences
from campus import clock

PRODID = "-//Technocampus//Bookings//FR"
DOMAIN = "technocampus"
INVITATION_TZ_MARGIN = timedelta(days=366)


def _calendar(name: str, tz: ZoneInfo, method: str | None = None) -> Calendar:
    """A calendar whose times are shown in `tz` by the applications that read X-WR-TIMEZONE."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", tz.key)
    if method:
        cal.add("method", method)
    return cal


def _base_event(
    uid: str,
    booking: Booking,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    private: bool = False,
) -> Event:
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", timezone.now())
    ev.add("dtstart", clock.local(start, tz))
    ev.add("dtend", clock.local(end, tz))
    # A resource's public feed says when it is taken, not by whom or for what.
    ev.add("summary", "Réservé / Booked" if private else (booking.title or booking.resource.name))
    ev.add("location", f"{booking.resource.code} {booking.resource.name}")
    ev.add("status", "TENTATIVE" if booking.status == "pending" else "CONFIRMED")
    return ev


def booking_uid(booking: Booking) -> str:
    if booking.series_id:
        return series_uid(booking.series)
    return f"booking-{booking.uid}@{DOMAIN}"


def series_uid(series: BookingSeries) -> str:
    return f"series-{series.pk}-{series.event_id}@{DOMAIN}"


def booking_event(booking: Booking, tz: ZoneInfo, private: bool = False) -> Event:
    """A one-off booking, or one occurrence of a series (with its RECURRENCE-ID), in `tz`
    (its resource's zone)."""
    ev = _base_event(booking_uid(booking), booking, booking.start, booking.end, tz, private)
    if booking.series_id:
        ev.add("recurrence-id", clock.local(booking.occurrence_start or booking.start, tz))
    return ev


def series_events(
    series: BookingSeries, bookings: list[Booking], tz: ZoneInfo, private: bool = False
) -> list[Event]:
    """The master VEVENT with RRULE and EXDATEs, plus an override for each moved occurrence,
    in `tz` (the resource's zone: the RRULE repeats in its local time).

    An occurrence is excluded (EXDATE) when it is not held: cancelled, rejected, released, or
    refused when the series was booked. A moved one keeps its RECURRENCE-ID.
    """
    by_occurrence = {b.occurrence_start: b for b in bookings}
    template = bookings[0] if bookings else None
    master = _base_event(
        series_uid(series), template, series.event.start, series.event.end, tz, private
    )
    master.add("rrule", vRecur.from_ical(series.rrule))
    last = series.materialised_until
    events = [master]
    exdates = []
    for start, _end in occurrences(series.event, series.event.start, last, tz):
        booking = by_occurrence.get(start)
        if booking is None or booking.status not in HOLDING:
            exdates.append(clock.local(start, tz))
        elif booking.start != start or booking.end != start + (
            series.event.end - series.event.start
        ):
            events.append(booking_event(booking, tz, private))
    if exdates:
        master.add("exdate", exdates)
    return events


def feed(name: str, bookings, private: bool = False) -> bytes:
    """A calendar of these bookings: one-off ones as events, series as RRULE masters. Shown
    in their resources' zone when they share one (a resource's feed), else the default."""
    cat = catalogue.current()
    bookings = list(bookings)
    zones = {cat.zone_of(b.resource_id) for b in bookings}
    cal = _calendar(name, zones.pop() if len(zones) == 1 else clock.building_tz())
    series_bookings: dict[int, list[Booking]] = {}
    for booking in bookings:
        if booking.series_id:
            series_bookings.setdefault(booking.series_id, []).append(booking)
        elif booking.status in HOLDING:
            cal.add_component(booking_event(booking, cat.zone_of(booking.resource_id), private))
    for items in series_bookings.values():
        series = items[0].series
        everything = list(series.bookings.select_related("resource").order_by("start"))
        for ev in series_events(series, everything, cat.zone_of(series.resource_id), private):
            cal.add_component(ev)
    cal.add_missing_timezones()
    return cal.to_ical()


def invitation(booking: Booking, cancelled: bool) -> bytes:
    """An iTIP message (METHOD REQUEST or CANCEL) for one booking, for e-mail attachments."""
    tz = catalogue.current().zone_of(booking.resource_id)
    cal = _calendar("Technocampus", tz, method="CANCEL" if cancelled else "REQUEST")
    ev = booking_event(booking, tz)
    if cancelled:
        ev["status"] = "CANCELLED"
    ev.add("sequence", int(timezone.now().timestamp()) % 2_000_000_000)
    ev.add("organizer", f"mailto:{settings.DEFAULT_FROM_EMAIL.split('<')[-1].strip('>')}")
    ev.add("attendee", f"mailto:{booking.person.email}")
    cal.add_component(ev)
    # The time zone's rules around this booking only: the full 1970-2038 history made the
    # VTIMEZONE ~140 RDATEs long, and writing it was half the cost of booking (bench/README).
    cal.add_missing_timezones(
        first_date=(booking.start - INVITATION_TZ_MARGIN).date(),
        last_date=(booking.end + INVITATION_TZ_MARGIN).date(),
    )
    return cal.to_ical()
