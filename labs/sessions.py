"""Usage sessions: one real use of a machine, started and stopped by the MQTT bridge (for
machines with a controller) or from the portal and the API (for the others).

`start_session` grants on the protocol's rule (docs/mqtt.md, "Sessions"): a
valid qualification now, a booking covering now (10 minutes early allowed), the machine free
and in service. The refusal codes are the protocol's deny reasons.
"""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from bookings import engine
from bookings.models import ACTIVE, Booking, Status
from campus.models import Person
from common.errors import DomainError, Forbidden
from labs import qualifications
from labs.maintenance import set_status
from labs.models import Equipment, UsageSession

EARLY_START = timedelta(minutes=10)


class SessionRefused(DomainError):
    """The machine may not be started now; `code` is the MQTT protocol's deny reason."""


class NotQualified(SessionRefused):
    code = "not_qualified"


def visible_sessions(person: Person):
    """One's own sessions and one's tenant's; technicians and staff all."""
    qs = UsageSession.objects.select_related("equipment__resource")
    if person.runs_labs:
        return qs
    scope = Q(person=person)
    if person.tenant_id:
        scope |= Q(tenant_id=person.tenant_id)
    return qs.filter(scope)


def require_may_stop(person: Person, session: UsageSession) -> str:
    """Who may stop a session by hand (API, admin): its user or their tenant admin (the stop
    is "manual"), a lab technician or facility staff ("staff"); 403 for anyone else. Returns
    the stop reason to record."""
    if session.person_id == person.pk or (
        person.is_tenant_admin and session.tenant_id == person.tenant_id
    ):
        return UsageSession.StopReason.MANUAL
    if person.runs_labs:
        return UsageSession.StopReason.STAFF
    raise Forbidden("Only the user, their tenant admin or a technician may stop it.")


def stop_by_hand(
    person: Person, session: UsageSession, *, energy_wh: int | None = None
) -> UsageSession:
    """Stop a session from the API: who may, and the reason recorded, is `require_may_stop`."""
    reason = require_may_stop(person, session)
    return stop_session(session, reason=reason, energy_wh=energy_wh, by=person)


def covering_booking(person: Person, equipment: Equipment, now: datetime) -> Booking | None:
    """The person's confirmed booking of the machine that covers now (10 minutes early ok)."""
    return (
        Booking.objects.filter(
            resource_id=equipment.resource_id,
            person=person,
            status__in=ACTIVE,
            is_maintenance=False,
            start__lte=now + EARLY_START,
            end__gt=now,
        )
        .order_by("start")
        .first()
    )


def start_session(
    person: Person,
    equipment: Equipment,
    *,
    source: str,
    now: datetime | None = None,
) -> UsageSession:
    """Open a session or raise SessionRefused (maintenance, not_qualified, no_booking,
    equipment_busy). Renews the person's qualifications on use and checks the booking in."""
    now = now or timezone.now()
    with transaction.atomic():
        eq = Equipment.objects.select_for_update().select_related("resource").get(pk=equipment.pk)
        if not eq.is_usable:
            raise SessionRefused(
                _("This machine is %(s)s.") % {"s": eq.get_status_display()}, code="maintenance"
            )
        if not qualifications.is_qualified(person.pk, eq.resource, now):
            raise NotQualified(_("You hold no valid qualification for this machine."))
        booking = covering_booking(person, eq, now)
        if booking is None:
            raise SessionRefused(_("You have no booking of this machine now."), code="no_booking")
        if UsageSession.objects.filter(equipment=eq, stopped_at__isnull=True).exists():
            raise SessionRefused(_("This machine is in use."), code="equipment_busy")
        try:
            with transaction.atomic():
                session = UsageSession.objects.create(
                    equipment=eq,
                    person=person,
                    tenant_id=person.tenant_id,
                    booking=booking,
                    started_at=now,
                    source=source,
                )
        except IntegrityError as e:  # the one-open-session constraint: a racing start won
            raise SessionRefused(_("This machine is in use."), code="equipment_busy") from e
        if booking.status == Status.CONFIRMED:
            engine.check_in(person, booking, now=now)
        qualifications.record_use(person.pk, eq, now)
        set_status(eq, Equipment.Status.IN_USE, by=person, reason=_("Session started"), now=now)
    return session


def stop_session(
    session: UsageSession,
    *,
    reason: str,
    now: datetime | None = None,
    energy_wh: int | None = None,
    by: Person | None = None,
) -> UsageSession:
    """Close a session (idempotent: a stopped session is returned as it is). A machine that
    needs a check after use goes “to check”, else back to available."""
    now = now or timezone.now()
    if reason not in UsageSession.StopReason.values:
        raise SessionRefused(_("Unknown stop reason."), code="invalid")
    with transaction.atomic():
        eq = Equipment.objects.select_for_update().get(pk=session.equipment_id)
        stopped = UsageSession.objects.filter(pk=session.pk, stopped_at__isnull=True).update(
            stopped_at=max(now, session.started_at), stop_reason=reason, energy_wh=energy_wh
        )
        if stopped and eq.status == Equipment.Status.IN_USE:
            after = Equipment.Status.TO_CHECK if eq.check_after_use else Equipment.Status.AVAILABLE
            set_status(eq, after, by=by or session.person, reason=_("Session stopped"), now=now)
    session.refresh_from_db()
    return session
