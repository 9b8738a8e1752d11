"""A door keeps the time of its site (campus.clock, access.facts.door_zones): its schedule is
judged in that site's local time, from the database, from the bridge's memory and offline
(the allow-list names its controller's zone).

A second site in Montréal (6 hours behind Paris in March): its hall door opens to tenant
members on weekdays from 08:00 to 18:00 local time; its entrance (no space) takes the zone
of its controller's other doors.
"""

import json
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from access import allowlists
from access.decision import decide
from access.facts import FactCache, load_door_facts, load_snapshot
from access.models import ChangeVersion, Controller, Door
from campus import clock
from campus.models import Site
from tests.access.test_facts import badge

EIGHT_TO_SIX = [[d, "08:00", "18:00"] for d in range(1, 6)]
# Monday 2 March 2026: 09:00 in Paris is 03:00 in Montréal; 09:00 in Montréal is 15:00 in Paris.
NINE_IN_PARIS = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NINE_IN_MONTREAL = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@pytest.fixture
def far_doors(montreal):
    ctrl = Controller.objects.create(id="ctrl-m", name="Montréal ground floor")
    return {
        "ctrl": ctrl,
        "hall": Door.objects.create(
            id="M-HALL",
            name="Hall",
            controller=ctrl,
            kind="common",
            space=montreal["hall"],
            schedule=EIGHT_TO_SIX,
        ),
        "entrance": Door.objects.create(
            id="M-ENT",
            name="Entrance",
            controller=ctrl,
            kind="perimeter",
            direction="in",
            schedule=EIGHT_TO_SIX,
        ),
    }


@pytest.mark.parametrize("door", ["hall", "entrance"])
def test_a_door_schedule_is_judged_in_its_site_s_local_time(far_doors, bob, door):
    card = badge(bob, "B0B0B0B0")
    cache = FactCache()
    for now, expected in ((NINE_IN_PARIS, "outside_schedule"), (NINE_IN_MONTREAL, "common_area")):
        from_database = load_door_facts(card.uid_hash, far_doors[door], now)
        assert from_database.local_now == datetime(2026, 3, 2, now.hour - 5, 0)
        assert decide(from_database).reason == expected
        cache.refresh(now, force=True)
        from_memory = cache.door_facts(card.uid_hash, "ctrl-m", far_doors[door].pk, now).facts
        assert (from_memory.local_now, decide(from_memory).reason) == (
            from_database.local_now,
            expected,
        )


def test_the_default_zone_s_doors_keep_its_time(doors, far_doors, bob):
    card = badge(bob, "B0B0B0B0")
    facts = load_door_facts(card.uid_hash, doors["entrance"], NINE_IN_PARIS)
    assert facts.local_now == datetime(2026, 3, 2, 9, 0) and decide(facts).granted


def test_door_zones_follow_spaces_then_the_controller_then_the_default():
    from access.facts import door_zones

    paris, montreal, tokyo = "Europe/Paris", "America/Montreal", "Asia/Tokyo"
    doors, controllers = door_zones(
        [
            ("a-1", "a", montreal),
            ("a-2", "a", None),  # a perimeter door: its controller's zone
            ("b-1", "b", None),  # a controller without spaced doors: the default zone
            ("c-1", "c", montreal),
            ("c-2", "c", tokyo),
            ("c-3", "c", None),  # doors in two zones: the controller's is the default
        ]
    )
    assert {k: v.key for k, v in doors.items()} == {
        "a-1": montreal,
        "a-2": montreal,
        "b-1": paris,
        "c-1": montreal,
        "c-2": tokyo,
        "c-3": paris,
    }
    assert {k: v.key for k, v in controllers.items()} == {"a": montreal, "b": paris, "c": paris}


def test_a_controller_s_allow_list_names_its_site_s_zone(doors, far_doors, bob):
    badge(bob, "B0B0B0B0")
    now = timezone.now()
    lists = allowlists.build_all(load_snapshot(now), now)
    assert (lists["ctrl-m"].tz, lists["ctrl-a"].tz) == ("America/Montreal", "Europe/Paris")
    [first] = allowlists.snapshot_messages(1, lists["ctrl-m"], now)[:1]
    body = json.loads(first)
    assert (body["tz"], body["tz_posix"]) == ("America/Montreal", "EST5EDT,M3.2.0,M11.1.0")


def test_a_site_s_new_zone_reaches_the_bridge_s_facts(far_doors, montreal, bob):
    card = badge(bob, "B0B0B0B0")
    cache = FactCache()
    cache.refresh(NINE_IN_PARIS)
    before = ChangeVersion.current()
    Site.objects.filter(pk=montreal["site"].pk).update(time_zone="Asia/Tokyo")
    assert ChangeVersion.current() != before
    assert cache.refresh(NINE_IN_PARIS) is not None  # reloaded
    facts = cache.door_facts(card.uid_hash, "ctrl-m", "M-HALL", NINE_IN_PARIS).facts
    assert facts.local_now == clock.local_wall_clock(NINE_IN_PARIS, clock.zone("Asia/Tokyo"))
    assert decide(facts).reason == "common_area"  # 17:00 in Tokyo


def test_an_unknown_zone_name_in_the_database_falls_back_to_the_default(far_doors, montreal, bob):
    card = badge(bob, "B0B0B0B0")
    Site.objects.filter(pk=montreal["site"].pk).update(time_zone="Nowhere/Atlantis")
    facts = load_door_facts(card.uid_hash, far_doors["hall"], NINE_IN_PARIS)
    assert facts.local_now == datetime(2026, 3, 2, 9, 0)  # the default zone, not a crash
