"""The door pages of the staff console: controllers and doors live, remote unlock, lockdown,
the access log and who is inside. Facility staff only; commands go through access.commands."""

import csv
import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from access import commands
from access.models import AuditEvent, Controller, SiteMode
from tests.access import broker
from tests.access import conftest as access_fixtures
from tests.portal.conftest import signed_in

controllers, doors = access_fixtures.controllers, access_fixtures.doors  # fixtures
broker_root, listener = broker.broker_root, broker.listener  # fixtures

PAGES = [
    "/staff/doors/",
    "/staff/doors/state.json",
    "/staff/lockdown/",
    "/staff/access-log/",
    "/staff/occupancy/",
]


@pytest.fixture
def online(controllers):
    Controller.objects.filter(pk="ctrl-a").update(
        online=True, last_seen=timezone.now(), firmware="door-1.4.2", acl_version=42
    )


@pytest.mark.parametrize("url", PAGES)
def test_the_door_pages_are_for_facility_staff_only(alice, bob, tina, sam, doors, url):
    for person in (alice, bob, tina):
        assert signed_in(person).get(url).status_code == 403
    assert signed_in(sam).get(url).status_code == 200


def test_the_door_actions_are_403_for_everyone_else(tina, doors):
    client = signed_in(tina)
    assert client.post("/staff/doors/D-101/unlock/").status_code == 403
    response = client.post("/staff/lockdown/", {"on": "1", "confirm": "LOCKDOWN"})
    assert response.status_code == 403
    assert not SiteMode.current().lockdown
    assert not AuditEvent.objects.exists()


def test_the_doors_page_says_online_offline_and_alarms_in_words(sam, doors, online):
    AuditEvent.objects.create(
        kind="door_event", controller="ctrl-a", door="D-010", result="forced", seq=1
    )
    response = signed_in(sam).get("/staff/doors/")
    body = response.content.decode()
    assert '<td id="c-ctrl-a-status" data-label="ctrl-a" data-state="online">Online</td>' in body
    assert '<td id="c-ctrl-b-status" data-label="ctrl-b" data-state="offline">Offline</td>' in body
    assert ">door-1.4.2<" in body and ">42<" in body
    assert 'id="d-D-010-alarm" data-label="EMC lab" data-state="alarm">Forced open</td>' in body
    assert "1 controller offline" in body and "1 door in alarm" in body
    assert 'aria-live="polite"' in body


def test_alarms_the_bridge_logs_show_at_their_door(sam, doors, online):
    # As the bridge writes them: forced, held and tamper, and a controller's scan flood.
    AuditEvent.objects.create(
        kind="alarm", controller="ctrl-a", door="D-010", result="forced", seq=1
    )
    AuditEvent.objects.create(
        kind="alarm", controller="ctrl-a", door="D-001", result="scan_flood", reason="rate_limited"
    )
    cells = signed_in(sam).get("/staff/doors/state.json").json()["cells"]
    assert cells["d-D-010-alarm"] == {"text": "Forced open", "state": "alarm"}
    flood = "Scan flood: its controller sends more scans than allowed"
    assert cells["d-D-001-alarm"] == {"text": flood, "state": "alarm"}
    assert cells["d-D-101-alarm"] == {"text": "none", "state": ""}


def test_a_later_door_event_clears_the_alarm(sam, doors, online):
    for seq, event in enumerate(["held", "held_cleared"]):
        AuditEvent.objects.create(
            kind="door_event", controller="ctrl-a", door="D-001", result=event, seq=seq
        )
    cells = signed_in(sam).get("/staff/doors/state.json").json()["cells"]
    assert cells["d-D-001-alarm"] == {"text": "none", "state": ""}


def test_the_poll_answers_the_same_cells_as_the_page(sam, doors, online):
    client = signed_in(sam)
    data = client.get("/staff/doors/state.json").json()
    assert data["cells"]["c-ctrl-a-status"] == {"text": "Online", "state": "online"}
    assert data["cells"]["c-ctrl-b-status"] == {"text": "Offline", "state": "offline"}
    assert data["cells"]["d-D-101-mode"] == {"text": "normal", "state": "normal"}
    assert data["lockdown"] is False
    # 91 s without a heartbeat: offline, on the next poll
    Controller.objects.filter(pk="ctrl-a").update(last_seen=timezone.now() - timedelta(seconds=91))
    data = client.get("/staff/doors/state.json").json()
    assert data["cells"]["c-ctrl-a-status"] == {"text": "Offline", "state": "offline"}


def test_an_unlock_of_an_offline_door_is_refused_with_the_reason(sam, doors, settings):
    settings.MQTT_URL = ""
    with mock.patch.object(commands, "unlock", wraps=commands.unlock) as spy:
        response = signed_in(sam).post("/staff/doors/D-102/unlock/", follow=True)
    assert spy.call_count == 1
    body = response.content.decode()
    assert "Globex not unlocked: Controller ctrl-b is offline" in body
    assert AuditEvent.objects.get(kind="command").result == "controller_offline"


def test_an_unlock_during_lockdown_is_refused(sam, doors, online):
    SiteMode.set_lockdown(True, actor=sam)
    response = signed_in(sam).post("/staff/doors/D-101/unlock/", follow=True)
    assert "in lockdown: no remote unlock" in response.content.decode()


def test_an_unlock_without_a_broker_says_so(sam, doors, online, settings):
    settings.MQTT_URL = "mqtt://127.0.0.1:1"  # nobody listens there
    commands.publisher.close()
    response = signed_in(sam).post("/staff/doors/D-101/unlock/", follow=True)
    assert "The MQTT broker is unavailable" in response.content.decode()
    assert AuditEvent.objects.get(kind="command").result == "broker_unavailable"


@pytest.mark.mqtt
def test_an_unlock_is_published(sam, doors, online, listener):
    response = signed_in(sam).post("/staff/doors/D-101/unlock/", {"why": "courier"}, follow=True)
    assert "Unlock sent to Acme" in response.content.decode()
    message = listener.wait_for(f"{listener.root}/ctrl/ctrl-a/door/D-101/cmd")
    assert json.loads(message.payload)["cmd"] == "unlock"
    event = AuditEvent.objects.get(kind="command")
    assert (event.result, event.actor, event.detail["why"]) == ("sent", sam, "courier")


def test_a_lockdown_needs_the_word_typed(sam, settings):
    settings.MQTT_URL = ""
    with mock.patch.object(commands, "set_lockdown") as spy:
        response = signed_in(sam).post("/staff/lockdown/", {"on": "1", "confirm": "lockdown"})
    assert response.status_code == 422 and spy.call_count == 0
    assert response.context["form"].errors["confirm"] == [
        "Type the word LOCKDOWN, in capitals, to confirm."
    ]
    assert 'value="lockdown"' in response.content.decode()
    assert not SiteMode.current().lockdown


@pytest.mark.mqtt
def test_staff_lock_the_site_down_and_lift_it(sam, listener):
    client = signed_in(sam)
    with mock.patch.object(commands, "set_lockdown", wraps=commands.set_lockdown) as spy:
        response = client.post(
            "/staff/lockdown/", {"on": "1", "confirm": "LOCKDOWN", "why": "drill"}, follow=True
        )
    assert spy.call_count == 1
    assert "Site lockdown is ON" in response.content.decode()
    message = listener.wait_for(f"{listener.root}/site/mode")
    assert json.loads(message.payload)["mode"] == "lockdown"
    mode = SiteMode.current()
    assert (mode.lockdown, mode.changed_by) == (True, sam)
    response = client.post("/staff/lockdown/", {"on": "0", "confirm": "LOCKDOWN"}, follow=True)
    assert "Site lockdown lifted" in response.content.decode()
    assert not SiteMode.current().lockdown
    assert list(AuditEvent.objects.filter(kind="lockdown").values_list("result", flat=True)) == [
        "off",
        "on",
    ]


def test_a_lockdown_without_a_broker_is_saved_and_offers_to_send_again(sam, settings):
    settings.MQTT_URL = ""
    response = signed_in(sam).post("/staff/lockdown/", {"on": "1", "confirm": "LOCKDOWN"})
    assert response.status_code == 503
    body = response.content.decode()
    assert "The MQTT broker is unavailable" in body
    assert "Send it to the controllers again" in body
    assert SiteMode.current().lockdown


def test_the_lockdown_form_needs_the_csrf_token(sam):
    client = Client(enforce_csrf_checks=True)
    client.force_login(sam)
    assert client.post("/staff/lockdown/", {"on": "1", "confirm": "LOCKDOWN"}).status_code == 403


@pytest.fixture
def log(doors, bob, charlie):
    now = timezone.now()
    rows = [
        ("D-001", bob, "grant", "", 3),
        ("D-101", bob, "grant", "", 2),
        ("D-102", bob, "deny", "not_leased", 1),
        ("D-102", charlie, "grant", "", 1),
    ]
    for door, person, result, reason, days_ago in rows:
        AuditEvent.objects.create(
            kind="decision",
            controller="ctrl-a",
            door=door,
            person=person,
            result=result,
            reason=reason,
            ts=now - timedelta(days=days_ago),
        )
    return now


def test_the_access_log_filters_by_person_result_and_dates(sam, log):
    client = signed_in(sam)
    page = client.get("/staff/access-log/", {"person": "bob@acme.test", "result": "deny"}).context[
        "page"
    ]
    assert [(e.door, e.reason) for e in page.object_list] == [("D-102", "not_leased")]
    day = timezone.localdate(log - timedelta(days=2)).isoformat()
    page = client.get("/staff/access-log/", {"start": day, "end": day}).context["page"]
    assert [e.door for e in page.object_list] == ["D-101"]
    page = client.get("/staff/access-log/", {"door": "D-102"}).context["page"]
    assert page.paginator.count == 2


def test_the_access_log_is_paginated(sam, doors, bob):
    AuditEvent.objects.bulk_create(
        AuditEvent(kind="decision", door="D-001", person=bob, result="grant") for _ in range(120)
    )
    client = signed_in(sam)
    first = client.get("/staff/access-log/", {"door": "D-001"})
    assert len(first.context["page"].object_list) == 50
    assert "Page 1 of 3" in first.content.decode()
    assert "door=D-001&amp;page=2" in first.content.decode()
    last = client.get("/staff/access-log/", {"door": "D-001", "page": 3}).context["page"]
    assert len(last.object_list) == 20


def test_the_access_log_reports_bad_filters_next_to_the_fields(sam, log):
    response = signed_in(sam).get(
        "/staff/access-log/",
        {"person": "ghost@nowhere.test", "start": "2026-03-10", "end": "2026-03-01"},
    )
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert errors["person"] == ["Nobody has this e-mail address."]
    assert errors["end"] == ["The last day must not be before the first."]


def test_the_csv_link_is_the_apis_export_with_the_same_filters(sam, log):
    client = signed_in(sam)
    response = client.get("/staff/access-log/", {"person": "bob@acme.test", "result": "deny"})
    url = response.context["csv_url"]
    assert url.startswith("/api/v1/access-events.csv?")
    exported = client.get(url)
    assert exported.status_code == 200
    text = b"".join(exported.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert len(rows) == 2 and rows[1][2] == "D-102" and rows[1][9] == "not_leased"


def test_who_is_inside_lists_people_and_links_the_roll_call(sam, doors, bob):
    AuditEvent.objects.create(
        kind="decision", controller="ctrl-a", door="D-001", person=bob, result="grant"
    )
    response = signed_in(sam).get("/staff/occupancy/")
    body = response.content.decode()
    assert "1 person inside at" in body and "Bob Test" in body and "Acme" in body
    assert 'href="/occupancy/print/"' in body
    assert response["Cache-Control"] == "no-store"
