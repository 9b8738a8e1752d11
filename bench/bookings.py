"""Booking benchmark, run by hand (not in CI): PostgreSQL, gunicorn, plain HTTP.

    uv run python bench/bookings.py                       # 10k, 200k and 1M bookings
    uv run python bench/bookings.py --sizes 10000,200000  # quicker
    uv run python bench/bookings.py --keep                # keep the database afterwards

Creates (drops first) the database --db on --server, migrates it, seeds 500 resources and a
year of bookings with set-based SQL, starts gunicorn (gunicorn.conf.py as in production:
2 gthread workers of 4 threads, DEBUG=0, persistent database connections) on 127.0.0.1, then
measures through HTTP with keep-alive clients:

- availability: GET /api/v1/availability for a 1-hour window on a random working day, and
  GET /api/v1/resources/{id}/free-slots?date=… (100 sequential requests each);
- booking creation: POST /api/v1/bookings of slots known to be free (100 sequential);
- 50 racers: 50 threads POST the same slot at once; winners and wall time until all answered.

Latencies are the medians over --runs runs of the p50 and p95 of each run. The dataset grows in
place: the 200k set contains the 10k set, the 1M set the 200k set. Bookings made by the
benchmark itself are deleted after each size, so that the counts stay exact.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
TODAY = datetime.now(PARIS).date()
FIRST_DAY = TODAY - timedelta(days=182)
LAST_DAY = FIRST_DAY + timedelta(days=364)  # a year of bookings, half past, half ahead
OPEN_HOURS = range(7, 21)  # seeded cells start at 07:00 … 20:00 local; 21:00–24:00 stay free
FREE_HOUR = 22  # the benchmark books 22:00–22:30, never seeded
KINDS = [("meeting_room", 250), ("lab", 100), ("equipment", 150)]
TENANTS, PEOPLE_PER_TENANT, RACERS = 50, 10, 50

TARGETS = {
    "availability_p95": 20.0,
    "creation_p95": 15.0,
    "race_seconds": 1.0,
    "growth": 1.5,
}
PEER = (
    "creation p95 32 ms; one day's availability for 500 resources 218 ms; 26 of 30 rounds of "
    "50 racers stored more than one booking (500 resources, 50,000 reservations)"
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="tc_bench")
    p.add_argument("--sizes", default="10000,200000,1000000")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--requests", type=int, default=100, help="sequential requests per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--race-rounds", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    p.add_argument("--keep", action="store_true", help="keep the database at the end")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args()


# ------------------------------------------------------------------ database and seeding


def recreate_database(server: str, name: str):
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(server: str, name: str):
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def always_open_policy(name: str, kind: str, **extra):
    """The default policy of a resource kind, open at every hour of every day (bench/load.py
    too): 15-minute slots, 15 min to 10 h, a year ahead."""
    from bookings.models import BookingPolicy

    return BookingPolicy.objects.create(
        name=name,
        default_for_kind=kind,
        opening_hours=[],
        closed_on_public_holidays=False,
        slot_minutes=15,
        min_duration_minutes=15,
        max_duration_minutes=600,
        max_advance_days=365,
        **extra,
    )


def seed_campus() -> dict:
    """Policies (always open, so every hour is bookable), 500 resources, 500 people, tokens."""
    from bookings.models import Resource
    from campus.models import ApiToken, Building, Feature, Floor, Person, Site, Space, Tenant

    always_open_policy("Rooms", "meeting_room", checkin_window_minutes=15)
    always_open_policy("Labs", "lab", checkin_window_minutes=15, buffer_after_minutes=15)
    always_open_policy("Equipment", "equipment", checkin_window_minutes=15)

    site = Site.objects.create(name="Bench campus", slug="bench")
    building = Building.objects.create(site=site, code="B", name="Main")
    floors = [Floor.objects.create(building=building, level=lv, name=f"L{lv}") for lv in range(3)]
    features = [Feature.objects.create(code=c, name=c) for c in ("projector", "visio", "esd-floor")]
    resources = []
    n = 0
    for kind, count in KINDS:
        for i in range(count):
            n += 1
            space = None
            if kind != "equipment":
                space = Space.objects.create(
                    floor=floors[n % 3],
                    code=f"B-{n % 3}.{n:03d}",
                    name=f"{kind} {i}",
                    kind=kind,
                    capacity=4 + n % 20,
                    bookable=True,
                )
                space.features.add(features[n % 3])
            resources.append(
                Resource(
                    code=f"R{n:03d}",
                    name=f"{kind} {i}",
                    kind=kind,
                    space=space,
                    capacity=4 + n % 20,
                    price_member_cents=1000 + 100 * (n % 10),
                    price_non_member_cents=2000 + 100 * (n % 10),
                )
            )
    Resource.objects.bulk_create(resources)

    tenants = Tenant.objects.bulk_create(
        Tenant(
            name=f"Bench {t}", tier="member" if t % 3 else "non_member", contract_start=FIRST_DAY
        )
        for t in range(TENANTS)
    )
    Person.objects.bulk_create(
        Person(
            email=f"bench{i}@bench.test",
            first_name=f"P{i}",
            last_name="Bench",
            tenant=tenants[i % TENANTS],
            password="!",
        )
        for i in range(TENANTS * PEOPLE_PER_TENANT)
    )
    people = list(Person.objects.filter(email__endswith="@bench.test").order_by("pk"))
    tokens = [ApiToken.issue(person, "bench")[1] for person in people[:RACERS]]
    rooms = list(
        Resource.objects.filter(kind="meeting_room").order_by("pk").values_list("pk", flat=True)
    )
    return {"tokens": tokens, "rooms": rooms, "resources": Resource.objects.count()}


def prepare_cells():
    """Every (resource, local day, hour) cell of the year, in a fixed random order.

    Seeding N bookings fills the first N cells: one booking per cell, 30 to 60 minutes (labs
    30–45 plus their 15-minute buffer), so that no two seeded bookings of a resource overlap
    and each size's set contains the smaller ones.
    """
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT setseed(0.2026)")
        cur.execute(
            """
            CREATE UNLOGGED TABLE bench_cell AS
            SELECT row_number() OVER (ORDER BY random()) AS rank, r.id AS resource_id,
                   r.kind, d::date AS day, h
            FROM bookings_resource r,
                 generate_series(%s::date, %s::date, interval '1 day') d,
                 generate_series(%s, %s) h
            """,
            [FIRST_DAY, LAST_DAY, OPEN_HOURS.start, OPEN_HOURS.stop - 1],
        )
        cur.execute("CREATE INDEX ON bench_cell (rank)")
        cur.execute(
            """
            CREATE UNLOGGED TABLE bench_person AS
            SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, tenant_id
            FROM campus_person WHERE email LIKE %s
            """,
            ["%@bench.test"],
        )
        cur.execute("SELECT count(*) FROM bench_cell")
        return cur.fetchone()[0]


def seed_bookings(previous: int, size: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH c AS (
                SELECT rank, resource_id,
                       (day + make_time(h, 0, 0)) AT TIME ZONE 'Europe/Paris' AS start,
                       interval '1 minute' * CASE WHEN kind = 'lab' THEN 30 + 15 * (rank %% 2)
                                                 ELSE 30 + 15 * (rank %% 3) END AS dur,
                       CASE WHEN kind = 'lab' THEN interval '15 minutes'
                            ELSE interval '0' END AS buffer,
                       (rank * 7919) %% 100 AS dice
                FROM bench_cell WHERE rank > %(previous)s AND rank <= %(size)s
            ), s AS (
                SELECT c.*, CASE
                    WHEN start >= now() THEN CASE WHEN dice < 90 THEN 'confirmed'
                                                  WHEN dice < 95 THEN 'pending'
                                                  ELSE 'cancelled' END
                    ELSE CASE WHEN dice < 80 THEN 'confirmed'
                              WHEN dice < 90 THEN 'checked_in'
                              WHEN dice < 95 THEN 'released'
                              ELSE 'cancelled' END
                END AS status
                FROM c
            )
            INSERT INTO bookings_booking (
                uid, resource_id, person_id, tenant_id, title, attendees, start, "end",
                blocked_start, blocked_end, status, is_maintenance, price_cents, charge_cents,
                created_at, checked_in_at, cancelled_at, note
            )
            SELECT gen_random_uuid(), s.resource_id, p.id, p.tenant_id, 'seed', 1, s.start,
                   s.start + s.dur, s.start, s.start + s.dur + s.buffer, s.status, false,
                   1000, 0, s.start - interval '7 days',
                   CASE WHEN s.status = 'checked_in' THEN s.start END,
                   CASE WHEN s.status = 'cancelled' THEN s.start - interval '1 day' END, ''
            FROM s JOIN bench_person p ON p.n = s.rank %% %(people)s
            ORDER BY s.rank
            """,
            {"previous": previous, "size": size, "people": TENANTS * PEOPLE_PER_TENANT},
        )
    # A year of bookings in production is a table autovacuum keeps vacuumed; measured right
    # after a bulk insert, the requests raced autovacuum's pass over the new rows (and found
    # no visibility map). Vacuumed here, outside any transaction, before the clock starts.
    with connection.cursor() as cur:
        cur.execute("VACUUM (ANALYZE) bookings_booking")
    return time.perf_counter() - started


def delete_bench_bookings():
    from django.db import connection

    with connection.cursor() as cur:
        # Their queued e-mails first (the benchmark runs no worker to send them).
        cur.execute(
            "DELETE FROM bookings_outboxemail WHERE booking_id IN "
            "(SELECT id FROM bookings_booking WHERE title LIKE %s)",
            ["bench-%"],
        )
        cur.execute("DELETE FROM bookings_booking WHERE title LIKE %s", ["bench-%"])


def count_active(resource_id: int, start: datetime) -> int:
    from bookings.models import ACTIVE, Booking

    return Booking.objects.filter(resource_id=resource_id, start=start, status__in=ACTIVE).count()


# ------------------------------------------------------------------ server


def start_gunicorn(
    env: dict, port: int, workers: int, threads: int, log_path: Path
) -> subprocess.Popen:
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            # gunicorn.conf.py, read from ROOT as in production: gthread workers, keep-alive.
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/api/v1/openapi.json")
            conn.getresponse().read()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"gunicorn did not start; see {log_path}")


def stop(proc: subprocess.Popen):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ HTTP client


class Api:
    """One keep-alive connection with a bearer token (reopened if the server closes it)."""

    def __init__(self, port: int, token: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # a stale keep-alive connection: reconnect once
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def timed(self, method: str, path: str, body=None, expect=200) -> float:
        started = time.perf_counter()
        status, content = self.call(method, path, body)
        elapsed = (time.perf_counter() - started) * 1000
        if status != expect:
            raise SystemExit(f"{method} {path} answered {status}: {content[:300]!r}")
        return elapsed


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(runs: list[list[float]]) -> dict:
    return {
        "p50": statistics.median(percentile(r, 50) for r in runs),
        "p95": statistics.median(percentile(r, 95) for r in runs),
    }


def working_days(first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


class FreeSlots:
    """Slots no one else books: 22:00–22:30 local on a future day, one per (room, day)."""

    def __init__(self, rooms: list[int]):
        days = [TODAY + timedelta(days=d) for d in range(3, 90)]
        self.pairs = iter([(room, day) for day in days for room in rooms])

    def next(self) -> tuple[int, datetime, datetime]:
        room, day = next(self.pairs)
        start = datetime.combine(day, datetime.min.time(), tzinfo=PARIS).replace(hour=FREE_HOUR)
        return room, start, start + timedelta(minutes=30)


def booking_body(room: int, start: datetime, end: datetime, title: str) -> dict:
    return {"resource_id": room, "start": start.isoformat(), "end": end.isoformat(), "title": title}


# ------------------------------------------------------------------ measurements


def measure_availability(api: Api, rng: random.Random, requests: int, runs: int) -> dict:
    days = working_days(FIRST_DAY, LAST_DAY)
    runs_ms = []
    for _ in range(runs):
        times = []
        for _ in range(requests):
            day = rng.choice(days)
            start = datetime.combine(day, datetime.min.time(), tzinfo=PARIS).replace(
                hour=rng.randrange(8, 18)
            )
            query = urlencode(
                {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
            )
            times.append(api.timed("GET", f"/api/v1/availability?{query}"))
        runs_ms.append(times)
    return summary(runs_ms)


def measure_free_slots(api: Api, rng: random.Random, resources: list[int], requests, runs):
    days = working_days(FIRST_DAY, LAST_DAY)
    runs_ms = []
    for _ in range(runs):
        times = []
        for _ in range(requests):
            query = urlencode({"date": rng.choice(days).isoformat()})
            path = f"/api/v1/resources/{rng.choice(resources)}/free-slots?{query}"
            times.append(api.timed("GET", path))
        runs_ms.append(times)
    return summary(runs_ms)


def measure_creation(api: Api, free: FreeSlots, requests: int, runs: int) -> dict:
    runs_ms = []
    for run in range(runs):
        times = []
        for i in range(requests):
            body = booking_body(*free.next(), f"bench-create-{run}-{i}")
            times.append(api.timed("POST", "/api/v1/bookings", body, expect=201))
        runs_ms.append(times)
    return summary(runs_ms)


def race_once(port: int, tokens: list[str], free: FreeSlots, round_no: int) -> dict:
    room, start, end = free.next()
    clients = [Api(port, token) for token in tokens]
    for client in clients:
        client.conn.connect()
    statuses: list = [None] * len(clients)
    finished: list = [0.0] * len(clients)
    released = {}
    barrier = threading.Barrier(
        len(clients), action=lambda: released.update(at=time.perf_counter())
    )

    def run(i):
        barrier.wait(timeout=30)
        body = booking_body(room, start, end, f"bench-race-{round_no}-{i}")
        try:
            statuses[i] = clients[i].call("POST", "/api/v1/bookings", body)[0]
        except OSError as e:
            statuses[i] = repr(e)
        finished[i] = time.perf_counter()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for client in clients:
        client.conn.close()
    return {
        "seconds": max(finished) - released["at"],
        "winners": statuses.count(201),
        "conflicts": statuses.count(409),
        "other": [s for s in statuses if s not in (201, 409)],
        "stored": count_active(room, start),
    }


def measure_races(port: int, tokens: list[str], free: FreeSlots, rounds: int) -> dict:
    results = [race_once(port, tokens, free, r) for r in range(rounds)]
    return {
        "rounds": rounds,
        "median_s": statistics.median(r["seconds"] for r in results),
        "max_s": max(r["seconds"] for r in results),
        "rounds_with_one_winner": sum(r["winners"] == 1 and r["stored"] == 1 for r in results),
        "rounds_storing_more_than_one": sum(r["stored"] > 1 for r in results),
        "other_answers": [s for r in results for s in r["other"]],
    }


def measure(args, campus: dict, size: int) -> dict:
    rng = random.Random(size)
    api = Api(args.port, campus["tokens"][0])
    free = FreeSlots(campus["rooms"])
    from bookings.models import Resource

    resources = list(Resource.objects.values_list("pk", flat=True))
    # Warm-up: imports, connections and caches of both workers.
    measure_availability(api, rng, 10, 1)
    measure_free_slots(api, rng, resources, 10, 1)
    measure_creation(api, free, 10, 1)
    figures = {
        "availability": measure_availability(api, rng, args.requests, args.runs),
        "free_slots": measure_free_slots(api, rng, resources, args.requests, args.runs),
        "creation": measure_creation(api, free, args.requests, args.runs),
        "race": measure_races(args.port, campus["tokens"], free, args.race_rounds),
    }
    api.conn.close()
    return figures


# ------------------------------------------------------------------ report


def report(results: dict):
    sizes = list(results)
    head = f"{'figure':<34}" + "".join(f"{s:>12,}" for s in sizes) + f"{'target':>12}"
    print("\n" + head)
    print("-" * len(head))

    def row(label, values, target=""):
        print(f"{label:<34}" + "".join(f"{v:>12}" for v in values) + f"{target:>12}")

    for key, label in [("availability", "availability"), ("free_slots", "free slots, 1 day")]:
        row(f"{label} p50 (ms)", [f"{results[s][key]['p50']:.1f}" for s in sizes])
        target = f"≤ {TARGETS['availability_p95']:.0f}" if key == "availability" else ""
        row(f"{label} p95 (ms)", [f"{results[s][key]['p95']:.1f}" for s in sizes], target)
    row("creation p50 (ms)", [f"{results[s]['creation']['p50']:.1f}" for s in sizes])
    row(
        "creation p95 (ms)",
        [f"{results[s]['creation']['p95']:.1f}" for s in sizes],
        f"≤ {TARGETS['creation_p95']:.0f}",
    )
    row("50 racers, median (s)", [f"{results[s]['race']['median_s']:.3f}" for s in sizes], "≤ 1")
    row("50 racers, slowest round (s)", [f"{results[s]['race']['max_s']:.3f}" for s in sizes])
    row(
        "rounds with exactly one winner",
        [
            f"{results[s]['race']['rounds_with_one_winner']}/{results[s]['race']['rounds']}"
            for s in sizes
        ],
        "all",
    )
    row("seeding (s)", [f"{results[s]['seed_s']:.1f}" for s in sizes])
    row(
        "load average before/after",
        ["/".join(f"{x:.1f}" for x in results[s]["load_avg_1min"]) for s in sizes],
    )
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        print(f"\ngrowth {low:,} → {high:,} bookings (target ≤ {TARGETS['growth']}×):")
        for key in ("availability", "free_slots", "creation"):
            ratio = results[high][key]["p95"] / results[low][key]["p95"]
            print(f"  {key:<14} p95 × {ratio:.2f}")
    others = [o for s in sizes for o in results[s]["race"]["other_answers"]]
    if others:
        print(f"\nracers answered other than 201/409: {others[:10]}")
    print(f"\npeer: {PEER}")


def production_env(server: str, db: str, credential_key: str = "bench-credential-key") -> dict:
    """The environment of a production-like process on the bench database (this one's too)."""
    return {
        **os.environ,
        "DATABASE_URL": f"{server}/{db}",
        "DEBUG": "0",
        "SECRET_KEY": "bench-secret-key-not-for-production-" + "x" * 20,
        "CREDENTIAL_KEY": credential_key,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "DB_CONN_MAX_AGE": "60",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }


def main():
    args = parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    env = production_env(args.server, args.db)
    os.environ.update(env)
    print(f"database {args.db}: creating and migrating", flush=True)
    recreate_database(args.server, args.db)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    campus = seed_campus()
    started = time.perf_counter()
    cells = prepare_cells()
    print(
        f"{campus['resources']} resources; {cells:,} cells ready in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    if sizes[-1] > cells:
        raise SystemExit(f"at most {cells:,} bookings fit the seeding scheme")

    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-gunicorn-{args.port}.log"
    server = start_gunicorn(env, args.port, args.workers, args.threads, log_path)
    results = {}
    previous = 0
    try:
        for size in sizes:
            seconds = seed_bookings(previous, size)
            previous = size
            print(f"\n{size:,} bookings seeded (+{seconds:.1f} s); measuring…", flush=True)
            load_before = os.getloadavg()[0]
            results[size] = {"seed_s": seconds, **measure(args, campus, size)}
            # This machine may be shared: the load says how much the figures can be trusted.
            results[size]["load_avg_1min"] = [load_before, os.getloadavg()[0]]
            delete_bench_bookings()
            print(json.dumps(results[size], indent=1), flush=True)
    finally:
        stop(server)
        from django.db import connection

        connection.close()
        if not args.keep:
            drop_database(args.server, args.db)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
