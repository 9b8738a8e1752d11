"""Allow-lists for offline operation: the builder (from the decision function, no broker) and,
through the real broker, revocations, offline decisions and corrupted chunks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from access import allowlists, protocol
from access.facts import load_snapshot
from access.models import Credential, Door
from tests.access.test_bridge import UIDS, scene  # noqa: F401 (a fixture)

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
