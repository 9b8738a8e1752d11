"""Who may approve or reject a booking request: one rule (`engine.require_may_approve`),
asked by `engine.approve` and `engine.reject` themselves, so that the API, the approvals page
and the admin's actions obey it alike."""

import pytest

from bookings import engine
from bookings.engine import Slot, book
from bookings.models import Booking, Resource
from campus.models import Person
from common.errors import Forbidden
from tests.bookings.conftest import NOW, at


def someone(tenant=None, **roles) -> Person:
    return Person(email="x@test", first_name="X", last_name="Test", tenant_id=tenant, **roles)


def request_for(kind: str) -> Booking:
    return Booking(resource=Resource(code="R", name="R", kind=kind), tenant_id=2)


@pytest.mark.parametrize(
    ("actor", "room", "equipment"),
    [
        (someone(is_facility_staff=True), True, True),
        (someone(is_superuser=True), True, True),
        (someone(is_lab_technician=True), False, True),
        (someone(2, is_tenant_admin=True), False, False),
        (someone(2), False, False),
        (someone(is_facility_staff=True, is_active=False), False, False),
    ],
    ids=["staff", "superuser", "technician", "tenant admin", "member", "inactive staff"],
)
def test_who_may_decide_a_request(actor, room, equipment):
    for kind, expected in (("meeting_room", room), ("equipment", equipment)):
        try:
            engine.require_may_approve(actor, request_for(kind))
        except Forbidden as e:
            assert e.code == "staff_only"
            assert not expected, kind
        else:
            assert expected, kind


def test_the_engine_refuses_an_approval_or_rejection_the_rule_forbids(bob, tina, auditorium):
    request = book(bob, Slot(auditorium, at(10, 14), at(10, 16)), now=NOW)
    with pytest.raises(Forbidden):
        engine.approve(tina, request, now=NOW)
    with pytest.raises(Forbidden):
        engine.reject(tina, request)
    request.refresh_from_db()
    assert request.status == "pending"


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_technician_cannot_decide_a_room_request_from_the_admin(
    client, bob, tina, auditorium, action
):
    request = book(bob, Slot(auditorium, at(10, 14), at(10, 16)), now=NOW)
    client.force_login(tina)  # a technician opens the admin and sees the bookings
    client.post("/admin/bookings/booking/", {"action": action, "_selected_action": [request.pk]})
    request.refresh_from_db()
    assert (request.status, request.decided_by_id) == ("pending", None)
