"""The staff console: the approvals queue and today's bookings, for facility staff only."""

from unittest import mock

import pytest
from django.test import Client

from bookings import engine
from bookings.engine import Slot, book
from tests.portal.conftest import signed_in, tomorrow


@pytest.fixture
def requests_(bob, charlie, auditorium, always_open):
    """Two competing requests for the auditorium tomorrow afternoon."""
    return [
        book(bob, Slot(auditorium, tomorrow(14), tomorrow(16), "Acme all-hands")),
        book(charlie, Slot(auditorium, tomorrow(15), tomorrow(17), "Globex launch")),
    ]


@pytest.mark.parametrize("url", ["/staff/approvals/", "/staff/today/"])
def test_the_staff_console_is_403_for_everyone_else(alice, bob, tina, url):
    for person in (alice, bob, tina):
        assert signed_in(person).get(url).status_code == 403


def test_decisions_are_403_for_everyone_else(alice, requests_):
    client = signed_in(alice)
    for action in ("approve", "reject"):
        response = client.post(f"/staff/approvals/{requests_[0].pk}/{action}/")
        assert response.status_code == 403
    requests_[0].refresh_from_db()
    assert requests_[0].status == "pending"


def test_the_queue_lists_pending_requests_and_their_competitors(sam, requests_):
    response = signed_in(sam).get("/staff/approvals/")
    assert response.status_code == 200
    assert [b.pk for b in response.context["pending"]] == [b.pk for b in requests_]
    body = response.content.decode()
    assert "2 requests awaiting approval." in body
    assert "Competes with 1 other request for this slot" in body
    assert "Booked by Bob Test · Acme" in body


def test_approving_goes_through_the_engine_and_rejects_the_competitor(sam, requests_):
    client = signed_in(sam)
    first, second = requests_
    with mock.patch.object(engine, "approve", wraps=engine.approve) as spy:
        response = client.post(f"/staff/approvals/{first.pk}/approve/", follow=True)
    assert spy.call_count == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.decided_by) == ("confirmed", sam)
    assert second.status == "rejected"
    body = response.content.decode()
    assert "Approved: Auditorium on" in body and "No request awaits approval." in body


def test_rejecting_keeps_the_reason(sam, requests_):
    client = signed_in(sam)
    with mock.patch.object(engine, "reject", wraps=engine.reject) as spy:
        client.post(f"/staff/approvals/{requests_[1].pk}/reject/", {"note": "Room closed"})
    assert spy.call_count == 1
    requests_[1].refresh_from_db()
    assert (requests_[1].status, requests_[1].note) == ("rejected", "Room closed")


def test_deciding_twice_is_a_message(sam, requests_):
    client = signed_in(sam)
    client.post(f"/staff/approvals/{requests_[0].pk}/approve/")
    response = client.post(f"/staff/approvals/{requests_[0].pk}/reject/", follow=True)
    assert "Only a pending booking can be rejected." in response.content.decode()


def test_decisions_need_the_csrf_token(sam, requests_):
    client = Client(enforce_csrf_checks=True)
    client.force_login(sam)
    assert client.post(f"/staff/approvals/{requests_[0].pk}/approve/").status_code == 403


def test_the_day_list_shows_every_booking_of_the_day(sam, requests_, bobs_booking):
    day = tomorrow(10).date().isoformat()
    response = signed_in(sam).get("/staff/today/", {"date": day})
    assert response.status_code == 200
    assert [b.pk for b in response.context["bookings"]] == [
        bobs_booking.pk,
        requests_[0].pk,
        requests_[1].pk,
    ]
    body = response.content.decode()
    assert "Status: awaiting approval" in body and "Booked by Charlie Test · Globex" in body
    assert signed_in(sam).get("/staff/today/").context["is_today"]
