"""Equipment status with its history, incidents, after-use check-off, maintenance windows and
the trainings technicians record (qualifications granted and revoked).

Every status change goes through `set_status`, which writes the history row in the same
transaction. Maintenance windows are bookings (`is_maintenance`) made by `bookings.engine`;
placing one over existing bookings cancels them (never charged), tells their owners and
offers them the next free slots.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from bookings import availability, catalogue, engine, notify
from bookings.models import HOLDING, Booking, Resource, Status
from campus import clock
from campus.models import Person
from common.errors import DomainError, Forbidden
from labs import lost_qualifications, qualifications
from labs.models import Equipment, Incident, Qualification, StatusChange, UsageSession

# How bad a status is: an incident never makes a machine look better than it is.
SEVERITY = {
    Equipment.Status.AVAILABLE: 0,
    Equipment.Status.IN_USE: 0,
    Equipment.Status.TO_CHECK: 1,
    Equipment.Status.MAINTENANCE: 2,
    Equipment.Status.OUT_OF_ORDER: 3,
}
OFFERED_SLOTS = 3
OFFER_SEARCH_DAYS = 14


class LabStateError(DomainError):
    """The machine or record is not in a state that allows this."""

    code = "invalid_state"


def require_lab_staff(person: Person) -> None:
    if not person.runs_labs:
        raise Forbidden(
            _("Only a lab technician or facility staff may do this."), code="technician_only"
        )


# ------------------------------------------------------------------ who sees what
# One function per object type, for the API's lists and details and the portal's pages.


def visible_equipment(person: Person):
    """The machines in service for everyone; lab technicians and facility staff also see
    those withdrawn from booking (their resource inactive)."""
    qs = Equipment.objects.select_related("resource__policy", "location")
    return qs if person.runs_labs else qs.filter(resource__is_active=True)


def visible_qualifications(person: Person):
    """One's own; a tenant admin also their tenant's people's; technicians and staff all."""
    qs = Qualification.objects.select_related("person", "equipment__resource")
    if person.runs_labs:
        return qs
    if person.is_tenant_admin and person.tenant_id:
        return qs.filter(Q(person=person) | Q(person__tenant_id=person.tenant_id))
    return qs.filter(person=person)


def visible_incidents(person: Person):
    """The incidents one reported and one's tenant's; technicians and staff all."""
    qs = Incident.objects.select_related("equipment__resource")
    if person.runs_labs:
        return qs
    scope = Q(reported_by=person)
    if person.tenant_id:
        scope |= Q(tenant_id=person.tenant_id)
    return qs.filter(scope)


def visible_maintenance_windows(person: Person):
    """The maintenance windows of machines still holding their slot, for anyone signed in:
    when a machine is unavailable is no one's private data."""
    return Booking.objects.select_related("resource", "person", "tenant").filter(
        is_maintenance=True, status__in=HOLDING, resource__kind=Resource.Kind.EQUIPMENT
    )


def _locked(equipment: Equipment) -> Equipment:
    return Equipment.objects.select_for_update().select_related("resource").get(pk=equipment.pk)


def set_status(
    equipment: Equipment,
    status: str,
    *,
    by: Person | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> Equipment:
    """Change a machine's status and record it in its history (no row if unchanged)."""
    now = now or timezone.now()
    with transaction.atomic():
        eq = _locked(equipment)
        if eq.status != status:
            StatusChange.objects.create(
                equipment=eq,
                old_status=eq.status,
                new_status=status,
                at=now,
                by=by,
                reason=reason[:250],
            )
            eq.status = status
            eq.save(update_fields=["status"])
    equipment.status = status
    return eq


def settled_status(equipment: Equipment) -> str:
    """The status a machine returns to once a problem is cleared: its worst open incident,
    else in use while a session runs, else available."""
    worst = None
    for severity in equipment.incidents.filter(closed_at__isnull=True).values_list(
        "severity", flat=True
    ):
        if worst is None or SEVERITY[severity] > SEVERITY[worst]:
            worst = severity
    if worst is not None:
        return worst
    if UsageSession.objects.filter(equipment=equipment, stopped_at__isnull=True).exists():
        return Equipment.Status.IN_USE
    return Equipment.Status.AVAILABLE


def report_incident(
    person: Person,
    equipment: Equipment,
    severity: str,
    description: str,
    *,
    now: datetime | None = None,
) -> Incident:
    """Anyone may report a problem; the machine goes “to check” or “out of order” (or stays
    worse) until a technician closes the incident."""
    now = now or timezone.now()
    with transaction.atomic():
        eq = _locked(equipment)
        incident = Incident.objects.create(
            equipment=eq,
            reported_by=person,
            tenant_id=person.tenant_id,
            severity=severity,
            description=description,
            reported_at=now,
        )
        if SEVERITY[severity] > SEVERITY[eq.status]:
            set_status(
                eq,
                severity,
                by=person,
                reason=_("Incident #%(n)s") % {"n": incident.pk},
                now=now,
            )
    return incident


def close_incident(
    technician: Person, incident: Incident, *, resolution: str = "", now: datetime | None = None
) -> Incident:
    require_lab_staff(technician)
    now = now or timezone.now()
    with transaction.atomic():
        eq = _locked(incident.equipment)
        updated = Incident.objects.filter(pk=incident.pk, closed_at__isnull=True).update(
            closed_at=now, closed_by=technician, resolution=resolution[:250]
        )
        if not updated:
            raise LabStateError(_("This incident is already closed."))
        if eq.status in (Equipment.Status.TO_CHECK, Equipment.Status.OUT_OF_ORDER):
            set_status(
                eq,
                settled_status(eq),
                by=technician,
                reason=_("Incident #%(n)s closed") % {"n": incident.pk},
                now=now,
            )
    incident.refresh_from_db()
    return incident


def sign_off(technician: Person, equipment: Equipment, *, now: datetime | None = None):
    """After-use check-off: a technician signs a machine “to check” back into service."""
    require_lab_staff(technician)
    with transaction.atomic():
        eq = _locked(equipment)
        if eq.status != Equipment.Status.TO_CHECK:
            raise LabStateError(_("This machine is not waiting for a check."), code="not_to_check")
        if eq.incidents.filter(closed_at__isnull=True).exists():
            raise LabStateError(
                _("Close the open incidents of this machine first."), code="open_incidents"
            )
        return set_status(
            eq, settled_status(eq), by=technician, reason=_("Checked after use"), now=now
        )


# ------------------------------------------------------------------ trainings


def record_training(
    technician: Person,
    person: Person,
    *,
    equipment: Equipment | None = None,
    equipment_class: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    renew_on_use_months: int | None = None,
    note: str = "",
) -> Qualification:
    """A technician records a training: the model's checks (one target, dates in order,
    renewal range) run first; a `ValidationError` names the failing fields."""
    require_lab_staff(technician)
    q = Qualification(
        person=person,
        equipment=equipment,
        equipment_class=equipment_class,
        valid_from=valid_from or timezone.now(),
        valid_until=valid_until,
        renew_on_use_months=renew_on_use_months,
        note=note,
        trained_by=technician,
    )
    q.full_clean()
    q.save()
    return q


@dataclass
class Revocation:
    qualification: Qualification
    # The bookings left without a valid qualification: flagged, then cancelled free of
    # charge after their policy's notice unless the person is qualified again.
    affected: list[Booking]


def revocation_affects(qualification: Qualification, *, now: datetime | None = None):
    """The future bookings that revoking this qualification now would leave without a valid
    qualification (no other one of the person covers them), by the one rule
    (`labs.qualifications`)."""
    now = now or timezone.now()
    mine = lost_qualifications.bookings_to_review(now, person_ids=[qualification.person_id])
    mine = [b for b in mine if b.start > now]
    before = {b.pk for b in qualifications.unqualified(mine)}
    after = qualifications.unqualified(mine, revoking=qualification, at=now)
    return [b for b in after if b.pk not in before]


def revoke_qualification(
    technician: Person, qualification: Qualification, *, now: datetime | None = None
) -> Revocation:
    """Revoke a qualification from now on (a conditional update: revoked once). The bookings
    it leaves uncovered are flagged at once, their booker and the technicians told
    (`engine.review_qualifications`), all in one transaction."""
    require_lab_staff(technician)
    now = now or timezone.now()
    with transaction.atomic():
        affected = revocation_affects(qualification, now=now)
        updated = Qualification.objects.filter(pk=qualification.pk, revoked_at__isnull=True).update(
            revoked_at=now, revoked_by=technician
        )
        if not updated:
            raise LabStateError(_("This qualification is already revoked."))
        lost_qualifications.review_qualifications(now, person_ids=[qualification.person_id])
    qualification.refresh_from_db()
    flagged = Booking.objects.select_related("resource", "person", "tenant").filter(
        pk__in=[b.pk for b in affected]
    )
    return Revocation(qualification, list(flagged.order_by("start", "pk")))


# ------------------------------------------------------------------ maintenance windows


@dataclass
class MaintenanceResult:
    window: Booking
    affected: list[Booking]
    # booking id → the next free (start, end) slots of the same length, after the window
    offers: dict[int, list[tuple[datetime, datetime]]] = field(default_factory=dict)


def affected_bookings(equipment: Equipment, start: datetime, end: datetime) -> list[Booking]:
    """The holding bookings a window over [start, end] would collide with, on the machine
    or its companions (the engine books the window on them too); one per companion group,
    the machine's own when it is in the group."""
    resources = [equipment.resource, *equipment.resource.companions.all()]
    by_group: dict = {}
    for res in resources:
        b_start, b_end = engine.blocked_range(res, engine.policy_for(res), start, end)
        for b in engine.conflicts_for([res.pk], b_start, b_end, HOLDING):
            if b.is_maintenance:
                continue
            key = b.group or b.pk
            if key not in by_group or b.resource_id == equipment.resource_id:
                by_group[key] = b
    return sorted(by_group.values(), key=lambda b: (b.start, b.pk))


def next_free_slots(resource, duration: timedelta, after: datetime, count: int = OFFERED_SLOTS):
    """Up to `count` free slots of `duration` on the resource, the first at or after `after`."""
    offers = []
    day = clock.today(catalogue.current().zone_of(resource.pk), after)
    for i in range(OFFER_SEARCH_DAYS):
        for s, e in availability.free_slots(resource, day + timedelta(days=i)):
            s = max(s, after)
            if e - s >= duration:
                offers.append((s, s + duration))
                if len(offers) == count:
                    return offers
    return offers


def schedule_maintenance(
    person: Person,
    equipment: Equipment,
    start: datetime,
    end: datetime,
    *,
    title: str = "",
    now: datetime | None = None,
) -> MaintenanceResult:
    """Book a maintenance window; bookings in its way are cancelled (free of charge), their
    owners told, and offered the next free slots. All of it or nothing."""
    require_lab_staff(person)
    now = now or timezone.now()
    title = title or _("Maintenance")
    with transaction.atomic():
        affected = affected_bookings(equipment, start, end)
        for booking in affected:
            if booking.status == Status.CHECKED_IN:
                raise LabStateError(
                    _("A booking in progress is in the way: stop it first."),
                    code="booking_in_progress",
                    booking_id=booking.pk,
                )
            engine.cancel(person, booking, now=now, reason=title, charge=False)
        window = engine.book(
            person,
            engine.Slot(equipment.resource, start, end, title),
            now=now,
            is_maintenance=True,
            notify=False,
        )
        result = MaintenanceResult(window, [Booking.objects.get(pk=b.pk) for b in affected])
        for booking in result.affected:
            result.offers[booking.pk] = next_free_slots(
                booking.resource, booking.end - booking.start, max(end, now)
            )
        for booking in result.affected:
            offers = result.offers[booking.pk]
            transaction.on_commit(lambda b=booking, o=offers: tell_owner(b, o))
    return result


def tell_owner(booking: Booking, offers: list[tuple[datetime, datetime]]):
    """E-mail a booker whose booking a maintenance window replaced, with other slots, in the
    machine's local time."""
    person = booking.person
    tz = catalogue.current().zone_of(booking.resource_id)
    with translation.override(person.language or settings.LANGUAGE_CODE):
        local = clock.local(booking.start, tz)
        subject = _(notify.SUBJECTS["maintenance"]) % {
            "what": f"{booking.resource.name} {local:%d/%m/%Y %H:%M}"
        }
        lines = [
            subject,
            "",
            _("Your booking was cancelled free of charge for a maintenance window."),
            "",
        ]
        if offers:
            lines.append(_("Next free slots:"))
            lines += [
                f"  {clock.local(s, tz):%d/%m/%Y %H:%M} – {clock.local(e, tz):%H:%M}"
                for s, e in offers
            ]
        lines += ["", f"{settings.SITE_URL}/"]
    notify.send(person.email, subject, "\n".join(lines), None, cancelled=False)
