"""The qualification rule and the equipment time rules, through the booking engine."""

from datetime import timedelta

import pytest

from bookings import engine, series
from bookings.engine import Slot, book
from bookings.models import Booking, BookingPolicy
from bookings.policy import NotAllowed, PolicyRefused
from labs import qualifications
from labs.models import Qualification
from tests.bookings.conftest import NOW, at
from tests.labs.conftest import qualify

T0 = at(2, 8)
T1 = at(20, 18)


@pytest.mark.parametrize(
    "valid_from, valid_until, revoked_at, start, end, expected",
    [
        (T0, None, None, T0, None, True),
        (T0, None, None, T0 - timedelta(seconds=1), None, False),
        (T0, T1, None, T1, None, True),
        (T0, T1, None, T0, T1 + timedelta(minutes=1), False),
        (T0, T1, at(10, 12), at(10, 11), at(10, 12), False),
        (T0, T1, at(10, 12), at(10, 10), at(10, 11), True),
    ],
)
def test_in_force_reads_only_the_dates(valid_from, valid_until, revoked_at, start, end, expected):
    facts = qualifications.QualificationFacts(1, "", valid_from, valid_until, revoked_at)
    assert qualifications.in_force(facts, start, end) is expected


def test_covers_matches_a_machine_by_id_or_by_class():
    q = qualifications.QualificationFacts(None, "oscilloscope", T0, None, None)
    assert qualifications.covers([q], {7}, {"oscilloscope"}, at(3, 10))
    assert not qualifications.covers([q], {7}, {"emc-chamber"}, at(3, 10))


def test_a_qualified_person_books_a_machine_and_an_untrained_one_is_refused(
    bob, charlie, chamber, bob_on_chamber
):
    assert book(bob, Slot(chamber.resource, at(3, 10), at(3, 12)), now=NOW).status == "confirmed"
    with pytest.raises(NotAllowed) as refused:
        book(charlie, Slot(chamber.resource, at(4, 10), at(4, 12)), now=NOW)
    assert refused.value.code == "not_qualified"


def test_a_series_past_the_qualification_expiry_books_the_earlier_occurrences_only(
    bob, chamber, bob_on_chamber
):
    result = series.book_series(
        bob,
        Slot(chamber.resource, at(3, 10), at(3, 12), "Pre-compliance"),
        series.Recurrence("weekly", count=5),
        now=NOW,
    )
    assert [b.start for b in result.booked] == [at(3, 10), at(10, 10), at(17, 10)]
    assert [(r.start, r.code) for r in result.refused] == [
        (at(24, 10), "not_qualified"),
        (at(31, 10), "not_qualified"),
    ]


def test_a_class_qualification_covers_every_machine_of_the_class(bob, scope, campus):
    qualify(bob, cls="oscilloscope")
    assert qualifications.is_qualified(bob.pk, scope.resource, at(3, 10), at(3, 11))
    book(bob, Slot(scope.resource, at(3, 10), at(3, 11)), now=NOW)


def test_a_revoked_qualification_refuses_from_its_revocation(bob, scope):
    q = qualify(bob, scope)
    Qualification.objects.filter(pk=q.pk).update(revoked_at=at(3, 12))
    assert qualifications.is_qualified(bob.pk, scope.resource, at(3, 10), at(3, 11))
    assert not qualifications.is_qualified(bob.pk, scope.resource, at(3, 11), at(3, 13))


def test_a_qualification_on_a_machine_opens_its_lab(bob, scope, campus):
    qualify(bob, scope)
    machines, labs = qualifications.qualified_targets(bob.pk, at(3, 10))
    assert machines == {scope.pk} and labs == {campus["lab"].pk}
    assert qualifications.qualified_targets(bob.pk, NOW - timedelta(days=60)) == (set(), set())


def test_warm_up_and_cool_down_block_the_neighbour_slot(bob, alice, chamber, bob_on_chamber):
    qualify(alice, chamber)
    mine = book(bob, Slot(chamber.resource, at(3, 10), at(3, 12)), now=NOW)
    assert (mine.blocked_start, mine.blocked_end) == (at(3, 9, 30), at(3, 12, 15))
    # the next run's warm-up (30 min) may not start before the cool-down (15 min) ends
    with pytest.raises(engine.SlotTaken):
        book(alice, Slot(chamber.resource, at(3, 12, 30), at(3, 14)), now=NOW)
    with pytest.raises(engine.SlotTaken):
        book(alice, Slot(chamber.resource, at(3, 8), at(3, 9, 30)), now=NOW)
    book(alice, Slot(chamber.resource, at(3, 12, 45), at(3, 14)), now=NOW)


def test_companions_are_booked_with_the_machine(bob, chamber, control_room, bob_on_chamber):
    booking = book(bob, Slot(chamber.resource, at(3, 10), at(3, 12)), now=NOW)
    group = Booking.objects.filter(group=booking.group)
    assert sorted(group.values_list("resource__code", flat=True)) == ["B-0.10-CTRL", "EQ-CEM"]


def test_a_machine_not_allowed_unattended_stays_within_the_lab_hours(bob, scope, sam):
    qualify(bob, scope)
    with pytest.raises(PolicyRefused) as refused:
        book(bob, Slot(scope.resource, at(3, 18), at(4, 9)), now=NOW)
    assert refused.value.code == "overnight_not_allowed"
    with pytest.raises(PolicyRefused) as refused:
        book(bob, Slot(scope.resource, at(3, 19), at(3, 21)), now=NOW)
    assert refused.value.code == "overnight_not_allowed"
    book(bob, Slot(scope.resource, at(3, 18), at(3, 20)), now=NOW)


def test_a_machine_allowed_unattended_runs_overnight(bob, printer):
    qualify(bob, printer)
    booking = book(bob, Slot(printer.resource, at(3, 18), at(4, 9)), now=NOW)
    assert booking.status == "confirmed"


def test_an_assisted_machine_waits_for_a_technician(bob, tina, scope, as_tina):
    scope.resource.policy = BookingPolicy.objects.create(
        name="Assisted", approval_required=True, max_advance_days=365
    )
    scope.resource.save()
    qualify(bob, scope)
    booking = book(bob, Slot(scope.resource, at(3, 10), at(3, 11)), now=NOW)
    assert booking.status == "pending"
    response = as_tina.post(f"/api/v1/bookings/{booking.pk}/approve")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "confirmed"


def test_renew_on_use_extends_the_validity_from_the_use(bob, scope):
    q = qualify(bob, scope, until=at(20, 18), renew_on_use_months=6)
    assert qualifications.record_use(bob.pk, scope, at(3, 10)) == 1
    q.refresh_from_db()
    assert q.valid_until == at(3, 10, month=9)  # six months later, same local time
    assert q.last_used_at == at(3, 10)
    assert qualifications.is_qualified(bob.pk, scope.resource, at(1, 10, month=9))


def test_renew_on_use_never_revives_an_expired_qualification(bob, scope):
    q = qualify(bob, scope, until=at(20, 18), renew_on_use_months=6)
    assert qualifications.record_use(bob.pk, scope, at(21, 10)) == 0
    q.refresh_from_db()
    assert q.valid_until == at(20, 18)


def test_add_months_clamps_to_the_end_of_the_month():
    assert qualifications.add_months(at(31, 10, month=1), 1) == at(28, 10, month=2)
    assert qualifications.add_months(at(15, 10, month=11, year=2026), 3) == at(
        15, 10, month=2, year=2027
    )
