"""Time on the campus: the one place that knows time zones, local days and months.

The rule. Times are stored in UTC and are always aware. What is reasoned about in wall-clock
time is reasoned about in the time zone of the site it belongs to (`Site.time_zone`):
- a space's site is its floor's building's (`ZONE_OF_SPACE`); a bookable resource's is its
  space's, or for a machine its lab's (held per resource by `bookings.catalogue`); a door's
  is the site of the space it leads into, and a door without a space (a perimeter door)
  takes the site of its controller's other doors (`access.facts.door_zones`);
- so a resource's opening hours, closures (dates, the same for every site, applied to the
  resource's local days), slot steps, recurring series, calendar feed and invitations,
  booking e-mails, free slots of a day (answered in its zone) and monthly report are in its
  site's zone; a floor's day grid in its site's; a door's schedule, and the leases of whoever
  badges there, in the door's; a controller's allow-list names its zone.
What belongs to no site, or to no one site, is in the default zone, `settings.TIME_ZONE`
(`building_tz`), which is also a new site's and so the first site's: a naive time in API
input, the times the API and the pages show (each with its offset), the portal's search and
forms, a tenant's month (its usage statement and its quota: one statement across every site
it uses), the yearly public holidays, qualification renewals, who is inside since midnight
and the audit log's retention.

campus is the lowest app: everyone may import this module; it imports nothing of ours.
"""

import logging
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

log = logging.getLogger(__name__)

# The ORM path from a space to its site's time zone name.
ZONE_OF_SPACE = "floor__building__site__time_zone"


def building_tz() -> ZoneInfo:
    """The default zone (`settings.TIME_ZONE`): the first site's, and that of whatever
    belongs to no one site (see the rule above)."""
    return ZoneInfo(settings.TIME_ZONE)


def default_zone_name() -> str:
    """A new site's zone, unless told otherwise."""
    return settings.TIME_ZONE


def zone(name: str | None) -> ZoneInfo:
    """The zone of this name (a site's `time_zone`); none: the default zone. A name the
    time-zone database does not know (written past the model's validation) is the default
    zone too, logged once: a bad row must not stop every decision."""
    return _known(name) if name else building_tz()


@cache
def _known(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.error("unknown time zone %r: the default zone %s instead", name, settings.TIME_ZONE)
        return building_tz()


def validate_time_zone(name: str):
    """A site's zone is an IANA name the time-zone database knows (Europe/Paris)."""
    if name not in _zone_names():
        raise ValidationError(
            _("Unknown time zone “%(name)s”: give an IANA name such as Europe/Paris."),
            params={"name": name},
        )


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


# ------------------------------------------------------------------ conversions


def local(moment: datetime | None, tz: ZoneInfo | None = None) -> datetime | None:
    """The aware `moment` as local time of `tz` (default: the default zone); None (a time
    not set) stays None."""
    return None if moment is None else moment.astimezone(tz or building_tz())


def local_wall_clock(moment: datetime, tz: ZoneInfo | None = None) -> datetime:
    """`moment` as the naive wall-clock time of `tz` (door schedules, `access.decision`)."""
    return local(moment, tz).replace(tzinfo=None)


def aware(value: datetime | None, tz: ZoneInfo | None = None) -> datetime | None:
    """A naive time read as local time of `tz` (default zone), an aware one converted to it:
    either way an offset PostgreSQL accepts (Python takes up to ±23:59, PostgreSQL ±15:59).
    None stays None."""
    if value is None:
        return None
    tz = tz or building_tz()
    return value.replace(tzinfo=tz) if timezone.is_naive(value) else value.astimezone(tz)


def at(day: date, clock: time, tz: ZoneInfo | None = None) -> datetime:
    """The instant a clock in `tz` shows `clock` on `day`. DST-correct: the zone gives the
    offset of that very day (a wall time the spring change skips reads as the offset
    before it, one that the autumn change repeats as its first occurrence)."""
    return datetime.combine(day, clock, tzinfo=tz or building_tz())


def local_midnight(day: date, tz: ZoneInfo | None = None) -> datetime:
    """The start of a local day."""
    return at(day, time(0), tz)


def today(tz: ZoneInfo | None = None, now: datetime | None = None) -> date:
    """The local date of `now` (default: now) in `tz`."""
    return local(now or timezone.now(), tz).date()


# ------------------------------------------------------------------ months


def month_bounds(month: date, tz: ZoneInfo | None = None) -> tuple[datetime, datetime]:
    """The local month of the day `month`: its first local midnight and the next month's."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return local_midnight(first, tz), local_midnight(following, tz)


def month_of(moment: datetime, tz: ZoneInfo | None = None) -> date:
    """The first day of the local month `moment` falls in."""
    return local(moment, tz).date().replace(day=1)


def parse_month(text: str) -> date:
    """`YYYY-MM` → the first day of that month; ValueError otherwise."""
    if len(text) != 7 or text[4] != "-":
        raise ValueError("a month is written YYYY-MM")
    return date(int(text[:4]), int(text[5:]), 1)


def format_month(month: date) -> str:
    """The first day of a month → `YYYY-MM`."""
    return f"{month:%Y-%m}"
