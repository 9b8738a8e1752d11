"""The catalogue of bookable resources, held in memory by each process, checked per call.

What every availability search and booking needs besides the bookings themselves: the
resources (their kind, capacity, warm-up and cool-down, features, companions, time zone), the
booking policies and the closures. They change a few times a month; reading them from the
database and building 500 model instances cost most of an availability request
(bench/README.md).

Correctness first: every change to the tables below, whatever writes it (the admin, the API,
a queryset `update()`, raw SQL, a rolled-back transaction), changes the version row through
database triggers (migration 0005), and `current()` compares that version, one primary-key
read, before answering from memory. The version is a random value, not a counter, so that a
rolled-back change cannot bring back a version some process cached meanwhile. No version row
(a test database flushed by a transactional test): nothing is cached.

Entries and policies are shared between requests: read them, never change them.
"""

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import F
from django.db.models.functions import Coalesce
from pydantic import BaseModel, ConfigDict, Field

from bookings.models import BookingPolicy, CatalogueVersion, Closure, Resource
from campus import clock
from campus.models import Space

# The tables the catalogue is read from: migrations 0005 and 0010 (and labs 0005, for a
# machine's lab) put the version triggers on them.
TABLES = (
    "bookings_resource",
    "bookings_resource_companions",
    "bookings_bookingpolicy",
    "bookings_closure",
    "campus_space_features",
    "campus_feature",
    "campus_space",
    "campus_floor",
    "campus_building",
    "campus_site",
    "labs_equipment",
)
# A resource's site: its space's, or a machine's lab's (the labs app's Equipment.location).
ZONE_OF_RESOURCE = Coalesce(
    F(f"space__{clock.ZONE_OF_SPACE}"), F(f"equipment__location__{clock.ZONE_OF_SPACE}")
)

BUILT_IN = BookingPolicy(name="built-in")


class ResourceBrief(BaseModel):
    # Plain pydantic models, not ninja's Schema: ninja wraps every object it validates in a
    # Python getter, so that a list of 500 resources costs ~20 ms to validate, against
    # ~2 ms (bench/README.md). from_attributes keeps reading Resource objects in BookingOut.
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    kind: str


class OpeningOut(BaseModel):
    weekday: int = Field(description="ISO weekday, 1 = Monday")
    opens: str = Field(description="HH:MM, local time")
    closes: str = Field(description="HH:MM, local time; 00:00 is midnight, the end of the day")


class ClosureOut(BaseModel):
    name: str
    first_day: date
    last_day: date


class PolicyOut(BaseModel):
    """What a booking of the resource must fit (bookings.policy.check), so that a client can
    offer only bookable slots; facility staff skip these calendar rules."""

    opening_hours: list[OpeningOut] = Field(
        description="In the resource's local time (its site's time zone, the offset of its "
        "free slots); a booking fits within one row of its day. Empty: always open"
    )
    closures: list[ClosureOut] = Field(
        description="The closed days from today to the horizon, local days of the resource"
    )
    slot_minutes: int = Field(description="Bookings start and end on these steps, in local time")
    min_duration_minutes: int
    max_duration_minutes: int
    min_notice_minutes: int = Field(description="A booking starts at least this long after now")
    max_advance_days: int = Field(description="The horizon: a booking starts at most this far")
    buffer_before_minutes: int = Field(
        description="Kept free before each booking, with the resource's warm-up"
    )
    buffer_after_minutes: int = Field(
        description="Kept free after each booking, with the resource's cool-down"
    )
    who_may_book: str = Field(description="anyone, tenant_members, qualified or staff")


class ResourceOut(ResourceBrief):
    capacity: int
    space_id: int | None
    features: list[str]
    price_per_hour_cents: int
    approval_required: bool
    warm_up_minutes: int
    cool_down_minutes: int
    companions: list[str]
    is_active: bool = Field(
        description="False: withdrawn from booking (seen by facility staff only); no free slot"
    )
    policy: PolicyOut


@dataclass(frozen=True, slots=True)
class Entry:
    """One resource as the searches and the API see it."""

    pk: int
    code: str
    name: str
    kind: str
    capacity: int
    space_id: int | None
    is_active: bool
    policy: BookingPolicy
    warm_up_minutes: int
    cool_down_minutes: int
    price_member_cents: int
    price_non_member_cents: int
    features: frozenset[str]
    companions: tuple[int, ...]
    companion_codes: tuple[str, ...]
    zone: ZoneInfo  # its site's (campus.clock): its hours, days and series are local there
    # The resource's API answer (bookings.api.ResourceOut) as JSON, for a member's tenant
    # and for everyone else (the price differs), validated once when the catalogue loads.
    json_member: bytes = b""
    json_other: bytes = b""

    def answer(self, tenant) -> bytes:
        """The API answer (JSON) for a caller of this tenant (None: no tenant)."""
        member = tenant is not None and tenant.is_member()
        return self.json_member if member else self.json_other


@dataclass
class Catalogue:
    version: str | None
    by_pk: dict[int, Entry]
    active: list[Entry]  # ordered by code
    policies: dict[int, BookingPolicy]
    defaults: dict[str, BookingPolicy]
    closures: list[tuple[date, date, bool, str]] = field(default_factory=list)
    day: date | None = None  # the local day it was loaded: its answers list closures from it

    def zone_of(self, resource_id: int) -> ZoneInfo:
        """A resource's time zone, its site's; one unknown here: the default zone."""
        entry = self.by_pk.get(resource_id)
        return entry.zone if entry is not None else clock.building_tz()

    def policy_of(self, resource) -> BookingPolicy:
        """A resource's own policy, else its kind's default, else the built-in defaults."""
        if resource.policy_id:
            return self.policies[resource.policy_id]
        return self.defaults.get(resource.kind, BUILT_IN)

    def closures_of(self, policy: BookingPolicy, first: date, last: date):
        """The closures (first day, last day, is a public holiday, name) that close the
        policy's resources on some day from first to last."""
        return [
            (start, end, is_holiday, name)
            for start, end, is_holiday, name in self.closures
            if end >= first
            and start <= last
            and (policy.closed_on_public_holidays or not is_holiday)
        ]

    def closed_days(self, policy: BookingPolicy, first: date, last: date) -> frozenset[date]:
        days = set()
        for start, end, _is_holiday, _name in self.closures_of(policy, first, last):
            day = max(start, first)
            while day <= min(end, last):
                days.add(day)
                day += timedelta(days=1)
        return frozenset(days)


_lock = threading.Lock()
_cached: Catalogue | None = None


def _version() -> str | None:
    return CatalogueVersion.objects.filter(pk=1).values_list("version", flat=True).first()


def current() -> Catalogue:
    """The catalogue as committed now (or as this transaction sees it): one query when
    nothing changed since this process last loaded it."""
    global _cached
    version = _version()
    cached = _cached
    today = clock.today()
    if (
        version is not None
        and cached is not None
        and cached.version == version
        and cached.day == today
    ):
        return cached
    # Read after the version: the data is at least as new as the version it is cached under.
    loaded = load(version, today)
    if version is not None and connection.vendor in ("postgresql", "sqlite"):
        with _lock:
            _cached = loaded
    return loaded


def policy_answer(policy: BookingPolicy, cat: "Catalogue", day: date) -> dict:
    """A policy as ResourceOut.policy answers it, with its closures from `day` to its horizon."""
    last = day + timedelta(days=policy.max_advance_days)
    return {
        "opening_hours": [
            {"weekday": weekday, "opens": opens, "closes": closes}
            for weekday, opens, closes in policy.opening_hours
        ],
        "closures": [
            {"name": name, "first_day": start, "last_day": end}
            for start, end, _is_holiday, name in cat.closures_of(policy, day, last)
        ],
        **{name: getattr(policy, name) for name in POLICY_FIELDS},
    }


POLICY_FIELDS = (
    "slot_minutes",
    "min_duration_minutes",
    "max_duration_minutes",
    "min_notice_minutes",
    "max_advance_days",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "who_may_book",
)


def load(version: str | None, day: date | None = None) -> Catalogue:
    day = day or clock.today()
    policies = {p.pk: p for p in BookingPolicy.objects.all()}
    defaults = {p.default_for_kind: p for p in policies.values() if p.default_for_kind}
    features = defaultdict(set)
    for space_id, code in Space.features.through.objects.values_list("space_id", "feature__code"):
        features[space_id].add(code)
    rows = list(
        Resource.objects.order_by("code")
        .annotate(zone_name=ZONE_OF_RESOURCE)
        .values(
            "pk",
            "code",
            "name",
            "kind",
            "capacity",
            "space_id",
            "is_active",
            "policy_id",
            "warm_up_minutes",
            "cool_down_minutes",
            "price_member_cents",
            "price_non_member_cents",
            "zone_name",
        )
    )
    codes = {r["pk"]: r["code"] for r in rows}
    companions = defaultdict(list)
    for from_id, to_id in Resource.companions.through.objects.values_list(
        "from_resource_id", "to_resource_id"
    ):
        companions[from_id].append(to_id)
    closures = list(
        Closure.objects.order_by("start_date", "pk").values_list(
            "start_date", "end_date", "is_public_holiday", "name"
        )
    )
    # Only the closures are read from it while loading (closures_of).
    partial = Catalogue(version, {}, [], policies, defaults, closures, day)
    answers = {}
    by_pk = {}
    for r in rows:
        policy_id = r.pop("policy_id")
        zone = clock.zone(r.pop("zone_name"))
        policy = policies[policy_id] if policy_id else defaults.get(r["kind"], BUILT_IN)
        mine = tuple(sorted(companions[r["pk"]], key=codes.__getitem__))
        entry = Entry(
            **r,
            policy=policy,
            features=frozenset(features[r["space_id"]]) if r["space_id"] else frozenset(),
            companions=mine,
            companion_codes=tuple(codes[c] for c in mine),
            zone=zone,
        )
        answer = {
            "id": entry.pk,
            "code": entry.code,
            "name": entry.name,
            "kind": entry.kind,
            "capacity": entry.capacity,
            "space_id": entry.space_id,
            "features": sorted(entry.features),
            "approval_required": policy.approval_required,
            "warm_up_minutes": entry.warm_up_minutes,
            "cool_down_minutes": entry.cool_down_minutes,
            "companions": list(entry.companion_codes),
            "is_active": entry.is_active,
        }
        if id(policy) not in answers:  # one answer per policy, the built-in one included
            answers[id(policy)] = policy_answer(policy, partial, day)
        answer["policy"] = answers[id(policy)]
        rendered = {}
        for tier, price in [
            ("json_member", entry.price_member_cents),
            ("json_other", entry.price_non_member_cents),
        ]:
            valid = ResourceOut.model_validate({**answer, "price_per_hour_cents": price})
            rendered[tier] = valid.model_dump_json().encode()
        by_pk[entry.pk] = Entry(**{**_fields(entry), **rendered})
    return Catalogue(
        version=version,
        by_pk=by_pk,
        active=[e for e in by_pk.values() if e.is_active],
        policies=policies,
        defaults=defaults,
        closures=closures,
        day=day,
    )


def _fields(entry: Entry) -> dict:
    return {name: getattr(entry, name) for name in Entry.__slots__}
