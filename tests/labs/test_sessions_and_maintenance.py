"""Usage sessions, equipment status and its history, incidents, check-off, maintenance."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from bookings import engine
from bookings.engine import Slot, book
from bookings.models import Booking
from labs import maintenance, sessions
from labs.models import Equipment, Qualification, UsageSession
from tests.bookings.conftest import NOW, at
from tests.labs.conftest import qualify


@pytest.fixture
def bob_books_scope(bob, scope):
    qualify(bob, scope, until=at(20, 18), renew_on_use_months=3)
    return book(bob, Slot(scope.resource, at(3, 10), at(3, 12)), now=NOW)


def start(person, equipment, when):
    return sessions.start_session(person, equipment, source="api", now=when)


def test_a_session_starts_10_minutes_early_and_records_the_use(bob, scope, bob_books_scope):
    with pytest.raises(sessions.SessionRefused) as refused:
        start(bob, scope, at(3, 9, 49))
    assert refused.value.code == "no_booking"
    session = start(bob, scope, at(3, 9, 50))
    assert (session.booking, session.tenant, session.source) == (bob_books_scope, bob.tenant, "api")
    scope.refresh_from_db()
    assert scope.status == "in_use"
    bob_books_scope.refresh_from_db()
    assert bob_books_scope.status == "checked_in"
    q = Qualification.objects.get(person=bob)
    assert q.valid_until == at(3, 9, 50, month=6)  # renewed on use: 3 months after the use


def test_a_session_needs_a_qualification_valid_now(bob, scope, bob_books_scope):
    Qualification.objects.filter(person=bob).update(revoked_at=at(3, 9))
    with pytest.raises(sessions.SessionRefused) as refused:
        start(bob, scope, at(3, 10))
    assert (refused.value.code, refused.value.status) == ("not_qualified", 403)


def test_a_machine_in_use_or_in_maintenance_does_not_start(bob, alice, scope, bob_books_scope):
    qualify(alice, scope)
    book(alice, Slot(scope.resource, at(3, 12), at(3, 13)), now=NOW)
    start(bob, scope, at(3, 10))
    with pytest.raises(sessions.SessionRefused) as refused:
        start(alice, scope, at(3, 11, 55))  # bob overran his booking: still running
    assert refused.value.code == "equipment_busy"
    Equipment.objects.filter(pk=scope.pk).update(status="out_of_order")
    with pytest.raises(sessions.SessionRefused) as refused:
        start(alice, scope, at(3, 12))
    assert refused.value.code == "maintenance"


def test_the_database_holds_one_open_session_per_machine(bob, scope, bob_books_scope):
    start(bob, scope, at(3, 10))
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageSession.objects.create(
            equipment=scope, person=bob, started_at=at(3, 10, 5), source="controller"
        )


def test_stopping_a_session_frees_the_machine_and_is_idempotent(bob, scope, bob_books_scope):
    session = start(bob, scope, at(3, 10))
    stopped = sessions.stop_session(session, reason="badge_out", now=at(3, 11), energy_wh=420)
    assert (stopped.stopped_at, stopped.stop_reason, stopped.energy_wh) == (
        at(3, 11),
        "badge_out",
        420,
    )
    again = sessions.stop_session(session, reason="lease_lost", now=at(3, 12))
    assert (again.stopped_at, again.stop_reason) == (at(3, 11), "badge_out")
    scope.refresh_from_db()
    assert scope.status == "available"
    history = list(scope.status_history.order_by("at").values_list("old_status", "new_status"))
    assert history == [("available", "in_use"), ("in_use", "available")]


def test_a_machine_with_check_off_waits_for_a_technician_after_use(
    bob, tina, scope, bob_books_scope
):
    Equipment.objects.filter(pk=scope.pk).update(check_after_use=True)
    session = start(bob, scope, at(3, 10))
    sessions.stop_session(session, reason="manual", now=at(3, 11))
    scope.refresh_from_db()
    assert scope.status == "to_check"
    with pytest.raises(maintenance.Forbidden):
        maintenance.sign_off(bob, scope)
    assert maintenance.sign_off(tina, scope, now=at(3, 11, 30)).status == "available"
    last = scope.status_history.first()
    assert (last.by, last.new_status) == (tina, "available")


def test_an_incident_keeps_the_machine_out_of_order_until_closed(charlie, tina, scope):
    minor = maintenance.report_incident(charlie, scope, "to_check", "Probe loose", now=NOW)
    scope.refresh_from_db()
    assert scope.status == "to_check"
    major = maintenance.report_incident(charlie, scope, "out_of_order", "Smoke", now=NOW)
    scope.refresh_from_db()
    assert (scope.status, major.tenant) == ("out_of_order", charlie.tenant)
    maintenance.close_incident(tina, major, resolution="Fuse replaced", now=NOW)
    scope.refresh_from_db()
    assert scope.status == "to_check"  # the other incident is still open
    maintenance.close_incident(tina, minor, now=NOW)
    scope.refresh_from_db()
    assert scope.status == "available"
    with pytest.raises(maintenance.LabStateError):
        maintenance.close_incident(tina, minor, now=NOW)


def test_a_maintenance_window_over_bookings_cancels_lists_and_notifies_them(
    bob, alice, charlie, tina, chamber, bob_on_chamber, django_capture_on_commit_callbacks
):
    qualify(alice, chamber)
    late = book(bob, Slot(chamber.resource, at(2, 14), at(2, 16)), now=NOW)
    other = book(alice, Slot(chamber.resource, at(3, 9), at(3, 10)), now=NOW)
    untouched = book(alice, Slot(chamber.resource, at(4, 10), at(4, 11)), now=NOW)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = maintenance.schedule_maintenance(
            tina, chamber, at(2, 12), at(3, 12), title="Annual calibration", now=NOW
        )
    assert [b.pk for b in result.affected] == [late.pk, other.pk]
    assert result.window.is_maintenance and result.window.status == "confirmed"
    statuses = dict(Booking.objects.filter(group__isnull=False).values_list("pk", "status"))
    assert statuses[late.pk] == statuses[other.pk] == "cancelled"
    assert statuses[untouched.pk] == "confirmed"
    late.refresh_from_db()
    assert late.charge_cents == 0  # late, but the facility cancelled it
    # both owners are told, with the next free slots of the same length after the window
    told = [m for m in mail.outbox if m.subject.startswith("Maintenance ")]
    assert sorted(m.to[0] for m in told) == ["alice@acme.test", "bob@acme.test"]
    first_offer = result.offers[late.pk][0]
    assert first_offer == (at(3, 12, 45), at(3, 14, 45))  # after cool-down + next warm-up
    assert "03/03/2026 12:45" in next(m for m in told if m.to == ["bob@acme.test"]).body
    with pytest.raises(engine.SlotTaken):
        book(bob, Slot(chamber.resource, at(3, 8), at(3, 9)), now=NOW)


def test_a_maintenance_window_needs_a_technician_or_staff(bob, chamber):
    with pytest.raises(maintenance.Forbidden):
        maintenance.schedule_maintenance(bob, chamber, at(3, 8), at(3, 12), now=NOW)


def test_a_maintenance_window_cannot_evict_a_session_in_progress(bob, sam, scope, bob_books_scope):
    start(bob, scope, at(3, 10))
    with pytest.raises(maintenance.LabStateError) as refused:
        maintenance.schedule_maintenance(sam, scope, at(3, 11), at(3, 15), now=at(3, 10, 30))
    assert refused.value.code == "booking_in_progress"
    assert not Booking.objects.filter(is_maintenance=True).exists()
    assert Booking.objects.get(pk=bob_books_scope.pk).status == "checked_in"


def test_next_free_slots_skip_taken_time(bob, scope, bob_books_scope):
    offers = maintenance.next_free_slots(scope.resource, timedelta(hours=1), at(3, 9))
    assert offers[0] == (at(3, 9), at(3, 10))
    assert offers[1][0] == at(3, 12)
