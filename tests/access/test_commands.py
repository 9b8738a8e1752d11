"""Remote unlock, site lockdown and door modes, checked on the real broker: the topic, the
payload, the retain flag, and the audit line of every attempt."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from access import commands
from access.commands import BrokerUnavailable
from access.models import AuditEvent, Controller, SiteMode
from common.errors import Conflict
from tests.access import broker
from tests.access.broker import retained

broker_root, listener = broker.broker_root, broker.listener  # fixtures


@pytest.fixture
def online(controllers):
    Controller.objects.filter(pk__in=["ctrl-a", "ctrl-b"]).update(
        online=True, last_seen=timezone.now()
    )
    for c in controllers.values():
        c.refresh_from_db()
    return controllers


def fresh(door):
    return type(door).objects.select_related("controller").get(pk=door.pk)


@pytest.mark.mqtt
def test_an_unlock_is_published_once_never_retained_and_logged(doors, online, sam, listener):
    now = timezone.now()
    sent = commands.unlock(fresh(doors["acme"]), by=sam, why="courier", now=now)
    message = listener.wait_for(f"{listener.root}/ctrl/ctrl-a/door/D-101/cmd")
    body = json.loads(message.payload)
    assert body == {
        "v": 1,
        "cmd": "unlock",
        "pulse_ms": 4000,
        "exp": int(now.timestamp() * 1000) + 5000,
        "req_id": sent["req_id"],
    }
    assert not message.retain
    assert not [m for m in retained(listener.root) if m.topic.endswith("/cmd")]
    event = AuditEvent.objects.get(kind="command")
    assert (event.door, event.controller, event.result, event.reason) == (
        "D-101",
        "ctrl-a",
        "sent",
        "unlock",
    )
    assert (event.actor, event.req_id, event.detail["why"]) == (sam, sent["req_id"], "courier")


@pytest.mark.mqtt
def test_an_unlock_may_ask_for_a_longer_pulse(doors, online, sam, listener):
    commands.unlock(fresh(doors["acme"]), by=sam, pulse_ms=10_000)
    message = listener.wait_for(f"{listener.root}/ctrl/ctrl-a/door/D-101/cmd")
    assert json.loads(message.payload)["pulse_ms"] == 10_000


def test_an_offline_controller_is_not_sent_an_unlock_and_the_refusal_is_logged(
    doors, controllers, sam, settings
):
    settings.MQTT_URL = ""  # nothing may be published: the refusal comes first
    with pytest.raises(Conflict) as refused:
        commands.unlock(fresh(doors["acme"]), by=sam)
    assert (refused.value.code, refused.value.status) == ("controller_offline", 409)
    event = AuditEvent.objects.get(kind="command")
    assert (event.result, event.actor, event.door) == ("controller_offline", sam, "D-101")


def test_a_controller_not_heard_from_for_90_seconds_is_offline(doors, online, sam):
    now = timezone.now() + timedelta(seconds=91)
    with pytest.raises(Conflict, match="offline"):
        commands.unlock(fresh(doors["acme"]), by=sam, now=now)
    assert commands.is_online(online["a"], timezone.now())
    assert not commands.is_online(online["a"], now)


def test_no_remote_unlock_during_a_site_lockdown(doors, online, sam):
    SiteMode.set_lockdown(True, actor=sam)
    with pytest.raises(Conflict) as refused:
        commands.unlock(fresh(doors["acme"]), by=sam)
    assert refused.value.code == "lockdown"
    assert AuditEvent.objects.get(kind="command").result == "lockdown"


def test_no_remote_unlock_of_a_door_in_lockdown(doors, online, sam):
    doors["lab"].set_mode("lockdown", actor=sam)
    with pytest.raises(Conflict, match="lockdown"):
        commands.unlock(fresh(doors["lab"]), by=sam)


def test_without_a_broker_the_unlock_fails_as_unavailable_and_is_logged(
    doors, online, sam, settings
):
    settings.MQTT_URL = ""
    with pytest.raises(BrokerUnavailable) as failed:
        commands.unlock(fresh(doors["acme"]), by=sam)
    assert (failed.value.status, failed.value.code) == (503, "broker_unavailable")
    assert AuditEvent.objects.get(kind="command").result == "broker_unavailable"


def test_an_unreachable_broker_fails_within_the_timeout(doors, online, sam, settings):
    settings.MQTT_URL = "mqtt://127.0.0.1:9"  # discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        commands.unlock(fresh(doors["acme"]), by=sam)
    assert time.monotonic() - started < commands.PUBLISH_TIMEOUT + 1
    commands.publisher.close()


@pytest.mark.mqtt
def test_lockdown_publishes_the_retained_versioned_site_mode(sam, listener):
    commands.set_lockdown(True, by=sam, why="intruder")
    kept = {m.topic: m for m in retained(listener.root)}
    site = kept[f"{listener.root}/site/mode"]
    assert json.loads(site.payload) == {"v": 1, "ver": 1, "mode": "lockdown"}
    assert AuditEvent.objects.get(kind="lockdown").detail == {"ver": 1, "why": "intruder"}

    commands.set_lockdown(False, by=sam)
    kept = {m.topic: m for m in retained(listener.root)}
    assert json.loads(kept[f"{listener.root}/site/mode"].payload) == {
        "v": 1,
        "ver": 2,
        "mode": "normal",
    }


@pytest.mark.mqtt
def test_lockdown_repeated_resends_the_same_version(sam, listener):
    commands.set_lockdown(True, by=sam)
    commands.set_lockdown(True, by=sam)
    sent = [m for m in listener.messages if m.topic.endswith("/site/mode")]
    deadline = time.monotonic() + 3
    while len(sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
        sent = [m for m in listener.messages if m.topic.endswith("/site/mode")]
    assert [json.loads(m.payload)["ver"] for m in sent] == [1, 1]
    assert AuditEvent.objects.filter(kind="lockdown").count() == 1


def test_lockdown_without_a_broker_still_locks_the_site_down(sam, settings):
    settings.MQTT_URL = ""
    with pytest.raises(BrokerUnavailable):
        commands.set_lockdown(True, by=sam)
    assert SiteMode.current().lockdown  # online decisions follow the database at once


@pytest.mark.mqtt
def test_a_door_mode_is_published_as_the_retained_desired_state(doors, sam, listener):
    commands.set_door_mode(fresh(doors["lab"]), "passage", by=sam, why="open day")
    kept = {m.topic: m for m in retained(listener.root)}
    desired = kept[f"{listener.root}/ctrl/ctrl-a/door/D-010/desired"]
    assert json.loads(desired.payload) == {"v": 1, "ver": 1, "mode": "passage"}
    event = AuditEvent.objects.get(kind="command", reason="door_mode")
    assert (event.result, event.actor, event.detail["why"]) == ("passage", sam, "open day")
