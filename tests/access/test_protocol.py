"""The MQTT v1 codec: credential hashes, topics, payloads, allow-list hashes and chunks.
Pure functions, no database, no broker."""

import contextlib
import hashlib
import hmac
import json
import random
import re
from pathlib import Path

import pytest

from access import protocol
from access.protocol import (
    MAX_CHUNK_BYTES,
    ProtocolError,
    Topic,
    allowlist_hash,
    assemble_snapshot,
    credential_hash,
    decision_payload,
    parse_acl_ack,
    parse_cmd_ack,
    parse_door_event,
    parse_eq_scan,
    parse_eq_state,
    parse_heartbeat,
    parse_log,
    parse_scan,
    parse_status,
    parse_topic,
    snapshot_chunks,
    topic,
    uid_hint,
)

H = "9f3a1c0d5e7b2a469f3a1c0d5e7b2a46"
SCAN = {"v": 1, "req_id": "01JF9X3K6T2Q8V0M7N5C4B1A2Z", "ts": 1767600123456,
        "cred": {"type": "uid", "h": H}}  # fmt: skip


def raw(obj) -> bytes:
    return json.dumps(obj).encode()


# --- credential hashes


def test_the_protocols_example_hash():
    expected = hmac.new(b"k", b"04A1B2C3", hashlib.sha256).hexdigest()[:32]
    assert credential_hash("04a1b2c3", "k") == expected
    assert len(expected) == 32


@pytest.mark.parametrize("uid", ["04A1B2C3", "04:a1:b2:c3", "04 A1 B2 C3", " 04-a1-b2-c3\n"])
def test_separators_and_case_do_not_change_the_hash(uid):
    assert credential_hash(uid, "k") == credential_hash("04a1b2c3", "k")


def test_the_key_is_used_as_utf8():
    expected = hmac.new("clé".encode(), b"04A1B2C3", hashlib.sha256).hexdigest()[:32]
    assert credential_hash("04a1b2c3", "clé") == expected


@pytest.mark.parametrize("uid", ["", "  ", "04a1b2cz", "04a1b2c", "0x04a1", None, 1234])
def test_a_uid_that_is_not_whole_hex_bytes_is_refused(uid):
    with pytest.raises(ValueError):
        credential_hash(uid, "k")


def test_the_hint_is_the_last_four_hex_digits():
    assert uid_hint("04:a1:b2:c3") == "B2C3"


# --- topics


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("campus/v1/ctrl/C1/status", Topic("status", ctrl="C1")),
        ("campus/v1/ctrl/C1/hb", Topic("hb", ctrl="C1")),
        ("campus/v1/ctrl/C1/log", Topic("log", ctrl="C1")),
        ("campus/v1/ctrl/C1/acl/push", Topic("acl_push", ctrl="C1")),
        ("campus/v1/ctrl/C1/acl/ack", Topic("acl_ack", ctrl="C1")),
        ("campus/v1/ctrl/C1/door/D-012/scan", Topic("door_scan", ctrl="C1", door="D-012")),
        ("campus/v1/ctrl/C1/door/D-012/decision", Topic("door_decision", "C1", "D-012")),
        ("campus/v1/ctrl/C1/door/D-012/event", Topic("door_event", "C1", "D-012")),
        ("campus/v1/ctrl/C1/door/D-012/cmd", Topic("door_cmd", "C1", "D-012")),
        ("campus/v1/ctrl/C1/door/D-012/cmd/ack", Topic("door_cmd_ack", "C1", "D-012")),
        ("campus/v1/ctrl/C1/door/D-012/desired", Topic("door_desired", "C1", "D-012")),
        ("campus/v1/ctrl/C1/eq/EMC.1/scan", Topic("eq_scan", ctrl="C1", eq="EMC.1")),
        ("campus/v1/ctrl/C1/eq/EMC.1/decision", Topic("eq_decision", ctrl="C1", eq="EMC.1")),
        ("campus/v1/ctrl/C1/eq/EMC.1/cmd", Topic("eq_cmd", ctrl="C1", eq="EMC.1")),
        ("campus/v1/ctrl/C1/eq/EMC.1/state", Topic("eq_state", ctrl="C1", eq="EMC.1")),
        ("campus/v1/site/mode", Topic("site_mode")),
        ("campus/v1/sys/backend/status", Topic("backend_status")),
        ("campus/v1/eq/EMC.1/session", Topic("eq_session", eq="EMC.1")),
    ],
)
def test_every_topic_of_the_tree_parses_and_builds_back(name, expected):
    assert parse_topic(name) == expected
    assert expected.build() == name


def test_the_root_is_configurable():
    assert topic("door_scan", "site2/v1", ctrl="C1", door="D1") == "site2/v1/ctrl/C1/door/D1/scan"
    assert parse_topic("site2/v1/ctrl/C1/hb", root="site2/v1/") == Topic("hb", ctrl="C1")


@pytest.mark.parametrize(
    "name",
    [
        "campus/v2/ctrl/C1/hb",
        "campus/v1/ctrl/C1",
        "campus/v1/ctrl/C1/door/D1/open",
        "campus/v1/ctrl/C1/door/D1/scan/extra",
        "campus/v1/ctrl//hb",
        "campus/v1/ctrl/+/hb",
        "campus/v1/ctrl/#/hb",
        "campus/v1/ctrl/" + "C" * 65 + "/hb",
        "campus/v1/ctrl/C 1/hb",
        "",
    ],
)
def test_a_topic_outside_the_protocol_is_refused(name):
    with pytest.raises(ProtocolError):
        parse_topic(name)


def test_building_a_topic_checks_the_ids():
    with pytest.raises(ProtocolError, match="ctrl must be"):
        topic("hb", ctrl="a/b")
    with pytest.raises(ProtocolError, match="door must be"):
        topic("door_scan", ctrl="C1")
    with pytest.raises(ProtocolError, match="has no door"):
        topic("hb", ctrl="C1", door="D1")


def test_tasmota_topics():
    assert protocol.tasmota_topic("cmnd", "emc-relay", "POWER") == "cmnd/emc-relay/POWER"
    with pytest.raises(ProtocolError):
        protocol.tasmota_topic("cmnd", "a/#", "POWER")


# --- payloads from devices


def test_the_protocols_scan_example_parses():
    scan = parse_scan(raw(SCAN))
    assert (scan.req_id, scan.ts, scan.cred_type, scan.h) == (SCAN["req_id"], SCAN["ts"], "uid", H)


def test_unknown_fields_are_ignored_for_newer_firmware():
    assert parse_scan(raw({**SCAN, "rssi": -40})).h == H


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": 2}, '"v" must be 1'),
        ({"v": True}, '"v" must be 1'),
        ({"req_id": ""}, "'req_id' must be a string of 1 to 64"),
        ({"req_id": "x" * 65}, "'req_id' must be a string of 1 to 64"),
        ({"req_id": 12}, "'req_id' must be a string"),
        ({"ts": "1767600123456"}, "'ts' must be an integer"),
        ({"ts": 1.5}, "'ts' must be an integer"),
        ({"ts": -1}, "'ts' must be an integer ≥ 0"),
        ({"cred": H}, "'cred' must be an object"),
        ({"cred": {"type": "pin", "h": H}}, "'type' must be one of uid"),
        ({"cred": {"type": "uid", "h": H.upper()}}, "'h' must be 32 lower-case hex"),
        ({"cred": {"type": "uid", "h": H[:31]}}, "'h' must be 32 lower-case hex"),
    ],
)
def test_a_bad_scan_is_refused_with_a_clear_message(change, message):
    with pytest.raises(ProtocolError, match=message):
        parse_scan(raw({**SCAN, **change}))


def test_a_bad_scan_keeps_its_req_id_so_that_the_device_gets_bad_request():
    with pytest.raises(ProtocolError) as caught:
        parse_scan(raw({**SCAN, "ts": "soon"}))
    assert caught.value.req_id == SCAN["req_id"]
    with pytest.raises(ProtocolError) as caught:
        parse_scan(raw({**SCAN, "v": 3}))
    assert caught.value.req_id == SCAN["req_id"]


def test_a_payload_over_16_kib_is_refused_before_parsing():
    big = raw({**SCAN, "pad": "x" * 16 * 1024})
    with pytest.raises(ProtocolError, match="over the 16384 limit"):
        parse_scan(big)


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1,2]", b"\xff\xfe", b'"v"', b"null"])
def test_a_payload_that_is_not_a_json_object_is_refused(payload):
    with pytest.raises(ProtocolError):
        parse_scan(payload)


def test_an_equipment_scan_carries_its_purpose():
    scan = parse_eq_scan(raw({**SCAN, "purpose": "session_stop", "session_id": "S1"}))
    assert (scan.purpose, scan.session_id) == ("session_stop", "S1")
    with pytest.raises(ProtocolError, match="'purpose' must be one of session_start"):
        parse_eq_scan(raw({**SCAN, "purpose": "power_on"}))
    with pytest.raises(ProtocolError, match="'purpose'"):
        parse_eq_scan(raw(SCAN))


def test_door_events():
    event = parse_door_event(raw({"v": 1, "event": "forced", "ts": 5, "seq": 42}))
    assert (event.event, event.ts, event.seq) == ("forced", 5, 42)
    with pytest.raises(ProtocolError, match="'event' must be one of"):
        parse_door_event(raw({"v": 1, "event": "exploded", "ts": 5, "seq": 1}))
    with pytest.raises(ProtocolError, match="'seq' must be an integer"):
        parse_door_event(raw({"v": 1, "event": "opened", "ts": 5}))


def test_an_offline_log_names_the_door_of_each_event():
    events = parse_log(
        raw({"v": 1, "events": [{"door": "D1", "event": "opened", "ts": 1, "seq": 7}]})
    )
    assert events[0].door == "D1" and events[0].seq == 7
    with pytest.raises(ProtocolError, match=r"events\[0\]: 'door'"):
        parse_log(raw({"v": 1, "events": [{"event": "opened", "ts": 1, "seq": 7}]}))
    with pytest.raises(ProtocolError, match="'events' must be a list"):
        parse_log(raw({"v": 1, "events": {}}))


def test_heartbeat_status_and_acks():
    assert parse_heartbeat(raw({"v": 1, "ts": 1, "acl_ver": 12, "uptime_s": 30})).acl_ver == 12
    assert parse_status(raw({"v": 1, "online": False})) == protocol.Status(False)
    birth = parse_status(raw({"v": 1, "online": True, "fw": "1.4.2", "acl_ver": 3}))
    assert (birth.fw, birth.acl_ver) == ("1.4.2", 3)
    ack = parse_acl_ack(raw({"v": 1, "ver": 9, "status": "rejected", "why": "hash_mismatch"}))
    assert (ack.status, ack.why) == ("rejected", "hash_mismatch")
    assert parse_cmd_ack(raw({"v": 1, "req_id": "r1", "status": "done"})).req_id == "r1"
    assert parse_eq_state(raw({"v": 1, "enabled": True, "session_id": "S1"})).enabled
    with pytest.raises(ProtocolError, match="'online' must be true or false"):
        parse_status(raw({"v": 1, "online": 1}))
    with pytest.raises(ProtocolError, match="'status' must be one of applied"):
        parse_acl_ack(raw({"v": 1, "ver": 9, "status": "ok"}))
    with pytest.raises(ProtocolError, match="'uptime_s'"):
        parse_heartbeat(raw({"v": 1, "ts": 1, "acl_ver": 12}))


PARSERS = [
    parse_scan,
    parse_eq_scan,
    parse_door_event,
    parse_log,
    parse_heartbeat,
    parse_status,
    parse_acl_ack,
    parse_cmd_ack,
    parse_eq_state,
    assemble_snapshot,
]


def _random_json(rng: random.Random, depth=0):
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, 1, -1, 2**70, 1767600123456, 1.5, float("nan")])
    if pick in (3, 4, 5):
        return rng.choice(["", "uid", H, "x" * 70, "session_start", "opened", "ü", "D1"])
    if pick in (6, 7):
        keys = ["v", "req_id", "ts", "cred", "type", "h", "events", "door", "event", "seq",
                "purpose", "online", "chunk", "chunks", "entries", "hash", "ver"]  # fmt: skip
        obj = {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(8))}
        if rng.random() < 0.7:
            obj["v"] = 1
        return obj
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_random_bytes_raise_only_protocol_errors():
    rng = random.Random(20260302)
    for _ in range(3000):
        payload = rng.randbytes(rng.randrange(64))
        for parse in PARSERS:
            with contextlib.suppress(ProtocolError):
                parse([payload] if parse is assemble_snapshot else payload)


def test_random_json_raises_only_protocol_errors():
    rng = random.Random(5)
    for _ in range(5000):
        payload = json.dumps(_random_json(rng)).encode()
        for parse in PARSERS:
            with contextlib.suppress(ProtocolError):
                parse([payload] if parse is assemble_snapshot else payload)


def test_mutated_valid_scans_raise_only_protocol_errors():
    rng = random.Random(7)
    good = bytearray(raw(SCAN))
    for _ in range(5000):
        mutated = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        with contextlib.suppress(ProtocolError):
            parse_scan(bytes(mutated))


def test_deep_nesting_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        parse_scan(b"[" * 10000 + b"]" * 10000)


# --- payloads to devices


def test_a_door_decision_payload():
    body = json.loads(
        decision_payload(SCAN["req_id"], "grant", "tenant_office", 1767600125456, pulse_ms=4000)
    )
    assert body == {
        "v": 1,
        "req_id": SCAN["req_id"],
        "result": "grant",
        "reason": "tenant_office",
        "pulse_ms": 4000,
        "exp": 1767600125456,
    }


def test_a_deny_carries_no_pulse_and_reasons_are_checked():
    body = json.loads(decision_payload("r", "deny", "lockdown", 1, pulse_ms=4000))
    assert "pulse_ms" not in body
    with pytest.raises(ProtocolError):
        decision_payload("r", "grant", "lockdown", 1)
    with pytest.raises(ProtocolError):
        decision_payload("r", "deny", "staff", 1)
    with pytest.raises(ProtocolError):
        decision_payload("r", "maybe", "staff", 1)


def test_a_machine_grant_carries_its_session_and_lease():
    body = json.loads(decision_payload("r", "grant", "booking", 1, session_id="S9", lease_s=90))
    assert (body["session_id"], body["lease_s"]) == ("S9", 90)


# --- allow-lists


def entry(i: int, **extra) -> dict:
    h = hashlib.sha256(str(i).encode()).hexdigest()[:32]
    return {"h": h, "doors": ["D-012", "D-013"], "sched": "office", "vf": 0,
            "vu": 1798761600000, "flags": [], **extra}  # fmt: skip


SCHEDULES = {"office": [[1, "07:00", "20:00"], [2, "07:00", "20:00"]]}


def test_the_hash_is_sha256_of_the_canonical_sorted_list():
    entries = [entry(2), entry(1, flags=["override"]), entry(3, sched=None)]
    canonical = json.dumps(
        {"entries": sorted(entries, key=lambda e: e["h"]), "schedules": SCHEDULES},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    assert allowlist_hash(entries, SCHEDULES) == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert allowlist_hash(list(reversed(entries)), SCHEDULES) == allowlist_hash(entries, SCHEDULES)


def test_the_hash_of_non_ascii_schedule_names_uses_utf8_not_escapes():
    schedules = {"bureaux-été": [[1, "07:00", "20:00"]]}
    canonical = '{"entries":[],"schedules":{"bureaux-été":[[1,"07:00","20:00"]]}}'.encode()
    assert allowlist_hash([], schedules) == "sha256:" + hashlib.sha256(canonical).hexdigest()


def snapshot(entries, **kw):
    return snapshot_chunks(
        1290,
        entries,
        SCHEDULES,
        valid_until=1767686400000,
        tz="Europe/Paris",
        tz_posix="CET-1CEST,M3.5.0,M10.5.0/3",
        **kw,
    )


def test_a_big_list_is_cut_into_chunks_of_at_most_1500_bytes():
    entries = [entry(i) for i in range(200)]
    chunks = snapshot(entries)
    assert len(chunks) > 10
    assert all(len(c) <= MAX_CHUNK_BYTES for c in chunks)
    bodies = [json.loads(c) for c in chunks]
    assert [b["chunk"] for b in bodies] == list(range(1, len(chunks) + 1))
    digest = allowlist_hash(entries, SCHEDULES)
    for b in bodies:
        assert (b["v"], b["type"], b["ver"], b["chunks"], b["valid_until"], b["hash"]) == (
            1, "snapshot", 1290, len(chunks), 1767686400000, digest
        )  # fmt: skip
    assert {"tz", "tz_posix", "schedules"} <= set(bodies[0])
    assert not any({"tz", "tz_posix", "schedules"} & set(b) for b in bodies[1:])
    assert sum(len(b["entries"]) for b in bodies) == 200


def test_a_device_assembles_the_chunks_in_any_order_and_checks_the_hash():
    entries = [entry(i) for i in range(60)]
    chunks = snapshot(entries)
    random.Random(1).shuffle(chunks)
    held = assemble_snapshot(chunks)
    assert held.ver == 1290 and held.tz == "Europe/Paris" and held.schedules == SCHEDULES
    assert list(held.entries) == sorted(entries, key=lambda e: e["h"])


def test_a_missing_chunk_or_a_tampered_entry_is_refused():
    chunks = snapshot([entry(i) for i in range(60)])
    with pytest.raises(ProtocolError, match="expected chunks"):
        assemble_snapshot(chunks[:-1])
    tampered = chunks[-1].replace(b'"D-013"', b'"D-666"')
    with pytest.raises(ProtocolError, match="hash_mismatch"):
        assemble_snapshot([*chunks[:-1], tampered])


def test_a_chunk_count_from_outer_space_is_refused_at_once():
    body = json.loads(snapshot([])[0])
    with pytest.raises(ProtocolError, match="'chunks' must be at most 2\\^63 - 1"):
        assemble_snapshot([raw({**body, "chunks": 2**70})])


def test_an_empty_list_is_one_chunk():
    chunks = snapshot([])
    assert len(chunks) == 1
    assert assemble_snapshot(chunks).entries == ()


def test_chunks_stay_small_for_every_list_size():
    for n in range(0, 40):
        for size in (400, 700, MAX_CHUNK_BYTES):
            chunks = snapshot([entry(i) for i in range(n)], max_bytes=size)
            assert all(len(c) <= size for c in chunks)
            assert len(assemble_snapshot(chunks).entries) == n


def test_an_entry_too_big_for_a_chunk_is_refused():
    huge = entry(1, doors=[f"D-{i:04}" for i in range(300)])
    with pytest.raises(ProtocolError, match="alone is over"):
        snapshot([entry(0), huge])


def test_a_malformed_entry_is_refused():
    with pytest.raises(ProtocolError, match="'h'"):
        snapshot([entry(1, h="XYZ")])
    with pytest.raises(ProtocolError, match="'flags'"):
        snapshot([entry(1, flags=["vip"])])


def test_the_future_request_deny_printed_in_docs_mqtt_md():
    req_id, exp = "01JF9X3K6T2Q8V0M7N5C4B1A2Z", 1767600125456
    assert protocol.decision_payload(req_id, "deny", "future_request", exp) == (
        b'{"v":1,"req_id":"01JF9X3K6T2Q8V0M7N5C4B1A2Z","result":"deny",'
        b'"reason":"future_request","exp":1767600125456}'
    )


def test_the_vectors_printed_in_docs_mqtt_md():
    assert credential_hash("04:a1:b2:c3", "k") == "bf0487d0f34975ab092729b5ac5d374c"
    assert allowlist_hash([], {}) == (
        "sha256:5504d92842438214e51ebe2326545b06545b1876fc8f75ddc35030c4f63ea7ba"
    )


def test_times_are_exact_milliseconds_since_1970_utc():
    from datetime import UTC, datetime, timedelta, timezone

    # A badge valid until 2038-08-15 15:00:50.430 UTC: as a float, timestamp() * 1000 is
    # …429.99 (past 2038 a double no longer holds the milliseconds exactly).
    moment = datetime(2038, 8, 15, 15, 0, 50, 430000, tzinfo=UTC)
    assert int(moment.timestamp() * 1000) == 2165497250429  # the float way, one short
    assert protocol.epoch_ms(moment) == 2165497250430
    paris = moment.astimezone(timezone(timedelta(hours=2)))
    assert protocol.epoch_ms(paris) == 2165497250430
    assert protocol.epoch_ms(moment + timedelta(microseconds=999)) == 2165497250430
    assert protocol.epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0


# --- the examples printed in docs/mqtt.md, each checked against the code that reads or sends it

DOCS_MQTT = Path(__file__).resolve().parents[2] / "docs" / "mqtt.md"
# A fenced block ```json <topic kind>, indented or not; the kind says what checks it.
FENCED_JSON = re.compile(
    r"^(?P<indent> *)```json(?P<kind>[^\n]*)\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)


def doc_examples() -> list[tuple[str, str]]:
    return [(m["kind"].strip(), m["body"]) for m in FENCED_JSON.finditer(DOCS_MQTT.read_text())]


def _decision(body: dict, line: bytes):
    extra = {k: body.get(k) for k in ("pulse_ms", "session_id", "lease_s")}
    args = (body["req_id"], body["result"], body["reason"], body["exp"])
    assert decision_payload(*args, **extra) == line


def _door_cmd(body: dict, line: bytes):
    protocol.parse_json(line)
    # As access.commands.unlock builds it.
    assert list(body) == ["v", "cmd", "pulse_ms", "exp", "req_id"] and body["cmd"] == "unlock"
    protocol.check_id(body["req_id"], "req_id")


def _door_desired(body: dict, line: bytes):
    from types import SimpleNamespace

    from access.commands import door_desired_payload
    from access.models import Door

    assert body["mode"] in Door.Mode.values
    door = SimpleNamespace(mode_version=body["ver"], mode=body["mode"])
    assert door_desired_payload(door) == line


def _site_mode(body: dict, line: bytes):
    from types import SimpleNamespace

    from access.commands import site_mode_payload

    mode = SimpleNamespace(version=body["ver"], lockdown=body["mode"] == "lockdown")
    assert site_mode_payload(mode) == line


def _power(sent: list):
    from access.power import Power

    return Power("campus/v1", lambda topic, payload: sent.append(payload), writer=None)


def _eq_cmd(body: dict, line: bytes):
    from types import SimpleNamespace

    sent = []
    machine = SimpleNamespace(controller_id="C-LAB1", code="EQ-CEM")
    _power(sent)._native(machine, body["cmd"], body.get("session_id"), body["lease_s"])
    assert sent == [line.replace(body["req_id"].encode(), json.loads(sent[0])["req_id"].encode())]


def _eq_session(body: dict, line: bytes):
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    sent, ts = [], datetime.fromtimestamp(body["ts"] / 1000, UTC)
    started = ts - timedelta(seconds=body["duration_s"])
    session = SimpleNamespace(pk=int(body["session_id"]), person=body["user"], started_at=started,
                              stopped_at=None, stop_reason=body.get("reason"),
                              energy_wh=body.get("energy_wh"))  # fmt: skip
    extra = {"ends": body["ends"]} if "ends" in body else {}
    _power(sent)._event(SimpleNamespace(code="EQ-CEM"), session, body["event"], ts, **extra)
    assert sent == [line]


def _hash_order(entries: list[dict]) -> list[dict]:
    """The order docs/mqtt.md gives: by h, then by canonical JSON compared as bytes."""
    return sorted(entries, key=lambda e: (e["h"], protocol.canonical_json(e)))


def _acl_push(body: dict, line: bytes, held: dict):
    from datetime import UTC, datetime

    from access.allowlists import AllowList, delta_message

    assert len(line) <= MAX_CHUNK_BYTES
    if body["type"] == "snapshot":
        snap = assemble_snapshot([line])
        assert list(snap.entries) == _hash_order(body["entries"]) == body["entries"]
        # Byte for byte what the backend sends for this list.
        assert snapshot_chunks(body["ver"], body["entries"], body["schedules"],
                               valid_until=body["valid_until"], tz=body["tz"],
                               tz_posix=body["tz_posix"]) == [line]  # fmt: skip
        held.update(ver=snap.ver, entries=list(snap.entries), schedules=snap.schedules)
        return
    assert body["type"] == "delta" and body["base"] == held["ver"]
    replaced = set(body["del"]) | {e["h"] for e in body["add"]}
    kept = [e for e in held["entries"] if e["h"] not in replaced]
    after = _hash_order(kept + [protocol.check_entry(e) for e in body["add"]])
    assert allowlist_hash(after, held["schedules"]) == body["hash"]
    old = AllowList(tuple(held["entries"]), held["schedules"])
    new = AllowList(tuple(after), held["schedules"])
    valid_until = datetime.fromtimestamp(body["valid_until"] / 1000, UTC)
    assert delta_message(body["ver"], body["base"], old, new, valid_until) == line


PARSED = {
    "status": parse_status,
    "backend_status": parse_status,
    "hb": parse_heartbeat,
    "log": parse_log,
    "door_scan": parse_scan,
    "eq_scan": parse_eq_scan,
    "door_event": parse_door_event,
    "door_cmd_ack": parse_cmd_ack,
    "acl_ack": parse_acl_ack,
    "eq_state": parse_eq_state,
}
REBUILT = {
    "door_decision": _decision,
    "eq_decision": _decision,
    "door_cmd": _door_cmd,
    "door_desired": _door_desired,
    "site_mode": _site_mode,
    "eq_cmd": _eq_cmd,
    "eq_session": _eq_session,
}


def test_every_json_example_in_docs_mqtt_md_names_the_message_it_is():
    examples = doc_examples()
    assert len(examples) > 30
    kinds = {kind for kind, _body in examples}
    assert kinds <= set(PARSED) | set(REBUILT) | {"acl_push"}, kinds
    assert kinds <= set(protocol.TOPICS), "a kind is a topic kind of access.protocol.TOPICS"


def test_every_json_example_in_docs_mqtt_md_is_a_valid_message(settings):
    settings.TASMOTA_PREFIX, settings.EQ_LEASE_S = "", 60
    held: dict = {}
    for kind, text in doc_examples():
        body = json.loads(text)
        line = protocol.encode(body)
        if kind in PARSED:
            PARSED[kind](line)
        elif kind == "acl_push":
            _acl_push(body, line, held)
        else:
            REBUILT[kind](body, line)
    assert held["ver"] == 1290


def test_docs_mqtt_md_shows_a_badge_with_several_entries_and_the_acks_of_a_delta():
    examples = doc_examples()
    pushes = [json.loads(t) for kind, t in examples if kind == "acl_push"]
    snapshot, delta = pushes[0], pushes[1]
    by_hash: dict = {}
    for e in snapshot["entries"]:
        by_hash.setdefault(e["h"], []).append(e)
    assert max(len(entries) for entries in by_hash.values()) >= 3
    acks = [parse_acl_ack(raw(json.loads(t))) for kind, t in examples if kind == "acl_ack"]
    assert {a.status for a in acks} == {"applied", "need_full", "rejected"}
    assert {a.ver for a in acks} == {delta["ver"]}, "an ack carries the ver of what it answers"
