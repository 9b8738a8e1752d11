"""The one qualification rule (invariant 4): is this person qualified for this machine at t.

Booking an equipment (`bookings.engine` calls `is_qualified`, and `unqualified` to review
the future bookings when qualifications are revoked or run out), opening its lab's door and
powering it (the access decision loads `qualified_targets`) and the portal all answer with
`in_force`, a pure function of a qualification's dates. Renewal on use moves `valid_until`
when a session starts (`record_use`), so that reading stays a date comparison.

The equipment time rule that is not a calendar rule lives here too: a machine that may not
run unattended is booked only within its lab's opening hours (`check_unattended`).
"""

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db.models import Q
from django.utils.translation import gettext as _

from bookings.engine import policy_for
from bookings.models import BookingPolicy, Resource
from bookings.policy import PolicyRefused, within_opening_hours
from campus import clock
from labs.models import Equipment, Qualification


@dataclass(frozen=True)
class QualificationFacts:
    """A qualification as the rule needs it: its target and its dates (aware datetimes)."""

    equipment_id: int | None
    equipment_class: str
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, q: Qualification) -> "QualificationFacts":
        return cls(q.equipment_id, q.equipment_class, q.valid_from, q.valid_until, q.revoked_at)


def in_force(q, at_start: datetime, at_end: datetime | None = None) -> bool:
    """True when the qualification holds over [at_start, at_end] (one instant if no end).

    Revoked at T means not in force from T on; `valid_until` is the last instant in force.
    """
    until = at_end or at_start
    return (
        q.valid_from <= at_start
        and (q.valid_until is None or q.valid_until >= until)
        and (q.revoked_at is None or q.revoked_at > until)
    )


def covers(
    facts: Iterable,
    equipment_ids: set[int],
    classes: set[str],
    at_start: datetime,
    at_end: datetime | None = None,
) -> bool:
    """Pure: does one of these qualifications cover one of the machines (by id or class)?"""
    return any(
        (q.equipment_id in equipment_ids or (q.equipment_class and q.equipment_class in classes))
        and in_force(q, at_start, at_end)
        for q in facts
    )


def targets_of(resources: Iterable) -> dict[int, tuple[set[int], set[str]]]:
    """The machines each resource stands for, by resource id: itself (equipment), or every
    machine located in a lab space; (machine ids, classes). One query for all of them."""
    resources = list(resources)
    machines = [r.pk for r in resources if r.kind == Resource.Kind.EQUIPMENT]
    spaces = [r.space_id for r in resources if r.kind != Resource.Kind.EQUIPMENT and r.space_id]
    rows = []
    if machines or spaces:
        rows = list(
            Equipment.objects.filter(
                Q(resource_id__in=machines) | Q(location_id__in=spaces)
            ).values_list("pk", "equipment_class", "resource_id", "location_id")
        )
    found = {}
    for r in resources:
        if r.kind == Resource.Kind.EQUIPMENT:
            pairs = [(pk, cls) for pk, cls, res, _lab in rows if res == r.pk]
        elif r.space_id:
            pairs = [(pk, cls) for pk, cls, _res, lab in rows if lab == r.space_id]
        else:
            pairs = []
        found[r.pk] = ({pk for pk, _c in pairs}, {c for _pk, c in pairs})
    return found


def is_qualified(
    person_id: int, resource, at_start: datetime, at_end: datetime | None = None
) -> bool:
    """True when a qualification covers the equipment (or its class) over the whole period.

    For a lab space, a qualification on any equipment located in that lab counts.
    """
    ids, classes = targets_of([resource])[resource.pk]
    if not ids:
        return False
    rows = Qualification.objects.filter(
        Q(equipment_id__in=ids) | Q(equipment_class__in=classes), person_id=person_id
    )
    return covers([QualificationFacts.of(q) for q in rows], ids, classes, at_start, at_end)


def unqualified(
    bookings: Iterable, *, revoking: Qualification | None = None, at: datetime | None = None
) -> list:
    """The bookings (with `person_id`, `resource`, `start`, `end`) that no qualification of
    their person covers over their whole time, by `covers`; with `revoking`, as if that
    qualification were revoked at `at` (what revoking it now would leave uncovered). Two
    queries however many bookings: the periodic review reads every future machine booking."""
    bookings = list(bookings)
    if not bookings:
        return []
    machines = targets_of({b.resource_id: b.resource for b in bookings}.values())
    facts = defaultdict(list)
    for q in Qualification.objects.filter(person_id__in={b.person_id for b in bookings}):
        fact = QualificationFacts.of(q)
        if revoking is not None and q.pk == revoking.pk and at is not None:
            fact = replace(fact, revoked_at=min(at, fact.revoked_at or at))
        facts[q.person_id].append(fact)
    return [
        b
        for b in bookings
        if not covers(facts[b.person_id], *machines[b.resource_id], b.start, b.end)
    ]


def targets(qualifications, equipment, at: datetime) -> tuple[frozenset[int], frozenset[int]]:
    """The machines that `qualifications` (QualificationFacts) in force at `at` cover, directly
    or by class, among `equipment` rows (pk, class, location), and the lab spaces those
    machines stand in (whose doors the qualification opens)."""
    live = [q for q in qualifications if in_force(q, at)]
    direct = {q.equipment_id for q in live if q.equipment_id}
    classes = {q.equipment_class for q in live if q.equipment_class}
    pairs = [(pk, lab) for pk, cls, lab in equipment if pk in direct or cls in classes]
    return frozenset(pk for pk, _s in pairs), frozenset(s for _pk, s in pairs)


def qualified_targets(person_id: int, at: datetime) -> tuple[frozenset[int], frozenset[int]]:
    """For the access decision: `targets` of one person's qualifications (two queries)."""
    facts = [QualificationFacts.of(q) for q in Qualification.objects.filter(person_id=person_id)]
    live = [q for q in facts if in_force(q, at)]
    if not live:
        return frozenset(), frozenset()
    direct = {q.equipment_id for q in live if q.equipment_id}
    classes = {q.equipment_class for q in live if q.equipment_class}
    rows = Equipment.objects.filter(Q(pk__in=direct) | Q(equipment_class__in=classes))
    return targets(live, rows.values_list("pk", "equipment_class", "location_id"), at)


def requires_qualification(resource) -> bool:
    """Equipment always needs a qualification; a space only when its policy says so."""
    return resource.kind == "equipment"


def add_months(moment: datetime, months: int) -> datetime:
    """The same local wall-clock time `months` later (clamped to the month's last day)."""
    local = clock.local(moment)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def record_use(person_id: int, equipment: Equipment, at: datetime) -> int:
    """A use of the machine at `at`: every qualification of that person covering it and in
    force then is marked used, and those renewed on use run at least N months from `at`.

    An expired or revoked qualification is never revived. Returns how many were renewed.
    """
    rows = Qualification.objects.filter(
        Q(equipment_id=equipment.pk) | Q(equipment_class=equipment.equipment_class),
        person_id=person_id,
    )
    renewed = 0
    for q in rows:
        if not in_force(q, at):
            continue
        q.last_used_at = at
        fields = ["last_used_at"]
        if q.renew_on_use_months and q.valid_until is not None:
            extended = add_months(at, q.renew_on_use_months)
            if extended > q.valid_until:
                q.valid_until = extended
                fields.append("valid_until")
                renewed += 1
        q.save(update_fields=fields)
    return renewed


def day_hours(equipment: Equipment) -> list:
    """The lab's opening hours: its resource's policy, else the default policy for labs."""
    lab = Resource.objects.filter(space_id=equipment.location_id).select_related("policy").first()
    if lab is not None:
        return policy_for(lab).opening_hours
    default = BookingPolicy.objects.filter(default_for_kind=Resource.Kind.LAB).first()
    return default.opening_hours if default else []


def check_unattended(resource, start: datetime, end: datetime, tz: ZoneInfo) -> None:
    """Refuse a run outside the lab's opening hours on a machine not allowed to run alone;
    `tz` is the machine's zone, its lab's site's."""
    if resource.kind != Resource.Kind.EQUIPMENT:
        return
    equipment = Equipment.objects.filter(resource_id=resource.pk).first()
    if equipment is None or equipment.unattended_allowed:
        return
    hours = day_hours(equipment)
    if not within_opening_hours(hours, clock.local(start, tz), clock.local(end, tz)):
        raise PolicyRefused(
            _("This machine may not run unattended: book it within the lab's opening hours."),
            code="overnight_not_allowed",
        )


@dataclass(frozen=True)
class Standing:
    """Where a person stands on a machine, for the portal: `valid` (until `until`, None for no
    end), `expired` (since `until`), or `none`."""

    state: str
    until: datetime | None = None


def standings(person_id: int, machines: Iterable[Equipment], at: datetime) -> dict[int, Standing]:
    """Each machine's Standing for this person at `at`, by `in_force` (one query in all)."""
    facts = [QualificationFacts.of(q) for q in Qualification.objects.filter(person_id=person_id)]
    found = {}
    for eq in machines:
        mine = [
            q
            for q in facts
            if q.equipment_id == eq.pk
            or (q.equipment_class and q.equipment_class == eq.equipment_class)
        ]
        live = [q for q in mine if in_force(q, at)]
        past = [q for q in mine if q.valid_from <= at and not in_force(q, at)]
        if live:
            ends = [q.valid_until for q in live]
            found[eq.pk] = Standing("valid", None if None in ends else max(ends))
        elif past:
            ended = [min(d for d in (q.valid_until, q.revoked_at) if d is not None) for q in past]
            found[eq.pk] = Standing("expired", max(ended))
        else:
            found[eq.pk] = Standing("none")
    return found
