"""What is free: resources free for a window, and the free slots of one resource on a day.

A handful of queries whatever the number of bookings and resources: the catalogue
(bookings.catalogue: resources, policies, closures, held in memory and checked by version) and
the bookings overlapping the (buffer-widened) window, read once. The rules are
the engine's (blocked ranges, opening hours, closures), applied in Python to that small set,
each resource's in its own time zone (its site's: catalogue entries know it).
"""

import json
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from django.db import connection

from bookings import catalogue
from bookings.engine import blocked_range, margins
from bookings.models import HOLDING, Booking, BookingPolicy, Resource
from bookings.policy import opening_intervals, within_opening_hours
from campus import clock


def policies_of(resources) -> dict[int, BookingPolicy]:
    """Each resource's policy by resource id (engine.policy_for for many), from the catalogue."""
    cat = catalogue.current()
    return {r.pk: cat.policy_of(r) for r in resources}


def candidates(kind=None, min_capacity=None, features=(), resource_ids=None):
    """Active resources matching the filters: plain rows, nothing joined or prefetched (the
    ORM's related objects cost ~10x the query for 500 resources; see bench/README.md)."""
    qs = Resource.objects.filter(is_active=True)
    if kind:
        qs = qs.filter(kind=kind)
    if min_capacity:
        qs = qs.filter(capacity__gte=min_capacity)
    for code in set(features):
        qs = qs.filter(space__features__code=code)
    if resource_ids is not None:
        qs = qs.filter(pk__in=resource_ids)
    return list(qs.order_by("code"))


def matching(cat: catalogue.Catalogue, kind=None, min_capacity=None, features=()):
    """The catalogue's active resources matching the filters, by code (what `candidates`
    reads from the database)."""
    wanted = set(features)
    return [
        e
        for e in cat.active
        if (not kind or e.kind == kind)
        and (not min_capacity or e.capacity >= min_capacity)
        and wanted <= e.features
    ]


def busy_ranges(resource_ids, start: datetime, end: datetime):
    """Blocked ranges of holding bookings that touch [start, end], per resource (of these
    resources, or of all when resource_ids is None)."""
    ranges = defaultdict(list)
    qs = Booking.objects.filter(status__in=HOLDING)
    if resource_ids is not None:
        qs = qs.filter(resource_id__in=resource_ids)
    rows = (
        qs.blocking(start, end)
        .order_by()
        .values_list("resource_id", "blocked_start", "blocked_end")
    )
    for resource_id, b_start, b_end in rows:
        ranges[resource_id].append((b_start, b_end))
    return ranges


def busy_among(windows: dict[int, tuple[datetime, datetime]]) -> set[int]:
    """The resources (of these, by id) with a holding booking in their window: one query.

    On PostgreSQL the comparison runs in the database, which answers with the busy ids only:
    one range-index probe over the union of the windows (materialised: joined first, the
    planner probed the index once per resource, ~30 ms), then each resource's own window.
    Reading the bookings' timestamps back instead cost ~5 ms per search at 1,000,000 bookings
    (~200 bookings in a one-hour window of 500 resources; bench/README.md)."""
    if not windows:
        return set()
    low = min(w[0] for w in windows.values())
    high = max(w[1] for w in windows.values())
    if connection.vendor != "postgresql":
        busy = busy_ranges(list(windows), low, high)
        return {
            pk
            for pk, (w_start, w_end) in windows.items()
            if any(s < w_end and e > w_start for s, e in busy.get(pk, ()))
        }
    # The windows as one JSON text, grouped: resources share a few margins, so a few
    # distinct windows each with its ids (500 timestamps as a parameter cost ~3.5 ms to send).
    grouped = defaultdict(list)
    for pk, window in windows.items():
        grouped[window].append(pk)
    groups = json.dumps(
        [[lo.isoformat(), hi.isoformat(), ids] for (lo, hi), ids in grouped.items()]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH hits AS MATERIALIZED (
                SELECT resource_id, blocked_start, blocked_end FROM bookings_booking
                WHERE status = ANY(%s)
                  AND tstzrange(blocked_start, blocked_end, '[)') && tstzrange(%s, %s, '[)')
            ), w AS (
                SELECT (g->>0)::timestamptz AS lo, (g->>1)::timestamptz AS hi,
                       jsonb_array_elements_text(g->2)::bigint AS id
                FROM jsonb_array_elements(%s::jsonb) AS g
            )
            SELECT DISTINCT h.resource_id FROM hits h JOIN w ON w.id = h.resource_id
            WHERE h.blocked_start < w.hi AND h.blocked_end > w.lo
            """,
            [list(HOLDING), low, high, groups],
        )
        return {row[0] for row in cursor.fetchall()}


def free_entries(
    start: datetime, end: datetime, *, kind=None, min_capacity=None, features=()
) -> list[catalogue.Entry]:
    """Resources that could be booked for [start, end], as catalogue entries: no holding
    booking in the way of the buffers, within opening hours, not closed. Two queries: the
    catalogue's version and the bookings in the window (plus one for companions)."""
    cat = catalogue.current()
    entries = matching(cat, kind, min_capacity, features)
    if not entries:
        return []
    closed = {}
    candidates, windows = [], {}
    for entry in entries:
        pol = entry.policy
        local_start, local_end = clock.local(start, entry.zone), clock.local(end, entry.zone)
        key = (pol.pk, local_start.date(), local_end.date())
        if key not in closed:
            closed[key] = cat.closed_days(pol, local_start.date(), local_end.date())
        if local_start.date() in closed[key]:
            continue
        if not within_opening_hours(pol.opening_hours, local_start, local_end):
            continue
        candidates.append(entry)
        windows[entry.pk] = blocked_range(entry, pol, start, end)
    busy = busy_among(windows)
    free = [entry for entry in candidates if entry.pk not in busy]
    return _without_busy_companions(cat, free, start, end)


def free_resources(
    start: datetime, end: datetime, *, kind=None, min_capacity=None, features=()
) -> list[Resource]:
    """`free_entries` as Resource objects of their own (the portal annotates them)."""
    ids = [
        e.pk
        for e in free_entries(start, end, kind=kind, min_capacity=min_capacity, features=features)
    ]
    found = Resource.objects.in_bulk(ids)
    return [found[pk] for pk in ids if pk in found]


def _without_busy_companions(cat, free: list, start: datetime, end: datetime):
    """Drop resources whose companions (booked with them, atomically) are taken: one more
    query when any has companions, whatever the number of resources."""
    linked = {c for e in free for c in e.companions}
    if not linked:
        return free
    windows = {pk: blocked_range(cat.by_pk[pk], cat.by_pk[pk].policy, start, end) for pk in linked}
    busy = busy_among(windows)
    return [e for e in free if not busy.intersection(e.companions)]


def free_slots(resource: Resource, day: date) -> list[tuple[datetime, datetime]]:
    """The free intervals of a resource on a local day, on the policy's slot steps, each at
    least the minimum duration long."""
    return free_slots_between([resource], day, day)[resource.pk][day]


def free_slots_between(
    resources, first: date, last: date, cat: catalogue.Catalogue | None = None
) -> dict[int, dict[date, list]]:
    """`free_slots` of each resource for each local day (of its own zone) from first to last:
    two queries (the catalogue's version and the bookings), whatever the number of resources
    and days."""
    cat = cat or catalogue.current()
    policies = {r.pk: cat.policy_of(r) for r in resources}
    zones = {r.pk: cat.zone_of(r.pk) for r in resources}
    margin = max(sum(margins(r, policies[r.pk]), timedelta()) for r in resources)
    window_start = min(clock.local_midnight(first, tz) for tz in zones.values()) - margin
    following = last + timedelta(days=1)
    window_end = max(clock.local_midnight(following, tz) for tz in zones.values()) + margin
    busy = busy_ranges([r.pk for r in resources], window_start, window_end)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    found = {}
    for resource in resources:
        pol = policies[resource.pk]
        before, after = margins(resource, pol)
        # A new [s, e] must keep [s - before, e + after] clear of every blocked range.
        taken = sorted((s - after, e + before) for s, e in busy.get(resource.pk, ()))
        closed = cat.closed_days(pol, first, last)
        # A resource withdrawn from booking (seen by staff) has no free slot to offer.
        found[resource.pk] = {
            day: []
            if day in closed or not resource.is_active
            else _slots_of_day(pol, day, taken, zones[resource.pk])
            for day in days
        }
    return found


def _slots_of_day(pol, day: date, taken: list, tz) -> list[tuple[datetime, datetime]]:
    midnight = clock.local_midnight(day, tz)
    step = timedelta(minutes=pol.slot_minutes)
    minimum = timedelta(minutes=pol.min_duration_minutes)
    slots = []
    for open_min, close_min in opening_intervals(pol.opening_hours, day):
        cursor = _at(day, open_min, tz)
        closes = _at(day, close_min, tz)
        for t_start, t_end in [*taken, (closes, closes)]:
            if t_end <= cursor:
                continue
            gap_end = min(t_start, closes)
            s = _ceil(cursor, step, midnight)
            e = _floor(gap_end, step, midnight)
            if e - s >= minimum:
                slots.append((clock.local(s, tz), clock.local(e, tz)))
            cursor = max(cursor, t_end)
            if cursor >= closes:
                break
    return slots


def _at(day: date, minutes: int, tz) -> datetime:
    if minutes >= 24 * 60:
        return clock.local_midnight(day + timedelta(days=1), tz)
    return clock.at(day, time(minutes // 60, minutes % 60), tz)


def _ceil(moment: datetime, step: timedelta, origin: datetime) -> datetime:
    offset = (moment - origin) % step
    return moment if not offset else moment + (step - offset)


def _floor(moment: datetime, step: timedelta, origin: datetime) -> datetime:
    return moment - (moment - origin) % step


def next_free_slot(resource: Resource, after: datetime, days: int = 14):
    """The first free interval ending after `after`, within `days` days; or None."""
    return next_free_slots([resource], after, days)[resource.pk]


def next_free_slots(resources, after: datetime, days: int = 14) -> dict[int, tuple | None]:
    """`next_free_slot` of each resource, in two queries whatever their number."""
    if not resources:
        return {}
    cat = catalogue.current()
    # `after`'s local day differs between zones: from the earliest, a day more to the latest.
    local_days = {clock.today(cat.zone_of(r.pk), after) for r in resources}
    first, last = min(local_days), max(local_days) + timedelta(days=days - 1)
    slots = free_slots_between(resources, first, last, cat)
    found = {}
    for resource in resources:
        found[resource.pk] = next(
            (
                (max(s, after), e)
                for day_slots in slots[resource.pk].values()
                for s, e in day_slots
                if e > after
            ),
            None,
        )
    return found
