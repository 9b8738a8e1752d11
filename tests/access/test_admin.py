"""The access back-office: every model listed, badges registered by UID, the log read-only."""

import json

import pytest
from django.utils import timezone

from access.models import AuditEvent, Controller, Credential, Door, SiteMode
from access.protocol import credential_hash
from tests.access import broker

broker_root, listener = broker.broker_root, broker.listener  # fixtures


@pytest.fixture(autouse=True)
def _no_broker(settings):
    """Nothing here reaches a broker, even with MQTT_URL in the environment."""
    settings.MQTT_URL = ""


@pytest.fixture
def staff_client(client, sam):
    client.force_login(sam)
    return client


@pytest.mark.parametrize(
    "model", ["credential", "visitorpass", "controller", "door", "sitemode", "auditevent"]
)
def test_staff_see_every_access_model(staff_client, doors, model):
    assert staff_client.get(f"/admin/access/{model}/").status_code == 200
    assert staff_client.get("/admin/access/").status_code == 200


def test_a_badge_is_registered_from_its_uid_and_the_issue_is_logged(staff_client, bob, settings):
    response = staff_client.post(
        "/admin/access/credential/add/",
        {"uid": "04:a1:b2:c3", "kind": "badge", "holder": bob.pk, "status": "active"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = Credential.objects.get()
    assert credential.uid_hash == credential_hash("04A1B2C3", settings.CREDENTIAL_KEY)
    event = AuditEvent.objects.get(kind="rights_change")
    assert (event.result, event.person, event.credential) == ("issued", bob, credential)
    assert event.actor.email == "sam@campus.test"


def test_a_badge_needs_a_hex_uid(staff_client, bob):
    response = staff_client.post(
        "/admin/access/credential/add/",
        {"uid": "zz", "kind": "badge", "holder": bob.pk, "status": "active"},  # fmt: skip
    )
    assert response.status_code == 200
    assert "whole bytes in hexadecimal" in response.content.decode()
    assert not Credential.objects.exists()


def test_a_badge_registered_twice_is_refused_with_a_message(staff_client, bob, alice):
    data = {"uid": "04a1b2c3", "kind": "badge", "status": "active"}
    staff_client.post("/admin/access/credential/add/", {**data, "holder": bob.pk})
    response = staff_client.post("/admin/access/credential/add/", {**data, "holder": alice.pk})
    assert "already registered" in response.content.decode()
    assert Credential.objects.count() == 1


def test_suspending_badges_is_logged(staff_client, bob):
    credential = Credential(holder=bob)
    credential.set_uid("0102")
    credential.save()
    staff_client.post(
        "/admin/access/credential/",
        {"action": "suspend", "_selected_action": [credential.pk]},
    )
    credential.refresh_from_db()
    assert credential.status == "suspended"
    assert AuditEvent.objects.get(kind="rights_change").result == "suspended"


def test_a_new_controller_gets_a_password_shown_once(staff_client):
    response = staff_client.post(
        "/admin/access/controller/add/",
        {
            "id": "ctrl-z",
            "name": "Roof",
            "is_active": "on",
            "doors-TOTAL_FORMS": 0,
            "doors-INITIAL_FORMS": 0,
        },  # fmt: skip
        follow=True,
    )
    assert response.status_code == 200
    assert "MQTT login of ctrl-z: password" in response.content.decode()
    assert Controller.objects.get(id="ctrl-z").mqtt_password_hash.startswith("$7$101$")


def test_lockdown_from_the_admin_is_versioned_and_logged(staff_client, sam):
    SiteMode.current()
    response = staff_client.post("/admin/access/sitemode/1/change/", {"lockdown": "on"})
    assert response.status_code == 302
    mode = SiteMode.current()
    assert (mode.lockdown, mode.version, mode.changed_by) == (True, 1, sam)
    assert AuditEvent.objects.get(kind="lockdown").actor == sam
    page = staff_client.get(response["Location"]).content.decode()
    assert "controllers could not be told" in page  # no broker in this test


def test_door_modes_from_the_admin_are_saved_even_without_a_broker(staff_client, doors):
    response = staff_client.post(
        "/admin/access/door/",
        {"action": "mode_lockdown", "_selected_action": ["D-101", "D-102"]},
        follow=True,
    )
    assert "controllers could not be told" in response.content.decode()
    assert set(Door.objects.filter(mode="lockdown").values_list("pk", flat=True)) == {
        "D-101",
        "D-102",
    }
    assert AuditEvent.objects.filter(kind="command", reason="door_mode").count() == 2


def test_the_site_mode_cannot_be_added_twice_or_deleted(staff_client):
    SiteMode.current()
    assert staff_client.get("/admin/access/sitemode/add/").status_code == 403
    assert staff_client.get("/admin/access/sitemode/1/delete/").status_code == 403


def test_the_audit_log_is_read_only_in_the_admin(staff_client):
    event = AuditEvent.objects.create(kind="lockdown", result="on", ts=timezone.now())
    assert staff_client.get("/admin/access/auditevent/add/").status_code == 403
    assert staff_client.get(f"/admin/access/auditevent/{event.pk}/delete/").status_code == 403
    page = staff_client.get(f"/admin/access/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    response = staff_client.post(f"/admin/access/auditevent/{event.pk}/change/", {"result": "x"})
    assert response.status_code == 403
    assert AuditEvent.objects.get().result == "on"


def test_tenant_members_do_not_reach_the_access_admin(client, bob):
    client.force_login(bob)
    assert client.get("/admin/access/credential/").status_code == 302


@pytest.mark.mqtt
def test_lockdown_from_the_admin_reaches_the_controllers(staff_client, listener):
    SiteMode.current()
    staff_client.post("/admin/access/sitemode/1/change/", {"lockdown": "on"})
    message = listener.wait_for(f"{listener.root}/site/mode")
    assert json.loads(message.payload) == {"v": 1, "ver": 1, "mode": "lockdown"}
