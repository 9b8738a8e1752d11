"""Monthly reports for facility staff: utilisation per space, per kind and per machine,
measured use against booked time, the no-show rate and the busiest hours of the week.

`load_month` reads the rows (a few queries); `build` and everything it calls are pure
functions of them, exact to the minute; `to_csv` writes the report for a spreadsheet.

Rules (each resource's times in its own time zone, its site's (campus.clock): its month runs
from its first local midnight to the next month's, its hours are local):
- Bookable time of a resource: its policy's opening hours on every day of the month (no
  opening hours: the whole day), except closure days (public holidays only when the policy
  closes on them). Real minutes: a day open around the clock lasts 23 or 25 hours when the
  clocks change.
- Booked time: bookings held (confirmed, checked in) that are not maintenance windows,
  clipped to the month. Utilisation is booked over bookable time.
- Measured use (machines): the minutes of the machine's stopped usage sessions, clipped to
  the month, against its booked time.
- No-show rate: released / (released + checked in + confirmed and already over), over the
  bookings (not maintenance) that start in the month.
- Busiest hours: booked minutes per local weekday and hour of the day, all resources
  together.
Percentages are given in tenths of a percent, rounded half up (125 is 12.5 %).
"""

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from bookings import catalogue
from bookings.engine import closed_days
from bookings.models import Booking, Resource, ResourceKind, Status
from bookings.policy import opening_intervals
from campus import clock
from common import spreadsheet

HELD = (Status.CONFIRMED, Status.CHECKED_IN)
LABEL_SPACE, BAR_SPACE = 200, 330  # of the chart's 600 units of width
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class ResourceRow:
    id: int
    code: str
    name: str
    kind: str
    opening_hours: tuple
    closed_days: frozenset
    tz: ZoneInfo | None = None  # its site's; None: the month's (MonthRows.tz)


@dataclass(frozen=True)
class BookingRow:
    resource_id: int
    start: datetime
    end: datetime
    status: str


@dataclass(frozen=True)
class SessionRow:
    resource_id: int
    started_at: datetime
    stopped_at: datetime


@dataclass(frozen=True)
class MonthRows:
    """Everything a month's report depends on."""

    month: date  # its first day
    now: datetime
    resources: tuple[ResourceRow, ...]
    bookings: tuple[BookingRow, ...]
    sessions: tuple[SessionRow, ...] = ()
    tz: ZoneInfo = field(default_factory=clock.building_tz)  # of resources without their own


@dataclass(frozen=True)
class Use:
    """Booked against bookable minutes of one resource, or of a kind of resource."""

    key: str
    name: str
    kind: str
    bookable_minutes: int
    booked_minutes: int

    @property
    def percent_tenths(self) -> int:
        return percent_tenths(self.booked_minutes, self.bookable_minutes)


@dataclass(frozen=True)
class Measured:
    """A machine's measured minutes against its booked minutes."""

    code: str
    name: str
    booked_minutes: int
    measured_minutes: int

    @property
    def percent_tenths(self) -> int:
        return percent_tenths(self.measured_minutes, self.booked_minutes)


@dataclass(frozen=True)
class NoShows:
    key: str
    released: int
    checked_in: int
    past_confirmed: int

    @property
    def counted(self) -> int:
        return self.released + self.checked_in + self.past_confirmed

    @property
    def percent_tenths(self) -> int:
        return percent_tenths(self.released, self.counted)


@dataclass
class Report:
    month: str
    spaces: list[Use]
    kinds: list[Use]
    equipment: list[Use]
    measured: list[Measured]
    no_shows: list[NoShows]  # per kind, then "all"
    busiest: list[list[int]]  # [weekday 0 = Monday][hour] → booked minutes


# ------------------------------------------------------------------ pure helpers


def percent_tenths(part: int, whole: int) -> int:
    """part / whole in tenths of a percent, rounded half up; 0 when whole is 0."""
    if whole <= 0:
        return 0
    return (2 * 1000 * part + whole) // (2 * whole)


def minutes_between(start: datetime, end: datetime) -> int:
    # In UTC: Python subtracts two times of the same zone by their wall clocks, which is
    # an hour off across a clock change.
    return int((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()) // 60


def overlap_minutes(start: datetime, end: datetime, lo: datetime, hi: datetime) -> int:
    s, e = max(start, lo), min(end, hi)
    return minutes_between(s, e) if e > s else 0


def bookable_minutes(opening_hours, closed: frozenset, month: date, tz: ZoneInfo) -> int:
    """The real minutes a resource is open in the month."""
    first, following = clock.month_bounds(month, tz)
    total = 0
    day = first.date()
    while day < following.date():
        if day not in closed:
            for opens, closes in opening_intervals(list(opening_hours), day):
                # Wall-clock ends: 24:00 is the next local midnight, whatever the day's length.
                if closes >= 24 * 60:
                    end = clock.local_midnight(day + timedelta(days=1), tz)
                else:
                    end = clock.at(day, time(closes // 60, closes % 60), tz)
                start = clock.at(day, time(opens // 60, opens % 60), tz)
                total += minutes_between(start, end)
        day += timedelta(days=1)
    return total


def busiest_hours(bookings, windows, tz_of) -> list[list[int]]:
    """Booked minutes per local weekday and hour, each booking within its resource's month
    (`windows`: resource id → (lo, hi)) and in its zone (`tz_of`: resource id → zone); in
    whole-hour zones (Paris) UTC hours are aligned with local ones, so each booking is cut at
    UTC hour boundaries."""
    grid = [[0] * 24 for _ in range(7)]
    for b in bookings:
        lo, hi = windows[b.resource_id]
        t, end = max(b.start, lo).astimezone(UTC), min(b.end, hi).astimezone(UTC)
        while t < end:
            step = min(t.replace(minute=0, second=0, microsecond=0) + HOUR, end)
            local = clock.local(t, tz_of(b.resource_id))
            grid[local.weekday()][local.hour] += minutes_between(t, step)
            t = step
    return grid


def build(rows: MonthRows) -> Report:
    zones = {r.id: r.tz or rows.tz for r in rows.resources}

    def tz_of(resource_id: int) -> ZoneInfo:
        return zones.get(resource_id, rows.tz)

    windows = defaultdict(lambda: clock.month_bounds(rows.month, rows.tz))
    windows.update({pk: clock.month_bounds(rows.month, tz) for pk, tz in zones.items()})
    held = [b for b in rows.bookings if b.status in HELD]
    booked = defaultdict(int)
    for b in held:
        booked[b.resource_id] += overlap_minutes(b.start, b.end, *windows[b.resource_id])
    uses = [
        Use(
            r.code,
            r.name,
            r.kind,
            bookable_minutes(r.opening_hours, r.closed_days, rows.month, tz_of(r.id)),
            booked[r.id],
        )
        for r in sorted(rows.resources, key=lambda r: r.code)
    ]
    kinds = []
    for kind in sorted({u.kind for u in uses}):
        of_kind = [u for u in uses if u.kind == kind]
        kinds.append(
            Use(
                kind,
                str(ResourceKind(kind).label) if kind in ResourceKind.values else kind,
                kind,
                sum(u.bookable_minutes for u in of_kind),
                sum(u.booked_minutes for u in of_kind),
            )
        )
    measured = defaultdict(int)
    for s in rows.sessions:
        window = windows[s.resource_id]
        measured[s.resource_id] += overlap_minutes(s.started_at, s.stopped_at, *window)
    machines = [r for r in sorted(rows.resources, key=lambda r: r.code) if r.kind == "equipment"]
    kind_of = {r.id: r.kind for r in rows.resources}
    counts = defaultdict(lambda: [0, 0, 0])
    for b in rows.bookings:
        lo, hi = windows[b.resource_id]
        if not lo <= b.start < hi:
            continue
        if b.status == Status.RELEASED:
            slot = 0
        elif b.status == Status.CHECKED_IN:
            slot = 1
        elif b.status == Status.CONFIRMED and b.end <= rows.now:
            slot = 2
        else:
            continue
        for key in (kind_of.get(b.resource_id, "?"), "all"):
            counts[key][slot] += 1
    no_shows = [NoShows(k, *counts[k]) for k in sorted(counts) if k != "all"]
    no_shows.append(NoShows("all", *counts["all"]))
    return Report(
        month=clock.format_month(rows.month),
        spaces=[u for u in uses if u.kind != "equipment"],
        kinds=kinds,
        equipment=[u for u in uses if u.kind == "equipment"],
        measured=[
            Measured(r.code, r.name, booked[r.id], measured[r.id])
            for r in machines
            if booked[r.id] or measured[r.id]
        ],
        no_shows=no_shows,
        busiest=busiest_hours(held, windows, tz_of),
    )


def bar_chart(items: list[tuple[str, int, str]], row_height: int = 26) -> dict:
    """An SVG bar chart's geometry: (label, value, value as text) → bars scaled to the
    largest value, one row each; the template draws them."""
    top = max((value for _label, value, _text in items), default=0) or 1
    bars = []
    for i, (label, value, text) in enumerate(items):
        width = round(BAR_SPACE * value / top, 1)
        y = i * row_height
        bars.append(
            {
                "label": label,
                "text": text,
                "bar_y": y + 5,
                "text_y": y + 18,
                "width": width,
                "text_x": LABEL_SPACE + width + 6,
            }
        )
    return {"bars": bars, "height": max(len(bars), 1) * row_height, "row": row_height}


def heat_levels(grid: list[list[int]]) -> list[list[int]]:
    """0 for an empty cell, else 1 to 4 by quarter of the busiest cell (for shading only:
    every cell also shows its number)."""
    top = max((m for row in grid for m in row), default=0)
    return [[0 if not m else -(-4 * m // top) for m in row] for row in grid]


def hours_tenths(minutes: int) -> int:
    """Minutes as tenths of an hour, rounded half up: 95 → 16."""
    return (2 * minutes + 6) // 12  # minutes / 6 rounded half up


def hours(minutes: int, decimal_comma: bool = False) -> str:
    """Minutes as hours with one decimal, rounded half up: 95 → "1.6"."""
    return spreadsheet.cell(spreadsheet.tenths(hours_tenths(minutes)), decimal_comma=decimal_comma)


def percent(tenths: int, decimal_comma: bool = False) -> str:
    return spreadsheet.cell(spreadsheet.tenths(tenths), decimal_comma=decimal_comma)


def to_csv(report: Report, *, decimal_comma: bool = False) -> bytes:
    """Semicolon-separated, UTF-8 with a BOM, CRLF lines: one block per table, each with
    its own header, blocks separated by an empty line. Names are defused for spreadsheets
    and figures written as numbers (`common.spreadsheet`)."""
    out = io.StringIO()
    w = spreadsheet.Writer(out, decimal_comma=decimal_comma)
    h = lambda m: spreadsheet.tenths(hours_tenths(m))  # noqa: E731
    p = spreadsheet.tenths
    w.writerow(["utilisation", report.month])
    w.writerow(["scope", "code", "name", "kind", "bookable_hours", "booked_hours", "percent"])
    for scope, rows in (("kind", report.kinds), ("resource", report.spaces + report.equipment)):
        for u in rows:
            w.writerow(
                [scope, u.key, u.name, u.kind, h(u.bookable_minutes), h(u.booked_minutes)]
                + [p(u.percent_tenths)]
            )
    w.writerow([])
    w.writerow(["measured_use", report.month])
    w.writerow(["code", "name", "booked_hours", "measured_hours", "percent"])
    for m in report.measured:
        w.writerow(
            [m.code, m.name, h(m.booked_minutes), h(m.measured_minutes), p(m.percent_tenths)]
        )
    w.writerow([])
    w.writerow(["no_shows", report.month])
    w.writerow(["kind", "released", "checked_in", "past_confirmed", "percent"])
    for n in report.no_shows:
        w.writerow([n.key, n.released, n.checked_in, n.past_confirmed, p(n.percent_tenths)])
    w.writerow([])
    w.writerow(["busiest_hours_booked", report.month])
    w.writerow(["weekday", *[f"{hour:02d}h" for hour in range(24)]])
    for day, minutes in zip(
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], report.busiest, strict=True
    ):
        w.writerow([day, *[h(m) for m in minutes]])
    return (spreadsheet.BOM + out.getvalue()).encode("utf-8")


# ------------------------------------------------------------------ loading


def load_month(month: date, now: datetime | None = None) -> MonthRows:
    """The rows of a month: bookable resources with their hours, closures and zones, bookings
    and machine sessions overlapping it (in any of their zones)."""
    from labs.models import UsageSession  # labs builds on bookings, not the other way

    cat = catalogue.current()
    default = clock.building_tz()
    zones = {e.zone for e in cat.by_pk.values()} | {default}
    windows = [clock.month_bounds(month, tz) for tz in zones]
    lo, hi = min(w[0] for w in windows), max(w[1] for w in windows)
    bookings = list(
        Booking.objects.filter(is_maintenance=False, start__lt=hi, end__gt=lo).values_list(
            "resource_id", "start", "end", "status"
        )
    )
    used = {b[0] for b in bookings}
    resources = list(Resource.objects.filter(is_active=True) | Resource.objects.filter(pk__in=used))
    last = clock.month_bounds(month)[1].date() - timedelta(days=1)
    closed_by_policy = {}
    rows = []
    for r in resources:
        pol = cat.policy_of(r)
        key = (pol.pk, pol.closed_on_public_holidays)
        if key not in closed_by_policy:
            closed_by_policy[key] = closed_days(pol, month, last)
        rows.append(
            ResourceRow(
                r.pk,
                r.code,
                r.name,
                r.kind,
                tuple(map(tuple, pol.opening_hours)),
                closed_by_policy[key],
                cat.zone_of(r.pk),
            )
        )
    sessions = UsageSession.objects.filter(
        stopped_at__isnull=False, started_at__lt=hi, stopped_at__gt=lo
    ).values_list("equipment__resource_id", "started_at", "stopped_at")
    return MonthRows(
        month=month,
        now=now or timezone.now(),
        resources=tuple(rows),
        bookings=tuple(BookingRow(*b) for b in bookings),
        sessions=tuple(SessionRow(*s) for s in sessions),
        tz=default,
    )


def monthly_report(month: date, now: datetime | None = None) -> Report:
    return build(load_month(month, now))
