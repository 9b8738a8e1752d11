"""Who may call what: every API operation and every portal URL, tried by five callers.

The callers: nobody (anonymous), bob (an Acme member, who owns every object in the paths),
gina (the tenant admin of Globex: another tenant), tina (a lab technician) and sam (facility
staff). Each row says what each of them gets, exactly. Another tenant's objects answer 404,
like missing ones; an action the caller may never take answers 403. A few rows aim at gina's
own tenant instead: Globex people with staff rights (a facility staff member and a lab
technician hired with Globex as their tenant), whom only facility staff may write.

Every (row, caller) pair is its own test with fresh objects, so that a successful write by
one caller never changes what another one gets. Bodies are valid, so that authorization, not
validation, decides (django-ninja checks the body before the view runs). The table must name
every operation of the OpenAPI schema and every portal URL: a new endpoint fails the
completeness tests until it is added here.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from access import commands
from access.models import Controller, Credential, Door, VisitorPass
from bookings.engine import Slot, book
from bookings.models import BookingPolicy, PersonFeed, Resource, WaitlistEntry
from campus.models import ApiToken, Lease, Person, Space
from labs import sessions
from tests.conftest import api_client
from tests.labs.conftest import make_equipment, qualify

ROLES = ("anonymous", "bob", "gina", "tina", "sam")
LOGIN = "302 to the sign-in page"  # what anonymous gets from a portal page
ADMIN_LOGIN = "302 to the admin's sign-in page"
JSON = "application/json"
UID = "04:A1:B2:C3:D4:E5"

ALL = lambda status: (status,) * 5  # noqa: E731
SIGNED_IN = lambda status: (401, status, status, status, status)  # noqa: E731
STAFF_ONLY = (401, 403, 403, 403, 200)
LAB_STAFF = lambda status: (401, 403, 403, status, status)  # noqa: E731
PAGE = (LOGIN, 200, 200, 200, 200)
STAFF_PAGE = (LOGIN, 403, 403, 403, 200)
LAB_PAGE = (LOGIN, 403, 403, 200, 200)  # lab technicians and facility staff
COMPANY_PAGE = (LOGIN, 403, 200, 403, 403)  # tenant admins only (gina, of her own company)


def local(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())


class World:
    """Acme's objects, all bob's, built on first use: a row pays only for what it touches."""

    def __init__(self, campus, acme, people):
        self.campus, self.acme, self.people = campus, acme, people
        self.bob = people["bob"]
        self.tomorrow = timezone.localdate() + timedelta(days=1)
        now = timezone.now()
        start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
        self.current = (start, start + timedelta(hours=1))  # a slot covering now

    # ---- campus

    @cached_property
    def token(self) -> ApiToken:
        return ApiToken.issue(self.bob, "bob's integration")[0]

    @cached_property
    def lease(self) -> Lease:
        return Lease.objects.get(tenant=self.acme)

    @cached_property
    def free_office(self):
        return Space.objects.create(
            floor=self.campus["first"], code="B-1.03", name="Office 3", kind="office"
        )

    # ---- bookings

    @cached_property
    def room(self) -> Resource:
        # Open every day, all day: the API runs on the real clock.
        BookingPolicy.objects.create(
            name="Rooms",
            default_for_kind="meeting_room",
            opening_hours=[],
            slot_minutes=15,
            min_duration_minutes=30,
            max_duration_minutes=480,
            max_advance_days=365,
            checkin_window_minutes=15,
        )
        return Resource.objects.create(
            code="B-1.50", name="Loire", kind="meeting_room", space=self.campus["meeting"]
        )

    @cached_property
    def auditorium(self) -> Resource:
        policy = BookingPolicy.objects.create(
            name="Auditorium", approval_required=True, max_advance_days=365
        )
        return Resource.objects.create(
            code="AUDI", name="Auditorium", kind="auditorium", capacity=150, policy=policy
        )

    @cached_property
    def booking(self):
        return book(self.bob, Slot(self.room, local(self.tomorrow, 10), local(self.tomorrow, 11)))

    @cached_property
    def booking_now(self):
        start, end = self.current
        return book(self.bob, Slot(self.room, start, end), now=start - timedelta(days=1))

    @cached_property
    def request_pending(self):
        slot = Slot(self.auditorium, local(self.tomorrow, 14), local(self.tomorrow, 15))
        return book(self.bob, slot)

    @cached_property
    def offer(self) -> WaitlistEntry:
        return WaitlistEntry.objects.create(
            resource=self.room,
            person=self.bob,
            tenant=self.acme,
            start=local(self.tomorrow, 15),
            end=local(self.tomorrow, 16),
            state=WaitlistEntry.State.OFFERED,
            offer_expires_at=timezone.now() + timedelta(minutes=30),
        )

    @cached_property
    def person_feed(self) -> PersonFeed:
        return PersonFeed.objects.create(person=self.bob)

    # ---- labs

    @cached_property
    def printer(self):
        BookingPolicy.objects.create(
            name="Equipment", default_for_kind="equipment", opening_hours=[], max_advance_days=365
        )
        return make_equipment("EQ-3D-1", "3D printer", "3d-printer", self.campus["lab"])

    @cached_property
    def printer_to_check(self):
        self.printer.status = "to_check"
        self.printer.save(update_fields=["status"])
        return self.printer

    @cached_property
    def qualification(self):
        return qualify(self.bob, self.printer, since=timezone.now() - timedelta(days=30))

    @cached_property
    def printer_booked_now(self):
        """The printer, bob trained on it and booked for now: he may start a session."""
        start, end = self.current
        self.qualification  # noqa: B018
        book(self.bob, Slot(self.printer.resource, start, end), now=start - timedelta(days=1))
        return self.printer

    @cached_property
    def machine_booking(self):
        """bob's booking of the printer tomorrow (he is trained on it)."""
        self.qualification  # noqa: B018
        slot = Slot(self.printer.resource, local(self.tomorrow, 10), local(self.tomorrow, 11))
        return book(self.bob, slot)

    @cached_property
    def retired_printer(self):
        """A machine withdrawn from booking (its resource inactive)."""
        self.printer  # noqa: B018 (the equipment policy)
        machine = make_equipment("EQ-3D-0", "Old 3D printer", "3d-printer", self.campus["lab"])
        Resource.objects.filter(pk=machine.resource_id).update(is_active=False)
        machine.resource.refresh_from_db()
        return machine

    @cached_property
    def session(self):
        return sessions.start_session(self.bob, self.printer_booked_now, source="api")

    @cached_property
    def incident(self):
        from labs.maintenance import report_incident

        return report_incident(self.bob, self.printer, "to_check", "The nozzle is clogged.")

    # ---- access

    @cached_property
    def door(self) -> Door:
        controller = Controller.objects.create(
            id="ctrl-a", name="First floor", online=True, last_seen=timezone.now()
        )
        return Door.objects.create(
            id="D-101",
            name="Acme",
            controller=controller,
            kind="office",
            space=self.campus["office_acme"],
        )

    @cached_property
    def badge(self) -> Credential:
        credential = Credential(holder=self.bob, label="bob")
        credential.set_uid("0B0B0B0B")
        credential.save()
        return credential

    @cached_property
    def suspended_badge(self) -> Credential:
        self.badge.change_status("suspended", actor=None, via="test")
        return self.badge

    @cached_property
    def visit(self) -> VisitorPass:
        now = timezone.now()
        return VisitorPass.objects.create(
            visitor_name="Victor Visitor", host=self.bob, start=now, end=now + timedelta(hours=4)
        )

    @property
    def month(self) -> str:
        return timezone.localdate().strftime("%Y-%m")

    # ---- people and badges: an invited colleague of bob's; Globex's staff, gina's tenant

    @cached_property
    def invited(self) -> Person:
        """Added to Acme, no password chosen yet: the invitation can be sent again."""
        person = Person.objects.build("ivy@acme.test", first_name="Ivy", last_name="Test")
        person.tenant = self.acme
        person.save()
        return person

    def _globex(self, email: str, **role) -> Person:
        person = Person.objects.build(email, first_name=email[:4], last_name="Test", **role)
        person.tenant = self.people["gina"].tenant
        person.save()
        return person

    @cached_property
    def globex_staff(self) -> Person:
        return self._globex("stan@globex.test", is_facility_staff=True)

    @cached_property
    def globex_technician(self) -> Person:
        return self._globex("theo@globex.test", is_lab_technician=True)

    @cached_property
    def staff_badge(self) -> Credential:
        credential = Credential(holder=self.globex_staff, label="stan")
        credential.set_uid("05050505")
        credential.save()
        return credential

    @cached_property
    def suspended_staff_badge(self) -> Credential:
        self.staff_badge.change_status("suspended", actor=None, via="test")
        return self.staff_badge


@dataclass(frozen=True)
class Row:
    """One operation (API: method and OpenAPI path; portal: method and URL pattern), the URL
    to call (path parameters filled from the World) and what each role gets."""

    method: str
    route: str
    expect: tuple
    url: str | None = None  # default: the route with its parameters filled in
    body: object = None  # a dict, or a function of the World
    form: bool = False  # a portal form post rather than JSON
    why: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        return f"{self.method} {self.url or self.route}"


# Path parameters: each names the World object it stands for.
PARAMS = {
    "token_id": lambda w: w.token.pk,
    "space_id": lambda w: w.campus["meeting"].pk,
    "tenant_id": lambda w: w.acme.pk,
    "person_id": lambda w: w.bob.pk,
    "lease_id": lambda w: w.lease.pk,
    "resource_id": lambda w: w.room.pk,
    "booking_id": lambda w: w.booking.pk,
    "booking_now_id": lambda w: w.booking_now.pk,
    "request_id": lambda w: w.request_pending.pk,
    "entry_id": lambda w: w.offer.pk,
    "equipment_id": lambda w: w.printer.pk,
    "trained_id": lambda w: w.qualification.equipment_id,  # the printer, bob trained on it
    "to_check_id": lambda w: w.printer_to_check.pk,
    "qualification_id": lambda w: w.qualification.pk,
    "incident_id": lambda w: w.incident.pk,
    "session_id": lambda w: w.session.pk,
    "door_id": lambda w: w.door.pk,
    "credential_id": lambda w: w.badge.pk,
    "suspended_id": lambda w: w.suspended_badge.pk,
    "visit_id": lambda w: w.visit.pk,
    "invited_id": lambda w: w.invited.pk,
    "staff_id": lambda w: w.globex_staff.pk,
    "technician_id": lambda w: w.globex_technician.pk,
    "staff_badge_id": lambda w: w.staff_badge.pk,
    "suspended_staff_badge_id": lambda w: w.suspended_staff_badge.pk,
    "month": lambda w: w.month,
    "feed": lambda w: w.person_feed.token,
    "resource_feed": lambda w: w.room.feed_token,
}


class Lazy(dict):
    def __init__(self, world):
        super().__init__()
        self.world = world

    def __missing__(self, name):
        return PARAMS[name](self.world)


def fill(template: str, world: World) -> str:
    template = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", template)  # Django route → format string
    return template.format_map(Lazy(world))


def window(w, hours):
    return {
        "start": local(w.tomorrow, hours[0]).isoformat(),
        "end": local(w.tomorrow, hours[1]).isoformat(),
    }


A = "/api/v1"

API = [
    # ---- me and tokens: anyone signed in, on their own tokens only
    Row("GET", f"{A}/me", SIGNED_IN(200)),
    Row("GET", f"{A}/me/tokens", SIGNED_IN(200)),
    Row("POST", f"{A}/me/tokens", SIGNED_IN(201), body={"name": "laptop"}),
    Row("POST", f"{A}/me/tokens/{{token_id}}/revoke", (401, 200, 404, 404, 404)),
    # ---- spaces: read by anyone signed in, written by staff
    Row("GET", f"{A}/spaces", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/spaces",
        (401, 403, 403, 403, 201),
        body=lambda w: {
            "floor_id": w.campus["first"].pk,
            "code": "B-1.60",
            "name": "Anjou",
            "kind": "meeting_room",
        },
    ),
    Row("GET", f"{A}/spaces/{{space_id}}", SIGNED_IN(200)),
    Row("PATCH", f"{A}/spaces/{{space_id}}", STAFF_ONLY, body={"name": "Loire 2"}),
    # ---- tenants: staff all, others their own
    Row("GET", f"{A}/tenants", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/tenants",
        (401, 403, 403, 403, 201),
        body={"name": "Initech", "tier": "member", "contract_start": "2025-01-01"},
    ),
    Row("GET", f"{A}/tenants/{{tenant_id}}", (401, 200, 404, 404, 200)),
    Row("PATCH", f"{A}/tenants/{{tenant_id}}", STAFF_ONLY, body={"name": "Acme SAS"}),
    # ---- people: staff all; a tenant admin their own tenant's
    Row("GET", f"{A}/people", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/people",
        (401, 403, 403, 403, 201),
        body=lambda w: {
            "email": "dana@acme.test",
            "first_name": "Dana",
            "last_name": "Test",
            "tenant_id": w.acme.pk,
        },
        why="gina may add people to Globex only",
    ),
    Row("GET", f"{A}/people/{{person_id}}", (401, 200, 404, 404, 200)),
    Row(
        "PATCH",
        f"{A}/people/{{person_id}}",
        (401, 403, 404, 404, 200),
        body={"phone": "+33 2 41 00 00 00"},
        why="bob sees himself but is no tenant admin",
    ),
    Row(
        "PATCH",
        f"{A}/people/{{person_id}}",
        (401, 404, 403, 404, 200),
        url=f"{A}/people/{{staff_id}}",
        body={"email": "gina-owns-this@globex.test"},
        why="Globex's facility staff member: in gina's tenant, but only staff write staff",
    ),
    Row(
        "PATCH",
        f"{A}/people/{{person_id}}",
        (401, 404, 403, 404, 200),
        url=f"{A}/people/{{technician_id}}",
        body={"is_active": False},
        why="Globex's lab technician: a tenant admin may not deactivate them either",
    ),
    Row(
        "POST",
        f"{A}/people/{{person_id}}/invitation",
        (401, 403, 404, 404, 202),
        url=f"{A}/people/{{invited_id}}/invitation",
        why="bob sees his colleague but is no tenant admin",
    ),
    Row(
        "POST",
        f"{A}/people/{{person_id}}/invitation",
        (401, 404, 403, 404, 202),
        url=f"{A}/people/{{staff_id}}/invitation",
        why="Globex's staff member's invitation: staff only",
    ),
    # ---- leases
    Row("GET", f"{A}/leases", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/leases",
        (401, 403, 403, 403, 201),
        body=lambda w: {
            "tenant_id": w.acme.pk,
            "space_id": w.free_office.pk,
            "start": "2030-01-01",
        },
    ),
    Row("GET", f"{A}/leases/{{lease_id}}", (401, 200, 404, 404, 200)),
    Row("PATCH", f"{A}/leases/{{lease_id}}", STAFF_ONLY, body={"end": "2030-12-31"}),
    # ---- resources and availability: anyone signed in
    Row("GET", f"{A}/resources", SIGNED_IN(200)),
    Row("GET", f"{A}/resources/{{resource_id}}", SIGNED_IN(200)),
    Row(
        "GET",
        f"{A}/resources/{{resource_id}}/free-slots",
        SIGNED_IN(200),
        url=f"{A}/resources/{{resource_id}}/free-slots?date=2030-01-07",
    ),
    Row(
        "GET",
        f"{A}/availability",
        SIGNED_IN(200),
        url=f"{A}/availability?start=2030-01-07T10:00&end=2030-01-07T11:00",
    ),
    # ---- bookings: the booker, their tenant admin, staff; others 404
    Row(
        "POST",
        f"{A}/bookings",
        (401, 201, 201, 403, 201),
        body=lambda w: {"resource_id": w.room.pk, **window(w, (16, 17))},
        why="the room's policy lets tenants' people (and staff) book: tina has no tenant",
    ),
    Row("GET", f"{A}/bookings", SIGNED_IN(200)),
    Row("GET", f"{A}/bookings/{{booking_id}}", (401, 200, 404, 404, 200)),
    Row("PATCH", f"{A}/bookings/{{booking_id}}", (401, 200, 404, 404, 200), body={"title": "x"}),
    Row("POST", f"{A}/bookings/{{booking_id}}/cancel", (401, 200, 404, 404, 200), body={}),
    Row(
        "POST",
        f"{A}/bookings/{{booking_id}}/approve",
        (401, 403, 403, 403, 200),
        url=f"{A}/bookings/{{request_id}}/approve",
        why="approving is a staff action (technicians: equipment only), whoever's booking",
    ),
    Row(
        "POST",
        f"{A}/bookings/{{booking_id}}/reject",
        (401, 403, 403, 403, 200),
        url=f"{A}/bookings/{{request_id}}/reject",
        body={"note": "Taken by an event"},
    ),
    Row(
        "POST",
        f"{A}/bookings/{{booking_id}}/check-in",
        (401, 200, 404, 404, 200),
        url=f"{A}/bookings/{{booking_now_id}}/check-in",
    ),
    # ---- waitlist: own entries only, staff included
    Row("GET", f"{A}/waitlist", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/waitlist",
        SIGNED_IN(201),
        body=lambda w: {"resource_id": w.booking.resource_id, **window(w, (10, 11))},
    ),
    Row("POST", f"{A}/waitlist/{{entry_id}}/accept", (401, 201, 404, 404, 404)),
    Row("POST", f"{A}/waitlist/{{entry_id}}/cancel", (401, 200, 404, 404, 404)),
    # ---- calendar feeds
    Row("GET", f"{A}/me/calendar", SIGNED_IN(200)),
    Row("POST", f"{A}/me/calendar/reset", SIGNED_IN(200)),
    # ---- equipment
    Row("GET", f"{A}/equipment", SIGNED_IN(200)),
    Row("GET", f"{A}/equipment/{{equipment_id}}", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/equipment/{{equipment_id}}/sign-off",
        LAB_STAFF(200),
        url=f"{A}/equipment/{{to_check_id}}/sign-off",
    ),
    # ---- qualifications: read yours (admins: the tenant's), write technicians and staff
    Row("GET", f"{A}/qualifications", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/qualifications",
        LAB_STAFF(201),
        body=lambda w: {"person_id": w.bob.pk, "equipment_id": w.printer.pk},
    ),
    Row("POST", f"{A}/qualifications/{{qualification_id}}/revoke", LAB_STAFF(200)),
    # ---- maintenance windows
    Row("GET", f"{A}/maintenance-windows", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/maintenance-windows",
        LAB_STAFF(201),
        body=lambda w: {"equipment_id": w.printer.pk, **window(w, (8, 12))},
    ),
    # ---- incidents: anyone reports; read your tenant's; close technicians and staff
    Row("GET", f"{A}/incidents", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/incidents",
        SIGNED_IN(201),
        body=lambda w: {"equipment_id": w.printer.pk, "severity": "to_check", "description": "Hot"},
    ),
    Row("GET", f"{A}/incidents/{{incident_id}}", (401, 200, 404, 200, 200)),
    Row(
        "POST",
        f"{A}/incidents/{{incident_id}}/close",
        LAB_STAFF(200),
        body={"resolution": "Cleaned"},
    ),
    # ---- usage sessions
    Row("GET", f"{A}/sessions", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/sessions",
        (401, 201, 403, 403, 403),
        body=lambda w: {"equipment_id": w.printer_booked_now.pk},
        why="only bob is trained on the machine: the others are refused as not qualified",
    ),
    Row("POST", f"{A}/sessions/{{session_id}}/stop", (401, 200, 404, 200, 200), body={}),
    # ---- usage statements: a tenant admin their own tenant's (another's is 404), staff any
    Row(
        "GET",
        f"{A}/usage",
        (401, 403, 404, 403, 200),
        url=f"{A}/usage?tenant={{tenant_id}}&month={{month}}",
    ),
    Row(
        "GET",
        f"{A}/usage.csv",
        (401, 403, 404, 403, 200),
        url=f"{A}/usage.csv?tenant={{tenant_id}}&month={{month}}",
    ),
    # ---- doors, controllers, lockdown, occupancy: staff only
    Row("GET", f"{A}/doors", STAFF_ONLY),
    Row("GET", f"{A}/doors/{{door_id}}", STAFF_ONLY),
    Row("POST", f"{A}/doors/{{door_id}}/unlock", (401, 403, 403, 403, 202), body={}),
    Row("POST", f"{A}/doors/{{door_id}}/mode", STAFF_ONLY, body={"mode": "passage"}),
    Row("GET", f"{A}/controllers", STAFF_ONLY),
    Row("GET", f"{A}/lockdown", STAFF_ONLY),
    Row("POST", f"{A}/lockdown", STAFF_ONLY, body={"on": True, "confirm": "LOCKDOWN"}),
    Row("GET", f"{A}/occupancy", STAFF_ONLY),
    # ---- badges: staff all; a tenant admin their tenant's; others their own (read only)
    Row("GET", f"{A}/credentials", SIGNED_IN(200)),
    Row(
        "POST",
        f"{A}/credentials",
        (401, 403, 422, 403, 201),
        body=lambda w: {"uid": UID, "holder_id": w.bob.pk},
        why="gina: a holder outside her tenant is as unknown as a missing one (422 in a body)",
    ),
    Row(
        "POST",
        f"{A}/credentials",
        (401, 403, 403, 403, 201),
        body=lambda w: {"uid": UID, "holder_id": w.globex_staff.pk},
        why="gina may not badge Globex's staff member: the badge would open what staff open",
    ),
    Row(
        "POST",
        f"{A}/credentials",
        (401, 403, 403, 403, 201),
        body=lambda w: {"uid": UID, "holder_id": w.globex_technician.pk},
    ),
    Row("GET", f"{A}/credentials/{{credential_id}}", (401, 200, 404, 404, 200)),
    Row("POST", f"{A}/credentials/{{credential_id}}/suspend", (401, 403, 404, 404, 200), body={}),
    Row(
        "POST", f"{A}/credentials/{{credential_id}}/report-lost", (401, 403, 404, 404, 200), body={}
    ),
    Row(
        "POST",
        f"{A}/credentials/{{credential_id}}/reactivate",
        (401, 403, 404, 404, 200),
        url=f"{A}/credentials/{{suspended_id}}/reactivate",
        body={},
    ),
    Row(
        "POST",
        f"{A}/credentials/{{credential_id}}/suspend",
        (401, 404, 403, 404, 200),
        url=f"{A}/credentials/{{staff_badge_id}}/suspend",
        body={},
        why="gina sees the badge of Globex's staff member but may not change it",
    ),
    Row(
        "POST",
        f"{A}/credentials/{{credential_id}}/report-lost",
        (401, 404, 403, 404, 200),
        url=f"{A}/credentials/{{staff_badge_id}}/report-lost",
        body={},
    ),
    Row(
        "POST",
        f"{A}/credentials/{{credential_id}}/reactivate",
        (401, 404, 403, 404, 200),
        url=f"{A}/credentials/{{suspended_staff_badge_id}}/reactivate",
        body={},
    ),
    # ---- visitor passes: staff all; a tenant admin their tenant's hosts'
    Row("GET", f"{A}/visitors", (401, 403, 200, 403, 200)),
    Row(
        "POST",
        f"{A}/visitors",
        (401, 403, 422, 403, 201),
        body=lambda w: {"visitor_name": "Victor", "host_id": w.bob.pk, **window(w, (9, 12))},
        why="gina: a host outside her tenant is as unknown as a missing one (422 in a body)",
    ),
    Row("GET", f"{A}/visitors/{{visit_id}}", (401, 403, 404, 403, 200)),
    Row("POST", f"{A}/visitors/{{visit_id}}/badge", (401, 403, 404, 403, 201), body={"uid": UID}),
    # ---- the access log: staff all; a tenant admin their people's; others their own
    Row("GET", f"{A}/access-events", SIGNED_IN(200)),
    Row("GET", f"{A}/access-events.csv", SIGNED_IN(200)),
]

# Not operations, but served under the API too: the schema and its docs are public.
API_EXTRAS = [
    Row("GET", f"{A}/openapi.json", ALL(200)),
    Row("GET", f"{A}/docs", ALL(200)),
]

PORTAL = [
    Row("GET", "", ALL(200)),
    Row("GET", "accounts/login/", (200, 302, 302, 302, 302), why="signed in: off to home"),
    Row(
        "POST",
        "accounts/login/",
        (200, 302, 302, 302, 302),
        body={"username": "bob@acme.test", "password": "wrong"},
        form=True,
        why="a wrong password shows the form again; signed in: off to home",
    ),
    Row("POST", "accounts/logout/", ALL(302), form=True),
    Row("GET", "accounts/password-reset/", ALL(200)),
    Row(
        "POST",
        "accounts/password-reset/",
        ALL(302),
        body={"email": "bob@acme.test"},
        form=True,
    ),
    Row("GET", "accounts/password-reset/sent/", ALL(200)),
    Row(
        "GET",
        "accounts/reset/<uidb64>/<token>/",
        ALL(200),
        url="accounts/reset/MQ/wrong-token/",
        why="an invalid link says so on the page",
    ),
    Row("GET", "accounts/reset/done/", ALL(200)),
    Row(
        "GET",
        "accounts/invitation/<uidb64>/<token>/",
        ALL(200),
        url="accounts/invitation/MQ/wrong-token/",
        why="an invalid or expired invitation says so on the page",
    ),
    Row("GET", "accounts/invitation/done/", ALL(200)),
    Row("GET", "book/", PAGE),
    Row(
        "POST",
        "book/",
        (LOGIN, 302, 302, 403, 302),
        body=lambda w: {
            "resource": w.room.pk,
            "date": w.tomorrow.isoformat(),
            "start": "16:00",
            "end": "17:00",
            "capacity": 1,
        },
        form=True,
        why="tina has no tenant: the room's policy refuses her, on the page",
    ),
    Row("GET", "book/day/", PAGE),
    Row("GET", "bookings/", PAGE),
    Row("GET", "bookings/<int:booking_id>/cancel/", (LOGIN, 200, 404, 404, 200)),
    Row("POST", "bookings/<int:booking_id>/cancel/", (LOGIN, 302, 404, 404, 302), form=True),
    Row(
        "POST",
        "bookings/<int:booking_id>/check-in/",
        (LOGIN, 302, 404, 404, 302),
        url="bookings/{booking_now_id}/check-in/",
        form=True,
    ),
    Row("GET", "bookings/<int:booking_id>/move/", (LOGIN, 200, 404, 404, 200)),
    Row(
        "POST",
        "bookings/<int:booking_id>/move/",
        (LOGIN, 302, 404, 404, 302),
        body=lambda w: {"date": w.tomorrow.isoformat(), "start": "12:00", "end": "13:00"},
        form=True,
    ),
    Row(
        "POST",
        "waitlist/join/",
        (LOGIN, 302, 302, 302, 302),
        body=lambda w: {"resource": w.booking.resource_id, **window(w, (10, 11))},
        form=True,
        why="anyone signed in may queue (a refusal is a message on the page it returns to)",
    ),
    Row("POST", "waitlist/<int:entry_id>/accept/", (LOGIN, 302, 404, 404, 404), form=True),
    Row("POST", "waitlist/<int:entry_id>/leave/", (LOGIN, 302, 404, 404, 404), form=True),
    Row("GET", "staff/approvals/", STAFF_PAGE),
    Row(
        "POST",
        "staff/approvals/<int:booking_id>/approve/",
        (LOGIN, 403, 403, 403, 302),
        url="staff/approvals/{request_id}/approve/",
        form=True,
    ),
    Row(
        "POST",
        "staff/approvals/<int:booking_id>/reject/",
        (LOGIN, 403, 403, 403, 302),
        url="staff/approvals/{request_id}/reject/",
        form=True,
    ),
    Row("GET", "staff/today/", STAFF_PAGE),
    # ---- pages added with the tenant portal and the staff console
    Row("GET", "account/", PAGE),
    Row("GET", "account/calendar/", PAGE),
    Row("GET", "account/tokens/", PAGE),
    Row(
        "POST",
        "account/tokens/<int:token_id>/revoke/",
        (LOGIN, 302, 404, 404, 404),
        form=True,
        why="one's own tokens only, staff included",
    ),
    Row("GET", "waitlist/", PAGE),
    Row("GET", "equipment/", PAGE),
    Row("GET", "equipment/<int:equipment_id>/", PAGE),
    Row(
        "POST",
        "equipment/<int:equipment_id>/",
        (LOGIN, 302, 403, 403, 403),
        url="equipment/{trained_id}/",
        body=lambda w: {"date": w.tomorrow.isoformat(), "start": "14:00", "end": "15:00"},
        form=True,
        why="only bob is trained on the machine: the others are refused as not qualified",
    ),
    Row("GET", "equipment/<int:equipment_id>/incident/", PAGE),
    Row(
        "POST",
        "equipment/<int:equipment_id>/incident/",
        (LOGIN, 302, 302, 302, 302),
        body={"severity": "to_check", "description": "The nozzle is clogged."},
        form=True,
        why="anyone signed in may report a problem on a machine",
    ),
    Row("GET", "company/", COMPANY_PAGE),
    Row("GET", "company/people/", COMPANY_PAGE),
    Row("GET", "company/visitors/", COMPANY_PAGE),
    Row(
        "POST",
        "company/badges/<int:credential_id>/<str:action>/",
        (LOGIN, 403, 404, 403, 403),
        url="company/badges/{credential_id}/suspend/",
        form=True,
        why="tenant admins only (staff use the back-office); gina cannot see Acme's badges",
    ),
    Row(
        "POST",
        "company/badges/<int:credential_id>/<str:action>/",
        (LOGIN, 403, 403, 403, 403),
        url="company/badges/{staff_badge_id}/suspend/",
        form=True,
        why="gina sees the badge of Globex's staff member but may not change it",
    ),
    Row(
        "POST",
        "company/people/",
        (LOGIN, 403, 422, 403, 403),
        body=lambda w: {
            "action": "add-badge",
            "badge-holder": w.globex_staff.pk,
            "badge-uid": UID,
        },
        form=True,
        why="Globex's staff member is not among the holders gina may pick",
    ),
    Row(
        "POST",
        "company/people/<int:person_id>/invitation/",
        (LOGIN, 403, 404, 403, 403),
        url="company/people/{invited_id}/invitation/",
        form=True,
        why="gina: Acme's people are not hers",
    ),
    Row(
        "POST",
        "company/people/<int:person_id>/invitation/",
        (LOGIN, 403, 403, 403, 403),
        url="company/people/{staff_id}/invitation/",
        form=True,
        why="Globex's staff member: only facility staff (API, admin) send it again",
    ),
    Row("GET", "company/usage/", COMPANY_PAGE),
    Row("GET", "company/usage.csv", COMPANY_PAGE),
    Row("GET", "staff/", LAB_PAGE),
    Row("GET", "staff/equipment/", LAB_PAGE),
    Row("GET", "staff/equipment/<int:equipment_id>/", LAB_PAGE),
    Row(
        "POST",
        "staff/equipment/<int:equipment_id>/maintenance/",
        (LOGIN, 403, 403, 302, 302),
        body=lambda w: {
            "start_date": w.tomorrow.isoformat(),
            "start_time": "08:00",
            "end_date": w.tomorrow.isoformat(),
            "end_time": "12:00",
            "title": "Yearly service",
            "step": "confirm",
        },
        form=True,
    ),
    Row(
        "POST",
        "staff/equipment/<int:equipment_id>/sign-off/",
        (LOGIN, 403, 403, 302, 302),
        url="staff/equipment/{to_check_id}/sign-off/",
        form=True,
    ),
    Row("GET", "staff/qualifications/", LAB_PAGE),
    Row(
        "POST",
        "staff/qualifications/<int:qualification_id>/revoke/",
        (LOGIN, 403, 403, 200, 200),
        form=True,
        why="the first step shows the bookings it affects and revokes nothing",
    ),
    Row(
        "POST",
        "staff/qualifications/<int:qualification_id>/revoke/",
        (LOGIN, 403, 403, 302, 302),
        body={"step": "confirm"},
        form=True,
    ),
    Row("GET", "staff/incidents/", LAB_PAGE),
    Row(
        "POST",
        "staff/incidents/<int:incident_id>/close/",
        (LOGIN, 403, 403, 302, 302),
        body={"resolution": "Cleaned"},
        form=True,
    ),
    Row("GET", "staff/doors/", STAFF_PAGE),
    Row("POST", "staff/doors/<str:door_id>/unlock/", (LOGIN, 403, 403, 403, 302), form=True),
    Row("GET", "staff/doors/state.json", STAFF_PAGE),
    Row("GET", "staff/access-log/", STAFF_PAGE),
    Row("GET", "staff/lockdown/", STAFF_PAGE),
    Row("GET", "staff/occupancy/", STAFF_PAGE),
    Row("GET", "staff/reports/", STAFF_PAGE),
    Row("GET", "staff/import/", STAFF_PAGE),
    Row(
        "GET",
        "admin/",
        (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200, 200),
        why="the back-office: staff and technicians (Person.is_staff)",
    ),
    Row("GET", "healthz", ALL(200)),
    Row("GET", "readyz", ALL(200), why="no broker configured: the database decides"),
    Row("GET", "metrics", ALL(200), why="filtered at the proxy (docs/operations.md)"),
    Row("POST", "i18n/setlang/", ALL(302), body={"language": "en"}, form=True),
    Row("GET", "calendar/person/<str:token>.ics", ALL(200), url="calendar/person/{feed}.ics"),
    Row(
        "GET",
        "calendar/person/<str:token>.ics",
        ALL(404),
        url="calendar/person/wrong-token.ics",
        why="a wrong token is a 404, for anyone",
    ),
    Row(
        "GET",
        "calendar/resource/<str:token>.ics",
        ALL(200),
        url="calendar/resource/{resource_feed}.ics",
    ),
    Row(
        "GET",
        "calendar/resource/<str:token>.ics",
        ALL(404),
        url="calendar/resource/wrong-token.ics",
    ),
    Row("GET", "occupancy/print/", STAFF_PAGE),
]


@pytest.fixture
def gina(globex):
    """The tenant admin of Globex: an admin, but of another tenant."""
    return Person.objects.create_user(
        "gina@globex.test",
        "pw-Gina",
        first_name="Gina",
        last_name="Test",
        tenant=globex,
        is_tenant_admin=True,
    )


@pytest.fixture
def world(campus, acme, bob, gina, tina, sam):
    return World(campus, acme, {"bob": bob, "gina": gina, "tina": tina, "sam": sam})


@pytest.fixture
def published(monkeypatch):
    """The MQTT publisher stubbed: door commands succeed without a broker."""
    sent = []
    monkeypatch.setattr(
        commands.publisher, "publish", lambda topic, payload, retain: sent.append(topic)
    )
    return sent


def client_for(world: World, role: str, *, api: bool) -> Client:
    if role == "anonymous":
        return Client()
    person = world.people[role]
    if api:
        return api_client(person)
    client = Client()
    client.force_login(person)
    return client


def cases(rows):
    return [
        pytest.param(row, role, expected, id=f"{row.id}-{role}")
        for row in rows
        for role, expected in zip(ROLES, row.expect, strict=True)
    ]


def call(client: Client, row: Row, world: World, url: str):
    body = row.body(world) if callable(row.body) else row.body
    method = getattr(client, row.method.lower())
    if row.method == "GET":
        return method(url)
    if row.form:
        return method(url, body or {})
    return method(url, json.dumps(body) if body is not None else "", content_type=JSON)


@pytest.mark.parametrize("row, role, expected", cases(API + API_EXTRAS + PORTAL))
def test_each_caller_gets_what_the_contract_says(world, published, row, role, expected):
    api = row.route.startswith(A)
    url = fill(row.url or row.route, world)
    url = url if api else "/" + url
    client = client_for(world, role, api=api)
    response = call(client, row, world, url)
    if expected == LOGIN:
        assert response.status_code == 302, response.content[:300]
        assert response["Location"].startswith("/accounts/login/?next="), response["Location"]
    elif expected == ADMIN_LOGIN:
        assert response.status_code == 302, response.content[:300]
        assert response["Location"].startswith("/admin/login/"), response["Location"]
    else:
        assert response.status_code == expected, (response.status_code, response.content[:300])
    if api and response.status_code >= 400:
        body = response.json()
        assert body["detail"] and body["code"], body


# ------------------------------------------------------------------ the table is complete


def test_the_table_names_every_api_operation():
    from config.api import api

    schema = api.get_openapi_schema()
    operations = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    table = {(row.method, row.route) for row in API}
    assert operations - table == set(), "add these operations to tests/test_authorization.py"
    assert table - operations == set(), "these rows name no operation"


def _routes(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            route = prefix + str(p.pattern)
            if route in ("admin/", "api/v1/"):  # the admin's own, and the API table above
                yield route
                continue
            yield from _routes(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def test_the_table_names_every_portal_url():
    from config.urls import urlpatterns

    routes = set(_routes(urlpatterns)) - {"api/v1/"}
    table = {row.route for row in PORTAL}
    assert routes - table == set(), "add these URLs to tests/test_authorization.py"
    assert table - routes == set(), "these rows name no URL"


# ------------------------------------------------------------------ lists and details agree


@dataclass(frozen=True)
class Listed:
    """An object type with a list and a detail operation, and the World objects of that type
    (each caller may see some of them, none, or all)."""

    path: str  # the list's path; the detail is path/{id}
    objects: object  # a function of the World: the objects to look for


def _others_booking(w: World):
    """gina's booking: Globex's, outside bob's tenant."""
    slot = Slot(w.room, local(w.tomorrow, 12), local(w.tomorrow, 13))
    return book(w.people["gina"], slot)


LISTED = [
    Listed("tenants", lambda w: [w.acme, w.people["gina"].tenant]),
    Listed("people", lambda w: list(w.people.values())),
    Listed("leases", lambda w: list(Lease.objects.all())),
    Listed("spaces", lambda w: [w.campus["meeting"], w.campus["office_acme"]]),
    Listed("resources", lambda w: [w.room, w.printer.resource, w.retired_printer.resource]),
    Listed(
        "bookings",
        lambda w: [w.booking, w.request_pending, w.machine_booking, _others_booking(w)],
    ),
    Listed("equipment", lambda w: [w.printer, w.retired_printer]),
    Listed("incidents", lambda w: [w.incident]),
    Listed("doors", lambda w: [w.door]),
    Listed("credentials", lambda w: [w.badge]),
    Listed("visitors", lambda w: [w.visit]),
]


@pytest.mark.parametrize(
    "listed, role",
    [pytest.param(x, role, id=f"{x.path}-{role}") for x in LISTED for role in ROLES[1:]],
)
def test_an_object_is_in_the_list_if_and_only_if_its_detail_answers(world, listed, role):
    """One visibility rule per object type: whoever calls, the list shows exactly the objects
    whose detail answers 200 (a list refused as a whole, 403, shows none)."""
    objects = listed.objects(world)
    client = client_for(world, role, api=True)
    answer = client.get(f"{A}/{listed.path}?limit=1000")
    assert answer.status_code in (200, 403), answer.content[:300]
    shown = {item["id"] for item in answer.json()["items"]} if answer.status_code == 200 else set()
    for obj in objects:
        detail = client.get(f"{A}/{listed.path}/{obj.pk}")
        assert detail.status_code in (200, 403, 404), detail.content[:300]
        assert (obj.pk in shown) == (detail.status_code == 200), (
            f"{role}: {listed.path} #{obj.pk} is {'' if obj.pk in shown else 'not '}listed "
            f"but its detail answers {detail.status_code}"
        )
