"""The demo labs: equipment in the 8 labs, qualifications (some expiring within two weeks),
a maintenance window next week, last month's bookings and usage sessions with energy, and an
open incident.

Idempotent: rows are keyed on natural keys (codes, person + target, machine + start). Dates
hang on today's date (the building's time zone), so a second run the same day changes
nothing; on a later day it adds that day's window and month and leaves the earlier rows.
"""

from datetime import date, time, timedelta

from django.utils import timezone

from bookings import engine
from bookings.models import HOLDING, Booking, BookingPolicy, Resource
from campus import clock
from campus.models import Person, Space, Tenant
from labs import maintenance
from labs.models import Equipment, Incident, Qualification, UsageSession

EQUIPMENT_POLICY = {
    "slot_minutes": 30,
    "min_duration_minutes": 30,
    "max_duration_minutes": 72 * 60,
    "max_advance_days": 90,
    "opening_hours": [],  # machines allowed to run unattended may run at night
    "free_cancellation_hours": 48,
    "late_cancellation_percent": 100,
    "checkin_window_minutes": 0,  # use is measured by sessions, not by check-in
}

# code, name, class, lab, model, member €/h cents, non-member, options; `ctrl` is (kind, the
# controller whose scans the machine takes, Tasmota topic): a native node's own id, or the
# reader beside a relay (config/demo/access.py enrols them with the door controllers).
MACHINES = [
    ("EQ-CEM-01", "Chambre anéchoïque CEM", "emc-chamber", "B-0.10", "Frankonia SAC-3",
     12000, 18000, dict(warm=30, cool=15, assisted=True, ctrl=("native", "ctrl-cem", ""),
                        energy=25)),
    ("EQ-CLIM-01", "Enceinte climatique", "climatic-chamber", "B-0.11", "Vötsch VT 4021",
     3500, 5500, dict(warm=20, cool=20, unattended=True, ctrl=("tasmota", "ctrl-clim", "clim01"),
                      energy=20)),
    ("EQ-CHOC-01", "Enceinte de chocs thermiques", "thermal-shock", "B-0.17",
     "Weiss TS 130", 4000, 6000, dict(warm=30, cool=30, unattended=True,
                                      ctrl=("native", "ctrl-fiab", ""), energy=20)),
    ("EQ-RX-01", "Inspection rayons X", "x-ray", "B-0.12", "Nordson Quadra 5",
     6000, 9000, dict(assisted=True, check=True, ctrl=("native", "ctrl-rx", ""))),
    ("EQ-AOI-01", "Inspection optique AOI", "aoi", "B-0.12", "Koh Young Zenith",
     4000, 6500, dict(ctrl=("native", "ctrl-rx", ""))),
    ("EQ-CMS-01", "Ligne CMS (pick and place)", "smt-line", "B-0.13", "Fuji NXT III",
     8000, 12000, dict(warm=30, assisted=True, ctrl=("native", "ctrl-cms", ""))),
    ("EQ-FOUR-01", "Four de refusion", "reflow-oven", "B-0.13", "Rehm VisionXP+",
     3000, 4500, dict(warm=45, cool=30, ctrl=("tasmota", "ctrl-cms", "four01"), energy=20)),
    ("EQ-3D-01", "Imprimante 3D FDM n°1", "3d-printer", "B-0.14", "Prusa MK4",
     500, 800, dict(unattended=True, ctrl=("tasmota", "ctrl-3d", "imp3d01"), energy=20)),
    ("EQ-3D-02", "Imprimante 3D FDM n°2", "3d-printer", "B-0.14", "Prusa MK4",
     500, 800, dict(unattended=True, ctrl=("tasmota", "ctrl-3d", "imp3d02"), energy=20)),
    ("EQ-3D-03", "Imprimante 3D résine", "3d-printer", "B-0.14", "Formlabs Form 4",
     700, 1100, dict(unattended=True, check=True, ctrl=("tasmota", "ctrl-3d", "imp3d03"),
                     energy=20)),
    ("EQ-OSC-01", "Oscilloscope 4 voies 1 GHz", "oscilloscope", "B-0.15", "Keysight MSOX4104A",
     800, 1300, {}),
    ("EQ-OSC-02", "Oscilloscope 4 voies 1 GHz", "oscilloscope", "B-0.15", "Keysight MSOX4104A",
     800, 1300, {}),
    ("EQ-OSC-03", "Oscilloscope 8 voies 2,5 GHz", "oscilloscope", "B-0.15", "Tektronix MSO58",
     1200, 2000, {}),
    ("EQ-OSC-04", "Oscilloscope portable", "oscilloscope", "B-0.15", "R&S RTH1004",
     500, 800, {}),
    ("EQ-SPEC-01", "Analyseur de spectre 26,5 GHz", "spectrum-analyser", "B-0.16",
     "R&S FSV3030", 1500, 2500, {}),
    ("EQ-SPEC-02", "Analyseur de spectre temps réel", "spectrum-analyser", "B-0.16",
     "Tektronix RSA5126B", 2000, 3200, {}),
]  # fmt: skip

TECHNICIANS = {
    "emc-chamber": "cem",
    "spectrum-analyser": "cem",
    "smt-line": "cms",
    "reflow-oven": "cms",
    "aoi": "cms",
    "x-ray": "cms",
}
QUALIFIED_PEOPLE = 24


def build(today: date | None = None) -> dict[str, Equipment]:
    """Create or update the demo labs; returns the machines by code."""
    today = today or clock.today()
    policies = {
        assisted: BookingPolicy.objects.update_or_create(
            name="Équipements assistés" if assisted else "Équipements",
            defaults={
                "default_for_kind": "" if assisted else "equipment",
                "approval_required": assisted,
                **EQUIPMENT_POLICY,
            },
        )[0]
        for assisted in (False, True)
    }
    labs = {s.code: s for s in Space.objects.filter(kind="lab")}
    control_room, _ = Resource.objects.update_or_create(
        code="B-0.10-CTRL",
        defaults={
            "name": "Salle de contrôle CEM",
            "kind": "lab",
            "capacity": 4,
            "price_member_cents": 0,
            "price_non_member_cents": 0,
            "uses_credits": False,
            "is_active": True,
        },
    )
    machines = {}
    for code, name, cls, lab, model, member, non_member, opt in MACHINES:
        resource, _ = Resource.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "kind": "equipment",
                "capacity": 1,
                "policy": policies[True] if opt.get("assisted") else None,
                "price_member_cents": member,
                "price_non_member_cents": non_member,
                "uses_credits": False,
                "warm_up_minutes": opt.get("warm", 0),
                "cool_down_minutes": opt.get("cool", 0),
                "is_active": True,
            },
        )
        kind, controller_id, topic = opt.get("ctrl", ("none", "", ""))
        machines[code], _ = Equipment.objects.update_or_create(
            resource=resource,
            defaults={
                "equipment_class": cls,
                "model_name": model,
                "location": labs[lab],
                "controller_kind": kind,
                "controller_id": controller_id,
                "tasmota_topic": topic,
                "energy_metering": "energy" in opt,
                "energy_price_cents_per_kwh": opt.get("energy", 0),
                "unattended_allowed": opt.get("unattended", False),
                "check_after_use": opt.get("check", False),
            },
        )
    machines["EQ-CEM-01"].resource.companions.set([control_room])

    qualified = _qualifications(machines, today)
    _last_month(machines, qualified, today)
    _maintenance_next_week(machines, today)
    _incident(machines, today)
    return machines


def _qualifications(machines, today: date) -> dict[str, list[Person]]:
    """Two people of each of the first tenants (members and non-members) trained on a class
    each, the first tenant's demo logins on several; every fifth expires within two weeks."""
    staff = {p.email.split("@")[0]: p for p in Person.objects.filter(is_lab_technician=True)}
    classes = sorted({m.equipment_class for m in machines.values()})
    people = []
    for tenant in Tenant.objects.order_by("pk")[: QUALIFIED_PEOPLE // 2]:
        people += list(tenant.people.order_by("pk")[:2])
    since = clock.at(today.replace(day=1) - timedelta(days=180), time(9))
    qualified = {cls: [] for cls in classes}
    for i, person in enumerate(people):
        wanted = [classes[i % len(classes)]]
        if i < 2:  # the first tenant's demo logins try most machines
            wanted = ["oscilloscope", "3d-printer", "emc-chamber", "climatic-chamber"]
        for cls in wanted:
            expiring = i % 5 == 0
            until = today + timedelta(days=3 + i % 10 if expiring else 200 + 7 * i)
            Qualification.objects.update_or_create(
                person=person,
                equipment=None,
                equipment_class=cls,
                defaults={
                    "valid_from": since,
                    "valid_until": clock.at(until, time(23, 59)),
                    "renew_on_use_months": 12 if cls in ("oscilloscope", "3d-printer") else None,
                    "revoked_at": None,
                    "trained_by": staff.get(TECHNICIANS.get(cls, "labo")),
                    "note": "Formation initiale",
                },
            )
            qualified[cls].append(person)
    return qualified


def _book(person, resource, start, end, *, title="") -> Booking:
    found = Booking.objects.filter(
        resource=resource, person=person, start=start, is_maintenance=False, status__in=HOLDING
    ).first()
    if found is not None:
        return found
    return engine.book(
        person,
        engine.Slot(resource, start, end, title),
        now=start - timedelta(days=2),
        notify=False,
    )


def _last_month(machines, qualified, today: date):
    """Last month's machine bookings, each used: a session with its energy."""
    first = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    # Assisted machines are left out: their bookings would wait for (and mail) an approval.
    rotation = [
        m for m in machines.values() if qualified[m.equipment_class] and not m.resource.policy_id
    ]
    last = today.replace(day=1) - timedelta(days=1)
    # The machines share the default policy: the same public holidays are closed for all.
    closed = engine.closed_days(engine.policy_for(rotation[0].resource), first, last)
    day, w = first, 0
    while day.month == first.month:
        if day.isoweekday() <= 5 and day not in closed:
            for k, (hour, length) in enumerate([(9, 150), (14, 150)]):
                eq = rotation[(w + 5 * k) % len(rotation)]
                people = qualified[eq.equipment_class]
                person = people[w % len(people)]
                start = clock.at(day, time(hour))
                end = start + timedelta(minutes=length)
                booking = _book(person, eq.resource, start, end, title="Essais")
                minutes = length - 10 * (w % 4)
                UsageSession.objects.update_or_create(
                    equipment=eq,
                    started_at=start + timedelta(minutes=5),
                    defaults={
                        "person": person,
                        "tenant": person.tenant,
                        "booking": booking,
                        "stopped_at": start + timedelta(minutes=5 + minutes),
                        "stop_reason": "badge_out" if w % 3 else "booking_end",
                        "energy_wh": (150 + 37 * (w % 7)) * minutes // 60
                        if eq.energy_metering
                        else None,
                        "source": "controller" if eq.controller_kind != "none" else "portal",
                    },
                )
            w += 1
        day += timedelta(days=1)


def _maintenance_next_week(machines, today: date):
    """The climatic chamber's half-yearly calibration, next Monday morning."""
    monday = today + timedelta(days=7 - today.weekday())
    eq = machines["EQ-CLIM-01"]
    start, end = clock.at(monday, time(8)), clock.at(monday, time(12))
    if Booking.objects.filter(resource=eq.resource, is_maintenance=True, start=start).exists():
        return
    technician = Person.objects.filter(email__startswith="labo@").first()
    maintenance.schedule_maintenance(
        technician, eq, start, end, title="Étalonnage semestriel", now=timezone.now()
    )


def _incident(machines, today: date):
    eq = machines["EQ-3D-03"]
    description = "Buse bouchée, la résine ne s'écoule plus."
    if Incident.objects.filter(equipment=eq, description=description).exists():
        return
    reporter = Person.objects.filter(tenant__isnull=False).order_by("pk").first()
    maintenance.report_incident(reporter, eq, "to_check", description, now=clock.at(today, time(9)))
