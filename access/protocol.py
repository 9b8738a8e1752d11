"""The MQTT protocol v1 codec (docs/mqtt.md): topics, payloads, credential hashes,
allow-list hashes and chunks. Pure: no Django, no clock, no I/O.

Everything a device sends goes through one of the `parse_*` functions, which either return a
small frozen dataclass or raise `ProtocolError` with a message fit for the log. Known fields are
checked strictly; unknown fields are ignored, so that newer firmware can add fields without
breaking older backends. When a `req_id` could be read from a bad payload it travels on the
error, so that the bridge can still answer `bad_request`.
"""

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

VERSION = 1
DEFAULT_ROOT = "campus/v1"
MAX_PAYLOAD_BYTES = 16 * 1024
# "≤ 1.5 KB per message": 1,500 bytes satisfies both readings of a kilobyte.
MAX_CHUNK_BYTES = 1500
MAX_ID_LENGTH = 64
MAX_INTEGER = 2**63 - 1
# Ids become topic levels and (for controllers) Mosquitto user names substituted for %u in ACL
# patterns: no '/', '+', '#', spaces or control characters, which would escape the subtree.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HASH_PATTERN = re.compile(r"[0-9a-f]{32}")

GRANT_REASONS = frozenset(
    {"staff", "tenant_office", "common_area", "booking", "visitor", "override"}
)
DENY_REASONS = frozenset(
    {
        "unknown_credential",
        "suspended",
        "expired",
        "not_authorized",
        "outside_schedule",
        "no_booking",
        "not_qualified",
        "equipment_busy",
        "maintenance",
        "lockdown",
        "stale_request",
        "future_request",
        "bad_request",
    }
)
DOOR_EVENTS = frozenset(
    {"opened", "closed", "forced", "held", "held_cleared", "rex", "tamper", "unlocked"}
)
EQ_PURPOSES = frozenset({"session_start", "session_stop"})
ACL_ACK_STATUSES = frozenset({"applied", "need_full", "rejected"})
CMD_ACK_STATUSES = frozenset({"done", "rejected"})
ENTRY_FLAGS = frozenset({"override"})


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as the protocol's times are written (`ts`, `exp`, `vf`…): whole
    milliseconds since 1970 UTC, rounded down. Exact: no float on the way (past 2038,
    `timestamp() * 1000` makes some times one millisecond short)."""
    return (moment - EPOCH) // _MS


class ProtocolError(ValueError):
    """A message or value that does not follow the protocol; `req_id` is set when readable."""

    def __init__(self, message: str, req_id: str | None = None):
        super().__init__(message)
        self.req_id = req_id


# --- credentials -------------------------------------------------------------------------


def normalise_uid(uid: str) -> str:
    """The UID as upper-case hex without separators: `04:a1 b2-c3` → `04A1B2C3`."""
    if not isinstance(uid, str):
        raise ProtocolError("a badge UID must be a string of hex digits")
    clean = re.sub(r"[\s:\-]", "", uid).upper()
    if not clean or len(clean) % 2 or not re.fullmatch(r"[0-9A-F]+", clean):
        raise ProtocolError(f"a badge UID must be whole bytes in hex, not {uid!r}")
    return clean


def credential_hash(uid: str, key: str) -> str:
    """What a reader sends as `cred.h`: the first 32 lower-case hex characters of
    HMAC-SHA256(key = CREDENTIAL_KEY as UTF-8, message = the normalised UID as ASCII)."""
    if not key:
        raise ProtocolError("the credential key is empty")
    message = normalise_uid(uid).encode("ascii")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()[:32]


def uid_hint(uid: str) -> str:
    """The last four hex digits of the UID, enough for a person to tell two badges apart."""
    return normalise_uid(uid)[-4:]


# --- topics -------------------------------------------------------------------------------

# kind → topic under the root; {ctrl}, {door}, {eq} are one level each.
TOPICS = {
    "status": "ctrl/{ctrl}/status",
    "hb": "ctrl/{ctrl}/hb",
    "log": "ctrl/{ctrl}/log",
    "acl_push": "ctrl/{ctrl}/acl/push",
    "acl_ack": "ctrl/{ctrl}/acl/ack",
    "door_scan": "ctrl/{ctrl}/door/{door}/scan",
    "door_decision": "ctrl/{ctrl}/door/{door}/decision",
    "door_event": "ctrl/{ctrl}/door/{door}/event",
    "door_cmd": "ctrl/{ctrl}/door/{door}/cmd",
    "door_cmd_ack": "ctrl/{ctrl}/door/{door}/cmd/ack",
    "door_desired": "ctrl/{ctrl}/door/{door}/desired",
    "eq_scan": "ctrl/{ctrl}/eq/{eq}/scan",
    "eq_decision": "ctrl/{ctrl}/eq/{eq}/decision",
    "eq_cmd": "ctrl/{ctrl}/eq/{eq}/cmd",
    "eq_state": "ctrl/{ctrl}/eq/{eq}/state",
    "site_mode": "site/mode",
    "backend_status": "sys/backend/status",
    "eq_session": "eq/{eq}/session",
}
_PLACEHOLDERS = ("{ctrl}", "{door}", "{eq}")
_PATTERNS = {kind: tuple(t.split("/")) for kind, t in TOPICS.items()}


@dataclass(frozen=True)
class Topic:
    """A parsed topic: what kind of message it carries and the ids it names."""

    kind: str
    ctrl: str | None = None
    door: str | None = None
    eq: str | None = None

    def build(self, root: str = DEFAULT_ROOT) -> str:
        return topic(self.kind, root, ctrl=self.ctrl, door=self.door, eq=self.eq)


def check_id(value: Any, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ProtocolError(
            f"{what} must be 1 to {MAX_ID_LENGTH} letters, digits, '.', '_' or '-', not {value!r}"
        )
    return value


def topic(
    kind: str,
    root: str = DEFAULT_ROOT,
    *,
    ctrl: str | None = None,
    door: str | None = None,
    eq: str | None = None,
) -> str:
    """The topic of this kind for these ids: topic("door_scan", ctrl="C1", door="D-012")."""
    if kind not in TOPICS:
        raise ProtocolError(f"unknown topic kind {kind!r}")
    path = TOPICS[kind]
    for name, value in (("ctrl", ctrl), ("door", door), ("eq", eq)):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", check_id(value, name))
        elif value is not None:
            raise ProtocolError(f"a {kind} topic has no {name}")
    return f"{root.rstrip('/')}/{path}"


def parse_topic(name: str, root: str = DEFAULT_ROOT) -> Topic:
    """The kind and ids of a topic under the root, or ProtocolError."""
    prefix = root.rstrip("/") + "/"
    if not isinstance(name, str) or not name.startswith(prefix):
        raise ProtocolError(f"topic {name!r} is not under {prefix!r}")
    levels = tuple(name[len(prefix) :].split("/"))
    for kind, pattern in _PATTERNS.items():
        if len(pattern) != len(levels):
            continue
        ids = {}
        for want, got in zip(pattern, levels, strict=True):
            if want in _PLACEHOLDERS:
                ids[want[1:-1]] = got
            elif want != got:
                break
        else:
            for what, value in ids.items():
                check_id(value, what)
            return Topic(kind, **ids)
    raise ProtocolError(f"topic {name!r} is not part of the protocol")


def tasmota_topic(prefix: str, device: str, command: str) -> str:
    """A Tasmota relay's own topics: cmnd/{device}/POWER, stat/{device}/POWER, tele/…/LWT."""
    if prefix not in ("cmnd", "stat", "tele"):
        raise ProtocolError(f"unknown Tasmota prefix {prefix!r}")
    check_id(device, "Tasmota topic")
    return f"{prefix}/{device}/{command}"


# --- payloads from devices ------------------------------------------------------------------


def parse_json(raw: bytes | str, what: str = "payload") -> dict:
    """A protocol v1 JSON object: at most 16 KiB, UTF-8, an object with "v": 1."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if not isinstance(raw, bytes | bytearray):
        raise ProtocolError(f"{what}: expected bytes")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{what}: {len(raw)} bytes is over the {MAX_PAYLOAD_BYTES} limit")
    try:
        data = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"{what}: not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected a JSON object")
    req_id = data.get("req_id") if isinstance(data.get("req_id"), str) else None
    if req_id is not None and not 0 < len(req_id) <= MAX_ID_LENGTH:
        req_id = None
    if data.get("v") != VERSION or isinstance(data.get("v"), bool):
        raise ProtocolError(f'{what}: "v" must be {VERSION}', req_id)
    return data


class _Fields:
    """Reads typed fields of one payload, naming the payload and field in every error."""

    def __init__(self, data: dict, what: str):
        self.data = data
        self.what = what
        self.req_id = None

    def fail(self, name: str, expected: str):
        got = self.data.get(name)
        shown = repr(got) if len(repr(got)) <= 40 else repr(got)[:37] + "..."
        raise ProtocolError(f"{self.what}: {name!r} must be {expected}, not {shown}", self.req_id)

    def string(self, name: str, *, max_length: int = MAX_ID_LENGTH, optional=False):
        value = self.data.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not 0 < len(value) <= max_length:
            self.fail(name, f"a string of 1 to {max_length} characters")
        return value

    def integer(self, name: str, *, minimum: int = 0, optional=False):
        value = self.data.get(name)
        if value is None and optional:
            return None
        # At most 2^63 - 1: what a database's big integer holds (ms timestamps, seq, ver).
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.fail(name, f"an integer ≥ {minimum}")
        if value > MAX_INTEGER:
            self.fail(name, "at most 2^63 - 1")
        return value

    def boolean(self, name: str, *, optional=False):
        value = self.data.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, bool):
            self.fail(name, "true or false")
        return value

    def choice(self, name: str, choices: frozenset):
        value = self.data.get(name)
        if not isinstance(value, str) or value not in choices:
            self.fail(name, "one of " + ", ".join(sorted(choices)))
        return value

    def req(self) -> str:
        value = self.string("req_id")
        self.req_id = value
        return value


@dataclass(frozen=True)
class Scan:
    """A badge at a door reader, or at a machine (`purpose` set, from eq/{eq}/scan)."""

    req_id: str
    ts: int
    cred_type: str
    h: str
    purpose: str | None = None
    session_id: str | None = None


def _scan(data: dict, what: str) -> tuple[_Fields, dict]:
    f = _Fields(data, what)
    f.req()
    f.integer("ts")
    cred = data.get("cred")
    if not isinstance(cred, dict):
        f.fail("cred", 'an object {"type": "uid", "h": <32 hex>}')
    c = _Fields(cred, what + " cred")
    c.req_id = f.req_id
    c.choice("type", frozenset({"uid"}))
    h = c.string("h", max_length=32)
    if not HASH_PATTERN.fullmatch(h):
        c.fail("h", "32 lower-case hex characters")
    return f, cred


def parse_scan(raw: bytes | str) -> Scan:
    """A door scan: {"v":1,"req_id":..,"ts":<epoch ms>,"cred":{"type":"uid","h":<32 hex>}}."""
    data = parse_json(raw, "scan")
    f, cred = _scan(data, "scan")
    return Scan(req_id=f.req_id, ts=data["ts"], cred_type=cred["type"], h=cred["h"])


def parse_eq_scan(raw: bytes | str) -> Scan:
    """A badge at a machine: a scan with "purpose": session_start | session_stop."""
    data = parse_json(raw, "eq scan")
    f, cred = _scan(data, "eq scan")
    purpose = f.choice("purpose", EQ_PURPOSES)
    session_id = f.string("session_id", optional=True)
    return Scan(f.req_id, data["ts"], cred["type"], cred["h"], purpose, session_id)


@dataclass(frozen=True)
class DoorEvent:
    """Something a door saw: opened, forced, held… `seq` numbers a controller's events."""

    event: str
    ts: int
    seq: int
    door: str | None = None
    h: str | None = None


def _door_event(data: dict, what: str, *, in_log: bool) -> DoorEvent:
    f = _Fields(data, what)
    event = f.choice("event", DOOR_EVENTS)
    ts = f.integer("ts")
    seq = f.integer("seq")
    door = f.string("door") if in_log else None
    if door is not None:
        try:
            check_id(door, "door")
        except ProtocolError:
            f.fail("door", "a door id")
    h = f.string("h", max_length=32, optional=True)
    if h is not None and not HASH_PATTERN.fullmatch(h):
        f.fail("h", "32 lower-case hex characters")
    return DoorEvent(event, ts, seq, door, h)


def parse_door_event(raw: bytes | str) -> DoorEvent:
    """{"v":1,"event":"opened","ts":..,"seq":N} (optional "h": the badge involved)."""
    return _door_event(parse_json(raw, "door event"), "door event", in_log=False)


def parse_log(raw: bytes | str) -> tuple[DoorEvent, ...]:
    """Events buffered offline: {"v":1,"events":[{"door":..,"event":..,"ts":..,"seq":..},..]}."""
    data = parse_json(raw, "log")
    events = data.get("events")
    if not isinstance(events, list):
        _Fields(data, "log").fail("events", "a list of events")
    out = []
    for i, item in enumerate(events):
        if not isinstance(item, dict):
            raise ProtocolError(f"log: events[{i}] must be an object")
        out.append(_door_event(item, f"log events[{i}]", in_log=True))
    return tuple(out)


@dataclass(frozen=True)
class Heartbeat:
    """Every 30 s: the device's clock, the allow-list version it holds, its uptime."""

    ts: int
    acl_ver: int
    uptime_s: int


def parse_heartbeat(raw: bytes | str) -> Heartbeat:
    data = parse_json(raw, "heartbeat")
    f = _Fields(data, "heartbeat")
    return Heartbeat(f.integer("ts"), f.integer("acl_ver"), f.integer("uptime_s"))


@dataclass(frozen=True)
class Status:
    """Birth message (online, firmware, allow-list version) or last will (offline)."""

    online: bool
    fw: str | None = None
    acl_ver: int | None = None


def parse_status(raw: bytes | str) -> Status:
    data = parse_json(raw, "status")
    f = _Fields(data, "status")
    online = f.boolean("online")
    return Status(online, f.string("fw", optional=True), f.integer("acl_ver", optional=True))


@dataclass(frozen=True)
class AclAck:
    """The device's answer to an allow-list push."""

    ver: int
    status: str
    why: str | None = None


def parse_acl_ack(raw: bytes | str) -> AclAck:
    data = parse_json(raw, "acl ack")
    f = _Fields(data, "acl ack")
    return AclAck(
        f.integer("ver"), f.choice("status", ACL_ACK_STATUSES), f.string("why", optional=True)
    )


@dataclass(frozen=True)
class CmdAck:
    """The device's answer to a command, by the command's req_id."""

    req_id: str
    status: str
    why: str | None = None


def parse_cmd_ack(raw: bytes | str) -> CmdAck:
    data = parse_json(raw, "cmd ack")
    f = _Fields(data, "cmd ack")
    req_id = f.req()
    return CmdAck(req_id, f.choice("status", CMD_ACK_STATUSES), f.string("why", optional=True))


@dataclass(frozen=True)
class EqState:
    """Retained state of a machine's power: enabled or not, under which session."""

    enabled: bool
    session_id: str | None = None


def parse_eq_state(raw: bytes | str) -> EqState:
    data = parse_json(raw, "eq state")
    f = _Fields(data, "eq state")
    return EqState(f.boolean("enabled"), f.string("session_id", optional=True))


# --- payloads to devices --------------------------------------------------------------------


def encode(obj: dict) -> bytes:
    """Compact UTF-8 JSON, as every message is sent."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decision_payload(
    req_id: str,
    result: str,
    reason: str,
    exp: int,
    *,
    pulse_ms: int | None = None,
    session_id: str | None = None,
    lease_s: int | None = None,
) -> bytes:
    """The answer to a scan; `pulse_ms` for a door grant, `session_id`/`lease_s` for a machine."""
    if result == "grant" and reason not in GRANT_REASONS:
        raise ProtocolError(f"{reason!r} is not a grant reason")
    if result == "deny" and reason not in DENY_REASONS:
        raise ProtocolError(f"{reason!r} is not a deny reason")
    if result not in ("grant", "deny"):
        raise ProtocolError(f"a decision is grant or deny, not {result!r}")
    body = {"v": VERSION, "req_id": req_id, "result": result, "reason": reason, "exp": exp}
    if result == "grant":
        extra = {"pulse_ms": pulse_ms, "session_id": session_id, "lease_s": lease_s}
        body.update({k: v for k, v in extra.items() if v is not None})
    return encode(body)


# --- allow-lists ----------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (not \\u escapes): what both ends hash."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def allowlist_hash(entries: list[dict], schedules: dict) -> str:
    """ "sha256:" + hex SHA-256 of {"entries": entries sorted by h, "schedules": schedules}."""
    body = {"entries": sorted(entries, key=lambda e: e["h"]), "schedules": schedules}
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()


def allowlist_hash_canonical(canon, schedules: dict) -> str:
    """`allowlist_hash` from each entry's canonical JSON, already in hash order: the same bytes
    as encoding {"entries": [...], "schedules": {...}} whole, without encoding the entries
    again (both ends keep them encoded, and a delta changes only a few)."""
    body = b'{"entries":[' + b",".join(canon) + b'],"schedules":'
    return "sha256:" + hashlib.sha256(body + canonical_json(schedules) + b"}").hexdigest()


def check_entry(entry: Any) -> dict:
    """An allow-list entry: {"h", "doors", "sched", "vf", "vu", "flags"}, each well-formed."""
    if not isinstance(entry, dict):
        raise ProtocolError("an allow-list entry must be an object")
    f = _Fields(entry, "allow-list entry")
    h = f.string("h", max_length=32)
    if not HASH_PATTERN.fullmatch(h):
        f.fail("h", "32 lower-case hex characters")
    doors = entry.get("doors")
    if not isinstance(doors, list) or not doors:
        f.fail("doors", "a non-empty list of door ids")
    for door in doors:
        check_id(door, "door")
    if entry.get("sched") is not None:
        f.string("sched")
    f.integer("vf")
    f.integer("vu")
    flags = entry.get("flags")
    if not isinstance(flags, list) or not all(flag in ENTRY_FLAGS for flag in flags):
        f.fail("flags", "a list of " + ", ".join(sorted(ENTRY_FLAGS)))
    return entry


@dataclass(frozen=True)
class Snapshot:
    """A whole allow-list as a device holds it after assembling every chunk."""

    ver: int
    valid_until: int
    hash: str
    tz: str
    tz_posix: str
    schedules: dict = field(default_factory=dict)
    entries: tuple = ()


def snapshot_chunks(
    ver: int,
    entries: list[dict],
    schedules: dict,
    *,
    valid_until: int,
    tz: str,
    tz_posix: str,
    max_bytes: int = MAX_CHUNK_BYTES,
    canon: list[bytes] | tuple | None = None,
) -> list[bytes]:
    """The snapshot as acl/push messages of at most `max_bytes` each, numbered from 1.

    Every chunk repeats ver, chunks, valid_until and hash; tz, tz_posix and schedules travel in
    chunk 1 only. Entries are packed greedily in hash order, so the same list always gives the
    same chunks. `canon`: each entry's canonical JSON when the caller keeps it (same order as
    `entries`), for the hash and the sizes (an entry's compact JSON has the same length).
    """
    for entry in entries:
        check_entry(entry)
    if canon is None:
        canon = [canonical_json(entry) for entry in entries]
    pairs = sorted(zip(entries, canon, strict=True), key=lambda pair: pair[0]["h"])
    ordered = [entry for entry, _c in pairs]
    sizes = [len(c) for _e, c in pairs]
    digest = allowlist_hash_canonical([c for _e, c in pairs], schedules)
    # Measure with a chunk count at least as wide as the real one: the real messages can only be
    # shorter than measured, never longer.
    wide = len(ordered) + 1

    def message(number: int, total: int, items: list[dict]) -> dict:
        body = {
            "v": VERSION,
            "type": "snapshot",
            "ver": ver,
            "chunk": number,
            "chunks": total,
            "valid_until": valid_until,
            "hash": digest,
        }
        if number == 1:
            body.update(tz=tz, tz_posix=tz_posix, schedules=schedules)
        body["entries"] = items
        return body

    # A message's size is its size with no entries, plus each entry's and a comma between
    # two: each entry is encoded once, not once per entry added to its chunk.
    def empty_size(number: int) -> int:
        return len(encode(message(number, wide, [])))

    groups: list[list[dict]] = [[]]
    size = empty_size(1)
    for entry, length in zip(ordered, sizes, strict=True):
        grown = size + length + (1 if groups[-1] else 0)
        if grown <= max_bytes:
            groups[-1].append(entry)
            size = grown
            continue
        if not groups[-1] and len(groups) > 1:
            raise ProtocolError(f"entry {entry['h']} alone is over {max_bytes} bytes")
        groups.append([entry])
        size = empty_size(len(groups)) + length
        if size > max_bytes:
            raise ProtocolError(f"entry {entry['h']} alone is over {max_bytes} bytes")
    if len(encode(message(1, wide, groups[0]))) > max_bytes:
        raise ProtocolError(f"chunk 1 (time zone and schedules) is over {max_bytes} bytes")
    return [encode(message(i, len(groups), g)) for i, g in enumerate(groups, start=1)]


def assemble_snapshot(chunks: list[bytes]) -> Snapshot:
    """What a device does: check every chunk arrived and agrees, then verify the hash."""
    if not chunks:
        raise ProtocolError("snapshot: no chunks")
    parsed = {}
    for raw in chunks:
        data = parse_json(raw, "acl push")
        f = _Fields(data, "acl push")
        if data.get("type") != "snapshot":
            f.fail("type", '"snapshot"')
        number = f.integer("chunk", minimum=1)
        f.integer("chunks", minimum=1)
        f.integer("ver")
        f.integer("valid_until")
        f.string("hash", max_length=80)
        parsed[number] = data
    first = parsed.get(1)
    if first is None:
        raise ProtocolError("snapshot: chunk 1 is missing")
    head = ("ver", "chunks", "valid_until", "hash")
    if any(tuple(d[k] for k in head) != tuple(first[k] for k in head) for d in parsed.values()):
        raise ProtocolError("snapshot: chunks disagree on ver, chunks, valid_until or hash")
    if first["chunks"] != len(parsed) or sorted(parsed) != list(range(1, len(parsed) + 1)):
        raise ProtocolError(
            f"snapshot: expected chunks 1 to {first['chunks']}, got {sorted(parsed)}"
        )
    entries = []
    for number in sorted(parsed):
        items = parsed[number].get("entries")
        if not isinstance(items, list):
            raise ProtocolError(f"snapshot: chunk {number} has no entries list")
        entries.extend(check_entry(e) for e in items)
    schedules = first.get("schedules")
    if not isinstance(schedules, dict):
        raise ProtocolError("snapshot: chunk 1 has no schedules object")
    if allowlist_hash(entries, schedules) != first["hash"]:
        raise ProtocolError("snapshot: hash_mismatch")
    return Snapshot(
        ver=first["ver"],
        valid_until=first["valid_until"],
        hash=first["hash"],
        tz=first.get("tz", ""),
        tz_posix=first.get("tz_posix", ""),
        schedules=schedules,
        entries=tuple(sorted(entries, key=lambda e: e["h"])),
    )
