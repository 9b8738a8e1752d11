"""The demo's bookable resources: one default policy per kind (French opening hours,
Monday to Friday 07:30–20:00), a resource for each bookable space of the demo campus, and
this year's and next year's French public holidays as closures.

Keyed on natural keys (policy names, resource codes), so that running it again changes
nothing. Called by `seed_demo` after `config.demo.campus.build()` and before
`config.demo.labs.build()`.
"""

from bookings.models import BookingPolicy, Resource
from campus import clock
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
    """Create or update the policies, the space resources and the public holidays' closures;
    returns resources by code."""
    from bookings.jobs import cover_public_holidays

    cover_public_holidays()
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


# (resource code, local hour, duration in minutes, title) per weekday 1–5, booked by the
# tenants in turn: a believable week of meetings.
WEEK = {
    1: [
        ("B-1.50", 9, 60, "Point hebdo"),
        ("B-0.04", 14, 120, "Revue de conception"),
        ("B-2.52", 10, 90, "Entretien client"),
    ],
    2: [
        ("B-1.51", 9, 30, "Daily"),
        ("B-0.03", 11, 60, "Démo prototype"),
        ("B-2.50", 15, 60, "Comité technique"),
    ],
    3: [
        ("B-1.52", 10, 120, "Atelier CEM"),
        ("B-2.53", 9, 60, "Recrutement"),
        ("B-0.04", 16, 60, "Partenaires"),
    ],
    4: [("B-1.53", 14, 90, "Revue de code"), ("B-2.51", 11, 60, "Fournisseur PCB")],
    5: [("B-1.54", 10, 60, "Rétrospective"), ("B-0.03", 9, 180, "Formation RF")],
}


def week(today=None) -> int:
    """This week's and next week's meetings, two weekly series and an auditorium request
    awaiting approval, all through the booking engine (notifications off). Returns how many
    bookings exist for the demo week."""
    from datetime import time, timedelta

    from django.utils import timezone

    from bookings import engine, series
    from bookings.models import HOLDING, Booking, BookingSeries
    from campus.models import Person

    now = timezone.now()
    today = today or clock.today(now=now)
    monday = today - timedelta(days=today.isoweekday() - 1)
    people = list(Person.objects.filter(tenant__isnull=False).order_by("pk")[:40])
    resources = {r.code: r for r in Resource.objects.all()}

    def book(person, resource, start, minutes, title):
        if Booking.objects.filter(resource=resource, start=start, status__in=HOLDING).exists():
            return
        day = clock.local(start).date()
        if day in engine.closed_days(engine.policy_for(resource), day, day):
            return  # a public holiday: no meeting that day
        made = engine.book(
            person,
            engine.Slot(resource, start, start + timedelta(minutes=minutes), title),
            now=start - timedelta(days=1),
            notify=False,
        )
        if made.status == "confirmed" and start + timedelta(minutes=5) < now:
            # Meetings already held were attended: checked in, not released as no-shows.
            engine.check_in(person, made, now=start + timedelta(minutes=5))

    n = 0
    for offset in (0, 7):
        for weekday, rows in WEEK.items():
            day = monday + timedelta(days=offset + weekday - 1)
            for code, hour, minutes, title in rows:
                if code in resources:
                    book(
                        people[n % len(people)],
                        resources[code],
                        clock.at(day, time(hour)),
                        minutes,
                        title,
                    )
                n += 1
    first_monday = monday + timedelta(days=7)
    for code, person, hour, title in [
        ("B-1.50", people[0], 8, "Réunion d'équipe"),
        ("B-2.50", people[5], 17, "Club électronique"),
    ]:
        if (
            code not in resources
            or BookingSeries.objects.filter(resource=resources[code], title=title).exists()
        ):
            continue
        start = clock.at(first_monday, time(hour))
        series.book_series(
            person,
            engine.Slot(resources[code], start, start + timedelta(hours=1), title),
            series.Recurrence("weekly", count=10),
            now=start - timedelta(days=1),
            notify=False,
        )
    auditorium = next((r for r in resources.values() if r.kind == "auditorium"), None)
    if auditorium is not None:
        book(
            people[3],
            auditorium,
            clock.at(first_monday + timedelta(days=3), time(14)),
            180,
            "Conférence annuelle",
        )
    return Booking.objects.filter(start__gte=clock.local_midnight(monday)).count()
