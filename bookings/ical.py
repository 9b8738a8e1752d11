"""iCalendar (RFC 5545) for feeds and invitations: series as RRULE with EXDATE, stable UIDs,
times in the building's time zone with its VTIMEZONE."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event, vRecur

from bookings.models import HOLDING, Booking, BookingSeries, occurrences
from campus.clock import building_tz

PRODID = "-//Technocampus//Bookings//FR"
DOMAIN = "technocampus"
INVITATION_TZ_MARGIN = timedelta(days=366)


def _calendar(name: str, method: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", settings.TIME_ZONE)
    if method:
        cal.add("method", method)
    return cal


def _local(moment: datetime) -> datetime:
    return moment.astimezone(building_tz())


def _base_event(
    uid: str, booking: Booking, start: datetime, end: datetime, private: bool = False
) -> Event:
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", timezone.now())
    ev.add("dtstart", _local(start))
    ev.add("dtend", _local(end))
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


def booking_event(booking: Booking, private: bool = False) -> Event:
    """A one-off booking, or one occurrence of a series (with its RECURRENCE-ID)."""
    ev = _base_event(booking_uid(booking), booking, booking.start, booking.end, private)
    if booking.series_id:
        ev.add("recurrence-id", _local(booking.occurrence_start or booking.start))
    return ev


def series_events(
    series: BookingSeries, bookings: list[Booking], private: bool = False
) -> list[Event]:
    """The master VEVENT with RRULE and EXDATEs, plus an override for each moved occurrence.

    An occurrence is excluded (EXDATE) when it is not held: cancelled, rejected, released, or
    refused when the series was booked. A moved one keeps its RECURRENCE-ID.
    """
    by_occurrence = {b.occurrence_start: b for b in bookings}
    template = bookings[0] if bookings else None
    master = _base_event(
        series_uid(series), template, series.event.start, series.event.end, private
    )
    master.add("rrule", vRecur.from_ical(series.rrule))
    last = series.materialised_until
    events = [master]
    exdates = []
    for start, _end in occurrences(series.event, series.event.start, last):
        booking = by_occurrence.get(start)
        if booking is None or booking.status not in HOLDING:
            exdates.append(_local(start))
        elif booking.start != start or booking.end != start + (
            series.event.end - series.event.start
        ):
            events.append(booking_event(booking, private))
    if exdates:
        master.add("exdate", exdates)
    return events


def feed(name: str, bookings, private: bool = False) -> bytes:
    """A calendar of these bookings: one-off ones as events, series as RRULE masters."""
    cal = _calendar(name)
    series_bookings: dict[int, list[Booking]] = {}
    for booking in bookings:
        if booking.series_id:
            series_bookings.setdefault(booking.series_id, []).append(booking)
        elif booking.status in HOLDING:
            cal.add_component(booking_event(booking, private))
    for series_id, items in series_bookings.items():
        series = items[0].series
        everything = list(series.bookings.select_related("resource").order_by("start"))
        for ev in series_events(series, everything, private):
            cal.add_component(ev)
        del series_id
    cal.add_missing_timezones()
    return cal.to_ical()


def invitation(booking: Booking, cancelled: bool) -> bytes:
    """An iTIP message (METHOD REQUEST or CANCEL) for one booking, for e-mail attachments."""
    cal = _calendar("Technocampus", method="CANCEL" if cancelled else "REQUEST")
    ev = booking_event(booking)
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
