"""The one access decision: facts in, `Decision(result, reason)` out. Pure: no ORM, no clock,
no I/O, so that the MQTT bridge, the API's "test access" and the allow-list builder agree.

Deny by default: a grant needs one rule below to say yes. Reason codes are the protocol's
(docs/mqtt.md) and never change meaning.

The rules, in the order they are checked:
1. the request: no door and no machine (unknown target) → `bad_request`; a scan older than
   5 s → `stale_request`; a scan from more than 5 s ahead of our clock → `future_request`;
2. the credential: unknown → `unknown_credential`; suspended, lost or returned → `suspended`
   (one code for every badge that must not open: the reader need not say why, reception will);
   outside its validity → `expired`; its holder deactivated → `suspended`;
3. doors: an `override` credential (staff master card) opens every door, lockdown included →
   `override`; otherwise lockdown → `lockdown`;
4. doors, facility staff → `staff`, except technical rooms without technical access; lab
   technicians → `staff` at perimeter, floor, common and lab doors (not offices, not technical
   rooms);
5. doors, visitors: the perimeter and the visited space during the pass window → `visitor`
   (outside the window → `expired`, as the window is the pass's validity);
6. doors, people: a leased office at any time → `tenant_office`; a booked room from 15 minutes
   before the booking to its end → `booking`; a lab door needs that booking and a valid
   qualification for the lab → `no_booking` / `not_qualified`; tenant members pass perimeter,
   floor and common doors within the door's schedule → `common_area`; anyone holding a booking
   in the building covering now (15 minutes early) passes them outside it → `booking`, so that
   evening bookings work (not a door into another bookable room: only its own booking or its
   schedule opens that); otherwise a tenant member gets `outside_schedule`;
7. machines (session start): not in maintenance, qualified for the machine, a booking of it
   covering now (10 minutes early allowed), free → `booking`; nobody, staff included, powers a
   machine without training and a booking. A badge-out (`session_stop`) is
   `decide_session_stop`: only the session's holder stops it.
Anything else → `not_authorized`.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

STALE_AFTER = timedelta(seconds=5)
# A device clock kept by NTP is within milliseconds of ours. A `ts` from further ahead would
# never grow stale: a scan recorded (or made up) with it could be replayed for as long as it
# is ahead, days or years.
AHEAD_LIMIT = timedelta(seconds=5)
# The refusals of the request itself, before any badge or rule is looked at: they also
# refuse a badge-out (`decide_session_stop` decides only well-formed, timely requests).
REQUEST_REFUSALS = frozenset({"bad_request", "stale_request", "future_request"})
DOOR_EARLY = timedelta(minutes=15)
EQUIPMENT_EARLY = timedelta(minutes=10)

# Booking statuses that open a door or power a machine. The bookings app maps its own states
# onto these when it builds the facts (a pending, cancelled or no-show booking opens nothing).
ACTIVE_BOOKING = frozenset({"confirmed", "checked_in"})

# Doors on the way to a room: tenants pass them within their schedule, bookings at any time.
PASSAGE_DOORS = frozenset({"perimeter", "floor", "common"})
# Where lab technicians go without a booking: to the labs they run, and on the way there.
TECHNICIAN_DOORS = PASSAGE_DOORS | {"lab"}


@dataclass(frozen=True)
class Decision:
    """The answer to one request: "grant" or "deny", with the rule's reason code."""

    result: str
    reason: str

    @property
    def granted(self) -> bool:
        return self.result == "grant"


def grant(reason: str) -> Decision:
    return Decision("grant", reason)


def deny(reason: str) -> Decision:
    return Decision("deny", reason)


@dataclass(frozen=True)
class CredentialFacts:
    """The badge presented. `valid_from`/`valid_until` are aware datetimes, None = unbounded."""

    status: str = "active"
    kind: str = "badge"
    override: bool = False
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class PersonFacts:
    """The badge's holder. `tenant_id` is set only while the tenant's contract is active;
    `leased_space_ids` are the spaces its tenant leases today."""

    active: bool = True
    roles: frozenset[str] = frozenset()
    technical_access: bool = False
    tenant_id: int | None = None
    leased_space_ids: frozenset[int] = frozenset()

    @property
    def runs_facility(self) -> bool:
        return "facility_staff" in self.roles

    @property
    def is_lab_technician(self) -> bool:
        return "lab_technician" in self.roles


@dataclass(frozen=True)
class DoorFacts:
    """The door scanned. `schedule` is the protocol's weekly list, None = at any time.
    `bookable`: it leads into a bookable room, which a booking elsewhere does not open."""

    kind: str
    space_id: int | None = None
    schedule: tuple | list | None = None
    bookable: bool = False


@dataclass(frozen=True)
class EquipmentFacts:
    """The machine scanned (session start). `busy`: a session of someone else is running."""

    equipment_id: int
    space_id: int | None = None
    busy: bool = False
    in_maintenance: bool = False


@dataclass(frozen=True)
class BookingFacts:
    """One of the person's bookings: of a space, or of a machine (`equipment_id`, with the
    space it stands in), between aware datetimes."""

    space_id: int | None
    start: datetime
    end: datetime
    status: str = "confirmed"
    equipment_id: int | None = None


@dataclass(frozen=True)
class TrainedFor:
    """What the person's trainings allow at `now`: lab spaces and machines."""

    space_ids: frozenset[int] = frozenset()
    equipment_ids: frozenset[int] = frozenset()


@dataclass(frozen=True)
class VisitorFacts:
    """A visitor pass: its window (aware datetimes) and the space visited, if any."""

    start: datetime
    end: datetime
    space_id: int | None = None


@dataclass(frozen=True)
class Facts:
    """Everything `decide` may look at. `now` is aware (UTC); `local_now` is the same instant as
    naive wall-clock time in the building's time zone, for schedules. `credential` None means
    no credential with this hash exists."""

    now: datetime
    local_now: datetime
    credential: CredentialFacts | None
    person: PersonFacts | None = None
    door: DoorFacts | None = None
    equipment: EquipmentFacts | None = None
    bookings: tuple[BookingFacts, ...] = ()
    qualifications: TrainedFor = field(default_factory=TrainedFor)
    visitor: VisitorFacts | None = None
    lockdown: bool = False
    requested_at: datetime | None = None

    def __post_init__(self):
        if self.now.tzinfo is None:
            raise ValueError("Facts.now must be timezone-aware")
        if self.local_now.tzinfo is not None:
            raise ValueError("Facts.local_now must be naive building-local time")


def decide(facts: Facts) -> Decision:
    """Grant or deny, with the reason code; see the module docstring for the rules."""
    if (facts.door is None) == (facts.equipment is None):
        return deny("bad_request")
    if facts.requested_at is not None:
        if facts.now - facts.requested_at > STALE_AFTER:
            return deny("stale_request")
        if facts.requested_at - facts.now > AHEAD_LIMIT:
            return deny("future_request")

    cred = facts.credential
    if cred is None:
        return deny("unknown_credential")
    if cred.status != "active":
        return deny("suspended")
    if (cred.valid_from and facts.now < cred.valid_from) or (
        cred.valid_until and facts.now >= cred.valid_until
    ):
        return deny("expired")
    person = facts.person
    if person is not None and not person.active:
        return deny("suspended")

    if facts.equipment is not None:
        return _decide_equipment(facts, facts.equipment, cred, person)
    return _decide_door(facts, facts.door, cred, person)


def _decide_door(facts: Facts, door: DoorFacts, cred: CredentialFacts, person) -> Decision:
    if cred.override:
        return grant("override")
    if facts.lockdown:
        return deny("lockdown")

    if cred.kind == "visitor":
        visit = facts.visitor
        if visit is None:
            return deny("not_authorized")
        if not visit.start <= facts.now < visit.end:
            return deny("expired")
        if door.kind == "perimeter" or (
            door.space_id is not None and door.space_id == visit.space_id
        ):
            return grant("visitor")
        return deny("not_authorized")

    if person is None:
        return deny("not_authorized")
    if person.runs_facility:
        if door.kind == "technical" and not person.technical_access:
            return deny("not_authorized")
        return grant("staff")
    if person.is_lab_technician and door.kind in TECHNICIAN_DOORS:
        return grant("staff")
    if door.kind == "technical":
        return deny("not_authorized")

    if door.kind == "office" and door.space_id in person.leased_space_ids:
        return grant("tenant_office")
    booked = door.space_id is not None and _booked(
        facts.bookings, facts.now, DOOR_EARLY, space_id=door.space_id
    )
    if door.kind == "lab":
        if not booked:
            return deny("no_booking")
        if door.space_id not in facts.qualifications.space_ids:
            return deny("not_qualified")
        return grant("booking")
    if booked:
        return grant("booking")
    if door.kind not in PASSAGE_DOORS:
        return deny("not_authorized")
    tenant = person.tenant_id is not None
    if tenant and (door.schedule is None or in_schedule(door.schedule, facts.local_now)):
        return grant("common_area")
    if not door.bookable and _booked(facts.bookings, facts.now, DOOR_EARLY):
        return grant("booking")
    return deny("outside_schedule" if tenant else "not_authorized")


def _decide_equipment(facts: Facts, eq: EquipmentFacts, cred: CredentialFacts, person):
    if person is None or cred.kind != "badge":
        return deny("not_authorized")
    if eq.in_maintenance:
        return deny("maintenance")
    if eq.equipment_id not in facts.qualifications.equipment_ids:
        return deny("not_qualified")
    if not _booked(facts.bookings, facts.now, EQUIPMENT_EARLY, equipment_id=eq.equipment_id):
        return deny("no_booking")
    if eq.busy:
        return deny("equipment_busy")
    return grant("booking")


def decide_session_stop(holder_id: int | None, session_holder_id: int | None) -> Decision:
    """A badge-out at a machine (`session_stop`): the holder of the running session stops it;
    with no session running any badge may ask (the machine is switched off again: stopping is
    always safe) → `booking`; someone else's badge → `not_authorized`. Ids of people; None for
    a badge without a holder, or no session running."""
    if session_holder_id is None:
        return grant("booking")
    if holder_id is None or holder_id != session_holder_id:
        return deny("not_authorized")
    return grant("booking")


def _booked(bookings, now, early, *, space_id=None, equipment_id=None) -> bool:
    """An active booking covering now (from `early` before it); of this space or machine when
    one is named, else anywhere in the building."""
    for b in bookings:
        if b.status not in ACTIVE_BOOKING:
            continue
        if equipment_id is not None and b.equipment_id != equipment_id:
            continue
        # A space booking opens its room; a machine booking also opens the room it stands in.
        if space_id is not None and b.space_id != space_id:
            continue
        if b.start - early <= now < b.end:
            return True
    return False


# --- weekly schedules -----------------------------------------------------------------------


def _minutes(value, where: str) -> int:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise ValueError(f"{where}: a time is written HH:MM, not {value!r}")
    hours, minutes = value[:2], value[3:]
    if not (hours.isdigit() and minutes.isdigit() and hours.isascii() and minutes.isascii()):
        raise ValueError(f"{where}: a time is written HH:MM, not {value!r}")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or total > 24 * 60:
        raise ValueError(f"{where}: {value!r} is not a time of day (00:00 to 24:00)")
    return total


def parse_schedule(schedule) -> tuple[tuple[int, int, int], ...]:
    """The protocol's `[[iso_weekday, "HH:MM", "HH:MM"], ...]` as (weekday, start, end) minutes.

    Times are local wall-clock times; a slot ends after it starts on the same day ("24:00" ends
    at midnight). A night slot is written as two slots, one on each day. ValueError otherwise.
    """
    if not isinstance(schedule, list | tuple):
        raise ValueError("a schedule is a list of [weekday, start, end] slots")
    slots = []
    for i, slot in enumerate(schedule):
        where = f"slot {i + 1}"
        if not isinstance(slot, list | tuple) or len(slot) != 3:
            raise ValueError(f'{where}: a slot is [iso_weekday, "HH:MM", "HH:MM"]')
        day, start, end = slot
        if not isinstance(day, int) or isinstance(day, bool) or not 1 <= day <= 7:
            raise ValueError(f"{where}: the weekday is 1 (Monday) to 7 (Sunday), not {day!r}")
        start_min, end_min = _minutes(start, where), _minutes(end, where)
        if start_min >= end_min:
            raise ValueError(f"{where}: the slot must end after it starts ({start}–{end})")
        slots.append((day, start_min, end_min))
    return tuple(slots)


def in_schedule(schedule, local: datetime) -> bool:
    """Whether the building-local wall-clock time `local` (naive) falls in a slot.

    Wall-clock on purpose: "07:00–20:00" means what the clock on the wall says, in summer and
    in winter, and on DST change days too (a 02:30 that the spring change skips is simply never
    reached). Slots include their start and exclude their end.
    """
    if local.tzinfo is not None:
        raise ValueError("in_schedule takes naive building-local time")
    day = local.isoweekday()
    minute = local.hour * 60 + local.minute
    return any(d == day and start <= minute < end for d, start, end in parse_schedule(schedule))
