"""E-mails about bookings, each with an .ics invitation (METHOD REQUEST or CANCEL).

A change to a booking queues its e-mail in the outbox (`OutboxEmail.queue`, in the change's
transaction: never lost, never sent for a rolled-back change); the periodic worker sends the
outbox (`send_outbox`, bookings.jobs) through Django's e-mail backend, so that no request
waits for a mail server. A row is marked sent after a successful send, else retried later.
Other e-mails (series summaries, waitlist offers) are sent after the transaction commits; a
failure to send them is logged and never undoes a booking. Times are written in the local
time of the booked resource (its site's zone, campus.clock), as its invitation gives them.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from bookings import catalogue, ical
from bookings.models import Booking, OutboxEmail, Status
from campus import clock
from campus.models import Person

log = logging.getLogger(__name__)

REMIND_BEFORE = timedelta(hours=1)
# A claimed row is left to its sender this long (a sender that died is replaced after it).
OUTBOX_LEASE = timedelta(minutes=5)
OUTBOX_BATCH = 100
OUTBOX_MAX_DELAY = timedelta(hours=1)
OUTBOX_KEEP_SENT = timedelta(days=7)

SUBJECTS = {
    "created": gettext_noop("Booking confirmed: %(what)s"),
    "pending": gettext_noop("Booking request received: %(what)s"),
    "moved": gettext_noop("Booking changed: %(what)s"),
    "approved": gettext_noop("Booking approved: %(what)s"),
    "rejected": gettext_noop("Booking request declined: %(what)s"),
    "cancelled": gettext_noop("Booking cancelled: %(what)s"),
    "released": gettext_noop("Booking released (nobody checked in): %(what)s"),
    "reminder": gettext_noop("Reminder: %(what)s"),
    "maintenance": gettext_noop("Maintenance over your booking: %(what)s"),
    "unqualified": gettext_noop("Your qualification no longer covers a booking: %(what)s"),
    "unqualified_staff": gettext_noop("Booking without a valid qualification: %(what)s"),
    "requalified": gettext_noop("Your booking stands: %(what)s"),
}
# What these e-mails say before the booking's times; they carry no invitation (the booking
# itself did not change).
NOTICES = {
    "unqualified": gettext_noop(
        "Your qualification for this machine was revoked or ends before this booking. Unless "
        "you are qualified again, the booking is cancelled free of charge on %(deadline)s."
    ),
    "unqualified_staff": gettext_noop(
        "%(person)s no longer holds a valid qualification for this booking. Unless they are "
        "qualified again, it is cancelled free of charge on %(deadline)s."
    ),
    "requalified": gettext_noop(
        "You hold a valid qualification for this booking again: it will not be cancelled."
    ),
}


def _what(booking: Booking, tz) -> str:
    local = clock.local(booking.start, tz)
    return f"{booking.resource.name} {local:%d/%m/%Y %H:%M}"


def unqualified(booking: Booking):
    """Queue the e-mails about a booking flagged for a missing qualification: to the booker
    and to every active lab technician (technicians run all the labs)."""
    OutboxEmail.queue(booking, "unqualified")
    for technician in Person.objects.filter(is_lab_technician=True, is_active=True):
        if technician.pk != booking.person_id:
            OutboxEmail.queue(booking, "unqualified_staff", to=technician)


def send_outbox(now: datetime | None = None) -> int:
    """Send the queued e-mails that are due; returns how many were sent.

    Safe with several senders at once: each row is claimed by a conditional update (a lease
    of OUTBOX_LEASE) before it is sent. A failed send is retried after 1, 2, 4… minutes (at
    most OUTBOX_MAX_DELAY apart), never dropped.
    """
    now = now or timezone.now()
    sent = 0
    due = (
        OutboxEmail.objects.filter(sent_at__isnull=True, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", "next_attempt_at")[:OUTBOX_BATCH]
    )
    for pk, planned in list(due):
        claimed = OutboxEmail.objects.filter(
            pk=pk, sent_at__isnull=True, next_attempt_at=planned
        ).update(next_attempt_at=now + OUTBOX_LEASE)
        if not claimed:
            continue  # another sender has it
        row = OutboxEmail.objects.select_related(
            "booking__resource", "booking__person", "recipient"
        ).get(pk=pk)
        try:
            deliver(row.booking, row.what, row.recipient)
        except Exception as e:  # the mail server is down, or the message could not be built
            attempts = row.attempts + 1
            delay = min(timedelta(minutes=2 ** min(attempts - 1, 10)), OUTBOX_MAX_DELAY)
            log.warning(
                "e-mail %s not sent (attempt %s), retrying in %s: %s", row, attempts, delay, e
            )
            OutboxEmail.objects.filter(pk=pk).update(
                attempts=attempts, next_attempt_at=now + delay, last_error=str(e)[:250]
            )
        else:
            OutboxEmail.objects.filter(pk=pk).update(sent_at=timezone.now())
            sent += 1
    OutboxEmail.objects.filter(sent_at__lt=now - OUTBOX_KEEP_SENT).delete()
    return sent


def deliver(booking: Booking, what: str, recipient=None):
    """Render and send one booking e-mail now (to the booker, or `recipient`), in the
    recipient's language; raises if the backend fails."""
    if what == "created" and booking.status == Status.PENDING:
        what = "pending"
    cancelled = what in ("cancelled", "rejected", "released")
    person = recipient or booking.person
    tz = catalogue.current().zone_of(booking.resource_id)
    with translation.override(person.language or settings.LANGUAGE_CODE):
        subject = _(SUBJECTS[what]) % {"what": _what(booking, tz)}
        local_start = clock.local(booking.start, tz)
        local_end = clock.local(booking.end, tz)
        notice = []
        if what in NOTICES:
            deadline = booking.unqualified_deadline or booking.start
            booker = booking.person.get_full_name() or booking.person.email
            if booking.tenant_id:
                booker += f" ({booking.tenant.name})"
            notice = [
                _(NOTICES[what])
                % {"deadline": f"{clock.local(deadline, tz):%d/%m/%Y %H:%M}", "person": booker},
                "",
            ]
        body = "\n".join(
            [
                subject,
                "",
                *notice,
                f"{booking.resource.code} {booking.resource.name}",
                f"{local_start:%d/%m/%Y %H:%M} – {local_end:%H:%M}",
                booking.note,
                "",
                f"{settings.SITE_URL}/",
            ]
        )
    ics = None if what in NOTICES else ical.invitation(booking, cancelled)
    message = build(person.email, subject, body, ics, cancelled)
    message.send()


def series_created(series, result):
    person = series.person
    with translation.override(person.language or settings.LANGUAGE_CODE):
        subject = _("Recurring booking: %(n)s occurrences booked") % {"n": len(result.booked)}
        lines = [subject, ""]
        tz = catalogue.current().zone_of(series.resource_id)
        for refusal in result.refused:
            local = clock.local(refusal.start, tz)
            lines.append(f"  ✗ {local:%d/%m/%Y %H:%M} — {refusal.detail}")
    feed = ical.feed(series.title or series.resource.name, result.booked)
    send(person.email, subject, "\n".join(lines), feed, cancelled=False)


def waitlist_offer(entry):
    person = entry.person
    tz = catalogue.current().zone_of(entry.resource_id)
    with translation.override(person.language or settings.LANGUAGE_CODE):
        local = clock.local(entry.start, tz)
        subject = _("A slot you waited for is free: %(what)s") % {
            "what": f"{entry.resource.name} {local:%d/%m/%Y %H:%M}"
        }
        body = _("Book it before %(t)s on %(url)s") % {
            "t": clock.local(entry.offer_expires_at, tz).strftime("%H:%M"),
            "url": settings.SITE_URL,
        }
    send(person.email, subject, body, None, cancelled=False)


def build(to: str, subject: str, body: str, ics: bytes | None, cancelled: bool) -> EmailMessage:
    message = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    if ics:
        method = "CANCEL" if cancelled else "REQUEST"
        message.attach("invite.ics", ics, f"text/calendar; charset=utf-8; method={method}")
    return message


def send(to: str, subject: str, body: str, ics: bytes | None, cancelled: bool):
    message = build(to, subject, body, ics, cancelled)
    try:
        message.send()
    except Exception:  # a mail server outage must not undo a booking
        log.exception("could not send %r to %s", subject, to)


def send_reminders(now: datetime | None = None) -> int:
    """Remind each booker once, an hour before the start. Conditional update: runs anywhere."""
    now = now or timezone.now()
    sent = 0
    due = Booking.objects.filter(
        status=Status.CONFIRMED,
        reminded_at__isnull=True,
        start__gt=now,
        start__lte=now + REMIND_BEFORE,
    )
    for booking in due:
        with transaction.atomic():
            if Booking.objects.filter(pk=booking.pk, reminded_at__isnull=True).update(
                reminded_at=now
            ):
                OutboxEmail.queue(booking, "reminder")
                sent += 1
    return sent
