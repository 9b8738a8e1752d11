"""The facts of one access decision, read from the database (`load_door_facts`,
`load_equipment_facts`) or from the MQTT bridge's in-memory copy (`FactCache`).

Both build the same `decision.Facts` with the same helpers; `decision.decide` then answers.
Nothing here decides: the rules live in `access.decision` (doors and machines) and
`labs.qualifications.in_force` (invariant 4: which trainings are in force).

Queries, whatever the data (tested with django_assert_max_num_queries):
- `load_door_facts`: at most 8 — the badge with its holder, tenant and visitor pass; the
  tenant's leases; the holder's bookings covering now and their resources' places (two, the
  second only when a booking is found); their qualifications and the machines they cover
  (two: `labs.qualifications.qualified_targets`); the site mode; the doors of the door's
  controller, with their spaces' zones (the door's zone) and whether it leads into a bookable
  room. Fewer when there is no holder.
- `load_equipment_facts`: at most 8 — the same first six, the machine's status and zone,
  and whether a maintenance window covers now.
- `FactCache.door_facts`: at most 1 — the bookings probe (only for a badge with a holder;
  none when the bridge probed a whole batch of scans at once, `probe_bookings`).

The cache holds the slow-changing facts (badges by hash, people, tenants, leases, doors with
their time zones, spaces, qualifications, the site mode) and reloads them all whenever
`access.models.ChangeVersion` moves: database triggers bump it on any write to those tables,
and the bridge checks it when PostgreSQL notifies the change (access.changefeed.Listener) and
every 0.5 s anyway (the only way on SQLite). A full reload is simple and cannot drift: a
revocation reaches decisions within one reload (0.2-0.4 s for the 2,000-badge bench campus)
after its commit on PostgreSQL, plus the poll interval on SQLite.
Bookings are not cached (they change all day): "does this person hold a booking covering now"
is one probe of the index `booking_person_end` (`probe_bookings`). Time also changes facts without
a write: leases, contracts, badge and visitor validity are compared with `now` at each
decision; qualifications are reloaded when the earliest validity bound among them passes.
"""

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import F, Min, Q

from access import decision
from access.models import ChangeVersion, Credential, Door, SiteMode, locked_down
from bookings.models import ACTIVE, Booking, Resource
from campus import clock
from campus.models import Lease, Person, Tenant
from labs.models import Equipment, Qualification
from labs.qualifications import QualificationFacts, qualified_targets, targets

log = logging.getLogger(__name__)

# Machine states that refuse a session (`maintenance`). In use: someone else's session runs.
UNUSABLE = ("maintenance", "out_of_order", "to_check")
# The widest early window of the decision (doors 15 min, machines 10): the probe loads the
# bookings that may matter, `decide` applies the exact window.
EARLIEST = max(decision.DOOR_EARLY, decision.EQUIPMENT_EARLY)
NO_QUALIFICATIONS = decision.TrainedFor()


# The ORM path from a door to its space's site's zone name.
ZONE_OF_DOOR = f"space__{clock.ZONE_OF_SPACE}"


def door_zones(rows) -> tuple[dict[str, ZoneInfo], dict[str, ZoneInfo]]:
    """Each door's time zone, and each controller's, from (door id, controller id, zone name
    of the door's space's site or None) rows: the rule of campus.clock for doors.

    A door leading into a space keeps time in that space's site's zone. A controller is wired
    to doors of one place: its zone is the one its doors' spaces share, and a door without a
    space (a perimeter door) takes its controller's; a controller with no such door, or with
    doors in several zones, is in the default zone. The controller's zone is also the one its
    allow-list names, in which it judges schedules offline.
    """
    named: dict[str, set[str]] = {}
    for _door, ctrl, name in rows:
        named.setdefault(ctrl, set())
        if name:
            named[ctrl].add(name)
    controllers = {
        ctrl: clock.zone(next(iter(names))) if len(names) == 1 else clock.building_tz()
        for ctrl, names in named.items()
    }
    doors = {door: clock.zone(name) if name else controllers[ctrl] for door, ctrl, name in rows}
    return doors, controllers


def tenant_in_contract(tenant: Tenant | None, day: date) -> bool:
    """An active tenant whose contract covers `day`: its people count as tenant members."""
    return (
        tenant is not None
        and tenant.status == Tenant.Status.ACTIVE
        and tenant.contract_start <= day
        and (tenant.contract_end is None or day <= tenant.contract_end)
    )


def person_facts(person: Person, tenant: Tenant | None, leases, day: date) -> decision.PersonFacts:
    """The holder as the decision sees them; `leases` are their tenant's Lease rows."""
    in_contract = tenant_in_contract(tenant, day)
    return decision.PersonFacts(
        active=person.is_active,
        roles=frozenset(person.roles),
        # No technical-access flag exists on Person yet: technical rooms open to master cards.
        technical_access=False,
        tenant_id=person.tenant_id if in_contract else None,
        leased_space_ids=frozenset(
            lease.space_id for lease in leases if in_contract and lease.covers(day)
        ),
    )


def door_facts(door: Door, bookable: bool) -> decision.DoorFacts:
    return replace(door.to_facts(), bookable=bookable)


# --- bookings: the one probe per scan ---------------------------------------------------------


@dataclass(frozen=True)
class HeldBooking:
    """A booking the probe found, with what the bridge needs beyond the facts (check-in)."""

    id: int
    facts: decision.BookingFacts


def resource_places(ids=None) -> dict[int, tuple[int | None, int | None]]:
    """Bookable resource (of `ids`, or all) → (the space its booking opens, the machine it
    powers): a machine's booking stands for the lab the machine is in. One query."""
    resources = Resource.objects.all() if ids is None else Resource.objects.filter(pk__in=ids)
    rows = resources.values_list("pk", "space_id", "equipment__pk", "equipment__location_id")
    return {pk: (space or lab, machine) for pk, space, machine, lab in rows}


def held_bookings(person_id: int, now: datetime) -> tuple[HeldBooking, ...]:
    """The person's active bookings covering now or starting within the early window: the
    bridge's probe, and the places of the resources it found (two queries at most)."""
    return probe_bookings((person_id,), now, resource_places)[person_id]


# One statement on one table for every caller (the bridge, per batch of scans; the database
# path, per badge): raw SQL, because the ORM's query compilation cost ~5× the database's work
# here (1.2 ms against 0.25 ms per scan, measured), and the resources' places are
# in the bridge's memory (joined in the statement, PostgreSQL's generic plan hashed the whole
# resource and machine tables whenever a booking was found: +0.07-0.16 ms p50 per probe at
# 200k bookings, measured). It reads the person's bookings not yet ended from the index
# (person, end, start), so its cost does not grow with the history, and takes every person of
# a batch of scans at once: one round trip and one execute for the scans that arrived together.
PROBE_SQL = (
    'SELECT person_id, id, status, start, "end", resource_id FROM bookings_booking '
    'WHERE person_id {people} AND "end" > %s AND start <= %s AND status IN (%s, %s)'
)


def probe_statement(people: list[int], now: datetime) -> tuple[str, list]:
    """The probe's SQL and parameters for this connection's database."""
    adapt = connection.ops.adapt_datetimefield_value
    window = [adapt(now), adapt(now + EARLIEST), *ACTIVE]
    if connection.vendor == "postgresql":
        return PROBE_SQL.format(people="= ANY(%s)"), [people, *window]
    marks = ", ".join(["%s"] * len(people))
    return PROBE_SQL.format(people=f"IN ({marks})"), [*people, *window]


def _aware(value) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return connection.ops.convert_datetimefield_value(value, None, connection)  # SQLite text


def probe_bookings(person_ids, now: datetime, places) -> dict[int, tuple[HeldBooking, ...]]:
    """`held_bookings` of each of `person_ids`: one statement for all of them. Everyone asked
    has an entry (maybe empty), ordered by start. `places`: resource id → (space, machine)
    (the bridge's snapshot), or a function giving them for the resource ids found.

    On PostgreSQL a server-side prepared statement (Django's cursors bind parameters on the
    client, so each probe would be parsed and planned again): planned once per connection.
    """
    people = sorted(set(person_ids))
    if not people:
        return {}
    sql, params = probe_statement(people, now)
    if connection.vendor == "postgresql":
        import psycopg

        connection.ensure_connection()
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            rows = cursor.fetchall()
        if connection.queries_logged:  # past Django's cursor: counted like any other query
            connection.queries_log.append({"sql": sql, "time": "0.000"})
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
    if callable(places):
        places = places({row[5] for row in rows}) if rows else {}
    found: dict[int, list[HeldBooking]] = {person: [] for person in people}
    for person, pk, status, start, end, resource_id in rows:
        space, machine = places.get(resource_id, (None, None))
        facts = decision.BookingFacts(space, _aware(start), _aware(end), status, machine)
        found[person].append(HeldBooking(pk, facts))
    return {
        person: tuple(sorted(held, key=lambda b: (b.facts.start, b.id)))
        for person, held in found.items()
    }


# --- qualifications (invariant 4: labs.qualifications.in_force) ---------------------------------


def qualifications_of(person_id: int, now: datetime) -> decision.TrainedFor:
    equipment_ids, space_ids = qualified_targets(person_id, now)
    return decision.TrainedFor(space_ids=space_ids, equipment_ids=equipment_ids)


def all_qualifications(now: datetime) -> tuple[dict[int, decision.TrainedFor], datetime]:
    """Every person's qualifications in force at `now`, and when that answer may next change
    (the earliest validity bound after now): the cache reloads them then."""
    per_person: dict[int, list[QualificationFacts]] = {}
    for q in Qualification.objects.all():
        per_person.setdefault(q.person_id, []).append(QualificationFacts.of(q))
    equipment = list(Equipment.objects.values_list("pk", "equipment_class", "location_id"))
    bounds = Qualification.objects.aggregate(
        starts=Min("valid_from", filter=Q(valid_from__gt=now)),
        ends=Min("valid_until", filter=Q(valid_until__gte=now)),
        revoked=Min("revoked_at", filter=Q(revoked_at__gt=now)),
    )
    # valid_until is the last instant in force: the answer changes just after it.
    candidates = [
        bounds["starts"],
        bounds["revoked"],
        bounds["ends"] and bounds["ends"] + timedelta(microseconds=1),
    ]
    changes_at = min((c for c in candidates if c), default=datetime.max.replace(tzinfo=now.tzinfo))
    facts = {}
    for person_id, held in per_person.items():
        equipment_ids, space_ids = targets(held, equipment, now)
        if equipment_ids:
            facts[person_id] = decision.TrainedFor(space_ids, equipment_ids)
    return facts, changes_at


# --- straight from the database ---------------------------------------------------------------


def _credential_and_holder(cred_hash: str, now: datetime, tz: ZoneInfo):
    """(credential facts, person facts, visitor facts, credential row) for a badge hash; the
    holder's leases are judged on the local day of `tz`, the zone of the door or machine."""
    cred = (
        Credential.objects.select_related("holder__tenant", "visitor_pass")
        .filter(uid_hash=cred_hash)
        .first()
    )
    if cred is None:
        return None, None, None, None
    person = None
    if cred.holder is not None:
        holder = cred.holder
        leases = list(Lease.objects.filter(tenant_id=holder.tenant_id)) if holder.tenant_id else []
        person = person_facts(holder, holder.tenant, leases, clock.today(tz, now))
    visit = cred.visitor_pass.to_facts() if cred.visitor_pass is not None else None
    return cred.to_facts(), person, visit, cred


def load_door_facts(
    cred_hash: str, door: Door, now: datetime, requested_at: datetime | None = None
) -> decision.Facts:
    """The facts of a badge at a door, from the database (at most 8 queries)."""
    # The doors of its controller in service, as the bridge's memory holds them (`door_zones`).
    doors = list(
        Door.objects.filter(
            Q(is_active=True) | Q(pk=door.pk), controller_id=door.controller_id
        ).values_list("pk", "controller_id", ZONE_OF_DOOR, "space__bookable")
    )
    tz = door_zones([row[:3] for row in doors])[0].get(door.pk, clock.building_tz())
    bookable = any(pk == door.pk and in_bookable for pk, _c, _z, in_bookable in doors)
    credential, person, visit, cred = _credential_and_holder(cred_hash, now, tz)
    bookings, qualifications = (), NO_QUALIFICATIONS
    if cred is not None and cred.holder_id is not None:
        bookings = tuple(b.facts for b in held_bookings(cred.holder_id, now))
        qualifications = qualifications_of(cred.holder_id, now)
    site_lockdown = SiteMode.objects.filter(pk=SiteMode.SINGLETON, lockdown=True).exists()
    return decision.Facts(
        now=now,
        local_now=clock.local_wall_clock(now, tz),
        credential=credential,
        person=person,
        door=door_facts(door, bookable),
        bookings=bookings,
        qualifications=qualifications,
        visitor=visit,
        lockdown=locked_down(site_lockdown, door.mode),
        requested_at=requested_at,
    )


def takes_scans_from(equipment: Equipment, ctrl: str) -> bool:
    """Whether a badge scan of this machine sent by controller `ctrl` may be decided: only
    from the controller the machine is wired to, the one `controller_id` names (a native
    node's own; the reader's next to a Tasmota relay). A machine without a controller takes
    none: its sessions start from the portal. Any other sender is a bad request, as a door
    scanned through another controller is."""
    return (
        equipment.controller_kind != Equipment.ControllerKind.NONE
        and equipment.controller_id != ""
        and equipment.controller_id == ctrl
    )


def scanned_machine(code: str, ctrl: str) -> Equipment | None:
    """The machine a scan from `ctrl` names (its `eq` level), if it takes that controller's
    scans (`takes_scans_from`); else None, which the decision answers `bad_request`."""
    equipment = Equipment.objects.select_related("resource").filter(resource__code=code).first()
    if equipment is None or not takes_scans_from(equipment, ctrl):
        return None
    return equipment


def load_equipment_facts(
    cred_hash: str, equipment: Equipment, now: datetime, requested_at: datetime | None = None
) -> decision.Facts:
    """The facts of a badge at a machine (session start), from the database (at most 8)."""
    status, zone_name = (
        Equipment.objects.filter(pk=equipment.pk)
        .values_list("status", f"location__{clock.ZONE_OF_SPACE}")
        .first()
    ) or (None, None)
    tz = clock.zone(zone_name)
    credential, person, visit, cred = _credential_and_holder(cred_hash, now, tz)
    bookings, qualifications = (), NO_QUALIFICATIONS
    if cred is not None and cred.holder_id is not None:
        bookings = tuple(b.facts for b in held_bookings(cred.holder_id, now))
        qualifications = qualifications_of(cred.holder_id, now)
    maintenance_now = Booking.objects.filter(
        resource_id=equipment.resource_id,
        is_maintenance=True,
        status__in=ACTIVE,
        start__lte=now,
        end__gt=now,
    ).exists()
    return decision.Facts(
        now=now,
        local_now=clock.local_wall_clock(now, tz),
        credential=credential,
        person=person,
        equipment=decision.EquipmentFacts(
            equipment_id=equipment.pk,
            space_id=equipment.location_id,
            busy=status == Equipment.Status.IN_USE,
            in_maintenance=status in UNUSABLE or maintenance_now,
        ),
        bookings=bookings,
        qualifications=qualifications,
        visitor=visit,
        requested_at=requested_at,
    )


# --- the bridge's in-memory copy ---------------------------------------------------------------


@dataclass(frozen=True)
class KnownBadge:
    """A badge as the cache holds it: its facts and the rows an audit line names."""

    id: int
    facts: decision.CredentialFacts
    holder_id: int | None
    visitor: decision.VisitorFacts | None


@dataclass(frozen=True)
class KnownDoor:
    """A door in service, by (controller, door) as its topic names it, with its time zone
    (`door_zones`): its schedule and the holder's leases are judged in its local time."""

    id: str
    controller: str
    facts: decision.DoorFacts
    pulse_ms: int
    mode: str
    mode_version: int
    zone: ZoneInfo = field(default_factory=clock.building_tz)


@dataclass(frozen=True)
class Snapshot:
    """Everything slow-changing the decision reads, as of one ChangeVersion. Immutable: the
    refresher swaps a whole new one in, so a decision never sees half a reload."""

    version: int
    changes_at: datetime
    badges: dict[str, KnownBadge] = field(default_factory=dict)
    people: dict[int, Person] = field(default_factory=dict)
    tenants: dict[int, Tenant] = field(default_factory=dict)
    leases: dict[int, list[Lease]] = field(default_factory=dict)
    doors: dict[tuple[str, str], KnownDoor] = field(default_factory=dict)
    zones: dict[str, ZoneInfo] = field(default_factory=dict)  # controller → its zone
    qualifications: dict[int, decision.TrainedFor] = field(default_factory=dict)
    resources: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    lockdown: bool = False
    site_version: int = 0


def load_snapshot(now: datetime) -> Snapshot:
    # The version is read first: a change committed during the load is then seen again at
    # the next poll, never lost.
    version = ChangeVersion.current()
    badges = {
        c.uid_hash: KnownBadge(
            c.pk,
            c.to_facts(),
            c.holder_id,
            c.visitor_pass.to_facts() if c.visitor_pass is not None else None,
        )
        for c in Credential.objects.select_related("visitor_pass")
    }
    people = {
        p.pk: p
        for p in Person.objects.only(
            "id",
            "is_active",
            "is_superuser",
            "is_facility_staff",
            "is_lab_technician",
            "is_tenant_admin",
            "tenant_id",
        )
    }
    tenants = {t.pk: t for t in Tenant.objects.all()}
    leases: dict[int, list[Lease]] = {}
    for lease in Lease.objects.only("tenant_id", "space_id", "start", "end"):
        leases.setdefault(lease.tenant_id, []).append(lease)
    in_service = list(
        Door.objects.filter(is_active=True).annotate(
            zone_name=F(ZONE_OF_DOOR), bookable=F("space__bookable")
        )
    )
    zone_of, zones = door_zones([(d.pk, d.controller_id, d.zone_name) for d in in_service])
    doors = {
        (d.controller_id, d.pk): KnownDoor(
            d.pk,
            d.controller_id,
            door_facts(d, bool(d.bookable)),
            d.pulse_ms,
            d.mode,
            d.mode_version,
            zone_of[d.pk],
        )
        for d in in_service
    }
    qualifications, changes_at = all_qualifications(now)
    resources = resource_places()
    site = SiteMode.objects.filter(pk=SiteMode.SINGLETON).first()
    return Snapshot(
        version=version,
        changes_at=changes_at,
        badges=badges,
        people=people,
        tenants=tenants,
        leases=leases,
        doors=doors,
        zones=zones,
        qualifications=qualifications,
        resources=resources,
        lockdown=bool(site and site.lockdown),
        site_version=site.version if site else 0,
    )


class FactsUnavailable(RuntimeError):
    """The cache is not fresh enough to decide on: better no answer than a wrong grant."""


@dataclass(frozen=True)
class DoorScanFacts:
    """What the bridge needs for one door scan: the facts, and what the audit line names."""

    facts: decision.Facts
    door: KnownDoor | None
    badge: KnownBadge | None
    held: tuple[HeldBooking, ...] = ()


class FactCache:
    """The slow-changing facts in memory, refreshed from the change feed.

    `refresh()` is called every `poll` seconds by one thread; decisions read `snapshot`
    from any thread. A decision is refused (FactsUnavailable) when the last successful check
    of the change feed is older than `max_age`, so that a lost database never turns into
    grants from revoked badges.
    """

    def __init__(self, *, max_age: float = 1.5):
        self.snapshot: Snapshot | None = None
        self.checked_at = float("-inf")  # time.monotonic() of the last successful check
        self.max_age = max_age
        self._lock = threading.Lock()

    def refresh(self, now: datetime, *, force: bool = False) -> Snapshot | None:
        """Reload if the change feed moved or a time bound passed; returns the new snapshot
        when it reloaded, else None. Database errors propagate (the caller backs off)."""
        with self._lock:
            checked = time.monotonic()
            snap = self.snapshot
            stale = (
                force
                or snap is None
                or now >= snap.changes_at
                or ChangeVersion.current() != snap.version
            )
            if stale:
                snap = load_snapshot(now)
                self.snapshot = snap
            self.checked_at = checked
            return snap if stale else None

    def fresh_snapshot(self) -> Snapshot:
        snap = self.snapshot
        if snap is None or time.monotonic() - self.checked_at > self.max_age:
            raise FactsUnavailable("the access facts are not fresh (database unreachable?)")
        return snap

    def holder_at_door(self, cred_hash: str, ctrl: str, door_id: str) -> int | None:
        """The person whose bookings a scan of this badge at this door needs, if any: what
        the bridge probes for a whole batch of scans at once (`probe_bookings`)."""
        snap = self.fresh_snapshot()
        badge = snap.badges.get(cred_hash)
        if badge is None or badge.holder_id is None or (ctrl, door_id) not in snap.doors:
            return None
        return badge.holder_id if badge.holder_id in snap.people else None

    def door_facts(
        self,
        cred_hash: str,
        ctrl: str,
        door_id: str,
        now: datetime,
        requested_at=None,
        *,
        probed: dict | None = None,
    ) -> DoorScanFacts:
        """The facts of a badge at a door: from memory, plus the bookings probe (≤ 1 query),
        unless `probed` (person id → held bookings, from `probe_bookings` for a batch of
        scans at this `now`) already holds the holder's."""
        snap = self.fresh_snapshot()
        door = snap.doors.get((ctrl, door_id))
        if door is None:  # unknown door, or not this controller's: a bad request
            local = clock.local_wall_clock(now)
            facts = decision.Facts(now, local, credential=None, requested_at=requested_at)
            return DoorScanFacts(facts, None, None)
        local = clock.local_wall_clock(now, door.zone)
        badge = snap.badges.get(cred_hash)
        person, held = None, ()
        qualifications = NO_QUALIFICATIONS
        if badge is not None and badge.holder_id is not None:
            holder = snap.people.get(badge.holder_id)
            if holder is not None:
                tenant = snap.tenants.get(holder.tenant_id) if holder.tenant_id else None
                leases = snap.leases.get(holder.tenant_id, ()) if holder.tenant_id else ()
                person = person_facts(holder, tenant, leases, local.date())
                if probed is not None and holder.pk in probed:
                    held = probed[holder.pk]
                else:
                    held = probe_bookings((holder.pk,), now, snap.resources)[holder.pk]
                qualifications = snap.qualifications.get(holder.pk, NO_QUALIFICATIONS)
        facts = decision.Facts(
            now=now,
            local_now=local,
            credential=badge.facts if badge else None,
            person=person,
            door=door.facts,
            bookings=tuple(b.facts for b in held),
            qualifications=qualifications,
            visitor=badge.visitor if badge else None,
            lockdown=locked_down(snap.lockdown, door.mode),
            requested_at=requested_at,
        )
        return DoorScanFacts(facts, door, badge, held)
