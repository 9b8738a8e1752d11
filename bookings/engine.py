"""The one place that writes bookings: book, move, cancel, approve, reject, check in, release.

Every path (portal, API, admin, recurring series, approvals, periodic jobs) calls these
functions. The conflict rule (invariant 1) is enforced here under a per-resource lock, so
that the caller gets the list of conflicting slots, and again by PostgreSQL's exclusion
constraint, so that no code path can ever store an overlap. On SQLite the IMMEDIATE
transaction serialises writers instead.

Lock order: resources by ascending id, taken as late as possible, then re-check (pretix's
pattern). Deadlocks and serialisation failures are retried, then answered "busy", never 500.
"""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext as _

from bookings import catalogue
from bookings import policy as rules
from bookings.models import (
    ACTIVE,
    HOLDING,
    Booking,
    BookingPolicy,
    OutboxEmail,
    Resource,
    Status,
)
from campus import clock
from campus.models import Person
from common.errors import Conflict, DomainError, Forbidden, NotFound

log = logging.getLogger(__name__)

CHECK_IN_OPENS_BEFORE = timedelta(minutes=15)
RETRIES = 4


class SlotTaken(Conflict):
    """The slot overlaps other bookings; `conflicts` lists them (start, end, resource)."""

    code = "conflict"


class QuotaExceeded(DomainError):
    code = "quota_exceeded"


class InvalidState(DomainError):
    code = "invalid_state"


class Busy(DomainError):
    code = "busy"


# ------------------------------------------------------------------ loading facts


def policy_for(resource: Resource) -> BookingPolicy:
    """The resource's own policy, else its kind's default, else the built-in defaults.

    From the in-memory catalogue (one version check), unless the resource was read with its
    policy (`select_related("policy")`). Many resources at once: `availability.policies_of`.
    """
    if resource.policy_id and Resource.policy.is_cached(resource):
        return resource.policy
    return catalogue.current().policy_of(resource)


def closed_days(policy: BookingPolicy, first: date, last: date) -> frozenset[date]:
    """The local days from first to last on which the policy's resources are closed."""
    return catalogue.current().closed_days(policy, first, last)


def margins(resource, pol: BookingPolicy) -> tuple[timedelta, timedelta]:
    """The time a booking blocks before and after itself: the policy's buffers plus the
    resource's warm-up and cool-down (a Resource or a catalogue entry)."""
    return (
        timedelta(minutes=pol.buffer_before_minutes + resource.warm_up_minutes),
        timedelta(minutes=pol.buffer_after_minutes + resource.cool_down_minutes),
    )


def blocked_range(resource, pol: BookingPolicy, start: datetime, end: datetime):
    before, after = margins(resource, pol)
    return start - before, end + after


def needs_qualification(resource, pol: BookingPolicy) -> bool:
    """Equipment always; a space when its policy admits qualified people only."""
    from labs.qualifications import requires_qualification

    return requires_qualification(resource) or pol.who_may_book == "qualified"


def is_qualified(person: Person, resource, start: datetime, end: datetime) -> bool:
    """Whether the person who will use the resource may, as far as qualifications go: the one
    qualification rule (labs.qualifications) when the resource asks for one, else True."""
    from labs.qualifications import is_qualified as holds

    if not needs_qualification(resource, policy_for(resource)):
        return True
    return holds(person.pk, resource, start, end)


def check_rules(
    person: Person,
    resource: Resource,
    start: datetime,
    end: datetime,
    attendees: int,
    now: datetime,
    maintenance: bool = False,
    cat: catalogue.Catalogue | None = None,
    acting: Person | None = None,
) -> BookingPolicy:
    """Apply the resource's policy to one request; returns the policy.

    `person` is who will use the resource: their qualification and their tenant count.
    `acting` (default: the person) is who books or moves it: staff skip the calendar rules,
    never the person's qualification. A maintenance window (staff or a lab technician
    blocking the resource) skips the calendar, qualification and unattended-run rules: only
    conflicts apply to it.
    """
    from labs.qualifications import check_unattended
    from labs.qualifications import is_qualified as holds

    acting = acting or person
    if not resource.is_active:
        raise rules.PolicyRefused(
            _("This resource cannot be booked at the moment."), code="unavailable"
        )
    cat = cat or catalogue.current()
    pol = cat.policy_of(resource)
    needed = needs_qualification(resource, pol)
    qualified = maintenance or not needed or holds(person.pk, resource, start, end)
    tz = cat.zone_of(resource.pk)
    who = rules.Requester(
        runs_facility=acting.runs_facility or maintenance,
        has_tenant=person.tenant_id is not None,
        tenant_active=person.tenant_id is None or person.tenant.status == "active",
        qualified=qualified,
        for_self=acting.pk == person.pk,
    )
    request = rules.Request(start=start, end=end, attendees=attendees, capacity=resource.capacity)
    days = cat.closed_days(pol, clock.local(start, tz).date(), clock.local(end, tz).date())
    rules.check(pol, request, who, now, tz, days, qualification_required=needed)
    if not who.runs_facility:
        check_unattended(resource, start, end, tz)
    return pol


def cost_cents(hourly_cents: int, minutes: int) -> int:
    """The price rule: an hourly price times minutes / 60, rounded half up to the cent, in
    integers. Bookings (here) and measured sessions (labs.usage) are both priced with it."""
    return (hourly_cents * minutes + 30) // 60


def price_cents(resource: Resource, tenant, start: datetime, end: datetime) -> int:
    minutes = int((end - start) / timedelta(minutes=1))
    return cost_cents(resource.price_per_hour_cents(tenant), minutes)


def check_quota(
    person: Person, resource: Resource, start: datetime, end: datetime, exclude_pk=None
):
    """A tenant's quota counts in the tenant's month, the default zone's (campus.clock)."""
    tenant = person.tenant
    if tenant is None or tenant.monthly_quota_minutes is None or not resource.uses_credits:
        return
    first, following = clock.month_bounds(clock.month_of(start))
    used = booked_minutes(tenant.pk, first, following, exclude_pk=exclude_pk)
    wanted = int((end - start) / timedelta(minutes=1))
    if used + wanted > tenant.monthly_quota_minutes:
        left = max(0, tenant.monthly_quota_minutes - used)
        raise QuotaExceeded(
            _(
                "This booking would exceed your company's monthly quota: %(left)s of %(quota)s "
                "minutes left this month."
            )
            % {"left": left, "quota": tenant.monthly_quota_minutes},
            quota_minutes=tenant.monthly_quota_minutes,
            left_minutes=left,
        )


def booked_minutes(tenant_id: int, first: datetime, following: datetime, exclude_pk=None) -> int:
    qs = Booking.objects.filter(
        tenant_id=tenant_id,
        resource__uses_credits=True,
        start__gte=first,
        start__lt=following,
        status__in=[*HOLDING, Status.RELEASED],
    )
    if exclude_pk:
        qs = qs.exclude(pk=exclude_pk)
    total = 0
    for start, end in qs.values_list("start", "end"):
        total += int((end - start) / timedelta(minutes=1))
    return total


# ------------------------------------------------------------------ locking and conflicts


def lock_resources(ids) -> None:
    """Row-lock the resources in id order: one booking writer per resource at a time.

    Without it, 50 racers on one slot could all reach the exclusion constraint together and
    deadlock among themselves (docs/design.md). On SQLite this is a no-op: the IMMEDIATE
    transaction already holds the database's write lock.
    """
    list(
        Resource.objects.select_for_update()
        .filter(pk__in=sorted(ids))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def conflicts_for(resource_ids, blocked_start, blocked_end, statuses, exclude=()):
    return list(
        Booking.objects.filter(resource_id__in=resource_ids, status__in=statuses)
        .blocking(blocked_start, blocked_end)
        .exclude(pk__in=list(exclude))
        .select_related("resource")
        .order_by("start")
    )


def describe(conflicts) -> list[dict]:
    return [
        {
            "resource": b.resource.code,
            "start": b.start.isoformat(),
            "end": b.end.isoformat(),
            "status": b.status,
            "booking_id": b.pk,
        }
        for b in conflicts
    ]


def slot_taken(conflicts) -> SlotTaken:
    first = conflicts[0]
    tz = catalogue.current().zone_of(first.resource_id)
    return SlotTaken(
        _("%(res)s is already booked from %(start)s to %(end)s.")
        % {
            "res": first.resource.code,
            "start": clock.local(first.start, tz).strftime("%d/%m/%Y %H:%M"),
            "end": clock.local(first.end, tz).strftime("%H:%M"),
        },
        conflicts=describe(conflicts),
    )


def just_taken(resource_ids, start, end) -> SlotTaken:
    taken = conflicts_for(resource_ids, start, end, ACTIVE)
    if taken:
        return slot_taken(taken)
    return SlotTaken(_("This slot was taken a moment ago; please pick another."), conflicts=[])


def with_retries(write: Callable):
    """Run a locked write; deadlocks, serialisation failures and "database is locked" retry."""
    for attempt in range(RETRIES):
        try:
            return write()
        except OperationalError as e:
            if attempt == RETRIES - 1:
                log.warning("booking write gave up after %s attempts: %s", RETRIES, e)
                raise Busy(_("The booking system is busy; please retry.")) from e
            time.sleep(0.02 * (2**attempt))
    return None  # unreachable


# ------------------------------------------------------------------ book


@dataclass
class Slot:
    """One wanted booking, as given by a caller."""

    resource: Resource
    start: datetime
    end: datetime
    title: str = ""
    attendees: int = 1


def counted(write):
    """Count bookings created and refused (by refusal code) for /metrics.

    A creation counts once committed: an all-or-nothing series that fails, or a preview
    (`series.book_series(dry_run=True)`), rolls its bookings back and counts none.
    """

    def wrapper(*args, **kwargs):
        from common.metrics import BOOKINGS_CREATED, BOOKINGS_REFUSED

        try:
            booking = write(*args, **kwargs)
        except DomainError as e:
            BOOKINGS_REFUSED.labels(e.code).inc()
            raise
        kind = booking.resource.kind
        transaction.on_commit(lambda: BOOKINGS_CREATED.labels(kind).inc())
        return booking

    wrapper.__doc__, wrapper.__name__ = write.__doc__, write.__name__
    return wrapper


@counted
def book(
    person: Person,
    slot: Slot,
    *,
    now: datetime | None = None,
    series=None,
    occurrence_start: datetime | None = None,
    notify: bool = True,
    by: Person | None = None,
    is_maintenance: bool = False,
) -> Booking:
    """Book a resource (and its companions, atomically) or raise a refusal.

    The booking is pending when the policy asks for approval (unless staff book), else
    confirmed. Raises SlotTaken (409) with the conflicting slots, PolicyRefused or NotAllowed
    (422/403), QuotaExceeded (422), Busy (503). `by` is who acts when it is not the booker
    (staff booking for someone from the back-office): whether they skip the calendar rules
    is theirs; the qualification that counts is always the booker's, who uses the machine.
    """
    now = now or timezone.now()
    acting = by or person
    resource = slot.resource
    if slot.start.tzinfo is None or slot.end.tzinfo is None:
        raise rules.PolicyRefused(_("Times must carry a time zone."), code="naive_time")
    cat = catalogue.current()
    entry = cat.by_pk.get(resource.pk)
    # The catalogue knows whether there are companions: no query for the (usual) none.
    companions = resource.companions.all() if entry is None or entry.companions else []
    resources = [resource, *companions]
    policies = {}
    for res in resources:
        policies[res.pk] = check_rules(
            person,
            res,
            slot.start,
            slot.end,
            slot.attendees if res.pk == resource.pk else 1,
            now,
            maintenance=is_maintenance,
            cat=cat,
            acting=acting,
        )
    if not is_maintenance:
        check_quota(person, resource, slot.start, slot.end)
    pending = (
        policies[resource.pk].approval_required and not acting.runs_facility and not is_maintenance
    )
    status = Status.PENDING if pending else Status.CONFIRMED
    tenant = person.tenant
    group = uuid.uuid4() if len(resources) > 1 else None

    def write():
        try:
            return _write()
        except IntegrityError as e:
            # The exclusion constraint caught what the check could not see. Caught outside
            # the transaction (rolled back by then): no savepoint on the way of every booking.
            log.info("exclusion constraint refused a booking: %s", e)
            raise just_taken([r.pk for r in resources], slot.start, slot.end) from e

    def _write():
        with transaction.atomic():
            lock_resources(r.pk for r in resources)
            made = []
            for res in resources:
                b_start, b_end = blocked_range(res, policies[res.pk], slot.start, slot.end)
                # A request for approval may queue beside other requests, not beside
                # confirmed bookings; a direct booking may not overlap either.
                taken = conflicts_for([res.pk], b_start, b_end, ACTIVE if pending else HOLDING)
                if taken:
                    raise slot_taken(taken)
                made.append(
                    Booking(
                        resource=res,
                        person=person,
                        tenant=tenant,
                        title=slot.title[:160],
                        attendees=slot.attendees,
                        start=slot.start,
                        end=slot.end,
                        blocked_start=b_start,
                        blocked_end=b_end,
                        status=status,
                        series=series,
                        occurrence_start=occurrence_start if res.pk == resource.pk else None,
                        group=group,
                        created_at=now,
                        is_maintenance=is_maintenance,
                        price_cents=0
                        if is_maintenance
                        else price_cents(res, tenant, slot.start, slot.end),
                    )
                )
            for booking in made:
                booking.save(force_insert=True)
            if notify:
                OutboxEmail.queue(made[0], "created")
            return made[0]

    return with_retries(write)


# ------------------------------------------------------------------ state changes


def _locked(booking_id: int) -> Booking:
    booking = (
        Booking.objects.select_for_update()
        .select_related("resource", "person")
        .filter(pk=booking_id)
        .first()
    )
    if booking is None:
        raise NotFound(_("No such booking."))
    return booking


def move(
    person: Person,
    booking: Booking,
    start: datetime,
    end: datetime,
    *,
    title: str | None = None,
    now: datetime | None = None,
) -> Booking:
    """Move a booking (and its companions) to a new time, re-checking every rule.

    `person` is who moves it (the booker, their tenant admin, staff): staff skip the calendar
    rules; the qualification checked is the booker's.
    """
    now = now or timezone.now()
    if booking.status not in HOLDING:
        raise InvalidState(_("Only a pending or confirmed booking can be moved."))
    if booking.status == Status.CHECKED_IN:
        raise InvalidState(_("A booking in progress cannot be moved."))
    siblings = _group_of(booking)
    owner = booking.person
    policies = {
        b.pk: check_rules(owner, b.resource, start, end, b.attendees, now, acting=person)
        for b in siblings
    }
    check_quota(owner, booking.resource, start, end, exclude_pk=booking.pk)

    def write():
        with transaction.atomic():
            lock_resources(b.resource_id for b in siblings)
            fresh = [_locked(b.pk) for b in siblings]
            for b in fresh:
                if b.status not in (Status.PENDING, Status.CONFIRMED):
                    raise InvalidState(_("This booking changed meanwhile; reload it."))
                b_start, b_end = blocked_range(b.resource, policies[b.pk], start, end)
                statuses = ACTIVE if b.status == Status.PENDING else HOLDING
                taken = conflicts_for(
                    [b.resource_id], b_start, b_end, statuses, exclude=[x.pk for x in fresh]
                )
                if taken:
                    raise slot_taken(taken)
                b.start, b.end, b.blocked_start, b.blocked_end = start, end, b_start, b_end
                b.price_cents = price_cents(b.resource, b.tenant, start, end)
                # The booker's qualification was checked for the new time just now.
                b.unqualified_at = b.unqualified_deadline = None
                if title is not None:
                    b.title = title[:160]
            try:
                with transaction.atomic():
                    for b in fresh:
                        b.save()
            except IntegrityError as e:
                raise just_taken([b.resource_id for b in fresh], start, end) from e
            moved = next(b for b in fresh if b.pk == booking.pk)
            OutboxEmail.queue(moved, "moved")
            return moved

    moved = with_retries(write)
    transaction.on_commit(
        lambda: offer_freed_slot(booking.resource_id, booking.start, booking.end, now)
    )
    return moved


def relabel(booking: Booking, *, title=None, note=None, attendees=None) -> Booking:
    """Change what a booking says, not when: title, note, attendees (within the capacity)."""
    fields = {}
    if title is not None:
        fields["title"] = title[:160]
    if note is not None:
        fields["note"] = note[:250]
    if attendees is not None:
        capacity = booking.resource.capacity
        if attendees > capacity > 0:
            raise rules.PolicyRefused(
                _("%(n)s attendees exceed the capacity of %(c)s.")
                % {"n": attendees, "c": capacity},
                code="over_capacity",
            )
        fields["attendees"] = attendees
    if fields:
        Booking.objects.filter(pk=booking.pk, status__in=HOLDING).update(**fields)
    return booking


def _group_of(booking: Booking) -> list[Booking]:
    if booking.group is None:
        return [booking]
    return list(
        Booking.objects.filter(group=booking.group)
        .select_related("resource")
        .order_by("resource_id")
    )


def cancel(
    person: Person,
    booking: Booking,
    *,
    now: datetime | None = None,
    reason: str = "",
    charge: bool = True,
) -> Booking:
    """Cancel a booking and its companions; late cancellations are charged per policy.

    Staff cancellations are never charged (the facility cancelled, not the tenant), nor are
    those with `charge=False` (a lab technician's maintenance window, labs.maintenance).
    """
    now = now or timezone.now()

    def write():
        with transaction.atomic():
            group = _group_of(booking)
            lock_resources(b.resource_id for b in group)
            fresh = [_locked(b.pk) for b in group]
            for b in fresh:
                if b.status not in HOLDING:
                    raise InvalidState(
                        _("This booking is already %(s)s.") % {"s": b.get_status_display()}
                    )
                if b.status == Status.CHECKED_IN:
                    raise InvalidState(_("A booking in progress cannot be cancelled."))
                pol = policy_for(b.resource)
                late = now > b.start - timedelta(hours=pol.free_cancellation_hours)
                if late and charge and not person.runs_facility and b.status == Status.CONFIRMED:
                    b.charge_cents = b.price_cents * pol.late_cancellation_percent // 100
                b.status = Status.CANCELLED
                b.cancelled_at = now
                b.note = reason[:250]
                b.save(update_fields=["status", "cancelled_at", "charge_cents", "note"])
            cancelled = next(b for b in fresh if b.pk == booking.pk)
            OutboxEmail.queue(cancelled, "cancelled")
            return cancelled

    cancelled = with_retries(write)
    _after_release(cancelled, now)
    return cancelled


def require_may_approve(person: Person, booking: Booking):
    """Who may approve or reject a request: facility staff; a lab technician the equipment
    bookings (the assisted sessions they run). `approve` and `reject` ask it themselves,
    whichever adapter calls them (API, approvals page, admin); 403 for anyone else."""
    if person.runs_facility:
        return
    if person.is_lab_technician and booking.resource.kind == Resource.Kind.EQUIPMENT:
        return
    raise Forbidden(
        "Only facility staff (or a lab technician, for equipment) may decide.", code="staff_only"
    )


def approve(staff: Person, booking: Booking, *, now: datetime | None = None) -> Booking:
    """Confirm a pending request (with its companion bookings); the competing requests that
    overlap any of them are rejected, with their own companions. A request whose booker is
    no longer qualified for it is refused (`not_qualified`): staff approve, the booker uses.
    Who may: `require_may_approve`."""
    require_may_approve(staff, booking)
    now = now or timezone.now()
    rejected: list[Booking] = []

    def write():
        with transaction.atomic():
            group = _group_of(booking)
            lock_resources(b.resource_id for b in group)
            fresh = [_locked(b.pk) for b in group]
            if any(b.status != Status.PENDING for b in fresh):
                raise InvalidState(_("Only a pending booking can be approved."))
            for b in fresh:
                if not is_qualified(b.person, b.resource, b.start, b.end):
                    raise rules.not_qualified(for_self=False)
            for b in fresh:
                taken = conflicts_for([b.resource_id], b.blocked_start, b.blocked_end, ACTIVE)
                if taken:
                    raise slot_taken(taken)
            mine = {b.pk for b in fresh}
            for b in fresh:
                b.status = Status.CONFIRMED
                b.decided_by = staff
                b.save(update_fields=["status", "decided_by"])
            for b in fresh:
                competing = conflicts_for(
                    [b.resource_id], b.blocked_start, b.blocked_end, [Status.PENDING], exclude=mine
                )
                for other in competing:
                    for sibling in _group_of(other):
                        if sibling.status == Status.PENDING and sibling.pk not in mine:
                            sibling.status = Status.REJECTED
                            sibling.decided_by = staff
                            sibling.note = _("Another request for this slot was approved.")
                            sibling.save(update_fields=["status", "decided_by", "note"])
                            rejected.append(sibling)
                            mine.add(sibling.pk)
            approved = next(b for b in fresh if b.pk == booking.pk)
            OutboxEmail.queue(approved, "approved")
            for other in rejected:
                OutboxEmail.queue(other, "rejected")
            return approved

    return with_retries(write)


def reject(staff: Person, booking: Booking, *, note: str = "") -> Booking:
    """Decline a pending request and its companion bookings. Who may: `require_may_approve`."""
    require_may_approve(staff, booking)

    def write():
        with transaction.atomic():
            fresh = [_locked(b.pk) for b in _group_of(booking)]
            if any(b.status != Status.PENDING for b in fresh):
                raise InvalidState(_("Only a pending booking can be rejected."))
            for b in fresh:
                b.status = Status.REJECTED
                b.decided_by = staff
                b.note = note[:250]
                b.save(update_fields=["status", "decided_by", "note"])
            rejected = next(b for b in fresh if b.pk == booking.pk)
            OutboxEmail.queue(rejected, "rejected")
            return rejected

    rejected = with_retries(write)
    _after_release(rejected, timezone.now())
    return rejected


def check_in(person: Person, booking: Booking, *, now: datetime | None = None) -> Booking:
    """Mark a booking as used: from 15 minutes before its start until its end. Idempotent."""
    now = now or timezone.now()
    with transaction.atomic():
        b = _locked(booking.pk)
        if b.status == Status.CHECKED_IN:
            return b
        if b.status != Status.CONFIRMED:
            raise InvalidState(_("Only a confirmed booking can be checked in."))
        if not (b.start - CHECK_IN_OPENS_BEFORE <= now < b.end):
            raise InvalidState(
                _("Check-in opens 15 minutes before the start."), code="check_in_closed"
            )
        b.status = Status.CHECKED_IN
        b.checked_in_at = now
        b.save(update_fields=["status", "checked_in_at"])
        return b


# ------------------------------------------------------------------ qualifications lost


def release_no_shows(now: datetime | None = None) -> list[Booking]:
    """Release confirmed bookings whose check-in window passed unused. Safe to run anywhere,
    any number of times at once: each release is a conditional update."""
    now = now or timezone.now()
    released = []
    candidates = Booking.objects.filter(
        status=Status.CONFIRMED,
        start__lte=now,
        end__gt=now - timedelta(days=1),
    ).select_related("resource__policy")
    for b in candidates:
        window = policy_for(b.resource).checkin_window_minutes
        if window == 0 or now < b.start + timedelta(minutes=window):
            continue
        with transaction.atomic():
            if not Booking.objects.filter(pk=b.pk, status=Status.CONFIRMED).update(
                status=Status.RELEASED, note=_("Released: nobody checked in.")
            ):
                continue
            b.status = Status.RELEASED
            OutboxEmail.queue(b, "released")
        released.append(b)
        _after_release(b, now, freed_from=now)
    return released


def _after_release(booking: Booking, now: datetime, freed_from: datetime | None = None):
    """Offer the freed slot to the waitlist, once the change is committed."""
    start = max(booking.start, freed_from) if freed_from else booking.start
    transaction.on_commit(lambda: offer_freed_slot(booking.resource_id, start, booking.end, now))


# A slot came free (a cancellation, a rejection, a release, a move away), sent once the change
# is committed. The waitlist listens (bookings.apps), so that the engine, which the waitlist
# books through, never imports it back.
slot_freed = Signal()


def offer_freed_slot(resource_id: int, start: datetime, end: datetime, now: datetime):
    slot_freed.send(Booking, resource_id=resource_id, start=start, end=end, now=now)


def visible_bookings(person: Person):
    """The bookings a person may see, for every list, detail and page: their own and their
    tenant's; a lab technician also every equipment booking (they approve the assisted ones
    and run the machines); facility staff all."""
    qs = Booking.objects.select_related("resource", "person", "tenant")
    if person.runs_facility:
        return qs
    scope = Q(person=person)
    if person.tenant_id:
        scope |= Q(tenant_id=person.tenant_id)
    if person.is_active and person.is_lab_technician:
        scope |= Q(resource__kind=Resource.Kind.EQUIPMENT)
    return qs.filter(scope)


def visible_resources(person: Person):
    """The bookable resources a person may see: the active ones; facility staff also those
    withdrawn from booking."""
    qs = Resource.objects.all()
    return qs if person.runs_facility else qs.filter(is_active=True)


def get_visible(person: Person, booking_id: int) -> Booking:
    """A booking the person may see (visible_bookings), else 404."""
    booking = visible_bookings(person).filter(pk=booking_id).first()
    if booking is None:
        raise NotFound(_("No booking with id %(id)s.") % {"id": booking_id})
    return booking


def require_may_change(person: Person, booking: Booking):
    """The booker, a tenant admin of the same tenant, or staff may change a booking."""
    if person.runs_facility or booking.person_id == person.pk:
        return
    if person.is_tenant_admin and booking.tenant_id == person.tenant_id:
        return
    raise Forbidden(_("Only the person who booked, their tenant admin or staff can do this."))
