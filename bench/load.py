"""Load benchmark, run by hand (not in CI): the API and the MQTT bridge under load together.

    uv run python bench/load.py                          # 60 s, 200k bookings
    uv run python bench/load.py --seconds 20 --bookings 10000 --db tc_bench_load_quick

Creates (drops first) the PostgreSQL database --db, migrates it and seeds the access
benchmark's campus (bench/access.py: 2,000 people with badges, 50 tenants, 150 doors on 38
controllers, 200 resources) and --bookings bookings over a year around now; adds always-open
booking policies for rooms and labs and one API token per client thread. Then starts, all on
127.0.0.1: gunicorn (--workers, DEBUG=0, persistent database connections; bench/bookings.py's
helper), a private Mosquitto with TCP_NODELAY and the bridge (`manage.py mqtt_bridge`, MQTT v5
shared subscription; bench/access.py's helpers), and for --seconds runs at the same time:

- --threads API clients, each with its own token and keep-alive connection, sending back to
  back a mix of
  - `book`: POST /api/v1/bookings of a 30-minute slot in a room or lab, 190–360 days ahead
    (beyond the seeded year, so 201 is expected; a 409 is counted as a conflict);
  - `availability`: GET /api/v1/availability for a 1-hour window on a random day of the
    seeded year (every resource considered);
  - `list`: GET /api/v1/bookings?from=&to= for a random week (the caller's tenant's);
- one MQTT client offering --scan-rate badge scans per second at random doors (10 % unknown
  badges), each timed from publishing the scan to receiving its decision.

Prints, per traffic type, the requests answered, throughput, p50 and p99 latency and the
errors (an unexpected status, a lost connection, a scan left unanswered), the decisions found
in the audit log, and the load average (the machine may be shared: it says how far the figures
can be trusted). Every loop is bounded by --seconds; traffic stays on 127.0.0.1.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import access as access_bench  # noqa: E402
from bench import bookings as http_bench  # noqa: E402

PARIS = http_bench.PARIS
MIX = "book=2,availability=4,list=4"  # relative weights of the API traffic
EXPECTED = {"book": 201, "availability": 200, "list": 200}


def parse_mix(text: str) -> dict[str, int]:
    mix = {kind: 0 for kind in EXPECTED}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind not in mix or not weight.isdigit():
            raise argparse.ArgumentTypeError(f"expected e.g. {MIX}")
        mix[kind] = int(weight)
    if not any(mix.values()):
        raise argparse.ArgumentTypeError("at least one weight above 0")
    return mix


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--db", default="tc_bench_load")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the measured run")
    p.add_argument("--bookings", type=int, default=200_000, help="bookings seeded first")
    p.add_argument("--threads", type=int, default=4, help="API client threads")
    p.add_argument("--mix", default=MIX, type=parse_mix, help=f"API weights (default {MIX})")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--server-threads", type=int, default=4, help="threads per gunicorn worker")
    p.add_argument("--scan-rate", type=float, default=50.0, help="badge scans per second")
    p.add_argument("--bridge-workers", type=int, default=1)
    p.add_argument("--bridge-threads", type=int, default=1, help="door decider threads per worker")
    p.add_argument("--port", type=int, default=0, help="gunicorn's port (default: a free one)")
    p.add_argument("--keep", action="store_true", help="keep the database at the end")
    p.add_argument("--json", help="also write the figures to this file")
    return p.parse_args()


# ------------------------------------------------------------------ seeding


def prepare_api(threads: int) -> dict:
    """Always-open policies for rooms and labs, and one token per client thread (people of
    different tenants); the resources the clients book."""
    from bookings.models import Resource
    from campus.models import ApiToken, Person

    for kind in ("meeting_room", "lab"):
        http_bench.always_open_policy(f"Bench {kind}", kind)
    people = Person.objects.filter(tenant__isnull=False).order_by("pk")[:threads]
    bookable = Resource.objects.filter(kind__in=["meeting_room", "lab"]).order_by("pk")
    return {
        "tokens": [ApiToken.issue(person, "load")[1] for person in people],
        "rooms": list(bookable.values_list("pk", flat=True)),
    }


# ------------------------------------------------------------------ API traffic


class FreeSlots:
    """30-minute slots 190–360 days ahead (beyond the seeded bookings), each handed out once,
    in a shuffled order shared by the threads."""

    def __init__(self, rooms: list[int], rng: random.Random):
        today = datetime.now(PARIS).date()
        cells = [(room, d, h) for room in rooms for d in range(190, 361) for h in range(24)]
        rng.shuffle(cells)
        self.cells, self.lock, self.today = iter(cells), threading.Lock(), today

    def next(self) -> tuple[int, datetime, datetime]:
        with self.lock:
            room, days, hour = next(self.cells)
        day = self.today + timedelta(days=days)
        start = datetime(day.year, day.month, day.day, hour, tzinfo=PARIS)
        return room, start, start + timedelta(minutes=30)


class Client(threading.Thread):
    """One API caller: its own token and keep-alive connection, requests back to back."""

    def __init__(self, n, port: int, token: str, free: FreeSlots, deadline: float, mix: dict):
        super().__init__(name=f"api-{n}", daemon=True)
        self.mix = mix
        self.api = http_bench.Api(port, token)
        self.rng, self.free, self.deadline = random.Random(n), free, deadline
        self.latencies = {kind: [] for kind in EXPECTED}
        self.conflicts = 0
        self.errors: list[str] = []
        self.today = datetime.now(PARIS).date()

    def request(self, kind: str) -> tuple[str, str, dict | None]:
        if kind == "book":
            room, start, end = self.free.next()
            body = http_bench.booking_body(room, start, end, f"load-{self.name}")
            return "POST", "/api/v1/bookings", body
        day = self.today + timedelta(days=self.rng.randrange(-180, 180))
        if kind == "availability":
            start = datetime(day.year, day.month, day.day, self.rng.randrange(8, 18), tzinfo=PARIS)
            window = {"start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()}
            return "GET", f"/api/v1/availability?{urlencode(window)}", None
        first = datetime(day.year, day.month, day.day, tzinfo=PARIS)  # a date-time, not a date
        week = {"from": first.isoformat(), "to": (first + timedelta(days=7)).isoformat()}
        return "GET", f"/api/v1/bookings?{urlencode({**week, 'limit': 50})}", None

    def once(self, kind: str):
        method, path, body = self.request(kind)
        started = time.perf_counter()
        try:
            status, content = self.api.call(method, path, body)
        except OSError as e:
            self.errors.append(f"{kind}: {e!r}")
            self.api.conn.close()
            return
        elapsed = (time.perf_counter() - started) * 1000
        if status == EXPECTED[kind]:
            self.latencies[kind].append(elapsed)
        elif kind == "book" and status == 409:
            self.conflicts += 1
        else:
            self.errors.append(f"{kind}: {status} {content[:120]!r}")

    def run(self):
        kinds, weights = list(self.mix), list(self.mix.values())
        while time.perf_counter() < self.deadline:
            self.once(self.rng.choices(kinds, weights)[0])
        self.api.conn.close()


def warm_up(port: int, token: str, free: FreeSlots):
    """Imports, database connections and caches of every gunicorn worker, before measuring."""
    client = Client(-1, port, token, free, deadline=0, mix={})
    for _ in range(10):
        for kind in EXPECTED:
            client.once(kind)
    client.api.conn.close()
    if client.errors:
        raise SystemExit(f"the API does not answer as expected: {client.errors[:3]}")


def settle(load, rate: float, limit: float = 90.0) -> float:
    """Seconds until the bridge answers every scan of two 1-second bursts in a row. Right after
    it starts, its refresher builds every allow-list; meanwhile its facts age beyond their
    freshness bound and scans go unanswered: measuring then would measure the start-up."""
    started, answered_in_a_row = time.perf_counter(), 0
    while answered_in_a_row < 2 and time.perf_counter() - started < limit:
        load.reset(f"settle-{uuid.uuid4().hex[:6]}")
        burst = load.offered(rate, 1)
        answered_in_a_row = answered_in_a_row + 1 if burst["answered"] == burst["sent"] else 0
    if answered_in_a_row < 2:
        raise SystemExit(f"the bridge still leaves scans unanswered after {limit:.0f} s")
    return time.perf_counter() - started


# ------------------------------------------------------------------ report


def figures(latencies: list[float], seconds: float) -> dict:
    if not latencies:
        return {"answered": 0, "per_s": 0.0, "p50_ms": None, "p99_ms": None}
    return {
        "answered": len(latencies),
        "per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(http_bench.percentile(latencies, 50), 1),
        "p99_ms": round(http_bench.percentile(latencies, 99), 1),
    }


def report(results: dict):
    print(
        f"\n{results['seconds']:.0f} s, {results['bookings']:,} bookings seeded, "
        f"{results['threads']} API threads (weights {results['mix']}), "
        f"{results['scan_rate']:.0f} scans/s offered"
    )
    print("| traffic | answered | per second | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for kind, f in results["traffic"].items():
        if not f["answered"] and not f["errors"]:
            continue  # not in the mix
        extra = f" ({f['conflicts']} conflicts)" if f.get("conflicts") else ""
        print(
            f"| {kind} | {f['answered']} | {f['per_s']} | {f['p50_ms']} | {f['p99_ms']} | "
            f"{f['errors']}{extra} |"
        )
    print(f"\ndecisions in the audit log: {results['audited']} of {results['scans_answered']}")
    print("load average (1 min) before / after: " + " / ".join(map(str, results["load_avg"])))
    for sample in results["error_samples"]:
        print(f"  error: {sample}")


def main():
    args = parse_args()
    if shutil.which("mosquitto") is None:
        raise SystemExit("needs the mosquitto binary (apt-get install mosquitto)")
    env = http_bench.production_env(args.server, args.db, access_bench.KEY)
    os.environ.update(env)
    print(f"database {args.db}: creating, migrating, seeding", flush=True)
    access_bench.recreate_database(args.server, args.db)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    campus = access_bench.seed_campus()
    access_bench.grow_bookings(args.bookings)
    api = prepare_api(args.threads)
    from bookings.models import Booking

    seeded = Booking.objects.count()
    print(f"{seeded:,} bookings, {len(campus['doors'])} doors; starting the servers", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    port = args.port or access_bench.free_port()
    gunicorn = broker = bridge = load = None
    try:
        gunicorn = http_bench.start_gunicorn(
            env, port, args.workers, args.server_threads, workdir / "gunicorn.log"
        )
        broker, mqtt_port = access_bench.start_mosquitto(workdir)
        url, root = f"mqtt://127.0.0.1:{mqtt_port}", f"bench/{uuid.uuid4().hex[:8]}/campus/v1"
        bridge_args = SimpleNamespace(
            server=args.server,
            db=args.db,
            workers=args.bridge_workers,
            threads=args.bridge_threads,
        )
        bridge = access_bench.start_bridge(bridge_args, url, root)
        load = access_bench.Load(url, root, campus["doors"], "warm")
        if not load.online.wait(30):
            raise SystemExit("the bridge did not come online")
        rng = random.Random(2026)
        free = FreeSlots(api["rooms"], rng)
        warm_up(port, api["tokens"][0], free)
        settled = settle(load, args.scan_rate)
        print(f"the bridge answers every scan {settled:.1f} s after coming online", flush=True)

        print(f"measuring for {args.seconds:.0f} s", flush=True)
        load_before = os.getloadavg()[0]
        load.reset(f"load-{uuid.uuid4().hex[:6]}")
        deadline = time.perf_counter() + args.seconds
        clients = [
            Client(n, port, token, free, deadline, args.mix)
            for n, token in enumerate(api["tokens"])
        ]
        scans: dict = {}
        scanner = threading.Thread(
            target=lambda: scans.update(load.offered(args.scan_rate, args.seconds)),
            name="scans",
        )
        started = time.perf_counter()
        for thread in [*clients, scanner]:
            thread.start()
        for thread in [*clients, scanner]:
            thread.join(timeout=args.seconds + 60)
        seconds = time.perf_counter() - started
        load_after = os.getloadavg()[0]
        audited = access_bench.audited([load.prefix])  # while the bridge still runs
    finally:
        for process in (bridge, broker):
            if process is not None:
                access_bench.stop(process)
        if gunicorn is not None:
            http_bench.stop(gunicorn)
        if load is not None:
            load.close()
        from django.db import connections

        connections.close_all()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.keep:
            access_bench.drop_database(args.server, args.db)

    traffic = {}
    errors = [e for c in clients for e in c.errors]
    for kind in EXPECTED:
        traffic[kind] = figures([ms for c in clients for ms in c.latencies[kind]], seconds)
        traffic[kind]["errors"] = sum(e.startswith(f"{kind}:") for e in errors)
    traffic["book"]["conflicts"] = sum(c.conflicts for c in clients)
    traffic["scan"] = {
        "answered": scans["answered"],
        "per_s": round(scans["answered"] / seconds, 1),
        "p50_ms": scans["p50_ms"],
        "p99_ms": scans["p99_ms"],
        "errors": scans["sent"] - scans["answered"],  # unanswered within 2 s of the end
    }
    results = {
        "seconds": seconds,
        "bookings": seeded,
        "threads": args.threads,
        "scan_rate": args.scan_rate,
        "mix": args.mix,
        "traffic": traffic,
        "scans_answered": scans["answered"],
        "bridge_settled_s": round(settled, 1),
        "audited": audited,
        "load_avg": [round(load_before, 2), round(load_after, 2)],
        "error_samples": errors[:5],
    }
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
