"""My bookings: move a booking through engine.move, cancel this and the following times of a
series; the waiting list: join from a taken slot, see my entries, take an offer, leave."""

from datetime import timedelta
from unittest import mock

from django.test import Client
from django.utils import timezone

from bookings import engine, series, waitlist
from bookings.engine import Slot, book
from bookings.models import Booking, WaitlistEntry
from tests.portal.conftest import signed_in, tomorrow


def when(start, end, days=1):
    return {"date": tomorrow(10, days=days).date().isoformat(), "start": start, "end": end}


# ------------------------------------------------------------------ move


def test_my_bookings_offer_to_move_a_booking(bob, bobs_booking):
    body = signed_in(bob).get("/bookings/").content.decode()
    assert f'href="/bookings/{bobs_booking.pk}/move/"' in body


def test_the_move_form_starts_from_the_current_time(bob, bobs_booking):
    response = signed_in(bob).get(f"/bookings/{bobs_booking.pk}/move/")
    body = response.content.decode()
    assert response.status_code == 200
    assert 'value="10:00"' in body and 'value="11:00"' in body


def test_moving_goes_through_the_engine(bob, bobs_booking):
    with mock.patch.object(engine, "move", wraps=engine.move) as spy:
        response = signed_in(bob).post(
            f"/bookings/{bobs_booking.pk}/move/", when("14:00", "15:30"), follow=True
        )
    assert spy.call_count == 1
    bobs_booking.refresh_from_db()
    assert (bobs_booking.start, bobs_booking.end) == (tomorrow(14), tomorrow(15, 30))
    assert "Moved: Salle Loire on" in response.content.decode()


def test_a_move_onto_a_taken_slot_is_refused_with_the_slot_and_keeps_the_form(
    bob, charlie, rooms, bobs_booking
):
    book(charlie, Slot(rooms["loire"], tomorrow(14), tomorrow(15)))
    response = signed_in(bob).post(f"/bookings/{bobs_booking.pk}/move/", when("14:30", "15:30"))
    assert response.status_code == 409
    body = response.content.decode()
    assert "Not moved:" in body and "B-1.50 is already booked from" in body
    assert 'value="14:30"' in body and 'value="15:30"' in body
    bobs_booking.refresh_from_db()
    assert bobs_booking.start == tomorrow(10)


def test_an_invalid_move_shows_the_error_next_to_the_field(bob, bobs_booking):
    response = signed_in(bob).post(f"/bookings/{bobs_booking.pk}/move/", when("15:00", "14:00"))
    body = response.content.decode()
    assert response.status_code == 422
    assert "The end time must be after the start time." in body
    assert 'aria-describedby="id_end_error"' in body


def test_another_tenants_booking_cannot_be_moved(charlie, bobs_booking):
    client = signed_in(charlie)
    assert client.get(f"/bookings/{bobs_booking.pk}/move/").status_code == 404
    assert (
        client.post(f"/bookings/{bobs_booking.pk}/move/", when("14:00", "15:00")).status_code == 404
    )


def test_a_colleague_may_not_move_but_the_tenant_admin_may(alice, bob, acme, bobs_booking):
    from tests.conftest import _person

    dave = _person("dave@acme.test", "Dave", tenant=acme)
    assert signed_in(dave).get(f"/bookings/{bobs_booking.pk}/move/").status_code == 403
    signed_in(alice).post(f"/bookings/{bobs_booking.pk}/move/", when("16:00", "17:00"))
    bobs_booking.refresh_from_db()
    assert bobs_booking.start == tomorrow(16)


def test_cancel_this_and_the_following_times_of_a_series(bob, rooms):
    result = series.book_series(
        bob,
        Slot(rooms["loire"], tomorrow(9), tomorrow(10)),
        series.Recurrence("weekly", count=3),
    )
    second = result.booked[1]
    client = signed_in(bob)
    assert (
        "Cancel this and the following occurrences"
        in client.get(f"/bookings/{second.pk}/cancel/").content.decode()
    )
    with mock.patch.object(series, "cancel_following", wraps=series.cancel_following) as spy:
        client.post(f"/bookings/{second.pk}/cancel/", {"scope": "following"})
    assert spy.call_count == 1
    statuses = [b.status for b in Booking.objects.filter(person=bob).order_by("start")]
    assert statuses == ["confirmed", "cancelled", "cancelled"]


# ------------------------------------------------------------------ waitlist


def join_data(resource, start, end):
    return {"resource": resource.pk, "start": start.isoformat(), "end": end.isoformat()}


def test_a_conflict_offers_to_join_the_waiting_list(charlie, rooms, bobs_booking):
    data = {**when("10:00", "11:00"), "capacity": "2", "resource": rooms["loire"].pk}
    body = signed_in(charlie).post("/book/", data).content.decode()
    assert "Notify me if it frees up" in body
    assert f'value="{tomorrow(10).isoformat()}"' in body


def test_joining_goes_through_the_waitlist_and_lists_the_entry(charlie, rooms, bobs_booking):
    client = signed_in(charlie)
    with mock.patch.object(waitlist, "join", wraps=waitlist.join) as spy:
        response = client.post(
            "/waitlist/join/", join_data(rooms["loire"], tomorrow(10), tomorrow(11)), follow=True
        )
    assert spy.call_count == 1
    entry = WaitlistEntry.objects.get()
    assert (entry.person, entry.state) == (charlie, "waiting")
    body = response.content.decode()
    assert "You are on the waiting list for Salle Loire" in body
    assert "Status: waiting" in body and "Leave the list" in body


def test_joining_a_free_slot_is_refused_in_words(charlie, rooms):
    response = signed_in(charlie).post(
        "/waitlist/join/", join_data(rooms["loire"], tomorrow(10), tomorrow(11)), follow=True
    )
    assert "This slot is free: book it directly." in response.content.decode()
    assert not WaitlistEntry.objects.exists()


def test_a_freed_slot_is_offered_then_taken_from_the_page(bob, charlie, rooms, bobs_booking):
    entry = waitlist.join(charlie, rooms["loire"], tomorrow(10), tomorrow(11))
    engine.cancel(bob, bobs_booking)
    waitlist.offer_freed_slot(rooms["loire"].pk, tomorrow(10), tomorrow(11))
    client = signed_in(charlie)
    body = client.get("/waitlist/").content.decode()
    assert "free for you" in body and "Book it" in body
    with mock.patch.object(waitlist, "accept", wraps=waitlist.accept) as spy:
        response = client.post(f"/waitlist/{entry.pk}/accept/", follow=True)
    assert spy.call_count == 1
    booking = Booking.objects.get(person=charlie)
    assert booking.start == tomorrow(10)
    assert response.redirect_chain[-1][0] == f"/bookings/#booking-{booking.pk}"


def test_an_expired_offer_cannot_be_taken(bob, charlie, rooms, bobs_booking):
    entry = waitlist.join(charlie, rooms["loire"], tomorrow(10), tomorrow(11))
    WaitlistEntry.objects.filter(pk=entry.pk).update(
        state="offered", offer_expires_at=timezone.now() - timedelta(minutes=1)
    )
    response = signed_in(charlie).post(f"/waitlist/{entry.pk}/accept/", follow=True)
    assert "This offer is no longer open." in response.content.decode()
    assert not Booking.objects.filter(person=charlie).exists()


def test_leaving_the_list_and_nobody_elses_entry(bob, charlie, rooms, bobs_booking):
    entry = waitlist.join(charlie, rooms["loire"], tomorrow(10), tomorrow(11))
    assert signed_in(bob).post(f"/waitlist/{entry.pk}/leave/").status_code == 404
    assert signed_in(bob).post(f"/waitlist/{entry.pk}/accept/").status_code == 404
    signed_in(charlie).post(f"/waitlist/{entry.pk}/leave/")
    entry.refresh_from_db()
    assert entry.state == "cancelled"


def test_waitlist_actions_need_post_and_csrf(charlie, rooms, bobs_booking):
    entry = waitlist.join(charlie, rooms["loire"], tomorrow(10), tomorrow(11))
    assert signed_in(charlie).get(f"/waitlist/{entry.pk}/leave/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(charlie)
    assert strict.post(f"/waitlist/{entry.pk}/leave/").status_code == 403
    data = join_data(rooms["loire"], tomorrow(12), tomorrow(13))
    assert strict.post("/waitlist/join/", data).status_code == 403
