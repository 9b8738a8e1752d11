"""Invariant 1 under fire: many clients at once, each on its own database connection.

The same tests run on whichever database is configured: on SQLite the IMMEDIATE transaction
serialises the writers, on PostgreSQL the resource row lock does, with the exclusion
constraint behind it. Every racer must get a booking or a clear 409, never "busy" or a 500.
"""

import random
import threading
from datetime import datetime, time, timedelta
from itertools import combinations

import pytest
from django.db import connection
from django.utils import timezone

from bookings import engine
from bookings.engine import Slot, SlotTaken, book
from bookings.models import ACTIVE, HOLDING, Booking
from bookings.series import Recurrence, SeriesRefused, book_series
from campus.models import Person, Tenant
from tests.bookings.conftest import NOW, PARIS, at
from tests.conftest import api_client

RACERS = 50

pytestmark = pytest.mark.django_db(transaction=True)


def race(n: int, attempt) -> list:
    """Run attempt(i) in n threads released together; each result is ("ok", value) or
    ("error", exception). Each thread has its own connection, closed when it is done."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait(timeout=10)
            results[i] = ("ok", attempt(i))
        except Exception as e:
            results[i] = ("error", e)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racer never finished"
    return results


def wins_and_losses(results):
    wins = [value for kind, value in results if kind == "ok"]
    taken = [e for kind, e in results if kind == "error" and isinstance(e, SlotTaken)]
    other = [e for kind, e in results if kind == "error" and not isinstance(e, SlotTaken)]
    return wins, taken, other


def overlapping_pairs(bookings):
    return [
        (a, b)
        for a, b in combinations(bookings, 2)
        if a.resource_id == b.resource_id
        and a.blocked_start < b.blocked_end
        and b.blocked_start < a.blocked_end
    ]


@pytest.fixture
def crowd(campus):
    """50 people of five tenants, none with a quota, so that only the slot is contested."""
    tenants = [
        Tenant.objects.create(name=f"Racer {t}", tier="member", contract_start=NOW.date())
        for t in range(5)
    ]
    return [
        Person.objects.create_user(
            f"racer{i}@race.test",
            None,
            first_name=f"Racer{i}",
            last_name="Test",
            tenant=tenants[i % 5],
        )
        for i in range(RACERS)
    ]


def test_fifty_racers_for_one_slot_leave_exactly_one_winner(crowd, room):
    results = race(RACERS, lambda i: book(crowd[i], Slot(room, at(3, 10), at(3, 11)), now=NOW))
    wins, taken, other = wins_and_losses(results)
    assert other == []
    assert len(wins) == 1 and len(taken) == RACERS - 1
    assert {e.status for e in taken} == {409}
    assert all(e.data["conflicts"] for e in taken)
    [stored] = Booking.objects.filter(resource=room, status__in=ACTIVE)
    assert stored.pk == wins[0].pk


@pytest.mark.postgres
def test_on_postgresql_the_exclusion_constraint_alone_keeps_one_winner(crowd, room, monkeypatch):
    # Blind the engine's own check: every racer reaches the INSERT, and the exclusion
    # constraint has to refuse the 49 late ones (still a SlotTaken naming the winner).
    real = engine.conflicts_for

    def blind(resource_ids, blocked_start, blocked_end, statuses, exclude=()):
        if statuses is HOLDING:
            return []
        return real(resource_ids, blocked_start, blocked_end, statuses, exclude)

    monkeypatch.setattr(engine, "conflicts_for", blind)
    results = race(RACERS, lambda i: book(crowd[i], Slot(room, at(3, 10), at(3, 11)), now=NOW))
    wins, taken, other = wins_and_losses(results)
    assert other == []
    assert len(wins) == 1 and len(taken) == RACERS - 1
    assert {c["booking_id"] for e in taken for c in e.data["conflicts"]} == {wins[0].pk}
    assert Booking.objects.filter(resource=room, status__in=ACTIVE).count() == 1


def test_racers_for_overlapping_slots_never_store_an_overlap(crowd, room, room_policy):
    room_policy.buffer_after_minutes = 15  # the invariant holds buffers included
    room_policy.save()
    rng = random.Random(20261126)
    starts = [at(3, 10) + timedelta(minutes=15 * rng.randrange(13)) for _ in range(RACERS)]
    wanted = [Slot(room, s, s + timedelta(hours=1)) for s in starts]

    results = race(RACERS, lambda i: book(crowd[i], wanted[i], now=NOW))

    wins, taken, other = wins_and_losses(results)
    assert other == []
    assert wins and len(wins) + len(taken) == RACERS
    stored = list(Booking.objects.filter(resource=room, status__in=ACTIVE))
    assert sorted(b.pk for b in stored) == sorted(b.pk for b in wins)
    assert overlapping_pairs(stored) == []
    # Every refusal was deserved: the wanted slot, with its buffer, hits a stored booking.
    for (kind, _e), slot in zip(results, wanted, strict=True):
        if kind == "error":
            end = slot.end + timedelta(minutes=15)
            assert any(b.blocked_start < end and slot.start < b.blocked_end for b in stored)


def test_a_series_racing_single_bookings_books_or_reports_each_occurrence(crowd, room):
    weeks = 8
    # Wall-clock arithmetic in Paris: 09:00 every Tuesday, across the DST change of 29 March.
    tuesdays = [at(3, 9) + timedelta(weeks=w) for w in range(weeks)]
    rng = random.Random(7)
    singles = {}
    for i in range(2, 30):
        day = rng.choice(tuesdays)
        start = day + timedelta(minutes=rng.choice([-30, 0, 30]))
        singles[i] = Slot(room, start, start + timedelta(hours=1))

    def attempt(i):
        if i < 2:  # two series on the same Tuesdays, 09:00–10:00
            first = Slot(room, tuesdays[0], tuesdays[0] + timedelta(hours=1), f"Series {i}")
            try:
                return book_series(crowd[i], first, Recurrence("weekly", count=weeks), now=NOW)
            except SeriesRefused as e:
                return e
        return book(crowd[i], singles[i], now=NOW)

    results = race(30, attempt)

    singles_won = [v for kind, v in results[2:] if kind == "ok"]
    lost = [e for kind, e in results[2:] if kind == "error"]
    assert all(isinstance(e, SlotTaken) for e in lost), lost
    assert all(kind == "ok" for kind, _v in results[:2]), results[:2]
    stored = list(Booking.objects.filter(resource=room, status__in=ACTIVE))
    assert overlapping_pairs(stored) == []
    series_booked = 0
    for _kind, outcome in results[:2]:
        if isinstance(outcome, SeriesRefused):
            refused = [datetime.fromisoformat(r["start"]) for r in outcome.data["refused"]]
            assert sorted(refused) == tuesdays
            continue
        booked = [b.start for b in outcome.booked]
        refused = [r.start for r in outcome.refused]
        assert sorted(booked + refused) == tuesdays
        assert all(r.code == "conflict" for r in outcome.refused)
        in_db = Booking.objects.filter(series=outcome.series, status__in=ACTIVE)
        assert sorted(b.start for b in in_db) == sorted(booked)
        series_booked += len(booked)
    assert len(stored) == len(singles_won) + series_booked


def _next_tuesday_ten():
    """A Tuesday 10:00 in Paris, a week or two ahead of the real clock: the API has no `now`."""
    today = timezone.now().astimezone(PARIS).date() + timedelta(days=7)
    tuesday = today + timedelta(days=(1 - today.weekday()) % 7)
    return datetime.combine(tuesday, time(10, 0), tzinfo=PARIS)


def test_racing_through_the_api_gives_one_201_and_409s_with_the_conflicts(crowd, room):
    start = _next_tuesday_ten()
    body = {
        "resource_id": room.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
    }
    clients = [api_client(person) for person in crowd[:8]]

    results = race(
        len(clients),
        lambda i: clients[i].post("/api/v1/bookings", body, content_type="application/json"),
    )

    assert all(kind == "ok" for kind, _r in results), results
    statuses = sorted(r.status_code for _kind, r in results)
    assert statuses == [201] + [409] * (len(clients) - 1)
    for _kind, response in results:
        if response.status_code == 409:
            payload = response.json()
            assert payload["code"] == "conflict"
            assert payload["conflicts"] and payload["conflicts"][0]["resource"] == room.code
    assert Booking.objects.filter(resource=room, status__in=ACTIVE).count() == 1
