"""The waitlist: queue for a taken slot; when it frees, the first in line is offered it.

An offer is a notice with a deadline, not a hold: the offered person books through the
normal booking function, so the conflict rule stays in one place.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from bookings.engine import Slot, book, conflicts_for, is_qualified
from bookings.models import HOLDING, Booking, Resource, WaitlistEntry
from campus.models import Person
from common.errors import DomainError, NotFound

OFFER_VALID = timedelta(minutes=30)


class WaitlistRefused(DomainError):
    """Queueing or taking an offer is refused (each with its code)."""


def visible_entries(person: Person):
    """Everyone sees only their own waitlist entries, staff included."""
    return WaitlistEntry.objects.filter(person=person).select_related("resource")


def join(
    person: Person,
    resource: Resource,
    start: datetime,
    end: datetime,
    *,
    now: datetime | None = None,
) -> WaitlistEntry:
    now = now or timezone.now()
    if end <= start:
        raise WaitlistRefused(_("The slot must end after it starts."), code="invalid_period")
    if start <= now:
        raise WaitlistRefused(_("This time is in the past."), code="in_the_past")
    if not conflicts_for([resource.pk], start, end, HOLDING):
        raise WaitlistRefused(_("This slot is free: book it directly."), code="slot_free")
    entry, _created = WaitlistEntry.objects.get_or_create(
        resource=resource,
        person=person,
        start=start,
        end=end,
        state__in=[WaitlistEntry.State.WAITING, WaitlistEntry.State.OFFERED],
        defaults={"tenant": person.tenant, "state": WaitlistEntry.State.WAITING},
    )
    return entry


def on_slot_freed(sender, *, resource_id, start, end, now, **kwargs):
    """`engine.slot_freed`'s receiver: offer the slot to the waitlist."""
    offer_freed_slot(resource_id, start, end, now=now)


def offer_freed_slot(
    resource_id: int, start: datetime, end: datetime, *, now: datetime | None = None
) -> WaitlistEntry | None:
    """Offer a freed slot to the first waiting person whose wish now fits and who may use the
    resource then (a machine's qualification); None if nobody."""
    now = now or timezone.now()
    waiting = WaitlistEntry.objects.filter(
        resource_id=resource_id,
        state=WaitlistEntry.State.WAITING,
        start__lt=end,
        end__gt=start,
        start__gt=now,
    ).select_related("person", "resource")
    for entry in waiting:
        if conflicts_for([resource_id], entry.start, entry.end, HOLDING):
            continue
        if not is_qualified(entry.person, entry.resource, entry.start, entry.end):
            continue  # booking it would be refused: the next in line gets it
        # Conditional update: with several workers, one offer per entry.
        if WaitlistEntry.objects.filter(pk=entry.pk, state=WaitlistEntry.State.WAITING).update(
            state=WaitlistEntry.State.OFFERED, offer_expires_at=now + OFFER_VALID
        ):
            entry.state = WaitlistEntry.State.OFFERED
            entry.offer_expires_at = now + OFFER_VALID
            from bookings import notify

            transaction.on_commit(lambda e=entry: notify.waitlist_offer(e))
            return entry
    return None


def accept(person: Person, entry: WaitlistEntry, *, now: datetime | None = None) -> Booking:
    now = now or timezone.now()
    if entry.person_id != person.pk:
        raise NotFound(_("No such waitlist entry."))
    if entry.state != WaitlistEntry.State.OFFERED or entry.offer_expires_at < now:
        raise WaitlistRefused(_("This offer is no longer open."), code="offer_closed")
    with transaction.atomic():
        booking = book(person, Slot(entry.resource, entry.start, entry.end), now=now)
        entry.state = WaitlistEntry.State.BOOKED
        entry.booking = booking
        entry.save(update_fields=["state", "booking"])
    return booking


def leave(person: Person, entry: WaitlistEntry) -> WaitlistEntry:
    if entry.person_id != person.pk:
        raise NotFound(_("No such waitlist entry."))
    if entry.state in (WaitlistEntry.State.WAITING, WaitlistEntry.State.OFFERED):
        entry.state = WaitlistEntry.State.CANCELLED
        entry.save(update_fields=["state"])
    return entry


def expire_offers(now: datetime | None = None) -> int:
    """Close offers past their deadline and pass each slot to the next in line."""
    now = now or timezone.now()
    expired = 0
    for entry in WaitlistEntry.objects.filter(
        state=WaitlistEntry.State.OFFERED, offer_expires_at__lt=now
    ):
        if WaitlistEntry.objects.filter(pk=entry.pk, state=WaitlistEntry.State.OFFERED).update(
            state=WaitlistEntry.State.EXPIRED
        ):
            expired += 1
            offer_freed_slot(entry.resource_id, entry.start, entry.end, now=now)
    return expired
