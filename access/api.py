"""Access endpoints: doors and controllers with their live state, remote unlock, lockdown,
badges, visitor passes, the access log (JSON and CSV) and who is inside.

Who sees what:
- doors, controllers, lockdown, unlock, door modes and occupancy: facility staff only (403
  for anyone else: doors are building equipment, not a tenant's data);
- badges: staff all; a tenant admin their tenant's people's badges and their visitors';
  anyone else their own. Issuing and suspending: staff, or a tenant admin within their tenant;
- visitor passes: staff all; a tenant admin those hosted by their tenant's people;
- the access log: staff all; a tenant admin their tenant's people's lines; anyone else their own.
Objects outside the caller's scope are 404, as if they did not exist. The badges' rules are
`access.badges`', the visits' `access.visitors`'.

Badge UIDs are taken in, hashed (`Credential.set_uid`) and dropped: never stored, echoed back
or logged.
"""

import itertools
from datetime import datetime, timedelta
from typing import Annotated, Literal

from django.db.models import OuterRef, Subquery
from django.http import StreamingHttpResponse
from django.utils import timezone
from ninja import Field, FilterLookup, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import model_validator

from access import badges, commands, occupancy, visitors
from access.badges import visible_credentials
from access.models import (
    AuditEvent,
    Controller,
    Credential,
    Door,
    SiteMode,
    visible_access_events,
    visible_doors,
)
from access.visitors import visible_visits
from campus import clock
from campus.auth import caller, require_staff
from campus.idempotency import idempotent
from campus.models import Person
from common import spreadsheet
from common.api import In, Pages, answers, choice, get_scoped
from common.edge import Flag, Id, Int, QueryFlag, QueryId, When, query_text
from common.errors import NotFound

router = Router(tags=["access"])

MAX_VISIT = timedelta(days=31)
Why = Annotated[str, Field(max_length=200, description="Why (kept in the audit log)")]


# ------------------------------------------------------------------ doors and controllers


class LastEvent(Schema):
    ts: datetime
    kind: str
    result: str
    reason: str


class DoorOut(Schema):
    id: str
    name: str
    kind: str
    controller_id: str
    controller_online: bool
    space_id: int | None
    space_code: str | None
    direction: str
    schedule: list | None
    pulse_ms: int
    mode: str
    mode_version: int
    is_active: bool
    last_event: LastEvent | None

    @staticmethod
    def resolve_controller_online(obj):
        return commands.is_online(obj.controller)

    @staticmethod
    def resolve_space_code(obj):
        return obj.space.code if obj.space_id else None

    @staticmethod
    def resolve_last_event(obj):
        if obj.last_ts is None:
            return None
        return {
            "ts": clock.local(obj.last_ts),
            "kind": obj.last_kind,
            "result": obj.last_result,
            "reason": obj.last_reason,
        }


def doors_queryset(person: Person):
    """The doors the person may see (staff only: access.models.visible_doors), each with its
    last event."""
    last = AuditEvent.objects.filter(door=OuterRef("pk")).order_by("-ts", "-id")
    return visible_doors(person).annotate(
        **{
            f"last_{name}": Subquery(last.values(name)[:1])
            for name in ("ts", "kind", "result", "reason")
        }
    )


class DoorFilter(FilterSchema):
    kind: Door.Kind | None = None
    controller: Annotated[query_text(64), FilterLookup("controller_id")] = None
    space: Annotated[QueryId | None, FilterLookup("space_id")] = None
    mode: Door.Mode | None = None


@router.get("/doors", response=list[DoorOut], summary="Doors with their live state (staff)")
@paginate(Pages)
@answers("staff_only")
def list_doors(request, filters: Query[DoorFilter]):
    return filters.filter(doors_queryset(caller(request))).order_by("id")


def _door(request, door_id: str) -> Door:
    door = doors_queryset(caller(request)).filter(pk=door_id).first()
    if door is None:
        raise NotFound(f"No door with id {door_id}.")
    return door


@router.get("/doors/{door_id}", response=DoorOut, summary="One door (staff)")
@answers("staff_only")
def get_door(request, door_id: str):
    return _door(request, door_id)


class UnlockIn(In):
    pulse_ms: Int | None = Field(None, ge=100, le=60000, description="Default: the door's")
    why: Why = ""


class UnlockOut(Schema):
    req_id: str
    door_id: str
    controller_id: str
    pulse_ms: int
    expires_at: datetime


@router.post(
    "/doors/{door_id}/unlock",
    response={202: UnlockOut},
    summary="Unlock a door once (staff); 409 offline or lockdown, 503 broker unavailable",
)
@answers("staff_only", "lockdown", "controller_offline", "broker_unavailable")
def unlock_door(request, door_id: str, payload: UnlockIn | None = None):
    payload = payload or UnlockIn()
    door = _door(request, door_id)
    sent = commands.unlock(door, by=caller(request), pulse_ms=payload.pulse_ms, why=payload.why)
    expires = datetime.fromtimestamp(sent["exp"] / 1000, tz=clock.building_tz())
    return Status(
        202,
        {
            "req_id": sent["req_id"],
            "door_id": door.pk,
            "controller_id": door.controller_id,
            "pulse_ms": sent["pulse_ms"],
            "expires_at": expires,
        },
    )


class DoorModeIn(In):
    mode: Door.Mode
    why: Why = ""


@router.post(
    "/doors/{door_id}/mode",
    response=DoorOut,
    summary="Set a door normal, held open or locked down (staff)",
)
@answers("staff_only", "broker_unavailable")
def set_door_mode(request, door_id: str, payload: DoorModeIn):
    door = _door(request, door_id)
    commands.set_door_mode(door, payload.mode, by=caller(request), why=payload.why)
    return _door(request, door_id)


class ControllerOut(Schema):
    id: str
    name: str
    is_active: bool
    online: bool
    last_seen: datetime | None
    last_heartbeat: datetime | None
    firmware: str
    acl_version: int | None
    mqtt_password_set: bool
    doors: list[str]

    @staticmethod
    def resolve_online(obj):
        return commands.is_online(obj)

    @staticmethod
    def resolve_last_seen(obj):
        return clock.local(obj.last_seen)

    @staticmethod
    def resolve_last_heartbeat(obj):
        return clock.local(obj.last_heartbeat)

    @staticmethod
    def resolve_mqtt_password_set(obj):
        return bool(obj.mqtt_password_hash)

    @staticmethod
    def resolve_doors(obj):
        return sorted(d.pk for d in obj.doors.all())


@router.get("/controllers", response=list[ControllerOut], summary="Controllers (staff)")
@paginate(Pages)
@answers("staff_only")
def list_controllers(request, online: QueryFlag | None = None):
    require_staff(request)
    qs = Controller.objects.prefetch_related("doors").order_by("id")
    if online is None:
        return qs
    return [c for c in qs if commands.is_online(c) == online]


# ------------------------------------------------------------------ lockdown


class LockdownOut(Schema):
    lockdown: bool
    version: int
    changed_at: datetime | None
    changed_by: str | None

    @staticmethod
    def resolve_changed_at(obj):
        return clock.local(obj.changed_at)

    @staticmethod
    def resolve_changed_by(obj):
        return obj.changed_by.get_full_name() if obj.changed_by_id else None


class LockdownIn(In):
    on: Flag
    confirm: Literal["LOCKDOWN"] = Field(
        description='Type "LOCKDOWN" to confirm, to lock down or to lift it'
    )
    why: Why = ""


@router.get("/lockdown", response=LockdownOut, summary="The site's lockdown state (staff)")
@answers("staff_only")
def get_lockdown(request):
    require_staff(request)
    return SiteMode.current()


@router.post(
    "/lockdown",
    response=LockdownOut,
    summary="Lock the site down or lift it (staff); 503 if controllers could not be told",
)
@answers("staff_only", "broker_unavailable")
def set_lockdown(request, payload: LockdownIn):
    person = require_staff(request)
    return commands.set_lockdown(payload.on, by=person, why=payload.why)


# ------------------------------------------------------------------ badges


class CredentialOut(Schema):
    id: int
    kind: str
    uid_hint: str
    label: str
    holder_id: int | None
    holder_name: str | None
    visitor_pass_id: int | None
    status: str
    valid_from: datetime | None
    valid_until: datetime | None
    override: bool
    created_at: datetime

    @staticmethod
    def resolve_holder_name(obj):
        return obj.holder.get_full_name() if obj.holder_id else None

    @staticmethod
    def resolve_valid_from(obj):
        return clock.local(obj.valid_from)

    @staticmethod
    def resolve_valid_until(obj):
        return clock.local(obj.valid_until)

    @staticmethod
    def resolve_created_at(obj):
        return clock.local(obj.created_at)


class CredentialFilter(FilterSchema):
    holder: Annotated[QueryId | None, FilterLookup("holder_id")] = None
    status: choice(Credential.Status) | None = None
    kind: choice(Credential.Kind) | None = None


@router.get("/credentials", response=list[CredentialOut], summary="Badges you may see")
@paginate(Pages)
def list_credentials(request, filters: Query[CredentialFilter]):
    return filters.filter(visible_credentials(caller(request))).order_by("-created_at", "-id")


@router.get("/credentials/{credential_id}", response=CredentialOut, summary="One badge")
def get_credential(request, credential_id: int):
    return get_scoped(visible_credentials(caller(request)), credential_id, "badge")


Uid = Annotated[
    str,
    Field(
        min_length=2,
        max_length=64,
        description="The badge UID in hex as the reader shows it (04:A1:B2:C3); only its keyed "
        "hash is kept",
    ),
]


class CredentialIn(In):
    uid: Uid
    holder_id: Id | None = Field(None, description="Required for a tenant admin")
    label: str = Field("", max_length=40)
    valid_from: When | None = None
    valid_until: When | None = None
    override: Flag = Field(False, description="Master card (staff only)")
    why: Why = ""


@router.post("/credentials", response={201: CredentialOut}, summary="Register a badge")
@answers("staff_only", "already_registered", "conflict")
@idempotent
def create_credential(request, payload: CredentialIn):
    credential = badges.register_badge(
        caller(request),
        payload.uid,
        holder_id=payload.holder_id,
        label=payload.label,
        valid_from=payload.valid_from,
        valid_until=payload.valid_until,
        override=payload.override,
        why=payload.why,
    )
    return Status(201, credential)


class ReasonIn(In):
    why: Why = ""


def _change_status(request, credential_id: int, status: str, payload: ReasonIn | None):
    person = caller(request)
    credential = get_scoped(visible_credentials(person), credential_id, "badge")
    return badges.set_badge_status(person, credential, status, why=payload.why if payload else "")


@router.post(
    "/credentials/{credential_id}/suspend", response=CredentialOut, summary="Suspend a badge"
)
@answers("staff_only", "invalid_transition")
def suspend_credential(request, credential_id: int, payload: ReasonIn | None = None):
    return _change_status(request, credential_id, Credential.Status.SUSPENDED, payload)


@router.post(
    "/credentials/{credential_id}/report-lost",
    response=CredentialOut,
    summary="Report a badge lost",
)
@answers("staff_only", "invalid_transition")
def report_lost_credential(request, credential_id: int, payload: ReasonIn | None = None):
    return _change_status(request, credential_id, Credential.Status.LOST, payload)


@router.post(
    "/credentials/{credential_id}/reactivate",
    response=CredentialOut,
    summary="Reactivate a suspended or found badge",
)
@answers("staff_only", "invalid_transition")
def reactivate_credential(request, credential_id: int, payload: ReasonIn | None = None):
    return _change_status(request, credential_id, Credential.Status.ACTIVE, payload)


# ------------------------------------------------------------------ visitor passes


class VisitorOut(Schema):
    id: int
    visitor_name: str
    visitor_company: str
    host_id: int
    host_name: str
    start: datetime
    end: datetime
    space_id: int | None
    badge: CredentialOut | None

    @staticmethod
    def resolve_host_name(obj):
        return obj.host.get_full_name()

    @staticmethod
    def resolve_start(obj):
        return clock.local(obj.start)

    @staticmethod
    def resolve_end(obj):
        return clock.local(obj.end)

    @staticmethod
    def resolve_badge(obj):
        return getattr(obj, "credential", None)


class VisitFilter(FilterSchema):
    start_from: Annotated[When | None, FilterLookup("end__gt")] = Field(None, alias="from")
    start_to: Annotated[When | None, FilterLookup("start__lt")] = Field(None, alias="to")
    host: Annotated[QueryId | None, FilterLookup("host_id")] = None


@router.get("/visitors", response=list[VisitorOut], summary="Visitor passes")
@paginate(Pages)
@answers("staff_only")
def list_visitors(request, filters: Query[VisitFilter]):
    return filters.filter(visible_visits(caller(request))).order_by("-start", "-id")


@router.get("/visitors/{visit_id}", response=VisitorOut, summary="One visitor pass")
@answers("staff_only")
def get_visitor(request, visit_id: int):
    return get_scoped(visible_visits(caller(request)), visit_id, "visitor pass")


class VisitorIn(In):
    visitor_name: str = Field(min_length=1, max_length=160)
    visitor_company: str = Field("", max_length=160)
    host_id: Id | None = Field(None, description="Default: you")
    start: When
    end: When
    space_id: Id | None = Field(None, description="The room visited, besides the entrance")
    uid: Uid | None = None
    label: str = Field("", max_length=40)
    why: Why = ""

    @model_validator(mode="after")
    def window(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_VISIT:
            raise ValueError("a visit lasts at most 31 days")
        return self


class BadgeIn(In):
    uid: Uid
    label: str = Field("", max_length=40)
    why: Why = ""


@router.post("/visitors", response={201: VisitorOut}, summary="Expect a visitor")
@answers("staff_only", "already_registered")
@idempotent
def create_visitor(request, payload: VisitorIn):
    person = caller(request)
    visit = visitors.expect_visitor(
        person,
        payload.visitor_name,
        payload.start,
        payload.end,
        visitor_company=payload.visitor_company,
        host_id=payload.host_id,
        space_id=payload.space_id,
        uid=payload.uid,
        label=payload.label,
        why=payload.why,
    )
    return Status(201, visible_visits(person).get(pk=visit.pk))


@router.post(
    "/visitors/{visit_id}/badge",
    response={201: VisitorOut},
    summary="Hand a visitor their badge",
)
@answers("staff_only", "already_registered")
@idempotent
def give_visitor_badge(request, visit_id: int, payload: BadgeIn):
    person = caller(request)
    visit = get_scoped(visible_visits(person), visit_id, "visitor pass")
    visitors.give_visitor_badge(person, visit, payload.uid, label=payload.label, why=payload.why)
    return Status(201, visible_visits(person).get(pk=visit.pk))


# ------------------------------------------------------------------ access log


class AccessEventOut(Schema):
    id: int
    ts: datetime
    kind: str
    door: str
    controller: str
    equipment: str
    person_id: int | None
    person_name: str | None
    credential_id: int | None
    badge_hint: str | None
    result: str
    reason: str
    latency_ms: int | None
    actor_id: int | None
    req_id: str | None
    detail: dict | None = Field(None, description="Staff only")

    @staticmethod
    def resolve_ts(obj):
        return clock.local(obj.ts)

    @staticmethod
    def resolve_person_name(obj):
        return obj.person.get_full_name() if obj.person_id else None

    @staticmethod
    def resolve_badge_hint(obj):
        return obj.credential.uid_hint if obj.credential_id else None

    @staticmethod
    def resolve_detail(obj, context):
        return obj.detail if caller(context["request"]).runs_facility else None


class AccessEventFilter(FilterSchema):
    start: Annotated[When | None, FilterLookup("ts__gte")] = Field(None, alias="from")
    end: Annotated[When | None, FilterLookup("ts__lt")] = Field(None, alias="to")
    door: query_text(64) = None
    person: Annotated[QueryId | None, FilterLookup("person_id")] = None
    result: query_text(20) = None
    reason: query_text(40) = None
    kind: choice(AuditEvent.Kind) | None = None

    @model_validator(mode="after")
    def window(self):
        if self.start and self.end and self.end <= self.start:
            raise ValueError("to must be after from")
        return self


def access_events(person: Person, filters: AccessEventFilter):
    return filters.filter(visible_access_events(person)).order_by("-ts", "-id")


@router.get("/access-events", response=list[AccessEventOut], summary="The access log, newest first")
@paginate(Pages)
def list_access_events(request, filters: Query[AccessEventFilter]):
    return access_events(caller(request), filters)


CSV_COLUMNS = [
    "time",
    "kind",
    "door",
    "controller",
    "equipment",
    "person",
    "email",
    "badge",
    "result",
    "reason",
    "latency_ms",
    "actor",
]


def _csv_rows(qs):
    writer = spreadsheet.Writer()
    yield spreadsheet.BOM + writer.writerow(CSV_COLUMNS)
    for e in qs.select_related("actor").iterator(chunk_size=2000):
        yield writer.writerow(
            (
                clock.local(e.ts).isoformat(timespec="seconds"),
                e.kind,
                e.door,
                e.controller,
                e.equipment,
                e.person.get_full_name() if e.person_id else "",
                e.person.email if e.person_id else "",
                f"…{e.credential.uid_hint}" if e.credential_id else "",
                e.result,
                e.reason,
                e.latency_ms,
                e.actor.email if e.actor_id else "",
            )
        )


@router.get(
    "/access-events.csv",
    summary="The access log as CSV (semicolons, UTF-8 with BOM, for spreadsheets)",
    response={200: None},
)
def export_access_events(request, filters: Query[AccessEventFilter]):
    rows = _csv_rows(access_events(caller(request), filters))
    # The header and the first line are read now: a query the database refuses (a number out
    # of range) is then answered as an error, not as a download cut short.
    head = [next(rows), *itertools.islice(rows, 1)]
    response = StreamingHttpResponse(
        itertools.chain(head, rows), content_type="text/csv; charset=utf-8"
    )
    stamp = clock.local(timezone.now()).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="access-events-{stamp}.csv"'
    return response


# ------------------------------------------------------------------ occupancy


class PresenceOut(Schema):
    name: str
    person_id: int | None
    tenant: str
    phone: str
    visitor_of: str
    entered_at: datetime
    door: str


class OccupancyOut(Schema):
    at: datetime
    since: datetime
    count: int
    people: list[PresenceOut]


@router.get("/occupancy", response=OccupancyOut, summary="Who is inside now (staff)")
@answers("staff_only")
def get_occupancy(request):
    require_staff(request)
    now = timezone.now()
    inside = occupancy.who_is_inside(now)
    return {
        "at": clock.local(now),
        "since": occupancy.since_midnight(now),
        "count": len(inside),
        "people": [{**vars(p), "entered_at": clock.local(p.entered_at)} for p in inside],
    }
