"""The monthly reports: pure functions over loaded rows, to the minute, across a clock change
(Sunday 29 March 2026 lasts 23 hours in Paris); then the staff page and its CSV."""

import csv
import io
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from bookings.models import Booking, BookingPolicy, Closure, Resource
from labs import reports
from labs.reports import BookingRow, MonthRows, ResourceRow, SessionRow
from tests.bookings.conftest import PARIS, WEEKDAYS_8_TO_20, at
from tests.portal.conftest import signed_in

MARCH = date(2026, 3, 1)
WEEKDAY_HOURS = tuple(map(tuple, WEEKDAYS_8_TO_20))


def test_percentages_are_tenths_rounded_half_up():
    assert reports.percent_tenths(1, 8) == 125  # 12.5 %
    assert reports.percent_tenths(1, 3) == 333
    assert reports.percent_tenths(2, 3) == 667
    assert reports.percent_tenths(7, 1600) == 4  # 0.4375 % → 0.4
    assert reports.percent_tenths(5, 0) == 0


def test_hours_have_one_decimal_rounded_half_up():
    assert [reports.hours(m) for m in (0, 3, 95, 90, 44580)] == [
        "0.0",
        "0.1",
        "1.6",
        "1.5",
        "743.0",
    ]
    assert reports.hours(95, decimal_comma=True) == "1,6"


def test_bookable_time_is_opening_hours_minus_closures_in_real_minutes():
    # March 2026 has 22 weekdays of 12 hours
    assert reports.bookable_minutes(WEEKDAY_HOURS, frozenset(), MARCH, PARIS) == 22 * 720
    closed = frozenset({date(2026, 3, 10), date(2026, 3, 14)})  # a Tuesday, a Saturday
    assert reports.bookable_minutes(WEEKDAY_HOURS, closed, MARCH, PARIS) == 21 * 720
    # open around the clock: 29 March lasts 23 hours, 25 October 25 hours
    assert reports.bookable_minutes((), frozenset(), MARCH, PARIS) == 31 * 1440 - 60
    assert reports.bookable_minutes((), frozenset(), date(2026, 10, 1), PARIS) == 31 * 1440 + 60
    assert reports.bookable_minutes(((7, "00:00", "24:00"),), frozenset(), MARCH, PARIS) == (
        5 * 1440 - 60
    )


@pytest.fixture
def month():
    """A meeting room open on weekdays 8–20 and a machine open around the clock."""
    room = ResourceRow(1, "B-1.50", "Salle Loire", "meeting_room", WEEKDAY_HOURS, frozenset())
    machine = ResourceRow(2, "EQ-OSC-1", "Oscilloscope", "equipment", (), frozenset())
    bookings = (
        BookingRow(1, at(2, 10), at(2, 12), "confirmed"),  # Monday, 120 min
        BookingRow(1, at(3, 14), at(3, 15, 30), "checked_in"),  # Tuesday, 90 min
        BookingRow(1, at(4, 9), at(4, 10), "released"),  # a no-show: not held
        BookingRow(1, at(5, 9), at(5, 10), "cancelled"),
        BookingRow(1, at(6, 9), at(6, 10), "pending"),
        BookingRow(2, at(28, 23, month=2), at(1, 1), "confirmed"),  # 60 min in March
        BookingRow(2, at(2, 9), at(2, 13), "confirmed"),  # 240 min
        BookingRow(2, at(29, 1), at(29, 4), "confirmed"),  # 2 real hours: 02:00 never was
        BookingRow(2, at(31, 23), at(1, 1, month=4), "confirmed"),  # 60 min in March
    )
    sessions = (SessionRow(2, at(2, 9, 10), at(2, 12, 40)),)  # 210 min
    return MonthRows(
        month=MARCH,
        now=at(1, 12, month=4),
        resources=(machine, room),
        bookings=bookings,
        sessions=sessions,
        tz=PARIS,
    )


def test_utilisation_per_resource_and_per_kind(month):
    report = reports.build(month)
    [room] = report.spaces
    assert (room.key, room.bookable_minutes, room.booked_minutes) == ("B-1.50", 15840, 210)
    assert room.percent_tenths == 13  # 1.3 %
    [machine] = report.equipment
    assert (machine.bookable_minutes, machine.booked_minutes) == (44580, 480)
    assert machine.percent_tenths == 11  # 1.1 %
    assert [(k.key, k.bookable_minutes, k.booked_minutes) for k in report.kinds] == [
        ("equipment", 44580, 480),
        ("meeting_room", 15840, 210),
    ]


def test_measured_use_against_booked_time(month):
    [measured] = reports.build(month).measured
    assert (measured.code, measured.booked_minutes, measured.measured_minutes) == (
        "EQ-OSC-1",
        480,
        210,
    )
    assert measured.percent_tenths == 438  # 43.75 % → 43.8


def test_the_no_show_rate_counts_bookings_starting_in_the_month(month):
    rates = {n.key: n for n in reports.build(month).no_shows}
    room, machine, total = rates["meeting_room"], rates["equipment"], rates["all"]
    assert (room.released, room.checked_in, room.past_confirmed, room.percent_tenths) == (
        1,
        1,
        1,
        333,
    )
    # the booking from February is not March's; the three others are over
    assert (machine.released, machine.checked_in, machine.past_confirmed) == (0, 0, 3)
    assert (total.released, total.counted, total.percent_tenths) == (1, 6, 167)


def test_a_confirmed_booking_not_over_yet_is_no_no_show_candidate(month):
    early = MonthRows(**{**vars(month), "now": at(2, 11)})
    total = {n.key: n for n in reports.build(early).no_shows}["all"]
    assert (total.released, total.checked_in, total.past_confirmed) == (1, 1, 0)


def test_the_busiest_hours_are_booked_minutes_by_weekday_and_hour(month):
    grid = reports.build(month).busiest
    monday, tuesday, sunday = grid[0], grid[1], grid[6]
    assert monday[9:13] == [60, 120, 120, 60]  # the machine 9–13, the room 10–12
    assert (tuesday[14], tuesday[15], tuesday[23]) == (60, 30, 60)
    assert sunday[0] == 60  # 1 March 00:00–01:00, the end of the February booking
    assert (sunday[1], sunday[2], sunday[3]) == (60, 0, 60)  # 29 March, clocks go forward
    assert sum(map(sum, grid)) == 210 + 480
    assert reports.heat_levels(grid)[0][10] == 4 and reports.heat_levels(grid)[1][15] == 1


def test_the_csv_is_semicolons_with_a_bom(month):
    body = reports.to_csv(reports.build(month), decimal_comma=True)
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["utilisation", "2026-03"]
    assert ["resource", "B-1.50", "Salle Loire", "meeting_room", "264,0", "3,5", "1,3"] in rows
    assert ["EQ-OSC-1", "Oscilloscope", "8,0", "3,5", "43,8"] in rows
    assert ["all", "1", "1", "4", "16,7"] in rows
    monday = next(r for r in rows if r[:1] == ["mon"])
    assert monday[10:14] == ["1,0", "2,0", "2,0", "1,0"]


def test_the_csv_defuses_names_a_spreadsheet_would_run_and_keeps_figures_numbers(month):
    rooms = (
        ResourceRow(1, "=1+1", '=HYPERLINK("https://evil.test";"x")', "meeting_room", (), ()),
        ResourceRow(2, "EQ-OSC-1", "@SUM(A1:A9)", "equipment", (), frozenset()),
    )
    named = MonthRows(**{**vars(month), "resources": rooms})
    body = reports.to_csv(reports.build(named), decimal_comma=True)
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    room = next(r for r in rows if r[:2] == ["resource", "'=1+1"])
    assert room[2] == '\'=HYPERLINK("https://evil.test";"x")'
    assert ["EQ-OSC-1", "'@SUM(A1:A9)", "8,0", "3,5", "43,8"] in rows
    assert all(not cell.startswith("'") for cell in room[4:])  # figures are numbers


def test_the_loader_reads_policies_closures_bookings_and_sessions(bob, room, room_policy):
    Closure.objects.create(name="Closed", start_date=date(2026, 3, 10), end_date=date(2026, 3, 10))
    Booking.objects.create(
        resource=room,
        person=bob,
        tenant=bob.tenant,
        start=at(2, 10),
        end=at(2, 12),
        blocked_start=at(2, 10),
        blocked_end=at(2, 12),
        status="confirmed",
    )
    Booking.objects.create(
        resource=room,
        person=bob,
        start=at(3, 10),
        end=at(3, 12),
        blocked_start=at(3, 10),
        blocked_end=at(3, 12),
        status="confirmed",
        is_maintenance=True,
    )
    report = reports.monthly_report(MARCH, now=at(1, 12, month=4))
    [loire] = report.spaces
    assert (loire.bookable_minutes, loire.booked_minutes) == (21 * 720, 120)


def test_the_report_page_is_for_staff_only(alice, bob, tina):
    for person in (alice, bob, tina):
        assert signed_in(person).get("/staff/reports/").status_code == 403


def test_the_report_page_draws_charts_and_tables_and_downloads_csv(sam, bob, room, room_policy):
    Booking.objects.create(
        resource=room,
        person=bob,
        start=at(2, 10),
        end=at(2, 12),
        blocked_start=at(2, 10),
        blocked_end=at(2, 12),
        status="confirmed",
    )
    client = signed_in(sam)
    response = client.get("/staff/reports/", {"month": "2026-03"})
    assert response.status_code == 200
    body = response.content.decode()
    assert '<svg viewBox="0 0 600' in body and 'role="img"' in body
    assert "Salle Loire" in body and "0.8 %" in body  # 120 / 15840 min
    assert "Busiest hours of the week" in body and '<td class="heat-4">1.0</td>' in body
    csv_response = client.get("/staff/reports/", {"month": "2026-03", "format": "csv"})
    assert csv_response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="report-2026-03.csv"' in csv_response["Content-Disposition"]
    assert csv_response.content.startswith("\ufeff".encode())


def test_a_bad_month_is_reported_next_to_the_field(sam):
    response = signed_in(sam).get("/staff/reports/", {"month": "2026-13"})
    assert response.status_code == 422
    assert response.context["form"].errors["month"] == ["Write the month as YYYY-MM, e.g. 2026-03."]


def test_each_resource_is_reported_in_its_own_site_s_month_and_hours(bob, tokyo):
    """A Tokyo room open around the clock: March has no clock change there (31 whole days),
    and a booking from 00:00 to 02:00 on 1 April in Tokyo (still 31 March in Paris) is April's;
    its hours are Tokyo's."""
    tz = ZoneInfo("Asia/Tokyo")
    always = BookingPolicy.objects.create(name="Always")
    far = Resource.objects.create(
        code="T-0.50", name="Salon", kind="meeting_room", space=tokyo["meeting"], policy=always
    )

    def held(start, end):
        Booking.objects.create(
            resource=far,
            person=bob,
            start=start,
            end=end,
            blocked_start=start,
            blocked_end=end,
            status="confirmed",
        )

    held(datetime(2026, 3, 2, 9, tzinfo=tz), datetime(2026, 3, 2, 10, tzinfo=tz))
    held(datetime(2026, 4, 1, 0, tzinfo=tz), datetime(2026, 4, 1, 2, tzinfo=tz))
    report = reports.monthly_report(MARCH, now=at(1, 12, month=4))
    salon = next(u for u in report.spaces if u.key == "T-0.50")
    assert (salon.bookable_minutes, salon.booked_minutes) == (31 * 1440, 60)
    monday = report.busiest[0]
    assert monday[9] == 60 and monday[1] == 0  # 09:00 in Tokyo, not 01:00 in Paris
