"""French public holidays as closures: the command, the yearly job, the demo, and the engine
refusing 25 December and 1 January as `closed` through the API and the portal, on real dates
(the API and the portal run on the real clock)."""

from datetime import date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from bookings import jobs
from bookings.models import Booking, BookingPolicy, Closure, PublicHolidayYear
from config.demo import bookings as demo
from tests.bookings.conftest import PARIS
from tests.bookings.test_race import race
from tests.portal.conftest import signed_in

JSON = "application/json"


def holidays_of(year):
    return {
        c.start_date: c.name for c in Closure.objects.filter(start_date__year=year).order_by("pk")
    }


def next_day(month: int, day: int) -> date:
    """The next such day after today (local)."""
    today = timezone.localdate()
    found = date(today.year, month, day)
    return found if found > today else date(today.year + 1, month, day)


def run(*args) -> str:
    out = StringIO()
    call_command("public_holidays", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def open_every_day(room_policy):
    room_policy.opening_hours = []
    room_policy.save()
    return room_policy


def test_the_command_closes_the_eleven_french_public_holidays_in_french(db, settings):
    settings.LANGUAGE_CODE = "fr"
    out = run("--years", "2027")
    days = holidays_of(2027)
    assert len(days) == 11 and "11 closure(s) added for 2027." in out
    assert days[date(2027, 12, 25)] == "Noël"
    assert days[date(2027, 1, 1)] == "Jour de l'an"
    assert days[date(2027, 5, 17)] == "Lundi de Pentecôte"
    closure = Closure.objects.get(start_date=date(2027, 12, 25))
    assert closure.end_date == closure.start_date and closure.is_public_holiday


def test_alsace_moselle_adds_good_friday_and_saint_stephen_named_in_english(db, settings):
    settings.LANGUAGE_CODE = "en"
    run("--years", "2027", "--subdiv", "57")
    days = holidays_of(2027)
    assert len(days) == 13
    assert days[date(2027, 3, 26)] == "Good Friday"
    assert days[date(2027, 12, 26)] == "Saint Stephen's Day"


def test_an_unknown_region_is_a_clear_error(db):
    with pytest.raises(Exception, match="unknown region '99'"):
        run("--years", "2027", "--subdiv", "99")
    assert not Closure.objects.exists()


def test_running_again_adds_nothing_and_a_deleted_holiday_stays_deleted(db):
    run("--years", "2027")
    Closure.objects.filter(start_date=date(2027, 5, 17)).delete()  # the campus opens that day
    assert "0 closure(s) added" in run("--years", "2027")
    assert jobs.add_public_holidays([2027]) == []
    assert date(2027, 5, 17) not in holidays_of(2027) and len(holidays_of(2027)) == 10
    restored = run("--years", "2027", "--restore")
    assert "2027-05-17" in restored and "1 closure(s) added" in restored
    assert "0 closure(s) added" in run("--years", "2027", "--restore")
    assert len(holidays_of(2027)) == 11


def test_a_day_already_closed_as_a_holiday_is_not_added_twice(db):
    Closure.objects.create(
        name="Christmas week",
        start_date=date(2027, 12, 24),
        end_date=date(2027, 12, 31),
        is_public_holiday=True,
    )
    jobs.add_public_holidays([2027])
    assert Closure.objects.filter(start_date=date(2027, 12, 25)).count() == 0
    assert Closure.objects.count() == 1 + 10


def test_the_yearly_job_keeps_this_year_and_next_covered(db, settings):
    now = datetime(2026, 12, 31, 23, 30, tzinfo=PARIS)  # 22:30 UTC: still 2026 in Paris
    added = jobs.cover_public_holidays(now)
    assert {c.start_date.year for c in added} == {2026, 2027} and len(added) == 22
    assert jobs.cover_public_holidays(now) == []
    assert jobs.run_due(now)["public_holidays"] == 0
    new_year = jobs.cover_public_holidays(now + timedelta(hours=1))
    assert {c.start_date.year for c in new_year} == {2028}
    settings.PUBLIC_HOLIDAYS_SUBDIV = "57"  # the region's own days, nothing twice
    regional = jobs.cover_public_holidays(now + timedelta(hours=1))
    assert sorted(c.start_date for c in regional) == [
        date(2027, 3, 26),
        date(2027, 12, 26),
        date(2028, 4, 14),
        date(2028, 12, 26),
    ]
    assert Closure.objects.filter(start_date=date(2027, 12, 25)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_several_instances_at_once_add_each_holiday_once():
    results = race(4, lambda i: len(jobs.add_public_holidays([2027])))
    assert sorted(value for _kind, value in results) == [0, 0, 0, 11], results
    assert Closure.objects.count() == 11
    assert PublicHolidayYear.objects.count() == 1


def test_the_demo_closes_the_public_holidays(db):
    demo.build()
    demo.build()
    this_year = timezone.localdate().year
    assert date(this_year, 12, 25) in holidays_of(this_year)
    assert date(this_year + 1, 1, 1) in holidays_of(this_year + 1)
    assert Closure.objects.filter(start_date=date(this_year, 12, 25)).count() == 1
    assert BookingPolicy.objects.filter(closed_on_public_holidays=True).exists()


def body(resource, start, end):
    return {"resource_id": resource.pk, "start": start.isoformat(), "end": end.isoformat()}


def local(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=PARIS)


@pytest.mark.parametrize("month, day", [(12, 25), (1, 1)])
def test_the_api_refuses_a_public_holiday_as_closed(as_bob, room, open_every_day, month, day):
    run()
    holiday = next_day(month, day)
    response = as_bob.post(
        "/api/v1/bookings", body(room, local(holiday, 10), local(holiday, 11)), content_type=JSON
    )
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "closed"
    workday = as_bob.post(
        "/api/v1/bookings",
        body(room, local(holiday + timedelta(days=1), 10), local(holiday + timedelta(days=1), 11)),
        content_type=JSON,
    )
    assert workday.status_code == 201, workday.content


def test_the_portal_refuses_a_public_holiday_as_closed(bob, room, open_every_day):
    run()
    christmas = next_day(12, 25)
    response = signed_in(bob).post(
        "/book/",
        {
            "date": christmas.isoformat(),
            "start": "10:00",
            "end": "11:00",
            "capacity": "2",
            "resource": room.pk,
        },
    )
    assert response.status_code == 422
    assert "The building is closed that day." in response.content.decode()
    assert not Booking.objects.exists()


def test_a_policy_open_on_public_holidays_books_them(as_bob, room, open_every_day):
    run()
    open_every_day.closed_on_public_holidays = False
    open_every_day.save()
    christmas = next_day(12, 25)
    response = as_bob.post(
        "/api/v1/bookings",
        body(room, local(christmas, 10), local(christmas, 11)),
        content_type=JSON,
    )
    assert response.status_code == 201, response.content


def test_staff_skip_the_calendar_rules_closures_included(as_sam, room, open_every_day):
    """As docs/design.md says: facility staff skip the calendar rules (not conflicts, not
    qualifications); a closure is a calendar rule."""
    run()
    christmas = next_day(12, 25)
    response = as_sam.post(
        "/api/v1/bookings",
        body(room, local(christmas, 10), local(christmas, 11)),
        content_type=JSON,
    )
    assert response.status_code == 201, response.content
