"""Whoever books, the qualification that counts is the one of the person who will use the
machine: staff skip the calendar rules, never qualifications. Every path that books or
confirms for someone else: the admin's add and change forms, a move through the API by a
tenant admin or by staff, an approval, a waitlist offer."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from bookings import engine, waitlist
from bookings.engine import Slot, book
from bookings.models import Booking, BookingPolicy, WaitlistEntry
from bookings.policy import NotAllowed
from labs.models import Qualification
from tests.bookings.conftest import NOW, PARIS, at
from tests.labs.conftest import qualify

JSON = "application/json"


def tomorrow(hour, minute=0):
    day = timezone.localdate() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def admin_form(resource, person, start, end, **extra):
    start, end = start.astimezone(PARIS), end.astimezone(PARIS)
    return {
        "resource": resource.pk,
        "person": person.pk,
        "title": "",
        "attendees": 1,
        "start_0": f"{start:%Y-%m-%d}",
        "start_1": f"{start:%H:%M:%S}",
        "end_0": f"{end:%Y-%m-%d}",
        "end_1": f"{end:%H:%M:%S}",
        "note": "",
        **extra,
    }


# ------------------------------------------------------------------ the admin


def test_staff_book_in_the_admin_for_a_qualified_person_without_being_trained(
    client, sam, bob, scope
):
    qualify(bob, scope)
    client.force_login(sam)
    response = client.post(
        "/admin/bookings/booking/add/", admin_form(scope.resource, bob, at(3, 10), at(3, 11))
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    booking = Booking.objects.get()
    assert (booking.person, booking.resource, booking.status) == (bob, scope.resource, "confirmed")


def test_the_admin_refuses_a_booking_for_someone_untrained_even_by_trained_staff(
    client, sam, bob, scope
):
    qualify(sam, scope)  # the staff member's own training does not count for bob
    client.force_login(sam)
    response = client.post(
        "/admin/bookings/booking/add/", admin_form(scope.resource, bob, at(3, 10), at(3, 11))
    )
    assert response.status_code == 200  # the form again, with the refusal on it
    assert "The person booked holds no valid qualification" in response.content.decode()
    assert not Booking.objects.exists()


def test_moving_in_the_admin_checks_the_booked_persons_qualification(client, sam, bob, scope):
    qualify(bob, scope, until=at(3, 23, 59))
    qualify(sam, scope)
    booking = book(bob, Slot(scope.resource, at(3, 10), at(3, 11)), now=NOW)
    client.force_login(sam)
    form = admin_form(scope.resource, bob, at(4, 10), at(4, 11))
    response = client.post(f"/admin/bookings/booking/{booking.pk}/change/", form)
    assert response.status_code == 200
    assert "The person booked holds no valid qualification" in response.content.decode()
    booking.refresh_from_db()
    assert booking.start == at(3, 10)


def test_staff_move_a_booking_in_the_admin_within_the_booked_persons_training(
    client, sam, bob, scope
):
    qualify(bob, scope, until=at(5, 23, 59))
    booking = book(bob, Slot(scope.resource, at(3, 10), at(3, 11)), now=NOW)
    client.force_login(sam)
    form = admin_form(scope.resource, bob, at(4, 10), at(4, 11))
    response = client.post(f"/admin/bookings/booking/{booking.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-2000:]
    booking.refresh_from_db()
    assert booking.start == at(4, 10)


# ------------------------------------------------------------------ the API


@pytest.fixture
def bobs_print(bob, printer):
    """bob's booking of the 3D printer tomorrow 10–11; his training ends tomorrow at noon."""
    qualify(bob, printer, until=tomorrow(12))
    return book(bob, Slot(printer.resource, tomorrow(10), tomorrow(11)))


def move(client, booking, start, end):
    return client.patch(
        f"/api/v1/bookings/{booking.pk}",
        {"start": start.isoformat(), "end": end.isoformat()},
        content_type=JSON,
    )


def test_a_tenant_admin_moving_a_colleagues_booking_needs_the_colleague_qualified(
    as_alice, alice, printer, bobs_print
):
    qualify(alice, printer)
    response = move(as_alice, bobs_print, tomorrow(14), tomorrow(15))
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "not_qualified"
    within = move(as_alice, bobs_print, tomorrow(11), tomorrow(12))
    assert within.status_code == 200, within.content


def test_staff_moving_through_the_api_need_the_booked_person_qualified(
    as_sam, sam, printer, bobs_print
):
    qualify(sam, printer)
    response = move(as_sam, bobs_print, tomorrow(14), tomorrow(15))
    assert response.status_code == 403 and response.json()["code"] == "not_qualified"
    Qualification.objects.filter(person__email="bob@acme.test").update(valid_until=None)
    assert move(as_sam, bobs_print, tomorrow(14), tomorrow(15)).status_code == 200


# ------------------------------------------------------------------ approvals and waitlist


@pytest.fixture
def assisted_printer(printer):
    """The printer with a technician approving each booking."""
    printer.resource.policy = BookingPolicy.objects.create(
        name="Assisted", approval_required=True, opening_hours=[], max_advance_days=365
    )
    printer.resource.save()
    return printer


def test_approving_a_request_of_someone_no_longer_qualified_is_refused(
    as_sam, sam, bob, assisted_printer
):
    training = qualify(bob, assisted_printer)
    qualify(sam, assisted_printer)
    request = book(bob, Slot(assisted_printer.resource, tomorrow(10), tomorrow(11)))
    assert request.status == "pending"
    Qualification.objects.filter(pk=training.pk).update(revoked_at=timezone.now())
    response = as_sam.post(f"/api/v1/bookings/{request.pk}/approve")
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "not_qualified"
    request.refresh_from_db()
    assert request.status == "pending"
    with pytest.raises(NotAllowed):
        engine.approve(sam, request)


def test_a_freed_machine_slot_is_offered_to_the_first_qualified_person_in_line(
    bob, charlie, alice, printer, django_capture_on_commit_callbacks
):
    qualify(bob, printer)
    qualify(alice, printer)
    taken = book(alice, Slot(printer.resource, at(3, 10), at(3, 11)), now=NOW)
    for person in (charlie, bob):  # charlie queued first, but holds no training
        waitlist.join(person, printer.resource, at(3, 10), at(3, 11), now=NOW)
    with django_capture_on_commit_callbacks(execute=True):
        engine.cancel(alice, taken, now=NOW)
    offered = WaitlistEntry.objects.get(state="offered")
    assert offered.person == bob
    assert WaitlistEntry.objects.get(person=charlie).state == "waiting"
