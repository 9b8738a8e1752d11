"""Access benchmark, run by hand (not in CI): badge scans through a real broker to the bridge.

    uv run python bench/access.py                     # 10k, 200k and 1M bookings
    uv run python bench/access.py --sizes 200000      # the main figures only
    uv run python bench/access.py --keep              # keep the database afterwards
    uv run python bench/access.py --reuse --sizes 1000000,10000   # on the kept one, no reseeding

Creates (drops first) the PostgreSQL database --db, migrates it, seeds 2,000 people (50
tenants, 2 offices each), 2,000 badges, 150 doors on 38 controllers, 200 bookable resources and
a year of bookings (half past, half ahead) with set-based SQL; starts a private Mosquitto on a
free 127.0.0.1 port with `set_tcp_nodelay true` (Debian's default broker leaves Nagle on), then:

- the bridge (`manage.py mqtt_bridge`, one worker, a subprocess) and, for the ceiling, a
  trivial echo responder (same paho settings: MQTT 5, shared subscription, QoS 1, TCP_NODELAY;
  it answers a fixed grant without looking at anything);
- a load generator (one paho client, MQTT 3.1.1, QoS 1) scanning random badges (10 % unknown)
  at random doors: 100 scans/s offered for --seconds, then saturation with 16 scans in flight.

Latency is from publishing the scan to receiving its decision. After the runs, every decision
must be in the audit log (counted by the run's req_id prefix). The booking table then grows in
place (the 1M set contains the 10k set) for the p99-versus-size check at 100 scans/s.
Traffic stays on 127.0.0.1; every loop is bounded by time or count.
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-credential-key"
PEOPLE, TENANTS, RESOURCES = 2000, 50, 200
TARGETS = {"p99_at_100": 10.0, "saturation": 2000, "ceiling_share": 0.25, "growth": 1.5}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="tc_bench_access")
    p.add_argument("--sizes", default="10000,200000,1000000", help="ascending: the table grows")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each measured run")
    p.add_argument("--inflight", type=int, default=16)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--workers", type=int, default=1, help="bridge worker processes")
    p.add_argument("--threads", type=int, default=1, help="door decider threads per worker")
    p.add_argument("--keep", action="store_true")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="use the database a --keep run left (no reseeding; bookings grown or cut to size)",
    )
    p.add_argument(
        "--from-start",
        action="store_true",
        help="measure from the bridge's start (its allow-list push included)",
    )
    p.add_argument(
        "--edit-door",
        action="store_true",
        help="2 s into the 100/s run, change a door's hours (every list is rebuilt)",
    )
    p.add_argument("--acl", action="store_true", help="allow-list figures only (at the first size)")
    p.add_argument("--rounds", type=int, default=20, help="revocations measured with --acl")
    p.add_argument(
        "--devices", type=int, default=2, help="processes running the simulated controllers (--acl)"
    )
    p.add_argument("--echo", nargs=2, metavar=("URL", "ROOT"), help=argparse.SUPPRESS)
    p.add_argument("--sim-host", nargs=3, metavar=("URL", "ROOT", "IDS"), help=argparse.SUPPRESS)
    return p.parse_args()


def uid_hash(uid: str) -> str:
    return hmac.new(KEY.encode(), uid.encode(), hashlib.sha256).hexdigest()[:32]


# ------------------------------------------------------------------ database and seeding


def recreate_database(server: str, name: str):
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seeded(server: str, name: str) -> bool:
    """Whether the database exists with a bench campus in it (for --reuse)."""
    import psycopg

    try:
        with psycopg.connect(f"{server}/{name}") as conn:
            return conn.execute("SELECT to_regclass('bench_person') IS NOT NULL").fetchone()[0]
    except psycopg.OperationalError:
        return False


def drop_database(server: str, name: str):
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_campus() -> dict:
    """People, tenants, leases, badges, spaces, doors and controllers, resources, machines."""
    from datetime import date

    from access.models import Controller, Credential, Door
    from bookings.models import Resource
    from campus.models import Building, Floor, Lease, Person, Site, Space, Tenant
    from labs.models import Equipment, Qualification

    site = Site.objects.create(name="Bench campus", slug="bench")
    building = Building.objects.create(site=site, code="B", name="Main")
    floors = [Floor.objects.create(building=building, level=lv, name=f"L{lv}") for lv in range(3)]
    start = date(2024, 1, 1)

    def spaces(kind, count, bookable=False):
        return Space.objects.bulk_create(
            Space(
                floor=floors[i % 3],
                code=f"B-{i % 3}.{kind[:3]}{i:03d}",
                name=f"{kind} {i}",
                kind=kind,
                bookable=bookable,
            )
            for i in range(count)
        )

    offices = spaces("office", 100)
    rooms = spaces("meeting_room", 20, bookable=True)
    labs = spaces("lab", 10, bookable=True)
    commons = spaces("common", 5)
    tenants = Tenant.objects.bulk_create(
        Tenant(name=f"Bench {t}", tier="member", contract_start=start) for t in range(TENANTS)
    )
    Lease.objects.bulk_create(
        Lease(tenant=tenants[i // 2], space=office, start=start) for i, office in enumerate(offices)
    )
    people = Person.objects.bulk_create(
        Person(
            email=f"bench{i}@bench.test",
            first_name=f"P{i}",
            last_name="Bench",
            tenant=tenants[i % TENANTS] if i >= 20 else None,
            is_facility_staff=i < 10,
            is_lab_technician=10 <= i < 20,
            password="!",
        )
        for i in range(PEOPLE)
    )
    Credential.objects.bulk_create(
        Credential(holder=p, uid_hash=uid_hash(f"{i:08X}"), uid_hint=f"{i:08X}"[-4:])
        for i, p in enumerate(people)
    )
    controllers = Controller.objects.bulk_create(
        Controller(id=f"ctrl-{c:02d}", name=f"Controller {c}") for c in range(38)
    )
    weekdays = [[d, "07:00", "20:00"] for d in range(1, 6)]
    doors = []
    plan = (
        [("perimeter", None, weekdays)] * 10
        + [("floor", None, weekdays)] * 5
        + [("office", s, None) for s in offices]
        + [("common", s, []) for s in rooms]
        + [("lab", s, None) for s in labs]
        + [("common", s, weekdays) for s in commons]
    )
    for n, (kind, space, schedule) in enumerate(plan):
        doors.append(
            Door(
                id=f"D-{n:03d}",
                name=f"Door {n}",
                controller=controllers[n // 4],
                kind=kind,
                space=space,
                schedule=schedule,
                direction="both" if kind == "perimeter" else "",
            )
        )
    Door.objects.bulk_create(doors)
    resources = [
        Resource(code=f"R-{s.code}", name=s.name, kind=s.kind, space=s) for s in rooms + labs
    ]
    resources += [
        Resource(code=f"EQ-{i:03d}", name=f"Machine {i}", kind="equipment")
        for i in range(RESOURCES - len(resources))
    ]
    Resource.objects.bulk_create(resources)
    machines = Equipment.objects.bulk_create(
        Equipment(resource=r, equipment_class=f"class{i % 12}", location=labs[i % 10])
        for i, r in enumerate(x for x in resources if x.kind == "equipment")
    )
    rng = random.Random(7)
    Qualification.objects.bulk_create(
        Qualification(person=rng.choice(people), equipment=rng.choice(machines))
        for _ in range(1000)
    )
    return {"doors": [(d.controller_id, d.pk) for d in doors]}


def grow_bookings(target: int):
    """Fill the first `target` cells of a shuffled (resource, hour) grid over a year around now:
    50-minute bookings, 90 % confirmed, 5 % checked in, 5 % cancelled, by random people. With
    more than `target` already (a reused database), the later ones are deleted: the rows are
    inserted in the grid's order, so what stays is the set a fresh run would have."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass('bench_cell')")
        if cur.fetchone()[0] is None:
            cur.execute("SELECT setseed(0.2026)")
            cur.execute(
                """
                CREATE UNLOGGED TABLE bench_cell AS
                SELECT row_number() OVER (ORDER BY random()) AS rank, r.id AS resource_id,
                       h AS slot
                FROM bookings_resource r,
                     generate_series(date_trunc('hour', now()) - interval '182 days',
                                     date_trunc('hour', now()) + interval '182 days',
                                     interval '1 hour') h
                """
            )
            cur.execute("CREATE INDEX ON bench_cell (rank)")
            cur.execute(
                "CREATE UNLOGGED TABLE bench_person AS SELECT row_number() OVER (ORDER BY id)"
                " - 1 AS n, id, tenant_id FROM campus_person"
            )
        cur.execute("SELECT count(*) FROM bookings_booking")
        have = cur.fetchone()[0]
        if have > target:
            cur.execute(
                "DELETE FROM bookings_booking WHERE id > "
                "(SELECT id FROM bookings_booking ORDER BY id OFFSET %s LIMIT 1)",
                [target - 1],
            )
            cur.execute("VACUUM ANALYZE bookings_booking")
            return
        if have == target:
            return
        cur.execute(
            """
            INSERT INTO bookings_booking (uid, resource_id, person_id, tenant_id, title,
                attendees, start, "end", blocked_start, blocked_end, status, is_maintenance,
                price_cents, charge_cents, created_at, note)
            SELECT gen_random_uuid(), c.resource_id, p.id, p.tenant_id, '', 1, c.slot,
                   c.slot + interval '50 minutes', c.slot, c.slot + interval '50 minutes',
                   CASE WHEN c.rank %% 20 = 0 THEN 'cancelled'
                        WHEN c.rank %% 20 = 1 THEN 'checked_in' ELSE 'confirmed' END,
                   false, 0, 0, now(), ''
            FROM bench_cell c JOIN bench_person p ON p.n = (c.rank * 7919) %% %s
            WHERE c.rank > %s AND c.rank <= %s
            """,
            [PEOPLE, have, target],
        )
        cur.execute("VACUUM ANALYZE bookings_booking")


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
        "persistence false\nmax_queued_messages 100000\n"
        f"user {os.environ.get('USER') or 'root'}\n"
    )
    process = subprocess.Popen(  # noqa: S603
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


def child_env(args, url: str, root: str) -> dict:
    """The bridge's environment as in production (DEBUG off: no query log kept per query)."""
    from bench.bookings import production_env

    return {
        **production_env(args.server, args.db, KEY),
        "MQTT_URL": url,
        "MQTT_ROOT": root,
        "MQTT_V5": "1",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        # The load comes from 38 controllers at up to thousands of scans a second: far above
        # what a real door sends, so the per-controller scan limit is lifted.
        "SCAN_RATE": "0",
    }


def start_bridge(args, url, root) -> subprocess.Popen:
    argv = [sys.executable, str(ROOT / "manage.py"), "mqtt_bridge", "--name", "bench"]
    argv += ["--group", "bench", "--no-jobs", "--workers", str(args.workers)]
    argv += ["--threads", str(args.threads)]
    return subprocess.Popen(argv, env=child_env(args, url, root), cwd=ROOT)  # noqa: S603


def start_echo(args, url, root) -> subprocess.Popen:
    argv = [sys.executable, str(Path(__file__).resolve()), "--echo", url, root]
    return subprocess.Popen(argv, env=child_env(args, url, root), cwd=ROOT)  # noqa: S603


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the bridge's workers), from
    /proc: a figure the other processes on a shared machine do not disturb much."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU time of each thread of one process, by thread id (in creation order:
    for the bridge: main, writer, door deciders, machine scans, refresher, power, paho)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def stop(process: subprocess.Popen):
    process.terminate()
    try:
        process.wait(40)
    except subprocess.TimeoutExpired:
        process.kill()


def run_echo(url: str, root: str):
    """The ceiling: what a paho responder through this broker does when deciding costs nothing."""
    import signal

    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    sys.path.insert(0, str(ROOT))
    from access.mqtt import broker_from_url, new_client

    b = broker_from_url(url)
    client = new_client(f"echo-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    expiry = Properties(PacketTypes.PUBLISH)
    expiry.MessageExpiryInterval = 2

    def on_message(c, u, m):
        req_id = json.loads(m.payload)["req_id"]
        body = {"v": 1, "req_id": req_id, "result": "grant", "reason": "staff", "exp": 0}
        c.publish(m.topic[:-4] + "decision", json.dumps(body), qos=1, properties=expiry)

    def on_connect(c, u, f, rc, p):
        c.subscribe(f"$share/echo/{root}/ctrl/+/door/+/scan", qos=1)
        c.publish(f"{root}/sys/backend/status", b'{"v":1,"online":true}', qos=1)

    client.on_message, client.on_connect = on_message, on_connect
    client.connect(b.host, b.port)
    signal.signal(signal.SIGTERM, lambda *_: client.disconnect())
    client.loop_forever()


def run_sim_host(url: str, root: str, ids: str):
    """Some of the simulated controllers of --acl, in their own process (as real devices do not
    share one interpreter), driven by lines on stdin; answers are JSON lines on stdout. Times
    are time.monotonic(), one clock for every process of the machine.
    - "lists": when the bridge's status and the first and last list reached these devices;
    - "holds <h>": which of them hold the badge hash;
    - "watch <h> <ids>": "watching", then when each device listed stopped holding it."""
    sys.path.insert(0, str(ROOT))
    from access.mqtt import broker_from_url
    from access.simulator import SimulatedController

    broker = broker_from_url(url)
    sims = {
        ctrl: SimulatedController(ctrl, broker=broker, key=KEY, root=root, heartbeat=0).start()
        for ctrl in ids.split(",")
    }
    seen = {"online": None, "first": None, "last": None}

    def watch_lists():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = time.monotonic()
            if seen["online"] is None and any(s.backend_online for s in sims.values()):
                seen["online"] = now
            if seen["first"] is None and any(s.acl is not None for s in sims.values()):
                seen["first"] = now
            if all(s.acl is not None for s in sims.values()):
                seen["last"] = now
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch_lists, daemon=True)
    watcher.start()

    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say({"ready": True})
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "lists":
            watcher.join()
            say(seen)
        elif command == "holds":
            say([ctrl for ctrl, s in sims.items() if s.holds(rest[0])])
        elif command == "watch":
            h, holders = rest[0], rest[1].split(",") if len(rest) > 1 else []
            say("watching")
            pending, gone, deadline = set(holders), {}, time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                for ctrl in list(pending):
                    if not sims[ctrl].holds(h):
                        gone[ctrl] = time.monotonic()
                        pending.discard(ctrl)
                time.sleep(0.002)
            say({"gone": gone, "missed": len(pending)})
        elif command == "stop":
            break
    for s in sims.values():
        s.stop()


class SimHost:
    """The bench's end of one --sim-host process."""

    def __init__(self, url: str, root: str, ids: list[str]):
        argv = [sys.executable, str(Path(__file__).resolve()), "--sim-host", url, root]
        argv.append(",".join(ids))
        self.ids = ids
        self.process = subprocess.Popen(  # noqa: S603
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, line: str | None = None):
        if line is not None:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("a simulated-controller process ended")
        return json.loads(answer)

    def close(self):
        try:
            self.process.stdin.write("stop\n")
            self.process.stdin.close()
            self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


# ------------------------------------------------------------------ load


class Load:
    """One paho client that sends scans and times each decision."""

    def __init__(self, url, root, doors, prefix):
        import paho.mqtt.client as mqtt

        from access.mqtt import broker_from_url, new_client

        b = broker_from_url(url)
        self.root, self.doors, self.prefix = root, doors, prefix
        self.rng = random.Random(11)
        self.sent: dict[str, float] = {}
        self.latencies: list[float] = []
        self.lock = threading.Lock()
        self.refill = False
        self.counter = 0
        self.ready = threading.Event()
        self.online = threading.Event()
        self.client = new_client(f"load-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.max_inflight_messages_set(100)
        self.client.connect(b.host, b.port)
        self.client.loop_start()
        self.client.subscribe(
            [(f"{root}/ctrl/+/door/+/decision", 1), (f"{root}/sys/backend/status", 1)]
        )
        self.ready.wait(5)

    def send(self):
        ctrl, door = self.rng.choice(self.doors)
        uid = f"{self.rng.randrange(PEOPLE * 11 // 10):08X}"  # 10 % unknown badges
        with self.lock:
            self.counter += 1
            req_id = f"{self.prefix}-{self.counter}"
            self.sent[req_id] = time.perf_counter()
        body = {"v": 1, "req_id": req_id, "ts": int(time.time() * 1000)}
        body["cred"] = {"type": "uid", "h": uid_hash(uid)}
        self.client.publish(f"{self.root}/ctrl/{ctrl}/door/{door}/scan", json.dumps(body), qos=1)

    def _on_message(self, client, userdata, msg):
        if msg.topic.endswith("/sys/backend/status"):
            if msg.payload and json.loads(msg.payload).get("online"):
                self.online.set()
            return
        now = time.perf_counter()
        req_id = json.loads(msg.payload)["req_id"]
        with self.lock:
            started = self.sent.pop(req_id, None)
            if started is not None:
                self.latencies.append(now - started)
        if started is not None and self.refill:
            self.send()

    def reset(self, prefix):
        with self.lock:
            self.prefix, self.counter = prefix, 0
            self.sent.clear()
            self.latencies = []

    def offered(self, rate: float, seconds: float) -> dict:
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.send()
        self._drain(2.0)
        return self._figures(total, time.perf_counter() - start)

    def saturate(self, inflight: int, seconds: float) -> dict:
        self.refill = True
        start = time.perf_counter()
        for _ in range(inflight):
            self.send()
        time.sleep(seconds)
        self.refill = False
        elapsed = time.perf_counter() - start
        with self.lock:
            done = len(self.latencies)
        self._drain(2.0)
        figures = self._figures(self.counter, elapsed)
        figures["per_s"] = round(done / elapsed)
        return figures

    def _drain(self, seconds):
        deadline = time.perf_counter() + seconds
        while self.sent and time.perf_counter() < deadline:
            time.sleep(0.01)

    def _figures(self, sent, elapsed) -> dict:
        lat = sorted(self.latencies)
        ms = [x * 1000 for x in lat]
        return {
            "sent": sent,
            "answered": len(lat),
            "per_s": round(len(lat) / elapsed),
            "p50_ms": round(statistics.median(ms), 2) if ms else None,
            "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 2) if ms else None,
        }

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def edit_a_door():
    """A facility manager changes a perimeter door's hours: every badge's grants are asked
    again and every list rebuilt (what also happens on the hour, when the lists' time key
    moves). Toggles between two schedules."""
    from django.db import connection

    from access.models import Door

    door = Door.objects.get(pk="D-000")
    opens = "07:30" if door.schedule[0][1] == "07:00" else "07:00"
    door.schedule = [[d, opens, "20:00"] for d in range(1, 6)]
    door.save(update_fields=["schedule"])
    connection.close()


def measure(load: Load, args, label: str, pid: int) -> dict:
    load.reset(f"{label}-rate-{uuid.uuid4().hex[:4]}")
    if args.edit_door:
        threading.Timer(2.0, edit_a_door).start()
    rate = load.offered(args.rate, args.seconds)
    rate_prefix = load.prefix
    load.reset(f"{label}-sat-{uuid.uuid4().hex[:4]}")
    cpu, threads = cpu_seconds(pid), thread_cpu_seconds(pid)
    saturation = load.saturate(args.inflight, args.seconds)
    cpu = cpu_seconds(pid) - cpu
    answered = max(1, saturation["answered"])
    saturation["cpu_ms_per_decision"] = round(cpu * 1000 / answered, 3)
    # Where the process's CPU went, per thread and per decision (in thread creation order).
    after = thread_cpu_seconds(pid)
    saturation["cpu_ms_per_decision_by_thread"] = [
        round((after[tid] - threads.get(tid, 0.0)) * 1000 / answered, 3) for tid in sorted(after)
    ]
    saturation["load_average"] = round(os.getloadavg()[0], 1)
    return {"rate": rate, "saturation": saturation, "prefixes": [rate_prefix, load.prefix]}


def lists_pushed(since, limit: float = 120.0, quiet: float = 2.0) -> float:
    """Wait until the bridge's start-up push of allow-lists is over: something pushed since
    `since` and nothing more for `quiet` seconds (lists that did not change since the last
    run are not sent again); returns when (perf_counter). That burst of full snapshots
    (7,232 entries per perimeter controller at 1M bookings) shares the bridge's connection
    with the decisions, which seem to wait behind it (p99 at 100/s 0.3-0.6 s at 1M bookings
    when measured during it). Measured apart: the runs measure steady state."""
    from django.db.models import Max

    from access.models import AclState

    deadline = time.perf_counter() + limit
    last, still_since = None, time.perf_counter()
    while time.perf_counter() < deadline:
        latest = AclState.objects.aggregate(m=Max("sent_at"))["m"]
        if latest != last:
            last, still_since = latest, time.perf_counter()
        elif latest is not None and latest >= since and time.perf_counter() - still_since >= quiet:
            break
        time.sleep(0.2)
    return time.perf_counter()


def answering(load: Load, limit: float = 60.0, seconds: int = 3) -> float:
    """Warm up at 200 scans/s until `seconds` whole seconds in a row are answered; returns
    when the first of them started (perf_counter). A bridge says it is online before it answers
    steadily: its refresher builds the allow-lists after connecting, and decisions are refused
    while the facts' last check is older than 1.5 s. The runs then measure steady state."""
    deadline = time.perf_counter() + limit
    streak, since = 0, time.perf_counter()
    for n in range(1000):
        if streak == 0:
            since = time.perf_counter()
        load.reset(f"warm-{n}")
        figures = load.offered(200, 1)
        streak = streak + 1 if figures["answered"] == figures["sent"] else 0
        if streak >= seconds or time.perf_counter() > deadline:
            break
    return since


def probe_timing(samples: int = 2000) -> dict:
    """The bookings probe alone, in this process: p50 / p99 ms of `probe_bookings` for random
    people, what the table's size could change in a decision."""
    from django.utils import timezone

    from access.facts import probe_bookings

    rng = random.Random(3)
    people = list(range(1, PEOPLE + 1))
    times = []
    for i in range(samples + 200):
        start = time.perf_counter()
        probe_bookings([rng.choice(people)], timezone.now(), {})
        if i >= 200:
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 3),
        "p99_ms": round(times[-len(times) // 100], 3),
    }


def audited(prefixes) -> int:
    from access.models import AuditEvent

    time.sleep(1.0)
    return sum(
        AuditEvent.objects.filter(kind="decision", req_id__startswith=p + "-").count()
        for p in prefixes
    )


def inside_bridge(prefix: str) -> dict:
    """p50 / p99 / max of the latency the bridge logged for a run's decisions (from receipt to
    reply, whole ms): what of the end-to-end tail is spent inside the bridge."""
    from access.models import AuditEvent

    ms = sorted(
        AuditEvent.objects.filter(kind="decision", req_id__startswith=prefix + "-").values_list(
            "latency_ms", flat=True
        )
    )
    if not ms:
        return {}
    return {"p50_ms": ms[len(ms) // 2], "p99_ms": ms[int(len(ms) * 0.99) - 1], "max_ms": ms[-1]}


def main():
    args = parse_args()
    if args.echo:
        run_echo(*args.echo)
        return
    if args.sim_host:
        run_sim_host(*args.sim_host)
        return
    if shutil.which("mosquitto") is None:
        raise SystemExit("needs the mosquitto binary (apt-get install mosquitto)")
    os.environ.update(
        DATABASE_URL=f"{args.server}/{args.db}",
        CREDENTIAL_KEY=KEY,
        DJANGO_SETTINGS_MODULE=("config.settings"),
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(ROOT))
    import django

    if not (args.reuse and seeded(args.server, args.db)):
        recreate_database(args.server, args.db)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from access.models import Door

    if Door.objects.exists():
        campus = {"doors": list(Door.objects.order_by("pk").values_list("controller_id", "pk"))}
    else:
        campus = seed_campus()
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-access-"))
    broker, port = start_mosquitto(workdir)
    url = f"mqtt://127.0.0.1:{port}"
    root = f"bench/{uuid.uuid4().hex[:8]}/campus/v1"
    results = {}
    try:
        if args.acl:
            grow_bookings(sizes[0])
            figures = measure_allowlists(args, url, root, args.rounds)
            print(json.dumps({"allow-lists": figures}, indent=1), flush=True)
            return
        load = Load(url, root, campus["doors"], "warmup")
        echo = start_echo(args, url, root)
        assert load.online.wait(10), "echo responder did not start"
        time.sleep(0.5)
        load.reset("echo-warm")
        load.offered(200, 1)
        results["echo"] = measure(load, args, "echo", echo.pid)
        stop(echo)
        load.online.clear()
        for size in sizes:
            grow_bookings(size)
            from bookings.models import Booking

            count = Booking.objects.count()
            probe = probe_timing()
            from django.utils import timezone

            from access.models import AclState

            # Every size starts from nothing pushed, as a fresh bridge on a new campus would
            # (a reused database still holds the last run's lists, which then go unsent).
            AclState.objects.all().delete()
            launched = timezone.now()
            bridge = start_bridge(args, url, root)
            try:
                assert load.online.wait(30), "bridge did not start"
                started = time.perf_counter()
                if args.from_start:  # the start-up push included in the 100/s run
                    pushed = warm = time.perf_counter()
                else:
                    pushed = lists_pushed(launched)
                    warm = answering(load)
                figures = measure(load, args, f"b{size}", bridge.pid)
                # From "online" to every list pushed, and to answering every scan steadily:
                # the runs start after both (steady state).
                figures["lists_pushed_after_s"] = round(pushed - started, 1)
                figures["answering_after_s"] = round(warm - started, 1)
            finally:
                stop(bridge)
                load.online.clear()
            figures["bookings"] = count
            figures["probe"] = probe
            prefixes = figures.pop("prefixes")
            figures["audited"] = audited(prefixes)
            figures["rate"]["inside_bridge"] = inside_bridge(prefixes[0])
            figures["answered"] = figures["rate"]["answered"] + figures["saturation"]["answered"]
            results[f"bridge_{size}"] = figures
            print(json.dumps({f"bridge {size}": figures}), flush=True)
        load.close()
    finally:
        stop(broker)
        shutil.rmtree(workdir, ignore_errors=True)
        if not (args.keep or args.reuse):
            from django.db import connections

            connections.close_all()
            drop_database(args.server, args.db)
    if not args.acl:
        report(results, sizes, args)


def measure_allowlists(args, url: str, root: str, rounds: int) -> dict:
    """Allow-lists: build every list in process; then the bridge (a subprocess) pushes full
    snapshots to 40 connected simulated controllers, run in `--devices` processes (time from
    its start to the last one applied); then badges held on every controller (staff) or on a
    few (tenants) are suspended one at a time and the time to each delta applied is measured
    on every controller that held the badge, from the update's commit."""
    from django.db.models import F
    from django.utils import timezone

    from access import allowlists
    from access.facts import load_snapshot
    from access.models import AclState, Controller, Door

    for c in (38, 39):  # 40 controllers: two more, one perimeter door each
        ctrl = Controller.objects.create(id=f"ctrl-{c:02d}", name=f"Controller {c}")
        Door.objects.create(
            id=f"D-9{c}", name=f"Gate {c}", controller=ctrl, kind="perimeter", direction="both"
        )
    now = timezone.now()
    started = time.perf_counter()
    lists = allowlists.build_all(load_snapshot(now), now)
    built = time.perf_counter() - started
    chunks = [allowlists.snapshot_messages(1, acl, now) for acl in lists.values()]
    encoded = time.perf_counter() - started
    figures = {
        "controllers": len(lists),
        "entries": sum(len(acl) for acl in lists.values()),
        "chunks": sum(len(c) for c in chunks),
        "largest_chunk": max(len(m) for c in chunks for m in c),
        "build_s": round(built, 3),
        "build_and_chunk_s": round(encoded, 3),
    }
    controllers = sorted(lists)
    hosts = [SimHost(url, root, controllers[i :: args.devices]) for i in range(args.devices)]
    try:
        for host in hosts:
            host.ask()  # ready: every device connected
        bridge = start_bridge(args, url, root)
        started = time.monotonic()
        try:
            seen = [host.ask("lists") for host in hosts]
            assert all(s["last"] for s in seen), "not every controller got its list"
            figures["all_snapshots_s"] = round(max(s["last"] for s in seen) - started, 3)
            figures["bridge_online_s"] = round(min(s["online"] for s in seen) - started, 3)
            figures["first_snapshot_s"] = round(min(s["first"] for s in seen) - started, 3)
            time.sleep(1.0)
            figures.update(revoke(hosts, rounds))
            figures["acked"] = AclState.objects.filter(acked_version=F("version")).count()
        finally:
            stop(bridge)
    finally:
        for host in hosts:
            host.close()
    return figures


def revoke(hosts, rounds: int) -> dict:
    """Badges suspended one at a time (an ORM update, committed); each device process times
    when every device of its own that held the badge stopped holding it."""
    from access.models import Credential

    victims = [uid_hash(f"{i:08X}") for i in range(10)]  # staff: on every controller
    victims += [uid_hash(f"{i:08X}") for i in range(100, 100 + max(0, rounds - 10))]
    delays, missed = [], 0
    for h in victims[:rounds]:
        holders = [host.ask(f"holds {h}") for host in hosts]
        for host, held in zip(hosts, holders, strict=True):
            assert host.ask(f"watch {h} {','.join(held)}") == "watching"
        changed = time.monotonic()
        Credential.objects.filter(uid_hash=h).update(status="suspended")
        for host in hosts:
            answer = host.ask()
            delays += [t - changed for t in answer["gone"].values()]
            missed += answer["missed"]
        time.sleep(0.3)
    delays.sort()
    return {
        "revocations": len(victims[:rounds]),
        "deltas_measured": len(delays),
        "missed": missed,
        "revocation_p50_ms": round(1000 * delays[len(delays) // 2]),
        "revocation_p99_ms": round(1000 * delays[int(len(delays) * 0.99) - 1]),
        "revocation_max_ms": round(1000 * delays[-1]),
    }


def report(results, sizes, args):
    echo = results["echo"]
    print(f"\nload average: {os.getloadavg()}")
    print(
        "| responder | bookings | 100/s offered: p50 / p99 ms | saturation, 16 in flight: "
        "decisions/s | p50 / p99 ms | CPU ms per decision | load avg | audited |"
    )
    print("|---|---|---|---|---|---|---|---|")
    r, s = echo["rate"], echo["saturation"]
    print(
        f"| echo (ceiling) | – | {r['p50_ms']} / {r['p99_ms']} | {s['per_s']} | "
        f"{s['p50_ms']} / {s['p99_ms']} | {s['cpu_ms_per_decision']} | {s['load_average']} | – |"
    )
    for size in sizes:
        f = results[f"bridge_{size}"]
        r, s = f["rate"], f["saturation"]
        print(
            f"| bridge ({args.workers} worker) | {f['bookings']:,} | {r['p50_ms']} / "
            f"{r['p99_ms']} | {s['per_s']} | {s['p50_ms']} / {s['p99_ms']} | "
            f"{s['cpu_ms_per_decision']} | {s['load_average']} | "
            f"{f['audited']} of {f['answered']} |"
        )
    main_size = 200000 if 200000 in sizes else sizes[0]
    f = results[f"bridge_{main_size}"]
    share = f["saturation"]["per_s"] / echo["saturation"]["per_s"]
    print(
        f"\nat {main_size:,} bookings: p99 at 100/s {f['rate']['p99_ms']} ms "
        f"(target ≤ {TARGETS['p99_at_100']}), saturation {f['saturation']['per_s']}/s "
        f"(target ≥ {TARGETS['saturation']}), {share:.0%} of the echo ceiling "
        f"(target ≥ {TARGETS['ceiling_share']:.0%})"
    )
    if 10000 in sizes and 1000000 in sizes:
        small, large = results["bridge_10000"], results["bridge_1000000"]
        growth = large["rate"]["p99_ms"] / small["rate"]["p99_ms"]
        print(f"p99 at 100/s, 1M vs 10k bookings: ×{growth:.2f} (target ≤ {TARGETS['growth']})")
        print(
            f"bookings probe alone, p50 / p99 ms: {small['probe']['p50_ms']} / "
            f"{small['probe']['p99_ms']} at 10k, {large['probe']['p50_ms']} / "
            f"{large['probe']['p99_ms']} at 1M"
        )


if __name__ == "__main__":
    main()
