"""The access decision, table-driven and without a database: pytest-django refuses database
access to tests that do not ask for it, so none of these can touch one by accident.

One campus scene: bob (Acme) leases office 1, the meeting room 50 is bookable, lab 10 needs a
booking and the EMC training, machine 7 stands in the lab. It is Monday 2 March 2026, 10:00 in
Angers (09:00 UTC).
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from access.decision import (
    BookingFacts,
    CredentialFacts,
    Decision,
    DoorFacts,
    EquipmentFacts,
    Facts,
    PersonFacts,
    TrainedFor,
    VisitorFacts,
    decide,
)
from access.protocol import DENY_REASONS, GRANT_REASONS

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOCAL = datetime(2026, 3, 2, 10, 0)
H = timedelta(hours=1)
M = timedelta(minutes=1)

OFFICE, OTHER_OFFICE, MEETING, LAB, TECH, HALL = 1, 2, 50, 10, 90, 70
MACHINE = 7
WORKING_HOURS = [[d, "07:00", "20:00"] for d in range(1, 6)]

BOB = PersonFacts(roles=frozenset({"tenant_member"}), tenant_id=1, leased_space_ids={OFFICE})
SAM = PersonFacts(roles=frozenset({"facility_staff"}))
SAM_TECH = replace(SAM, technical_access=True)
TINA = PersonFacts(roles=frozenset({"lab_technician"}))
BADGE = CredentialFacts()
VISITOR_BADGE = CredentialFacts(kind="visitor")
MASTER = CredentialFacts(override=True)

PERIMETER = DoorFacts("perimeter", schedule=WORKING_HOURS)
FLOOR = DoorFacts("floor", schedule=WORKING_HOURS)
COMMON_HALL = DoorFacts("common", space_id=HALL, schedule=WORKING_HOURS)
MEETING_DOOR = DoorFacts("common", space_id=MEETING, schedule=[], bookable=True)
OFFICE_DOOR = DoorFacts("office", space_id=OFFICE)
OTHER_OFFICE_DOOR = DoorFacts("office", space_id=OTHER_OFFICE)
LAB_DOOR = DoorFacts("lab", space_id=LAB)
TECH_DOOR = DoorFacts("technical", space_id=TECH)
EMC = EquipmentFacts(MACHINE, space_id=LAB)

MEETING_AT_10 = BookingFacts(MEETING, NOW, NOW + H)
MEETING_AT_1010 = BookingFacts(MEETING, NOW + 10 * M, NOW + H)
MEETING_AT_1016 = BookingFacts(MEETING, NOW + 16 * M, NOW + H)
MEETING_ENDED = BookingFacts(MEETING, NOW - H, NOW)
MEETING_CANCELLED = BookingFacts(MEETING, NOW, NOW + H, status="cancelled")
LAB_AT_10 = BookingFacts(LAB, NOW, NOW + H)
MACHINE_AT_1005 = BookingFacts(LAB, NOW + 5 * M, NOW + H, equipment_id=MACHINE)
MACHINE_AT_1015 = BookingFacts(LAB, NOW + 15 * M, NOW + H, equipment_id=MACHINE)
QUALIFIED = TrainedFor(space_ids=frozenset({LAB}), equipment_ids=frozenset({MACHINE}))

VISIT = VisitorFacts(NOW - H, NOW + H, space_id=MEETING)
VISIT_OVER = VisitorFacts(NOW - 2 * H, NOW - H, space_id=MEETING)

SUNDAY_NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SUNDAY_LOCAL = datetime(2026, 3, 1, 10, 0)
EVENING_NOW = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
EVENING_LOCAL = datetime(2026, 3, 2, 21, 0)


def facts(**kw) -> Facts:
    base = {"now": NOW, "local_now": LOCAL, "credential": BADGE, "person": BOB}
    if "equipment" not in kw:
        base["door"] = PERIMETER
    return Facts(**{**base, **kw})


CASES = [
    # (name, facts, expected)
    ("a tenant member enters the building in working hours", facts(), "grant common_area"),
    ("a tenant member passes a floor door", facts(door=FLOOR), "grant common_area"),
    ("a tenant member passes a common door", facts(door=COMMON_HALL), "grant common_area"),
    (
        "a door without schedule opens at any time",
        facts(door=DoorFacts("perimeter"), now=SUNDAY_NOW, local_now=SUNDAY_LOCAL),
        "grant common_area",
    ),
    (
        "the perimeter is shut to tenants on Sunday",
        facts(now=SUNDAY_NOW, local_now=SUNDAY_LOCAL),
        "deny outside_schedule",
    ),
    (
        "the perimeter is shut to tenants at 21:00",
        facts(now=EVENING_NOW, local_now=EVENING_LOCAL),
        "deny outside_schedule",
    ),
    ("a tenant opens their leased office", facts(door=OFFICE_DOOR), "grant tenant_office"),
    (
        "a tenant opens their leased office on Sunday night",
        facts(door=OFFICE_DOOR, now=SUNDAY_NOW, local_now=datetime(2026, 3, 1, 23, 30)),
        "grant tenant_office",
    ),
    (
        "a tenant cannot open another tenant's office",
        facts(door=OTHER_OFFICE_DOOR),
        "deny not_authorized",
    ),
    (
        "a booking opens the room's door",
        facts(door=MEETING_DOOR, bookings=(MEETING_AT_10,)),
        "grant booking",
    ),
    (
        "a booking opens the door 15 minutes early",
        facts(door=MEETING_DOOR, bookings=(BookingFacts(MEETING, NOW + 15 * M, NOW + H),)),
        "grant booking",
    ),
    (
        "a booking opens the door 10 minutes early",
        facts(door=MEETING_DOOR, bookings=(MEETING_AT_1010,)),
        "grant booking",
    ),
    (
        "a booking does not open the door 16 minutes early",
        facts(door=MEETING_DOOR, bookings=(MEETING_AT_1016,)),
        "deny outside_schedule",
    ),
    (
        "a booking no longer opens the door at its end",
        facts(door=MEETING_DOOR, bookings=(MEETING_ENDED,)),
        "deny outside_schedule",
    ),
    (
        "a cancelled booking opens nothing",
        facts(door=MEETING_DOOR, bookings=(MEETING_CANCELLED,)),
        "deny outside_schedule",
    ),
    (
        "a booking opens its room outside the door schedule",
        facts(
            door=replace(MEETING_DOOR, schedule=WORKING_HOURS),
            now=EVENING_NOW,
            local_now=EVENING_LOCAL,
            bookings=(BookingFacts(MEETING, EVENING_NOW, EVENING_NOW + H),),
        ),
        "grant booking",
    ),
    (
        "an evening booking opens the perimeter outside its schedule",
        facts(
            now=EVENING_NOW,
            local_now=EVENING_LOCAL,
            bookings=(BookingFacts(MEETING, EVENING_NOW, EVENING_NOW + H),),
        ),
        "grant booking",
    ),
    (
        "an evening booking opens floor and common doors on the way",
        facts(
            door=COMMON_HALL,
            now=EVENING_NOW,
            local_now=EVENING_LOCAL,
            bookings=(BookingFacts(MEETING, EVENING_NOW + 15 * M, EVENING_NOW + H),),
        ),
        "grant booking",
    ),
    (
        "a booking opens the perimeter only from 15 minutes before it",
        facts(
            door=FLOOR,
            now=EVENING_NOW,
            local_now=EVENING_LOCAL,
            bookings=(BookingFacts(MEETING, EVENING_NOW + 16 * M, EVENING_NOW + H),),
        ),
        "deny outside_schedule",
    ),
    (
        "a cancelled evening booking opens no perimeter",
        facts(
            now=EVENING_NOW,
            local_now=EVENING_LOCAL,
            bookings=(BookingFacts(MEETING, EVENING_NOW, EVENING_NOW + H, status="cancelled"),),
        ),
        "deny outside_schedule",
    ),
    (
        "a machine booking opens the perimeter in the evening",
        facts(
            now=EVENING_NOW,
            local_now=EVENING_LOCAL,
            bookings=(BookingFacts(LAB, EVENING_NOW, EVENING_NOW + H, equipment_id=MACHINE),),
        ),
        "grant booking",
    ),
    (
        "a person without tenant but with a booking passes the perimeter",
        facts(person=replace(BOB, tenant_id=None), bookings=(MEETING_AT_10,)),
        "grant booking",
    ),
    (
        "a booking of one room does not open another bookable room",
        facts(
            door=DoorFacts("common", space_id=MEETING + 1, schedule=[], bookable=True),
            bookings=(MEETING_AT_10,),
        ),
        "deny outside_schedule",
    ),
    (
        "a booking of another room does not open this one",
        facts(door=OTHER_OFFICE_DOOR, bookings=(MEETING_AT_10,)),
        "deny not_authorized",
    ),
    (
        "a lab door opens with a booking and the training",
        facts(door=LAB_DOOR, bookings=(LAB_AT_10,), qualifications=QUALIFIED),
        "grant booking",
    ),
    (
        "a machine booking opens its lab's door",
        facts(door=LAB_DOOR, bookings=(MACHINE_AT_1005,), qualifications=QUALIFIED),
        "grant booking",
    ),
    (
        "a lab door stays shut without a booking",
        facts(door=LAB_DOOR, qualifications=QUALIFIED),
        "deny no_booking",
    ),
    (
        "a lab door stays shut without the training",
        facts(door=LAB_DOOR, bookings=(LAB_AT_10,)),
        "deny not_qualified",
    ),
    (
        "staff pass the perimeter on Sunday",
        facts(person=SAM, now=SUNDAY_NOW, local_now=SUNDAY_LOCAL),
        "grant staff",
    ),
    ("staff pass any office", facts(person=SAM, door=OTHER_OFFICE_DOOR), "grant staff"),
    ("staff pass lab doors without booking", facts(person=SAM, door=LAB_DOOR), "grant staff"),
    (
        "staff need technical access for a technical room",
        facts(person=SAM, door=TECH_DOOR),
        "deny not_authorized",
    ),
    (
        "staff with technical access open a technical room",
        facts(person=SAM_TECH, door=TECH_DOOR),
        "grant staff",
    ),
    (
        "tenants never open a technical room",
        facts(person=replace(BOB, technical_access=True), door=TECH_DOOR),
        "deny not_authorized",
    ),
    (
        "a lab technician passes the perimeter on Sunday",
        facts(person=TINA, now=SUNDAY_NOW, local_now=SUNDAY_LOCAL),
        "grant staff",
    ),
    ("a lab technician passes a floor door", facts(person=TINA, door=FLOOR), "grant staff"),
    ("a lab technician passes a common door", facts(person=TINA, door=COMMON_HALL), "grant staff"),
    (
        "a lab technician opens a lab door without booking or training",
        facts(person=TINA, door=LAB_DOOR),
        "grant staff",
    ),
    (
        "a lab technician opens no office",
        facts(person=TINA, door=OTHER_OFFICE_DOOR),
        "deny not_authorized",
    ),
    (
        "a lab technician opens no technical room",
        facts(person=replace(TINA, technical_access=True), door=TECH_DOOR),
        "deny not_authorized",
    ),
    (
        "a lab technician of a tenant still opens their own office as a tenant",
        facts(
            person=replace(BOB, roles=frozenset({"tenant_member", "lab_technician"})),
            door=OFFICE_DOOR,
        ),
        "grant tenant_office",
    ),
    ("lockdown shuts doors to lab technicians", facts(person=TINA, lockdown=True), "deny lockdown"),
    (
        "a lab technician needs training to power a machine",
        facts(person=TINA, equipment=EMC, bookings=(MACHINE_AT_1005,)),
        "deny not_qualified",
    ),
    (
        "a person of a tenant whose contract ended passes no common door",
        facts(person=replace(BOB, tenant_id=None)),
        "deny not_authorized",
    ),
    (
        "a visitor enters the building during the visit",
        facts(credential=VISITOR_BADGE, person=None, visitor=VISIT),
        "grant visitor",
    ),
    (
        "a visitor opens the visited room",
        facts(credential=VISITOR_BADGE, person=None, visitor=VISIT, door=MEETING_DOOR),
        "grant visitor",
    ),
    (
        "a visitor opens no other room",
        facts(credential=VISITOR_BADGE, person=None, visitor=VISIT, door=OFFICE_DOOR),
        "deny not_authorized",
    ),
    (
        "a visitor is refused after the visit",
        facts(credential=VISITOR_BADGE, person=None, visitor=VISIT_OVER),
        "deny expired",
    ),
    (
        "a visitor badge without a pass opens nothing",
        facts(credential=VISITOR_BADGE, person=None),
        "deny not_authorized",
    ),
    ("an unknown badge is refused", facts(credential=None, person=None), "deny unknown_credential"),
    (
        "a suspended badge is refused",
        facts(credential=CredentialFacts(status="suspended")),
        "deny suspended",
    ),
    (
        "a lost badge is refused as suspended",
        facts(credential=CredentialFacts(status="lost")),
        "deny suspended",
    ),
    (
        "a returned badge is refused as suspended",
        facts(credential=CredentialFacts(status="returned")),
        "deny suspended",
    ),
    (
        "a suspended master card opens nothing",
        facts(credential=replace(MASTER, status="suspended"), lockdown=True),
        "deny suspended",
    ),
    (
        "the badge of a deactivated person is refused",
        facts(person=replace(BOB, active=False)),
        "deny suspended",
    ),
    (
        "a badge past its validity is refused",
        facts(credential=CredentialFacts(valid_until=NOW)),
        "deny expired",
    ),
    (
        "a badge not yet valid is refused",
        facts(credential=CredentialFacts(valid_from=NOW + M)),
        "deny expired",
    ),
    (
        "a badge within its validity is accepted",
        facts(credential=CredentialFacts(valid_from=NOW, valid_until=NOW + M)),
        "grant common_area",
    ),
    ("a badge without holder opens nothing", facts(person=None), "deny not_authorized"),
    ("lockdown shuts the perimeter to tenants", facts(lockdown=True), "deny lockdown"),
    ("lockdown shuts leased offices", facts(door=OFFICE_DOOR, lockdown=True), "deny lockdown"),
    ("lockdown shuts doors to staff", facts(person=SAM, lockdown=True), "deny lockdown"),
    (
        "a master card opens during lockdown",
        facts(credential=MASTER, person=SAM, lockdown=True),
        "grant override",
    ),
    (
        "a master card without holder opens a technical room",
        facts(credential=MASTER, person=None, door=TECH_DOOR),
        "grant override",
    ),
    (
        "a scan older than 5 seconds is stale",
        facts(requested_at=NOW - timedelta(seconds=5, milliseconds=1)),
        "deny stale_request",
    ),
    (
        "a scan 5 seconds old is answered",
        facts(requested_at=NOW - timedelta(seconds=5)),
        "grant common_area",
    ),
    (
        "a stale scan is refused before looking at the badge",
        facts(credential=None, requested_at=NOW - H),
        "deny stale_request",
    ),
    (
        "a scan 5 seconds ahead of our clock is answered",
        facts(requested_at=NOW + timedelta(seconds=5)),
        "grant common_area",
    ),
    (
        "a scan more than 5 seconds ahead of our clock is refused",
        facts(requested_at=NOW + timedelta(seconds=5, milliseconds=1)),
        "deny future_request",
    ),
    (
        "a scan a day ahead is refused before looking at the badge",
        facts(credential=MASTER, person=SAM, requested_at=NOW + 24 * H),
        "deny future_request",
    ),
    (
        "a scan ten years ahead is refused",
        facts(requested_at=NOW + timedelta(days=3653)),
        "deny future_request",
    ),
    (
        "a machine scan from the future is refused too",
        facts(
            equipment=EMC,
            bookings=(MACHINE_AT_1005,),
            qualifications=QUALIFIED,
            requested_at=NOW + 24 * H,
        ),
        "deny future_request",
    ),
    ("a scan at an unknown door is a bad request", facts(door=None), "deny bad_request"),
    (
        "a scan naming a door and a machine is a bad request",
        facts(door=PERIMETER, equipment=EMC),
        "deny bad_request",
    ),
    # Machines (session start).
    (
        "a qualified person with a booking powers the machine",
        facts(equipment=EMC, bookings=(MACHINE_AT_1005,), qualifications=QUALIFIED),
        "grant booking",
    ),
    (
        "a machine booking may start 10 minutes early",
        facts(
            equipment=EMC,
            bookings=(BookingFacts(LAB, NOW + 10 * M, NOW + H, equipment_id=7),),
            qualifications=QUALIFIED,
        ),
        "grant booking",
    ),
    (
        "a machine booking may not start 15 minutes early",
        facts(equipment=EMC, bookings=(MACHINE_AT_1015,), qualifications=QUALIFIED),
        "deny no_booking",
    ),
    (
        "a lab booking does not power its machines",
        facts(equipment=EMC, bookings=(LAB_AT_10,), qualifications=QUALIFIED),
        "deny no_booking",
    ),
    (
        "an untrained person cannot power the machine",
        facts(equipment=EMC, bookings=(MACHINE_AT_1005,)),
        "deny not_qualified",
    ),
    (
        "staff need training to power a machine",
        facts(person=SAM, equipment=EMC, bookings=(MACHINE_AT_1005,)),
        "deny not_qualified",
    ),
    (
        "a machine in use by someone else is busy",
        facts(
            equipment=replace(EMC, busy=True), bookings=(MACHINE_AT_1005,), qualifications=QUALIFIED
        ),
        "deny equipment_busy",
    ),
    (
        "a machine in maintenance cannot be powered",
        facts(
            equipment=replace(EMC, in_maintenance=True),
            bookings=(MACHINE_AT_1005,),
            qualifications=QUALIFIED,
        ),
        "deny maintenance",
    ),
    (
        "a master card does not power a machine",
        facts(credential=MASTER, person=None, equipment=EMC),
        "deny not_authorized",
    ),
    (
        "a visitor cannot power a machine",
        facts(credential=VISITOR_BADGE, person=None, visitor=VISIT, equipment=EMC),
        "deny not_authorized",
    ),
    (
        "an unknown badge at a machine is refused",
        facts(credential=None, person=None, equipment=EMC),
        "deny unknown_credential",
    ),
]


@pytest.mark.parametrize(("name", "given", "expected"), CASES, ids=[c[0] for c in CASES])
def test_decide(name, given, expected):
    assert decide(given) == Decision(*expected.split())


def test_every_reason_code_is_covered_except_the_bridges_own():
    emitted = {tuple(expected.split()) for _, _, expected in CASES}
    assert {r for res, r in emitted if res == "grant"} == GRANT_REASONS
    assert {r for res, r in emitted if res == "deny"} == DENY_REASONS


def test_reason_codes_are_the_protocols():
    for _, given, _ in CASES:
        d = decide(given)
        assert d.reason in (GRANT_REASONS if d.granted else DENY_REASONS)


def test_facts_refuse_a_naive_now():
    with pytest.raises(ValueError, match="aware"):
        Facts(now=LOCAL, local_now=LOCAL, credential=BADGE)


def test_facts_refuse_an_aware_local_time():
    with pytest.raises(ValueError, match="naive"):
        Facts(now=NOW, local_now=NOW, credential=BADGE)


@pytest.mark.parametrize(
    ("holder", "session_holder", "expected"),
    [
        (7, 7, "grant booking"),  # the session's holder badges out
        (8, 7, "deny not_authorized"),  # someone else's badge does not stop it
        (None, 7, "deny not_authorized"),  # nor a badge without a holder
        (8, None, "grant booking"),  # nothing runs: any badge may (it is switched off again)
        (None, None, "grant booking"),
    ],
)
def test_a_badge_out_stops_only_ones_own_session(holder, session_holder, expected):
    from access.decision import decide_session_stop

    answer = decide_session_stop(holder, session_holder)
    assert f"{answer.result} {answer.reason}" == expected
