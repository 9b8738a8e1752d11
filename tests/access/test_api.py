"""The access API: staff-only door control, badges and visitors scoped to the caller's tenant
(another tenant's are 404), the access log in JSON and CSV, who is inside, and bad input as
422 (never a 500, never the UID repeated back)."""

import json
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import AuditEvent, Controller, Credential, Door, SiteMode, VisitorPass
from tests.access import broker

broker_root, listener = broker.broker_root, broker.listener  # fixtures

JSON = "application/json"
UID = "04:A1:B2:C3:D4:E5:F6"


def post(client, url, data=None):
    return client.post(url, json.dumps(data) if data is not None else "", content_type=JSON)


def badge(holder=None, uid="0102030405", **extra) -> Credential:
    credential = Credential(holder=holder, **extra)
    credential.set_uid(uid)
    credential.save()
    return credential


@pytest.fixture
def online(controllers):
    Controller.objects.update(online=True, last_seen=timezone.now(), firmware="1.4.2")
    return controllers


@pytest.fixture
def exit_door(doors, controllers):
    return Door.objects.create(
        id="D-002", name="Main exit", controller=controllers["a"], kind="perimeter", direction="out"
    )


@pytest.fixture
def badges(alice, bob, charlie, sam):
    return {
        "alice": badge(alice, "0A0A0A0A"),
        "bob": badge(bob, "0B0B0B0B"),
        "charlie": badge(charlie, "0C0C0C0C"),
        "master": badge(sam, "0D0D0D0D", override=True),
    }


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["detail"], body


# ------------------------------------------------------------------ who may reach what

STAFF_ONLY = [
    ("get", "/api/v1/doors"),
    ("get", "/api/v1/doors/D-101"),
    ("post", "/api/v1/doors/D-101/unlock"),
    ("post", "/api/v1/doors/D-101/mode"),
    ("get", "/api/v1/controllers"),
    ("get", "/api/v1/lockdown"),
    ("post", "/api/v1/lockdown"),
    ("get", "/api/v1/occupancy"),
]


@pytest.mark.parametrize("method,url", STAFF_ONLY)
@pytest.mark.parametrize("who", ["as_alice", "as_bob", "as_tina"])
def test_door_control_is_for_facility_staff_only(request, doors, who, method, url):
    client = request.getfixturevalue(who)
    body = {"mode": "passage"} if url.endswith("/mode") else None
    if url.endswith("/lockdown") and method == "post":
        body = {"on": True, "confirm": "LOCKDOWN"}
    response = post(client, url, body) if method == "post" else client.get(url)
    assert_error(response, 403, "staff_only")
    assert not SiteMode.current().lockdown
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/doors",
        "/api/v1/credentials",
        "/api/v1/access-events",
        "/api/v1/visitors",
        "/api/v1/access-events.csv",
        "/api/v1/occupancy",
    ],
)
def test_anonymous_callers_get_401(client, db, url):
    assert_error(client.get(url), 401, "unauthenticated")


# ------------------------------------------------------------------ doors and controllers


def test_staff_see_every_door_with_its_live_state(as_sam, doors, online):
    Controller.objects.filter(pk="ctrl-b").update(last_seen=timezone.now() - timedelta(minutes=5))
    AuditEvent.objects.create(kind="decision", door="D-101", result="grant", reason="staff")
    AuditEvent.objects.create(kind="door_event", door="D-101", result="opened", seq=1)
    response = as_sam.get("/api/v1/doors")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 4
    by_id = {d["id"]: d for d in body["items"]}
    assert by_id["D-101"]["controller_online"] is True
    assert by_id["D-102"]["controller_online"] is False  # not heard from for 5 minutes
    assert by_id["D-101"]["last_event"]["kind"] == "door_event"
    assert by_id["D-101"]["last_event"]["result"] == "opened"
    assert by_id["D-010"]["last_event"] is None
    assert by_id["D-001"]["direction"] == "in" and by_id["D-001"]["mode"] == "normal"
    assert by_id["D-101"]["space_code"] == "B-1.01"


def test_doors_can_be_filtered(as_sam, doors):
    response = as_sam.get("/api/v1/doors?kind=office&controller=ctrl-a")
    assert [d["id"] for d in response.json()["items"]] == ["D-101"]
    assert_error(as_sam.get("/api/v1/doors?kind=window"), 422, "invalid")


def test_an_empty_text_filter_filters_nothing(as_sam, doors):
    every = as_sam.get("/api/v1/doors").json()["count"]
    assert as_sam.get("/api/v1/doors?controller=").json()["count"] == every > 0


def test_one_door_and_an_unknown_one(as_sam, doors):
    assert as_sam.get("/api/v1/doors/D-010").json()["kind"] == "lab"
    assert_error(as_sam.get("/api/v1/doors/D-999"), 404, "not_found")


def test_controllers_show_presence_firmware_and_allow_list_version(as_sam, doors, online):
    Controller.objects.filter(pk="ctrl-b").update(online=False, acl_version=12)
    body = as_sam.get("/api/v1/controllers").json()
    a, b = body["items"]
    assert (a["id"], a["online"], a["firmware"], a["doors"]) == (
        "ctrl-a",
        True,
        "1.4.2",
        ["D-001", "D-010", "D-101"],
    )
    assert (b["online"], b["acl_version"], b["mqtt_password_set"]) == (False, 12, False)
    offline = as_sam.get("/api/v1/controllers?online=false").json()
    assert [c["id"] for c in offline["items"]] == ["ctrl-b"]


@pytest.mark.mqtt
def test_staff_unlock_an_online_door_and_get_the_request_id(as_sam, doors, online, listener):
    response = post(as_sam, "/api/v1/doors/D-101/unlock", {"why": "delivery"})
    assert response.status_code == 202, response.content
    body = response.json()
    message = listener.wait_for(f"{listener.root}/ctrl/ctrl-a/door/D-101/cmd")
    assert json.loads(message.payload)["req_id"] == body["req_id"]
    assert body["pulse_ms"] == 4000 and body["controller_id"] == "ctrl-a"
    event = AuditEvent.objects.get(kind="command")
    assert (event.result, event.actor.email, event.detail["why"]) == (
        "sent",
        "sam@campus.test",
        "delivery",
    )


def test_unlocking_an_offline_door_is_a_409(as_sam, doors):
    assert_error(post(as_sam, "/api/v1/doors/D-101/unlock"), 409, "controller_offline")


def test_unlocking_during_lockdown_is_a_409(as_sam, doors, online, sam):
    SiteMode.set_lockdown(True, actor=sam)
    assert_error(post(as_sam, "/api/v1/doors/D-101/unlock"), 409, "lockdown")


def test_unlocking_without_a_broker_is_a_503(as_sam, doors, online, settings):
    settings.MQTT_URL = ""
    assert_error(post(as_sam, "/api/v1/doors/D-101/unlock"), 503, "broker_unavailable")
    assert AuditEvent.objects.get(kind="command").result == "broker_unavailable"


@pytest.mark.parametrize(
    "body", [{"pulse_ms": 50}, {"pulse_ms": 120000}, {"pulse_ms": "long"}, {"door": "D-102"}]
)
def test_a_bad_unlock_request_is_a_422(as_sam, doors, online, body):
    assert_error(post(as_sam, "/api/v1/doors/D-101/unlock", body), 422, "invalid")
    assert not AuditEvent.objects.exists()


def test_unlocking_an_unknown_door_is_a_404(as_sam, doors):
    assert_error(post(as_sam, "/api/v1/doors/nope/unlock"), 404, "not_found")


@pytest.mark.mqtt
def test_staff_hold_a_door_open(as_sam, doors, listener):
    response = post(as_sam, "/api/v1/doors/D-001/mode", {"mode": "passage", "why": "open day"})
    assert response.status_code == 200, response.content
    assert (response.json()["mode"], response.json()["mode_version"]) == ("passage", 1)
    message = listener.wait_for(f"{listener.root}/ctrl/ctrl-a/door/D-001/desired")
    assert json.loads(message.payload) == {"v": 1, "ver": 1, "mode": "passage"}


def test_an_unknown_door_mode_is_a_422(as_sam, doors):
    assert_error(post(as_sam, "/api/v1/doors/D-001/mode", {"mode": "open"}), 422, "invalid")


# ------------------------------------------------------------------ lockdown


def test_the_lockdown_state_is_shown_to_staff(as_sam, sam):
    assert as_sam.get("/api/v1/lockdown").json() == {
        "lockdown": False,
        "version": 0,
        "changed_at": None,
        "changed_by": None,
    }


@pytest.mark.mqtt
def test_staff_lock_the_site_down_with_a_typed_confirmation(as_sam, listener):
    response = post(as_sam, "/api/v1/lockdown", {"on": True, "confirm": "LOCKDOWN", "why": "drill"})
    assert response.status_code == 200, response.content
    assert response.json()["lockdown"] is True and response.json()["changed_by"] == "Sam Test"
    message = listener.wait_for(f"{listener.root}/site/mode")
    assert json.loads(message.payload) == {"v": 1, "ver": 1, "mode": "lockdown"}
    assert AuditEvent.objects.get(kind="lockdown").detail["why"] == "drill"


@pytest.mark.parametrize("body", [{"on": True}, {"on": True, "confirm": "yes"}, {"on": "maybe"}])
def test_lockdown_needs_the_confirmation_word(as_sam, body):
    assert_error(post(as_sam, "/api/v1/lockdown", body), 422, "invalid")
    assert not SiteMode.current().lockdown


def test_lockdown_without_a_broker_is_saved_and_answered_503(as_sam, settings):
    settings.MQTT_URL = ""
    response = post(as_sam, "/api/v1/lockdown", {"on": True, "confirm": "LOCKDOWN"})
    assert_error(response, 503, "broker_unavailable")
    assert SiteMode.current().lockdown


# ------------------------------------------------------------------ badges


def test_staff_register_a_badge_and_the_uid_is_never_kept_nor_echoed(as_sam, bob, settings, caplog):
    caplog.set_level(logging.DEBUG)
    response = post(as_sam, "/api/v1/credentials", {"uid": UID, "holder_id": bob.pk, "label": "42"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["holder_id"], body["uid_hint"], body["kind"], body["status"]) == (
        bob.pk,
        "E5F6",
        "badge",
        "active",
    )
    assert "uid" not in body and "uid_hash" not in body
    credential = Credential.objects.get()
    assert credential.uid_hash == Credential.hash_uid(UID)
    event = AuditEvent.objects.get(kind="rights_change")
    assert (event.result, event.reason, event.person, event.credential) == (
        "issued",
        "api",
        bob,
        credential,
    )
    for text in (response.content.decode(), caplog.text, json.dumps(event.detail)):
        assert "04A1B2C3" not in text.upper().replace(":", "")


@pytest.mark.parametrize("uid", ["zz", "07:A1:9", "0", "", "x" * 65, 1234])
def test_a_bad_uid_is_a_422_that_does_not_repeat_it(as_sam, bob, uid):
    response = post(as_sam, "/api/v1/credentials", {"uid": uid, "holder_id": bob.pk})
    assert_error(response, 422, "invalid")
    if isinstance(uid, str) and len(uid) > 1:
        assert uid not in response.json()["detail"]
    assert not Credential.objects.exists()


def test_a_badge_registered_twice_is_a_409(as_sam, bob, alice):
    post(as_sam, "/api/v1/credentials", {"uid": UID, "holder_id": bob.pk})
    response = post(as_sam, "/api/v1/credentials", {"uid": UID.lower(), "holder_id": alice.pk})
    assert_error(response, 409, "already_registered")
    assert Credential.objects.count() == 1


def test_staff_may_issue_a_master_card_to_staff_only(as_sam, sam, bob):
    ok = post(as_sam, "/api/v1/credentials", {"uid": UID, "holder_id": sam.pk, "override": True})
    assert ok.status_code == 201 and ok.json()["override"] is True
    refused = post(
        as_sam, "/api/v1/credentials", {"uid": "0102", "holder_id": bob.pk, "override": True}
    )
    assert_error(refused, 422, "invalid")


def test_a_tenant_admin_registers_badges_for_their_own_people_only(as_alice, bob, charlie):
    mine = post(as_alice, "/api/v1/credentials", {"uid": UID, "holder_id": bob.pk})
    assert mine.status_code == 201, mine.content
    theirs = post(as_alice, "/api/v1/credentials", {"uid": "0102", "holder_id": charlie.pk})
    assert_error(theirs, 422, "invalid")
    nobody = post(as_alice, "/api/v1/credentials", {"uid": "0103"})
    assert_error(nobody, 422, "invalid")
    master = post(
        as_alice, "/api/v1/credentials", {"uid": "0104", "holder_id": bob.pk, "override": True}
    )
    assert_error(master, 403, "staff_only")
    assert Credential.objects.count() == 1


def test_a_member_cannot_register_badges(as_bob, bob):
    assert_error(
        post(as_bob, "/api/v1/credentials", {"uid": UID, "holder_id": bob.pk}), 403, "staff_only"
    )


def test_a_badge_with_unknown_fields_or_a_bad_validity_is_a_422(as_sam, bob):
    extra = post(as_sam, "/api/v1/credentials", {"uid": UID, "holder_id": bob.pk, "pin": "1"})
    assert_error(extra, 422, "invalid")
    backwards = post(
        as_sam,
        "/api/v1/credentials",
        {
            "uid": UID,
            "holder_id": bob.pk,
            "valid_from": "2026-05-02T00:00",
            "valid_until": "2026-05-01T00:00",
        },
    )
    assert_error(backwards, 422, "invalid")
    nobody = post(as_sam, "/api/v1/credentials", {"uid": UID, "holder_id": 99999})
    assert_error(nobody, 422, "invalid")
    assert not Credential.objects.exists()


def ids(response):
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["items"]}


def test_badges_are_listed_within_the_callers_scope(as_sam, as_alice, as_bob, badges):
    assert ids(as_sam.get("/api/v1/credentials")) == {b.pk for b in badges.values()}
    assert ids(as_alice.get("/api/v1/credentials")) == {badges["alice"].pk, badges["bob"].pk}
    assert ids(as_bob.get("/api/v1/credentials")) == {badges["bob"].pk}
    assert ids(as_sam.get(f"/api/v1/credentials?holder={badges['bob'].holder_id}")) == {
        badges["bob"].pk
    }


def test_another_tenants_badge_is_a_404(as_alice, as_bob, badges):
    charlie = badges["charlie"].pk
    assert_error(as_alice.get(f"/api/v1/credentials/{charlie}"), 404, "not_found")
    assert_error(as_bob.get(f"/api/v1/credentials/{badges['alice'].pk}"), 404, "not_found")
    assert_error(post(as_alice, f"/api/v1/credentials/{charlie}/suspend"), 404, "not_found")
    assert_error(as_alice.get(f"/api/v1/credentials/{badges['master'].pk}"), 404, "not_found")
    assert as_bob.get(f"/api/v1/credentials/{badges['bob'].pk}").status_code == 200


def test_a_tenant_admin_suspends_reports_lost_and_reactivates_their_peoples_badges(
    as_alice, alice, badges
):
    url = f"/api/v1/credentials/{badges['bob'].pk}"
    suspended = post(as_alice, f"{url}/suspend", {"why": "on leave"})
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    assert post(as_alice, f"{url}/report-lost").json()["status"] == "lost"
    assert post(as_alice, f"{url}/reactivate", {"why": "found"}).json()["status"] == "active"
    events = AuditEvent.objects.filter(kind="rights_change").order_by("id")
    assert [(e.result, e.actor, e.detail.get("why")) for e in events] == [
        ("suspended", alice, "on leave"),
        ("lost", alice, None),
        ("active", alice, "found"),
    ]


def test_a_repeated_suspend_changes_nothing_and_logs_nothing(as_sam, badges):
    url = f"/api/v1/credentials/{badges['bob'].pk}/suspend"
    post(as_sam, url)
    assert post(as_sam, url).status_code == 200
    assert AuditEvent.objects.filter(kind="rights_change").count() == 1


def test_a_lost_badge_cannot_be_suspended(as_sam, badges):
    url = f"/api/v1/credentials/{badges['bob'].pk}"
    post(as_sam, f"{url}/report-lost")
    assert_error(post(as_sam, f"{url}/suspend"), 409, "invalid_transition")


def test_a_member_cannot_suspend_even_their_own_badge(as_bob, badges):
    response = post(as_bob, f"/api/v1/credentials/{badges['bob'].pk}/suspend")
    assert_error(response, 403, "staff_only")
    assert Credential.objects.get(pk=badges["bob"].pk).status == "active"


def test_a_bad_reason_is_a_422(as_sam, badges):
    response = post(as_sam, f"/api/v1/credentials/{badges['bob'].pk}/suspend", {"why": "x" * 201})
    assert_error(response, 422, "invalid")


# ------------------------------------------------------------------ visitors


def visit_body(**extra):
    start = timezone.localtime() + timedelta(hours=1)
    return {
        "visitor_name": "Victor Hugo",
        "visitor_company": "Les Misérables SA",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=3)).isoformat(),
        **extra,
    }


def test_a_tenant_admin_expects_a_visitor_with_a_badge(as_alice, alice, campus):
    response = post(
        as_alice, "/api/v1/visitors", visit_body(uid=UID, space_id=campus["office_acme"].pk)
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["host_id"] == alice.pk and body["host_name"] == "Alice Test"
    assert body["badge"]["kind"] == "visitor" and body["badge"]["uid_hint"] == "E5F6"
    credential = Credential.objects.get()
    assert credential.valid_from == VisitorPass.objects.get().start
    event = AuditEvent.objects.get(kind="rights_change")
    assert (event.result, event.actor, event.person) == ("visitor_badge", alice, alice)


def test_a_visitor_badge_can_be_handed_over_later_once(as_sam, alice):
    created = post(as_sam, "/api/v1/visitors", visit_body(host_id=alice.pk))
    assert created.status_code == 201 and created.json()["badge"] is None
    url = f"/api/v1/visitors/{created.json()['id']}/badge"
    handed = post(as_sam, url, {"uid": UID})
    assert handed.status_code == 201 and handed.json()["badge"]["uid_hint"] == "E5F6"
    assert_error(post(as_sam, url, {"uid": "0102"}), 409, "already_registered")
    results = AuditEvent.objects.filter(kind="rights_change").values_list("result", flat=True)
    assert sorted(results) == ["visitor_badge", "visitor_pass"]


def test_a_tenant_admin_cannot_host_for_another_tenant_or_open_its_office(
    as_alice, charlie, campus
):
    assert_error(post(as_alice, "/api/v1/visitors", visit_body(host_id=charlie.pk)), 422, "invalid")
    other_office = visit_body(space_id=campus["office_globex"].pk)
    assert_error(post(as_alice, "/api/v1/visitors", other_office), 422, "invalid")
    assert not VisitorPass.objects.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"end": "2020-01-01T10:00"},  # before the start
        {"start": "2020-01-01T09:00", "end": "2020-01-01T10:00"},  # over already
        {"visitor_name": ""},
        {"space_id": 999999},
        {"uid": "not-hex"},
        {"end": "soon"},
        {"badge_colour": "red"},
    ],
)
def test_a_bad_visitor_pass_is_a_422(as_alice, acme, change):
    assert_error(post(as_alice, "/api/v1/visitors", visit_body(**change)), 422, "invalid")
    assert not VisitorPass.objects.exists() and not Credential.objects.exists()


def test_a_visit_longer_than_a_month_is_a_422(as_sam):
    start = timezone.localtime()
    body = visit_body(start=start.isoformat(), end=(start + timedelta(days=40)).isoformat())
    assert_error(post(as_sam, "/api/v1/visitors", body), 422, "invalid")


def test_visitors_are_listed_for_their_hosts_tenant_only(
    as_sam, as_alice, as_charlie, alice, bob, charlie
):
    now = timezone.now()
    acme = VisitorPass.objects.create(
        visitor_name="V1", host=bob, start=now, end=now + timedelta(hours=1)
    )
    globex = VisitorPass.objects.create(
        visitor_name="V2", host=charlie, start=now, end=now + timedelta(hours=1)
    )
    assert ids(as_sam.get("/api/v1/visitors")) == {acme.pk, globex.pk}
    assert ids(as_alice.get("/api/v1/visitors")) == {acme.pk}
    assert_error(as_alice.get(f"/api/v1/visitors/{globex.pk}"), 404, "not_found")
    assert_error(
        post(as_alice, f"/api/v1/visitors/{globex.pk}/badge", {"uid": UID}), 404, "not_found"
    )
    assert_error(as_charlie.get("/api/v1/visitors"), 403, "staff_only")


def test_a_member_cannot_expect_visitors(as_bob, bob):
    assert_error(post(as_bob, "/api/v1/visitors", visit_body()), 403, "staff_only")


# ------------------------------------------------------------------ the access log


@pytest.fixture
def log_lines(doors, alice, bob, charlie, badges, sam):
    now = timezone.now()

    def line(person, minutes, **extra):
        fields = {
            "kind": "decision",
            "door": "D-001",
            "controller": "ctrl-a",
            "result": "grant",
            "reason": "common_area",
        } | extra
        return AuditEvent.objects.create(
            person=person,
            credential=badges.get(person.first_name.lower()) if person else None,
            ts=now - timedelta(minutes=minutes),
            req_id=f"r{minutes}",
            **fields,
        )

    return {
        "bob_in": line(bob, 50, detail={"latency_ms": 3}),
        "bob_denied": line(bob, 40, door="D-010", result="deny", reason="no_booking"),
        "alice_in": line(alice, 30, door="D-101", reason="tenant_office"),
        "charlie_in": line(charlie, 20, door="D-102", controller="ctrl-b", reason="tenant_office"),
        "lockdown": AuditEvent.objects.create(kind="lockdown", result="on", actor=sam),
    }


def test_the_access_log_is_scoped_to_the_caller(as_sam, as_alice, as_bob, log_lines):
    every = {e.pk for e in log_lines.values()}
    assert ids(as_sam.get("/api/v1/access-events")) == every
    acme = {log_lines[k].pk for k in ("bob_in", "bob_denied", "alice_in")}
    assert ids(as_alice.get("/api/v1/access-events")) == acme
    bobs = {log_lines[k].pk for k in ("bob_in", "bob_denied")}
    assert ids(as_bob.get("/api/v1/access-events")) == bobs
    assert (
        ids(as_alice.get(f"/api/v1/access-events?person={log_lines['charlie_in'].person_id}"))
        == set()
    )


def test_the_access_log_shows_details_to_staff_only(as_sam, as_bob, log_lines):
    pk = log_lines["bob_in"].pk
    staff = {e["id"]: e for e in as_sam.get("/api/v1/access-events").json()["items"]}
    member = {e["id"]: e for e in as_bob.get("/api/v1/access-events").json()["items"]}
    assert staff[pk]["detail"] == {"latency_ms": 3} and member[pk]["detail"] is None
    assert member[pk]["person_name"] == "Bob Test" and member[pk]["badge_hint"] == "0B0B"


def test_the_access_log_filters_by_door_result_reason_person_and_time(as_sam, log_lines, bob):
    def found(query):
        return ids(as_sam.get(f"/api/v1/access-events?{query}"))

    assert found("door=D-010") == {log_lines["bob_denied"].pk}
    assert found("result=deny&reason=no_booking") == {log_lines["bob_denied"].pk}
    assert found(f"person={bob.pk}") == {log_lines["bob_in"].pk, log_lines["bob_denied"].pk}
    assert found("kind=lockdown") == {log_lines["lockdown"].pk}
    since = (timezone.localtime() - timedelta(minutes=35)).strftime("%Y-%m-%dT%H:%M:%S")
    until = (timezone.localtime() - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M:%S")
    assert found(f"from={since}&to={until}") == {log_lines["alice_in"].pk}
    assert found("door=&result=&reason=") == found("")  # empty: not a filter


@pytest.mark.parametrize(
    "query",
    [
        "from=yesterday",
        "from=2026-05-02T00:00&to=2026-05-01T00:00",
        "person=bob",
        "kind=party",
        f"door={'D' * 65}",
    ],
)
def test_a_bad_access_log_filter_is_a_422(as_sam, db, query):
    assert_error(as_sam.get(f"/api/v1/access-events?{query}"), 422, "invalid")
    assert_error(as_sam.get(f"/api/v1/access-events.csv?{query}"), 422, "invalid")


def csv_lines(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return text[1:].splitlines()


def test_the_csv_export_uses_semicolons_a_bom_and_the_same_scope(as_sam, as_alice, log_lines):
    staff = csv_lines(as_sam.get("/api/v1/access-events.csv"))
    assert staff[0].split(";")[:4] == ["time", "kind", "door", "controller"]
    assert len(staff) == 1 + len(log_lines)
    alice = csv_lines(as_alice.get("/api/v1/access-events.csv"))
    assert len(alice) == 1 + 3
    assert not [line for line in alice if "charlie" in line.lower()]
    bob_line = next(line for line in alice if "no_booking" in line)
    assert bob_line.split(";")[5:8] == ["Bob Test", "bob@acme.test", "…0B0B"]


def test_the_csv_export_defuses_spreadsheet_formulas(as_sam, bob, doors):
    bob.first_name = "=HYPERLINK(1)"
    bob.save()
    AuditEvent.objects.create(
        kind="decision", door="D-001", person=bob, result="grant", reason="common_area", req_id="x"
    )
    lines = csv_lines(as_sam.get("/api/v1/access-events.csv"))
    assert lines[1].split(";")[5] == "'=HYPERLINK(1) Test"


def test_the_csv_export_defuses_a_person_named_like_a_function(as_sam, bob, doors):
    bob.first_name, bob.last_name = "@SUM(A1:A9)", "-1"
    bob.save()
    AuditEvent.objects.create(
        kind="decision",
        door="D-001",
        person=bob,
        result="grant",
        reason="common_area",
        req_id="x",
        latency_ms=3,
    )
    [line] = [x for x in csv_lines(as_sam.get("/api/v1/access-events.csv"))[1:] if "bob@" in x]
    cells = line.split(";")
    assert cells[5] == "'@SUM(A1:A9) -1"
    assert cells[10] == "3"  # the latency is a number


# ------------------------------------------------------------------ occupancy


def test_occupancy_lists_who_badged_in_and_not_out_since_midnight(
    as_sam, doors, exit_door, bob, charlie, alice, sam
):
    now = timezone.now()
    visit = VisitorPass.objects.create(
        visitor_name="Victor",
        visitor_company="Hugo SA",
        host=alice,
        start=now - timedelta(hours=1),
        end=now + timedelta(hours=1),
    )
    visitor_badge = badge(kind="visitor", visitor_pass=visit, uid="0E0E")

    def grant(door, seconds, **who):
        AuditEvent.objects.create(
            kind="decision",
            door=door,
            result="grant",
            reason="x",
            ts=now - timedelta(seconds=seconds),
            req_id=f"{door}{seconds}",
            **who,
        )

    grant("D-001", 50, person=bob)
    grant("D-001", 40, person=charlie)
    grant("D-002", 30, person=charlie)  # charlie left
    grant("D-001", 20, credential=visitor_badge)
    grant("D-101", 10, person=alice)  # an office door says nothing about the building
    AuditEvent.objects.create(
        kind="decision",
        door="D-001",
        result="deny",
        reason="suspended",
        person=sam,
        ts=now - timedelta(seconds=5),
        req_id="d",
    )
    response = as_sam.get("/api/v1/occupancy")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 2
    assert [(p["name"], p["tenant"], p["visitor_of"], p["door"]) for p in body["people"]] == [
        ("Bob Test", "Acme", "", "D-001"),
        ("Victor (Hugo SA)", "", "Alice Test", "D-001"),
    ]


def test_the_roll_call_prints_for_staff_only(client, doors, bob, sam):
    AuditEvent.objects.create(
        kind="decision", door="D-001", result="grant", reason="x", person=bob, req_id="r"
    )
    assert client.get("/occupancy/print/").status_code == 302  # to the sign-in page
    client.force_login(bob)
    assert client.get("/occupancy/print/").status_code == 403
    client.force_login(sam)
    response = client.get("/occupancy/print/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Bob Test" in page and "1 person inside" in page
    assert response["Cache-Control"] == "no-store"


# ------------------------------------------------------------------ strict types, sane dates


def assert_invalid(response, field: str):
    assert_error(response, 422, "invalid")
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


@pytest.mark.parametrize("on", [0, 1, "true", None])
def test_lockdown_takes_a_json_boolean_only(as_sam, on):
    assert_invalid(post(as_sam, "/api/v1/lockdown", {"on": on, "confirm": "LOCKDOWN"}), "on")
    assert not SiteMode.current().lockdown and SiteMode.current().version == 0


@pytest.mark.parametrize(
    "change, field",
    [
        ({"holder_id": True}, "holder_id"),
        ({"override": 0}, "override"),
        ({"valid_from": "1900-01-01T00:00"}, "valid_from"),
        ({"valid_until": 1797591600}, "valid_until"),
    ],
)
def test_loose_or_out_of_window_badge_input_is_a_422(as_sam, bob, change, field):
    body = {"uid": UID, "holder_id": bob.pk, **change}
    assert_invalid(post(as_sam, "/api/v1/credentials", body), field)
    assert not Credential.objects.exists()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"start": "1797591600"}, "start"),
        ({"end": "2200-01-01T10:00+01:00"}, "end"),
        ({"host_id": 1.0}, "host_id"),
    ],
)
def test_loose_or_out_of_window_visit_input_is_a_422(as_alice, change, field):
    assert_invalid(post(as_alice, "/api/v1/visitors", visit_body(**change)), field)
    assert not VisitorPass.objects.exists()


@pytest.mark.parametrize(
    "query, field",
    [
        ("from=0.5", "from"),
        ("to=1797591600", "to"),
        ("from=1850-01-01T00:00", "from"),
        ("person=1.0", "person"),
    ],
)
def test_loose_or_out_of_window_access_log_filters_are_a_422(as_sam, db, query, field):
    assert_invalid(as_sam.get(f"/api/v1/access-events?{query}"), field)
    assert_invalid(as_sam.get(f"/api/v1/access-events.csv?{query}"), field)


@pytest.mark.parametrize("query", ["online=1", "online=yes"])
def test_controller_filters_take_true_or_false(as_sam, db, query):
    assert_invalid(as_sam.get(f"/api/v1/controllers?{query}"), "online")
