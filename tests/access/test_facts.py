"""Facts of one decision: from the database in a fixed number of queries, and from the bridge's
in-memory copy, which must agree with it and follow every change within one poll.

It is Monday 2 March 2026, 10:00 in Angers (09:00 UTC) unless a test says otherwise.
"""

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection

from access.decision import decide
from access.facts import (
    FactCache,
    FactsUnavailable,
    held_bookings,
    load_door_facts,
    load_equipment_facts,
    probe_statement,
    scanned_machine,
    takes_scans_from,
)
from access.models import ChangeVersion, Credential, Door, SiteMode, VisitorPass
from bookings.models import Booking, Resource
from campus.models import Lease, Person, Tenant
from labs.models import Equipment, Qualification

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def badge(holder=None, uid="04A1B2C3", **extra) -> Credential:
    credential = Credential(holder=holder, **extra)
    credential.set_uid(uid)
    credential.save()
    return credential


def book(person, resource, start, end, status="confirmed") -> Booking:
    """A booking row straight in the table: these tests are about reading it back."""
    return Booking.objects.create(
        resource=resource,
        person=person,
        tenant=person.tenant,
        start=start,
        end=end,
        blocked_start=start,
        blocked_end=end,
        status=status,
    )


@pytest.fixture
def scene(campus, doors, bob, sam, tina, charlie):
    """Badges for the cast, the meeting room and the EMC chamber in the lab, bookable."""
    meeting = Resource.objects.create(
        code="B-1.50", name="Loire", kind="meeting_room", space=campus["meeting"]
    )
    lab = Resource.objects.create(code="B-0.10", name="EMC lab", kind="lab", space=campus["lab"])
    chamber = Resource.objects.create(code="EMC-1", name="EMC chamber", kind="equipment")
    emc = Equipment.objects.create(resource=chamber, equipment_class="emc", location=campus["lab"])
    doors["meeting"] = Door.objects.create(
        id="D-150",
        name="Loire",
        controller=doors["acme"].controller,
        kind="common",
        space=campus["meeting"],
        schedule=[],
    )
    return {
        "doors": doors,
        "meeting": meeting,
        "lab": lab,
        "chamber": chamber,
        "emc": emc,
        "bob": badge(bob, "B0B0B0B0"),
        "sam": badge(sam, "5A5A5A5A"),
        "tina": badge(tina, "7177A000"),
        "charlie": badge(charlie, "C4A411E0"),
        "master": badge(sam, "0A0A0A0A", override=True),
    }


def qualify(person, **target) -> Qualification:
    return Qualification.objects.create(person=person, valid_from=NOW - 30 * 24 * H, **target)


# --- from the database


def test_door_facts_take_at_most_eight_queries_whatever_the_data(
    scene, bob, django_assert_max_num_queries
):
    for day in range(30):
        start = NOW - timedelta(days=day)
        book(bob, scene["meeting"], start - 2 * H, start - H)
    book(bob, scene["chamber"], NOW, NOW + H)
    qualify(bob, equipment=scene["emc"])
    qualify(bob, equipment_class="emc")
    lab_door = scene["doors"]["lab"]
    with django_assert_max_num_queries(8):
        facts = load_door_facts(scene["bob"].uid_hash, lab_door, NOW)
    assert decide(facts).reason == "booking"
    assert facts.qualifications.space_ids == {lab_door.space_id}
    with django_assert_max_num_queries(8):
        facts = load_door_facts("0" * 32, lab_door, NOW)
    assert decide(facts).reason == "unknown_credential"


def test_the_cache_and_one_person_s_load_expand_qualifications_alike(scene, bob, sam, tina):
    from access.facts import all_qualifications
    from labs.qualifications import qualified_targets

    qualify(bob, equipment=scene["emc"])
    qualify(sam, equipment_class="emc")
    revoked = qualify(tina, equipment=scene["emc"])
    Qualification.objects.filter(pk=revoked.pk).update(revoked_at=NOW - H)
    cached, _changes_at = all_qualifications(NOW)
    for person in (bob, sam, tina):
        machines, labs = qualified_targets(person.pk, NOW)
        held = cached.get(person.pk)
        assert (held.equipment_ids, held.space_ids) == (machines, labs) if held else not machines
    assert cached[bob.pk].equipment_ids == {scene["emc"].pk} and tina.pk not in cached


def test_equipment_facts_take_at_most_eight_queries(scene, bob, django_assert_max_num_queries):
    book(bob, scene["chamber"], NOW + 5 * M, NOW + H)
    qualify(bob, equipment_class="emc")
    with django_assert_max_num_queries(8):
        facts = load_equipment_facts(scene["bob"].uid_hash, scene["emc"], NOW)
    assert str(decide(facts).reason) == "booking"


def test_a_machine_in_maintenance_or_in_use_is_refused(scene, bob):
    book(bob, scene["chamber"], NOW, NOW + H)
    qualify(bob, equipment=scene["emc"])
    Equipment.objects.filter(pk=scene["emc"].pk).update(status="maintenance")
    assert decide(load_equipment_facts(scene["bob"].uid_hash, scene["emc"], NOW)).reason == (
        "maintenance"
    )
    Equipment.objects.filter(pk=scene["emc"].pk).update(status="in_use")
    assert decide(load_equipment_facts(scene["bob"].uid_hash, scene["emc"], NOW)).reason == (
        "equipment_busy"
    )


def test_the_probe_finds_active_bookings_covering_now_or_starting_within_15_minutes(
    scene, bob, charlie
):
    soon = book(bob, scene["meeting"], NOW + 15 * M, NOW + H)
    machine = book(bob, scene["chamber"], NOW - H, NOW + M)
    book(bob, scene["meeting"], NOW - 2 * H, NOW)  # ended at now
    book(bob, scene["meeting"], NOW + 16 * M + H, NOW + 2 * H)  # too far
    book(bob, scene["lab"], NOW, NOW + H, status="cancelled")
    book(charlie, scene["lab"], NOW, NOW + H)  # someone else's
    held = {b.id: b.facts for b in held_bookings(bob.pk, NOW)}
    assert set(held) == {soon.pk, machine.pk}
    # A machine booking stands for the lab the machine is in.
    assert held[machine.pk].space_id == scene["emc"].location_id
    assert held[machine.pk].equipment_id == scene["emc"].pk


def test_a_tenant_out_of_contract_is_no_tenant_member_and_opens_no_office(scene, bob):
    door = scene["doors"]["acme"]
    assert decide(load_door_facts(scene["bob"].uid_hash, door, NOW)).reason == "tenant_office"
    Tenant.objects.filter(pk=bob.tenant_id).update(contract_end=date(2026, 3, 1))
    facts = load_door_facts(scene["bob"].uid_hash, door, NOW)
    assert facts.person.tenant_id is None
    assert decide(facts).reason == "not_authorized"


def test_lockdown_comes_from_the_site_mode_or_the_door_mode(scene):
    door = scene["doors"]["acme"]
    door.set_mode("lockdown")
    assert decide(load_door_facts(scene["bob"].uid_hash, door, NOW)).reason == "lockdown"
    door.set_mode("normal")
    SiteMode.set_lockdown(True)
    assert decide(load_door_facts(scene["bob"].uid_hash, door, NOW)).reason == "lockdown"
    assert decide(load_door_facts(scene["master"].uid_hash, door, NOW)).reason == "override"


@pytest.mark.postgres  # a plan test: SQLite's planner has no value statistics
def test_the_probe_uses_the_person_end_index_on_postgresql(scene, bob):
    for day in range(200):
        book(bob, scene["meeting"], NOW - timedelta(days=day, hours=2), NOW - timedelta(days=day))
    sql, params = probe_statement([bob.pk], NOW)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bookings_booking")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "booking_person_end" in plan


# --- the change feed


def test_every_write_to_a_watched_table_moves_the_change_version(scene, bob, tina, campus):
    steps = [
        lambda: Credential.objects.filter(pk=scene["bob"].pk).update(status="suspended"),
        lambda: Person.objects.filter(pk=bob.pk).update(is_active=False),
        lambda: Tenant.objects.filter(pk=bob.tenant_id).update(status="suspended"),
        lambda: Lease.objects.filter(tenant_id=bob.tenant_id).delete(),
        lambda: scene["doors"]["acme"].set_mode("passage"),
        lambda: SiteMode.set_lockdown(True),
        lambda: qualify(tina, equipment=scene["emc"]),
        lambda: Qualification.objects.filter(person=tina).update(revoked_at=NOW),
        lambda: Equipment.objects.filter(pk=scene["emc"].pk).update(status="maintenance"),
        lambda: VisitorPass.objects.create(visitor_name="Victor", host=bob, start=NOW, end=NOW + H),
    ]
    for step in steps:
        before = ChangeVersion.current()
        step()
        assert ChangeVersion.current() != before


def test_a_sign_in_does_not_move_the_change_version(bob):
    before = ChangeVersion.current()
    Person.objects.filter(pk=bob.pk).update(last_login=NOW)
    assert ChangeVersion.current() == before


# --- the in-memory copy


CASES = [
    ("bob", "entrance"),
    ("bob", "acme"),
    ("bob", "globex"),
    ("bob", "lab"),
    ("bob", "meeting"),
    ("sam", "globex"),
    ("tina", "lab"),
    ("tina", "acme"),
    ("charlie", "entrance"),
    ("master", "lab"),
    ("nobody", "entrance"),
]


def test_the_cache_gives_the_same_facts_as_the_database(scene, bob, charlie):
    book(bob, scene["meeting"], NOW, NOW + H)
    book(bob, scene["chamber"], NOW + 10 * M, NOW + H)
    qualify(bob, equipment_class="emc")
    Tenant.objects.filter(pk=charlie.tenant_id).update(status="suspended")
    cache = FactCache()
    cache.refresh(NOW)
    for who, where in CASES:
        door = scene["doors"][where]
        h = scene[who].uid_hash if who in scene else "f" * 32
        expected = load_door_facts(h, door, NOW)
        got = cache.door_facts(h, door.controller_id, door.pk, NOW).facts
        assert got == expected, (who, where)


def test_the_cache_answers_from_memory_with_at_most_the_bookings_probe(
    scene, django_assert_max_num_queries
):
    cache = FactCache()
    cache.refresh(NOW)
    door = scene["doors"]["acme"]
    with django_assert_max_num_queries(1):
        scanned = cache.door_facts(scene["bob"].uid_hash, "ctrl-a", door.pk, NOW)
    assert decide(scanned.facts).reason == "tenant_office"
    with django_assert_max_num_queries(0):
        scanned = cache.door_facts("f" * 32, "ctrl-a", door.pk, NOW)
    assert decide(scanned.facts).reason == "unknown_credential"


def test_a_door_of_another_controller_is_unknown_to_this_one(scene):
    cache = FactCache()
    cache.refresh(NOW)
    scanned = cache.door_facts(scene["bob"].uid_hash, "ctrl-b", "D-101", NOW)
    assert scanned.door is None
    assert decide(scanned.facts).reason == "bad_request"


@pytest.mark.parametrize(
    ("kind", "controller_id", "sender", "takes"),
    [
        ("native", "ctrl-m", "ctrl-m", True),  # the node the machine hangs on
        ("native", "ctrl-m", "ctrl-x", False),  # any other enrolled controller
        ("tasmota", "ctrl-m", "ctrl-m", True),  # the reader next to the relay
        ("tasmota", "ctrl-m", "laser1", False),  # the relay itself scans no badge
        ("tasmota", "", "ctrl-m", False),  # no reader named: no scans at all
        ("tasmota", "", "", False),
        ("none", "", "ctrl-m", False),  # sessions from the portal only
        ("none", "ctrl-m", "ctrl-m", False),  # a leftover id wires nothing
    ],
)
def test_a_machine_takes_scans_only_from_the_controller_it_is_wired_to(
    kind, controller_id, sender, takes
):
    machine = Equipment(controller_kind=kind, controller_id=controller_id, tasmota_topic="laser1")
    assert takes_scans_from(machine, sender) is takes


def test_the_scanned_machine_is_found_by_code_and_controller(scene):
    machine = scene["emc"]
    Equipment.objects.filter(pk=machine.pk).update(controller_kind="native", controller_id="ctrl-a")
    assert scanned_machine(machine.resource.code, "ctrl-a").pk == machine.pk
    assert scanned_machine(machine.resource.code, "ctrl-b") is None
    assert scanned_machine("NO-SUCH-MACHINE", "ctrl-a") is None


def test_a_suspension_reaches_the_cache_at_the_next_refresh(scene):
    cache = FactCache()
    cache.refresh(NOW)
    assert cache.refresh(NOW) is None  # nothing moved: no reload
    Credential.objects.filter(pk=scene["bob"].pk).update(status="suspended")
    assert cache.refresh(NOW) is not None
    scanned = cache.door_facts(scene["bob"].uid_hash, "ctrl-a", "D-101", NOW)
    assert decide(scanned.facts).reason == "suspended"


def test_a_lockdown_reaches_the_cache_at_the_next_refresh(scene):
    cache = FactCache()
    cache.refresh(NOW)
    SiteMode.set_lockdown(True)
    cache.refresh(NOW)
    assert cache.snapshot.lockdown
    scanned = cache.door_facts(scene["bob"].uid_hash, "ctrl-a", "D-101", NOW)
    assert decide(scanned.facts).reason == "lockdown"


def test_an_expiring_qualification_is_reloaded_when_it_ends(scene, bob):
    book(bob, scene["lab"], NOW, NOW + 3 * H)
    Qualification.objects.create(
        person=bob, equipment=scene["emc"], valid_from=NOW - H, valid_until=NOW + H
    )
    cache = FactCache()
    cache.refresh(NOW)
    assert cache.snapshot.changes_at == NOW + H + timedelta(microseconds=1)
    assert cache.refresh(NOW + H) is None
    later = NOW + H + M
    assert cache.refresh(later) is not None
    scanned = cache.door_facts(scene["bob"].uid_hash, "ctrl-a", "D-010", later)
    assert decide(scanned.facts).reason == "not_qualified"


def test_a_cache_not_checked_for_too_long_refuses_to_decide(scene):
    cache = FactCache(max_age=0.05)
    cache.refresh(NOW)
    cache.door_facts(scene["bob"].uid_hash, "ctrl-a", "D-101", NOW)
    time.sleep(0.1)
    with pytest.raises(FactsUnavailable):
        cache.door_facts(scene["bob"].uid_hash, "ctrl-a", "D-101", NOW)
