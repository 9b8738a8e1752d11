"""Allow-lists for offline operation: the builder (from the decision function, no broker) and,
through the real broker, revocations, offline decisions and corrupted chunks."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from access import allowlists, protocol
from access.facts import load_snapshot
from access.models import AclState, AuditEvent, Controller, Credential, Door
from bookings.models import Booking
from tests.access.test_bridge import (  # noqa: F401 (fixtures)
    UIDS,
    bridges,
    device,
    metric,
    root,
    scene,
    wait_until,
)

KEY = "test-credential-key"


def h(uid):
    return Credential.hash_uid(uid)


def entries_of(acl, uid):
    return [e for e in acl.entries if e["h"] == h(uid)]


@pytest.fixture
def lists(scene):  # noqa: F811
    now = timezone.now()
    return allowlists.build_all(load_snapshot(now), now), scene, now


@pytest.mark.django_db
def test_staff_and_tenants_get_doors_at_any_time(lists):
    built, _scene, _now = lists
    acl = built["ctrl-a"]
    (bob,) = entries_of(acl, UIDS["bob"])
    assert bob["doors"] == ["D-001", "D-101"] and bob["sched"] is None and bob["flags"] == []
    (sam,) = entries_of(acl, UIDS["sam"])
    assert len(sam["doors"]) == 6 and sam["vf"] == sam["vu"] == 0


@pytest.mark.django_db
def test_master_cards_are_flagged_override_and_open_every_door(lists):
    built, _scene, _now = lists
    (master,) = entries_of(built["ctrl-a"], UIDS["master"])
    assert master["flags"] == ["override"] and len(master["doors"]) == 6


@pytest.mark.django_db
def test_a_booking_opens_its_room_from_15_minutes_before_to_its_end(lists):
    built, _scene, _now = lists
    shapes = {e["vu"] != 0: e for e in entries_of(built["ctrl-a"], UIDS["alice"])}
    booked = shapes[True]
    assert "D-150" in booked["doors"] and "D-002" in booked["doors"]
    assert booked["vu"] - booked["vf"] == (60 + 15) * 60 * 1000
    assert "D-150" not in shapes[False]["doors"]


@pytest.mark.django_db
def test_visitors_get_their_pass_window_and_denied_badges_no_entry(lists):
    built, _scene, _now = lists
    acl = built["ctrl-a"]
    (visitor,) = entries_of(acl, UIDS["visitor"])
    assert visitor["doors"] == ["D-001", "D-002", "D-150"]  # perimeter doors, as decide says
    assert visitor["vu"] - visitor["vf"] == 2 * 3600 * 1000
    for uid in ("suspended", "expired", "unknown"):
        assert entries_of(acl, UIDS[uid]) == []
    # charlie booked the lab without training: no lab door
    assert all("D-010" not in e["doors"] for e in entries_of(acl, UIDS["charlie"]))


@pytest.mark.django_db
def test_common_doors_carry_their_schedule_by_content(scene):  # noqa: F811
    hours = [[d, "07:00", "20:00"] for d in range(1, 6)]
    for n in (3, 4):
        Door.objects.create(
            id=f"D-00{n}",
            name="Side",
            controller=scene["ctrl"],
            kind="perimeter",
            direction="in",
            schedule=hours,
        )
    now = timezone.now()
    acl = allowlists.build_all(load_snapshot(now), now)["ctrl-a"]
    name = allowlists.schedule_name(hours)
    assert acl.schedules == {name: hours}
    (scheduled,) = [e for e in entries_of(acl, UIDS["bob"]) if e["sched"]]
    assert scheduled["sched"] == name and scheduled["doors"] == ["D-003", "D-004"]
    # staff pass at any time: no schedule
    assert all(e["sched"] is None for e in entries_of(acl, UIDS["sam"]))


@pytest.mark.django_db
def test_lockdown_leaves_only_override_entries(scene):  # noqa: F811
    from access.models import SiteMode

    SiteMode.objects.update_or_create(pk=SiteMode.SINGLETON, defaults={"lockdown": True})
    now = timezone.now()
    acl = allowlists.build_all(load_snapshot(now), now)["ctrl-a"]
    assert acl.entries and all(e["flags"] == ["override"] for e in acl.entries)


@pytest.mark.django_db
def test_snapshot_chunks_fit_and_hash_as_the_protocol_says(scene):  # noqa: F811
    for n in range(60):
        badge = Credential(holder=scene["badges"]["bob"].holder)
        badge.set_uid(f"{n:08X}AA")
        badge.save()
    now = timezone.now()
    acl = allowlists.build_all(load_snapshot(now), now)["ctrl-a"]
    chunks = allowlists.snapshot_messages(7, acl, now + timedelta(hours=48))
    assert len(chunks) > 3 and all(len(c) <= protocol.MAX_CHUNK_BYTES for c in chunks)
    snap = protocol.assemble_snapshot(chunks)
    assert snap.hash == acl.hash == protocol.allowlist_hash(list(acl.entries), acl.schedules)
    assert snap.tz == "Europe/Paris" and snap.tz_posix.startswith("CET-1CEST")


@pytest.mark.django_db
def test_a_delta_replaces_the_entries_of_changed_hashes(lists):
    built, _scene, now = lists
    old = built["ctrl-a"]
    new = allowlists.AllowList(
        tuple(e for e in old.entries if e["h"] != h(UIDS["bob"])), old.schedules
    )
    delta = protocol.parse_json(allowlists.delta_message(9, 8, old, new, now))
    assert delta["del"] == [h(UIDS["bob"])] and delta["add"] == []
    assert delta["hash"] == new.hash and delta["base"] == 8


def same_lists(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (a[c].entries, a[c].schedules, a[c].hash) == (b[c].entries, b[c].schedules, b[c].hash)
        for c in a
    )


@pytest.mark.django_db
def test_a_rebuild_asks_decide_again_only_for_the_badges_a_change_touched(scene):  # noqa: F811
    now = timezone.now()
    builder = allowlists.Builder()
    first = allowlists.build_all(load_snapshot(now), now, memo=builder)
    assert builder.asked > 2
    asked = builder.asked
    assert same_lists(allowlists.build_all(load_snapshot(now), now, memo=builder), first)
    assert builder.asked == asked  # nothing changed: nothing asked
    Credential.objects.filter(uid_hash=h(UIDS["alice"])).update(status="suspended")
    again = allowlists.build_all(load_snapshot(now), now, memo=builder)
    assert builder.asked == asked + 1
    assert not entries_of(again["ctrl-a"], UIDS["alice"])
    assert same_lists(again, allowlists.build_all(load_snapshot(now), now))  # as built anew
    Credential.objects.filter(uid_hash=h(UIDS["sam"])).delete()
    Door.objects.filter(pk="D-102").update(is_active=False)
    again = allowlists.build_all(load_snapshot(now), now, memo=builder)
    assert not entries_of(again["ctrl-a"], UIDS["sam"])
    assert all("D-102" not in e["doors"] for e in again["ctrl-a"].entries)
    assert same_lists(again, allowlists.build_all(load_snapshot(now), now))


@pytest.mark.django_db
def test_badges_with_the_same_facts_share_one_question(scene):  # noqa: F811
    spare = Credential(holder=scene["badges"]["bob"].holder)
    spare.set_uid("0BB0BB0B")
    spare.save()
    now = timezone.now()
    builder = allowlists.Builder()
    acl = allowlists.build_all(load_snapshot(now), now, memo=builder)["ctrl-a"]
    assert builder.asked == Credential.objects.count() - 1
    without_h = [{**e, "h": ""} for e in entries_of(acl, "0BB0BB0B")]
    assert without_h and without_h == [{**e, "h": ""} for e in entries_of(acl, UIDS["bob"])]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_change_feed_notifies_a_listener_when_a_write_commits(scene):  # noqa: F811
    import threading

    from django.db import connection

    from access import changefeed

    stop, woke, listening = threading.Event(), [], threading.Event()

    def listen():
        feed = changefeed.Listener(stop)
        feed.wait(0)  # LISTEN now, before the write
        listening.set()
        woke.append(feed.wait(30))
        connection.close()

    thread = threading.Thread(target=listen)
    thread.start()
    assert listening.wait(10)
    Credential.objects.filter(uid_hash=h(UIDS["bob"])).update(status="suspended")
    thread.join(40)
    assert woke == [True]  # notified, not the timeout


@pytest.mark.django_db
def test_the_horizon_holds_the_active_bookings_not_ended_that_start_before_its_end(scene):  # noqa: F811
    """`in_horizon` (the lists' bookings and the fingerprint polled every tick) asks for the
    blocked time, which the range index answers, then keeps the exact set: a margin alone
    never brings a booking in."""
    Booking.objects.update(status="cancelled")
    first, second = (b.resource for b in Booking.objects.order_by("pk")[:2])
    model = Booking.objects.order_by("pk").first()
    now = timezone.now()
    hour, margin = timedelta(hours=1), timedelta(minutes=30)

    def booking(resource, start, end, status="confirmed", margin=timedelta(0)):
        return Booking.objects.create(
            resource=resource,
            person=model.person,
            tenant=model.tenant,
            start=now + start,
            end=now + end,
            blocked_start=now + start - margin,
            blocked_end=now + end + margin,
            status=status,
        )

    running = booking(first, -hour, hour / 2)
    ahead = booking(first, 3 * hour, 4 * hour, "checked_in")
    booking(first, 5 * hour, 6 * hour, "pending")
    booking(first, 7 * hour, 8 * hour, "cancelled")
    booking(second, -3 * hour, -hour / 10, margin=margin)  # ended; its cleanup still blocks
    booking(second, 10 * hour + hour / 10, 11 * hour, margin=margin)  # its setup starts before
    assert set(allowlists.in_horizon(now, now + 10 * hour)) == {running, ahead}

    before = allowlists.bookings_fingerprint(now)
    late = booking(second, 20 * hour, 21 * hour)
    booked = allowlists.bookings_fingerprint(now)
    Booking.objects.filter(pk=late.pk).update(status="cancelled")
    assert len({before, booked, allowlists.bookings_fingerprint(now)}) == 2
    assert booked != before


# --- through the real broker -------------------------------------------------------------------


def synced(sim, timeout=10.0):
    """The device holds the list the backend last sent."""

    def same():
        state = AclState.objects.filter(controller_id=sim.id).first()
        return state is not None and sim.acl is not None and sim.acl_ver == state.version

    assert wait_until(same, timeout), f"no allow-list reached {sim.id}: {sim.acl_log}"


@pytest.mark.mqtt
@pytest.mark.django_db(transaction=True)
def test_a_suspended_badge_leaves_the_cache_of_an_online_controller_within_2_seconds(
    scene,  # noqa: F811
    bridges,  # noqa: F811
    device,  # noqa: F811
):
    bridges()
    sim = device(client_id=f"sim-{uuid.uuid4().hex[:10]}")
    synced(sim)
    bob = h(UIDS["bob"])
    assert sim.holds(bob) and sim.decide_offline("D-101", bob)["result"] == "grant"
    pushes = len(sim.acl_log)

    changed = time.monotonic()
    Credential.objects.filter(uid_hash=bob).update(status="suspended")
    assert wait_until(lambda: not sim.holds(bob), 2.0, step=0.005)
    elapsed = time.monotonic() - changed

    assert elapsed <= 2.0
    assert sim.acl_log[pushes:][0][0::2] == ("delta", "applied")
    assert sim.decide_offline("D-101", bob)["result"] == "deny"
    assert sim.holds(h(UIDS["alice"]))
    assert wait_until(lambda: AclState.objects.get(pk="ctrl-a").acked_version == sim.acl_ver)


@pytest.mark.mqtt
@pytest.mark.django_db(transaction=True)
def test_allow_lists_leave_on_a_connection_of_their_own(
    scene,  # noqa: F811
    bridges,  # noqa: F811
    device,  # noqa: F811
):
    """A burst of snapshots must not queue ahead of decisions on one connection."""
    bridge = bridges().bridge
    sim = device(client_id=f"sim-{uuid.uuid4().hex[:10]}")
    synced(sim)
    sent = {"decisions": [], "lists": []}
    for name, client in (("decisions", bridge.client), ("lists", bridge.push_client)):
        publish = client.publish

        def recording(topic, *args, _publish=publish, _into=sent[name], **kwargs):
            _into.append(topic)
            return _publish(topic, *args, **kwargs)

        client.publish = recording
    bob = h(UIDS["bob"])
    Credential.objects.filter(uid_hash=bob).update(status="suspended")
    assert wait_until(lambda: not sim.holds(bob), 5.0)
    assert sim.scan("D-101", UIDS["alice"]) is not None  # answered

    acl = protocol.topic("acl_push", bridge.root, ctrl="ctrl-a")
    assert acl in sent["lists"]
    assert acl not in sent["decisions"]
    assert any(topic.endswith("/decision") for topic in sent["decisions"])
    assert bridge.push_client._client_id != bridge.client._client_id


@pytest.mark.mqtt
@pytest.mark.django_db(transaction=True)
def test_without_the_bridge_the_cache_decides_and_the_events_are_replayed_once(
    scene,  # noqa: F811
    bridges,  # noqa: F811
    device,  # noqa: F811
):
    # The same worker comes back (its broker session keeps what the device sends meanwhile).
    worker = {"client_id": f"acl-{uuid.uuid4().hex[:8]}", "group": f"g{uuid.uuid4().hex[:8]}"}
    running = bridges(**worker)
    sim = device(client_id=f"sim-{uuid.uuid4().hex[:10]}")
    synced(sim)
    bob, alice = h(UIDS["bob"]), h(UIDS["alice"])
    Credential.objects.filter(uid_hash=bob).update(status="lost")
    assert wait_until(lambda: not sim.holds(bob), 3.0)

    running.close()
    assert wait_until(lambda: sim.backend_online is False, 3.0)
    granted = sim.scan_hash("D-101", alice)
    denied = sim.scan_hash("D-101", bob)
    assert granted["result"] == "grant" and granted["offline"]
    assert denied["result"] == "deny" and denied["offline"]
    seq = granted["seq"]
    assert not AuditEvent.objects.filter(controller="ctrl-a", seq=seq).exists()

    bridges(**worker)
    assert wait_until(lambda: AuditEvent.objects.filter(controller="ctrl-a", seq=seq).exists(), 5.0)
    row = AuditEvent.objects.get(controller="ctrl-a", seq=seq)
    assert (row.result, row.reason, row.uid_hash) == ("unlocked", "replayed", alice)
    # The same log again (a redelivery): stored once.
    sim._send_log([{"v": 1, "event": "unlocked", "ts": 1, "seq": seq, "h": alice, "door": "D-101"}])
    time.sleep(0.5)
    assert AuditEvent.objects.filter(controller="ctrl-a", seq=seq).count() == 1


@pytest.mark.mqtt
@pytest.mark.django_db(transaction=True)
def test_a_tampered_chunk_is_rejected_and_a_full_snapshot_follows(
    scene,  # noqa: F811
    bridges,  # noqa: F811
    device,  # noqa: F811
):
    bridges()
    sim = device(client_id=f"sim-{uuid.uuid4().hex[:10]}")
    synced(sim)
    held = sim.acl
    forged_ver = held["ver"] + 1
    intruder = h(UIDS["unknown"])
    fake = {"h": intruder, "doors": ["D-101"], "sched": None, "vf": 0, "vu": 0, "flags": []}
    honest = protocol.snapshot_chunks(
        forged_ver, held["entries"], held["schedules"], valid_until=2**41, tz="UTC", tz_posix="UTC0"
    )
    forged = protocol.snapshot_chunks(
        forged_ver,
        [*held["entries"], fake],
        held["schedules"],
        valid_until=2**41,
        tz="UTC",
        tz_posix="UTC0",
    )
    true_hash = protocol.parse_json(honest[0])["hash"]
    for chunk in forged:  # an entry slipped in on the way, the hash left as it was
        body = protocol.parse_json(chunk)
        sim.publish_raw(sim._topic("acl_push"), protocol.encode({**body, "hash": true_hash}))

    assert wait_until(lambda: ("snapshot", forged_ver, "rejected") in sim.acl_log, 3.0)
    rejected_at = sim.acl_log.index(("snapshot", forged_ver, "rejected"))
    assert wait_until(
        lambda: any(
            kind == "snapshot" and status == "applied"
            for kind, _ver, status in sim.acl_log[rejected_at:]
        ),
        3.0,
    )
    assert not sim.holds(intruder) and sim.holds(h(UIDS["bob"]))


# --- pushing, without a broker ---------------------------------------------------------------


class Sent(list):
    def __call__(self, topic, payload):
        self.append(protocol.parse_json(payload))


@pytest.mark.django_db
def test_pushes_start_with_a_snapshot_then_follow_with_deltas_once_acked(scene):  # noqa: F811
    sent, now = Sent(), timezone.now()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    assert {m["type"] for m in sent} == {"snapshot"} and sent[0]["ver"] == 1
    allowlists.note_ack("ctrl-a", protocol.AclAck(1, "applied"))
    Credential.objects.filter(uid_hash=h(UIDS["bob"])).update(status="suspended")
    sent.clear()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    (delta,) = sent
    assert (delta["type"], delta["ver"], delta["base"]) == ("delta", 2, 1)
    assert delta["del"] == [h(UIDS["bob"])]
    sent.clear()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    assert sent == []  # nothing changed


@pytest.mark.django_db
def test_a_change_right_after_a_snapshot_goes_as_a_delta_on_it_before_the_ack(scene):  # noqa: F811
    sent, now = Sent(), timezone.now()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    Credential.objects.filter(uid_hash=h(UIDS["bob"])).update(status="suspended")
    sent.clear()
    allowlists.sync(load_snapshot(now), now + timedelta(seconds=1), sent, "r")
    (delta,) = sent  # in flight: the device gets it after the snapshot, or answers need_full
    assert (delta["type"], delta["ver"], delta["base"]) == ("delta", 2, 1)
    Credential.objects.filter(uid_hash=h(UIDS["bob"])).update(status="active")
    sent.clear()
    later = now + allowlists.LAG_RESEND + timedelta(seconds=1)
    allowlists.sync(load_snapshot(later), later, sent, "r")
    assert {m["type"] for m in sent} == {"snapshot"}  # never acked, no longer in flight


@pytest.mark.django_db
def test_a_birth_received_before_the_last_push_asks_for_nothing_more(scene):  # noqa: F811
    sent, now = Sent(), timezone.now()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    allowlists.note_birth("ctrl-a", None, now - timedelta(seconds=1))  # read before the push
    assert not AclState.objects.get(pk="ctrl-a").resend
    allowlists.note_birth("ctrl-a", None, now + timedelta(seconds=1))  # a new birth
    assert AclState.objects.get(pk="ctrl-a").resend


@pytest.mark.django_db
def test_need_full_rejected_and_other_births_ask_for_a_snapshot(scene):  # noqa: F811
    sent, now = Sent(), timezone.now()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    allowlists.note_ack("ctrl-a", protocol.AclAck(1, "applied"))
    for again in (
        lambda: allowlists.note_ack("ctrl-a", protocol.AclAck(1, "need_full")),
        lambda: allowlists.note_ack("ctrl-a", protocol.AclAck(1, "rejected", "hash_mismatch")),
        lambda: allowlists.note_birth("ctrl-a", 0),
    ):
        again()
        sent.clear()
        allowlists.sync(load_snapshot(now), now, sent, "r")
        assert sent and {m["type"] for m in sent} == {"snapshot"}
    version = AclState.objects.get(pk="ctrl-a").version
    allowlists.note_birth("ctrl-a", version)  # holds what we sent: nothing to do
    assert not AclState.objects.get(pk="ctrl-a").resend


@pytest.mark.django_db
def test_a_rejection_during_a_push_round_makes_the_next_push_a_snapshot(scene, monkeypatch):  # noqa: F811
    """The device rejects delta v2 (hash mismatch) while the next round is preparing its own
    delta: the round read the states before the rejection was recorded, and must not save its
    copy over the request for a full list."""
    sent, now = Sent(), timezone.now()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    allowlists.note_ack("ctrl-a", protocol.AclAck(1, "applied"))
    Credential.objects.filter(uid_hash=h(UIDS["bob"])).update(status="suspended")
    sent.clear()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    assert [(m["type"], m["ver"]) for m in sent] == [("delta", 2)]

    prepare, rejected = allowlists.prepare, []

    def rejection_lands_meanwhile(state, *args, **kwargs):
        prepared = prepare(state, *args, **kwargs)
        if not rejected:  # what the writer thread records while this round goes on
            rejected.append(True)
            allowlists.note_ack("ctrl-a", protocol.AclAck(2, "rejected", "hash_mismatch"))
        return prepared

    monkeypatch.setattr(allowlists, "prepare", rejection_lands_meanwhile)
    Credential.objects.filter(uid_hash=h(UIDS["alice"])).update(status="suspended")
    sent.clear()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    assert rejected
    # The round in flight sends the whole list, not a delta on the list the device refused.
    assert sent and {m["type"] for m in sent} == {"snapshot"}
    state = AclState.objects.get(pk="ctrl-a")
    assert (state.version, state.resend) == (sent[0]["ver"], False)
    assert state.hash == sent[0]["hash"]


@pytest.mark.django_db
def test_a_rejection_recorded_after_a_round_saved_is_kept_for_the_next(scene, monkeypatch):  # noqa: F811
    """The rejection lands once the round has recorded its push, before it publishes: the
    round's delta goes out (the device answers need_full to it), the flag stays, and the next
    round sends the whole list."""
    sent, now = Sent(), timezone.now()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    allowlists.note_ack("ctrl-a", protocol.AclAck(1, "applied"))
    Credential.objects.filter(uid_hash=h(UIDS["bob"])).update(status="suspended")
    sent.clear()

    def publish(topic, payload):
        if not sent:
            allowlists.note_ack("ctrl-a", protocol.AclAck(1, "rejected", "hash_mismatch"))
        sent(topic, payload)

    allowlists.sync(load_snapshot(now), now, publish, "r")
    assert [m["type"] for m in sent] == ["delta"]
    assert AclState.objects.get(pk="ctrl-a").resend
    sent.clear()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    assert sent and {m["type"] for m in sent} == {"snapshot"}


@pytest.mark.django_db
def test_a_heartbeat_lagging_60_seconds_after_a_push_gets_a_snapshot(scene):  # noqa: F811
    from access.models import Controller

    sent, now = Sent(), timezone.now()
    allowlists.sync(load_snapshot(now), now, sent, "r")
    Controller.objects.filter(pk="ctrl-a").update(online=True, acl_version=0)
    assert allowlists.mark_lagging(now + timedelta(seconds=30)) == set()
    assert allowlists.mark_lagging(now + timedelta(seconds=61)) == {"ctrl-a"}
    Controller.objects.filter(pk="ctrl-a").update(acl_version=1)
    AclState.objects.update(resend=False)
    assert allowlists.mark_lagging(now + timedelta(seconds=61)) == set()


@pytest.mark.mqtt
@pytest.mark.postgres  # one pushing worker on SQLite: there are no advisory locks
@pytest.mark.django_db(transaction=True)
def test_with_several_workers_one_pushes_and_another_takes_over(
    scene,  # noqa: F811
    bridges,  # noqa: F811
    device,  # noqa: F811
):

    group = f"g{uuid.uuid4().hex[:8]}"
    first, second = bridges(group=group), bridges(group=group)
    sim = device(client_id=f"sim-{uuid.uuid4().hex[:10]}")
    synced(sim)
    pushers = [b for b in (first, second) if sum(b.bridge.allowlists.counts.values())]
    assert len(pushers) == 1
    pushers[0].close()
    other = second if pushers[0] is first else first
    bob = h(UIDS["bob"])
    Credential.objects.filter(uid_hash=bob).update(status="suspended")
    assert wait_until(lambda: not sim.holds(bob), 3.0)
    assert sum(other.bridge.allowlists.counts.values())


@pytest.mark.mqtt
@pytest.mark.django_db(transaction=True)
def test_controllers_lagging_behind_their_allow_list_are_a_gauge_in_metrics(
    scene,  # noqa: F811
    bridges,  # noqa: F811
    monkeypatch,
):
    """ctrl-z is online as far as the database knows, and never applies what it is sent: a
    minute after a push it lags, and it still lags once the snapshot is sent again, until it
    reports the version."""
    monkeypatch.setattr(allowlists, "LAG_CHECK_EVERY", timedelta(0))  # at every poll
    Controller.objects.create(id="ctrl-z", name="Silent", online=True, last_seen=timezone.now())
    bridges()
    lagging = lambda: metric("technocampus_allowlists_lagging")  # noqa: E731
    pushed = AclState.objects.filter(pk="ctrl-z", version__gt=0)
    assert wait_until(pushed.exists)
    assert lagging() == 0
    a_minute_ago = timezone.now() - allowlists.LAG_RESEND - timedelta(seconds=1)
    pushed.update(sent_at=a_minute_ago)
    assert wait_until(lambda: lagging() == 1)
    assert wait_until(lambda: AclState.objects.get(pk="ctrl-z").sent_at > a_minute_ago)
    time.sleep(0.5)  # several lag checks after the snapshot sent again
    assert lagging() == 1
    # It reports the version, as its ack or heartbeat would write it.
    Controller.objects.filter(pk="ctrl-z").update(acl_version=pushed.get().version)
    assert wait_until(lambda: lagging() == 0)
