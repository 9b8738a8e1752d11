"""Recurring bookings (invariant 2): a django-scheduler Event + Rule, expanded in the
resource's time zone (its site's, campus.clock), each occurrence booked (or refused) on its
own through `engine.book`.

django-scheduler stores the rule and expands it; it is not the booking store (docs/design.md
says why). We always pass it windows in the resource's time zone, so that
a weekly 09:00 meeting stays at 09:00 local time across that zone's daylight-saving changes.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from schedule.models import Calendar, Event, Rule

from bookings import catalogue
from bookings.engine import (
    Slot,
    book,
    cancel,
    policy_for,
)
from bookings.models import HOLDING, Booking, BookingSeries, Status, occurrences
from bookings.policy import PolicyRefused
from campus import clock
from campus.models import Person
from common.errors import DomainError, Invalid

FREQUENCIES = {"daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY"}
WEEKDAY_CODES = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
MAX_OCCURRENCES = 500
MAX_INTERVAL = 52
STAFF_HORIZON_DAYS = 366


class SeriesRefused(DomainError):
    """No occurrence could be booked, or one could not and the caller wanted all or nothing."""

    code = "series_conflict"


@dataclass(frozen=True)
class Recurrence:
    """An RFC 5545 recurrence: daily, weekly or monthly, every `interval`, on ISO weekdays,
    ending after `count` occurrences or on the local date `until` (inclusive), or never;
    local to the booked resource's time zone `tz`."""

    freq: str
    interval: int = 1
    weekdays: tuple[int, ...] = ()
    count: int | None = None
    until: date | None = None

    def until_moment(self, tz: ZoneInfo) -> datetime | None:
        if self.until is None:
            return None
        return clock.at(self.until, time(23, 59, 59), tz)

    def rrule(self, tz: ZoneInfo) -> str:
        parts = [f"FREQ={FREQUENCIES[self.freq]}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.weekdays:
            parts.append("BYDAY=" + ",".join(WEEKDAY_CODES[d - 1] for d in sorted(self.weekdays)))
        if self.count:
            parts.append(f"COUNT={self.count}")
        if self.until:
            utc = self.until_moment(tz).astimezone(UTC)
            parts.append(f"UNTIL={utc:%Y%m%dT%H%M%SZ}")
        return ";".join(parts)

    def scheduler_params(self) -> str:
        """django-scheduler's Rule.params syntax: `interval:2;byweekday:0,2;count:10`."""
        params = [f"interval:{self.interval}"]
        if self.weekdays:
            params.append("byweekday:" + ",".join(str(d - 1) for d in sorted(self.weekdays)))
        if self.count:
            params.append(f"count:{self.count}")
        return ";".join(params)


@dataclass
class Refusal:
    start: datetime
    end: datetime
    code: str
    detail: str
    conflicts: list = field(default_factory=list)


@dataclass
class SeriesResult:
    series: BookingSeries | None
    booked: list[Booking]
    refused: list[Refusal]
    horizon: datetime | None = None
    # The occurrences beyond the booking horizon (in the two years after it, at most
    # MAX_OCCURRENCES): not booked yet, the horizon job books each as it comes within it.
    deferred: list[tuple[datetime, datetime]] = field(default_factory=list)
    deferred_reason: str = ""

    @property
    def later(self) -> int:
        return len(self.deferred)

    def outcomes(self) -> list[tuple[datetime, datetime, Booking | None, Refusal | None]]:
        """Every occurrence in time order: (start, end, booking, None) or (.., None, refusal)."""
        rows = [(b.start, b.end, b, None) for b in self.booked]
        rows += [(r.start, r.end, None, r) for r in self.refused]
        return sorted(rows, key=lambda row: row[0])


def _calendar() -> Calendar:
    calendar, _created = Calendar.objects.get_or_create(
        slug="bookings", defaults={"name": "Bookings"}
    )
    return calendar


def horizon_days(person: Person, slot: Slot) -> int:
    return (
        STAFF_HORIZON_DAYS if person.runs_facility else policy_for(slot.resource).max_advance_days
    )


def horizon_for(person: Person, slot: Slot, now: datetime) -> datetime:
    return now + timedelta(days=horizon_days(person, slot))


def deferred_occurrences(event: Event, horizon: datetime, first_start: datetime, tz: ZoneInfo):
    """The occurrences starting from the horizon on, in the two years after it (or after the
    first occurrence, when that is later), at most MAX_OCCURRENCES."""
    until = max(horizon, first_start) + timedelta(days=2 * STAFF_HORIZON_DAYS)
    found = [
        (start, end) for start, end in occurrences(event, horizon, until, tz) if start >= horizon
    ]
    return found[:MAX_OCCURRENCES]


def nothing_to_book(days: int, deferred: list) -> DomainError:
    """No occurrence within the horizon, hence none booked nor refused: not a series conflict.
    A series starting beyond the horizon is too far ahead, as its first booking would be; a
    rule without any occurrence is invalid input."""
    if deferred:
        return PolicyRefused(
            _("The series starts beyond the booking horizon of %(d)s days.") % {"d": days},
            code="too_far_ahead",
        )
    return Invalid(_("recurrence: the rule gives no occurrence."), field="recurrence")


def book_series(
    person: Person,
    first: Slot,
    recurrence: Recurrence,
    *,
    skip_conflicts: bool = True,
    now: datetime | None = None,
    notify: bool = True,
    dry_run: bool = False,
) -> SeriesResult:
    """Book every occurrence within the horizon; report each refusal with its reason.

    With skip_conflicts=False the series is all or nothing: one refusal books none.
    With dry_run=True nothing is kept: every occurrence is booked through `book` exactly as
    it would be, then the whole transaction is rolled back. A preview thus answers what
    booking would (conflicts, policies, quotas across the occurrences, companions) without a
    second copy of the rules; the result has no series.

    Either way the result lists the occurrences deferred beyond the horizon, and why. A series
    refused as a conflict (SeriesRefused) always lists its refused occurrences: with none
    within the horizon, nothing_to_book says why instead.
    """
    now = now or timezone.now()
    if recurrence.freq not in FREQUENCIES:
        raise SeriesRefused(_("Unknown frequency."), code="invalid")
    tz = catalogue.current().zone_of(first.resource.pk)
    rrule = recurrence.rrule(tz)
    with transaction.atomic():
        rule = Rule.objects.create(
            name=rrule[:32],
            description=rrule,
            frequency=FREQUENCIES[recurrence.freq],
            params=recurrence.scheduler_params(),
        )
        event = Event.objects.create(
            start=first.start,
            end=first.end,
            title=(first.title or first.resource.name)[:255],
            calendar=_calendar(),
            rule=rule,
            end_recurring_period=recurrence.until_moment(tz),
            creator=person,
        )
        days = horizon_days(person, first)
        horizon = now + timedelta(days=days)
        series = BookingSeries.objects.create(
            event=event,
            resource=first.resource,
            person=person,
            tenant=person.tenant,
            title=first.title[:160],
            rrule=rrule,
            skip_conflicts=skip_conflicts,
            materialised_until=horizon,
        )
        result = _materialise(person, series, first, first.start, horizon, now)
        result.horizon = horizon
        result.deferred = deferred_occurrences(event, horizon, first.start, tz)
        result.deferred_reason = _(
            "Beyond the booking horizon of %(d)s days: each occurrence is booked when it comes "
            "within it, and may be refused then like any booking."
        ) % {"d": days}
        if not result.booked and not result.refused:
            transaction.set_rollback(True)
            raise nothing_to_book(days, result.deferred)
        if dry_run:
            transaction.set_rollback(True)
            result.series = None
            return result
        if result.refused and not skip_conflicts:
            transaction.set_rollback(True)
            raise SeriesRefused(
                _("%(n)s of the occurrences cannot be booked; nothing was booked.")
                % {"n": len(result.refused)},
                refused=[_refusal_dict(r) for r in result.refused],
            )
        if not result.booked:  # hence some refused: never a series conflict with none listed
            transaction.set_rollback(True)
            raise SeriesRefused(
                _("None of the occurrences can be booked."),
                refused=[_refusal_dict(r) for r in result.refused],
            )
    if notify:
        from bookings import notify as notifications

        transaction.on_commit(lambda: notifications.series_created(series, result))
    return result


def _materialise(person, series, template: Slot, window_start, window_end, now) -> SeriesResult:
    booked, refused = [], []
    tz = catalogue.current().zone_of(template.resource.pk)
    found = occurrences(series.event, window_start, window_end, tz)
    for start, end in found[:MAX_OCCURRENCES]:
        if start < window_start:
            continue
        slot = Slot(template.resource, start, end, template.title, template.attendees)
        try:
            with transaction.atomic():
                booked.append(
                    book(person, slot, now=now, series=series, occurrence_start=start, notify=False)
                )
        except DomainError as e:
            refused.append(Refusal(start, end, e.code, e.detail, e.data.get("conflicts", [])))
    return SeriesResult(series, booked, refused)


def _refusal_dict(r: Refusal) -> dict:
    return {
        "start": r.start.isoformat(),
        "end": r.end.isoformat(),
        "code": r.code,
        "detail": r.detail,
        "conflicts": r.conflicts,
    }


def extend_series(now: datetime | None = None) -> int:
    """Book the occurrences that entered the horizon since last time; returns how many.

    The horizon moves by compare-and-set, so that concurrent runs never book twice (and the
    unique (series, occurrence) constraint stands behind it).
    """
    now = now or timezone.now()
    count = 0
    for series in BookingSeries.objects.select_related("event", "resource", "person"):
        if series.event.end_recurring_period and series.event.end_recurring_period < now:
            continue
        horizon = horizon_for(series.person, Slot(series.resource, now, now), now)
        old = series.materialised_until
        if horizon <= old:
            continue
        if not BookingSeries.objects.filter(pk=series.pk, materialised_until=old).update(
            materialised_until=horizon
        ):
            continue
        template = Slot(series.resource, series.event.start, series.event.end, series.title)
        result = _materialise(
            series.person, series, template, old + timedelta(seconds=1), horizon, now
        )
        count += len(result.booked)
    return count


def cancel_following(person: Person, booking: Booking, *, now: datetime | None = None):
    """Cancel this occurrence and every later one; the series ends before this occurrence."""
    now = now or timezone.now()
    series = booking.series
    if series is None:
        return [cancel(person, booking, now=now)]
    cut = booking.occurrence_start or booking.start
    with transaction.atomic():
        event = series.event
        event.end_recurring_period = cut - timedelta(seconds=1)
        event.save(update_fields=["end_recurring_period"])
        rrule = ";".join(
            p for p in series.rrule.split(";") if not p.startswith(("COUNT=", "UNTIL="))
        )
        until = (cut - timedelta(seconds=1)).astimezone(UTC)
        series.rrule = f"{rrule};UNTIL={until:%Y%m%dT%H%M%SZ}"
        series.save(update_fields=["rrule"])
        later = series.bookings.filter(status__in=HOLDING, occurrence_start__gte=cut)
        return [cancel(person, b, now=now) for b in later.exclude(status=Status.CHECKED_IN)]
