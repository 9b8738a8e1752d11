"""Who is inside the building now, for a roll call: read from the audit log's granted
decisions at perimeter doors whose reader counts one way (entry or exit).

Someone is inside when their last such grant since local midnight was at an entry reader.
Doors counting both ways say nothing about direction and are ignored; so are people who came
in before midnight (a night shift shows up again at its next badge). A grant is not a passage:
someone who badged in and turned back still shows, which is the safe side for a roll call.
"""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from access.models import AuditEvent, Credential, Door
from campus import clock
from campus.models import Person


@dataclass(frozen=True)
class Presence:
    """One person (or visitor) inside: their last entry and where."""

    name: str
    entered_at: datetime
    door: str
    person_id: int | None = None
    tenant: str = ""
    phone: str = ""
    visitor_of: str = ""  # the host's name, for a visitor

    @property
    def is_visitor(self) -> bool:
        return bool(self.visitor_of)


def since_midnight(now: datetime) -> datetime:
    """Local midnight of `now`'s day in the default zone (campus.clock: who is inside counts
    every site's perimeter doors)."""
    return clock.local_midnight(clock.today(now=now))


def who_is_inside(now: datetime | None = None) -> list[Presence]:
    now = now or timezone.now()
    directions = dict(
        Door.objects.filter(kind=Door.Kind.PERIMETER, direction__in=["in", "out"]).values_list(
            "pk", "direction"
        )
    )
    grants = (
        AuditEvent.objects.filter(
            kind=AuditEvent.Kind.DECISION,
            result="grant",
            door__in=list(directions),
            ts__gte=since_midnight(now),
            ts__lte=now,
        )
        .order_by("ts", "id")
        .values_list("ts", "door", "person_id", "credential_id")
    )
    last = {}
    for ts, door, person_id, credential_id in grants.iterator(chunk_size=2000):
        key = ("person", person_id) if person_id else ("badge", credential_id)
        if key[1] is not None:
            last[key] = (directions[door], ts, door)
    inside = {key: (ts, door) for key, (way, ts, door) in last.items() if way == "in"}

    people = Person.objects.select_related("tenant").in_bulk(
        [pk for kind, pk in inside if kind == "person"]
    )
    badges = Credential.objects.select_related("visitor_pass__host", "holder__tenant").in_bulk(
        [pk for kind, pk in inside if kind == "badge"]
    )
    found = []
    for (kind, pk), (ts, door) in inside.items():
        if kind == "person" and pk in people:
            p = people[pk]
            found.append(_person(p, ts, door))
        elif kind == "badge" and pk in badges:
            badge = badges[pk]
            if badge.visitor_pass_id:
                visit = badge.visitor_pass
                label = visit.visitor_name
                if visit.visitor_company:
                    label = f"{label} ({visit.visitor_company})"
                found.append(Presence(label, ts, door, visitor_of=visit.host.get_full_name()))
            elif badge.holder_id:
                found.append(_person(badge.holder, ts, door))
            else:
                found.append(Presence(_("Badge …%(hint)s") % {"hint": badge.uid_hint}, ts, door))
    return sorted(found, key=lambda p: (p.is_visitor, p.name.casefold()))


def _person(p: Person, ts: datetime, door: str) -> Presence:
    return Presence(
        p.get_full_name() or p.email,
        ts,
        door,
        person_id=p.pk,
        tenant=p.tenant.name if p.tenant_id else "",
        phone=p.phone,
    )
