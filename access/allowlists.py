"""Allow-lists for offline operation (docs/mqtt.md): what each controller may grant
from its cache when the backend does not answer, and how it is kept current.

The lists are built FROM THE DECISION FUNCTION (design invariant 3): for every badge and every
door of a controller, `access.decision.decide` is asked on the facts of the moment the right
would apply, and the grant's reason gives the entry's shape:
- `staff`, `override`, `tenant_office`: at any time (`sched` null); `override` flagged;
- `common_area`: asked with the door's schedule lifted, then bound to that schedule (named by
  its content, so that doors with the same hours share one);
- `booking`: asked at the booking's start (15 min early) with the schedule closed, so that only
  the booking can open; `vf`/`vu` are the booking window;
- `visitor`: asked within the pass window; `vf`/`vu` are the window.
Every entry is also bounded by the badge's own validity. A deny gives no entry, and lockdown
gives only `override` entries, because that is what `decide` says.

A badge may hold several entries (one per shape); entries are ordered by `h`, then by their
canonical JSON, and a delta replaces all entries of a hash at once (`del` removes them, `add`
carries every entry of a hash that changed).

One worker pushes (`Pusher.lead`): on PostgreSQL the holder of a session advisory lock per
topic root, the others standing by until its connection goes; on SQLite, run one worker. Other
workers' hooks (births, acks, heartbeats) only mark `AclState.resend` in the database, which
the pushing worker reads at its next tick.
"""

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import cache, cached_property
from importlib import resources

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, F, Max, Q, Sum

from access import changefeed, decision, protocol
from access.facts import Snapshot, person_facts
from access.models import AclState, Controller, locked_down
from bookings.models import ACTIVE, Booking
from campus import clock
from common.metrics import ACL_LAGGING

log = logging.getLogger(__name__)

LAG_RESEND = timedelta(seconds=60)
REBUILD_EVERY = timedelta(hours=1)
LAG_CHECK_EVERY = timedelta(seconds=5)
NEVER = []  # a schedule that never opens: only a booking can grant
NO_HASH = b'"h":""'  # in the canonical JSON of an entry shape, before the badge's hash


def valid_for() -> timedelta:
    return timedelta(hours=settings.ACL_VALID_HOURS)


def epoch_ms(moment: datetime | None) -> int:
    return protocol.epoch_ms(moment) if moment is not None else 0


@cache
def posix_tz(name: str) -> str:
    """The POSIX TZ rule of a zone (the last line of its TZif file), for devices that cannot
    hold the time-zone database: "CET-1CEST,M3.5.0,M10.5.0/3" for Europe/Paris."""
    try:
        data = resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        try:
            with open(f"/usr/share/zoneinfo/{name}", "rb") as f:
                data = f.read()
        except OSError:
            return ""
    return data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii", "replace")


def schedule_name(schedule) -> str:
    """Named by content: the same hours give the same name on every door and every build."""
    digest = hashlib.sha256(protocol.canonical_json([list(s) for s in schedule])).hexdigest()
    return "s" + digest[:10]


@dataclass(frozen=True)
class AllowList:
    """One controller's list: entries ordered by (h, canonical JSON) and the schedules they
    name, judged offline in `tz` (the controller's zone, access.facts.door_zones). `hash` is
    the protocol's canonical hash."""

    entries: tuple
    schedules: dict
    # The entries' canonical JSON, when the builder kept it: the hash without encoding again.
    canon: tuple | None = field(default=None, compare=False, repr=False)
    tz: str = field(default_factory=lambda: clock.building_tz().key)

    @cached_property
    def hash(self) -> str:
        if self.canon is None:
            return protocol.allowlist_hash(list(self.entries), self.schedules)
        return protocol.allowlist_hash_canonical(self.canon, self.schedules)

    def __len__(self):
        return len(self.entries)

    def by_hash(self) -> dict[str, list[dict]]:
        grouped: dict[str, list[dict]] = {}
        for entry in self.entries:
            grouped.setdefault(entry["h"], []).append(entry)
        return grouped


EMPTY = AllowList((), {})


# --- building ---------------------------------------------------------------------------------


def in_horizon(now: datetime, until: datetime):
    """Active bookings not ended at `now` that start before `until`. Asked as an overlap of
    their blocked time (which contains the booking) so that PostgreSQL answers from the range
    index: bounded as two comparisons, it read every booking that started before `until`,
    the whole past (~0.5 M rows at 1M bookings) every poll, for the fingerprint below."""
    return Booking.objects.blocking(now, until).filter(
        status__in=ACTIVE, end__gt=now, start__lt=until
    )


def upcoming_bookings(snap: Snapshot, now: datetime, until: datetime) -> dict:
    """Active bookings that may open a door before `until`, by person (one query)."""
    rows = (
        in_horizon(now, until + decision.DOOR_EARLY)
        .filter(person_id__isnull=False)
        .values_list("person_id", "status", "start", "end", "resource_id")
    )
    out: dict[int, list] = {}
    for person, status, start, end, resource in rows:
        space, machine = snap.resources.get(resource, (None, None))
        facts = decision.BookingFacts(space, start, end, status, machine)
        out.setdefault(person, []).append(facts)
    return out


def _door_variants(snap: Snapshot, doors) -> dict:
    """Per door, made once per build instead of once per question: its facts with the
    schedule lifted (None) and closed (NEVER), whether it is locked down, and its schedule
    as encoded (the key of a `common_area` entry's schedule)."""
    return {
        door.id: (
            replace(door.facts, schedule=None),
            replace(door.facts, schedule=NEVER),
            locked_down(snap.lockdown, door.mode),
            _sched_key(door.facts.schedule),
        )
        for door in doors
    }


def _grants(snap: Snapshot, badge, doors, now, until, bookings, variants):
    """(door, its schedule as encoded or None, vf, vu, flags) for every right `decide` gives."""
    cred = badge.facts
    start = max(now, cred.valid_from or now)
    end = min(until, cred.valid_until or until)
    if start >= end:
        return
    holder = snap.people.get(badge.holder_id) if badge.holder_id is not None else None
    tenant = leases = None
    qualifications = decision.TrainedFor()
    if holder is not None:
        tenant = snap.tenants.get(holder.tenant_id) if holder.tenant_id else None
        leases = snap.leases.get(holder.tenant_id, ()) if holder.tenant_id else ()
        qualifications = snap.qualifications.get(holder.pk, qualifications)
    bound_vf, bound_vu = epoch_ms(cred.valid_from), epoch_ms(cred.valid_until)
    moments: dict = {}

    def ask(at: datetime, door, variant, door_facts, held=()):
        # In the door's local time (its schedule, the holder's leases on that local day).
        if (at, door.zone) not in moments:
            local = clock.local_wall_clock(at, door.zone)
            person = person_facts(holder, tenant, leases, local.date()) if holder else None
            moments[at, door.zone] = local, person
        local, person = moments[at, door.zone]
        facts = decision.Facts(
            now=at,
            local_now=local,
            credential=cred,
            person=person,
            door=door_facts,
            bookings=held,
            qualifications=qualifications,
            visitor=badge.visitor,
            lockdown=variant[2],
        )
        return decision.decide(facts)

    def bounded(vf: int, vu: int) -> tuple[int, int]:
        vf = max(vf, bound_vf)
        vu = min(vu, bound_vu) if vu and bound_vu else vu or bound_vu
        return vf, vu

    at = start
    if badge.visitor is not None:
        at = max(start, badge.visitor.start)
    if at < end:
        for door in doors:
            variant = variants[door.id]
            answer = ask(at, door, variant, variant[0])
            if not answer.granted:
                continue
            reason, sched, vf, vu, flags = answer.reason, None, 0, 0, []
            if reason == "override":
                flags = ["override"]
            elif reason == "common_area":
                if door.facts.schedule is not None and not door.facts.schedule:
                    continue  # an empty schedule never opens
                sched = variant[3]
            elif reason == "visitor":
                vf, vu = epoch_ms(badge.visitor.start), epoch_ms(badge.visitor.end)
            elif reason not in ("staff", "tenant_office"):
                continue
            yield (door, sched, *bounded(vf, vu), flags)
    if holder is None:
        return
    for booking in bookings.get(holder.pk, ()):
        opens = booking.start - decision.DOOR_EARLY
        at = max(start, opens)
        if at >= min(end, booking.end):
            continue
        for door in doors:
            variant = variants[door.id]
            answer = ask(at, door, variant, variant[1], (booking,))
            if answer.reason == "booking":
                yield (door, None, *bounded(epoch_ms(opens), epoch_ms(booking.end)), [])


PERSON_FIELDS = tuple(changefeed.WATCHED["campus_person"])


def _inputs(snap: Snapshot, badge, bookings: dict, hour: datetime) -> tuple:
    """Everything a badge's grants depend on besides the doors (hashable), and nothing that
    names the badge: the same inputs give the same grants, so that badges alike (the members
    of one tenant) ask `decide` once, and a build after one change asks it again only for the
    badges the change touched. Within the hour: the time-dependent bounds travel in the
    entries (vf/vu)."""
    holder = snap.people.get(badge.holder_id) if badge.holder_id is not None else None
    person = quals = held = None
    if holder is not None:
        tenant = snap.tenants.get(holder.tenant_id) if holder.tenant_id else None
        leases = snap.leases.get(holder.tenant_id, ()) if holder.tenant_id else ()
        person = (
            tuple(getattr(holder, name) for name in PERSON_FIELDS),
            tenant and (tenant.pk, tenant.status, tenant.contract_start, tenant.contract_end),
            tuple(sorted((lease.space_id, lease.start, lease.end or date.max) for lease in leases)),
        )
        quals = snap.qualifications.get(holder.pk)
        held = tuple(bookings.get(holder.pk, ()))
    return (badge.facts, badge.visitor, person, quals, held, snap.lockdown, hour)


class Builder:
    """Every controller's allow-list, kept between builds (by the pushing worker) so that a
    change rebuilds only what it touched: each badge's entries by controller, with their
    canonical JSON (for the order and the hash), and each controller's list."""

    def __init__(self):
        self.grants: dict = {}  # inputs → [(controller, door, sched, vf, vu, flags)]
        self.shapes: dict = {}  # inputs → {controller: ((canonical JSON, entry), ...)}, no h
        self.badges: dict = {}  # h → (inputs, {controller: ((canonical JSON, entry), ...)})
        self.per_ctrl: dict[str, dict] = {}  # controller → {h: ((canonical JSON, entry), ...)}
        self.schedules: dict = {}  # name → slots
        self.sched_names: dict = {}  # schedule as encoded → name
        self.lists: dict[str, AllowList] = {}
        self.doors_key = None
        self.sent: dict = {}  # controller → ((version, hash), AllowList): what was pushed
        self.asked = 0  # badges whose grants were asked of `decide` (for the bench and tests)

    def _entries(self, h: str, shapes: dict) -> dict:
        """A badge's entries by controller, from the shapes of its inputs: the same entries
        with its hash (spliced into the canonical JSON: a badge's entries share one hash, so
        their order does not change)."""
        mark = b'"h":"' + h.encode() + b'"'
        return {
            ctrl: tuple((canon.replace(NO_HASH, mark, 1), {**e, "h": h}) for canon, e in items)
            for ctrl, items in shapes.items()
        }

    def _shapes(self, grants) -> dict:
        """The entries that `grants` give, by controller, with an empty hash: one per shape
        (sched, vf, vu, flags), ordered by canonical JSON."""
        shapes: dict = {}
        for ctrl, door_id, sched, vf, vu, flags in grants:
            shapes.setdefault(ctrl, {}).setdefault((sched, vf, vu, flags), []).append(door_id)
        out = {}
        for ctrl, by_shape in shapes.items():
            items = []
            for (sched_key, vf, vu, flags), door_ids in by_shape.items():
                name = None
                if sched_key is not None:
                    name = self.sched_names.get(sched_key)
                    if name is None:
                        slots = [list(s) for s in json.loads(sched_key)]
                        name = self.sched_names[sched_key] = schedule_name(slots)
                        self.schedules[name] = slots
                entry = {"h": "", "doors": sorted(set(door_ids)), "sched": name, "vf": vf}
                entry["vu"], entry["flags"] = vu, list(flags)
                items.append((protocol.canonical_json(entry), entry))
            out[ctrl] = tuple(sorted(items, key=lambda item: item[0]))
        return out

    def build(self, snap: Snapshot, now: datetime, bookings: dict | None = None) -> dict:
        until = now + valid_for()
        if bookings is None:
            bookings = upcoming_bookings(snap, now, until)
        doors = sorted(snap.doors.values(), key=lambda d: (d.controller, d.id))
        doors_key = protocol.encode(
            [
                [d.controller, d.id, d.mode, d.facts.kind, d.facts.space_id, d.facts.schedule]
                for d in doors
            ]
            + [[d.facts.bookable for d in doors], [d.zone.key for d in doors]]
        )
        if doors_key != self.doors_key:  # the doors changed: every badge again
            self.__init__()
            self.doors_key = doors_key
            self.per_ctrl = {d.controller: {} for d in doors}
        variants = None
        hour = now.replace(minute=0, second=0, microsecond=0)
        fresh_grants: dict = {}
        fresh_shapes: dict = {}
        touched: set[str] = set()
        for h, badge in snap.badges.items():
            key = _inputs(snap, badge, bookings, hour)
            known = self.badges.get(h)
            grants = fresh_grants.get(key)
            if grants is None:
                grants = self.grants.get(key)
                if grants is None:
                    if variants is None:
                        variants = _door_variants(snap, doors)
                    self.asked += 1
                    grants = [
                        (door.controller, door.id, sched, vf, vu, tuple(flags))
                        for door, sched, vf, vu, flags in _grants(
                            snap, badge, doors, now, until, bookings, variants
                        )
                    ]
                fresh_grants[key] = grants
            if known is not None and known[0] == key:
                continue
            shapes = fresh_shapes.get(key)
            if shapes is None:
                shapes = fresh_shapes[key] = self.shapes.get(key) or self._shapes(grants)
            entries = self._entries(h, shapes)
            before = known[1] if known is not None else {}
            self.badges[h] = (key, entries)
            for ctrl in before.keys() | entries.keys():
                if before.get(ctrl) != entries.get(ctrl):
                    touched.add(ctrl)
                    if ctrl in entries:
                        self.per_ctrl[ctrl][h] = entries[ctrl]
                    else:
                        self.per_ctrl[ctrl].pop(h, None)
        for h in self.badges.keys() - snap.badges.keys():  # badges deleted
            for ctrl in self.badges.pop(h)[1]:
                touched.add(ctrl)
                self.per_ctrl[ctrl].pop(h, None)
        self.grants = fresh_grants
        self.shapes = {key: shapes for key, shapes in fresh_shapes.items() if key in fresh_grants}
        for ctrl, held in self.per_ctrl.items():
            if ctrl in touched or ctrl not in self.lists:
                items = [item for h in sorted(held) for item in held[h]]
                names = {entry["sched"] for _canon, entry in items if entry["sched"]}
                self.lists[ctrl] = AllowList(
                    tuple(entry for _canon, entry in items),
                    {name: self.schedules[name] for name in sorted(names)},
                    tuple(canon for canon, _entry in items),
                    snap.zones.get(ctrl, clock.building_tz()).key,
                )
        return dict(self.lists)


def _sched_key(schedule):
    return None if schedule is None else protocol.encode(list(schedule))


def build_all(
    snap: Snapshot, now: datetime, bookings: dict | None = None, memo: Builder | None = None
) -> dict:
    """Every controller's allow-list, from the facts snapshot and the upcoming bookings.
    `memo` (kept by the caller between builds) rebuilds only what changed since its last."""
    return (memo if memo is not None else Builder()).build(snap, now, bookings)


# --- pushing ----------------------------------------------------------------------------------


def snapshot_messages(ver: int, acl: AllowList, valid_until: datetime) -> list[bytes]:
    return protocol.snapshot_chunks(
        ver,
        list(acl.entries),
        acl.schedules,
        valid_until=epoch_ms(valid_until),
        tz=acl.tz,
        tz_posix=posix_tz(acl.tz),
        canon=acl.canon,
    )


def delta_message(ver: int, base: int, old: AllowList, new: AllowList, valid_until) -> bytes:
    """add/del by hash between two lists with the same schedules."""
    before, after = old.by_hash(), new.by_hash()
    changed = sorted(h for h, items in after.items() if before.get(h) != items)
    body = {
        "v": protocol.VERSION,
        "type": "delta",
        "ver": ver,
        "base": base,
        "add": [e for h in changed for e in after[h]],
        "del": sorted(set(before) - set(after)),
        "hash": new.hash,
        "valid_until": epoch_ms(valid_until),
    }
    return protocol.encode(body)


def prepare(
    state: AclState,
    acl: AllowList,
    now: datetime,
    root: str,
    *,
    full: bool,
    reported: int | None = -1,
    sent: dict | None = None,
) -> tuple[str, str, list[bytes]]:
    """The messages that send `acl`: a delta on the last list sent when the device follows,
    else a snapshot; `state` is updated to record them (not saved). Returns (kind,
    topic, messages).

    `reported`: the version the controller last reported (read here when not given); `sent`:
    the lists this worker sent, by controller, so that the base of a delta is not read back
    from the database (it is when the record moved since: another worker pushed)."""
    valid_until = now + valid_for()
    if reported == -1:
        reported = (
            Controller.objects.filter(pk=state.controller_id)
            .values_list("acl_version", flat=True)
            .first()
        )
    ver = max(state.version, reported or 0) + 1
    messages = None
    # The device follows when it applied a version, or while the last push is in flight: the
    # messages of one topic arrive in order, so a delta sent just after a snapshot (before its
    # ack came back) lands on it; a device without that base answers need_full.
    follows = state.acked_version or (state.sent_at and now - state.sent_at < LAG_RESEND)
    if not full and follows and state.version and state.schedules == acl.schedules:
        old = (sent or {}).get(state.controller_id)
        if old is None or old[0] != (state.version, state.hash):
            old = None, AllowList(tuple(state.entries), state.schedules)
        delta = delta_message(ver, state.version, old[1], acl, valid_until)
        # A big change (a whole tenant leaving) goes out as a chunked snapshot instead.
        if len(delta) <= protocol.MAX_CHUNK_BYTES:
            messages, kind = [delta], "delta"
    if messages is None:
        messages, kind = snapshot_messages(ver, acl, valid_until), "snapshot"
    state.version, state.entries, state.schedules = ver, list(acl.entries), acl.schedules
    state.hash, state.valid_until, state.sent_at, state.resend = acl.hash, valid_until, now, False
    if sent is not None:
        sent[state.controller_id] = (ver, acl.hash), acl
    return kind, protocol.topic("acl_push", root, ctrl=state.controller_id), messages


# What `prepare` sets, but `resend`: `acked_version` and `resend` are also written by the hooks
# below (the writer thread of any worker) while a round runs, and must not be overwritten.
PUSHED_FIELDS = ("version", "entries", "schedules", "hash", "valid_until", "sent_at")


def record(state: AclState, *, snapshot: bool) -> bool:
    """Save a push that `prepare` made from `state` as it was read. A snapshot clears
    `resend` (it answers any request for the whole list); a delta is saved only if nobody asked
    for the whole list since the state was read (a `rejected` or `need_full` ack, a birth, a
    lag): otherwise nothing is saved and the answer is False, so that the request wins over
    the round's copy."""
    if state._state.adding:
        state.save()
        return True
    fields = {name: getattr(state, name) for name in PUSHED_FIELDS}
    rows = AclState.objects.filter(pk=state.pk)
    if snapshot:
        rows.update(resend=False, **fields)
        return True
    return bool(rows.filter(resend=False).update(**fields))


def sync(snap: Snapshot, now: datetime, publish, root: str, memo: Builder | None = None) -> dict:
    """Build every list; push what changed, what a device asked for again, and renewals of
    `valid_until` (every REBUILD_EVERY). Returns counts of pushes by kind.

    The lists sent are not read back (`entries` deferred): with a `memo`, the base of a delta
    is the list this worker sent, when the record still names it. Every push is recorded in
    one transaction (one commit, not one per controller) before anything is published: an
    ack can come back at once. A request for the whole list recorded meanwhile (`record`)
    turns that controller's delta into a snapshot."""
    memo = memo if memo is not None else Builder()
    lists = build_all(snap, now, memo=memo)
    states = {s.controller_id: s for s in AclState.objects.defer("entries")}
    renew_before = now + valid_for() - REBUILD_EVERY
    counts = {"delta": 0, "snapshot": 0}
    active = Controller.objects.filter(is_active=True).values_list("pk", "acl_version")
    outgoing = []
    for ctrl, reported in active:
        acl = lists.get(ctrl, EMPTY)
        state = states.get(ctrl)
        if state is None:
            state = AclState(controller_id=ctrl, resend=True)
        stale = state.valid_until is None or state.valid_until <= renew_before
        if state.resend or acl.hash != state.hash or stale:
            full = state.resend
            sending = prepare(state, acl, now, root, full=full, reported=reported, sent=memo.sent)
            outgoing.append([state, acl, reported, *sending])
    try:
        with transaction.atomic():
            for push in outgoing:
                state, acl, reported, kind = push[:4]
                if not record(state, snapshot=kind == "snapshot"):
                    # Asked for the whole list while this round prepared a delta (a device
                    # that rejected the last one holds no base for it): the whole list now.
                    push[3:] = prepare(
                        state, acl, now, root, full=True, reported=reported, sent=memo.sent
                    )
                    record(state, snapshot=True)
    except Exception:
        memo.sent.clear()  # not recorded: the next build starts from the database
        raise
    for state, acl, _reported, kind, topic, messages in outgoing:
        size = len(acl)
        for payload in messages:
            publish(topic, payload)
        counts[kind] += 1
        log.info("allow-list %s v%d to %s (%d entries)", kind, state.version, topic, size)
    return counts


# --- hooks called by the bridge (any worker; database writes only) ------------------------------


def note_birth(ctrl: str, acl_ver: int | None, seen_at: datetime | None = None):
    """A controller came online: a snapshot unless it holds what we sent, or unless a push
    went out after the birth was received at `seen_at` (a retained birth read at the bridge's
    connection, noted after the first push): that push already answered it, and a device
    that did not follow answers a delta with need_full."""
    states = AclState.objects.filter(controller_id=ctrl)
    if acl_ver is not None:
        states = states.exclude(version=acl_ver, hash__gt="")
    if seen_at is not None:
        states = states.exclude(sent_at__gt=seen_at)
    states.update(resend=True)


def note_ack(ctrl: str, ack: protocol.AclAck):
    if ack.status == "applied":
        AclState.objects.filter(controller_id=ctrl, version__gte=ack.ver).update(
            acked_version=ack.ver
        )
    else:  # need_full, rejected (hash_mismatch): the whole list again
        log.warning("controller %s answered %s (%s) to v%s", ctrl, ack.status, ack.why, ack.ver)
        AclState.objects.filter(controller_id=ctrl).update(resend=True)


def behind():
    """The lists of online controllers that do not report holding the version last sent."""
    return AclState.objects.filter(controller__online=True).filter(
        Q(controller__acl_version__isnull=True) | ~Q(controller__acl_version=F("version"))
    )


def mark_lagging(now: datetime) -> set[str]:
    """Online controllers whose reported version lags what was sent 60 s ago: a snapshot for
    each (asked once). Their ids."""
    lagging = set(behind().filter(sent_at__lt=now - LAG_RESEND).values_list("pk", flat=True))
    AclState.objects.filter(pk__in=lagging, resend=False).update(resend=True)
    return lagging


def bookings_fingerprint(now: datetime):
    """Bookings are not in the change feed (they change all day): a new or cancelled booking
    in the lists' horizon changes this."""
    return tuple(
        in_horizon(now, now + valid_for() + decision.DOOR_EARLY)
        .aggregate(n=Count("id"), s=Sum("id"), c=Max("created_at"))
        .values()
    )


class Pusher:
    """The bridge's allow-list duty, ticked by its refresher after each poll of the change
    feed. Only the leader pushes; see the module docstring."""

    def __init__(self, publish, root: str):
        self.publish = publish
        self.root = root
        self.leading_on = None  # the database connection holding the lock
        self.built_at = None
        self.lag_checked_at = None
        # Controllers found lagging, until they report the version sent (or go offline): the
        # snapshot sent to one restarts the 60 s, and it lags still.
        self.lagging: set[str] = set()
        self.version = None
        self.bookings = None
        self.counts = {"delta": 0, "snapshot": 0}
        self.memo = Builder()

    def lead(self) -> bool:
        if connection.vendor != "postgresql":
            return True  # SQLite: one worker only
        connection.ensure_connection()
        if self.leading_on is connection.connection:
            return True
        key = int.from_bytes(hashlib.sha256(b"acl:" + self.root.encode()).digest()[:8], "big")
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key - 2**63])
            got = cursor.fetchone()[0]
        self.leading_on = connection.connection if got else None
        if got:
            log.info("this worker pushes the allow-lists")
            self.built_at = None
        return got

    def warm(self, snap: Snapshot | None, now: datetime):
        """Build every list ahead of the first push (at start, while the broker connects), if
        this worker pushes."""
        if snap is not None and self.lead():
            build_all(snap, now, memo=self.memo)

    def tick(self, snap: Snapshot | None, now: datetime) -> bool:
        """Push what changed, if anything is due; True when it built the lists."""
        if snap is None:
            return False
        if not self.lead():
            if self.lagging:  # another worker counts them now
                self.lagging = set()
                ACL_LAGGING.set(0)
            return False
        if self.lag_checked_at is None or now - self.lag_checked_at >= LAG_CHECK_EVERY:
            self.lag_checked_at = now
            found = self.lagging | mark_lagging(now)
            self.lagging = set(behind().filter(pk__in=found).values_list("pk", flat=True))
            ACL_LAGGING.set(len(self.lagging))
        bookings = bookings_fingerprint(now)
        due = (
            self.built_at is None
            or now - self.built_at >= REBUILD_EVERY
            or snap.version != self.version
            or bookings != self.bookings
            or AclState.objects.filter(resend=True).exists()
        )
        if not due:
            return False
        try:
            counts = sync(snap, now, self.publish, self.root, self.memo)
        except DatabaseError:
            raise
        except Exception:  # a bad row must not stop the refresher: logged, tried next tick
            log.exception("cannot push the allow-lists")
            return True
        self.built_at, self.version, self.bookings = now, snap.version, bookings
        for kind, n in counts.items():
            self.counts[kind] += n
        return True

    def close(self):
        """Release the lock with the connection, so another worker takes over at once."""
        if self.leading_on is not None:
            self.leading_on = None
            connection.close()
