"""Badges, visitor passes, controllers, doors, the site mode and the append-only audit log."""

import base64
import functools
import hashlib
import json
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import connections, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from access import decision, protocol
from access.mqtt import broker_from_url
from campus import clock
from campus.models import Lease, Person, Space
from common.errors import Conflict, Forbidden, Invalid

validate_device_id = RegexValidator(
    rf"\A{protocol.ID_PATTERN.pattern}\Z",
    _("Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."),
)
validate_uid_hash = RegexValidator(
    rf"\A{protocol.HASH_PATTERN.pattern}\Z",
    _("A credential hash is 32 lower-case hexadecimal characters."),
)


def validate_schedule(value):
    if value is None:
        return
    try:
        decision.parse_schedule(value)
    except ValueError as e:
        raise ValidationError(
            _("Invalid weekly schedule: %(error)s"), params={"error": e}, code="schedule"
        ) from None


# --- Mosquitto passwords ---------------------------------------------------------------------

MOSQUITTO_ITERATIONS = 101  # what mosquitto_passwd uses; checked against mosquitto 2.0
MOSQUITTO_SALT_BYTES = 12


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """A password in Mosquitto 2's own format: `$7$<iterations>$<b64 salt>$<b64 PBKDF2-SHA512>`."""
    salt = secrets.token_bytes(MOSQUITTO_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, MOSQUITTO_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${MOSQUITTO_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


# --- visitors and badges ---------------------------------------------------------------------


class VisitorPass(models.Model):
    """A visitor expected by a host: who, when, and the space visited (if any).

    The visitor's badge is a Credential of kind "visitor" pointing here; during the window it
    opens the perimeter and the visited space (access.decision).
    """

    visitor_name = models.CharField(_("visitor"), max_length=160)
    visitor_company = models.CharField(_("company"), max_length=160, blank=True)
    host = models.ForeignKey(
        Person, models.PROTECT, related_name="hosted_visits", verbose_name=_("host")
    )
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    space = models.ForeignKey(
        Space,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="visitor_passes",
        verbose_name=_("space visited"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("visitor pass")
        verbose_name_plural = _("visitor passes")
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="visitor_pass_ends_after_start",
                violation_error_message=_("A visit must end after it starts."),
            ),
        ]

    def __str__(self):
        return f"{self.visitor_name} ({self.start:%Y-%m-%d})"

    def clean(self):
        errors = {}
        if self.host_id and not self.host.is_active:
            errors["host"] = _("The host must be an active person.")
        # A host may send a visitor into their own tenant's office, never into another's.
        if (
            self.space_id
            and self.host_id
            and self.start
            and self.space.kind in Space.LEASABLE_KINDS
        ):
            host = self.host
            staff = host.is_facility_staff or host.is_superuser
            site_zone = Space.objects.filter(pk=self.space_id).values_list(
                clock.ZONE_OF_SPACE, flat=True
            )
            day = clock.today(clock.zone(site_zone.first()), self.start)
            leased = Lease.objects.filter(tenant_id=host.tenant_id, space_id=self.space_id)
            if not staff and not any(lease.covers(day) for lease in leased):
                errors["space"] = _("The host's tenant does not lease this space.")
        if errors:
            raise ValidationError(errors)

    def to_facts(self) -> decision.VisitorFacts:
        return decision.VisitorFacts(self.start, self.end, self.space_id)


class Credential(models.Model):
    """A badge, known only by the HMAC of its UID (protocol v1 `cred.h`), never the UID itself.

    A person's badge has a holder; a visitor badge has a visitor pass; a spare badge or a master
    card kept in a key box may have neither. `override` marks staff master cards: they open every
    door, lockdown included, and are the only ones the offline cache still honours after its
    `valid_until`.
    """

    class Kind(models.TextChoices):
        BADGE = "badge", _("badge")
        VISITOR = "visitor", _("visitor badge")

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")
        LOST = "lost", _("lost")
        RETURNED = "returned", _("returned")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.BADGE)
    uid_hash = models.CharField(
        _("UID hash"),
        max_length=32,
        unique=True,
        validators=[validate_uid_hash],
        help_text=_("HMAC of the badge UID under the site's credential key; the UID is not kept."),
    )
    uid_hint = models.CharField(
        _("UID ends with"), max_length=4, blank=True, help_text=_("Last 4 hex digits of the UID.")
    )
    label = models.CharField(
        _("label"), max_length=40, blank=True, help_text=_("Number printed on the badge.")
    )
    holder = models.ForeignKey(
        Person,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="credentials",
        verbose_name=_("holder"),
    )
    visitor_pass = models.OneToOneField(
        VisitorPass,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="credential",
        verbose_name=_("visitor pass"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    valid_from = models.DateTimeField(_("valid from"), null=True, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    override = models.BooleanField(
        _("master card"),
        default=False,
        help_text=_("Opens every door, also during a lockdown. Facility staff only."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("credential")
        verbose_name_plural = _("credentials")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["badge", "visitor"]),
                name="credential_kind_valid",
                violation_error_message=_("Unknown kind of credential."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended", "lost", "returned"]),
                name="credential_status_valid",
                violation_error_message=_("Unknown credential status."),
            ),
            models.CheckConstraint(
                condition=Q(uid_hash__regex=r"^[0-9a-f]{32}$"),
                name="credential_uid_hash_format",
                violation_error_message=_(
                    "A credential hash is 32 lower-case hexadecimal characters."
                ),
            ),
            models.CheckConstraint(
                condition=(Q(kind="visitor") & Q(visitor_pass__isnull=False, holder__isnull=True))
                | (Q(kind="badge") & Q(visitor_pass__isnull=True)),
                name="credential_visitor_has_pass",
                violation_error_message=_(
                    "A visitor badge belongs to a visitor pass and to no person; "
                    "a person's badge has no visitor pass."
                ),
            ),
            models.CheckConstraint(
                condition=Q(override=False) | Q(kind="badge"),
                name="credential_override_is_a_badge",
                violation_error_message=_("A visitor badge cannot be a master card."),
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_until__isnull=True)
                | Q(valid_until__gt=F("valid_from")),
                name="credential_validity_ordered",
                violation_error_message=_(
                    "A credential must be valid until after it is valid from."
                ),
            ),
        ]

    def __str__(self):
        who = self.holder or self.visitor_pass or _("unassigned")
        return f"…{self.uid_hint or self.uid_hash[:6]} ({who})"

    @staticmethod
    def hash_uid(uid: str) -> str:
        """The hash a reader sends for this UID; ValueError if the UID is not hex."""
        return protocol.credential_hash(uid, settings.CREDENTIAL_KEY)

    def set_uid(self, uid: str):
        """Store the hash and the 4-digit hint of a UID read from the badge; the UID is dropped."""
        self.uid_hash = self.hash_uid(uid)
        self.uid_hint = protocol.uid_hint(uid)

    def register_uid(self, uid: str):
        """Take a new badge's UID: hash it in, refuse one that is not hex (`Invalid`) or already
        registered (`Conflict` already_registered). Messages never repeat the UID."""
        try:
            self.set_uid(uid)
        except ValueError:
            raise Invalid(str(_("A UID is whole bytes in hexadecimal.")), field="uid") from None
        if Credential.objects.filter(uid_hash=self.uid_hash).exclude(pk=self.pk).exists():
            raise Conflict(str(_("This badge is already registered.")), code="already_registered")

    def clean(self):
        errors = {}
        # Master cards open everything, lockdown included: only facility staff may hold one.
        if (
            self.override
            and self.holder_id
            and not (self.holder.is_facility_staff or self.holder.is_superuser)
        ):
            errors["override"] = _("Only facility staff may hold a master card.")
        if self.visitor_pass_id:
            visit = self.visitor_pass
            self.valid_from = self.valid_from or visit.start
            self.valid_until = self.valid_until or visit.end
            if self.valid_from < visit.start or self.valid_until > visit.end:
                errors["valid_until"] = _("A visitor badge is valid only during the visit.")
        if errors:
            raise ValidationError(errors)

    # Where a badge may go from each status. A returned badge is registered again instead.
    TRANSITIONS = {
        Status.ACTIVE: (Status.SUSPENDED, Status.LOST, Status.RETURNED),
        Status.SUSPENDED: (Status.ACTIVE, Status.LOST, Status.RETURNED),
        Status.LOST: (Status.ACTIVE, Status.RETURNED),
        Status.RETURNED: (),
    }

    def change_status(self, status: str, *, actor: Person | None, via: str, why: str = "") -> bool:
        """Move the badge to `status` and log who and why; False if it already was there.

        A conditional update, so that two staff acting at once cannot both "win" from a stale
        read; a move the table does not allow raises ValueError.
        """
        allowed_from = [s for s, targets in self.TRANSITIONS.items() if status in targets]
        with transaction.atomic():
            moved = Credential.objects.filter(pk=self.pk, status__in=allowed_from).update(
                status=status
            )
            self.refresh_from_db(fields=["status"])
            if not moved:
                if self.status == status:
                    return False
                raise ValueError(f"a {self.status} badge cannot become {status}")
            record_rights_change(self, status, actor=actor, via=via, why=why, changed=["status"])
        return True

    def to_facts(self) -> decision.CredentialFacts:
        return decision.CredentialFacts(
            status=self.status,
            kind=self.kind,
            override=self.override,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
        )


# --- controllers and doors -------------------------------------------------------------------


class Controller(models.Model):
    """A door or equipment controller on MQTT. Its id is its MQTT user name and its topic level
    (campus/v1/ctrl/{id}/…), so that the broker's ACL confines it to its own subtree.

    Only the Mosquitto hash of its MQTT password is kept (`set_mqtt_password`): enough to write
    the broker's password file again at any time, never enough to log in as the device.
    """

    id = models.CharField(_("id"), max_length=64, primary_key=True, validators=[validate_device_id])
    name = models.CharField(_("name"), max_length=120)
    is_active = models.BooleanField(
        _("in service"), default=True, help_text=_("Out of service: no MQTT login.")
    )
    online = models.BooleanField(_("online"), default=False, editable=False)
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True, editable=False)
    last_heartbeat = models.DateTimeField(
        _("last heartbeat"), null=True, blank=True, editable=False
    )
    firmware = models.CharField(_("firmware"), max_length=64, blank=True, editable=False)
    acl_version = models.PositiveBigIntegerField(
        _("allow-list version applied"), null=True, blank=True, editable=False
    )
    mqtt_password_hash = models.CharField(
        _("MQTT password hash"), max_length=200, blank=True, editable=False
    )
    mqtt_password_set_at = models.DateTimeField(
        _("MQTT password set"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("controller")
        verbose_name_plural = _("controllers")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(id=""),
                name="controller_id_not_empty",
                violation_error_message=_("A controller needs an id."),
            ),
        ]

    def __str__(self):
        return f"{self.id} — {self.name}"

    def clean(self):
        if self.id and self.id == backend_mqtt_user():
            raise ValidationError({"id": _("This id is the backend's MQTT login.")})

    def set_mqtt_password(self) -> str:
        """Give the controller a new random MQTT password; returned once, kept as a hash.

        Run `manage.py mosquitto_config` afterwards so that the broker learns it.
        """
        plaintext = secrets.token_urlsafe(24)
        self.mqtt_password_hash = mosquitto_hash(plaintext)
        self.mqtt_password_set_at = timezone.now()
        if not self._state.adding:
            self.save(update_fields=["mqtt_password_hash", "mqtt_password_set_at"])
        return plaintext


def backend_mqtt_user() -> str:
    """The backend's MQTT login, from settings.MQTT_URL (empty without one)."""
    try:
        return broker_from_url(settings.MQTT_URL).username
    except ValueError:
        return ""


class DoorKind(models.TextChoices):
    """Which access rules apply at a door (access.decision)."""

    PERIMETER = "perimeter", _("perimeter")
    FLOOR = "floor", _("floor")
    OFFICE = "office", _("office")
    LAB = "lab", _("lab")
    TECHNICAL = "technical", _("technical room")
    COMMON = "common", _("common area")


def locked_down(site_lockdown: bool, door_mode: str) -> bool:
    """The lockdown rule for one door (a model row or the bridge's in-memory copy): the whole
    site's lockdown, or the door's own mode."""
    return site_lockdown or door_mode == "lockdown"


class Door(models.Model):
    """A door wired to a controller. Its kind picks the access rules; its schedule (the
    protocol's weekly list, in building-local time, empty = never, null = always) is when tenant
    members pass it; `mode` is the desired state the controller receives, retained and versioned.
    """

    Kind = DoorKind

    class Direction(models.TextChoices):
        IN = "in", _("entry")
        OUT = "out", _("exit")
        BOTH = "both", _("entry and exit")

    class Mode(models.TextChoices):
        NORMAL = "normal", _("normal")
        PASSAGE = "passage", _("held open")
        LOCKDOWN = "lockdown", _("lockdown")

    id = models.CharField(_("id"), max_length=64, primary_key=True, validators=[validate_device_id])
    name = models.CharField(_("name"), max_length=120)
    controller = models.ForeignKey(
        Controller, models.PROTECT, related_name="doors", verbose_name=_("controller")
    )
    space = models.ForeignKey(
        Space,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="doors",
        verbose_name=_("space"),
        help_text=_("The space this door leads into."),
    )
    kind = models.CharField(_("kind"), max_length=12, choices=DoorKind.choices)
    schedule = models.JSONField(
        _("schedule"),
        null=True,
        blank=True,
        validators=[validate_schedule],
        help_text=_(
            'When tenants may pass, in local time: [[1, "07:00", "20:00"], …] with 1 = Monday. '
            "Empty: at any time; []: never."
        ),
    )
    pulse_ms = models.PositiveIntegerField(
        _("unlock pulse (ms)"), default=4000, help_text=_("How long a grant releases the lock.")
    )
    direction = models.CharField(
        _("reader direction"),
        max_length=4,
        choices=Direction.choices,
        blank=True,
        help_text=_("Perimeter doors only: which way the reader counts people."),
    )
    mode = models.CharField(
        _("mode"), max_length=10, choices=Mode.choices, default=Mode.NORMAL, editable=False
    )
    mode_version = models.PositiveBigIntegerField(_("mode version"), default=0, editable=False)
    is_active = models.BooleanField(_("in service"), default=True)

    class Meta:
        verbose_name = _("door")
        verbose_name_plural = _("doors")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=DoorKind.values),
                name="door_kind_valid",
                violation_error_message=_("Unknown kind of door."),
            ),
            models.CheckConstraint(
                condition=Q(mode__in=["normal", "passage", "lockdown"]),
                name="door_mode_valid",
                violation_error_message=_("Unknown door mode."),
            ),
            models.CheckConstraint(
                condition=Q(pulse_ms__gte=100) & Q(pulse_ms__lte=60000),
                name="door_pulse_range",
                violation_error_message=_("The unlock pulse lasts 100 ms to 60 s."),
            ),
            models.CheckConstraint(
                condition=(Q(kind="perimeter") & Q(direction__in=["in", "out", "both"]))
                | (~Q(kind="perimeter") & Q(direction="")),
                name="door_direction_only_on_perimeter",
                violation_error_message=_(
                    "A perimeter door says which way its reader counts; other doors do not."
                ),
            ),
            models.CheckConstraint(
                condition=~Q(kind="perimeter") | Q(space__isnull=True),
                name="door_perimeter_has_no_space",
                violation_error_message=_("A perimeter door leads into the building, not a space."),
            ),
        ]

    def __str__(self):
        return f"{self.id} — {self.name}"

    # Door kind → the kinds of space it may lead into (None: no space needed).
    SPACE_KINDS = {
        DoorKind.OFFICE: Space.LEASABLE_KINDS,
        DoorKind.LAB: (Space.Kind.LAB,),
        DoorKind.TECHNICAL: (Space.Kind.TECHNICAL,),
        DoorKind.COMMON: (
            Space.Kind.COMMON,
            Space.Kind.MEETING_ROOM,
            Space.Kind.AUDITORIUM,
            Space.Kind.DESK,
        ),
        DoorKind.FLOOR: (Space.Kind.COMMON,),
    }

    def clean(self):
        allowed = self.SPACE_KINDS.get(self.kind)
        if self.kind in (DoorKind.OFFICE, DoorKind.LAB, DoorKind.TECHNICAL) and not self.space_id:
            raise ValidationError({"space": _("This kind of door needs the space it leads into.")})
        if self.space_id and allowed is not None and self.space.kind not in allowed:
            raise ValidationError(
                {
                    "space": _("A %(door)s door cannot lead into a %(space)s.")
                    % {"door": self.get_kind_display(), "space": self.space.get_kind_display()}
                }
            )

    def to_facts(self) -> decision.DoorFacts:
        return decision.DoorFacts(self.kind, self.space_id, self.schedule)

    def set_mode(self, mode: str, *, actor: Person | None = None, why: str = "") -> int:
        """Change the desired mode; the version grows so that devices apply only the latest."""
        if mode not in self.Mode.values:
            raise ValueError(f"unknown door mode {mode!r}")
        with transaction.atomic():
            Door.objects.filter(pk=self.pk).update(mode=mode, mode_version=F("mode_version") + 1)
            self.refresh_from_db(fields=["mode", "mode_version"])
            AuditEvent.objects.create(
                kind=AuditEvent.Kind.COMMAND,
                controller=self.controller_id,
                door=self.pk,
                result=mode,
                reason="door_mode",
                actor=actor,
                detail={"ver": self.mode_version, **({"why": why} if why else {})},
            )
        return self.mode_version


class SiteMode(models.Model):
    """The whole site's mode, one row: lockdown on or off, versioned for the retained
    `site/mode` message. In lockdown only master cards open and remote unlocks are refused."""

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    lockdown = models.BooleanField(_("lockdown"), default=False)
    version = models.PositiveBigIntegerField(_("version"), default=0, editable=False)
    changed_at = models.DateTimeField(_("changed"), null=True, blank=True, editable=False)
    changed_by = models.ForeignKey(
        Person,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("changed by"),
    )

    class Meta:
        verbose_name = _("site mode")
        verbose_name_plural = _("site mode")
        constraints = [
            models.CheckConstraint(
                condition=Q(id=1),
                name="site_mode_singleton",
                violation_error_message=_("There is only one site mode."),
            ),
        ]

    def __str__(self):
        return str(_("lockdown")) if self.lockdown else str(_("normal"))

    @classmethod
    def current(cls) -> "SiteMode":
        return cls.objects.get_or_create(pk=cls.SINGLETON)[0]

    @classmethod
    def set_lockdown(cls, on: bool, *, actor: Person | None = None, why: str = "") -> "SiteMode":
        """Turn lockdown on or off, bump the version and log who did it; no-op if unchanged."""
        with transaction.atomic():
            cls.objects.get_or_create(pk=cls.SINGLETON)
            mode = cls.objects.select_for_update().get(pk=cls.SINGLETON)
            if mode.lockdown == on:
                return mode
            mode.lockdown = on
            mode.version += 1
            mode.changed_at = timezone.now()
            mode.changed_by = actor
            mode.save()
            AuditEvent.objects.create(
                kind=AuditEvent.Kind.LOCKDOWN,
                result="on" if on else "off",
                actor=actor,
                detail={"ver": mode.version, **({"why": why} if why else {})},
            )
        return mode


# --- allow-lists -----------------------------------------------------------------------------


class AclState(models.Model):
    """What the backend last pushed to one controller's allow-list (access.allowlists): the
    version, the entries and schedules it holds after that push, and their hash, so that the
    next change goes out as a delta against it. `acked_version` is the last version the device
    answered `applied` to; `resend` asks the pushing worker for a full snapshot."""

    controller = models.OneToOneField(
        Controller, models.CASCADE, primary_key=True, related_name="acl_state"
    )
    version = models.PositiveBigIntegerField(_("version sent"), default=0)
    entries = models.JSONField(_("entries"), default=list)
    schedules = models.JSONField(_("schedules"), default=dict)
    hash = models.CharField(_("hash"), max_length=80, blank=True)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    acked_version = models.PositiveBigIntegerField(_("version applied"), default=0)
    resend = models.BooleanField(_("snapshot due"), default=True)

    class Meta:
        verbose_name = _("allow-list state")
        verbose_name_plural = _("allow-list states")

    def __str__(self):
        return f"{self.controller_id} v{self.version}"


# --- the change feed -------------------------------------------------------------------------


class ChangeVersion(models.Model):
    """The change feed of access facts: one row whose `version` changes with every write to a
    table the access decision reads (badges, visitor passes, doors, the site mode, people,
    tenants, leases, spaces, resources, equipment, qualifications).

    Database triggers bump it (migration 0002), not Django signals, so that no path is missed:
    admin saves, conditional `update()`s, bulk writes, raw SQL and other processes alike. The
    bump is part of the writer's transaction, so a reader sees the new version only with the
    change. On PostgreSQL the trigger also notifies `access_change_feed` at commit. The MQTT
    bridge reads it when notified and every 0.5 s, and reloads its in-memory facts when it
    moved (access.facts.FactCache); a row that went missing (a test flush) reads as version 0.
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON, editable=False)
    version = models.PositiveBigIntegerField(_("version"), default=0, editable=False)

    class Meta:
        verbose_name = _("change version")
        verbose_name_plural = _("change version")

    def __str__(self):
        return str(self.version)

    @classmethod
    def current(cls) -> int:
        return cls.objects.filter(pk=cls.SINGLETON).values_list("version", flat=True).first() or 0


# --- the audit log ---------------------------------------------------------------------------


class AppendOnlyError(RuntimeError):
    """Raised on any attempt to change or delete audit rows outside the retention purge."""


class AuditQuerySet(models.QuerySet):
    """Audit rows are inserted, read, and purged by age; nothing else."""

    def update(self, **kwargs):
        raise AppendOnlyError("the audit log is append-only")

    def delete(self):
        raise AppendOnlyError("the audit log is append-only; see purge_audit_events()")

    def record(self, events: list["AuditEvent | dict"]) -> None:
        """Insert a batch; a replayed decision (controller, req_id) or device event
        (controller, seq) already logged is skipped, so that QoS 1 redeliveries log once.
        An event is an AuditEvent, or a dict of its fields by attribute name (`person_id`),
        the others taking their defaults: the bridge logs every decision so, without the
        cost of a model instance.

        On PostgreSQL one prepared `INSERT … SELECT … FROM json_populate_recordset(<the rows
        as one JSON text>) ON CONFLICT DO NOTHING`: what bulk_create(ignore_conflicts=True)
        does, without the ORM's per-field preparation (~0.08 ms of CPU per row, the bridge's
        largest cost after MQTT) and with the rows encoded by the json module's C encoder
        rather than as one array parameter per column. Elsewhere, bulk_create."""
        if not events:
            return
        db = connections[self.db]
        if db.vendor != "postgresql":
            events = [AuditEvent(**e) if isinstance(e, dict) else e for e in events]
            self.bulk_create(events, ignore_conflicts=True)
            return
        import psycopg

        fields, sql = _audit_insert(self.db)
        rows = []
        for e in events:
            if isinstance(e, dict):
                row = {
                    f.column: e[f.attname] if f.attname in e else f.get_default() for f in fields
                }
            else:
                row = {f.column: getattr(e, f.attname) for f in fields}
            if row["ts"] is not None:
                row["ts"] = row["ts"].isoformat()  # aware: the offset travels with it
            rows.append(row)
        payload = json.dumps(rows, separators=(",", ":"))
        db.ensure_connection()
        with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
            cursor.execute(sql, [payload], prepare=True)


@functools.cache
def _audit_insert(alias: str) -> tuple[list[models.Field], str]:
    """The inserted fields, and the statement that reads them from one JSON array of rows.

    The rows take the table's own row type (`json_populate_recordset(NULL::<table>, …)`), so
    that each value is read by its column's type: a string too long for its column is refused,
    as an INSERT would, not cut; a missing key would be NULL (record() sends every column)."""
    db = connections[alias]
    fields = [f for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    quote = db.ops.quote_name
    table = quote(AuditEvent._meta.db_table)
    names = ", ".join(quote(f.column) for f in fields)
    # Only the model's own table and column names: nothing from outside.
    sql = (
        f"INSERT INTO {table} ({names}) SELECT {names} "  # noqa: S608
        f"FROM json_populate_recordset(NULL::{table}, %s::json) ON CONFLICT DO NOTHING"
    )
    return fields, sql


class AuditEvent(models.Model):
    """One line of the append-only audit log: a decision, a door event, a remote command, a
    lockdown change or an admin change of access rights, with who, what, when and why.

    Ids of controllers and doors are kept as text, so that a line outlives what it names.
    Rows are never updated; they are deleted only by `purge_audit_events` (retention).
    """

    class Kind(models.TextChoices):
        DECISION = "decision", _("access decision")
        DOOR_EVENT = "door_event", _("door event")
        ALARM = "alarm", _("door alarm")
        PRESENCE = "presence", _("controller presence")
        COMMAND = "command", _("command")
        LOCKDOWN = "lockdown", _("lockdown")
        RIGHTS_CHANGE = "rights_change", _("change of access rights")

    ts = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    controller = models.CharField(_("controller"), max_length=64, blank=True)
    door = models.CharField(_("door"), max_length=64, blank=True)
    equipment = models.CharField(_("equipment"), max_length=64, blank=True)
    credential = models.ForeignKey(
        Credential,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name=_("credential"),
    )
    uid_hash = models.CharField(_("UID hash"), max_length=32, blank=True)
    person = models.ForeignKey(
        Person,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_events",
        verbose_name=_("person"),
    )
    result = models.CharField(_("result"), max_length=20, blank=True)
    reason = models.CharField(_("reason"), max_length=40, blank=True)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), null=True, blank=True)
    actor = models.ForeignKey(
        Person,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="audit_actions",
        verbose_name=_("done by"),
    )
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    req_id = models.CharField(_("request id"), max_length=64, null=True, blank=True)
    seq = models.PositiveBigIntegerField(_("device sequence"), null=True, blank=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit log")
        ordering = ["-ts", "-id"]
        indexes = [
            models.Index(fields=["door", "ts"], name="audit_door_ts"),
            models.Index(fields=["person", "ts"], name="audit_person_ts"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    kind__in=[
                        "decision",
                        "door_event",
                        "alarm",
                        "presence",
                        "command",
                        "lockdown",
                        "rights_change",
                    ]
                ),  # fmt: skip
                name="audit_kind_valid",
                violation_error_message=_("Unknown kind of audit event."),
            ),
            models.CheckConstraint(
                condition=~Q(kind="decision") | Q(result__in=["grant", "deny"]),
                name="audit_decision_result",
                violation_error_message=_("A decision is a grant or a deny."),
            ),
            models.UniqueConstraint(
                fields=["controller", "req_id"],
                condition=Q(kind="decision", req_id__isnull=False),
                name="audit_decision_once_per_request",
                violation_error_message=_("This request was already logged."),
            ),
            models.UniqueConstraint(
                fields=["controller", "seq"],
                condition=Q(kind__in=["door_event", "alarm"], seq__isnull=False),
                name="audit_device_event_once",
                violation_error_message=_("This device event was already logged."),
            ),
        ]

    def __str__(self):
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.kind} {self.result} {self.reason}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("the audit log is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("the audit log is append-only; see purge_audit_events()")


# ------------------------------------------------------------------ who sees what
# One function per object type, for the API's lists and details and the portal's pages (the
# badges' in access.badges, the visits' in access.visitors). Doors, controllers and the site
# mode are building equipment: facility staff only (403 for others).


def visible_doors(person: Person):
    if not person.runs_facility:
        raise Forbidden("Only facility staff may do this.", code="staff_only")
    return Door.objects.select_related("controller", "space")


def visible_access_events(person: Person):
    """Staff see the whole access log; a tenant admin their tenant's people's lines; anyone
    else their own."""
    qs = AuditEvent.objects.select_related("person", "credential")
    if person.runs_facility:
        return qs
    if person.is_tenant_admin and person.tenant_id:
        return qs.filter(person__tenant_id=person.tenant_id)
    return qs.filter(person=person)


def record_rights_change(
    credential: Credential | None,
    what: str,
    *,
    actor: Person | None,
    via: str,
    why: str = "",
    changed=(),
    person: Person | None = None,
    **detail,
) -> AuditEvent:
    """Log a change of access rights (a badge issued, changed, suspended, lost, reactivated; a
    visitor expected): who did it (`actor`), through what (`via`: "admin", "api"), what changed
    and why. `person` is whose rights changed, by default the badge's holder. The one writer of
    rights-change rows, for the admin and the API alike."""
    if credential is not None:
        detail = {"status": credential.status, **detail}
    return AuditEvent.objects.create(
        kind=AuditEvent.Kind.RIGHTS_CHANGE,
        credential=credential,
        uid_hash=credential.uid_hash if credential else "",
        person=person or (credential.holder if credential else None),
        result=what,
        reason=via,
        actor=actor,
        detail={"changed": sorted(changed), **({"why": why} if why else {}), **detail},
    )


def purge_audit_events(before) -> int:
    """Retention: delete audit rows older than `before`; the one way rows ever leave the log."""
    old = AuditEvent.objects.filter(ts__lt=before)
    deleted, _by_model = models.QuerySet.delete(old)
    return deleted
