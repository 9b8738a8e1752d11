"""Booking endpoints: resources, availability, bookings, approvals, check-in, waitlist, feeds.

Every write goes through `bookings.engine` (or `series`, `waitlist` built on it). Inputs
use the strict edge types of `common.edge`: times without an offset are read as the
building's local time, and every date lies in its window.
"""

import json
from datetime import datetime, timedelta
from typing import Annotated, Literal

from django.conf import settings
from django.db.models import Q
from django.http import HttpResponse
from django.urls import reverse
from ninja import Field, FilterLookup, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import paginate
from pydantic import model_validator

from bookings import availability, catalogue, engine, series, waitlist
from bookings.catalogue import ResourceBrief, ResourceOut
from bookings.models import Booking, PersonFeed, Resource, WaitlistEntry
from bookings.models import Status as BookingStatus
from campus import clock
from campus.auth import caller
from campus.idempotency import idempotent
from common.api import In, Pages, RefusalOut, answers, choice, get_scoped
from common.edge import Day, Flag, Id, Int, QueryFlag, QueryId, When, query_int
from common.errors import Invalid, NotFound

router = Router(tags=["bookings"])

MAX_WINDOW = timedelta(days=31)


def resources_out(resources: list[Resource], person) -> list[dict]:
    """The API view of resources, from the in-memory catalogue (bookings.catalogue): one
    query however many there are."""
    cat = catalogue.current()
    tenant = person.tenant
    return [json.loads(cat.by_pk[r.pk].answer(tenant)) for r in resources if r.pk in cat.by_pk]


# What booking a slot may answer besides 201: the conflict and quota checks of the engine,
# the policy's refusals (bookings.policy), a withdrawn resource, a machine's unattended runs.
BOOKING_REFUSALS = (
    "conflict",
    "quota_exceeded",
    "unavailable",
    "overnight_not_allowed",
    "over_capacity",
    "not_qualified",
    "not_authorized",
    "tenant_suspended",
    "in_the_past",
    "too_short",
    "too_long",
    "not_aligned",
    "too_late",
    "too_far_ahead",
    "closed",
    "outside_opening_hours",
)

Kind = Literal["meeting_room", "auditorium", "lab", "workshop", "desk", "equipment"]


@router.get("/resources", response=list[ResourceOut], summary="Bookable resources")
@paginate(Pages)
def list_resources(request, kind: Kind | None = None):
    person = caller(request)
    qs = engine.visible_resources(person)
    if kind:
        qs = qs.filter(kind=kind)
    return resources_out(list(qs.order_by("code")), person)


@router.get("/resources/{resource_id}", response=ResourceOut, summary="One bookable resource")
def get_resource(request, resource_id: int):
    person = caller(request)
    resource = get_scoped(engine.visible_resources(person), resource_id, "resource")
    return resources_out([resource], person)[0]


class DayQuery(Schema):
    day: Day = Field(..., alias="date")


class SlotOut(Schema):
    start: datetime
    end: datetime


@router.get(
    "/resources/{resource_id}/free-slots",
    response=list[SlotOut],
    summary="Free slots of one resource on a day",
)
@paginate(Pages)
def resource_free_slots(request, resource_id: int, q: Query[DayQuery]):
    qs = engine.visible_resources(caller(request)).select_related("policy")
    resource = get_scoped(qs, resource_id, "resource")
    # The resource's local day and times, answered in its own site's zone.
    return [{"start": s, "end": e} for s, e in availability.free_slots(resource, q.day)]


class AvailabilityQuery(Schema):
    start: When
    end: When
    kind: Kind | None = None
    min_capacity: query_int(0, 100000) | None = None
    feature: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def window(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.end - self.start > MAX_WINDOW:
            raise ValueError("the window is at most 31 days")
        return self


class AvailabilityOut(Schema):
    items: list[ResourceOut]
    count: int


@router.get(
    "/availability",
    response=AvailabilityOut,
    summary="Resources free for a window (policies, buffers, opening hours applied)",
)
def free_resources(request, q: Query[AvailabilityQuery], page: Query[Pages.Input]):
    tenant = caller(request).tenant
    found = availability.free_entries(
        q.start, q.end, kind=q.kind, min_capacity=q.min_capacity, features=q.feature
    )
    shown = found[page.offset : page.offset + page.limit]
    # Each resource's answer was validated against ResourceOut and rendered once, when the
    # catalogue loaded: joining them costs ~0.1 ms instead of ~3 ms for 500 resources. The
    # page is {items, count} like every list's (Pages).
    items = b",".join(e.answer(tenant) for e in shown)
    body = b'{"items":[' + items + b'],"count":' + str(len(found)).encode() + b"}"
    return HttpResponse(body, content_type="application/json; charset=utf-8")


# ------------------------------------------------------------------ bookings


class BookingOut(Schema):
    id: int
    uid: str
    resource: ResourceBrief
    person_id: int
    person_name: str
    tenant_id: int | None
    title: str
    attendees: int
    start: datetime
    end: datetime
    status: str
    is_maintenance: bool
    series_id: int | None
    price_cents: int
    charge_cents: int
    checked_in_at: datetime | None
    created_at: datetime
    note: str
    unqualified_at: datetime | None = Field(
        description="Flagged: since then the booker holds no valid qualification for it"
    )
    unqualified_deadline: datetime | None = Field(
        description="When a flagged booking is cancelled free of charge, unless the booker is "
        "qualified again by then"
    )

    @staticmethod
    def resolve_uid(obj):
        return str(obj.uid)

    @staticmethod
    def resolve_person_name(obj):
        return obj.person.get_full_name()

    @staticmethod
    def resolve_start(obj):
        return clock.local(obj.start)

    @staticmethod
    def resolve_end(obj):
        return clock.local(obj.end)


class RecurrenceIn(In):
    freq: Literal["daily", "weekly", "monthly"]
    interval: Int = Field(1, ge=1, le=series.MAX_INTERVAL)
    weekdays: list[Annotated[Int, Field(ge=1, le=7)]] = Field(
        default_factory=list, description="ISO weekdays, 1 = Monday"
    )
    count: Int | None = Field(None, ge=1, le=series.MAX_OCCURRENCES)
    until: Day | None = None
    skip_conflicts: Flag = Field(True, description="False: all occurrences or none")


class BookingIn(In):
    resource_id: Id
    start: When
    end: When
    title: str = Field("", max_length=160)
    attendees: Int = Field(1, ge=1, le=100000)
    recurrence: RecurrenceIn | None = None

    @model_validator(mode="after")
    def period(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.recurrence and self.recurrence.count and self.recurrence.until:
            raise ValueError("give a count or an until date, not both")
        return self


class SeriesOut(Schema):
    series_id: int
    rrule: str
    booked: list[BookingOut]
    refused: list[RefusalOut]
    horizon: datetime = Field(description="The end of the booking horizon when booked")
    deferred: list[SlotOut] = Field(
        description="The occurrences beyond the horizon (in the two years after it, at most "
        f"{series.MAX_OCCURRENCES}), not booked yet: see deferred_reason"
    )
    deferred_reason: str = Field(description="Why they are not booked yet, and when they will be")


def booking_queryset():
    return Booking.objects.select_related("resource", "person", "tenant")


@router.post(
    "/bookings",
    response={201: BookingOut | SeriesOut},
    summary="Book a resource (409 with the conflicting slots if taken)",
)
@answers(*BOOKING_REFUSALS, "series_conflict")
@idempotent
def create_booking(request, payload: BookingIn):
    person = caller(request)
    resource = Resource.objects.filter(pk=payload.resource_id).first()
    if resource is None:
        raise Invalid(
            f"resource_id: no resource with id {payload.resource_id}.", field="resource_id"
        )
    slot = engine.Slot(resource, payload.start, payload.end, payload.title, payload.attendees)
    if payload.recurrence is None:
        # The engine's Booking carries its resource, person and tenant: no need to reload it.
        return Status(201, engine.book(person, slot))
    r = payload.recurrence
    result = series.book_series(
        person,
        slot,
        series.Recurrence(r.freq, r.interval, tuple(sorted(set(r.weekdays))), r.count, r.until),
        skip_conflicts=r.skip_conflicts,
    )
    return Status(
        201,
        {
            "series_id": result.series.pk,
            "rrule": result.series.rrule,
            "booked": list(booking_queryset().filter(pk__in=[b.pk for b in result.booked])),
            "refused": [vars(x) for x in result.refused],
            "horizon": clock.local(result.horizon),
            "deferred": [
                {"start": clock.local(s), "end": clock.local(e)} for s, e in result.deferred
            ],
            "deferred_reason": result.deferred_reason,
        },
    )


class BookingFilter(FilterSchema):
    mine: QueryFlag = False
    tenant: Annotated[QueryId | None, FilterLookup("tenant_id")] = None
    resource: Annotated[QueryId | None, FilterLookup("resource_id")] = None
    start_from: Annotated[When | None, FilterLookup("end__gt")] = Field(None, alias="from")
    start_to: Annotated[When | None, FilterLookup("start__lt")] = Field(None, alias="to")
    status: choice(BookingStatus) | None = None

    def filter_mine(self, value: bool) -> Q:
        return Q()  # "the caller's own": list_bookings applies it, knowing the caller


@router.get("/bookings", response=list[BookingOut], summary="Bookings you may see")
@paginate(Pages)
def list_bookings(request, filters: Query[BookingFilter]):
    person = caller(request)
    qs = filters.filter(engine.visible_bookings(person))
    if filters.mine:
        qs = qs.filter(person=person)
    return qs.order_by("start", "pk")


@router.get("/bookings/{booking_id}", response=BookingOut, summary="One booking")
def get_booking(request, booking_id: int):
    return engine.get_visible(caller(request), booking_id)


class BookingPatch(In):
    start: When | None = None
    end: When | None = None
    title: str | None = Field(None, max_length=160)


@router.patch("/bookings/{booking_id}", response=BookingOut, summary="Move or rename a booking")
@answers("forbidden", "invalid_state", *BOOKING_REFUSALS)
def update_booking(request, booking_id: int, payload: BookingPatch):
    person = caller(request)
    booking = engine.get_visible(person, booking_id)
    engine.require_may_change(person, booking)
    start = payload.start or booking.start
    end = payload.end or booking.end
    if end <= start:
        raise Invalid("end: must be after start.", field="end")
    if (start, end) == (booking.start, booking.end):
        engine.relabel(booking, title=payload.title)
        return booking_queryset().get(pk=booking.pk)
    engine.move(person, booking, start, end, title=payload.title)
    return booking_queryset().get(pk=booking.pk)


class CancelIn(In):
    scope: Literal["this", "following"] = "this"
    reason: str = Field("", max_length=250)


@router.post(
    "/bookings/{booking_id}/cancel",
    response=list[BookingOut],
    summary="Cancel a booking, or this and the following occurrences of a series",
)
@answers("forbidden", "invalid_state")
def cancel_booking(request, booking_id: int, payload: CancelIn | None = None):
    payload = payload or CancelIn()
    person = caller(request)
    booking = engine.get_visible(person, booking_id)
    engine.require_may_change(person, booking)
    if payload.scope == "following":
        done = series.cancel_following(person, booking)
    else:
        done = [engine.cancel(person, booking, reason=payload.reason)]
    return list(booking_queryset().filter(pk__in=[b.pk for b in done]).order_by("start"))


@router.post("/bookings/{booking_id}/approve", response=BookingOut, summary="Approve (staff)")
@answers("staff_only", "not_qualified", "invalid_state", "conflict")
def approve_booking(request, booking_id: int):
    person = caller(request)
    booking = _for_decision(booking_id)
    engine.approve(person, booking)
    return booking_queryset().get(pk=booking.pk)


class RejectIn(In):
    note: str = Field("", max_length=250)


@router.post("/bookings/{booking_id}/reject", response=BookingOut, summary="Reject (staff)")
@answers("staff_only", "invalid_state")
def reject_booking(request, booking_id: int, payload: RejectIn | None = None):
    person = caller(request)
    booking = _for_decision(booking_id)
    engine.reject(person, booking, note=(payload or RejectIn()).note)
    return booking_queryset().get(pk=booking.pk)


def _for_decision(booking_id: int) -> Booking:
    """Any booking, visible or not: who may decide is the engine's `require_may_approve`."""
    booking = booking_queryset().filter(pk=booking_id).first()
    if booking is None:
        raise NotFound(f"No booking with id {booking_id}.")
    return booking


@router.post("/bookings/{booking_id}/check-in", response=BookingOut, summary="Check in")
@answers("forbidden", "invalid_state", "check_in_closed")
def check_in_booking(request, booking_id: int):
    person = caller(request)
    booking = engine.get_visible(person, booking_id)
    engine.require_may_change(person, booking)
    engine.check_in(person, booking)
    return booking_queryset().get(pk=booking.pk)


# ------------------------------------------------------------------ waitlist


class WaitlistIn(In):
    resource_id: Id
    start: When
    end: When

    @model_validator(mode="after")
    def period(self):
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class WaitlistOut(Schema):
    id: int
    resource: ResourceBrief
    start: datetime
    end: datetime
    state: str
    offer_expires_at: datetime | None
    booking_id: int | None


@router.get("/waitlist", response=list[WaitlistOut], summary="My waitlist entries")
@paginate(Pages)
def my_waitlist(request):
    return waitlist.visible_entries(caller(request)).order_by("start", "pk")


@router.post("/waitlist", response={201: WaitlistOut}, summary="Queue for a taken slot")
@answers("invalid_period", "in_the_past", "slot_free")
@idempotent
def join_waitlist(request, payload: WaitlistIn):
    resource = Resource.objects.filter(pk=payload.resource_id).first()
    if resource is None:
        raise Invalid(f"resource_id: no resource with id {payload.resource_id}.")
    return Status(201, waitlist.join(caller(request), resource, payload.start, payload.end))


def _my_entry(request, entry_id: int) -> WaitlistEntry:
    return get_scoped(waitlist.visible_entries(caller(request)), entry_id, "waitlist entry")


@router.post(
    "/waitlist/{entry_id}/accept",
    response={201: BookingOut},
    summary="Take the slot you were offered",
)
@answers("offer_closed", *BOOKING_REFUSALS)
@idempotent
def accept_offer(request, entry_id: int):
    booking = waitlist.accept(caller(request), _my_entry(request, entry_id))
    return Status(201, booking_queryset().get(pk=booking.pk))


@router.post("/waitlist/{entry_id}/cancel", response=WaitlistOut, summary="Leave the waitlist")
def leave_waitlist(request, entry_id: int):
    return waitlist.leave(caller(request), _my_entry(request, entry_id))


# ------------------------------------------------------------------ calendar feeds


class FeedsOut(Schema):
    person_feed: str
    resource_feeds: dict[str, str]


@router.get(
    "/me/calendar",
    response=FeedsOut,
    summary="Secret calendar feed URLs (Outlook, Google, Thunderbird)",
)
def my_feeds(request):
    person = caller(request)
    base = settings.SITE_URL
    resources = (
        Resource.objects.filter(is_active=True).exclude(kind="equipment")
        if not person.runs_facility
        else Resource.objects.filter(is_active=True)
    )
    return {
        "person_feed": PersonFeed.of(person).url,
        "resource_feeds": {
            r.code: base + reverse("resource-feed", args=[r.feed_token])
            for r in resources.order_by("code")
        },
    }


@router.post("/me/calendar/reset", response=FeedsOut, summary="New secret feed URL")
def reset_feed(request):
    PersonFeed.reset(caller(request))
    return my_feeds(request)
