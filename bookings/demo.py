"""The demo's bookable resources: one default policy per kind (French opening hours,
Monday to Friday 07:30–20:00) and a resource for each bookable space of the demo campus.

Keyed on natural keys (policy names, resource codes), so that running it again changes
nothing. Called by `seed_demo` after `campus.demo.build()` and before `labs.demo.build()`.
"""

from bookings.models import BookingPolicy, Resource
from campus.models import Space

WEEKDAYS_0730_2000 = [[d, "07:30", "20:00"] for d in range(1, 6)]

# name, kind, settings
POLICIES = [
    (
        "Salles de réunion",
        "meeting_room",
        {
            "slot_minutes": 15,
            "min_duration_minutes": 30,
            "max_duration_minutes": 600,
            "free_cancellation_hours": 24,
            "late_cancellation_percent": 50,
            "checkin_window_minutes": 15,
        },
    ),
    (
        "Auditorium",
        "auditorium",
        {
            "slot_minutes": 30,
            "min_duration_minutes": 60,
            "max_duration_minutes": 720,
            "approval_required": True,
            "free_cancellation_hours": 72,
            "late_cancellation_percent": 100,
            "checkin_window_minutes": 30,
        },
    ),
    (
        "Laboratoires",
        "lab",
        {
            "slot_minutes": 30,
            "min_duration_minutes": 60,
            "max_duration_minutes": 750,
            "free_cancellation_hours": 48,
            "late_cancellation_percent": 100,
            "checkin_window_minutes": 30,
        },
    ),
    (
        "Postes de coworking",
        "desk",
        {
            "slot_minutes": 30,
            "min_duration_minutes": 60,
            "max_duration_minutes": 750,
            "free_cancellation_hours": 2,
            "late_cancellation_percent": 0,
            "checkin_window_minutes": 30,
        },
    ),
]

# per kind: (member cents per hour, non-member cents per hour, counts toward credits)
PRICES = {
    "meeting_room": (1500, 2500, True),
    "auditorium": (12000, 18000, False),
    "lab": (3000, 5000, False),
    "desk": (300, 500, True),
}


def build() -> dict[str, Resource]:
    """Create or update the policies and the space resources; returns resources by code."""
    for name, kind, settings in POLICIES:
        BookingPolicy.objects.update_or_create(
            name=name,
            defaults={
                "default_for_kind": kind,
                "opening_hours": WEEKDAYS_0730_2000,
                "closed_on_public_holidays": True,
                "max_advance_days": 90,
                **settings,
            },
        )
    resources = {}
    spaces = Space.objects.filter(bookable=True, kind__in=PRICES).order_by("code")
    for space in spaces:
        member, non_member, credits = PRICES[space.kind]
        if space.kind == "meeting_room":
            # bigger rooms cost more: 15 € + 1 € per seat above 6, for members
            member += max(0, space.capacity - 6) * 100
            non_member = member * 5 // 3
        resources[space.code], _ = Resource.objects.update_or_create(
            code=space.code,
            defaults={
                "name": space.name,
                "kind": space.kind,
                "space": space,
                "capacity": max(1, space.capacity),
                "price_member_cents": member,
                "price_non_member_cents": non_member,
                "uses_credits": credits,
                "is_active": True,
            },
        )
    return resources
