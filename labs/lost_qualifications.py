"""Bookings whose person lost the qualification they need: flagged, told, then cancelled.

When a qualification is revoked, or will have run out by a booking's end (the one rule,
`labs.qualifications.unqualified`), each future booking of the machines it covered is flagged
and its booker and the lab technicians told; the policy's `unqualified_notice_hours` later (at
the booking's start at the latest) it is cancelled free of charge through `bookings.engine`,
unless the person is qualified again by then, which lifts the flag. A revocation reviews at
once; the periodic jobs review the expiries.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from bookings import catalogue, engine, notify
from bookings.models import CANCELLABLE, Booking, OutboxEmail
from labs.qualifications import unqualified


@dataclass
class QualificationReview:
    flagged: list[Booking]
    cleared: list[Booking]
    cancelled: list[Booking]

    def __len__(self):
        return len(self.flagged) + len(self.cleared) + len(self.cancelled)


def bookings_to_review(now: datetime, person_ids=None) -> list[Booking]:
    """The bookings whose person must hold a qualification for them and that may still be
    flagged or cancelled: pending or confirmed, not yet started (or already flagged), of a
    machine or of a space whose policy admits qualified people only."""
    cat = catalogue.current()
    needing = [
        pk for pk, entry in cat.by_pk.items() if engine.needs_qualification(entry, entry.policy)
    ]
    qs = Booking.objects.filter(
        Q(start__gt=now) | Q(unqualified_at__isnull=False),
        status__in=CANCELLABLE,
        is_maintenance=False,
        resource_id__in=needing,
    )
    if person_ids is not None:
        qs = qs.filter(person_id__in=list(person_ids))
    return list(qs.select_related("resource", "person", "tenant").order_by("start", "pk"))


def unqualified_deadline(booking: Booking, flagged_at: datetime) -> datetime:
    """When a booking flagged at `flagged_at` is cancelled unless its booker is qualified
    again: the policy's notice later, at the booking's start at the latest."""
    notice = timedelta(hours=engine.policy_for(booking.resource).unqualified_notice_hours)
    return min(flagged_at + notice, booking.start)


def review_qualifications(now: datetime | None = None, *, person_ids=None) -> QualificationReview:
    """The bookings whose person holds no valid qualification over their time any more (one
    revoked, or run out before the end) are flagged, and the person and the lab technicians
    told; the policy's notice later (at the booking's start at the latest), those still
    unqualified are cancelled free of charge. A person qualified again before then has the
    flag lifted. Called by the periodic jobs and at once by a revocation (`person_ids`).

    Idempotent and safe with several instances: every flag change is a conditional update,
    and a cancellation goes through `cancel` (a second one finds it cancelled already).
    """
    now = now or timezone.now()
    candidates = bookings_to_review(now, person_ids)
    lapsed = {b.pk for b in unqualified(candidates)}
    review = QualificationReview([], [], [])
    for b in candidates:
        if b.pk in lapsed and b.unqualified_at is None and b.start > now:
            deadline = unqualified_deadline(b, now)
            with transaction.atomic():
                if Booking.objects.filter(
                    pk=b.pk, unqualified_at__isnull=True, status__in=CANCELLABLE
                ).update(unqualified_at=now, unqualified_deadline=deadline):
                    b.unqualified_at, b.unqualified_deadline = now, deadline
                    notify.unqualified(b)
                    review.flagged.append(b)
        elif b.pk not in lapsed and b.unqualified_at is not None:
            with transaction.atomic():
                if Booking.objects.filter(pk=b.pk, unqualified_at=b.unqualified_at).update(
                    unqualified_at=None, unqualified_deadline=None
                ):
                    b.unqualified_at = b.unqualified_deadline = None
                    OutboxEmail.queue(b, "requalified")
                    review.cleared.append(b)
    for b in candidates:
        if b.pk in lapsed and b.unqualified_deadline is not None and b.unqualified_deadline <= now:
            try:
                review.cancelled.append(
                    engine.cancel(
                        b.person,
                        b,
                        now=now,
                        reason=_("Cancelled free of charge: no valid qualification for it."),
                        charge=False,
                    )
                )
            except engine.InvalidState:
                continue  # cancelled meanwhile, or checked in: the relay refuses it anyway
    return review
