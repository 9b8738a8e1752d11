"""What is free: resources free for a window, and the free slots of one resource on a day.

A handful of queries whatever the number of bookings: candidate resources, their policies,
closures, and the bookings overlapping the (buffer-widened) window, read once. The rules are
the engine's (blocked ranges, opening hours, closures), applied in Python to that small set.
"""

from collections import defaultdict
from datetime import date, datetime, time, timedelta

from bookings.engine import blocked_range, building_tz, closed_days
from bookings.models import HOLDING, Booking, BookingPolicy, Resource
from bookings.policy import opening_intervals, within_opening_hours


def policies_of(resources) -> dict[int, BookingPolicy]:
    """Each resource's policy by resource id, from one query of the (few) policies."""
    policies = list(BookingPolicy.objects.all())
    by_id = {p.pk: p for p in policies}
    defaults = {p.default_for_kind: p for p in policies if p.default_for_kind}
    builtin = BookingPolicy(name="built-in")
    return {
        r.pk: by_id[r.policy_id] if r.policy_id else defaults.get(r.kind, builtin)
        for r in resources
    }


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


def free_resources(
    start: datetime, end: datetime, *, kind=None, min_capacity=None, features=()
) -> list[Resource]:
    """Resources that could be booked for [start, end]: no holding booking in the way of the
    buffers, within opening hours, not closed."""
    tz = building_tz()
    resources = candidates(kind, min_capacity, features)
    if not resources:
        return []
    policies = policies_of(resources)
    widest = max(
        p.buffer_before_minutes + p.buffer_after_minutes + r.warm_up_minutes + r.cool_down_minutes
        for r in resources
        for p in [policies[r.pk]]
    )
    margin = timedelta(minutes=widest)
    # Unfiltered, every resource is a candidate: the range index alone narrows the bookings.
    filtered = kind or min_capacity or features
    busy = busy_ranges(
        [r.pk for r in resources] if filtered else None, start - margin, end + margin
    )
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    closed = {}
    free = []
    for resource in resources:
        pol = policies[resource.pk]
        if pol.pk not in closed:
            closed[pol.pk] = closed_days(pol, local_start.date(), local_end.date())
        if local_start.date() in closed[pol.pk]:
            continue
        if not within_opening_hours(pol.opening_hours, local_start, local_end):
            continue
        b_start, b_end = blocked_range(resource, pol, start, end)
        if any(s < b_end and e > b_start for s, e in busy.get(resource.pk, ())):
            continue
        free.append(resource)
    return _without_busy_companions(free, start, end)


def _without_busy_companions(free: list[Resource], start: datetime, end: datetime):
    """Drop resources whose companions (booked with them, atomically) are taken: two more
    queries, whatever the number of resources."""
    links = defaultdict(list)
    through = Resource.companions.through.objects.filter(from_resource__in=[r.pk for r in free])
    for from_id, to_id in through.values_list("from_resource_id", "to_resource_id"):
        links[from_id].append(to_id)
    if not links:
        return free
    companions = {
        r.pk: r for r in Resource.objects.filter(pk__in={c for v in links.values() for c in v})
    }
    policies = policies_of(companions.values())
    widest = max(p.buffer_before_minutes + p.buffer_after_minutes for p in policies.values())
    margin = timedelta(
        minutes=widest + max(r.warm_up_minutes + r.cool_down_minutes for r in companions.values())
    )
    busy = busy_ranges(list(companions), start - margin, end + margin)

    def taken(companion_id):
        c = companions[companion_id]
        b_start, b_end = blocked_range(c, policies[c.pk], start, end)
        return any(s < b_end and e > b_start for s, e in busy.get(c.pk, ()))

    return [r for r in free if not any(taken(c) for c in links.get(r.pk, ()))]


def free_slots(resource: Resource, day: date) -> list[tuple[datetime, datetime]]:
    """The free intervals of a resource on a local day, on the policy's slot steps, each at
    least the minimum duration long."""
    tz = building_tz()
    pol = policies_of([resource])[resource.pk]
    if day in closed_days(pol, day, day):
        return []
    midnight = datetime.combine(day, time(0, 0), tzinfo=tz)
    before = timedelta(minutes=pol.buffer_before_minutes + resource.warm_up_minutes)
    after = timedelta(minutes=pol.buffer_after_minutes + resource.cool_down_minutes)
    day_end = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz)
    busy = busy_ranges([resource.pk], midnight - before - after, day_end + before + after)
    # A new [s, e] must keep [s - before, e + after] clear of every blocked range.
    taken = sorted((s - after, e + before) for s, e in busy.get(resource.pk, ()))
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
                slots.append((s.astimezone(tz), e.astimezone(tz)))
            cursor = max(cursor, t_end)
            if cursor >= closes:
                break
    return slots


def _at(day: date, minutes: int, tz) -> datetime:
    if minutes >= 24 * 60:
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=tz)
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)


def _ceil(moment: datetime, step: timedelta, origin: datetime) -> datetime:
    offset = (moment - origin) % step
    return moment if not offset else moment + (step - offset)


def _floor(moment: datetime, step: timedelta, origin: datetime) -> datetime:
    return moment - (moment - origin) % step


def next_free_slot(resource: Resource, after: datetime, days: int = 14):
    """The first free interval starting at or after `after`, within `days` days; or None."""
    tz = building_tz()
    day = after.astimezone(tz).date()
    for i in range(days):
        for s, e in free_slots(resource, day + timedelta(days=i)):
            if e > after:
                return max(s, after), e
    return None
