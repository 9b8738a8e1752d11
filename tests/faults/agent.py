"""The product side of the fault suite, run as a subprocess on the private cluster
(`python -m tests.faults.agent seed|book`, DATABASE_URL set by tests/faults/conftest.py).

- `seed` builds the small campus the scenarios share: Acme's office door D-101 on ctrl-a
  (bob's badge opens it), the EMC chamber EMC-1 on a Tasmota relay `emc1` with its reader on
  ctrl-a (sam is trained and booked it from 5 minutes ago for 3 hours), two meeting rooms
  with an always-open policy, and four Acme members who book them.
- `book` runs one writer thread per member through the public booking path
  (`bookings.engine.book`), all of them after the same slots in their own order, and prints a
  JSON line per outcome as it happens. A writer retries a slot on a database error as a client
  would (a new connection, after a short pause). When the commit went through but its answer
  was lost, the retry meets the writer's own booking: it counts it as acknowledged
  ("reconciled"). A slot someone else holds is "taken".
"""

import json
import random
import sys
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import django

BADGES = {"bob": "B0B0B0B0", "sam": "5A5A5A5A"}
ROOMS = ("ROOM-A", "ROOM-B")
WRITERS = 4
SLOTS_PER_ROOM = 20
SLOT = timedelta(minutes=30)


def seed():
    from datetime import date

    from django.utils import timezone

    from access.models import Controller, Credential, Door
    from bookings.models import Booking, BookingPolicy, Resource
    from campus.models import Building, Floor, Lease, Person, Site, Space, Tenant
    from labs.models import Equipment, Qualification

    now = timezone.now()
    site = Site.objects.create(name="Fault campus", slug="faults")
    floor = Floor.objects.create(
        building=Building.objects.create(site=site, code="B", name="Main"), level=1, name="First"
    )
    office = Space.objects.create(floor=floor, code="B-1.01", name="Acme", kind="office")
    lab = Space.objects.create(floor=floor, code="B-1.10", name="EMC lab", kind="lab")
    acme = Tenant.objects.create(name="Acme", tier="member", contract_start=date(2024, 1, 1))
    Lease.objects.create(tenant=acme, space=office, start=date(2024, 1, 1))
    # No passwords: nobody signs in, and hashing them would only slow the seed down.
    bob = Person.objects.create_user("bob@acme.test", None, first_name="Bob", tenant=acme)
    sam = Person.objects.create_user(
        "sam@campus.test", None, first_name="Sam", is_facility_staff=True
    )
    for i in range(WRITERS):
        Person.objects.create_user(f"writer{i}@acme.test", None, first_name=f"W{i}", tenant=acme)
    for person, uid in ((bob, BADGES["bob"]), (sam, BADGES["sam"])):
        credential = Credential(holder=person)
        credential.set_uid(uid)
        credential.save()
    ctrl = Controller.objects.create(id="ctrl-a", name="First floor")
    Door.objects.create(id="D-101", name="Acme", controller=ctrl, kind="office", space=office)
    policy = BookingPolicy.objects.create(
        name="Always open", opening_hours=[], closed_on_public_holidays=False
    )
    for code in ROOMS:
        space = Space.objects.create(
            floor=floor, code=code, name=code, kind="meeting_room", capacity=8, bookable=True
        )
        Resource.objects.create(
            code=code, name=code, kind="meeting_room", space=space, capacity=8, policy=policy
        )
    chamber = Resource.objects.create(code="EMC-1", name="EMC chamber", kind="equipment")
    emc = Equipment.objects.create(
        resource=chamber,
        equipment_class="emc",
        location=lab,
        controller_kind="tasmota",
        tasmota_topic="emc1",
        controller_id="ctrl-a",  # its badge reader
    )
    Qualification.objects.create(person=sam, equipment=emc, valid_from=now - timedelta(days=1))
    start, end = now - timedelta(minutes=5), now + timedelta(hours=3)
    Booking.objects.create(
        resource=chamber,
        person=sam,
        start=start,
        end=end,
        blocked_start=start,
        blocked_end=end,
        status="confirmed",
    )


def slots() -> list[tuple[str, datetime]]:
    """The wanted slots: 30-minute meetings three days from now, from 07:00 local time."""
    day = (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(days=3)).date()
    first = datetime(day.year, day.month, day.day, 7, tzinfo=ZoneInfo("Europe/Paris"))
    return [(room, first + i * SLOT) for room in ROOMS for i in range(SLOTS_PER_ROOM)]


def book(pause: float):
    from django.db import Error as DatabaseError
    from django.db import connection

    from bookings import engine
    from bookings.models import Booking, Resource
    from campus.models import Person

    printing = threading.Lock()

    def say(**line):
        with printing:
            print(json.dumps(line), flush=True)

    wanted = slots()
    rooms = {r.code: r for r in Resource.objects.filter(code__in=ROOMS)}
    writers = list(Person.objects.filter(email__startswith="writer").order_by("email"))
    connection.close()

    def owned(person, ids) -> list[int]:
        """Which of these bookings are the writer's own (asked again if the server is away)."""
        for _attempt in range(300):
            try:
                return list(
                    Booking.objects.filter(pk__in=ids, person=person).values_list("pk", flat=True)
                )
            except DatabaseError:
                connection.close()
                time.sleep(0.2)
        raise RuntimeError("the database did not come back")

    def write(n: int, person: Person):
        order = wanted[:]
        random.Random(n).shuffle(order)
        for room, start in order:
            slot = engine.Slot(rooms[room], start, start + SLOT)
            where = [room, start.isoformat()]
            uncertain, deadline = False, time.monotonic() + 60
            while True:
                try:
                    made = engine.book(person, slot, notify=False)
                    say(ack=made.pk, slot=where, writer=n, via="booked")
                    break
                except engine.SlotTaken as e:
                    mine = owned(person, [c["booking_id"] for c in e.data["conflicts"]])
                    if mine and uncertain:
                        say(ack=mine[0], slot=where, writer=n, via="reconciled")
                    else:
                        say(taken=where, writer=n, mine=mine)
                    break
                except (DatabaseError, engine.Busy) as e:
                    # The server went away (or the write gave up): did the commit happen? The
                    # retry will tell. A new connection next time.
                    uncertain = True
                    say(error=type(e).__name__, slot=where, writer=n)
                    connection.close()
                    if time.monotonic() > deadline:
                        say(gave_up=where, writer=n)
                        break
                    time.sleep(0.2)
            time.sleep(pause)
        connection.close()

    def writer(n: int, person: Person):
        try:
            write(n, person)
        except Exception as e:  # reported, so that the test fails rather than misses it
            say(crashed=repr(e), writer=n)
            raise

    threads = [
        threading.Thread(target=writer, args=(n, person)) for n, person in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    say(done=True)


if __name__ == "__main__":
    django.setup()
    command = sys.argv[1]
    if command == "seed":
        seed()
    elif command == "book":
        book(float(sys.argv[2]) if len(sys.argv) > 2 else 0.05)
    else:
        raise SystemExit(f"unknown command {command!r}")
