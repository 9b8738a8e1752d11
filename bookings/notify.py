"""E-mails about bookings, each with an .ics invitation (METHOD REQUEST or CANCEL).

Sent after the transaction commits, through Django's e-mail backend; a failure to send is
logged and never undoes a booking.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from bookings import ical
from bookings.engine import building_tz
from bookings.models import Booking, Status

log = logging.getLogger(__name__)

REMIND_BEFORE = timedelta(hours=1)

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
}


def _what(booking: Booking) -> str:
    local = booking.start.astimezone(building_tz())
    return f"{booking.resource.name} {local:%d/%m/%Y %H:%M}"


def booking_changed(booking: Booking, what: str):
    if what == "created" and booking.status == Status.PENDING:
        what = "pending"
    cancelled = what in ("cancelled", "rejected", "released")
    person = booking.person
    with translation.override(person.language or settings.LANGUAGE_CODE):
        subject = _(SUBJECTS[what]) % {"what": _what(booking)}
        local_start = booking.start.astimezone(building_tz())
        local_end = booking.end.astimezone(building_tz())
        body = "\n".join(
            [
                subject,
                "",
                f"{booking.resource.code} {booking.resource.name}",
                f"{local_start:%d/%m/%Y %H:%M} – {local_end:%H:%M}",
                booking.note,
                "",
                f"{settings.SITE_URL}/",
            ]
        )
    send(person.email, subject, body, ical.invitation(booking, cancelled), cancelled)


def series_created(series, result):
    person = series.person
    with translation.override(person.language or settings.LANGUAGE_CODE):
        subject = _("Recurring booking: %(n)s occurrences booked") % {"n": len(result.booked)}
        lines = [subject, ""]
        for refusal in result.refused:
            local = refusal.start.astimezone(building_tz())
            lines.append(f"  ✗ {local:%d/%m/%Y %H:%M} — {refusal.detail}")
    feed = ical.feed(series.title or series.resource.name, result.booked)
    send(person.email, subject, "\n".join(lines), feed, cancelled=False)


def waitlist_offer(entry):
    person = entry.person
    with translation.override(person.language or settings.LANGUAGE_CODE):
        local = entry.start.astimezone(building_tz())
        subject = _("A slot you waited for is free: %(what)s") % {
            "what": f"{entry.resource.name} {local:%d/%m/%Y %H:%M}"
        }
        body = _("Book it before %(t)s on %(url)s") % {
            "t": entry.offer_expires_at.astimezone(building_tz()).strftime("%H:%M"),
            "url": settings.SITE_URL,
        }
    send(person.email, subject, body, None, cancelled=False)


def send(to: str, subject: str, body: str, ics: bytes | None, cancelled: bool):
    message = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    if ics:
        method = "CANCEL" if cancelled else "REQUEST"
        message.attach("invite.ics", ics, f"text/calendar; charset=utf-8; method={method}")
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
    for booking in due.select_related("resource", "person"):
        if Booking.objects.filter(pk=booking.pk, reminded_at__isnull=True).update(reminded_at=now):
            booking_changed(booking, "reminder")
            sent += 1
    return sent
