"""The MQTT bridge: the thin adapter between door and equipment controllers and the access
decision (protocol v1, docs/mqtt.md). It parses with `access.protocol`, reads facts
with `access.facts`, asks `access.decision.decide`, replies, and logs; it decides nothing itself.

Threads of one bridge process:
- paho's network thread hands door scans to the decider thread(s) and machine scans to their
  own thread, and handles everything else itself, in arrival order; the decider takes the
  scans waiting as one batch and answers each from the in-memory facts plus one bookings probe
  for the whole batch, the reply published before anything is written;
- the writer thread (access.audit) does every other database write off that path: audit rows
  in batches (within `audit_delay` of the first), controller presence (access.presence),
  check-ins by badge, and the acknowledgements of scans once their audit rows are committed;
- the refresher wakes when the change feed moves (PostgreSQL NOTIFY) or every `poll` seconds
  (access.facts.FactCache), publishes the retained site mode and door modes when they change,
  and watches heartbeats;
- the allow-list thread builds and pushes the lists (access.allowlists.Pusher) after each
  refresh, apart from the refresher so that a long build never lets the facts go stale;
- the periodic booking jobs (bookings.jobs.run_due) every 30 s, in the first worker only.

Delivery: QoS 1 with manual acknowledgement. A message is acknowledged once handled (a scan
once its audit row is committed); one received while stopping is not, so that the broker
delivers it again to the same persistent session (MQTT 5 clean_start=False with a session
expiry, or 3.1.1 clean_session=False) when the bridge is back. Several workers share the load
with MQTT 5 shared subscriptions (`$share/<group>/...`): the broker gives each scan to one of
them. Retained presence (`status`) and the backend's own status are read by every worker with
plain subscriptions (shared subscriptions get no retained messages); what they write is
idempotent.
"""

import contextlib
import gc
import logging
import os
import queue
import sys
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import paho.mqtt.client as mqtt
from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import Error as DatabaseError
from django.db import connection
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import multiprocess

from access import allowlists, changefeed, decision, power, presence, protocol
from access import facts as access_facts
from access.audit import Writer
from access.facts import (
    FactCache,
    FactsUnavailable,
    Snapshot,
    load_equipment_facts,
)
from access.models import AuditEvent, Controller
from access.mqtt import Broker, new_client
from campus.clock import local_wall_clock
from common.metrics import (
    BRIDGE_RECONNECTS,
    DECISION_SECONDS,
    DECISIONS,
    SCANS_RATE_LIMITED,
)

log = logging.getLogger(__name__)

# Scans answered together by one decider thread, with one bookings probe (Bridge._decide_loop).
MAX_SCAN_BATCH = 32
DECISION_TTL_MS = 2000  # a decision's `exp`: the device ignores it after that
# The broker keeps a worker's session, and queues its scans, this long after it disconnects:
# enough for a restart. Not more: Mosquitto (2.0.11, measured) keeps handing an offline member
# of a shared group its share of the scans, and a scan is stale after 5 s anyway.
SESSION_EXPIRY_S = 30
# Unacknowledged messages the broker may send us (MQTT 5), as many as the protocol allows: the
# broker queues at most max_queued_messages (Mosquitto: 1,000) beyond them and drops the rest,
# whoever sent them. With 1,000, a burst of 5,000 scans from one controller lost 1,000-2,800
# of them at the broker, and sometimes another controller's scan with them; with 65,535 the
# bridge got every one (and dropped the flood's itself, ScanLimiter).
RECEIVE_MAXIMUM = 65535
# A full collection of the frozen objects (see `building`) stops every thread for its
# length (0.25 s with the facts and lists of 1M bookings, none found unreachable): once a day,
# in the night, building time.
SWEEP_HOUR = 3
ALARMS = frozenset({"forced", "held", "tamper"})
# A device clock this far off is not believed for an event's time: the audit line gets ours.
DEVICE_CLOCK_SLACK = timedelta(days=7)
# A controller over its scan limit raises one alarm in this long, however many it sends.
FLOOD_ALARM_EVERY_S = 60.0

SHARED_TOPICS = (
    "ctrl/+/door/+/scan",
    "ctrl/+/eq/+/scan",
    "ctrl/+/door/+/event",
    "ctrl/+/door/+/cmd/ack",
    "ctrl/+/log",
    "ctrl/+/hb",
    "ctrl/+/acl/ack",
)
PLAIN_TOPICS = ("ctrl/+/status", "sys/backend/status")


class LRU(OrderedDict):
    """A small bounded memory of recent keys (repeated req_id, seq), oldest dropped first."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def remember(self, key, value=True):
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


class ScanLimiter:
    """A token bucket per controller: `rate` scans a second on average, up to `burst` at once
    (a bucket of `burst` tokens refilled at `rate`; a scan takes one). Asked by the network
    thread for every scan before anything else is done with it, so that a controller flooding
    the bridge costs it a check and an acknowledgement per scan, not a decision, and the other
    controllers' scans behind it in the connection are not held up. `rate` 0: no limit.
    Remembers the most recent `size` controllers."""

    def __init__(self, rate: float, burst: int, size: int = 4096):
        self.rate = rate
        self.burst = max(1, burst)
        self.buckets = LRU(size)  # controller → (tokens, time.monotonic() they were counted)

    def take(self, ctrl: str, now: float) -> bool:
        """True if `ctrl` may send this scan at `now` (monotonic seconds)."""
        if self.rate <= 0:
            return True
        tokens, counted = self.buckets.get(ctrl, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - counted) * self.rate)
        allowed = tokens >= 1
        self.buckets.remember(ctrl, (tokens - 1 if allowed else tokens, now))
        return allowed


@dataclass
class BridgeConfig:
    """How one bridge worker runs; the command builds it from settings and options."""

    broker: Broker
    root: str = protocol.DEFAULT_ROOT
    group: str = "technocampus"
    client_id: str = "technocampus-bridge-0"
    v5: bool = True
    poll: float = 0.5
    audit_delay: float = 0.2
    heartbeat: float = presence.HEARTBEAT_S
    run_jobs: bool = True
    jobs_interval: float = 30.0
    # Door scans are decided by this many threads, each taking the scans waiting as one batch
    # (one bookings probe for all). One is the cheapest in CPU per decision (measured: batches
    # already overlap the probe's round trip with the next arrivals); machine scans, which may
    # wait seconds for a relay (access.power), have a thread of their own. Everything else is
    # handled in order by the network thread.
    deciders: int = 1
    # Renew, warn and stop machine sessions (access.power): in one worker only.
    power: bool = True
    session_expiry: int = SESSION_EXPIRY_S
    reconnect_max: int = 30
    # Scans per controller (ScanLimiter): a few a second with a burst, as real doors send.
    scan_rate: float = field(default_factory=lambda: settings.SCAN_RATE)
    scan_burst: int = field(default_factory=lambda: settings.SCAN_BURST)


class Bridge:
    """One bridge worker. `run(stop)` blocks until `stop` is set, then shuts down cleanly."""

    def __init__(self, config: BridgeConfig, *, cache: FactCache | None = None):
        self.config = config
        self.root = config.root.rstrip("/")
        self.cache = cache or FactCache()
        self.writer = Writer(config.audit_delay)
        self.counters: Counter = Counter()
        self._counting = threading.Lock()
        self.scans: queue.Queue = queue.Queue()
        self.machine_scans: queue.Queue = queue.Queue()
        self.deciders: list[threading.Thread] = []
        self.memory = threading.Lock()  # guards answered, in_progress and checked_in
        self.in_progress: set = set()
        self.stop_event = threading.Event()
        self.stopping = False
        self.connected = threading.Event()
        self.connected_at = 0.0  # time.monotonic() of the last connection
        self.ready = threading.Event()  # connected and subscribed
        self._subscription = None
        self.handling = threading.Lock()  # held while a message is handled; stop waits on it
        self.limiter = ScanLimiter(config.scan_rate, config.scan_burst)
        self.flood_alarms = LRU(1024)  # controller → time.monotonic() of its last flood alarm
        self.answered = LRU(4096)  # (ctrl, req_id) → (topic, payload, properties)
        self.events_seen = LRU(4096)
        self.checked_in = LRU(1024)
        self.published: dict = {}
        self._publishing_modes = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.status_topic = protocol.topic("backend_status", self.root)
        self.expiry = Properties(PacketTypes.PUBLISH)
        self.expiry.MessageExpiryInterval = DECISION_TTL_MS // 1000
        self.client = self._client()
        # Allow-lists leave on a connection of their own: the start-up burst of full snapshots
        # (7,232 entries on each perimeter controller at 1M bookings, as the bridge logged)
        # would otherwise queue ahead of decisions.
        self.push_client = self._push_client()
        self.pushing = threading.Event()  # the push connection is up
        self.allowlists = allowlists.Pusher(self._push, self.root)
        self.facts_checked = threading.Event()  # set by the refresher, for the allow-lists
        self.power = power.Power(self.root, self._publish, self.writer)
        # /metrics: each (result, reason) counter looked up once (`labels()` takes a lock).
        self.decision_counts: dict = {}
        self.reconnects = BRIDGE_RECONNECTS.labels("broker")

    def count(self, name: str):
        with self._counting:
            self.counters[name] += 1

    def _count_decision(self, answer: decision.Decision):
        key = (answer.result, answer.reason)
        counter = self.decision_counts.get(key)
        if counter is None:
            counter = self.decision_counts[key] = DECISIONS.labels(*key)
        counter.inc()

    # --- lifecycle

    def run(self, stop: threading.Event | None = None):
        stop = stop or self.stop_event
        self.start(stop)
        stop.wait()
        self.shutdown()

    def start(self, stop: threading.Event | None = None):
        stop = stop or self.stop_event
        self._load_facts(stop)
        self.writer.start()
        self.writer.call(presence.count_online, timezone.now())
        for n in range(self.config.deciders):
            self.deciders.append(
                self._thread(lambda: self._decide_loop(self.scans), f"bridge-decide-{n}")
            )
        self.deciders.append(
            self._thread(lambda: self._decide_loop(self.machine_scans), "bridge-machines")
        )
        self._thread(self._refresh_loop, "bridge-refresh")
        self._thread(self._allowlist_loop, "bridge-allowlists")
        if self.config.run_jobs:
            from bookings.jobs import run_loop

            self._thread(lambda: run_loop(self.stop_event, self.config.jobs_interval), "jobs")
        if self.config.power:
            self._thread(lambda: self.power.run(self.stop_event), "bridge-power")
        b = self.config.broker
        if self.config.v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.config.session_expiry
            # Scans are acknowledged once audited (the writer's batch, up to `audit_delay`
            # later): let the broker keep that many in flight, not Mosquitto's default of 20
            # (and see RECEIVE_MAXIMUM).
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            self.client.connect_async(b.host, b.port, 30, clean_start=False, properties=props)
        else:
            self.client.connect_async(b.host, b.port, 30)
        self.client.loop_start()
        self.push_client.connect_async(b.host, b.port, 30)
        self.push_client.loop_start()
        log.info(
            "bridge %s: MQTT %s at %s:%s, root %s, %s",
            self.config.client_id,
            "5" if self.config.v5 else "3.1.1",
            b.host,
            b.port,
            self.root,
            f"shared group {self.config.group}" if self.config.v5 else "plain subscriptions",
        )

    def shutdown(self):
        """Stop taking messages, finish the one in hand, say offline, flush the audit log."""
        self.stopping = True
        self.stop_event.set()
        for thread in self.deciders:  # each finishes the scan in hand; queued ones stay unacked
            thread.join(timeout=10)
        with self.handling:
            pass
        try:
            if self.connected.is_set():
                info = self.client.publish(
                    self.status_topic, self._presence(False), qos=1, retain=True
                )
                info.wait_for_publish(timeout=2)
        except (RuntimeError, ValueError):
            log.warning("could not publish the offline status")
        self.client.disconnect()
        self.client.loop_stop()
        self.push_client.disconnect()
        self.push_client.loop_stop()
        for thread in self.threads:
            thread.join(timeout=35)
        self.writer.stop()
        connection.close()  # this thread's, used to load the facts at start
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # This process's gauges leave /metrics with it; its counts stay in the sums.
            multiprocess.mark_process_dead(os.getpid())
        log.info("bridge %s stopped: %s", self.config.client_id, dict(self.counters))

    def _thread(self, target, name):
        def run():
            try:
                target()
            finally:
                connection.close()

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def _load_facts(self, stop: threading.Event):
        delay = 0.5
        while not stop.is_set():
            try:
                self.cache.refresh(timezone.now(), force=True)
                return
            except DatabaseError:
                log.exception("cannot load the access facts; retrying in %.1f s", delay)
                connection.close()
                stop.wait(delay)
                delay = min(delay * 2, 30)
        raise SystemExit(0)

    def _wait_for_changes(self, feed: changefeed.Listener, delay: float) -> bool:
        """Until the change feed moves (PostgreSQL notifies it) or `delay` passes; True when
        the bridge stops."""
        try:
            feed.wait(delay)
        except DatabaseError as e:
            log.warning("cannot listen to the change feed (%s); polling", e)
            connection.close()
            self.stop_event.wait(delay)
        return self.stop_event.is_set()

    def _refresh_loop(self):
        """Keep the facts fresh: wake when the change feed moves (or every poll interval) and
        reload what changed. The allow-lists are built in a thread of their own
        (`_allowlist_loop`), woken after each refresh: building every list takes a second or
        more, and scans are refused once the facts are older than `max_age`."""
        last_watch = last_report = time.monotonic()
        swept_on = local_wall_clock(timezone.now()).date()
        delay = self.config.poll
        feed = changefeed.Listener(self.stop_event)
        while not self._wait_for_changes(feed, delay):
            try:
                with building():
                    fresh = self.cache.refresh(timezone.now())
                    if fresh is not None:
                        gc.freeze()
                delay = self.config.poll
                if fresh is not None and self.connected.is_set():
                    self._publish_modes(fresh)
                self.facts_checked.set()
            except DatabaseError:
                self.count("db_errors")
                log.exception("cannot refresh the access facts")
                connection.close()
                delay = min(delay * 2, 5.0)
            now = time.monotonic()
            if now - last_watch >= self.config.heartbeat:
                last_watch = now
                self.writer.call(presence.watch_heartbeats, timezone.now(), self.config.heartbeat)
            if now - last_report >= 60:
                last_report = now
                log.info("bridge %s: %s", self.config.client_id, dict(self.counters))
            if sweep_due(swept_on, local := local_wall_clock(timezone.now())):
                # Reference cycles among frozen objects are only found by a full collection.
                swept_on = local.date()
                gc.unfreeze()
                gc.collect()
                gc.freeze()

    def _allowlist_loop(self):
        """The allow-list duty (access.allowlists.Pusher): build every list at start, while
        the broker connects, then push what changed after each refresh of the facts."""
        delay = self.config.poll
        # The facts and the lists are long-lived: hundreds of thousands of objects on a large
        # campus. Each full collection walked them all and stalled every thread of the bridge
        # for 0.1-0.4 s (p99 of 0.6 s at 100 scans/s with 1M bookings, bench/README.md), so
        # after they are built they are moved out of the collector's sight (gc.freeze). They
        # are still freed by reference counting when replaced; the refresher's nightly sweep
        # finds cycles among them.
        try:
            with building():
                self.allowlists.warm(self.cache.snapshot, timezone.now())
                gc.freeze()
        except DatabaseError:
            log.exception("cannot build the allow-lists")
            connection.close()
        except Exception:  # a bad row must not stop the lists (tick logs it again)
            log.exception("cannot build the allow-lists")
        # The first push waits until one poll interval after the connection (not after the
        # build): devices connecting with the bridge are noted first (a live birth received
        # after a push asks for a second one).
        wait = delay
        if self.connected.is_set():
            wait = max(0.0, delay - (time.monotonic() - self.connected_at))
        if not self.stop_event.wait(wait):
            while not self.stop_event.is_set():
                try:
                    if self.connected.is_set() and self.pushing.is_set():
                        with building():
                            if self.allowlists.tick(self.cache.snapshot, timezone.now()):
                                gc.freeze()
                    delay = self.config.poll
                except DatabaseError:
                    log.exception("cannot push the allow-lists")
                    connection.close()
                    delay = min(delay * 2, 5.0)
                    self.stop_event.wait(delay)
                self.facts_checked.wait(delay)
                self.facts_checked.clear()
        self.allowlists.close()

    # --- MQTT plumbing

    def _connection(self, client_id: str, *, persistent: bool, manual_ack=False) -> mqtt.Client:
        """A client with the backend's login, reconnecting with backoff. `persistent`: the
        session outlives the connection (MQTT 3.1.1's clean_session False; MQTT 5 says it
        at connect)."""
        return new_client(
            client_id,
            broker=self.config.broker,
            protocol=mqtt.MQTTv5 if self.config.v5 else mqtt.MQTTv311,
            clean_session=None if self.config.v5 else not persistent,
            manual_ack=manual_ack,
            reconnect_max=self.config.reconnect_max,
        )

    def _client(self) -> mqtt.Client:
        client = self._connection(self.config.client_id, persistent=True, manual_ack=True)
        client.will_set(self.status_topic, self._presence(False), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _push_client(self) -> mqtt.Client:
        """The allow-lists' connection: publish only, clean session (a list not delivered is
        sent again as a snapshot when the device reports another version), no will."""
        client = self._connection(f"{self.config.client_id}-acl", persistent=False)
        reconnects = BRIDGE_RECONNECTS.labels("broker-acl")
        connections = 0

        def connected(client, userdata, flags, reason_code, properties):
            nonlocal connections
            if reason_code.is_failure:
                log.error("broker refused the allow-list connection: %s", reason_code)
                return
            connections += 1
            if connections > 1:
                reconnects.inc()
            self.allowlists.built_at = None  # rebuild and push what changed while away
            self.pushing.set()

        def disconnected(client, userdata, flags, reason_code, properties):
            self.pushing.clear()
            if not self.stopping:
                log.warning("lost the broker for allow-lists (%s); reconnecting", reason_code)

        client.on_connect = connected
        client.on_disconnect = disconnected
        return client

    @staticmethod
    def _presence(online: bool) -> bytes:
        return protocol.encode({"v": protocol.VERSION, "online": online})

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.error("broker refused the bridge: %s", reason_code)
            return
        log.info("connected to the broker (session present: %s)", flags.session_present)
        if self.connected_at:
            self.reconnects.inc()
        topics = [f"{self.root}/{t}" for t in SHARED_TOPICS]
        if self.config.v5:
            topics = [f"$share/{self.config.group}/{t}" for t in topics]
        topics += [f"{self.root}/{t}" for t in PLAIN_TOPICS] + self.power.topics()
        _result, self._subscription = client.subscribe([(t, 1) for t in topics])
        if self.cache.snapshot is not None:
            self._publish_modes(self.cache.snapshot, force=True)
        self.allowlists.built_at = None  # rebuild and push what changed while away
        self.connected_at = time.monotonic()
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid == self._subscription:
            refused = [code for code in reason_codes if code.is_failure]
            if refused:
                log.error("the broker refused subscriptions: %s", refused)
            # Online only now: a device that scans as soon as it reads it must find the scan
            # subscription in place (a scan published before it would reach no one).
            client.publish(self.status_topic, self._presence(True), qos=1, retain=True)
            self.ready.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        self.ready.clear()
        if self.stopping:
            connection.close()  # the network thread's database connection
        else:
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _publish(self, topic: str, payload: bytes, *, retain=False, properties=None):
        self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)

    def _push(self, topic: str, payload: bytes):
        self.push_client.publish(topic, payload, qos=1)

    def _publish_modes(self, snap: Snapshot, *, force=False):
        """The retained desired states, versioned: devices apply only a newer `ver`."""
        with self._publishing_modes:  # from the network thread (connect) and the refresher
            self._publish_modes_locked(snap, force)

    def _publish_modes_locked(self, snap: Snapshot, force: bool):
        site = (snap.site_version, snap.lockdown)
        if force or self.published.get("site") != site:
            mode = "lockdown" if snap.lockdown else "normal"
            body = {"v": protocol.VERSION, "ver": snap.site_version, "mode": mode}
            self._publish(
                protocol.topic("site_mode", self.root), protocol.encode(body), retain=True
            )
            self.published["site"] = site
        for door in snap.doors.values():
            state = (door.mode_version, door.mode)
            if force or self.published.get(door.id) != state:
                topic = protocol.topic(
                    "door_desired", self.root, ctrl=door.controller, door=door.id
                )
                body = {"v": protocol.VERSION, "ver": door.mode_version, "mode": door.mode}
                self._publish(topic, protocol.encode(body), retain=True)
                self.published[door.id] = state

    def _on_message(self, client, userdata, msg):
        if self.stopping:
            return  # not acknowledged: delivered again to this session after the restart
        if msg.topic.endswith("/scan"):
            # To the deciders (order between scans does not matter); a machine's scan to its
            # own thread, so that a door never waits for a relay's confirmation.
            levels = msg.topic.rsplit("/", 5)
            machine = len(levels) == 6 and levels[3] == "eq"
            sender = levels[2] if len(levels) == 6 and levels[1] == "ctrl" else ""
            if not self.limiter.take(sender, time.monotonic()):
                self._drop_flooded(client, msg, sender, levels)
                return
            (self.machine_scans if machine else self.scans).put(msg)
            return
        # Presence, events, acknowledgements: in arrival order (a birth before its last will).
        with self.handling:
            try:
                self._dispatch(msg)
            except Exception:  # nothing a device sends may stop the bridge
                self.count("errors")
                log.exception("failed to handle a message on %s", msg.topic)
        client.ack(msg.mid, msg.qos)

    def _drop_flooded(self, client, msg, sender: str, levels: list[str]):
        """A scan over its controller's limit: acknowledged (the broker must not hold it nor
        send it again) and left unanswered, so that the device decides from its allow-list
        (never powering a machine) as when the backend is away. Counted; an alarm (audit log,
        staff doors page) once per FLOOD_ALARM_EVERY_S for that controller."""
        client.ack(msg.mid, msg.qos)
        self.count("rate_limited")
        SCANS_RATE_LIMITED.inc()
        now = time.monotonic()
        last = self.flood_alarms.get(sender)
        if last is not None and now - last < FLOOD_ALARM_EVERY_S:
            return
        self.flood_alarms.remember(sender, now)
        kind, target = (levels[3], levels[4]) if len(levels) == 6 else ("", "")
        snap = self.cache.snapshot
        if kind == "door" and (snap is None or (sender, target) not in snap.doors):
            target = ""  # shown at a door only if it is this controller's
        log.warning(
            "ALARM controller %s sends more scans than its limit (%s/s, burst %s): dropping them",
            sender,
            self.limiter.rate,
            self.limiter.burst,
        )
        self.writer.audit(
            AuditEvent(
                kind=AuditEvent.Kind.ALARM,
                controller=sender[: protocol.MAX_ID_LENGTH],
                door=target[: protocol.MAX_ID_LENGTH] if kind == "door" else "",
                equipment=target[: protocol.MAX_ID_LENGTH] if kind == "eq" else "",
                result="scan_flood",
                reason="rate_limited",
                detail={"rate": self.limiter.rate, "burst": self.limiter.burst},
            )
        )

    def _decide_loop(self, scans: queue.Queue):
        """Take the scans waiting (up to MAX_SCAN_BATCH) and answer them together: one bookings
        probe for all of them. At a low rate a batch is one scan; under load it is the scans
        that arrived during the previous batch, which saves a round trip and an execute each."""
        while not self.stopping:
            try:
                batch = [scans.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < MAX_SCAN_BATCH:
                try:
                    batch.append(scans.get_nowait())
                except queue.Empty:
                    break
            if self.stopping:
                break  # not acknowledged: delivered again to this session after the restart
            door_scans = []
            for msg in batch:
                try:
                    if (taken := self._take_scan(msg)) is not None:
                        door_scans.append(taken)
                except Exception:  # nothing a device sends may stop the bridge
                    self.count("errors")
                    log.exception("failed to handle a scan on %s", msg.topic)
            try:
                self._answer_door_scans(door_scans)
            except Exception:
                self.count("errors")
                log.exception("failed to answer %d scans", len(door_scans))
            finally:
                with self.memory:
                    for where, _msg, scan in door_scans:
                        self.in_progress.discard((where.ctrl, scan.req_id))
            # Acknowledged by the writer once the batch's audit rows are committed: a worker
            # killed before that gets the scans again (DUP) when it is back, and answers them
            # from the log or decides and logs them then. The audit log misses no answered scan.
            for msg in batch:
                self.writer.call(self.client.ack, msg.mid, msg.qos)

    def _take_scan(self, msg):
        """(where, msg, scan) for a door scan this thread must answer; anything else (a
        machine's scan, a bad payload, a repeat) is handled here and gives None."""
        self.count("received")
        try:
            where = protocol.parse_topic(msg.topic, self.root)
        except protocol.ProtocolError as e:
            self._bad(None, msg, e)
            return None
        if where.kind != "door_scan":
            self._handle(where, msg)
            return None
        try:
            scan = protocol.parse_scan(msg.payload)
        except protocol.ProtocolError as e:
            self._bad(where, msg, e)
            return None
        return (where, msg, scan) if self._claim(where, scan) else None

    def _dispatch(self, msg):
        self.count("received")
        if relay := self.power.relay_topic(msg.topic):  # Tasmota's own topics, outside the root
            self.power.on_relay(*relay, msg.payload, timezone.now())
            return
        try:
            where = protocol.parse_topic(msg.topic, self.root)
        except protocol.ProtocolError as e:
            self._bad(None, msg, e)
            return
        self._handle(where, msg)

    def _handle(self, where, msg):
        handler = {
            "eq_scan": self._on_eq_scan,
            "door_event": self._on_door_event,
            "log": self._on_log,
            "hb": self._on_heartbeat,
            "status": self._on_status,
            "door_cmd_ack": self._on_cmd_ack,
            "acl_ack": self._on_acl_ack,
            "backend_status": self._on_backend_status,
            "eq_state": lambda where, msg: self.power.on_eq_state(
                where, msg.payload, timezone.now()
            ),
        }.get(where.kind)
        if handler is None:
            return
        try:
            handler(where, msg)
        except protocol.ProtocolError as e:
            self._bad(where, msg, e)

    def _bad(self, where, msg, error: protocol.ProtocolError):
        """Logged and counted; a scan whose req_id could be read is denied `bad_request`."""
        self.count("bad")
        log.warning("bad message on %s: %s", msg.topic[:200], error)
        if where is None or where.kind not in ("door_scan", "eq_scan") or not error.req_id:
            return
        with self.memory:
            previous = self.answered.get((where.ctrl, error.req_id))
        if previous is not None:
            topic, payload, props = previous
            self._publish(topic, payload, properties=props)
            return
        now = timezone.now()
        answer = decision.deny("bad_request")
        self._reply(where, msg, error.req_id, answer, now)
        self.writer.audit(
            AuditEvent(
                kind=AuditEvent.Kind.DECISION,
                ts=now,
                controller=where.ctrl,
                door=where.door or "",
                equipment=where.eq or "",
                result=answer.result,
                reason=answer.reason,
                req_id=error.req_id,
                detail={"error": str(error)[:200]},
            )
        )

    # --- scans

    def _reply_target(self, where, msg):
        """The decision topic, or the MQTT 5 Response Topic when it stays in the device's own
        subtree (a device must not make the backend write elsewhere); Correlation Data back."""
        kind = "door_decision" if where.kind == "door_scan" else "eq_decision"
        topic = protocol.topic(kind, self.root, ctrl=where.ctrl, door=where.door, eq=where.eq)
        if not self.config.v5:
            return topic, None
        asked = getattr(msg.properties, "ResponseTopic", None) if msg.properties else None
        correlation = getattr(msg.properties, "CorrelationData", None) if msg.properties else None
        if asked is None and correlation is None:
            return topic, self.expiry  # the common case: nothing to build per reply
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = DECISION_TTL_MS // 1000
        own = f"{self.root}/ctrl/{where.ctrl}/"
        if asked and asked.startswith(own) and not {"+", "#"} & set(asked):
            topic = asked
        if correlation is not None:
            props.CorrelationData = correlation
        return topic, props

    def _reply(
        self,
        where,
        msg,
        req_id,
        answer,
        now,
        *,
        pulse_ms=None,
        session=None,
        outbox=None,
        decided=True,
    ):
        """Publish the answer (or add it to `outbox`, published by the caller) and remember it
        for repeats. `decided`: a decision made now, counted in /metrics with its latency from
        receipt (paho stamps each message with its monotonic clock) to publication; a repeat's
        answer is not."""
        topic, props = self._reply_target(where, msg)
        # From the reply, not the scan: a machine's grant waits for its relay (access.power).
        exp = protocol.epoch_ms(max(now, timezone.now())) + DECISION_TTL_MS
        payload = protocol.decision_payload(
            req_id,
            answer.result,
            answer.reason,
            exp,
            pulse_ms=pulse_ms if answer.granted else None,
            **(session or {}),  # session_id, lease_s of a machine's grant (access.power)
        )
        if outbox is None:
            self._publish(topic, payload, properties=props)
            if decided:
                DECISION_SECONDS.observe(time.monotonic() - msg.timestamp)
        else:
            outbox.append((topic, payload, props, msg.timestamp))
        with self.memory:
            self.answered.remember((where.ctrl, req_id), (topic, payload, props))
        self.count(answer.result)
        if decided:
            self._count_decision(answer)

    def _expired(self, msg) -> bool:
        """MQTT 5 Message Expiry: the broker forwards what remains; nothing left is stale."""
        remaining = (
            getattr(msg.properties, "MessageExpiryInterval", None) if msg.properties else None
        )
        return remaining is not None and remaining <= 0

    def _on_eq_scan(self, where, msg):
        """A machine's scan (its own thread). Door scans are taken in batches (`_take_scan`)."""
        scan = protocol.parse_eq_scan(msg.payload)
        if not self._claim(where, scan):
            return
        try:
            self._answer_scan(where, msg, scan, False, timezone.now())
        finally:
            with self.memory:
                self.in_progress.discard((where.ctrl, scan.req_id))

    def _claim(self, where, scan) -> bool:
        """True when this thread is to decide the scan (and must then release its req_id
        from `in_progress`); a repeat is answered here and gives False."""
        key = (where.ctrl, scan.req_id)
        with self.memory:
            previous = self.answered.get(key)
            twin = previous is None and key in self.in_progress
            if previous is None and not twin:
                self.in_progress.add(key)
        if previous is None and not twin:
            return True
        # The same request again (a QoS 1 redelivery, a retry): the same answer, logged once.
        # A twin being decided right now by another thread will be answered by it.
        if previous is not None:
            topic, payload, props = previous
            self._publish(topic, payload, properties=props)
        self.count("repeats")
        return False

    def _answer_door_scans(self, scans):
        """Door scans taken together: one bookings probe for every holder among them, then
        each decided, answered and logged in turn."""
        if not scans:
            return
        now = timezone.now()
        probed = None
        try:
            people = {
                person
                for where, msg, scan in scans
                if not self._expired(msg)
                and (person := self.cache.holder_at_door(scan.h, where.ctrl, where.door))
            }
            if people:
                resources = self.cache.fresh_snapshot().resources
                probed = access_facts.probe_bookings(people, now, resources)
        except (DatabaseError, FactsUnavailable) as e:
            # No answer rather than a wrong one: the devices decide from their caches after 1 s.
            for where, _msg, scan in scans:
                self.count("db_errors")
                log.error("no decision for %s/%s: %s", where.ctrl, scan.req_id, e)
            connection.close()
            return
        # The replies go out together after the batch is decided: paho wakes its network thread
        # for each message queued, and a wake-up in the middle of deciding costs two GIL
        # hand-offs. At a low rate a batch is one scan, so nothing waits.
        outbox: list = []
        try:
            self._decide_each(scans, now, probed, outbox)
        finally:
            for topic, payload, props, _received in outbox:
                self._publish(topic, payload, properties=props)
            published = time.monotonic()
            for *_message, received in outbox:
                DECISION_SECONDS.observe(published - received)

    def _decide_each(self, scans, now, probed, outbox):
        for where, msg, scan in scans:
            try:
                self._answer_scan(where, msg, scan, True, now, probed=probed, outbox=outbox)
            except protocol.ProtocolError as e:
                self._bad(where, msg, e)
            except Exception:  # one scan's failure must not leave the others unanswered
                self.count("errors")
                log.exception("failed to answer %s/%s", where.ctrl, scan.req_id)

    def _answer_scan(self, where, msg, scan, door_scan, now, *, probed=None, outbox=None):
        try:
            if msg.dup and self._answer_logged_repeat(where, msg, scan, now):
                return
            try:
                requested_at = datetime.fromtimestamp(scan.ts / 1000, UTC)
            except (OverflowError, OSError, ValueError):
                raise protocol.ProtocolError("scan: 'ts' is out of range", scan.req_id) from None
            held, badge, door, equipment_name, session = (), None, None, "", None
            if self._expired(msg):
                answer = decision.deny("stale_request")
            elif door_scan:
                scanned = self.cache.door_facts(
                    scan.h, where.ctrl, where.door, now, requested_at, probed=probed
                )
                answer = decision.decide(scanned.facts)
                held, badge, door = scanned.held, scanned.badge, scanned.door
            else:
                answer, badge, session = self._decide_equipment(where, scan, now, requested_at)
                equipment_name = where.eq
        except (DatabaseError, FactsUnavailable) as e:
            # No answer rather than a wrong one: the device decides from its cache after 1 s.
            self.count("db_errors")
            log.error("no decision for %s/%s: %s", where.ctrl, scan.req_id, e)
            connection.close()
            return
        pulse_ms = door.pulse_ms if door else None
        self._reply(
            where, msg, scan.req_id, answer, now, pulse_ms=pulse_ms, session=session, outbox=outbox
        )
        # A dict, not an AuditEvent: a model instance per scan costs more than its insert.
        self.writer.audit(
            {
                "kind": AuditEvent.Kind.DECISION.value,
                "ts": now,
                "controller": where.ctrl,
                "door": where.door or "",
                "equipment": equipment_name,
                "credential_id": badge.id if badge else None,
                "uid_hash": scan.h,
                "person_id": badge.holder_id if badge else None,
                "result": answer.result,
                "reason": answer.reason,
                # From receipt (paho stamps each message with its monotonic clock) to reply.
                "latency_ms": int((time.monotonic() - msg.timestamp) * 1000),
                "req_id": scan.req_id,
                "detail": {"ts": scan.ts, **({"purpose": scan.purpose} if scan.purpose else {})},
            }
        )
        if answer.granted and door is not None and badge is not None:
            self._check_in_later(badge.holder_id, door, held, now)

    def _answer_logged_repeat(self, where, msg, scan, now) -> bool:
        """A redelivered scan this worker does not remember (it restarted, or another worker
        answered): the logged answer again, if there is one."""
        logged = (
            AuditEvent.objects.filter(
                kind=AuditEvent.Kind.DECISION, controller=where.ctrl, req_id=scan.req_id
            )
            .values_list("result", "reason")
            .first()
        )
        if logged is None:
            return False
        self._reply(where, msg, scan.req_id, decision.Decision(*logged), now, decided=False)
        self.count("repeats")
        return True

    def _decide_equipment(self, where, scan, now, requested_at):
        """Machines are few and rarely scanned: their facts come straight from the database."""
        equipment = access_facts.scanned_machine(where.eq, where.ctrl)
        if equipment is None:
            log.warning("machine %s takes no scans from controller %s", where.eq, where.ctrl)
        snap = self.cache.fresh_snapshot()
        badge = snap.badges.get(scan.h)
        if equipment is None:
            facts = decision.Facts(now, local_wall_clock(now), None, requested_at=requested_at)
        else:
            facts = load_equipment_facts(scan.h, equipment, now, requested_at)
        # A grant opens a session and powers the machine; a badge-out stops it (access.power).
        answer, session = self.power.on_scan(
            equipment, scan, badge.holder_id if badge else None, decision.decide(facts), now
        )
        return answer, badge, session

    def _check_in_later(self, person_id, door, held, now):
        """The first grant at a booked room's door checks its booking in, after the
        reply and in the writer thread, so that it never delays a door."""
        if person_id is None or door.facts.space_id is None:
            return
        for booking in held:
            b = booking.facts
            if (
                b.space_id == door.facts.space_id
                and b.equipment_id is None
                and b.status == "confirmed"
                and b.start - decision.DOOR_EARLY <= now < b.end
            ):
                with self.memory:
                    first = booking.id not in self.checked_in
                    self.checked_in.remember(booking.id)
                if first:
                    self.writer.call(check_in, person_id, booking.id, now)

    # --- events, presence, acknowledgements

    def _on_door_event(self, where, msg):
        self._record_event(where.ctrl, where.door, protocol.parse_door_event(msg.payload))

    def _on_log(self, where, msg):
        for event in protocol.parse_log(msg.payload):
            self._record_event(where.ctrl, event.door, event, replayed=True)

    def _record_event(self, ctrl, door, event: protocol.DoorEvent, *, replayed=False):
        key = (ctrl, event.seq)
        if key in self.events_seen:
            self.count("repeats")
            return
        self.events_seen.remember(key)
        snap = self.cache.snapshot
        if snap is not None and (ctrl, door) not in snap.doors:
            self.count("bad")
            log.warning("event %s from %s for unknown door %s", event.event, ctrl, door)
            return
        now = timezone.now()
        ts = datetime.fromtimestamp(event.ts / 1000, UTC) if event.ts < 2**42 else now
        if abs(ts - now) > DEVICE_CLOCK_SLACK:
            ts = now
        alarm = event.event in ALARMS
        if alarm:
            log.warning("ALARM %s at door %s (controller %s)", event.event, door, ctrl)
        badge = snap.badges.get(event.h) if snap is not None and event.h else None
        self.count("events")
        self.writer.audit(
            AuditEvent(
                kind=AuditEvent.Kind.ALARM if alarm else AuditEvent.Kind.DOOR_EVENT,
                ts=ts,
                controller=ctrl,
                door=door,
                credential_id=badge.id if badge else None,
                uid_hash=event.h or "",
                person_id=badge.holder_id if badge else None,
                result=event.event,
                reason="replayed" if replayed else "",
                seq=event.seq,
                detail={"device_ts": event.ts},
            )
        )

    def _on_status(self, where, msg):
        if not msg.payload:
            return  # a retained status being cleared
        status = protocol.parse_status(msg.payload)
        seen_at = timezone.now()
        self.writer.call(presence.set_presence, where.ctrl, status, seen_at)
        if status.online:
            self.writer.call(allowlists.note_birth, where.ctrl, status.acl_ver, seen_at)

    def _on_heartbeat(self, where, msg):
        hb = protocol.parse_heartbeat(msg.payload)
        self.writer.call(presence.record_heartbeat, where.ctrl, hb, timezone.now())

    def _on_cmd_ack(self, where, msg):
        ack = protocol.parse_cmd_ack(msg.payload)
        key = ("ack", where.ctrl, ack.req_id)
        if key in self.events_seen:
            return
        self.events_seen.remember(key)
        self.writer.audit(
            AuditEvent(
                kind=AuditEvent.Kind.COMMAND,
                controller=where.ctrl,
                door=where.door or "",
                result=ack.status,
                reason="ack",
                req_id=ack.req_id,
                detail={"why": ack.why} if ack.why else {},
            )
        )

    def _on_acl_ack(self, where, msg):
        ack = protocol.parse_acl_ack(msg.payload)
        if ack.status == "applied":
            self.writer.call(
                lambda: Controller.objects.filter(pk=where.ctrl).update(acl_version=ack.ver)
            )
        else:
            log.warning(
                "controller %s answered %s to allow-list %s", where.ctrl, ack.status, ack.ver
            )
        self.writer.call(allowlists.note_ack, where.ctrl, ack)

    def _on_backend_status(self, where, msg):
        """Another worker's last will (or clean stop) said the backend is offline while this
        one runs: say online again, so that devices do not fall back to their caches."""
        if not msg.payload or self.stopping:
            return
        if not protocol.parse_status(msg.payload).online:
            self._publish(self.status_topic, self._presence(True), retain=True)


# --- builds: the garbage collector and the interpreter lock ------------------------------------


def sweep_due(swept_on: date, local: datetime) -> bool:
    """The nightly sweep of frozen objects: once a day, from SWEEP_HOUR building time."""
    return local.date() > swept_on and local.hour >= SWEEP_HOUR


_paused = 0
_pausing = threading.Lock()
SWITCH_INTERVAL_S = sys.getswitchinterval()
# While a build runs, the other threads get the GIL back after 0.5 ms instead of 5: a decision
# takes it several times (receipt, decision, reply), and each wait behind a build was up to
# the whole interval (p99 at 100 scans/s during a full rebuild at 1M bookings: 223 ms with
# 5 ms, 19 ms with 0.5 ms; bench/README.md). Only while building: at saturation the decider
# and the network thread contend all the time, and more switches would cost throughput.
BUILDING_SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def building():
    """Build what the bridge keeps (the facts, the allow-lists) with the garbage collector
    paused and a short GIL switch interval; the caller then moves what it built out of the
    collector's sight (gc.freeze), only when it built something. A build makes hundreds of
    thousands of objects; collections triggered during it walked them in one uninterruptible
    step each, stalling every thread (decisions included). What is kept is freed by reference
    counting when replaced; the refresher's nightly sweep finds cycles among frozen objects.
    Freezing after every poll instead made the decisions' short-lived cyclic garbage (about
    one object in two decisions, measured) immortal until that sweep."""
    global _paused
    with _pausing:
        if not _paused:
            gc.disable()
            sys.setswitchinterval(BUILDING_SWITCH_INTERVAL_S)
        _paused += 1
    try:
        yield
    finally:
        with _pausing:
            _paused -= 1
            if not _paused:
                gc.enable()
                sys.setswitchinterval(SWITCH_INTERVAL_S)


# --- writes done in the writer thread -----------------------------------------------------------


def check_in(person_id: int, booking_id: int, now: datetime):
    from bookings import engine
    from bookings.models import Booking
    from campus.models import Person
    from common.errors import DomainError

    try:
        person = Person.objects.get(pk=person_id)
        booking = Booking.objects.get(pk=booking_id)
        engine.check_in(person, booking, now=now)
        log.info("booking %s checked in by badge", booking_id)
    except (DomainError, ObjectDoesNotExist) as e:
        log.info("booking %s not checked in by badge: %s", booking_id, e)


def new_worker_id(group: str, name: str | None, index: int) -> str:
    """A stable client id per worker: the broker keeps each worker's session under it."""
    return f"{name or group + '-bridge'}-{index}"[: protocol.MAX_ID_LENGTH]
