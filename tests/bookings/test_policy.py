"""Each booking-policy rule, as a pure function: no database, the clock passed in."""

from datetime import date, timedelta

import pytest

from bookings.models import BookingPolicy, WhoMayBook
from bookings.policy import NotAllowed, PolicyRefused, Request, Requester, check
from tests.bookings.conftest import NOW, PARIS, WEEKDAYS_8_TO_20, at

MEMBER = Requester(runs_facility=False, has_tenant=True, tenant_active=True, qualified=False)
STAFF = Requester(runs_facility=True, has_tenant=False, tenant_active=True, qualified=False)


def policy(**overrides):
    values = dict(
        name="p",
        opening_hours=WEEKDAYS_8_TO_20,
        slot_minutes=15,
        min_duration_minutes=30,
        max_duration_minutes=240,
        min_notice_minutes=60,
        max_advance_days=30,
        who_may_book=WhoMayBook.TENANT_MEMBERS,
    )
    values.update(overrides)
    return BookingPolicy(**values)


def request(start, end, attendees=1, capacity=10):
    return Request(start=start, end=end, attendees=attendees, capacity=capacity)


OK = request(at(3, 10), at(3, 11))


def test_a_request_within_every_rule_passes():
    check(policy(), OK, MEMBER, NOW, PARIS)


@pytest.mark.parametrize(
    ("pol", "req", "who", "closed", "code"),
    [
        (policy(), request(at(3, 11), at(3, 10)), MEMBER, (), "invalid_period"),
        (policy(), request(at(3, 10), at(3, 11), attendees=12), MEMBER, (), "over_capacity"),
        (policy(who_may_book="qualified"), OK, MEMBER, (), "not_qualified"),
        (policy(who_may_book="staff"), OK, MEMBER, (), "not_authorized"),
        (policy(), OK, Requester(False, False, True, False), (), "not_authorized"),
        (policy(), OK, Requester(False, True, False, False), (), "tenant_suspended"),
        (policy(), request(at(1, 10), at(1, 11)), MEMBER, (), "in_the_past"),
        (policy(), request(at(3, 10), at(3, 10, 15)), MEMBER, (), "too_short"),
        (policy(), request(at(3, 10), at(3, 15)), MEMBER, (), "too_long"),
        (policy(), request(at(3, 10, 5), at(3, 11, 5)), MEMBER, (), "not_aligned"),
        (policy(), request(at(2, 8, 30), at(2, 9, 30)), MEMBER, (), "too_late"),
        (policy(), request(at(3, 10, month=5), at(3, 11, month=5)), MEMBER, (), "too_far_ahead"),
        (policy(), OK, MEMBER, (date(2026, 3, 3),), "closed"),
        (policy(), request(at(3, 19), at(3, 21)), MEMBER, (), "outside_opening_hours"),
        (policy(), request(at(7, 10), at(7, 11)), MEMBER, (), "outside_opening_hours"),
    ],
)
def test_each_rule_refuses_with_its_code(pol, req, who, closed, code):
    with pytest.raises((PolicyRefused, NotAllowed)) as refused:
        check(pol, req, who, NOW, PARIS, frozenset(closed))
    assert refused.value.code == code


def test_staff_skip_calendar_rules_but_not_qualification():
    late_night = request(at(7, 22), at(7, 23, 55))
    check(policy(), late_night, STAFF, NOW, PARIS)
    with pytest.raises(NotAllowed) as refused:
        check(policy(), OK, STAFF, NOW, PARIS, qualification_required=True)
    assert refused.value.code == "not_qualified"


def test_a_qualified_person_may_book_a_qualified_only_resource():
    qualified = Requester(runs_facility=False, has_tenant=True, tenant_active=True, qualified=True)
    check(policy(who_may_book="qualified"), OK, qualified, NOW, PARIS)


def test_an_always_open_policy_accepts_a_night_booking():
    check(
        policy(opening_hours=[], min_notice_minutes=0),
        request(at(7, 22), at(8, 0)),
        MEMBER,
        NOW,
        PARIS,
    )


def test_a_booking_ending_at_midnight_fits_a_schedule_open_until_midnight():
    hours = [[d, "08:00", "24:00"] for d in range(1, 8)]
    check(policy(opening_hours=hours), request(at(3, 22), at(4, 0)), MEMBER, NOW, PARIS)


def test_alignment_is_in_local_time_across_a_dst_change():
    # 29 March 2026: clocks go forward; 10:00 local is still on the 15-minute grid.
    start = at(30, 10)
    check(
        policy(max_advance_days=60), request(start, start + timedelta(hours=1)), MEMBER, NOW, PARIS
    )
