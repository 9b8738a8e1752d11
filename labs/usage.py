"""The monthly usage statement of a tenant: `load_inputs` reads the rows, `compute` is a pure
function of them (same inputs, same statement, to the cent), `to_csv` writes it for an
accountant's spreadsheet.

Rules (all amounts in integer cents, rounded half up):
- A booking belongs to the month in which it starts: the tenant's month, in the default zone
  (the rule is at the top of campus/clock.py: one statement across every site). Confirmed,
  checked-in and released (no-show) bookings are billed; maintenance windows never.
- Room time is billed at the booking's price (the member or non-member hourly price the
  engine computed when it was booked).
- Equipment time is the measured time of the booking's closed usage sessions, at the tenant's
  hourly price for the machine, when it has any; otherwise the booked time at the booking's
  price. Sessions without a booking are billed as measured time; open sessions are left out
  until they stop. Measured minutes are rounded half up to the minute, per session.
- Energy is shown in Wh per equipment line; it is billed only when the machine has a price
  per kWh (an extra line).
- Included minutes (`Tenant.included_minutes_per_month`) are deducted from room time of
  resources that count toward credits, in the order of the lines (chronological): each
  deduction is a negative credit line worth the deducted share of that line's amount.
- Late-cancellation charges are lines of their own, in the month of the cancelled booking.
"""

import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Q

from bookings.engine import cost_cents
from bookings.models import Booking, Resource, Status
from campus.clock import building_tz, format_month, local, month_bounds
from campus.models import Person, Tenant
from common import spreadsheet
from common.errors import Forbidden, Invalid, NotFound
from labs.models import Equipment, UsageSession

BILLED = (Status.CONFIRMED, Status.CHECKED_IN, Status.RELEASED)
CSV_COLUMNS = [
    "date",
    "kind",
    "resource",
    "name",
    "basis",
    "minutes",
    "energy_wh",
    "unit_price",
    "amount",
]


@dataclass(frozen=True)
class TenantFacts:
    id: int
    name: str
    is_member: bool
    included_minutes: int


@dataclass(frozen=True)
class ResourceFacts:
    id: int
    code: str
    name: str
    is_equipment: bool
    hourly_member_cents: int
    hourly_non_member_cents: int
    uses_credits: bool
    energy_cents_per_kwh: int = 0


@dataclass(frozen=True)
class BookingRow:
    id: int
    resource_id: int
    start: datetime
    end: datetime
    status: str
    price_cents: int
    charge_cents: int


@dataclass(frozen=True)
class SessionRow:
    id: int
    resource_id: int
    booking_id: int | None
    started_at: datetime
    stopped_at: datetime
    energy_wh: int | None


@dataclass(frozen=True)
class Inputs:
    tenant: TenantFacts
    month: str  # YYYY-MM
    resources: dict[int, ResourceFacts]
    bookings: tuple[BookingRow, ...]
    sessions: tuple[SessionRow, ...]


@dataclass(frozen=True)
class Line:
    day: date
    kind: str  # room | equipment | energy | credit | late_cancellation
    resource: str
    name: str
    basis: str  # booked | measured | ""
    minutes: int
    energy_wh: int
    unit_price_cents: int  # per hour, per kWh for energy
    amount_cents: int
    booking_id: int | None = None


@dataclass
class Statement:
    tenant_id: int
    tenant: str
    tier: str
    month: str
    included_minutes: int
    lines: list[Line] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, for non-negative integers."""
    return (2 * numerator + denominator) // (2 * denominator)


def _minutes(delta: timedelta) -> int:
    return half_up(int(delta.total_seconds()), 60)


# ------------------------------------------------------------------ loading


def load_inputs(tenant: Tenant, month: date) -> Inputs:
    """Read everything the statement of `tenant` for `month` depends on (a few queries)."""
    first, following = month_bounds(month)
    bookings = list(
        Booking.objects.filter(tenant=tenant, is_maintenance=False, start__gte=first)
        .filter(start__lt=following)
        .filter(Q(status__in=BILLED) | Q(status=Status.CANCELLED, charge_cents__gt=0))
        .order_by("start", "pk")
    )
    booking_ids = [b.pk for b in bookings]
    sessions = list(
        UsageSession.objects.filter(tenant=tenant, stopped_at__isnull=False)
        .filter(
            Q(booking_id__in=booking_ids)
            | Q(booking__isnull=True, started_at__gte=first, started_at__lt=following)
        )
        .select_related("equipment")
        .order_by("started_at", "pk")
    )
    resource_ids = {b.resource_id for b in bookings} | {s.equipment.resource_id for s in sessions}
    energy = dict(
        Equipment.objects.filter(resource_id__in=resource_ids).values_list(
            "resource_id", "energy_price_cents_per_kwh"
        )
    )
    resources = {
        r.pk: ResourceFacts(
            r.pk,
            r.code,
            r.name,
            r.kind == Resource.Kind.EQUIPMENT,
            r.price_member_cents,
            r.price_non_member_cents,
            r.uses_credits,
            energy.get(r.pk, 0),
        )
        for r in Resource.objects.filter(pk__in=resource_ids)
    }
    return Inputs(
        tenant=TenantFacts(
            tenant.pk, tenant.name, tenant.is_member(), tenant.included_minutes_per_month
        ),
        month=format_month(month),
        resources=resources,
        bookings=tuple(
            BookingRow(b.pk, b.resource_id, b.start, b.end, b.status, b.price_cents, b.charge_cents)
            for b in bookings
        ),
        sessions=tuple(
            SessionRow(
                s.pk,
                s.equipment.resource_id,
                s.booking_id,
                s.started_at,
                s.stopped_at,
                s.energy_wh,
            )
            for s in sessions
        ),
    )


# ------------------------------------------------------------------ computing


def compute(inputs: Inputs) -> Statement:
    """The statement of `inputs`: pure, exact, and the same every time."""
    tz = building_tz()
    tenant = inputs.tenant
    statement = Statement(
        tenant_id=tenant.id,
        tenant=tenant.name,
        tier="member" if tenant.is_member else "non_member",
        month=inputs.month,
        included_minutes=tenant.included_minutes,
    )
    sessions_of = defaultdict(list)
    for s in inputs.sessions:
        sessions_of[s.booking_id].append(s)
    credit_left = tenant.included_minutes

    def hourly(res: ResourceFacts) -> int:
        return res.hourly_member_cents if tenant.is_member else res.hourly_non_member_cents

    def add(**kw):
        statement.lines.append(Line(**kw))

    def equipment_line(res, day, booking_id, basis, minutes, amount, energy_wh):
        add(
            day=day,
            kind="equipment",
            resource=res.code,
            name=res.name,
            basis=basis,
            minutes=minutes,
            energy_wh=energy_wh,
            unit_price_cents=hourly(res),
            amount_cents=amount,
            booking_id=booking_id,
        )
        if energy_wh and res.energy_cents_per_kwh:
            add(
                day=day,
                kind="energy",
                resource=res.code,
                name=res.name,
                basis="measured",
                minutes=0,
                energy_wh=energy_wh,
                unit_price_cents=res.energy_cents_per_kwh,
                amount_cents=half_up(energy_wh * res.energy_cents_per_kwh, 1000),
                booking_id=booking_id,
            )

    # Bookings and unbooked sessions, in time order.
    events = [(b.start, 0, b.id, b) for b in inputs.bookings]
    events += [(s.started_at, 1, s.id, s) for s in sessions_of.get(None, [])]
    for _start, _order, _id, row in sorted(events, key=lambda e: e[:3]):
        if isinstance(row, SessionRow):
            res = inputs.resources[row.resource_id]
            minutes = _minutes(row.stopped_at - row.started_at)
            equipment_line(
                res,
                local(row.started_at, tz).date(),
                None,
                "measured",
                minutes,
                cost_cents(hourly(res), minutes),
                row.energy_wh or 0,
            )
            continue
        b = row
        res = inputs.resources[b.resource_id]
        day = local(b.start, tz).date()
        booked_minutes = _minutes(b.end - b.start)
        if b.status == Status.CANCELLED:
            add(
                day=day,
                kind="late_cancellation",
                resource=res.code,
                name=res.name,
                basis="booked",
                minutes=booked_minutes,
                energy_wh=0,
                unit_price_cents=hourly(res),
                amount_cents=b.charge_cents,
                booking_id=b.id,
            )
        elif res.is_equipment:
            measured = sessions_of.get(b.id, [])
            if measured:
                minutes = sum(_minutes(s.stopped_at - s.started_at) for s in measured)
                energy_wh = sum(s.energy_wh or 0 for s in measured)
                amount = cost_cents(hourly(res), minutes)
                equipment_line(res, day, b.id, "measured", minutes, amount, energy_wh)
            else:
                equipment_line(res, day, b.id, "booked", booked_minutes, b.price_cents, 0)
        else:
            add(
                day=day,
                kind="room",
                resource=res.code,
                name=res.name,
                basis="booked",
                minutes=booked_minutes,
                energy_wh=0,
                unit_price_cents=hourly(res),
                amount_cents=b.price_cents,
                booking_id=b.id,
            )
            if res.uses_credits and credit_left > 0 and booked_minutes > 0:
                used = min(credit_left, booked_minutes)
                credit_left -= used
                add(
                    day=day,
                    kind="credit",
                    resource=res.code,
                    name=res.name,
                    basis="included",
                    minutes=used,
                    energy_wh=0,
                    unit_price_cents=hourly(res),
                    amount_cents=-half_up(b.price_cents * used, booked_minutes),
                    booking_id=b.id,
                )
    statement.totals = totals(statement.lines)
    return statement


def totals(lines: list[Line]) -> dict[str, int]:
    t = dict.fromkeys(
        [
            "room_minutes",
            "room_cents",
            "equipment_minutes",
            "equipment_cents",
            "energy_wh",
            "energy_cents",
            "credit_minutes",
            "credit_cents",
            "late_cancellation_cents",
            "total_cents",
        ],
        0,
    )
    for line in lines:
        if line.kind == "room":
            t["room_minutes"] += line.minutes
            t["room_cents"] += line.amount_cents
        elif line.kind == "equipment":
            t["equipment_minutes"] += line.minutes
            t["equipment_cents"] += line.amount_cents
            t["energy_wh"] += line.energy_wh
        elif line.kind == "energy":
            t["energy_cents"] += line.amount_cents
        elif line.kind == "credit":
            t["credit_minutes"] += line.minutes
            t["credit_cents"] += line.amount_cents
        elif line.kind == "late_cancellation":
            t["late_cancellation_cents"] += line.amount_cents
        t["total_cents"] += line.amount_cents
    return t


def statement_for(tenant: Tenant, month: date) -> Statement:
    return compute(load_inputs(tenant, month))


def require_may_read_statement(person: Person, tenant_id: int | None) -> Tenant:
    """The tenant whose statement `person` may read (the API, the company usage page and
    their CSV): facility staff any tenant's, named (422 without one); a tenant admin only
    their own (`tenant_id` None: theirs), another's being as unknown as a missing one (404);
    nobody else (403)."""
    if person.runs_facility:
        if tenant_id is None:
            raise Invalid("tenant: required for staff.", field="tenant")
        tenant = Tenant.objects.filter(pk=tenant_id).first()
    elif person.is_tenant_admin:
        same = tenant_id is None or tenant_id == person.tenant_id
        tenant = Tenant.objects.filter(pk=person.tenant_id).first() if same else None
    else:
        raise Forbidden("Only a tenant admin or facility staff may read usage.", code="forbidden")
    if tenant is None:
        raise NotFound(f"No tenant with id {tenant_id}.")
    return tenant


# ------------------------------------------------------------------ CSV


def money(cents: int, decimal_comma: bool = False) -> str:
    """Integer cents as euros with two decimals: -1250 → "-12.50" (or "-12,50")."""
    return spreadsheet.cell(spreadsheet.cents(cents), decimal_comma=decimal_comma)


def to_csv(statement: Statement, *, decimal_comma: bool = False) -> bytes:
    """Semicolon-separated, UTF-8 with a BOM (so that Excel reads the accents), CRLF lines;
    one row per line, then one row per total. Names are defused for spreadsheets and
    amounts written as numbers (`common.spreadsheet`)."""
    out = io.StringIO()
    writer = spreadsheet.Writer(out, decimal_comma=decimal_comma)
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines:
        writer.writerow(
            [
                line.day.isoformat(),
                line.kind,
                line.resource,
                line.name,
                line.basis,
                line.minutes,
                line.energy_wh,
                spreadsheet.cents(line.unit_price_cents),
                spreadsheet.cents(line.amount_cents),
            ]
        )
    t = statement.totals
    for kind, minutes, energy, cents in [
        ("total_room", t["room_minutes"], 0, t["room_cents"]),
        ("total_equipment", t["equipment_minutes"], t["energy_wh"], t["equipment_cents"]),
        ("total_energy", 0, t["energy_wh"], t["energy_cents"]),
        ("total_credit", t["credit_minutes"], 0, t["credit_cents"]),
        ("total_late_cancellation", 0, 0, t["late_cancellation_cents"]),
        ("total", 0, 0, t["total_cents"]),
    ]:
        writer.writerow(
            [
                statement.month,
                kind,
                "",
                statement.tenant,
                "",
                minutes,
                energy,
                "",
                spreadsheet.cents(cents),
            ]
        )
    return (spreadsheet.BOM + out.getvalue()).encode("utf-8")
