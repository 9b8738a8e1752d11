"""The booking function: conflicts, buffers, approvals, prices, quotas, cancellation,
check-in, no-show release, waitlist, companions. Time is passed in explicitly."""

from datetime import timedelta

import pytest
from django.core import mail

from bookings import engine, notify, waitlist
from bookings.engine import Slot, book
from bookings.models import Booking, BookingPolicy, Closure, WaitlistEntry
from bookings.policy import PolicyRefused
from campus.clock import building_tz
from campus.models import Tenant
from tests.bookings.conftest import NOW, at


def test_a_free_slot_is_booked_confirmed_with_its_price(bob, room):
    booking = book(bob, Slot(room, at(3, 10), at(3, 11, 30), "Sprint review"), now=NOW)
    assert booking.status == "confirmed"
    assert booking.tenant.name == "Acme"
    assert booking.price_cents == 3000  # 1.5 h at 20.00 €/h, member price


def test_non_members_pay_the_non_member_price_rounded_to_the_cent(charlie, room):
    room.price_non_member_cents = 3333
    room.save()
    booking = book(charlie, Slot(room, at(3, 10), at(3, 10, 45)), now=NOW)
    assert booking.price_cents == 2500  # 3333 * 45 / 60 = 2499.75 → 2500


def test_an_overlapping_booking_gets_a_conflict_listing_the_taken_slot(bob, charlie, room):
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    with pytest.raises(engine.SlotTaken) as taken:
        book(charlie, Slot(room, at(3, 10, 30), at(3, 11, 30)), now=NOW)
    assert taken.value.status == 409
    [conflict] = taken.value.data["conflicts"]
    assert conflict["resource"] == "B-1.50"
    assert conflict["start"].startswith("2026-03-03T09:00")  # stored in UTC


def test_back_to_back_bookings_fit_without_buffers(bob, charlie, room):
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    book(charlie, Slot(room, at(3, 11), at(3, 12)), now=NOW)


def test_buffers_block_the_neighbouring_slot(bob, charlie, room, room_policy):
    room_policy.buffer_after_minutes = 15
    room_policy.save()
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    with pytest.raises(engine.SlotTaken):
        book(charlie, Slot(room, at(3, 11), at(3, 12)), now=NOW)
    book(charlie, Slot(room, at(3, 11, 15), at(3, 12)), now=NOW)


def test_other_resources_do_not_conflict(bob, charlie, room, big_room):
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    book(charlie, Slot(big_room, at(3, 10), at(3, 11)), now=NOW)


def test_a_cancelled_slot_can_be_booked_again(bob, charlie, room):
    first = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    engine.cancel(bob, first, now=NOW)
    book(charlie, Slot(room, at(3, 10), at(3, 11)), now=NOW)


def test_closures_refuse_bookings(bob, room):
    Closure.objects.create(
        name="Lundi de Pâques",
        start_date=at(6, 0, month=4).date(),
        end_date=at(6, 0, month=4).date(),
        is_public_holiday=True,
    )
    with pytest.raises(PolicyRefused) as refused:
        book(bob, Slot(room, at(6, 10, month=4), at(6, 11, month=4)), now=NOW)
    assert refused.value.code == "closed"


def test_a_request_for_approval_is_pending_and_holds_its_slot(bob, charlie, sam, auditorium):
    request = book(bob, Slot(auditorium, at(10, 14), at(10, 16)), now=NOW)
    assert request.status == "pending"
    with pytest.raises(engine.SlotTaken):
        book(sam, Slot(auditorium, at(10, 15), at(10, 17)), now=NOW)  # staff: confirmed


def test_approving_a_request_rejects_the_competing_ones(bob, charlie, sam, auditorium):
    first = book(bob, Slot(auditorium, at(10, 14), at(10, 16)), now=NOW)
    competing = book(charlie, Slot(auditorium, at(10, 15), at(10, 17)), now=NOW)
    elsewhere = book(charlie, Slot(auditorium, at(11, 15), at(11, 17)), now=NOW)
    engine.approve(sam, first, now=NOW)
    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "confirmed", competing.pk: "rejected", elsewhere.pk: "pending"}


def test_a_rejected_request_frees_nothing_else(bob, sam, auditorium):
    request = book(bob, Slot(auditorium, at(10, 14), at(10, 16)), now=NOW)
    engine.reject(sam, request, note="Event already planned")
    request.refresh_from_db()
    assert (request.status, request.note) == ("rejected", "Event already planned")
    with pytest.raises(engine.InvalidState):
        engine.approve(sam, request, now=NOW)


def test_cancelling_early_is_free_and_late_is_charged_per_policy(bob, room):
    # The policy: free until 24 h before the start, then 50 % of the price (40.00 € for 2 h).
    on_time = book(bob, Slot(room, at(3, 14), at(3, 16)), now=NOW)
    just_late = book(bob, Slot(room, at(4, 14), at(4, 16)), now=NOW)
    engine.cancel(bob, on_time, now=at(2, 14))  # exactly 24 h before: still free
    engine.cancel(bob, just_late, now=at(3, 14, 1))  # 23 h 59 min before: charged
    on_time.refresh_from_db()
    just_late.refresh_from_db()
    assert on_time.charge_cents == 0
    assert just_late.charge_cents == 2000


def test_staff_cancellations_are_never_charged(bob, sam, room):
    booking = book(bob, Slot(room, at(2, 14), at(2, 16)), now=NOW)
    engine.cancel(sam, booking, now=NOW)
    booking.refresh_from_db()
    assert booking.charge_cents == 0


def test_the_monthly_quota_is_enforced_with_a_clear_error(bob, room, acme):
    Tenant.objects.filter(pk=acme.pk).update(monthly_quota_minutes=180)
    bob.refresh_from_db()
    book(bob, Slot(room, at(3, 10), at(3, 12)), now=NOW)
    with pytest.raises(engine.QuotaExceeded) as refused:
        book(bob, Slot(room, at(4, 10), at(4, 11, 30)), now=NOW)
    assert refused.value.data["left_minutes"] == 60
    book(bob, Slot(room, at(4, 10), at(4, 11)), now=NOW)
    book(bob, Slot(room, at(7, 10, month=4), at(7, 12, month=4)), now=NOW)  # next month


def test_moving_a_booking_rechecks_conflicts_and_price(bob, charlie, room):
    mine = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    book(charlie, Slot(room, at(3, 14), at(3, 15)), now=NOW)
    with pytest.raises(engine.SlotTaken):
        engine.move(bob, mine, at(3, 13, 30), at(3, 14, 30), now=NOW)
    moved = engine.move(bob, mine, at(3, 12), at(3, 14), now=NOW)
    assert moved.price_cents == 4000
    assert Booking.objects.get(pk=mine.pk).start == at(3, 12)


def test_check_in_opens_15_minutes_before_the_start(bob, room):
    booking = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    with pytest.raises(engine.InvalidState):
        engine.check_in(bob, booking, now=at(3, 9, 40))
    assert engine.check_in(bob, booking, now=at(3, 9, 50)).status == "checked_in"
    assert engine.check_in(bob, booking, now=at(3, 9, 55)).status == "checked_in"


def test_no_shows_are_released_after_the_check_in_window(bob, charlie, room):
    used = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    unused = book(charlie, Slot(room, at(3, 14), at(3, 15)), now=NOW)
    engine.check_in(bob, used, now=at(3, 10, 5))
    assert engine.release_no_shows(now=at(3, 14, 10)) == []
    [released] = engine.release_no_shows(now=at(3, 14, 16))
    assert released.pk == unused.pk
    assert engine.release_no_shows(now=at(3, 14, 20)) == []  # idempotent
    statuses = dict(Booking.objects.values_list("pk", "status"))
    assert statuses == {used.pk: "checked_in", unused.pk: "released"}


def test_a_policy_without_check_in_never_releases(bob, room, room_policy):
    room_policy.checkin_window_minutes = 0
    room_policy.save()
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    assert engine.release_no_shows(now=at(3, 10, 50)) == []


def test_a_cancelled_slot_is_offered_to_the_first_in_the_waitlist(
    bob, charlie, alice, room, django_capture_on_commit_callbacks
):
    taken = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    first = waitlist.join(charlie, room, at(3, 10), at(3, 11), now=NOW)
    second = waitlist.join(alice, room, at(3, 10), at(3, 11), now=NOW)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        engine.cancel(bob, taken, now=NOW)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == ("offered", "waiting")
    assert any("charlie@globex.test" in m.to for m in mail.outbox)
    booking = waitlist.accept(charlie, first, now=NOW)
    assert booking.person == charlie and booking.status == "confirmed"


def test_an_expired_offer_passes_to_the_next_in_line(bob, charlie, alice, room):
    taken = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    first = waitlist.join(charlie, room, at(3, 10), at(3, 11), now=NOW)
    second = waitlist.join(alice, room, at(3, 10), at(3, 11), now=NOW)
    engine.cancel(bob, taken, now=NOW)
    waitlist.offer_freed_slot(room.pk, at(3, 10), at(3, 11), now=NOW)
    assert waitlist.expire_offers(now=NOW + timedelta(minutes=31)) == 1
    states = dict(WaitlistEntry.objects.values_list("pk", "state"))
    assert states == {first.pk: "expired", second.pk: "offered"}


def test_joining_the_waitlist_for_a_free_slot_says_to_book_it(charlie, room):
    with pytest.raises(waitlist.WaitlistRefused) as refused:
        waitlist.join(charlie, room, at(3, 10), at(3, 11), now=NOW)
    assert refused.value.code == "slot_free"


def test_companion_resources_are_booked_together_or_not_at_all(bob, charlie, room, big_room):
    room.companions.add(big_room)
    book(charlie, Slot(big_room, at(3, 14), at(3, 15)), now=NOW)
    with pytest.raises(engine.SlotTaken) as taken:
        book(bob, Slot(room, at(3, 14), at(3, 15)), now=NOW)
    assert taken.value.data["conflicts"][0]["resource"] == "B-0.03"
    assert not Booking.objects.filter(resource=room).exists()
    booking = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    assert Booking.objects.filter(group=booking.group).count() == 2
    engine.cancel(bob, booking, now=NOW)
    assert set(Booking.objects.filter(group=booking.group).values_list("status", flat=True)) == {
        "cancelled"
    }


def test_a_maintenance_window_blocks_like_a_booking_and_costs_nothing(sam, bob, room):
    window = book(sam, Slot(room, at(3, 8), at(3, 12), "Maintenance"), now=NOW, is_maintenance=True)
    assert window.price_cents == 0
    with pytest.raises(engine.SlotTaken):
        book(bob, Slot(room, at(3, 11), at(3, 12)), now=NOW)


def test_naive_times_are_refused_by_the_engine(bob, room):
    with pytest.raises(PolicyRefused):
        book(bob, Slot(room, at(3, 10).replace(tzinfo=None), at(3, 11)), now=NOW)


def test_booking_sends_an_invitation_with_an_ics(bob, room, django_capture_on_commit_callbacks):
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        book(bob, Slot(room, at(3, 10), at(3, 11), "Review"), now=NOW)
    assert mail.outbox == []  # queued, not sent by the request
    assert notify.send_outbox() == 1
    [message] = mail.outbox
    assert message.to == ["bob@acme.test"]
    name, content, mimetype = message.attachments[0]
    assert "method=REQUEST" in mimetype
    assert "BEGIN:VEVENT" in (content.decode() if isinstance(content, bytes) else content)


def test_the_policy_of_a_kind_applies_unless_a_resource_has_its_own(room, room_policy):
    assert engine.policy_for(room) == room_policy
    own = BookingPolicy.objects.create(name="Special")
    room.policy = own
    assert engine.policy_for(room) == own


def test_approving_a_request_confirms_its_companions_and_rejecting_declines_them(
    bob, charlie, sam, auditorium, big_room
):
    auditorium.companions.add(big_room)
    first = book(bob, Slot(auditorium, at(10, 14), at(10, 16)), now=NOW)
    competing = book(charlie, Slot(auditorium, at(10, 15), at(10, 17)), now=NOW)
    engine.approve(sam, first, now=NOW)
    assert set(Booking.objects.filter(group=first.group).values_list("status", flat=True)) == {
        "confirmed"
    }
    assert set(Booking.objects.filter(group=competing.group).values_list("status", flat=True)) == {
        "rejected"
    }
    later = book(charlie, Slot(auditorium, at(11, 15), at(11, 17)), now=NOW)
    engine.reject(sam, later)
    assert set(Booking.objects.filter(group=later.group).values_list("status", flat=True)) == {
        "rejected"
    }


def test_relabelling_changes_what_a_booking_says_within_the_capacity(bob, room):
    booking = book(bob, Slot(room, at(3, 10), at(3, 11), "Old"), now=NOW)
    engine.relabel(booking, title="New", attendees=8)
    booking.refresh_from_db()
    assert (booking.title, booking.attendees) == ("New", 8)
    with pytest.raises(PolicyRefused) as refused:
        engine.relabel(booking, attendees=9)  # the room seats 8
    assert refused.value.code == "over_capacity"


def test_the_admin_refuses_more_attendees_than_seats_on_the_form(client, sam, bob, room):
    booking = book(bob, Slot(room, at(3, 10), at(3, 11), "Review"), now=NOW)
    client.force_login(sam)
    url = f"/admin/bookings/booking/{booking.pk}/change/"
    local = booking.start.astimezone(room_tz())
    local_end = booking.end.astimezone(room_tz())
    response = client.post(
        url,
        {
            "title": "Review",
            "attendees": 30,
            "note": "",
            "start_0": local.strftime("%Y-%m-%d"),
            "start_1": local.strftime("%H:%M:%S"),
            "end_0": local_end.strftime("%Y-%m-%d"),
            "end_1": local_end.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200  # the form again, with the error
    assert "exceed the capacity" in response.content.decode()
    booking.refresh_from_db()
    assert booking.attendees == 1


def room_tz():
    return building_tz()


def test_a_technician_cannot_cancel_someone_elses_booking_from_the_admin(client, bob, tina, room):
    booking = book(bob, Slot(room, at(3, 10), at(3, 11), "Review"), now=NOW)
    client.force_login(tina)  # a technician opens the admin and sees the bookings
    client.post("/admin/bookings/booking/", {"action": "cancel", "_selected_action": [booking.pk]})
    booking.refresh_from_db()
    assert booking.status == "confirmed"
