"""The booking policy rules as one pure check: facts in, a refusal (or nothing) out.

No ORM, no clock: the engine loads the facts (policy, closures, qualification) and passes
`now`. Local-time rules (opening hours, slot alignment, closures) are evaluated in the
building's time zone.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils.translation import gettext as _

from bookings.models import BookingPolicy, WhoMayBook, parse_hhmm
from common.errors import DomainError


class PolicyRefused(DomainError):
    """The request breaks a rule of the resource's booking policy (each with its code)."""


class NotAllowed(DomainError):
    """The person may not book this resource at all (role, tenant, qualification)."""

    code = "not_authorized"


@dataclass(frozen=True)
class Requester:
    """What the policy needs to know about who books."""

    runs_facility: bool  # facility staff skip the calendar rules (never qualifications)
    has_tenant: bool
    tenant_active: bool
    qualified: bool  # the booked person holds a valid qualification over the whole slot
    for_self: bool = True  # False: staff book for someone else (the admin)


@dataclass(frozen=True)
class Request:
    start: datetime
    end: datetime
    attendees: int
    capacity: int


def check(
    policy: BookingPolicy,
    request: Request,
    who: Requester,
    now: datetime,
    tz: ZoneInfo,
    closed_days: frozenset[date] = frozenset(),
    qualification_required: bool = False,
):
    """Raise PolicyRefused or NotAllowed when the request breaks a rule; staff skip the
    calendar rules (notice, horizon, hours, durations, closures), never the qualification,
    which is the booked person's (`who.qualified`), whoever books."""
    start, end = request.start, request.end
    if end <= start:
        raise PolicyRefused(_("A booking must end after it starts."), code="invalid_period")
    if request.attendees > request.capacity > 0:
        raise PolicyRefused(
            _("%(n)s attendees exceed the capacity of %(c)s.")
            % {"n": request.attendees, "c": request.capacity},
            code="over_capacity",
        )
    if (
        qualification_required or policy.who_may_book == WhoMayBook.QUALIFIED
    ) and not who.qualified:
        raise not_qualified(who.for_self)
    if who.runs_facility:
        return
    if policy.who_may_book == WhoMayBook.STAFF:
        raise NotAllowed(_("Only facility staff may book this resource."))
    if policy.who_may_book == WhoMayBook.TENANT_MEMBERS and not who.has_tenant:
        raise NotAllowed(_("Only members of a tenant company may book this resource."))
    if who.has_tenant and not who.tenant_active:
        raise NotAllowed(_("Your company's account is suspended."), code="tenant_suspended")
    if start < now:
        raise PolicyRefused(_("This time is in the past."), code="in_the_past")
    minutes = (end - start) / timedelta(minutes=1)
    if minutes < policy.min_duration_minutes:
        raise PolicyRefused(
            _("A booking lasts at least %(m)s minutes.") % {"m": policy.min_duration_minutes},
            code="too_short",
        )
    if minutes > policy.max_duration_minutes:
        raise PolicyRefused(
            _("A booking lasts at most %(m)s minutes.") % {"m": policy.max_duration_minutes},
            code="too_long",
        )
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    if not (
        _aligned(local_start, policy.slot_minutes) and _aligned(local_end, policy.slot_minutes)
    ):
        raise PolicyRefused(
            _("Bookings start and end on %(m)s-minute steps.") % {"m": policy.slot_minutes},
            code="not_aligned",
        )
    if start < now + timedelta(minutes=policy.min_notice_minutes):
        raise PolicyRefused(
            _("This resource must be booked %(m)s minutes ahead.")
            % {"m": policy.min_notice_minutes},
            code="too_late",
        )
    if start > now + timedelta(days=policy.max_advance_days):
        raise PolicyRefused(
            _("This resource can be booked at most %(d)s days ahead.")
            % {"d": policy.max_advance_days},
            code="too_far_ahead",
        )
    day = local_start.date()
    last_day = (local_end - timedelta(microseconds=1)).date()
    if any(day + timedelta(days=i) in closed_days for i in range((last_day - day).days + 1)):
        raise PolicyRefused(_("The building is closed that day."), code="closed")
    if not within_opening_hours(policy.opening_hours, local_start, local_end):
        raise PolicyRefused(
            _("This is outside the resource's opening hours."), code="outside_opening_hours"
        )


def not_qualified(for_self: bool = True) -> NotAllowed:
    """The refusal for a booking whose person holds no valid qualification for it."""
    if for_self:
        text = _("You hold no valid qualification for this resource at that time.")
    else:
        text = _("The person booked holds no valid qualification for this resource at that time.")
    return NotAllowed(text, code="not_qualified")


def _aligned(local: datetime, step: int) -> bool:
    minutes = local.hour * 60 + local.minute
    return local.second == 0 and local.microsecond == 0 and minutes % step == 0


def within_opening_hours(hours: list, local_start: datetime, local_end: datetime) -> bool:
    """True when one opening row of that weekday contains [start, end] (local times).

    An empty schedule means always open. A booking does not run across midnight unless the
    schedule is empty.
    """
    if not hours:
        return True
    if local_end.date() != local_start.date() and not (
        local_end.hour == 0
        and local_end.minute == 0
        and local_end.date() == local_start.date() + timedelta(days=1)
    ):
        return False
    weekday = local_start.isoweekday()
    start_t = local_start.time()
    end_minutes = (
        24 * 60
        if local_end.date() != local_start.date()
        else (local_end.hour * 60 + local_end.minute)
    )
    for row_day, row_start, row_end in hours:
        if row_day != weekday:
            continue
        opens = parse_hhmm(row_start)
        closes = parse_hhmm(row_end)
        closes_minutes = (
            24 * 60
            if closes.hour == 0 and closes.minute == 0
            else (closes.hour * 60 + closes.minute)
        )
        if opens <= start_t and end_minutes <= closes_minutes:
            return True
    return False


def opening_intervals(hours: list, day: date) -> list[tuple[int, int]]:
    """The open intervals of a local day, in minutes from midnight."""
    if not hours:
        return [(0, 24 * 60)]
    rows = []
    for row_day, row_start, row_end in hours:
        if row_day == day.isoweekday():
            opens, closes = parse_hhmm(row_start), parse_hhmm(row_end)
            end = (
                24 * 60
                if closes.hour == 0 and closes.minute == 0
                else (closes.hour * 60 + closes.minute)
            )
            rows.append((opens.hour * 60 + opens.minute, end))
    return sorted(rows)
