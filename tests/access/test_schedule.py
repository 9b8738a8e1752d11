"""Weekly door schedules: wall-clock local time, whatever the season. No database."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from access.decision import in_schedule, parse_schedule

PARIS = ZoneInfo("Europe/Paris")
OFFICE_HOURS = [[d, "07:00", "20:00"] for d in range(1, 6)] + [[6, "08:00", "12:00"]]


def local(utc: datetime) -> datetime:
    """What the building's clock shows at this instant, as the bridge will compute it."""
    return utc.astimezone(PARIS).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (datetime(2026, 3, 2, 7, 0), True),  # Monday, opening minute included
        (datetime(2026, 3, 2, 6, 59), False),
        (datetime(2026, 3, 2, 19, 59), True),
        (datetime(2026, 3, 2, 20, 0), False),  # closing minute excluded
        (datetime(2026, 3, 7, 11, 59), True),  # Saturday morning
        (datetime(2026, 3, 7, 12, 0), False),
        (datetime(2026, 3, 8, 10, 0), False),  # Sunday
    ],
)
def test_a_slot_includes_its_start_and_excludes_its_end(when, inside):
    assert in_schedule(OFFICE_HOURS, when) is inside


def test_an_empty_schedule_is_never_open():
    assert not in_schedule([], datetime(2026, 3, 2, 12, 0))


def test_a_slot_may_end_at_midnight():
    assert in_schedule([[1, "22:00", "24:00"]], datetime(2026, 3, 2, 23, 59))
    assert not in_schedule([[1, "22:00", "24:00"]], datetime(2026, 3, 3, 0, 0))


def test_seven_am_is_seven_am_in_winter_and_in_summer():
    # 06:30 UTC is 07:30 in January (CET) but 08:30 in July (CEST): both inside; 05:30 UTC is
    # 06:30 in winter (shut) and 07:30 in summer (open). The clock on the wall decides.
    assert in_schedule(OFFICE_HOURS, local(datetime(2026, 1, 5, 6, 30, tzinfo=UTC)))
    assert not in_schedule(OFFICE_HOURS, local(datetime(2026, 1, 5, 5, 30, tzinfo=UTC)))
    assert in_schedule(OFFICE_HOURS, local(datetime(2026, 7, 6, 5, 30, tzinfo=UTC)))


def test_the_spring_change_skips_the_hour_and_nothing_breaks():
    # Sunday 29 March 2026: 02:00 CET jumps to 03:00 CEST. 00:59 UTC is 01:59, 01:00 UTC 03:00.
    night = [[7, "02:00", "03:00"], [7, "03:00", "04:00"]]
    assert not in_schedule(night, local(datetime(2026, 3, 29, 0, 59, tzinfo=UTC)))
    assert in_schedule(night, local(datetime(2026, 3, 29, 1, 0, tzinfo=UTC)))
    assert local(datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == datetime(2026, 3, 29, 3, 0)
    # A wall time that never exists on that day is still judged by its wall-clock reading.
    assert in_schedule(night, datetime(2026, 3, 29, 2, 30))


def test_the_autumn_change_repeats_the_hour_and_both_are_inside():
    # Sunday 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    night = [[7, "02:00", "03:00"]]
    first = local(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    second = local(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    assert first == second == datetime(2026, 10, 25, 2, 30)
    assert in_schedule(night, first) and in_schedule(night, second)


def test_an_aware_datetime_is_refused_so_utc_is_never_mistaken_for_local_time():
    with pytest.raises(ValueError, match="naive"):
        in_schedule(OFFICE_HOURS, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def test_a_valid_schedule_parses_to_minutes():
    assert parse_schedule([[1, "07:00", "20:00"], (7, "00:00", "24:00")]) == (
        (1, 420, 1200),
        (7, 0, 1440),
    )


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("07:00-20:00", "is a list"),
        ([[1, "07:00"]], "a slot is"),
        ([[0, "07:00", "20:00"]], "weekday is 1"),
        ([[8, "07:00", "20:00"]], "weekday is 1"),
        ([[True, "07:00", "20:00"]], "weekday is 1"),
        ([["1", "07:00", "20:00"]], "weekday is 1"),
        ([[1, "7:00", "20:00"]], "HH:MM"),
        ([[1, "07h00", "20:00"]], "HH:MM"),
        ([[1, "07:60", "20:00"]], "not a time of day"),
        ([[1, "07:00", "24:01"]], "not a time of day"),
        ([[1, "25:00", "26:00"]], "not a time of day"),
        ([[1, "20:00", "07:00"]], "end after it starts"),
        ([[1, "07:00", "07:00"]], "end after it starts"),
        ([[1, "０７:00", "20:00"]], "HH:MM"),
    ],
)
def test_a_malformed_schedule_is_refused_with_a_clear_message(schedule, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(schedule)
