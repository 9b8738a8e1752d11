"""Fault injection: the real bridge (`manage.py mqtt_bridge`, a subprocess), a real
Mosquitto and a real PostgreSQL of the suite's own (tests/faults/conftest.py), and one fault per
scenario while work is in flight.

1. The broker restarts during a stream of badge scans.
2. PostgreSQL restarts (fast shutdown: every connection cut) while four writers book the same
   meeting-room slots through `bookings.engine.book` and badge scans stream in.
3. The bridge is stopped with SIGTERM during a machine's power session and started again:
   the session goes on (the relay stays powered, its lease is renewed by the new process) and
   a badge-out closes it once.
4. Two bridge workers share the scans (`--workers 2`, MQTT 5 shared subscriptions) and one is
   killed with SIGKILL mid-stream; the supervisor starts it again.

After each: every scan is answered with a decision, or with `stale_request` once its `ts` is
older than 5 s (the simulated controller re-sends an unanswered scan each second with the same
`req_id` and `ts`, the protocol's idempotency key); every answered request has exactly one
audit row, holding one of the answers the controller got; no booking is lost or duplicated;
the bridge is still up and answers a fresh scan. Waits are bounded and generous: they never
measure speed.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from access.mqtt import broker_from_url
from access.simulator import SimulatedController, SimulatedRelay
from tests.access.broker import wait_until
from tests.access.test_bridge import decisions, start_bridge_process
from tests.faults.agent import BADGES, slots
from tests.faults.conftest import agent_env

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]

STALE_AFTER_S = 5


class ScanStream:
    """Badge scans at one door from a simulated controller; an unanswered one is re-sent, the
    same bytes, until it is answered (`settle`)."""

    def __init__(self, sim: SimulatedController, door="D-101", uid=BADGES["bob"]):
        self.sim, self.door, self.h = sim, door, sim.hash(uid)
        self.sent: dict[str, bytes] = {}
        self.topic = f"{sim.root}/ctrl/{sim.id}/door/{door}/scan"

    def send(self, count: int, every: float):
        for _ in range(count):
            req_id = uuid.uuid4().hex
            body = {"v": 1, "req_id": req_id, "ts": int(time.time() * 1000)}
            body["cred"] = {"type": "uid", "h": self.h}
            self.sent[req_id] = json.dumps(body).encode()
            self.sim.publish_raw(self.topic, self.sent[req_id])
            time.sleep(every)

    def in_background(self, count: int, every: float) -> threading.Thread:
        thread = threading.Thread(target=self.send, args=(count, every), daemon=True)
        thread.start()
        return thread

    def unanswered(self) -> list[str]:
        answered = decisions(self.sim)
        return [r for r in self.sent if r not in answered]

    def settle(self, timeout: float = 40.0) -> list[str]:
        """Re-send what is unanswered every second; what is still unanswered at the end."""
        deadline = time.monotonic() + timeout
        while (missing := self.unanswered()) and time.monotonic() < deadline:
            if self.sim.connected.is_set():
                for req_id in missing:
                    self.sim.publish_raw(self.topic, self.sent[req_id])
            time.sleep(1.0)
        return self.unanswered()


def controller(root: str, broker_url: str) -> SimulatedController:
    sim = SimulatedController(
        "ctrl-a",
        broker=broker_from_url(broker_url),
        key=settings.CREDENTIAL_KEY,
        root=root,
        heartbeat=0,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
    )
    sim.client.reconnect_delay_set(1, 1)
    return sim.start()


def backend_online(sim) -> bool:
    statuses = [b for t, b in list(sim.extra) if t.endswith("/sys/backend/status") and b]
    return bool(statuses) and statuses[-1]["online"]


def decision_rows(cluster, name) -> dict[str, list[tuple[str, str]]]:
    rows = cluster.query(
        name,
        "SELECT req_id, result, reason FROM access_auditevent "
        "WHERE kind = 'decision' AND controller = 'ctrl-a'",
    )
    logged: dict[str, list[tuple[str, str]]] = {}
    for req_id, result, reason in rows:
        logged.setdefault(req_id, []).append((result, reason))
    return logged


def assert_every_scan_answered_and_logged_once(stream: ScanStream, cluster, name, grant_reason):
    """The checks after each fault: answers, their reasons, the audit log."""
    missing = stream.settle()
    assert missing == [], f"{len(missing)} of {len(stream.sent)} scans never answered"
    answers = decisions(stream.sim)
    reasons = {(a["result"], a["reason"]) for r in stream.sent for a in answers[r]}
    assert reasons <= {("grant", grant_reason), ("deny", "stale_request")}, reasons
    # The writer flushes within a fraction of a second, or retries while the database is away.
    wait_until(lambda: set(stream.sent) <= set(decision_rows(cluster, name)), 30)
    logged = decision_rows(cluster, name)
    unlogged = [r for r in stream.sent if r not in logged]
    assert unlogged == [], f"{len(unlogged)} answered scans have no audit row"
    twice = {r: rows for r, rows in logged.items() if len(rows) != 1}
    assert twice == {}
    unexplained = {
        r: logged[r][0]
        for r in stream.sent
        if logged[r][0] not in {(a["result"], a["reason"]) for a in answers[r]}
    }
    assert unexplained == {}, "audit rows that differ from every answer the controller got"


def assert_bridge_answers_a_fresh_scan(sim, grant_reason):
    def fresh():
        answer = sim.scan("D-101", BADGES["bob"], timeout=2) or {}
        return answer.get("reason") == grant_reason and "offline" not in answer

    assert wait_until(fresh, 20), "the bridge does not answer after the fault"


@pytest.fixture
def scene(database, mosquitto):
    """This test's database, broker, topic root, simulated controller, and bridge processes
    (stopped with SIGTERM at the end)."""
    url, name = database
    root = f"faults/{uuid.uuid4().hex[:12]}/campus/v1"
    processes: list[subprocess.Popen] = []
    sim = controller(root, mosquitto.url)

    class Scene:
        db_url, db_name, broker, topic_root, device = url, name, mosquitto, root, sim

        def bridge(self, name=None, workers=1, **env) -> subprocess.Popen:
            """`mqtt_bridge`; the same `name` again resumes the same broker sessions."""
            process = start_bridge_process(
                root,
                name or f"bridge-{uuid.uuid4().hex[:6]}",
                f"g-{root.split('/')[1]}",
                database=url,
                mqtt_url=mosquitto.url,
                workers=workers,
                # A stream of scans from one controller: a load, not a door (no scan limit).
                **{"SCAN_RATE": "0", **env},
            )
            processes.append(process)
            return process

        def wait_online(self):
            assert wait_until(lambda: backend_online(sim), 30), "the bridge did not come online"

    yield Scene()
    sim.stop()
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(40)
        except subprocess.TimeoutExpired:
            process.kill()


# --- 1. the broker restarts


def test_a_broker_restart_during_a_stream_of_scans_loses_no_answer_and_no_audit_row(
    scene, private_postgres
):
    bridge = scene.bridge()
    sim = scene.device
    scene.wait_online()
    stream = ScanStream(sim)
    sending = stream.in_background(120, every=0.03)
    time.sleep(1.0)
    scene.broker.restart()  # sessions and retained messages lost, every client cut
    sending.join()
    assert_every_scan_answered_and_logged_once(
        stream, private_postgres, scene.db_name, "tenant_office"
    )
    assert bridge.poll() is None
    assert_bridge_answers_a_fresh_scan(sim, "tenant_office")


# --- 2. PostgreSQL restarts


def start_booking_writers(db_url) -> tuple[subprocess.Popen, threading.Thread, list[dict]]:
    """The agent's writers, the thread collecting their JSON lines as they come (it ends
    with the process's output), and the lines."""
    writers = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "tests.faults.agent", "book", "0.05"],
        env={**os.environ, **agent_env(db_url)},
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[dict] = []

    def read():
        for line in writers.stdout:
            lines.append(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return writers, reader, lines


def test_a_postgres_restart_during_bookings_and_scans_loses_and_duplicates_nothing(
    scene, private_postgres
):
    bridge = scene.bridge()
    sim = scene.device
    scene.wait_online()
    stream = ScanStream(sim)
    writers, reader, lines = start_booking_writers(scene.db_url)
    assert wait_until(lambda: sum("ack" in line for line in lines) >= 10, 60)
    sending = stream.in_background(120, every=0.03)
    time.sleep(0.5)
    private_postgres.restart()
    sending.join()
    assert writers.wait(120) == 0
    reader.join(10)  # every line read, not only those parsed so far
    assert lines[-1] == {"done": True}
    assert [line for line in lines if "gave_up" in line or "crashed" in line] == []
    assert any("error" in line for line in lines), "the restart did not reach the writers"

    # Bookings: every slot held exactly once, by the booking a writer was told about.
    acks = [line["ack"] for line in lines if "ack" in line]
    assert len(acks) == len(set(acks)), "a booking acknowledged twice"
    rows = private_postgres.query(
        scene.db_name,
        "SELECT b.id, r.code, b.start FROM bookings_booking b "
        "JOIN bookings_resource r ON r.id = b.resource_id WHERE r.code LIKE 'ROOM-%%'",
    )
    assert sorted(acks) == sorted(row[0] for row in rows)
    held = sorted((code, start) for _id, code, start in rows)
    assert held == sorted(slots()), "a slot lost or booked twice"
    overlaps = private_postgres.query(
        scene.db_name,
        "SELECT a.id, b.id FROM bookings_booking a JOIN bookings_booking b "
        "ON a.resource_id = b.resource_id AND a.id < b.id "
        "AND tstzrange(a.blocked_start, a.blocked_end) "
        "&& tstzrange(b.blocked_start, b.blocked_end)",
    )
    assert overlaps == []

    # Scans: the same as after a broker restart, and the bridge reconnected to the database.
    assert_every_scan_answered_and_logged_once(
        stream, private_postgres, scene.db_name, "tenant_office"
    )
    assert bridge.poll() is None
    assert_bridge_answers_a_fresh_scan(sim, "tenant_office")


# --- 3. SIGTERM during a machine's power session


def test_a_bridge_stopped_with_sigterm_during_a_power_session_resumes_it(scene, private_postgres):
    prefix = f"faults-{uuid.uuid4().hex[:8]}/"
    # A 30 s lease renewed every 10 s: the restart (a few seconds) must not let the relay drop.
    power = {"TASMOTA_PREFIX": prefix, "EQ_LEASE_S": "30", "EQ_CONFIRM_S": "5"}
    relay = SimulatedRelay(prefix, "emc1", broker=broker_from_url(scene.broker.url)).start()
    name = f"power-{uuid.uuid4().hex[:6]}"
    sim = scene.device
    try:
        first = scene.bridge(name, **power)
        scene.wait_online()
        granted = sim.eq_scan("EMC-1", BADGES["sam"], timeout=10)
        assert granted and granted["result"] == "grant", granted
        session_id = int(granted["session_id"])
        assert relay.on
        powered_at = len(relay.switches) - 1
        first.send_signal(signal.SIGTERM)
        assert first.wait(40) == 0
        renewals = len(relay.commands)
        open_after_stop = private_postgres.query(
            scene.db_name, "SELECT stopped_at FROM labs_usagesession WHERE id = %s", session_id
        )
        assert open_after_stop == [(None,)], "a clean stop must not end the user's session"
        scene.bridge(name, **power)
        # The new process takes the session over: it renews the same relay's lease.
        assert wait_until(lambda: len(relay.commands) >= renewals + 2, 30)
        assert relay.on and False not in relay.switches[powered_at:], "the machine lost power"
        out = sim.eq_scan("EMC-1", BADGES["sam"], "session_stop", timeout=10)
        assert out and (out["result"], out["session_id"]) == ("grant", str(session_id))
        assert wait_until(lambda: not relay.on, 10)
    finally:
        relay.stop()
    sessions = private_postgres.query(
        scene.db_name, "SELECT id, stopped_at IS NOT NULL, stop_reason FROM labs_usagesession"
    )
    assert sessions == [(session_id, True, "badge_out")]
    # The badge-in and the badge-out, each logged once.
    assert wait_until(lambda: len(decision_rows(private_postgres, scene.db_name)) == 2, 10)
    logged = decision_rows(private_postgres, scene.db_name)
    assert sorted(logged.values()) == [[("grant", "booking")], [("grant", "booking")]]


# --- 4. two workers, one killed


def children(pid: int) -> dict[int, int]:
    """Worker index → pid, for the supervisor's live children."""
    found = {}
    path = Path(f"/proc/{pid}/task/{pid}/children")
    for child in path.read_text().split() if path.exists() else []:
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"--worker-index" in argv:
            found[int(argv[argv.index(b"--worker-index") + 1])] = int(child)
    return found


def test_two_workers_and_one_killed_mid_stream_answer_every_scan_once(scene, private_postgres):
    supervisor = scene.bridge(f"pair-{uuid.uuid4().hex[:6]}", workers=2)
    sim = scene.device
    assert wait_until(lambda: len(children(supervisor.pid)) == 2, 30)
    scene.wait_online()
    time.sleep(1.0)  # both workers subscribed to the shared group
    stream = ScanStream(sim)
    sending = stream.in_background(150, every=0.02)
    time.sleep(1.0)
    victim = children(supervisor.pid)[1]
    os.kill(victim, signal.SIGKILL)
    sending.join()
    # The supervisor starts the worker again; it resumes its session under the same client id.
    assert wait_until(lambda: children(supervisor.pid).get(1) not in (None, victim), 30)
    assert_every_scan_answered_and_logged_once(
        stream, private_postgres, scene.db_name, "tenant_office"
    )
    assert supervisor.poll() is None
    assert_bridge_answers_a_fresh_scan(sim, "tenant_office")
