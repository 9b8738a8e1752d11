"""Badges, visitor passes, controllers, doors, site mode and the append-only audit log."""

import base64
import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError, transaction
from django.utils import timezone

from access.decision import Facts, decide
from access.models import (
    AppendOnlyError,
    AuditEvent,
    Controller,
    Credential,
    Door,
    SiteMode,
    VisitorPass,
    mosquitto_hash,
    purge_audit_events,
)
from access.protocol import credential_hash

UID = "04:a1:b2:c3"


def badge(holder=None, uid=UID, **extra) -> Credential:
    credential = Credential(holder=holder, **extra)
    credential.set_uid(uid)
    credential.save()
    return credential


@pytest.fixture
def visit(bob, campus):
    start = timezone.now()
    return VisitorPass.objects.create(
        visitor_name="Victor",
        host=bob,
        start=start,
        end=start + timedelta(hours=3),
        space=campus["office_acme"],
    )


# --- credentials


def test_a_badge_keeps_the_hash_the_reader_sends_and_never_the_uid(bob, settings):
    credential = badge(bob)
    assert credential.uid_hash == credential_hash("04A1B2C3", settings.CREDENTIAL_KEY)
    assert credential.uid_hint == "B2C3"
    stored = Credential.objects.filter(pk=credential.pk).values().get()
    assert not any("04A1B2C3" in str(v).upper() for v in stored.values() if v != "B2C3")


def test_one_badge_cannot_be_registered_twice(bob, alice):
    badge(bob)
    with pytest.raises(IntegrityError), transaction.atomic():
        badge(alice, uid="04A1B2C3")


def test_the_database_refuses_a_hash_that_is_not_32_hex(bob):
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.create(holder=bob, uid_hash="NOT-A-HASH")


def test_a_visitor_badge_needs_a_visitor_pass(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.create(kind="visitor", uid_hash="0" * 32)


def test_a_visitor_badge_belongs_to_no_person(bob, visit):
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.create(kind="visitor", uid_hash="0" * 32, visitor_pass=visit, holder=bob)


def test_the_visitor_badge_message_is_readable(visit):
    with pytest.raises(ValidationError, match="A visitor badge belongs to a visitor pass"):
        Credential(kind="badge", uid_hash="0" * 32, visitor_pass=visit).full_clean()


def test_a_visitor_badge_cannot_be_a_master_card(visit):
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.create(
            kind="visitor", uid_hash="0" * 32, visitor_pass=visit, override=True
        )


def test_only_facility_staff_hold_master_cards(bob, sam):
    with pytest.raises(ValidationError, match="Only facility staff"):
        Credential(holder=bob, uid_hash="0" * 32, override=True).full_clean()
    Credential(holder=sam, uid_hash="0" * 32, override=True).full_clean()


def test_a_visitor_badge_is_valid_during_the_visit_only(visit):
    credential = Credential(kind="visitor", uid_hash="1" * 32, visitor_pass=visit)
    credential.full_clean()
    assert (credential.valid_from, credential.valid_until) == (visit.start, visit.end)
    credential.valid_until = visit.end + timedelta(minutes=1)
    with pytest.raises(ValidationError, match="only during the visit"):
        credential.full_clean()


def test_validity_must_be_ordered(bob):
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        Credential.objects.create(holder=bob, uid_hash="2" * 32, valid_from=now, valid_until=now)


def test_a_suspended_badge_is_denied_by_the_decision(bob, doors):
    credential = badge(bob, status="suspended")
    now = timezone.now()
    facts = Facts(
        now=now,
        local_now=now.replace(tzinfo=None),
        credential=credential.to_facts(),
        door=doors["entrance"].to_facts(),
    )
    assert decide(facts).reason == "suspended"


# --- visitor passes


def test_a_badge_status_change_is_logged_with_who_and_why(bob, sam):
    credential = badge(bob)
    assert credential.change_status("suspended", actor=sam, via="api", why="left the company")
    assert not credential.change_status("suspended", actor=sam, via="api")  # already: no row
    event = AuditEvent.objects.get(kind="rights_change")
    assert (event.result, event.reason, event.actor, event.person) == ("suspended", "api", sam, bob)
    assert event.detail == {"changed": ["status"], "status": "suspended", "why": "left the company"}


def test_a_lost_badge_may_be_found_but_a_returned_one_stays_returned(bob, sam):
    credential = badge(bob, status="lost")
    with pytest.raises(ValueError):
        credential.change_status("suspended", actor=sam, via="api")
    assert credential.change_status("active", actor=sam, via="api")
    assert credential.change_status("returned", actor=sam, via="api")
    with pytest.raises(ValueError):
        credential.change_status("active", actor=sam, via="api")
    assert credential.status == "returned"


def test_a_visit_must_end_after_it_starts(bob):
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        VisitorPass.objects.create(visitor_name="V", host=bob, start=now, end=now)


def test_a_host_cannot_send_a_visitor_into_another_tenants_office(bob, charlie, campus):
    now = timezone.now()
    visit = VisitorPass(
        visitor_name="V",
        host=bob,
        start=now,
        end=now + timedelta(hours=1),
        space=campus["office_globex"],
    )
    with pytest.raises(ValidationError, match="does not lease this space"):
        visit.full_clean()
    visit.host = charlie
    visit.full_clean()


def test_staff_may_send_a_visitor_into_any_office(sam, globex, campus):
    now = timezone.now()
    VisitorPass(
        visitor_name="Plumber",
        host=sam,
        start=now,
        end=now + timedelta(hours=1),
        space=campus["office_globex"],
    ).full_clean()


def test_an_inactive_host_cannot_invite(bob):
    bob.is_active = False
    bob.save()
    now = timezone.now()
    with pytest.raises(ValidationError, match="active person"):
        VisitorPass(
            visitor_name="V", host=bob, start=now, end=now + timedelta(hours=1)
        ).full_clean()


# --- controllers


@pytest.mark.parametrize("bad_id", ["a/b", "ctrl+1", "ctrl#", "", "x" * 65, "with space", "-x"])
def test_a_controller_id_must_be_safe_as_topic_level_and_login(db, bad_id):
    with pytest.raises(ValidationError):
        Controller(id=bad_id, name="x").full_clean()


def test_a_controller_cannot_take_the_backends_login(db, settings):
    settings.MQTT_URL = "mqtt://backend:pw@127.0.0.1:1883"
    with pytest.raises(ValidationError, match="backend's MQTT login"):
        Controller(id="backend", name="x").full_clean()


def test_the_mqtt_password_is_returned_once_and_kept_as_a_mosquitto_hash(controllers):
    controller = controllers["a"]
    plaintext = controller.set_mqtt_password()
    controller.refresh_from_db()
    _, algorithm, iterations, salt, digest = controller.mqtt_password_hash.split("$")
    assert (algorithm, iterations, len(base64.b64decode(salt))) == ("7", "101", 12)
    expected = hashlib.pbkdf2_hmac("sha512", plaintext.encode(), base64.b64decode(salt), 101)
    assert base64.b64decode(digest) == expected
    assert plaintext not in controller.mqtt_password_hash
    assert controller.set_mqtt_password() != plaintext


def test_mosquitto_hash_matches_mosquitto_passwd_output():
    # A line written by `mosquitto_passwd -b pw alice s3cret` (mosquitto 2.0.11).
    line = "$7$101$k1h91xsB/8+/hgwC$VpBQOdu78tp/8dNEwxVMD/YcuoC/7ancfBfp9bp5NRtcF92660s3MSqGd6IdTBmmRsCYItRb6qoqnCL+I9D9IA=="  # noqa: E501
    salt = base64.b64decode(line.split("$")[3])
    assert mosquitto_hash("s3cret", salt=salt) == line


# --- doors


def test_a_perimeter_door_says_which_way_it_counts(controllers):
    with pytest.raises(IntegrityError), transaction.atomic():
        Door.objects.create(id="D-9", name="x", controller=controllers["a"], kind="perimeter")


def test_only_perimeter_doors_have_a_direction(controllers, campus):
    with pytest.raises(ValidationError, match="other doors do not"):
        Door(
            id="D-9",
            name="x",
            controller=controllers["a"],
            kind="office",
            space=campus["office_acme"],
            direction="in",
        ).full_clean()


def test_an_office_door_needs_its_office(controllers):
    with pytest.raises(ValidationError, match="needs the space it leads into"):
        Door(id="D-9", name="x", controller=controllers["a"], kind="office").full_clean()


def test_a_lab_door_leads_into_a_lab(controllers, campus):
    with pytest.raises(ValidationError, match="cannot lead into a meeting room"):
        Door(
            id="D-9", name="x", controller=controllers["a"], kind="lab", space=campus["meeting"]
        ).full_clean()


def test_a_malformed_schedule_is_refused_with_a_readable_message(controllers):
    door = Door(
        id="D-9",
        name="x",
        controller=controllers["a"],
        kind="perimeter",
        direction="both",
        schedule=[[1, "20:00", "07:00"]],
    )
    with pytest.raises(ValidationError, match="Invalid weekly schedule: slot 1: the slot must end"):
        door.full_clean()
    door.schedule = [[1, "07:00", "20:00"]]
    door.full_clean()


def test_the_pulse_stays_within_a_minute(controllers):
    with pytest.raises(IntegrityError), transaction.atomic():
        Door.objects.create(
            id="D-9", name="x", controller=controllers["a"], kind="floor", pulse_ms=120_000
        )


def test_changing_a_door_mode_bumps_its_version_and_is_logged(doors, sam):
    door = doors["lab"]
    assert door.set_mode("passage", actor=sam) == 1
    assert door.set_mode("normal", actor=sam) == 2
    door.refresh_from_db()
    assert (door.mode, door.mode_version) == ("normal", 2)
    logged = AuditEvent.objects.filter(kind="command", door="D-010").order_by("id")
    assert [(e.result, e.actor, e.detail["ver"]) for e in logged] == [
        ("passage", sam, 1),
        ("normal", sam, 2),
    ]


def test_a_door_refuses_an_unknown_mode(doors):
    with pytest.raises(ValueError):
        doors["lab"].set_mode("open")


# --- site mode


def test_lockdown_is_versioned_and_logged_with_who(sam):
    assert SiteMode.current().lockdown is False
    mode = SiteMode.set_lockdown(True, actor=sam)
    assert (mode.lockdown, mode.version, mode.changed_by) == (True, 1, sam)
    assert SiteMode.set_lockdown(True, actor=sam).version == 1  # unchanged: no new version
    assert SiteMode.set_lockdown(False, actor=sam).version == 2
    assert list(AuditEvent.objects.filter(kind="lockdown").values_list("result", flat=True)) == [
        "off",
        "on",
    ]


def test_there_is_one_site_mode(db):
    SiteMode.current()
    with pytest.raises(IntegrityError), transaction.atomic():
        SiteMode.objects.create(id=2)


# --- audit log


def decision_event(req_id="r1", controller="ctrl-a", **extra):
    return AuditEvent(
        kind="decision",
        controller=controller,
        door="D-001",
        req_id=req_id,
        result="grant",
        reason="staff",
        uid_hash="0" * 32,
        latency_ms=3,
        **extra,
    )


def test_an_audit_row_cannot_be_changed(db):
    event = AuditEvent.objects.create(kind="door_event", controller="ctrl-a", result="forced")
    event.result = "closed"
    with pytest.raises(AppendOnlyError):
        event.save()
    assert AuditEvent.objects.get().result == "forced"


def test_an_audit_row_cannot_be_deleted(db):
    event = AuditEvent.objects.create(kind="door_event", controller="ctrl-a", result="forced")
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(result="closed")
    event.result = "closed"
    with pytest.raises(AppendOnlyError), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["result"])
    assert AuditEvent.objects.get().result == "forced"


def test_a_replayed_decision_is_logged_once(db):
    AuditEvent.objects.record([decision_event("r1"), decision_event("r2")])
    AuditEvent.objects.record([decision_event("r1"), decision_event("r1", controller="ctrl-b")])
    assert sorted(AuditEvent.objects.values_list("controller", "req_id")) == [
        ("ctrl-a", "r1"),
        ("ctrl-a", "r2"),
        ("ctrl-b", "r1"),
    ]


def test_a_batch_keeps_every_column_as_given(bob):
    credential = badge(bob)
    at = timezone.now() - timedelta(minutes=3)
    first = decision_event("r1", ts=at, credential=credential, person=bob, detail={"ts": 17})
    second = AuditEvent(kind="door_event", controller="ctrl-a", door="D-002", result="opened",
                        seq=2**62, actor=bob, detail={"why": "é"})  # fmt: skip
    # A dict of some fields: the others take their defaults (now, {}, "", None).
    third = {"kind": "decision", "controller": "ctrl-b", "req_id": "r1", "result": "deny"}
    before = timezone.now()
    AuditEvent.objects.record([first, second, third])
    fields = ["ts", "credential_id", "person_id", "latency_ms", "detail", "req_id", "seq"]
    rows = AuditEvent.objects.values_list(*fields, "actor_id", "door").order_by("id")
    assert list(rows[:2]) == [
        (at, credential.pk, bob.pk, 3, {"ts": 17}, "r1", None, None, "D-001"),
        (second.ts, None, None, None, {"why": "é"}, None, 2**62, bob.pk, "D-002"),
    ]
    assert rows[2][1:] == (None, None, None, {}, "r1", None, None, "")
    assert before <= rows[2][0] <= timezone.now()


@pytest.mark.postgres  # SQLite does not hold strings to their length
def test_a_value_too_long_is_refused_not_cut(db):
    with pytest.raises(DataError), transaction.atomic():
        AuditEvent.objects.record([decision_event("r" * 65)])
    assert not AuditEvent.objects.exists()


def test_the_database_refuses_a_second_row_for_one_request(db):
    decision_event("r1").save()
    with pytest.raises(IntegrityError), transaction.atomic():
        decision_event("r1").save()


def test_a_replayed_device_event_is_logged_once(db):
    def event(seq):
        return AuditEvent(kind="door_event", controller="ctrl-a", door="D-001", result="opened",
                          seq=seq)  # fmt: skip

    AuditEvent.objects.record([event(1), event(2)])
    AuditEvent.objects.record([event(2), event(3)])
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == [1, 2, 3]


def test_a_decision_is_a_grant_or_a_deny(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.create(kind="decision", controller="c", req_id="r", result="maybe")


def test_retention_is_the_one_way_out_of_the_log(db):
    now = timezone.now()
    AuditEvent.objects.create(kind="lockdown", result="on", ts=now - timedelta(days=400))
    AuditEvent.objects.create(kind="lockdown", result="off", ts=now - timedelta(days=1))
    assert purge_audit_events(now - timedelta(days=365)) == 1
    assert list(AuditEvent.objects.values_list("result", flat=True)) == ["off"]


def test_a_badge_in_the_log_cannot_be_deleted(bob):
    credential = badge(bob)
    AuditEvent.objects.create(kind="rights_change", credential=credential, result="issued")
    with pytest.raises(IntegrityError):
        credential.delete()
