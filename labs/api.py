"""Lab endpoints: equipment, qualifications, maintenance windows, incidents, usage sessions
and the monthly usage statement (JSON and CSV).

Every write goes through the labs functions (`rules`, `maintenance`, `sessions`) and, for
maintenance windows, the booking engine. Another tenant's objects answer 404.
"""

from datetime import datetime
from typing import Annotated

from django.db.models import OuterRef, Q, Subquery
from django.http import HttpResponse
from django.utils import timezone
from ninja import Field, FilterLookup, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import model_validator

from bookings import availability, catalogue, engine
from bookings.api import BookingOut, booking_queryset
from bookings.models import Resource
from campus import clock
from campus.auth import caller
from campus.idempotency import idempotent
from campus.models import Person
from common.api import In, Pages, answers, choice, existing, get_scoped
from common.edge import Id, Int, Month, QueryFlag, QueryId, When, query_text
from common.errors import Invalid
from labs import maintenance, sessions, usage
from labs.maintenance import (
    require_lab_staff,
    visible_equipment,
    visible_incidents,
    visible_maintenance_windows,
    visible_qualifications,
)
from labs.models import Equipment, Incident, UsageSession
from labs.qualifications import in_force
from labs.sessions import visible_sessions

router = Router(tags=["labs"])


class ControllerManaged(sessions.SessionRefused):
    code = "controller_managed"


# ------------------------------------------------------------------ equipment


class SlotOut(Schema):
    start: datetime
    end: datetime


class LabBrief(Schema):
    id: int
    code: str
    name: str


class EquipmentOut(Schema):
    id: int
    code: str
    name: str
    resource_id: int
    equipment_class: str
    model_name: str
    location: LabBrief
    status: str
    controller_kind: str
    energy_metering: bool
    unattended_allowed: bool
    check_after_use: bool
    assisted: bool = Field(description="A lab technician approves each booking")
    warm_up_minutes: int
    cool_down_minutes: int
    companions: list[str]
    price_per_hour_cents: int
    next_free_slot: SlotOut | None
    relay_online: bool | None = Field(description="As the MQTT bridge last heard; null: unknown")
    powered: bool | None
    current_session: int | None = Field(description="The open usage session's id")
    is_active: bool = Field(
        description="False: withdrawn from booking (seen by lab technicians and staff only)"
    )

    @staticmethod
    def resolve_code(obj):
        return obj.resource.code

    @staticmethod
    def resolve_name(obj):
        return obj.resource.name

    @staticmethod
    def resolve_assisted(obj, context):
        rows = getattr(context["request"], "equipment_rows", None)
        if rows is not None:
            return rows.catalogue().policy_of(obj.resource).approval_required
        return engine.policy_for(obj.resource).approval_required

    @staticmethod
    def resolve_warm_up_minutes(obj):
        return obj.resource.warm_up_minutes

    @staticmethod
    def resolve_cool_down_minutes(obj):
        return obj.resource.cool_down_minutes

    @staticmethod
    def resolve_companions(obj):
        return sorted(c.code for c in obj.resource.companions.all())

    @staticmethod
    def resolve_price_per_hour_cents(obj, context):
        return obj.resource.price_per_hour_cents(context["request"].auth.tenant)

    @staticmethod
    def resolve_is_active(obj):
        return obj.resource.is_active

    @staticmethod
    def resolve_current_session(obj):
        if hasattr(obj, "current_session"):
            return obj.current_session
        return obj.sessions.filter(stopped_at__isnull=True).values_list("pk", flat=True).first()

    @staticmethod
    def resolve_next_free_slot(obj, context):
        if not obj.is_usable or not obj.resource.is_active:
            return None
        rows = getattr(context["request"], "equipment_rows", None)
        if rows is not None:
            found = rows.next_free_slot(obj.resource)
        else:
            found = availability.next_free_slot(obj.resource, timezone.now())
        return {"start": found[0], "end": found[1]} if found else None


class EquipmentRows:
    """What the rows of one equipment list share, each read once for the whole list: the
    catalogue (policies) and every active machine's next free slot (two queries for the whole
    list, however many machines)."""

    def __init__(self):
        self.now = timezone.now()
        self._catalogue = None
        self._next_free = None

    def catalogue(self):
        if self._catalogue is None:
            self._catalogue = catalogue.current()
        return self._catalogue

    def next_free_slot(self, resource):
        if self._next_free is None:
            machines = list(Resource.objects.filter(is_active=True, equipment__isnull=False))
            self._next_free = availability.next_free_slots(machines, self.now)
        if resource.pk not in self._next_free:  # activated meanwhile
            return availability.next_free_slot(resource, self.now)
        return self._next_free[resource.pk]


class StatusChangeOut(Schema):
    old_status: str
    new_status: str
    at: datetime
    by_id: int | None
    reason: str


class EquipmentDetail(EquipmentOut):
    open_incidents: int
    status_history: list[StatusChangeOut]

    @staticmethod
    def resolve_open_incidents(obj):
        return obj.incidents.filter(closed_at__isnull=True).count()

    @staticmethod
    def resolve_status_history(obj):
        return list(obj.status_history.all()[:20])


def equipment_queryset(person: Person):
    """The machines the person may see (maintenance.visible_equipment), with what a row shows."""
    running = UsageSession.objects.filter(equipment=OuterRef("pk"), stopped_at__isnull=True)
    return (
        visible_equipment(person)
        .prefetch_related("resource__companions")
        .annotate(current_session=Subquery(running.values("pk")[:1]))
    )


class EquipmentFilter(FilterSchema):
    equipment_class: query_text(60) = None
    lab: Annotated[QueryId | None, FilterLookup("location_id")] = Field(
        None, description="Space id of the lab"
    )
    status: choice(Equipment.Status) | None = None


@router.get(
    "/equipment", response=list[EquipmentOut], summary="Equipment, with status and next free slot"
)
@paginate(Pages)
def list_equipment(request, filters: Query[EquipmentFilter]):
    request.equipment_rows = EquipmentRows()
    return filters.filter(equipment_queryset(caller(request))).order_by("resource__code")


@router.get("/equipment/{equipment_id}", response=EquipmentDetail, summary="One machine")
def get_equipment(request, equipment_id: int):
    return get_scoped(equipment_queryset(caller(request)), equipment_id, "equipment")


@router.post(
    "/equipment/{equipment_id}/sign-off",
    response=EquipmentDetail,
    summary="Sign a machine “to check” back into service (technicians)",
)
@answers("technician_only", "not_to_check", "open_incidents")
def sign_off_equipment(request, equipment_id: int):
    person = caller(request)
    require_lab_staff(person)
    equipment = get_scoped(equipment_queryset(person), equipment_id, "equipment")
    maintenance.sign_off(person, equipment)
    return equipment_queryset(person).get(pk=equipment.pk)


# ------------------------------------------------------------------ qualifications


class QualificationOut(Schema):
    id: int
    person_id: int
    person_name: str
    equipment_id: int | None
    equipment_code: str | None
    equipment_class: str
    valid_from: datetime
    valid_until: datetime | None
    renew_on_use_months: int | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    trained_by_id: int | None
    note: str
    in_force: bool

    @staticmethod
    def resolve_person_name(obj):
        return obj.person.get_full_name()

    @staticmethod
    def resolve_equipment_code(obj):
        return obj.equipment.resource.code if obj.equipment_id else None

    @staticmethod
    def resolve_in_force(obj):
        return in_force(obj, timezone.now())


class QualificationIn(In):
    person_id: Id
    equipment_id: Id | None = None
    equipment_class: str = Field("", max_length=60, pattern=r"^[-a-z0-9_]*$")
    valid_from: When | None = None
    valid_until: When | None = None
    renew_on_use_months: Int | None = Field(None, ge=1, le=120)
    note: str = Field("", max_length=250)

    @model_validator(mode="after")
    def target(self):
        if (self.equipment_id is None) == (not self.equipment_class):
            raise ValueError("give an equipment_id or an equipment_class, not both")
        return self


class QualificationFilter(Schema):
    person: QueryId | None = None
    equipment: QueryId | None = None
    valid_now: QueryFlag | None = None


@router.get(
    "/qualifications",
    response=list[QualificationOut],
    summary="Qualifications (yours; your tenant's for tenant admins; all for technicians)",
)
@paginate(Pages)
def list_qualifications(request, filters: Query[QualificationFilter]):
    qs = visible_qualifications(caller(request))
    if filters.person is not None:
        qs = qs.filter(person_id=filters.person)
    if filters.equipment is not None:
        eq = Equipment.objects.filter(pk=filters.equipment).first()
        cls = eq.equipment_class if eq else None
        qs = qs.filter(Q(equipment_id=filters.equipment) | Q(equipment_class=cls))
    rows = qs.order_by("person__last_name", "valid_from", "pk")
    if filters.valid_now is not None:
        now = timezone.now()
        rows = [q for q in rows if in_force(q, now) == filters.valid_now]
    return rows


@router.post(
    "/qualifications",
    response={201: QualificationOut},
    summary="Record a training (technicians and staff)",
)
@answers("technician_only")
@idempotent
def create_qualification(request, payload: QualificationIn):
    person = caller(request)
    require_lab_staff(person)
    q = maintenance.record_training(
        person,
        existing(Person, payload.person_id, "person_id"),
        equipment=existing(Equipment, payload.equipment_id, "equipment_id")
        if payload.equipment_id is not None
        else None,
        equipment_class=payload.equipment_class,
        valid_from=payload.valid_from,
        valid_until=payload.valid_until,
        renew_on_use_months=payload.renew_on_use_months,
        note=payload.note,
    )
    return Status(201, visible_qualifications(person).get(pk=q.pk))


class RevocationOut(QualificationOut):
    affected_bookings: list[BookingOut] = Field(
        description="The future bookings it left without a valid qualification: flagged, and "
        "cancelled free of charge after their policy's notice unless the person is qualified "
        "again"
    )


@router.post(
    "/qualifications/{qualification_id}/revoke",
    response=RevocationOut,
    summary="Revoke a qualification now, flagging the bookings it leaves uncovered "
    "(technicians and staff)",
)
@answers("technician_only", "invalid_state")
def revoke_qualification(request, qualification_id: int):
    person = caller(request)
    require_lab_staff(person)
    q = get_scoped(visible_qualifications(person), qualification_id, "qualification")
    done = maintenance.revoke_qualification(person, q)
    done.qualification.affected_bookings = done.affected
    return done.qualification


# ------------------------------------------------------------------ maintenance windows


class MaintenanceIn(In):
    equipment_id: Id
    start: When
    end: When
    title: str = Field("", max_length=160)

    @model_validator(mode="after")
    def period(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class OfferOut(Schema):
    booking_id: int
    slots: list[SlotOut]


class MaintenanceOut(Schema):
    window: BookingOut
    affected: list[BookingOut]
    offers: list[OfferOut]


class WindowFilter(FilterSchema):
    equipment: Annotated[QueryId | None, FilterLookup("resource__equipment__pk")] = None
    start_from: Annotated[When | None, FilterLookup("end__gt")] = Field(None, alias="from")
    start_to: Annotated[When | None, FilterLookup("start__lt")] = Field(None, alias="to")


@router.get(
    "/maintenance-windows", response=list[BookingOut], summary="Maintenance windows of machines"
)
@paginate(Pages)
def list_maintenance_windows(request, filters: Query[WindowFilter]):
    return filters.filter(visible_maintenance_windows(caller(request))).order_by("start", "pk")


@router.post(
    "/maintenance-windows",
    response={201: MaintenanceOut},
    summary="Block a machine for maintenance; bookings in the way are cancelled and offered "
    "other slots (technicians and staff)",
)
@answers("technician_only", "booking_in_progress", "conflict", "unavailable")
@idempotent
def create_maintenance_window(request, payload: MaintenanceIn):
    person = caller(request)
    require_lab_staff(person)
    equipment = existing(Equipment, payload.equipment_id, "equipment_id")
    result = maintenance.schedule_maintenance(
        person, equipment, payload.start, payload.end, title=payload.title
    )
    ids = [b.pk for b in result.affected]
    return Status(
        201,
        {
            "window": booking_queryset().get(pk=result.window.pk),
            "affected": list(booking_queryset().filter(pk__in=ids).order_by("start", "pk")),
            "offers": [
                {"booking_id": pk, "slots": [{"start": s, "end": e} for s, e in slots]}
                for pk, slots in result.offers.items()
            ],
        },
    )


# ------------------------------------------------------------------ incidents


class IncidentOut(Schema):
    id: int
    equipment_id: int
    equipment_code: str
    reported_by_id: int
    tenant_id: int | None
    severity: str
    description: str
    reported_at: datetime
    closed_at: datetime | None
    closed_by_id: int | None
    resolution: str

    @staticmethod
    def resolve_equipment_code(obj):
        return obj.equipment.resource.code


class IncidentIn(In):
    equipment_id: Id
    severity: Incident.Severity
    description: str = Field(min_length=1, max_length=4000)


class CloseIn(In):
    resolution: str = Field("", max_length=250)


class IncidentFilter(FilterSchema):
    equipment: Annotated[QueryId | None, FilterLookup("equipment_id")] = None
    open: Annotated[QueryFlag | None, FilterLookup("closed_at__isnull")] = None


@router.get(
    "/incidents", response=list[IncidentOut], summary="Incidents (your tenant's, or all for staff)"
)
@paginate(Pages)
def list_incidents(request, filters: Query[IncidentFilter]):
    return filters.filter(visible_incidents(caller(request)))


@router.get("/incidents/{incident_id}", response=IncidentOut, summary="One incident")
def get_incident(request, incident_id: int):
    return get_scoped(visible_incidents(caller(request)), incident_id, "incident")


@router.post("/incidents", response={201: IncidentOut}, summary="Report a problem on a machine")
@idempotent
def create_incident(request, payload: IncidentIn):
    equipment = existing(Equipment, payload.equipment_id, "equipment_id")
    incident = maintenance.report_incident(
        caller(request), equipment, payload.severity, payload.description
    )
    return Status(201, incident)


@router.post(
    "/incidents/{incident_id}/close",
    response=IncidentOut,
    summary="Close an incident (technicians and staff)",
)
@answers("technician_only", "invalid_state")
def close_incident(request, incident_id: int, payload: CloseIn | None = None):
    person = caller(request)
    require_lab_staff(person)
    incident = get_scoped(visible_incidents(person), incident_id, "incident")
    return maintenance.close_incident(
        person, incident, resolution=(payload or CloseIn()).resolution
    )


# ------------------------------------------------------------------ sessions


class SessionOut(Schema):
    id: int
    equipment_id: int
    equipment_code: str
    person_id: int
    tenant_id: int | None
    booking_id: int | None
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str
    energy_wh: int | None
    source: str

    @staticmethod
    def resolve_equipment_code(obj):
        return obj.equipment.resource.code


class SessionIn(In):
    equipment_id: Id


class StopIn(In):
    energy_wh: Int | None = Field(None, ge=0, le=10**9)


class SessionFilter(FilterSchema):
    equipment: Annotated[QueryId | None, FilterLookup("equipment_id")] = None
    open: Annotated[QueryFlag | None, FilterLookup("stopped_at__isnull")] = None
    tenant: Annotated[QueryId | None, FilterLookup("tenant_id")] = None


@router.get(
    "/sessions", response=list[SessionOut], summary="Usage sessions (your tenant's, or all)"
)
@paginate(Pages)
def list_sessions(request, filters: Query[SessionFilter]):
    return filters.filter(visible_sessions(caller(request)))


@router.post(
    "/sessions",
    response={201: SessionOut},
    summary="Start using a machine that has no controller",
)
@answers("controller_managed", "not_qualified", "maintenance", "no_booking", "equipment_busy")
@idempotent
def start_session(request, payload: SessionIn):
    equipment = existing(Equipment, payload.equipment_id, "equipment_id")
    if equipment.controller_kind != Equipment.ControllerKind.NONE:
        raise ControllerManaged("This machine starts with a badge at its controller.")
    session = sessions.start_session(caller(request), equipment, source="api")
    return Status(201, visible_sessions(caller(request)).get(pk=session.pk))


@router.post("/sessions/{session_id}/stop", response=SessionOut, summary="Stop a session")
@answers("forbidden")
def stop_session(request, session_id: int, payload: StopIn | None = None):
    person = caller(request)
    session = get_scoped(visible_sessions(person), session_id, "session")
    sessions.stop_by_hand(person, session, energy_wh=(payload or StopIn()).energy_wh)
    return visible_sessions(person).get(pk=session.pk)


# ------------------------------------------------------------------ usage statements


class UsageQuery(Schema):
    tenant: QueryId | None = Field(None, description="Tenant id; tenant admins may omit it")
    month: Month


class LineOut(Schema):
    day: str
    kind: str
    resource: str
    name: str
    basis: str
    minutes: int
    energy_wh: int
    unit_price_cents: int
    amount_cents: int
    booking_id: int | None


class StatementOut(Schema):
    tenant_id: int
    tenant: str
    tier: str
    month: str
    included_minutes: int
    lines: list[LineOut]
    totals: dict[str, int]


def _statement(request, q: UsageQuery) -> usage.Statement:
    tenant = usage.require_may_read_statement(caller(request), q.tenant)
    try:
        month = clock.parse_month(q.month)
    except ValueError as e:
        raise Invalid(f"month: {e}.", field="month") from e
    return usage.statement_for(tenant, month)


@router.get("/usage", response=StatementOut, summary="Monthly usage statement of a tenant")
@answers("forbidden", "not_found")
def usage_statement(request, q: Query[UsageQuery]):
    statement = _statement(request, q)
    return {
        **{k: getattr(statement, k) for k in ["tenant_id", "tenant", "tier", "month"]},
        "included_minutes": statement.included_minutes,
        "totals": statement.totals,
        "lines": [{**vars(line), "day": line.day.isoformat()} for line in statement.lines],
    }


class CsvQuery(UsageQuery):
    decimal: str = Field("point", pattern="^(point|comma)$")


@router.get(
    "/usage.csv",
    summary="Monthly usage statement as CSV (semicolons, UTF-8 with BOM; decimal=comma)",
    response={200: None},
)
@answers("forbidden", "not_found")
def usage_csv(request, q: Query[CsvQuery]):
    return csv_response(_statement(request, q), decimal_comma=q.decimal == "comma")


def csv_response(statement: usage.Statement, *, decimal_comma: bool) -> HttpResponse:
    """The statement as a CSV download, for the API and the portal alike."""
    body = usage.to_csv(statement, decimal_comma=decimal_comma)
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    name = f"usage-{statement.tenant_id}-{statement.month}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
