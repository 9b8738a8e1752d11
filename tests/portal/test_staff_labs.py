"""The lab pages of the staff console: equipment and maintenance windows, qualifications,
incidents. Lab technicians and facility staff only; every action goes through labs.maintenance.
"""

from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from bookings.engine import Slot, book
from bookings.models import Booking
from labs import maintenance
from labs.models import Equipment, Incident, Qualification
from tests.labs import conftest as labs
from tests.labs.conftest import qualify
from tests.portal.conftest import signed_in, tomorrow

# the labs tests' machines, as fixtures here
chamber, control_room, scope = labs.chamber, labs.control_room, labs.scope
equipment_policy, lab_policy = labs.equipment_policy, labs.lab_policy

LAB_PAGES = ["/staff/", "/staff/equipment/", "/staff/qualifications/", "/staff/incidents/"]


@pytest.fixture
def bobs_scope_booking(bob, scope):
    qualify(bob, scope, since=timezone.now() - timedelta(days=1))
    return book(bob, Slot(scope.resource, tomorrow(10), tomorrow(12), "Bob's measurements"))


@pytest.mark.parametrize("url", LAB_PAGES)
def test_the_lab_pages_are_403_for_tenants(alice, bob, scope, url):
    for person in (alice, bob):
        assert signed_in(person).get(url).status_code == 403


@pytest.mark.parametrize("url", LAB_PAGES)
def test_lab_technicians_and_staff_open_the_lab_pages(sam, tina, scope, url):
    for person in (sam, tina):
        assert signed_in(person).get(url).status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(scope):
    response = Client().get("/staff/equipment/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_technician_sees_only_the_lab_sections_of_the_console(tina, sam):
    body = signed_in(tina).get("/staff/").content.decode()
    assert "Qualifications" in body and "Lockdown" not in body and "Approvals" not in body
    body = signed_in(sam).get("/staff/").content.decode()
    assert "Lockdown" in body and "Approvals" in body


def test_the_equipment_list_shows_status_in_words_and_filters(tina, scope, chamber):
    maintenance.set_status(chamber, "out_of_order", by=tina, reason="Broken door seal")
    client = signed_in(tina)
    body = client.get("/staff/equipment/").content.decode()
    assert "Oscilloscope 1" in body and "EMC chamber" in body and "Out of order" in body
    only = client.get("/staff/equipment/", {"status": "out_of_order"}).context["rows"]
    assert [e.pk for e in only] == [chamber.pk]


def test_the_detail_shows_the_status_history(tina, chamber):
    maintenance.set_status(chamber, "out_of_order", by=tina, reason="Broken door seal")
    body = signed_in(tina).get(f"/staff/equipment/{chamber.pk}/").content.decode()
    assert "Broken door seal" in body and "Tina Test" in body


def window_form(**extra):
    day = tomorrow(8).date().isoformat()
    return {
        "start_date": day,
        "start_time": "09:00",
        "end_date": day,
        "end_time": "13:00",
        "title": "Calibration",
        **extra,
    }


def test_a_maintenance_preview_lists_the_bookings_it_would_cancel_and_changes_nothing(
    tina,
    scope,
    bobs_scope_booking,
):
    with mock.patch.object(maintenance, "schedule_maintenance") as spy:
        response = signed_in(tina).post(
            f"/staff/equipment/{scope.pk}/maintenance/", window_form(step="preview")
        )
    assert response.status_code == 200 and spy.call_count == 0
    assert [b.pk for b in response.context["affected"]] == [bobs_scope_booking.pk]
    body = response.content.decode()
    assert "1 booking will be cancelled free of charge" in body and "Bob Test (Acme)" in body
    assert "Book the window and cancel 1 booking" in body
    bobs_scope_booking.refresh_from_db()
    assert bobs_scope_booking.status == "confirmed"
    assert not Booking.objects.filter(is_maintenance=True).exists()


def test_confirming_books_the_window_through_labs_and_cancels_the_booking(
    tina,
    scope,
    bobs_scope_booking,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    client = signed_in(tina)
    spy = mock.patch.object(
        maintenance, "schedule_maintenance", wraps=maintenance.schedule_maintenance
    )
    with spy as spy, django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/staff/equipment/{scope.pk}/maintenance/", window_form(step="confirm"), follow=True
        )
    assert spy.call_count == 1
    bobs_scope_booking.refresh_from_db()
    assert bobs_scope_booking.status == "cancelled" and bobs_scope_booking.charge_cents == 0
    window = Booking.objects.get(is_maintenance=True)
    assert (window.start, window.end, window.title) == (tomorrow(9), tomorrow(13), "Calibration")
    assert "1 booking(s) cancelled free of charge" in response.content.decode()
    told = [m.to for m in mailoutbox if m.subject.startswith("Maintenance")]
    assert told == [["bob@acme.test"]]


def test_a_window_that_ends_before_it_starts_is_an_error_next_to_the_field(tina, scope):
    response = signed_in(tina).post(
        f"/staff/equipment/{scope.pk}/maintenance/",
        window_form(step="preview", end_time="08:00"),
    )
    assert response.status_code == 422
    assert response.context["form"].errors["end_time"] == ["The window must end after it starts."]
    body = response.content.decode()
    assert 'aria-invalid="true"' in body and 'value="Calibration"' in body


def test_a_refusal_of_the_engine_is_shown_with_the_form(tina, sam, scope):
    maintenance.schedule_maintenance(sam, scope, tomorrow(8), tomorrow(14))
    response = signed_in(tina).post(
        f"/staff/equipment/{scope.pk}/maintenance/", window_form(step="confirm")
    )
    assert response.status_code == 409
    assert "Not scheduled:" in response.content.decode()
    assert Booking.objects.filter(is_maintenance=True).count() == 1


def test_tenants_cannot_schedule_maintenance(bob, scope):
    response = signed_in(bob).post(
        f"/staff/equipment/{scope.pk}/maintenance/", window_form(step="confirm")
    )
    assert response.status_code == 403
    assert not Booking.objects.exists()


def test_maintenance_needs_the_csrf_token(tina, scope):
    client = Client(enforce_csrf_checks=True)
    client.force_login(tina)
    url = f"/staff/equipment/{scope.pk}/maintenance/"
    assert client.post(url, window_form(step="confirm")).status_code == 403


def test_a_technician_records_a_training_through_labs(tina, bob, scope):
    client = signed_in(tina)
    with mock.patch.object(
        maintenance, "record_training", wraps=maintenance.record_training
    ) as spy:
        response = client.post(
            "/staff/qualifications/",
            {"person": "BOB@acme.test", "equipment": scope.pk, "valid_until": "2099-12-31"},
            follow=True,
        )
    assert spy.call_count == 1
    q = Qualification.objects.get()
    assert (q.person, q.equipment, q.trained_by) == (bob, scope, tina)
    assert timezone.localtime(q.valid_until).strftime("%Y-%m-%d %H:%M") == "2099-12-31 23:59"
    assert "Training recorded" in response.content.decode()
    assert [r.pk for r in response.context["page"].object_list] == [q.pk]


def test_a_training_needs_one_machine_or_one_class_and_a_known_person(tina, scope):
    response = signed_in(tina).post(
        "/staff/qualifications/",
        {"person": "nobody@example.test", "equipment": scope.pk, "equipment_class": "oscilloscope"},
    )
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert errors["person"] == ["Nobody has this e-mail address."]
    assert errors["equipment"] == ["Choose one machine or one class, not both."]
    assert 'value="nobody@example.test"' in response.content.decode()
    assert not Qualification.objects.exists()


def test_the_model_rules_of_a_training_come_back_next_to_the_form(tina, bob, scope):
    response = signed_in(tina).post(
        "/staff/qualifications/",
        {"person": bob.email, "equipment_class": "oscilloscope", "valid_until": "2001-01-01"},
    )
    assert response.status_code == 422
    assert "A qualification must end after it starts." in response.content.decode()
    assert not Qualification.objects.exists()


def test_revoking_goes_through_labs_and_twice_is_a_message(tina, bob, scope):
    q = qualify(bob, scope, since=timezone.now() - timedelta(days=3))
    client = signed_in(tina)
    with mock.patch.object(
        maintenance, "revoke_qualification", wraps=maintenance.revoke_qualification
    ) as spy:
        client.post(f"/staff/qualifications/{q.pk}/revoke/", {"step": "confirm"})
    assert spy.call_count == 1
    q.refresh_from_db()
    assert q.revoked_by == tina and q.revoked_at is not None
    for step in ("confirm", "preview"):
        response = client.post(f"/staff/qualifications/{q.pk}/revoke/", {"step": step}, follow=True)
        assert "This qualification is already revoked." in response.content.decode()


def test_the_revocation_page_lists_the_bookings_it_affects_before_revoking(
    tina, bob, alice, scope, bobs_scope_booking
):
    qualify(alice, scope, since=timezone.now() - timedelta(days=1))
    book(alice, Slot(scope.resource, tomorrow(14), tomorrow(16), "Alice's run"))
    q = Qualification.objects.get(person=bob)
    client = signed_in(tina)
    preview = client.post(
        f"/staff/qualifications/{q.pk}/revoke/", {"next": "/staff/qualifications/?q=bob"}
    )
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "Confirm the revocation" in body and "1 future booking will have no valid" in body
    assert "Oscilloscope 1" in body and "cancelled on" in body
    assert "Revoke and flag 1 booking" in body and 'value="/staff/qualifications/?q=bob"' in body
    assert [b.pk for b in preview.context["affected"]] == [bobs_scope_booking.pk]
    q.refresh_from_db()
    assert q.revoked_at is None  # nothing happens before the confirmation
    assert Booking.objects.filter(unqualified_at__isnull=False).count() == 0
    done = client.post(
        f"/staff/qualifications/{q.pk}/revoke/",
        {"step": "confirm", "next": "/staff/qualifications/?q=bob"},
        follow=True,
    )
    assert done.redirect_chain[-1][0] == "/staff/qualifications/?q=bob"
    assert "1 booking is flagged" in done.content.decode()
    flagged = Booking.objects.get(unqualified_at__isnull=False)
    assert flagged.pk == bobs_scope_booking.pk and flagged.status == "confirmed"


def test_a_revocation_that_affects_nothing_says_so(tina, bob, scope):
    q = qualify(bob, scope, since=timezone.now() - timedelta(days=3))
    body = signed_in(tina).post(f"/staff/qualifications/{q.pk}/revoke/").content.decode()
    assert "No future booking depends on this qualification." in body


def test_the_equipment_pages_show_the_bookings_without_a_valid_qualification(
    tina, bob, scope, bobs_scope_booking
):
    maintenance.revoke_qualification(tina, Qualification.objects.get(person=bob))
    client = signed_in(tina)
    [row] = client.get("/staff/equipment/").context["rows"]
    assert row.unqualified == 1
    detail = client.get(f"/staff/equipment/{scope.pk}/")
    assert [b.pk for b in detail.context["unqualified"]] == [bobs_scope_booking.pk]
    assert "Bookings without a valid qualification" in detail.content.decode()
    assert "Bob Test (Acme)" in detail.content.decode()


def test_my_bookings_show_the_flag_to_the_booker(tina, bob, scope, bobs_scope_booking):
    maintenance.revoke_qualification(tina, Qualification.objects.get(person=bob))
    body = signed_in(bob).get("/bookings/").content.decode()
    assert f'id="booking-{bobs_scope_booking.pk}-unqualified"' in body
    assert "It will be cancelled free of charge on" in body


def test_the_list_shows_trainings_in_force_by_default(tina, bob, alice, scope):
    live = qualify(bob, scope, since=timezone.now() - timedelta(days=3))
    old = qualify(alice, scope, since=timezone.now() - timedelta(days=90))
    Qualification.objects.filter(pk=old.pk).update(valid_until=timezone.now() - timedelta(days=1))
    client = signed_in(tina)
    shown = client.get("/staff/qualifications/").context["page"].object_list
    assert [q.pk for q in shown] == [live.pk]
    shown = client.get("/staff/qualifications/", {"state": "not_in_force"}).context["page"]
    assert [q.pk for q in shown.object_list] == [old.pk]
    shown = client.get("/staff/qualifications/", {"state": "all", "q": "alice"}).context["page"]
    assert [q.pk for q in shown.object_list] == [old.pk]


def test_closing_an_incident_goes_through_labs_and_settles_the_machine(charlie, tina, scope):
    incident = maintenance.report_incident(charlie, scope, "out_of_order", "Screen is black")
    client = signed_in(tina)
    body = client.get("/staff/incidents/").content.decode()
    assert "Screen is black" in body and "Out of order" in body
    with mock.patch.object(maintenance, "close_incident", wraps=maintenance.close_incident) as spy:
        response = client.post(
            f"/staff/incidents/{incident.pk}/close/", {"resolution": "Cable reseated"}, follow=True
        )
    assert spy.call_count == 1
    incident.refresh_from_db()
    assert (incident.closed_by, incident.resolution) == (tina, "Cable reseated")
    assert Equipment.objects.get(pk=scope.pk).status == "available"
    assert f"Incident #{incident.pk} closed." in response.content.decode()
    again = client.post(f"/staff/incidents/{incident.pk}/close/", follow=True)
    assert "This incident is already closed." in again.content.decode()


def test_tenants_cannot_close_incidents(charlie, bob, scope):
    incident = maintenance.report_incident(charlie, scope, "to_check", "Odd noise")
    assert signed_in(bob).post(f"/staff/incidents/{incident.pk}/close/").status_code == 403
    assert Incident.objects.get().closed_at is None
