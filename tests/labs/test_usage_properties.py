"""Property test: whatever bookings, usage sessions and prices a month holds, the usage
statement's totals are the sums of its lines, kind by kind, to the cent, and so are the total
rows of its CSV (read back as an accountant's spreadsheet would).

`labs.usage.compute` is a pure function of its inputs, so most months are drawn as inputs
directly (no database): many more are tried in the same time. A few are made of real rows
(bookings through the engine, sessions through labs.sessions) to cover the loading too;
tests/labs/test_usage.py checks one month to the cent.
"""

import csv
import io
from collections import Counter
from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.db.models import Q
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings import engine
from bookings.engine import cost_cents
from bookings.models import Booking, Status
from campus import clock
from common.errors import DomainError
from labs import sessions, usage
from tests.bookings.conftest import NOW, at
from tests.labs.conftest import qualify

MARCH = datetime(2026, 3, 1, tzinfo=usage.building_tz())
BILLED = [Status.CONFIRMED, Status.CHECKED_IN, Status.RELEASED]

resource_facts = st.fixed_dictionaries(
    {
        "is_equipment": st.booleans(),
        "member": st.integers(0, 50_000),
        "non_member": st.integers(0, 80_000),
        "uses_credits": st.booleans(),
        "per_kwh": st.sampled_from([0, 0, 17, 20, 99]),
    }
)
booking_draw = st.fixed_dictionaries(
    {
        "resource": st.integers(0, 9),
        "day": st.integers(0, 30),
        "quarter": st.integers(0, 95),  # start time: a quarter of an hour of the day
        "quarters": st.integers(1, 48),  # duration
        "status": st.sampled_from([*BILLED, Status.CANCELLED]),
        "charge_share": st.integers(1, 100),  # a late cancellation's percentage
    }
)
session_draw = st.fixed_dictionaries(
    {
        "resource": st.integers(0, 9),
        "booking": st.none() | st.integers(0, 19),  # None: a session without a booking
        "offset_s": st.integers(0, 30 * 86400),
        "seconds": st.integers(0, 12 * 3600),
        "energy_wh": st.none() | st.integers(0, 200_000),
    }
)


@st.composite
def months(draw):
    """The inputs of one tenant's month, shaped like load_inputs' answer."""
    tenant = usage.TenantFacts(
        id=1,
        name=draw(st.sampled_from(["Acme", "Société Générale d'Électronique"])),
        is_member=draw(st.booleans()),
        included_minutes=draw(st.sampled_from([0, 0, 30, 120, 600, 10_000])),
    )
    drawn = draw(st.lists(resource_facts, min_size=1, max_size=4))
    resources = {
        i + 1: usage.ResourceFacts(
            id=i + 1,
            code=f"R-{i + 1}",
            name=f"Resource {i + 1}",
            is_equipment=r["is_equipment"],
            hourly_member_cents=r["member"],
            hourly_non_member_cents=r["non_member"],
            uses_credits=r["uses_credits"],
            energy_cents_per_kwh=r["per_kwh"] if r["is_equipment"] else 0,
        )
        for i, r in enumerate(drawn)
    }
    ids = sorted(resources)

    def hourly(res):
        return res.hourly_member_cents if tenant.is_member else res.hourly_non_member_cents

    bookings = []
    for n, b in enumerate(draw(st.lists(booking_draw, max_size=12))):
        res = resources[ids[b["resource"] % len(ids)]]
        start = MARCH + timedelta(days=b["day"], minutes=15 * b["quarter"])
        start = start.astimezone(usage.building_tz())
        if start.month != 3:
            continue  # load_inputs keeps the bookings starting in the month only
        minutes = 15 * b["quarters"]
        price = cost_cents(hourly(res), minutes)  # what the engine stored when booking
        cancelled = b["status"] == Status.CANCELLED
        charge = usage.half_up(price * b["charge_share"], 100) if cancelled else 0
        if cancelled and charge == 0:
            continue  # load_inputs keeps charged cancellations only
        bookings.append(
            usage.BookingRow(
                id=100 + n,
                resource_id=res.id,
                start=start,
                end=start + timedelta(minutes=minutes),
                status=b["status"],
                price_cents=price,
                charge_cents=charge,
            )
        )
    equipment = [r for r in ids if resources[r].is_equipment]
    measurable = [
        b for b in bookings if b.status in BILLED and resources[b.resource_id].is_equipment
    ]
    sessions = []
    for n, s in enumerate(draw(st.lists(session_draw, max_size=10))):
        if s["booking"] is not None and measurable:
            booking = measurable[s["booking"] % len(measurable)]
            resource_id, booking_id = booking.resource_id, booking.id
            started = booking.start + timedelta(seconds=s["offset_s"] % 7200)
        elif equipment:
            resource_id, booking_id = equipment[s["resource"] % len(equipment)], None
            started = MARCH + timedelta(seconds=s["offset_s"])
        else:
            continue
        sessions.append(
            usage.SessionRow(
                id=500 + n,
                resource_id=resource_id,
                booking_id=booking_id,
                started_at=started,
                stopped_at=started + timedelta(seconds=s["seconds"]),
                energy_wh=s["energy_wh"],
            )
        )
    return usage.Inputs(
        tenant=tenant,
        month="2026-03",
        resources=resources,
        bookings=tuple(bookings),
        sessions=tuple(sessions),
    )


KIND_TOTALS = {  # line kind → (its minutes total, its amount total)
    "room": ("room_minutes", "room_cents"),
    "equipment": ("equipment_minutes", "equipment_cents"),
    "energy": (None, "energy_cents"),
    "credit": ("credit_minutes", "credit_cents"),
    "late_cancellation": (None, "late_cancellation_cents"),
}


def cents(text: str) -> int:
    """ "-12.50" or "-12,50" → -1250, read back as a spreadsheet would."""
    sign = -1 if text.startswith("-") else 1
    euros, hundredths = text.lstrip("-").replace(",", ".").split(".")
    assert len(hundredths) == 2, text
    return sign * (int(euros) * 100 + int(hundredths))


@settings(max_examples=200, deadline=None)
@given(inputs=months())
def test_the_totals_are_the_sums_of_the_lines(inputs):
    statement = usage.compute(inputs)
    lines, t = statement.lines, statement.totals

    assert t["total_cents"] == sum(line.amount_cents for line in lines)
    for kind, (minutes, amount) in KIND_TOTALS.items():
        of_kind = [line for line in lines if line.kind == kind]
        assert t[amount] == sum(line.amount_cents for line in of_kind), kind
        if minutes:
            assert t[minutes] == sum(line.minutes for line in of_kind), kind
    assert t["energy_wh"] == sum(line.energy_wh for line in lines if line.kind == "equipment")
    assert t["total_cents"] == sum(t[amount] for _, amount in KIND_TOTALS.values())

    # Every booking is billed on exactly one line of its own, every session without a
    # booking too; credits and energy only ever follow such a line.
    primary = Counter(line.booking_id for line in lines if line.kind not in ("credit", "energy"))
    assert primary == Counter(
        [b.id for b in inputs.bookings] + [None for s in inputs.sessions if s.booking_id is None]
    )
    assert [line.day for line in lines] == sorted(line.day for line in lines)

    # Included minutes: never more than the tenant has, nor than a room line's own time and
    # amount; the total never goes below zero because of them.
    assert 0 <= t["credit_minutes"] <= inputs.tenant.included_minutes
    for previous, line in zip(lines, lines[1:], strict=False):
        if line.kind == "credit":
            assert previous.kind == "room" and previous.booking_id == line.booking_id
            assert line.minutes <= previous.minutes
            assert -previous.amount_cents <= line.amount_cents <= 0
    assert t["total_cents"] >= 0


@settings(max_examples=100, deadline=None)
@given(inputs=months(), decimal_comma=st.booleans())
def test_the_csv_totals_are_the_sums_of_its_rows(inputs, decimal_comma):
    statement = usage.compute(inputs)
    body = usage.to_csv(statement, decimal_comma=decimal_comma).decode("utf-8-sig")
    header, *rows = csv.reader(io.StringIO(body), delimiter=";")
    assert header == usage.CSV_COLUMNS
    assert len(rows) == len(statement.lines) + 6
    lines, total_rows = rows[: len(statement.lines)], rows[len(statement.lines) :]
    column = {name: i for i, name in enumerate(header)}
    totals = {row[column["kind"]]: row for row in total_rows}
    assert list(totals) == [
        "total_room",
        "total_equipment",
        "total_energy",
        "total_credit",
        "total_late_cancellation",
        "total",
    ]

    def amount(rows):
        return sum(cents(row[column["amount"]]) for row in rows)

    def minutes(rows):
        return sum(int(row[column["minutes"]]) for row in rows)

    assert cents(totals["total"][column["amount"]]) == amount(lines)
    for kind in KIND_TOTALS:
        of_kind = [row for row in lines if row[column["kind"]] == kind]
        total = totals[f"total_{kind}"]
        assert cents(total[column["amount"]]) == amount(of_kind), kind
        if kind in ("room", "equipment", "credit"):
            assert int(total[column["minutes"]]) == minutes(of_kind), kind
    equipment_wh = sum(
        int(row[column["energy_wh"]]) for row in lines if row[column["kind"]] == "equipment"
    )
    assert int(totals["total_equipment"][column["energy_wh"]]) == equipment_wh
    assert int(totals["total_energy"][column["energy_wh"]]) == equipment_wh


def assert_totals_add_up(statement):
    t = statement.totals
    assert t["total_cents"] == sum(line.amount_cents for line in statement.lines)
    for kind, (minutes, amount) in KIND_TOTALS.items():
        of_kind = [line for line in statement.lines if line.kind == kind]
        assert t[amount] == sum(line.amount_cents for line in of_kind), kind
        if minutes:
            assert t[minutes] == sum(line.minutes for line in of_kind), kind


WEEKDAYS = [d for d in range(3, 28) if datetime(2026, 3, d).weekday() < 5]
real_booking = st.fixed_dictionaries(
    {
        "machine": st.booleans(),
        "day": st.sampled_from(WEEKDAYS),
        "quarter": st.integers(0, 36),  # from 08:00
        "quarters": st.integers(2, 12),
        "cancel_late": st.booleans(),
        "session": st.none() | st.tuples(st.integers(0, 20), st.integers(1, 7200)),
        "energy_wh": st.none() | st.integers(0, 50_000),
    }
)


@pytest.mark.django_db
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    member=st.booleans(),
    prices=st.tuples(*[st.integers(0, 30_000)] * 4),
    included=st.sampled_from([0, 45, 240]),
    drawn=st.lists(real_booking, min_size=1, max_size=8),
)
def test_a_month_of_real_rows_totals_to_its_lines(
    acme, bob, room, scope, member, prices, included, drawn
):
    """The same, through the database: bookings made by the engine at random prices, usage
    sessions started and stopped by labs.sessions, then the statement of the stored rows."""
    with transaction.atomic():
        acme.tier = "member" if member else "non_member"
        acme.included_minutes_per_month = included
        acme.save()
        for resource, (m, n) in [(room, prices[:2]), (scope.resource, prices[2:])]:
            resource.price_member_cents, resource.price_non_member_cents = m, n
            resource.save()
        qualify(bob, scope)
        for d in drawn:
            resource = scope.resource if d["machine"] else room
            start = at(d["day"], 8) + timedelta(minutes=15 * d["quarter"])
            end = start + timedelta(minutes=15 * d["quarters"])
            try:
                booking = engine.book(bob, engine.Slot(resource, start, end), now=NOW)
                if d["cancel_late"]:
                    engine.cancel(bob, booking, now=start - timedelta(hours=2))
                elif d["machine"] and d["session"]:
                    offset, seconds = d["session"]
                    began = start + timedelta(minutes=offset)
                    run = sessions.start_session(bob, scope, source="portal", now=began)
                    stopped = began + timedelta(seconds=seconds)
                    sessions.stop_session(
                        run, reason="manual", now=stopped, energy_wh=d["energy_wh"]
                    )
            except DomainError:
                continue  # overlapping draws, a session outside its booking: not billed
        statement = usage.statement_for(acme, clock.parse_month("2026-03"))
        assert_totals_add_up(statement)
        billed = Booking.objects.filter(tenant=acme).filter(
            Q(status__in=BILLED) | Q(status=Status.CANCELLED, charge_cents__gt=0)
        )
        primary = [line for line in statement.lines if line.kind not in ("credit", "energy")]
        assert sorted(line.booking_id for line in primary) == sorted(b.pk for b in billed)
        hourly = prices[0] if member else prices[1]
        for line in primary:
            if line.kind == "room":  # the engine's price at these random prices, unchanged
                assert line.amount_cents == cost_cents(hourly, line.minutes)
        transaction.set_rollback(True)


@pytest.mark.parametrize(
    "text, value", [("0.00", 0), ("12,50", 1250), ("-0.05", -5), ("-1234.56", -123456)]
)
def test_amounts_are_read_back_exactly(text, value):
    assert cents(text) == value
    assert usage.money(value, decimal_comma="," in text) == text
