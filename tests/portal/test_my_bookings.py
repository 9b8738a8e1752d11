"""My bookings: upcoming and past, the company's for a tenant admin, cancel and check in
through the engine, and nothing of another tenant's (404)."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db.models import F
from django.test import Client
from django.utils import timezone

from bookings import engine
from bookings.engine import Slot, book
from bookings.models import Booking
from tests.portal.conftest import signed_in, tomorrow


def listed(response, section="upcoming") -> list[int]:
    return [b.pk for b in response.context[section]]


@pytest.fixture
def alices_booking(alice, rooms):
    return book(alice, Slot(rooms["maine"], tomorrow(14), tomorrow(15), "Board"))


@pytest.fixture
def soon(bob, rooms):
    """A booking of Bob's starting within the quarter-hour: check-in is open."""
    now = timezone.localtime()
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=15 - now.minute % 15)
    return book(bob, Slot(rooms["loire"], start, start + timedelta(hours=1)))


def test_people_see_their_upcoming_bookings_with_the_status_in_words(bob, bobs_booking):
    response = signed_in(bob).get("/bookings/")
    assert response.status_code == 200
    assert listed(response) == [bobs_booking.pk]
    body = response.content.decode()
    assert "Status: confirmed" in body and "Salle Loire" in body
    assert f'href="/bookings/{bobs_booking.pk}/cancel/"' in body


def test_past_bookings_are_listed_apart(bob, bobs_booking):
    three_days = timedelta(days=3)
    Booking.objects.filter(pk=bobs_booking.pk).update(
        start=F("start") - three_days,
        end=F("end") - three_days,
        blocked_start=F("blocked_start") - three_days,
        blocked_end=F("blocked_end") - three_days,
    )
    response = signed_in(bob).get("/bookings/")
    assert listed(response) == [] and listed(response, "past") == [bobs_booking.pk]


def test_a_member_sees_only_their_own(bob, alices_booking, bobs_booking):
    response = signed_in(bob).get("/bookings/?scope=company")
    assert listed(response) == [bobs_booking.pk]


def test_a_tenant_admin_may_list_the_company_bookings(alice, alices_booking, bobs_booking):
    client = signed_in(alice)
    assert listed(client.get("/bookings/")) == [alices_booking.pk]
    company = client.get("/bookings/?scope=company")
    assert listed(company) == [bobs_booking.pk, alices_booking.pk]
    assert "Booked by Bob Test" in company.content.decode()


def test_another_tenant_sees_nothing_of_acme(charlie, alices_booking, bobs_booking):
    client = signed_in(charlie)
    assert listed(client.get("/bookings/")) == []
    assert client.get(f"/bookings/{bobs_booking.pk}/cancel/").status_code == 404
    for action in ("cancel", "check-in"):
        assert client.post(f"/bookings/{bobs_booking.pk}/{action}/").status_code == 404
    bobs_booking.refresh_from_db()
    assert bobs_booking.status == "confirmed"


def test_cancelling_asks_for_confirmation_first(bob, bobs_booking):
    response = signed_in(bob).get(f"/bookings/{bobs_booking.pk}/cancel/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Cancel this booking?" in body and "Yes, cancel the booking" in body
    assert "Cancelling is free up to 24 hours before the start" in body
    bobs_booking.refresh_from_db()
    assert bobs_booking.status == "confirmed"


def test_cancelling_goes_through_the_engine(bob, bobs_booking):
    client = signed_in(bob)
    with mock.patch.object(engine, "cancel", wraps=engine.cancel) as spy:
        response = client.post(
            f"/bookings/{bobs_booking.pk}/cancel/", {"reason": "Moved online"}, follow=True
        )
    assert spy.call_count == 1
    bobs_booking.refresh_from_db()
    assert bobs_booking.status == "cancelled" and bobs_booking.note == "Moved online"
    body = response.content.decode()
    assert "Cancelled: Salle Loire on" in body and "Status: cancelled" in body


def test_cancelling_twice_is_a_message_not_an_error_page(bob, bobs_booking):
    client = signed_in(bob)
    client.post(f"/bookings/{bobs_booking.pk}/cancel/")
    response = client.post(f"/bookings/{bobs_booking.pk}/cancel/", follow=True)
    assert response.status_code == 200
    assert "This booking is already cancelled." in response.content.decode()


def test_a_colleague_who_is_not_admin_may_not_cancel(bob, alices_booking):
    client = signed_in(bob)
    assert client.get(f"/bookings/{alices_booking.pk}/cancel/").status_code == 403
    assert client.post(f"/bookings/{alices_booking.pk}/cancel/").status_code == 403
    alices_booking.refresh_from_db()
    assert alices_booking.status == "confirmed"


def test_the_tenant_admin_may_cancel_a_colleagues_booking(alice, bobs_booking):
    response = signed_in(alice).post(f"/bookings/{bobs_booking.pk}/cancel/")
    assert response.status_code == 302
    bobs_booking.refresh_from_db()
    assert bobs_booking.status == "cancelled"


def test_check_in_is_offered_when_its_window_is_open(bob, soon, bobs_booking):
    client = signed_in(bob)
    body = client.get("/bookings/").content.decode()
    assert f'action="/bookings/{soon.pk}/check-in/"' in body
    assert f'action="/bookings/{bobs_booking.pk}/check-in/"' not in body
    with mock.patch.object(engine, "check_in", wraps=engine.check_in) as spy:
        response = client.post(f"/bookings/{soon.pk}/check-in/", follow=True)
    assert spy.call_count == 1
    soon.refresh_from_db()
    assert soon.status == "checked_in"
    assert "Checked in: Salle Loire" in response.content.decode()


def test_checking_in_too_early_is_explained(bob, bobs_booking):
    response = signed_in(bob).post(f"/bookings/{bobs_booking.pk}/check-in/", follow=True)
    assert "Check-in opens 15 minutes before the start." in response.content.decode()


def test_cancel_and_check_in_need_the_csrf_token(bob, bobs_booking):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    assert client.post(f"/bookings/{bobs_booking.pk}/cancel/").status_code == 403
    assert client.post(f"/bookings/{bobs_booking.pk}/check-in/").status_code == 403
    bobs_booking.refresh_from_db()
    assert bobs_booking.status == "confirmed"
