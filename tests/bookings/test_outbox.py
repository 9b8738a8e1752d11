"""Booking e-mails go through the outbox: queued in the booking's transaction, sent by the
periodic worker, marked sent only after a successful send, retried after a failure."""

from datetime import timedelta
from smtplib import SMTPException

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.utils import timezone

from bookings import engine, jobs, notify
from bookings.engine import Slot, book
from bookings.models import OutboxEmail
from tests.bookings.conftest import NOW, at


class MailServerDown(BaseEmailBackend):
    def send_messages(self, messages):
        raise SMTPException("421 service not available")


@pytest.fixture
def mail_server_down(settings):
    settings.EMAIL_BACKEND = "tests.bookings.test_outbox.MailServerDown"


def test_a_booking_queues_its_email_and_the_worker_sends_it_once(bob, room):
    mail.outbox.clear()
    booking = book(bob, Slot(room, at(3, 10), at(3, 11), "Review"), now=NOW)
    [row] = OutboxEmail.objects.all()
    assert (row.booking_id, row.what, row.sent_at) == (booking.pk, "created", None)
    assert mail.outbox == []
    assert jobs.run_due()["emails"] == 1
    [message] = mail.outbox
    assert message.to == ["bob@acme.test"] and "Salle Loire" in message.subject
    row.refresh_from_db()
    assert row.sent_at is not None and row.attempts == 0
    assert notify.send_outbox() == 0 and len(mail.outbox) == 1


def test_a_rolled_back_booking_sends_nothing(bob, room):
    with pytest.raises(RuntimeError), transaction.atomic():
        book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
        raise RuntimeError("the caller gave up")
    assert not OutboxEmail.objects.exists()
    assert notify.send_outbox() == 0


def test_a_failed_send_is_kept_and_retried_later_until_it_succeeds(
    bob, room, settings, mail_server_down
):
    mail.outbox.clear()
    booking = book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    engine.cancel(bob, booking, now=NOW)
    now = timezone.now()
    assert notify.send_outbox(now) == 0
    rows = list(OutboxEmail.objects.order_by("pk"))
    assert [(r.what, r.attempts, r.sent_at) for r in rows] == [
        ("created", 1, None),
        ("cancelled", 1, None),
    ]
    assert all(r.next_attempt_at == now + timedelta(minutes=1) for r in rows)
    assert "421" in rows[0].last_error
    # Not due yet: nothing is tried again before the delay.
    assert notify.send_outbox(now + timedelta(seconds=30)) == 0
    assert OutboxEmail.objects.filter(attempts=1).count() == 2
    # Still down a minute later: the delay doubles.
    assert notify.send_outbox(now + timedelta(minutes=1)) == 0
    assert {r.attempts for r in OutboxEmail.objects.all()} == {2}
    # The server is back: both are sent, in order, and marked sent.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    assert notify.send_outbox(now + timedelta(minutes=3)) == 2
    assert [m.subject.split(" :")[0] for m in mail.outbox] == [
        "Réservation confirmée",
        "Réservation annulée",
    ]
    assert not OutboxEmail.objects.filter(sent_at__isnull=True).exists()


def test_a_row_claimed_by_another_sender_is_left_to_it(bob, room):
    mail.outbox.clear()
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    now = timezone.now()
    # Another worker claimed it: its lease moved the next attempt into the future.
    OutboxEmail.objects.update(next_attempt_at=now + notify.OUTBOX_LEASE)
    assert notify.send_outbox(now) == 0 and mail.outbox == []
    # A sender that died holding it is replaced once the lease has passed.
    assert notify.send_outbox(now + notify.OUTBOX_LEASE) == 1 and len(mail.outbox) == 1


def test_the_reminder_goes_through_the_outbox_once(bob, room):
    book(bob, Slot(room, at(3, 10), at(3, 11)), notify=False, now=NOW)
    mail.outbox.clear()
    assert notify.send_reminders(at(3, 9, 30)) == 1
    assert notify.send_reminders(at(3, 9, 40)) == 0  # reminded once
    assert notify.send_outbox() == 1
    [message] = mail.outbox
    assert message.to == ["bob@acme.test"] and "Salle Loire" in message.subject
