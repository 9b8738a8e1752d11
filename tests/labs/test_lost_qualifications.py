"""A qualification revoked, or running out before a booking: the booking is flagged, its
booker and the lab technicians told, and cancelled free of charge after the policy's notice
(at its start at the latest) unless the booker is qualified again. On the fixed clock: NOW is
Monday 2 March 2026, 08:00 in Paris."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from bookings import engine, jobs, notify
from bookings.engine import Slot, book
from bookings.models import Booking, OutboxEmail
from labs import lost_qualifications, maintenance
from labs.models import Qualification
from tests.bookings.conftest import NOW, at
from tests.bookings.test_race import race
from tests.conftest import api_client
from tests.labs.conftest import qualify

H = timedelta(hours=1)


@pytest.fixture
def bobs_runs(bob, scope, printer):
    """bob, trained on the oscilloscope and the printer, books each twice."""
    qualify(bob, scope)
    qualify(bob, printer)
    return {
        "scope_soon": book(bob, Slot(scope.resource, at(2, 18), at(2, 19)), now=NOW),
        "scope_later": book(bob, Slot(scope.resource, at(10, 10), at(10, 12)), now=NOW),
        "printer": book(bob, Slot(printer.resource, at(10, 10), at(10, 12)), now=NOW),
    }


def emails(booking) -> list[tuple[str, str]]:
    rows = OutboxEmail.objects.filter(booking=booking).select_related("recipient")
    return sorted((r.what, (r.recipient or booking.person).email) for r in rows)


def test_a_revocation_flags_the_future_bookings_it_leaves_uncovered_and_tells_everyone(
    bob, tina, sam, scope, bobs_runs
):
    training = Qualification.objects.get(person=bob, equipment=scope)
    before = {b.pk: emails(b) for b in bobs_runs.values()}
    done = maintenance.revoke_qualification(sam, training, now=NOW)
    soon, later = bobs_runs["scope_soon"], bobs_runs["scope_later"]
    assert [b.pk for b in done.affected] == [soon.pk, later.pk]
    soon.refresh_from_db()
    later.refresh_from_db()
    assert soon.unqualified_at == NOW and later.unqualified_at == NOW
    assert soon.unqualified_deadline == soon.start  # 48 h of notice, capped at the start
    assert later.unqualified_deadline == NOW + 48 * H
    assert soon.status == later.status == "confirmed"
    new = sorted(set(emails(later)) - set(before[later.pk]))
    assert new == [("unqualified", "bob@acme.test"), ("unqualified_staff", "tina@campus.test")]
    printer = Booking.objects.get(pk=bobs_runs["printer"].pk)
    assert printer.unqualified_at is None  # another machine, another training
    assert emails(printer) == before[printer.pk]


def test_a_class_qualification_still_covering_the_booking_leaves_it_alone(
    bob, sam, scope, bobs_runs
):
    qualify(bob, cls="oscilloscope")
    training = Qualification.objects.get(person=bob, equipment=scope)
    assert maintenance.revocation_affects(training, now=NOW) == []
    assert maintenance.revoke_qualification(sam, training, now=NOW).affected == []
    assert not Booking.objects.filter(unqualified_at__isnull=False).exists()


def test_a_qualification_ending_before_a_booking_is_found_by_the_periodic_job_once(
    bob, scope, bobs_runs
):
    Qualification.objects.filter(person=bob, equipment=scope).update(valid_until=at(5, 23, 59))
    review = lost_qualifications.review_qualifications(NOW)
    assert [b.pk for b in review.flagged] == [bobs_runs["scope_later"].pk]
    count = OutboxEmail.objects.count()
    assert len(lost_qualifications.review_qualifications(NOW + H)) == 0  # nothing twice
    assert jobs.run_due(NOW + H)["qualifications"] == 0
    assert OutboxEmail.objects.filter(what__startswith="unqualified").count() == 1
    assert OutboxEmail.objects.count() >= count  # the round also sent, nothing new queued


def test_qualified_again_before_the_deadline_the_flag_is_lifted(bob, tina, scope, bobs_runs):
    later = bobs_runs["scope_later"]
    maintenance.revoke_qualification(tina, Qualification.objects.get(equipment=scope), now=NOW)
    maintenance.record_training(tina, bob, equipment=scope, valid_from=NOW + H)
    review = lost_qualifications.review_qualifications(NOW + 2 * H)
    assert later.pk in [b.pk for b in review.cleared]
    later.refresh_from_db()
    assert (later.unqualified_at, later.unqualified_deadline) == (None, None)
    assert ("requalified", "bob@acme.test") in emails(later)
    assert lost_qualifications.review_qualifications(NOW + 50 * H).cancelled == []
    later.refresh_from_db()
    assert later.status == "confirmed"


def test_at_the_deadline_the_booking_is_cancelled_free_of_charge_through_the_engine(
    bob, tina, scope, bobs_runs
):
    later = bobs_runs["scope_later"]
    assert later.price_cents > 0
    maintenance.revoke_qualification(tina, Qualification.objects.get(equipment=scope), now=NOW)
    early = lost_qualifications.review_qualifications(
        NOW + 47 * H
    )  # the one at 18:00 today goes first
    assert [b.pk for b in early.cancelled] == [bobs_runs["scope_soon"].pk]
    with mock.patch.object(engine, "cancel", wraps=engine.cancel) as spy:
        review = lost_qualifications.review_qualifications(NOW + 48 * H)
    assert [b.pk for b in review.cancelled] == [later.pk]
    assert spy.call_count == 1 and spy.call_args.kwargs["charge"] is False
    later.refresh_from_db()
    assert later.status == "cancelled" and later.charge_cents == 0  # the policy says 100 %
    assert "no valid qualification" in later.note
    assert ("cancelled", "bob@acme.test") in emails(later)
    assert lost_qualifications.review_qualifications(NOW + 49 * H).cancelled == []


def test_a_booking_flagged_just_before_its_start_is_cancelled_at_its_start(
    bob, tina, scope, bobs_runs
):
    soon = bobs_runs["scope_soon"]  # starts at 18:00, ten hours after NOW
    maintenance.revoke_qualification(tina, Qualification.objects.get(equipment=scope), now=NOW)
    assert lost_qualifications.review_qualifications(at(2, 17, 59)).cancelled == []
    assert [b.pk for b in lost_qualifications.review_qualifications(at(2, 18)).cancelled] == [
        soon.pk
    ]


def test_the_notice_is_the_policys(bob, tina, scope, bobs_runs, equipment_policy):
    equipment_policy.unqualified_notice_hours = 2
    equipment_policy.save()
    maintenance.revoke_qualification(tina, Qualification.objects.get(equipment=scope), now=NOW)
    later = Booking.objects.get(pk=bobs_runs["scope_later"].pk)
    assert later.unqualified_deadline == NOW + 2 * H


def test_companions_are_cancelled_with_the_machine(bob, tina, chamber, bob_on_chamber):
    run = book(bob, Slot(chamber.resource, at(10, 10), at(10, 12)), now=NOW)
    maintenance.revoke_qualification(tina, bob_on_chamber, now=NOW)
    lost_qualifications.review_qualifications(NOW + 48 * H)
    group = Booking.objects.filter(group=run.group)
    assert group.count() == 2 and {b.status for b in group} == {"cancelled"}
    assert {b.charge_cents for b in group} == {0}


def test_moving_a_flagged_booking_to_a_covered_time_lifts_the_flag(bob, tina, scope):
    training = qualify(bob, scope, until=at(5, 23, 59))
    booking = book(bob, Slot(scope.resource, at(4, 10), at(4, 12)), now=NOW)
    Qualification.objects.filter(pk=training.pk).update(valid_until=at(3, 23, 59))
    lost_qualifications.review_qualifications(NOW)
    booking.refresh_from_db()
    assert booking.is_flagged_unqualified
    engine.move(bob, booking, at(3, 10), at(3, 12), now=NOW)
    booking.refresh_from_db()
    assert not booking.is_flagged_unqualified and booking.unqualified_deadline is None


def test_the_emails_speak_the_recipients_language(bob, tina, scope, bobs_runs):
    tina.language = "en"
    tina.save()
    mail.outbox.clear()
    maintenance.revoke_qualification(tina, Qualification.objects.get(equipment=scope), now=NOW)
    notify.send_outbox()
    notices = [m for m in mail.outbox if "10/03/2026" in m.subject and "bilitation" in m.subject]
    [to_bob] = [m for m in notices if m.to == [bob.email]]
    [to_tina] = [m for m in mail.outbox if m.to == [tina.email] and "10/03/2026" in m.subject]
    assert to_bob.subject.startswith("Votre habilitation ne couvre plus une réservation")
    assert "annulée sans frais le 04/03/2026 08:00" in to_bob.body
    assert not to_bob.attachments  # the booking itself did not change: no invitation
    assert to_tina.subject.startswith("Booking without a valid qualification")
    assert "Bob Test (Acme) no longer holds a valid qualification" in to_tina.body
    assert "cancelled free of charge on 04/03/2026 08:00" in to_tina.body


def test_the_api_answers_the_revocation_with_the_bookings_it_flagged(tina, bob, printer, as_bob):
    training = qualify(bob, printer)
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    booking = book(bob, Slot(printer.resource, start, start + 2 * H))
    response = api_client(tina).post(f"/api/v1/qualifications/{training.pk}/revoke")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["in_force"] is False
    [flagged] = data["affected_bookings"]
    assert flagged["id"] == booking.pk and flagged["status"] == "confirmed"
    assert flagged["unqualified_at"] is not None
    seen = as_bob.get(f"/api/v1/bookings/{booking.pk}").json()
    assert seen["unqualified_deadline"] == flagged["unqualified_deadline"] is not None
    again = api_client(tina).post(f"/api/v1/qualifications/{training.pk}/revoke")
    assert again.status_code == 409


@pytest.mark.django_db(transaction=True)
def test_several_instances_at_once_flag_each_booking_once(campus):
    from bookings.models import BookingPolicy
    from campus.models import Person, Tenant
    from tests.labs.conftest import make_equipment

    BookingPolicy.objects.create(
        name="Equipment", default_for_kind="equipment", opening_hours=[], max_advance_days=365
    )
    machine = make_equipment(
        "EQ-3D-9", "Printer", "3d-printer", campus["lab"], unattended_allowed=True
    )
    tenant = Tenant.objects.create(name="Acme", tier="member", contract_start=NOW.date())
    bob = Person.objects.create_user("bob@acme.test", "pw", first_name="Bob", tenant=tenant)
    Person.objects.create_user("tina@campus.test", "pw", first_name="Tina", is_lab_technician=True)
    training = qualify(bob, machine)
    booked = [
        book(bob, Slot(machine.resource, at(10 + d, 10), at(10 + d, 12)), now=NOW) for d in range(3)
    ]
    Qualification.objects.filter(pk=training.pk).update(revoked_at=NOW)
    results = race(4, lambda i: len(lost_qualifications.review_qualifications(NOW).flagged))
    assert all(kind == "ok" for kind, _v in results), results
    assert sum(v for _k, v in results) == 3  # each booking flagged by one instance only
    assert Booking.objects.filter(unqualified_at__isnull=False).count() == 3
    for b in booked:
        assert emails(b).count(("unqualified", "bob@acme.test")) == 1
        assert emails(b).count(("unqualified_staff", "tina@campus.test")) == 1


def test_the_admin_revokes_and_edits_through_the_same_review(client, tina, bob, printer):
    """On the real clock, like the admin."""
    training = qualify(bob, printer)
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + timedelta(days=3)
    run = book(bob, Slot(printer.resource, start, start + 2 * H))
    client.force_login(tina)
    response = client.post(
        "/admin/labs/qualification/", {"action": "revoke", "_selected_action": [training.pk]}
    )
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.is_flagged_unqualified  # at once, not at the next round of the jobs
    again = qualify(bob, cls="3d-printer", until=start + H)  # ends before the run does
    run.refresh_from_db()
    assert run.is_flagged_unqualified
    local = timezone.localtime(start + 3 * H)
    form = {
        "person": bob.pk,
        "equipment": "",
        "equipment_class": "3d-printer",
        "valid_from_0": f"{timezone.localtime(again.valid_from):%Y-%m-%d}",
        "valid_from_1": f"{timezone.localtime(again.valid_from):%H:%M:%S}",
        "valid_until_0": f"{local:%Y-%m-%d}",
        "valid_until_1": f"{local:%H:%M:%S}",
        "renew_on_use_months": "",
        "trained_by": tina.pk,
        "note": "",
    }
    response = client.post(f"/admin/labs/qualification/{again.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-1500:]
    run.refresh_from_db()
    assert not run.is_flagged_unqualified  # the longer training covers it: lifted at once
    client.post(f"/admin/labs/qualification/{again.pk}/delete/", {"post": "yes"})
    run.refresh_from_db()
    assert run.is_flagged_unqualified


def test_the_periodic_review_reads_a_few_queries_however_many_bookings(bob, scope, printer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    qualify(bob, scope)
    qualify(bob, cls="3d-printer")

    def queries():
        with CaptureQueriesContext(connection) as seen:
            assert len(lost_qualifications.review_qualifications(NOW)) == 0
        return len(seen)

    book(bob, Slot(scope.resource, at(3, 10), at(3, 11)), now=NOW)
    few = queries()
    for day in range(4, 10):
        book(bob, Slot(printer.resource, at(day, 10), at(day, 11)), now=NOW)
    assert queries() == few <= 4
