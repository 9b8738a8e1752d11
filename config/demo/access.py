"""The demo's doors, controllers and badges, on top of the demo campus (config/demo/campus.py).

Doors: the entrance (an entry reader and an exit reader, for the roll call), the delivery
door, one door per floor landing, and a door for every office, lab, meeting room, the
auditorium, the cafeteria, the workshop and the technical rooms, wired 1 to 4 per controller.
The machines' controllers (native nodes, the readers beside Tasmota relays, named by
config/demo/labs.py) are enrolled too, and `simulate` runs every controller the demo refers to, and
every relay, so that a badge at any door or machine gets its answer. Every demo person has a
badge whose UID is derived from their e-mail (so it is known without being stored: only its
hash is); two staff hold master cards; one visitor is expected.

Idempotent: rows are keyed on ids and labels, passwords are set only when missing, and badges
are created only when missing (a badge suspended in the demo stays suspended).
"""

import contextlib
import hashlib
from datetime import time, timedelta
from itertools import cycle

from django.utils import timezone

from access import protocol
from access.models import Controller, Credential, Door, VisitorPass
from campus import clock
from campus.models import Lease, Person, Space
from config.demo.campus import DEMO_DOMAIN
from labs.models import Equipment

WEEKDAYS = [[day, "07:00", "20:00"] for day in range(1, 6)]
NEVER: list = []  # rooms opened by a booking only
# How many doors each controller drives, in turn along a floor: ~40 controllers for ~90 doors.
DOORS_PER_CONTROLLER = [2, 3, 2, 1, 2, 4, 2, 3]
MASTER_CARD_HOLDERS = ["securite", "accueil"]
VISITOR = ("Jeanne Dupuis", "Bureau Qualité Ouest")


def demo_uid(seed: str) -> str:
    """A 7-byte UID, like the NFC badges handed out (NXP's 04 prefix), derived from `seed`."""
    return "04" + hashlib.sha256(f"technocampus-demo:{seed}".encode()).hexdigest()[:12].upper()


def space_doors() -> list[tuple[int, dict]]:
    """(level, door fields) for the doors leading into spaces, in code order."""
    kinds = {
        Space.Kind.OFFICE: (Door.Kind.OFFICE, None),
        Space.Kind.WORKSHOP: (Door.Kind.OFFICE, None),
        Space.Kind.LAB: (Door.Kind.LAB, None),
        Space.Kind.TECHNICAL: (Door.Kind.TECHNICAL, None),
        Space.Kind.MEETING_ROOM: (Door.Kind.COMMON, NEVER),
        Space.Kind.AUDITORIUM: (Door.Kind.COMMON, NEVER),
        Space.Kind.COMMON: (Door.Kind.COMMON, WEEKDAYS),
    }
    found = []
    spaces = Space.objects.filter(code__startswith="B-", kind__in=list(kinds))
    for space in spaces.select_related("floor").order_by("floor__level", "code"):
        if space.kind == Space.Kind.COMMON and space.name == "Accueil":
            continue  # the hall behind the entrance: no door of its own
        kind, schedule = kinds[space.kind]
        found.append(
            (
                space.floor.level,
                {
                    "id": "D-" + space.code.removeprefix("B-"),
                    "name": space.name,
                    "kind": kind,
                    "space": space,
                    "schedule": schedule,
                },
            )
        )
    return found


def building_doors() -> list[tuple[int, dict]]:
    def perimeter(door_id, name, direction):
        fields = {"id": door_id, "name": name, "kind": Door.Kind.PERIMETER}
        return 0, {**fields, "direction": direction, "schedule": WEEKDAYS}

    return [
        perimeter("D-ENT-IN", "Entrée principale (lecteur entrée)", Door.Direction.IN),
        perimeter("D-ENT-OUT", "Entrée principale (lecteur sortie)", Door.Direction.OUT),
        perimeter("D-LIV", "Quai de livraison", Door.Direction.BOTH),
        *(
            (
                level,
                {
                    "id": f"D-ETG-{level}",
                    "name": f"Palier niveau {level}",
                    "kind": Door.Kind.FLOOR,
                    "schedule": WEEKDAYS,
                },
            )
            for level in (1, 2)
        ),
    ]


def build_doors() -> int:
    """Doors wired to controllers floor by floor; returns the number of controllers."""
    by_level: dict[int, list[dict]] = {}
    for level, fields in building_doors() + space_doors():
        by_level.setdefault(level, []).append(fields)
    sizes = cycle(DOORS_PER_CONTROLLER)
    controllers = 0
    for level, pending in sorted(by_level.items()):
        number = 0
        while pending:
            size = next(sizes)
            batch, pending = pending[:size], pending[size:]
            number += 1
            controller, _ = Controller.objects.update_or_create(
                id=f"ctrl-{level}-{number:02d}",
                defaults={"name": f"Niveau {level}, armoire {number}"},
            )
            if not controller.mqtt_password_hash:
                controller.set_mqtt_password()  # the installer gets a new one from the admin
            controllers += 1
            for fields in batch:
                door_id = fields.pop("id")
                Door.objects.update_or_create(
                    id=door_id, defaults={**fields, "controller": controller}
                )
    return controllers


def build_machine_controllers() -> int:
    """The controllers the demo machines take their scans from, enrolled as the door
    controllers are (labs cannot: it comes before access); returns how many."""
    wired = (
        Equipment.objects.exclude(controller_kind=Equipment.ControllerKind.NONE)
        .exclude(controller_id="")
        .order_by("controller_id", "resource__code")
        .values_list("controller_id", "location__name")
    )
    labs: dict[str, str] = {}
    for ctrl_id, lab in wired:
        labs.setdefault(ctrl_id, lab)  # named after its first machine's lab
    for ctrl_id, lab in sorted(labs.items()):
        controller, _ = Controller.objects.update_or_create(
            id=ctrl_id, defaults={"name": f"{lab}, équipements"}
        )
        if not controller.mqtt_password_hash:
            controller.set_mqtt_password()
    return len(labs)


def simulated() -> tuple[list[str], list[str]]:
    """What `simulate` runs: every active controller a door or a machine is wired to, and
    every Tasmota relay of a machine."""
    wired = Equipment.objects.exclude(controller_kind=Equipment.ControllerKind.NONE)
    used = set(Door.objects.values_list("controller_id", flat=True))
    used |= set(wired.values_list("controller_id", flat=True))
    controllers = Controller.objects.filter(is_active=True, pk__in=used).order_by("pk")
    relays = wired.filter(controller_kind=Equipment.ControllerKind.TASMOTA)
    return (
        list(controllers.values_list("pk", flat=True)),
        sorted(set(relays.values_list("tasmota_topic", flat=True))),
    )


def simulate(broker, *, key: str, root: str, prefix: str = "", client_tag: str = "") -> list:
    """Start a simulated device (access.simulator) for each of `simulated()`: door controllers,
    machine nodes and readers with presence and heartbeats, Tasmota relays under `prefix`.
    Client ids are the controller ids, plus `client_tag` (tests on a shared broker). Returns
    the devices started (one that cannot connect is left out)."""
    from access.simulator import SimulatedController, SimulatedRelay

    controllers, relays = simulated()
    started = []
    for ctrl_id in controllers:
        client_id = f"{ctrl_id}{client_tag}"[: protocol.MAX_ID_LENGTH] if client_tag else None
        device = SimulatedController(
            ctrl_id, broker=broker, key=key, root=root, client_id=client_id
        )
        with contextlib.suppress(TimeoutError, OSError):
            started.append(device.start())
    for topic in relays:
        with contextlib.suppress(TimeoutError, OSError):
            started.append(SimulatedRelay(prefix, topic, broker=broker).start())
    return started


def build_badges() -> dict[str, tuple[str, str]]:
    """A badge for every demo person, master cards, a visitor; returns samples to print."""
    people = list(Person.objects.filter(email__endswith=DEMO_DOMAIN).order_by("pk"))
    have = set(Credential.objects.filter(holder__in=people).values_list("holder_id", "label"))
    new = []
    for person in people:
        uid = demo_uid(person.email)
        label = f"TC-{uid[-6:]}"
        if (person.pk, label) not in have:
            badge = Credential(holder=person, label=label)
            badge.set_uid(uid)
            new.append(badge)
    for local in MASTER_CARD_HOLDERS:
        holder = next(p for p in people if p.email == f"{local}@{DEMO_DOMAIN}")
        label = f"MASTER-{local.upper()}"
        if (holder.pk, label) not in have:
            card = Credential(holder=holder, label=label, override=True)
            card.set_uid(demo_uid(f"master:{local}"))
            new.append(card)
    Credential.objects.bulk_create(new)

    admin = next(p for p in people if p.tenant_id and p.is_tenant_admin)
    member = next(p for p in people if p.tenant_id == admin.tenant_id and not p.is_tenant_admin)
    visit = build_visit(admin)
    office = Lease.objects.filter(tenant_id=admin.tenant_id).order_by("space__code").first()
    office_door = Door.objects.filter(space_id=office.space_id).first() if office else None
    where = f"office door {office_door.pk}" if office_door else "entrance"
    staff = next(p for p in people if p.email == f"accueil@{DEMO_DOMAIN}")
    return {
        admin.email: (demo_uid(admin.email), f"tenant admin, {where}"),
        member.email: (demo_uid(member.email), f"tenant member, {where}"),
        staff.email: (demo_uid(staff.email), "facility staff"),
        "master card": (demo_uid("master:securite"), "opens every door, lockdown included"),
        f"visitor {visit.visitor_name}": (
            demo_uid("visitor"),
            f"hosted by {admin.get_full_name()}, entrance and {where}",
        ),
    }


def build_visit(host: Person) -> VisitorPass:
    """One visitor expected this week; moved to the current week once the visit is over."""
    today = clock.today()
    start = clock.at(today, time(8))
    end = clock.at(today + timedelta(days=6), time(19))
    office = Lease.objects.filter(tenant_id=host.tenant_id).order_by("space__code").first()
    name, company = VISITOR
    visit = VisitorPass.objects.filter(visitor_name=name, host=host).first()
    if visit is None:
        visit = VisitorPass.objects.create(
            visitor_name=name,
            visitor_company=company,
            host=host,
            start=start,
            end=end,
            space_id=office.space_id if office else None,
        )
    elif visit.end <= timezone.now():
        VisitorPass.objects.filter(pk=visit.pk).update(start=start, end=end)
        Credential.objects.filter(visitor_pass=visit).update(valid_from=start, valid_until=end)
        visit.refresh_from_db()
    if not Credential.objects.filter(visitor_pass=visit).exists():
        badge = Credential(
            kind=Credential.Kind.VISITOR,
            visitor_pass=visit,
            label="VISITEUR-1",
            valid_from=visit.start,
            valid_until=visit.end,
        )
        badge.set_uid(demo_uid("visitor"))
        badge.save()
    return visit


def build(stdout=None) -> dict[str, tuple[str, str]]:
    """Create or update the demo's doors, controllers and badges; returns (and prints, given a
    stream) a few badge UIDs to try."""
    controllers = build_doors() + build_machine_controllers()
    samples = build_badges()
    if stdout is not None:
        stdout.write(
            f"Demo doors ready: {Door.objects.count()} doors on {controllers} controllers. "
            "Badge UIDs to try (manage.py door_scan):"
        )
        for who, (uid, what) in samples.items():
            stdout.write(f"  {uid}  {who:55} {what}")
    return samples
