"""The equipment pages: each machine with my qualification (valid until, expired, none, by
the labs rule), its next free slots, booking through the engine, and reporting a problem
through labs.maintenance like the API."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from bookings import engine
from bookings.engine import Slot, book
from bookings.models import Booking
from labs import maintenance
from labs.models import Incident
from tests.labs.conftest import (  # noqa: F401
    chamber,
    control_room,
    equipment_policy,
    lab_policy,
    printer,
    qualify,
    scope,
)
from tests.portal.conftest import signed_in, tomorrow


@pytest.fixture
def machines(campus, equipment_policy, lab_policy, printer, scope):  # noqa: F811
    lab_policy.opening_hours = []  # the portal runs on the real clock: open every day
    lab_policy.save()
    return {"printer": printer, "scope": scope}


def booking_form(start="10:00", end="12:00", **extra):
    return {"date": tomorrow(10).date().isoformat(), "start": start, "end": end, **extra}


def test_the_list_shows_each_machine_with_my_qualification_and_next_free_slot(bob, machines):
    now = timezone.now()
    qualify(
        bob, machines["printer"], since=now - timedelta(days=10), until=now + timedelta(days=60)
    )
    qualify(bob, cls="oscilloscope", since=now - timedelta(days=400), until=now - timedelta(days=5))
    response = signed_in(bob).get("/equipment/")
    assert response.status_code == 200
    rows = {eq.resource.code: eq for eq in response.context["machines"]}
    assert rows["EQ-3D-1"].standing.state == "valid"
    assert rows["EQ-OSC-1"].standing.state == "expired"
    body = response.content.decode()
    until = timezone.localtime(now + timedelta(days=60))
    assert f"valid until {until.day} {until:%B} {until.year}" in body
    assert "Qualification expired" in body and "Next free:" in body
    assert "State: available" in body


def test_someone_never_trained_reads_not_qualified(charlie, machines):
    body = signed_in(charlie).get("/equipment/").content.decode()
    assert body.count("Not qualified") == 2


def test_booking_a_machine_goes_through_the_engine(bob, machines):
    machine = machines["printer"]
    qualify(bob, machine, since=timezone.now() - timedelta(days=1))
    client = signed_in(bob)
    page = client.get(f"/equipment/{machine.pk}/?date={tomorrow(10).date()}")
    assert page.status_code == 200 and "Free slots" in page.content.decode()
    assert page.context["slots"]  # free_slots of that day
    with mock.patch.object(engine, "book", wraps=engine.book) as spy:
        response = client.post(
            f"/equipment/{machine.pk}/",
            booking_form(
                end="09:00", end_date=(tomorrow(10) + timedelta(days=1)).date(), title="Run"
            ),
            follow=True,
        )
    assert spy.call_count == 1
    booking = Booking.objects.get()
    assert (booking.resource, booking.start, booking.end) == (
        machine.resource,
        tomorrow(10),
        tomorrow(9, days=2),
    )
    assert "Booked: 3D printer on" in response.content.decode()


def test_without_qualification_the_refusal_is_explained_and_the_form_kept(charlie, machines):
    response = signed_in(charlie).post(
        f"/equipment/{machines['scope'].pk}/", booking_form(title="Kept title")
    )
    assert response.status_code == 403  # the engine's NotAllowed (not_qualified)
    body = response.content.decode()
    assert "Not booked:" in body and "qualif" in body.lower()
    assert 'value="Kept title"' in body and 'value="12:00"' in body
    assert not Booking.objects.exists()


def test_a_taken_machine_offers_the_next_slot_and_the_waiting_list(bob, charlie, machines):
    machine = machines["printer"]
    for person in (bob, charlie):
        qualify(person, machine, since=timezone.now() - timedelta(days=1))
    book(charlie, Slot(machine.resource, tomorrow(10), tomorrow(12)))
    response = signed_in(bob).post(f"/equipment/{machine.pk}/", booking_form("11:00", "13:00"))
    assert response.status_code == 409
    body = response.content.decode()
    assert "EQ-3D-1 is already booked from" in body and "is next free on" in body
    assert "Notify me if it frees up" in body


def test_an_invalid_booking_form_shows_errors_next_to_the_fields(bob, machines):
    response = signed_in(bob).post(
        f"/equipment/{machines['printer'].pk}/", booking_form("12:00", "10:00")
    )
    assert response.status_code == 422
    assert 'aria-describedby="id_end_error"' in response.content.decode()


def test_an_inactive_machine_is_not_found(bob, machines):
    machine = machines["printer"]
    machine.resource.is_active = False
    machine.resource.save()
    assert signed_in(bob).get(f"/equipment/{machine.pk}/").status_code == 404
    assert signed_in(bob).get("/equipment/999999/incident/").status_code == 404


def test_reporting_a_problem_goes_through_labs_maintenance(charlie, machines):
    machine = machines["scope"]
    client = signed_in(charlie)
    assert "What happened?" in client.get(f"/equipment/{machine.pk}/incident/").content.decode()
    with mock.patch.object(
        maintenance, "report_incident", wraps=maintenance.report_incident
    ) as spy:
        response = client.post(
            f"/equipment/{machine.pk}/incident/",
            {"severity": "out_of_order", "description": "No trace on channel 2"},
            follow=True,
        )
    assert spy.call_count == 1
    incident = Incident.objects.get()
    assert (incident.reported_by, incident.tenant, incident.severity) == (
        charlie,
        charlie.tenant,
        "out_of_order",
    )
    machine.refresh_from_db()
    assert machine.status == "out_of_order"
    body = response.content.decode()
    assert f"problem #{incident.pk} reported" in body and "State: out of order" in body


def test_an_incomplete_report_keeps_what_was_typed(charlie, machines):
    response = signed_in(charlie).post(
        f"/equipment/{machines['scope'].pk}/incident/", {"description": "Smoke"}
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "Smoke" in body and 'id="id_severity_error"' in body
    assert not Incident.objects.exists()
