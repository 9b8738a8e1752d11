"""A simulated door controller: the reference device side of protocol v1, for the demo, the
command line (`simulate_controller`, `door_scan`), the integration tests and the benchmark.

What a real controller does, in the protocol's words (docs/mqtt.md): it hashes the badge UID
with the site's credential key (the UID never leaves it), waits at most 1 s for a decision,
sends a retained birth on `status` with a retained last will, a heartbeat every 30 s, door
events numbered by `seq` (never going back), and buffers events while offline to replay them
on `log` when back. MQTT 3.1.1, as most devices speak.

It keeps the allow-list the backend pushes on `acl/push`: snapshot chunks are assembled and
applied at once only when all arrived and the hash matches (else `rejected`, hash_mismatch),
a delta only on the version it holds (else `need_full`); each push is answered on `acl/ack`.
Without an answer within `decision_timeout`, or at once while `sys/backend/status` says
offline, a scan is decided from that list (`decide_offline`; after `valid_until` only
`override` entries, schedules in the list's `tz`), and a grant is queued as an `unlocked`
event for the `log` replay when the backend is back. Holding no list, such a scan returns None.

As an equipment node it obeys `eq/{eq}/cmd` (`enable` and `extend` power the machine for
`lease_s`, `disable` switches it off; a lease not renewed in time switches it off by itself)
and publishes the retained `eq/{eq}/state` on every change. `SimulatedRelay` is a Tasmota
plug the same way: POWER, PulseTime, its retained LWT and energy readings.
"""

import json
import threading
import time
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from access import decision, protocol
from access.mqtt import Broker, new_client


class SimulatedController:
    """One controller and its doors. `start()`, then `scan(door, uid)` → decision dict or None."""

    def __init__(
        self,
        ctrl_id: str,
        *,
        broker: Broker,
        key: str,
        root: str = protocol.DEFAULT_ROOT,
        heartbeat: float = 30.0,
        presence: bool = True,
        fw: str = "sim-1.0",
        decision_timeout: float = 1.0,
        client_id: str | None = None,
    ):
        self.id = protocol.check_id(ctrl_id, "controller")
        self.broker = broker
        self.key = key
        self.root = root.rstrip("/")
        self.heartbeat = heartbeat
        self.presence = presence
        self.fw = fw
        self.decision_timeout = decision_timeout
        self.acl_ver = 0
        self.booted = time.monotonic()
        self.seq = int(time.time() * 1000)  # from the boot time: never goes back after a reboot
        self.buffer: list[dict] = []
        self.pending: dict[str, list] = {}  # req_id → [event, answer]
        self.extra: list[tuple[str, dict]] = []  # other messages received (desired, site mode)
        self.acl: dict | None = None  # the list held: ver, entries, schedules, valid_until, tz
        self.chunks: dict[int, dict[int, bytes]] = {}  # snapshot ver → chunk number → payload
        self.acl_log: list[tuple[str, int, str]] = []  # (type, ver, ack status) per push
        self.backend_online: bool | None = None
        self.site_mode = "normal"
        self.machines: dict[str, tuple[bool, str | None]] = {}  # eq → (powered, session_id)
        self.leases: dict[str, threading.Timer] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        # Subscribed: decisions, commands and pushes reach it. The demo starts its devices one
        # at a time on that (amqtt 0.12 drops a client whose connection it sets up while
        # another's subscriptions change: "dictionary changed size during iteration").
        self.subscribed = threading.Event()
        self.stopped = threading.Event()
        self.client = new_client(client_id or self.id, broker=broker, reconnect_max=5)
        if presence:
            offline = protocol.encode({"v": 1, "online": False})
            self.client.will_set(self._topic("status"), offline, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()

    def _topic(self, kind: str, **ids) -> str:
        return protocol.topic(kind, self.root, ctrl=self.id, **ids)

    # --- connection

    def start(self, timeout: float = 5.0) -> "SimulatedController":
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        if not (
            self.connected.wait(timeout)
            and self.subscribed.wait(max(0.0, deadline - time.monotonic()))
        ):
            self.client.loop_stop()
            raise TimeoutError(f"controller {self.id}: no connection to the broker")
        if self.presence and self.heartbeat:
            threading.Thread(target=self._beat, name=f"hb-{self.id}", daemon=True).start()
        return self

    def stop(self):
        """A clean shutdown: say offline (retained), then disconnect."""
        self.stopped.set()
        with self.lock:
            for timer in self.leases.values():
                timer.cancel()
        if self.presence and self.connected.is_set():
            offline = protocol.encode({"v": 1, "online": False})
            self.client.publish(
                self._topic("status"), offline, qos=1, retain=True
            ).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Lose the network without a goodbye: the broker publishes the last will."""
        self.connected.clear()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        own = f"{self.root}/ctrl/{self.id}"
        subscriptions = [
            f"{own}/door/+/decision",
            f"{own}/eq/+/decision",
            f"{own}/eq/+/cmd",
            f"{own}/door/+/desired",
            protocol.topic("site_mode", self.root),
            protocol.topic("backend_status", self.root),
            self._topic("acl_push"),
        ]
        client.subscribe([(t, 1) for t in subscriptions])
        if self.presence:
            birth = {"v": 1, "online": True, "fw": self.fw, "acl_ver": self.acl_ver}
            client.publish(self._topic("status"), protocol.encode(birth), qos=1, retain=True)
        if self.backend_online is not False:
            self._replay()
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()

    def _on_message(self, client, userdata, msg):
        if msg.topic == self._topic("acl_push"):
            self._on_acl_push(msg.payload)
            return
        try:
            body = json.loads(msg.payload) if msg.payload else None
        except ValueError:
            return
        req_id = body.get("req_id") if isinstance(body, dict) else None
        levels = msg.topic.rsplit("/", 3)
        if isinstance(body, dict) and len(levels) == 4 and levels[1] == "eq" and levels[3] == "cmd":
            self._on_eq_cmd(levels[2], body)
            return
        with self.lock:
            waiting = self.pending.get(req_id) if req_id else None
            if waiting is not None and msg.topic.endswith("/decision"):
                waiting[1] = body
                waiting[0].set()
            else:
                self.extra.append((msg.topic, body))
        if msg.topic.endswith("/sys/backend/status") and isinstance(body, dict):
            back = body.get("online") is True and self.backend_online is not True
            self.backend_online = body.get("online") is True
            if back and self.connected.is_set():
                self._replay()
        elif msg.topic.endswith("/site/mode") and isinstance(body, dict):
            self.site_mode = body.get("mode", "normal")

    def _beat(self):
        while not self.stopped.wait(self.heartbeat):
            if self.connected.is_set():
                self.send_heartbeat()

    def send_heartbeat(self):
        body = {
            "v": 1,
            "ts": int(time.time() * 1000),
            "acl_ver": self.acl_ver,
            "uptime_s": int(time.monotonic() - self.booted),
        }
        self.client.publish(self._topic("hb"), protocol.encode(body), qos=1)

    # --- badges

    def hash(self, uid: str) -> str:
        return protocol.credential_hash(uid, self.key)

    def scan(self, door: str, uid: str, **kw) -> dict | None:
        """Present a badge at a door; the decision, or None after the timeout."""
        return self.scan_hash(door, self.hash(uid), **kw)

    def scan_hash(
        self, door: str, h: str, *, ts: int | None = None, req_id: str | None = None, timeout=None
    ) -> dict | None:
        """The backend's decision; from the cache after the timeout, or at once while the
        backend says it is offline (then `"offline": true`); None without a list."""
        if self.backend_online is False and self.acl is not None:
            return self.decide_offline(door, h)
        answer = self._ask(door, h, ts=ts, req_id=req_id, timeout=timeout)
        if answer is None and self.acl is not None:
            return self.decide_offline(door, h)
        return answer

    def _ask(self, door, h, *, ts, req_id, timeout):
        body = {"v": 1, "req_id": req_id or uuid.uuid4().hex, "ts": ts, "cred": {"type": "uid"}}
        body["cred"]["h"] = h
        body["ts"] = int(time.time() * 1000) if ts is None else ts
        return self.request(self._topic("door_scan", door=door), body, timeout=timeout)

    def eq_scan(self, eq: str, uid: str, purpose: str = "session_start", timeout=None):
        body = {
            "v": 1,
            "req_id": uuid.uuid4().hex,
            "ts": int(time.time() * 1000),
            "cred": {"type": "uid", "h": self.hash(uid)},
            "purpose": purpose,
        }
        return self.request(self._topic("eq_scan", eq=eq), body, timeout=timeout)

    def request(self, topic: str, body: dict | bytes, *, req_id=None, timeout=None):
        """Publish a request and wait for the decision carrying its req_id."""
        req_id = req_id or (body.get("req_id") if isinstance(body, dict) else None)
        waiting = [threading.Event(), None]
        with self.lock:
            self.pending[req_id] = waiting
        payload = protocol.encode(body) if isinstance(body, dict) else body
        self.client.publish(topic, payload, qos=1)
        waiting[0].wait(self.decision_timeout if timeout is None else timeout)
        with self.lock:
            self.pending.pop(req_id, None)
        return waiting[1]

    def publish_raw(self, topic: str, payload: bytes, qos: int = 1):
        self.client.publish(topic, payload, qos=qos)

    # --- machines (an equipment node)

    def _on_eq_cmd(self, eq: str, body: dict):
        cmd, lease = body.get("cmd"), body.get("lease_s")
        if cmd in ("enable", "extend") and isinstance(lease, int) and lease > 0:
            self._power(eq, True, body.get("session_id"), lease)
        elif cmd == "disable":
            self._power(eq, False)

    def _power(self, eq: str, on: bool, session_id: str | None = None, lease_s: int = 0):
        """Switch a machine; on, for `lease_s` unless renewed. The retained state on a change."""
        with self.lock:
            timer = self.leases.pop(eq, None)
            if timer is not None:
                timer.cancel()
            if on:
                timer = self.leases[eq] = threading.Timer(lease_s, self._power, (eq, False))
                timer.daemon = True
                timer.start()
            state = (on, session_id if on else None)
            changed = self.machines.get(eq) != state
            self.machines[eq] = state
        if changed:
            body = {"v": 1, "enabled": on, **({"session_id": session_id} if on else {})}
            topic = self._topic("eq_state", eq=eq)
            self.client.publish(topic, protocol.encode(body), qos=1, retain=True)

    def powered(self, eq: str) -> bool:
        return self.machines.get(eq, (False, None))[0]

    # --- the allow-list

    def _ack(self, ver: int, status: str, why: str | None = None):
        body = {"v": 1, "ver": ver, "status": status, **({"why": why} if why else {})}
        self.client.publish(self._topic("acl_ack"), protocol.encode(body), qos=1)

    def _on_acl_push(self, raw: bytes):
        try:
            body = protocol.parse_json(raw, "acl push")
            ver = body["ver"]
        except (protocol.ProtocolError, KeyError):
            return
        if body.get("type") == "snapshot":
            self._on_chunk(ver, body, raw)
        elif body.get("type") == "delta":
            self._on_delta(ver, body)

    def _on_chunk(self, ver: int, body: dict, raw: bytes):
        with self.lock:
            parts = self.chunks.setdefault(ver, {})
            parts[body.get("chunk")] = raw
            if len(parts) < body.get("chunks", 0):
                return
            del self.chunks[ver]
            for older in [v for v in self.chunks if v < ver]:
                del self.chunks[older]  # superseded: never applied half
        try:
            snap = protocol.assemble_snapshot(list(parts.values()))
        except protocol.ProtocolError as e:
            why = "hash_mismatch" if "hash_mismatch" in str(e) else str(e)[:60]
            self.acl_log.append(("snapshot", ver, "rejected"))
            self._ack(ver, "rejected", why)
            return
        with self.lock:
            self.acl = {
                "ver": snap.ver,
                "entries": list(snap.entries),
                "schedules": snap.schedules,
                "valid_until": snap.valid_until,
                "tz": snap.tz or "UTC",
                "hashes": {e["h"] for e in snap.entries},
                "canon": _canon_by_hash(snap.entries),
            }
            self.acl_ver = snap.ver
        self.acl_log.append(("snapshot", ver, "applied"))
        self._ack(ver, "applied")

    def _on_delta(self, ver: int, body: dict):
        with self.lock:
            held = self.acl
            if held is None or body.get("base") != held["ver"]:
                status, why = "need_full", None
            else:
                try:
                    add = [protocol.check_entry(e) for e in body.get("add", [])]
                except protocol.ProtocolError:
                    add = None
                replaced = set(body.get("del", [])) | {e["h"] for e in add or []}
                entries = [e for e in held["entries"] if e["h"] not in replaced]
                # Entries sharing a hash are ordered by their canonical JSON (docs/mqtt.md).
                fresh = sorted(add or [], key=lambda e: (e["h"], protocol.canonical_json(e)))
                entries = sorted(entries + fresh, key=lambda e: e["h"])
                # The kept entries' canonical JSON is reused: only the delta's is encoded.
                canon = {h: c for h, c in held["canon"].items() if h not in replaced}
                canon.update(_canon_by_hash(fresh))
                ordered = [c for h in sorted(canon) for c in canon[h]]
                digest = protocol.allowlist_hash_canonical(ordered, held["schedules"])
                if add is None or digest != body.get("hash"):
                    status, why = "rejected", "hash_mismatch"
                else:
                    status, why = "applied", None
                    valid_until = body.get("valid_until", held["valid_until"])
                    self.acl = {**held, "ver": ver, "entries": entries, "valid_until": valid_until}
                    self.acl["hashes"] = {e["h"] for e in entries}
                    self.acl["canon"] = canon
                    self.acl_ver = ver
        self.acl_log.append(("delta", ver, status))
        self._ack(ver, status, why)

    def holds(self, h: str) -> bool:
        acl = self.acl
        return acl is not None and h in acl["hashes"]

    def decide_offline(self, door: str, h: str, now_ms: int | None = None) -> dict:
        """What the device decides alone, from its list (docs/mqtt.md, cache rules)."""
        acl = self.acl
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        only_override = now_ms >= acl["valid_until"] or self.site_mode == "lockdown"
        local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(acl["tz"])).replace(tzinfo=None)
        granted = None
        for e in acl["entries"]:
            if e["h"] != h or door not in e["doors"]:
                continue
            if only_override and "override" not in e["flags"]:
                continue
            if (e["vf"] and now_ms < e["vf"]) or (e["vu"] and now_ms >= e["vu"]):
                continue
            sched = e["sched"]
            if sched is not None and not decision.in_schedule(acl["schedules"][sched], local):
                continue
            granted = e
            break
        if granted is None:
            return {"result": "deny", "reason": "not_in_cache", "offline": True}
        self.seq += 1
        event = {"v": 1, "event": "unlocked", "ts": now_ms, "seq": self.seq, "h": h}
        with self.lock:
            self.buffer.append({**event, "door": door})
        if self.backend_online and self.connected.is_set():
            self._replay()  # the backend is up but did not answer in time: log it now
        return {"result": "grant", "reason": "cache", "offline": True, "seq": self.seq}

    # --- door events

    def event(self, door: str, event: str, h: str | None = None) -> int:
        """A door event, sent now or buffered for the `log` replay when offline; its seq."""
        self.seq += 1
        body = {"v": 1, "event": event, "ts": int(time.time() * 1000), "seq": self.seq}
        if h:
            body["h"] = h
        if self.connected.is_set():
            self.client.publish(self._topic("door_event", door=door), protocol.encode(body), qos=1)
        else:
            with self.lock:
                self.buffer.append({**body, "door": door})
        return self.seq

    def _replay(self):
        """Buffered events on `log`, in batches well under 16 KiB."""
        with self.lock:
            events, self.buffer = self.buffer, []
        batch: list[dict] = []
        for event in events:
            batch.append(event)
            if len(protocol.encode({"v": 1, "events": batch})) > 12_000:
                last = batch.pop()
                self._send_log(batch)
                batch = [last]
        if batch:
            self._send_log(batch)

    def _send_log(self, events):
        self.client.publish(self._topic("log"), protocol.encode({"v": 1, "events": events}), qos=1)


def _canon_by_hash(entries) -> dict[str, list[bytes]]:
    """Each entry's canonical JSON by its hash, in the order given (ordered by h, then by
    canonical JSON)."""
    out: dict[str, list[bytes]] = {}
    for e in entries:
        out.setdefault(e["h"], []).append(protocol.canonical_json(e))
    return out


class SimulatedRelay:
    """A Tasmota plug under `prefix`: POWER ON|OFF, PulseTime 100+s (off by itself unless
    switched on again), stat/POWER after each switch, a retained tele/LWT, tele/SENSOR with
    ENERGY.Total in kWh. `answers=False` makes it a relay that never confirms."""

    def __init__(self, prefix: str, device: str, *, broker: Broker, answers: bool = True):
        self.prefix, self.device, self.answers, self.broker = prefix, device, answers, broker
        self.on = False
        self.switches: list[bool] = []  # every switch, by command or by the pulse timer
        self.pulse_s = 0
        self.commands: list[tuple[str, str]] = []
        self.timer: threading.Timer | None = None
        self.lock = threading.Lock()
        self.ready = threading.Event()  # subscribed to its commands
        self.client = new_client(f"relay-{uuid.uuid4().hex[:8]}", broker=broker)
        self.client.will_set(self.topic("tele", "LWT"), b"Offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.ready.set()
        self.client.on_message = self._on_message

    def topic(self, kind: str, what: str) -> str:
        return f"{self.prefix}{kind}/{self.device}/{what}"

    def start(self, timeout: float = 5.0) -> "SimulatedRelay":
        self.client.connect_async(self.broker.host, self.broker.port)
        self.client.loop_start()
        if not self.ready.wait(timeout):
            self.client.loop_stop()
            raise TimeoutError(f"relay {self.device}: no connection to the broker")
        return self

    def stop(self):
        if self.timer:
            self.timer.cancel()
        self.client.publish(self.topic("tele", "LWT"), b"", qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            return
        client.subscribe(self.topic("cmnd", "+"), qos=1)
        self.lwt("Online")

    def lwt(self, state: str):
        self.client.publish(self.topic("tele", "LWT"), state.encode(), qos=1, retain=True)

    def sensor(self, total: str):
        body = {"Time": "2026-01-01T00:00:00", "ENERGY": {"Total": float(total), "Power": 40}}
        self.client.publish(self.topic("tele", "SENSOR"), json.dumps(body).encode(), qos=1)

    def switched_on(self) -> int:
        return sum(1 for c in self.commands if c == ("POWER", "ON"))

    def _switch(self, on: bool):
        with self.lock:
            self.on = on
            self.switches.append(on)
            if self.timer:
                self.timer.cancel()
                self.timer = None
            if on and self.pulse_s:
                self.timer = threading.Timer(self.pulse_s, self._switch, (False,))
                self.timer.daemon = True
                self.timer.start()
        if self.answers:
            self.client.publish(self.topic("stat", "POWER"), b"ON" if on else b"OFF", qos=1)

    def _on_message(self, client, userdata, msg):
        command, value = msg.topic.rsplit("/", 1)[1], msg.payload.decode()
        self.commands.append((command, value))
        if command == "PulseTime":
            try:
                self.pulse_s = max(0, int(value) - 100)
            except ValueError:
                return
        elif command == "POWER":
            self._switch(value == "ON")
