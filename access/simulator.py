"""A simulated door controller: the reference device side of protocol v1, for the demo, the
command line (`simulate_controller`, `door_scan`), the integration tests and the benchmark.

What a real controller does, in the protocol's words (docs/mqtt.md): it hashes the badge UID
with the site's credential key (the UID never leaves it), waits at most 1 s for a decision,
sends a retained birth on `status` with a retained last will, a heartbeat every 30 s, door
events numbered by `seq` (never going back), and buffers events while offline to replay them
on `log` when back. MQTT 3.1.1, as most devices speak. It keeps no allow-list cache: a scan
without an answer returns None.
"""

import json
import threading
import time
import uuid

from access import protocol
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
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.client = new_client(
            client_id or self.id,
            username=broker.username or None,
            password=broker.password or None,
        )
        if broker.tls:
            self.client.tls_set()
        if presence:
            offline = protocol.encode({"v": 1, "online": False})
            self.client.will_set(self._topic("status"), offline, qos=1, retain=True)
        self.client.reconnect_delay_set(1, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _topic(self, kind: str, **ids) -> str:
        return protocol.topic(kind, self.root, ctrl=self.id, **ids)

    # --- connection

    def start(self, timeout: float = 5.0) -> "SimulatedController":
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.client.loop_stop()
            raise TimeoutError(f"controller {self.id}: no connection to the broker")
        if self.presence and self.heartbeat:
            threading.Thread(target=self._beat, name=f"hb-{self.id}", daemon=True).start()
        return self

    def stop(self):
        """A clean shutdown: say offline (retained), then disconnect."""
        self.stopped.set()
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
            f"{own}/door/+/desired",
            protocol.topic("site_mode", self.root),
            protocol.topic("backend_status", self.root),
        ]
        client.subscribe([(t, 1) for t in subscriptions])
        if self.presence:
            birth = {"v": 1, "online": True, "fw": self.fw, "acl_ver": self.acl_ver}
            client.publish(self._topic("status"), protocol.encode(birth), qos=1, retain=True)
        self._replay()
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()

    def _on_message(self, client, userdata, msg):
        try:
            body = json.loads(msg.payload) if msg.payload else None
        except ValueError:
            return
        req_id = body.get("req_id") if isinstance(body, dict) else None
        with self.lock:
            waiting = self.pending.get(req_id) if req_id else None
            if waiting is not None and msg.topic.endswith("/decision"):
                waiting[1] = body
                waiting[0].set()
            else:
                self.extra.append((msg.topic, body))

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
