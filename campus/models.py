"""The building and the people: sites, buildings, floors, spaces, tenants, leases, tokens."""

import hashlib
import secrets
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campus.clock import default_zone_name, validate_time_zone


class Site(models.Model):
    """A campus: the top of the building hierarchy, with its own time zone, in which
    whatever is on it keeps local time (the rule is at the top of campus/clock.py)."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    address = models.CharField(_("address"), max_length=250, blank=True)
    time_zone = models.CharField(
        _("time zone"),
        max_length=60,
        default=default_zone_name,
        validators=[validate_time_zone],
        help_text=_("An IANA name such as Europe/Paris."),
    )

    class Meta:
        verbose_name = _("site")
        verbose_name_plural = _("sites")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Building(models.Model):
    """A building of a site; its short code prefixes the codes of its spaces (B-1.12)."""

    site = models.ForeignKey(Site, models.PROTECT, related_name="buildings", verbose_name=_("site"))
    code = models.CharField(_("code"), max_length=10)
    name = models.CharField(_("name"), max_length=120)
    area_m2 = models.DecimalField(
        _("floor area (m²)"), max_digits=9, decimal_places=2, null=True, blank=True
    )

    class Meta:
        verbose_name = _("building")
        verbose_name_plural = _("buildings")
        ordering = ["site__name", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["site", "code"],
                name="building_code_unique_per_site",
                violation_error_message=_("This site already has a building with this code."),
            ),
            models.CheckConstraint(
                condition=Q(area_m2__isnull=True) | Q(area_m2__gt=0),
                name="building_area_positive",
                violation_error_message=_("A building's floor area must be positive."),
            ),
        ]

    def __str__(self):
        return f"{self.code} — {self.name}"


class Floor(models.Model):
    """A level of a building: 0 is the ground floor, negative levels are basements."""

    building = models.ForeignKey(
        Building, models.PROTECT, related_name="floors", verbose_name=_("building")
    )
    level = models.SmallIntegerField(_("level"))
    name = models.CharField(_("name"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("floor")
        verbose_name_plural = _("floors")
        ordering = ["building__code", "level"]
        constraints = [
            models.UniqueConstraint(
                fields=["building", "level"],
                name="floor_level_unique_per_building",
                violation_error_message=_("This building already has a floor at this level."),
            ),
            models.CheckConstraint(
                condition=Q(level__gte=-5) & Q(level__lte=50),
                name="floor_level_range",
                violation_error_message=_("A floor level must be between -5 and 50."),
            ),
        ]

    def __str__(self):
        return self.name or f"{self.building.code} {_('level')} {self.level}"


class Feature(models.Model):
    """Something a space offers that people search for: projector, ESD floor, 400 V power…"""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=120)

    class Meta:
        verbose_name = _("feature")
        verbose_name_plural = _("features")
        ordering = ["name"]

    def __str__(self):
        return self.name


class SpaceKind(models.TextChoices):
    """What a space is for; decides who may lease, book or enter it."""

    OFFICE = "office", _("office")
    MEETING_ROOM = "meeting_room", _("meeting room")
    AUDITORIUM = "auditorium", _("auditorium")
    LAB = "lab", _("lab")
    WORKSHOP = "workshop", _("workshop")
    DESK = "desk", _("coworking desk")
    TECHNICAL = "technical", _("technical room")
    COMMON = "common", _("common area")


class Space(models.Model):
    """A room or area on a floor: an office to lease, a meeting room or a lab to book…"""

    Kind = SpaceKind

    LEASABLE_KINDS = (Kind.OFFICE, Kind.WORKSHOP, Kind.DESK)

    floor = models.ForeignKey(Floor, models.PROTECT, related_name="spaces", verbose_name=_("floor"))
    code = models.CharField(_("code"), max_length=20, unique=True, help_text=_("e.g. B-1.12"))
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    capacity = models.PositiveIntegerField(_("capacity (people)"), default=0)
    area_m2 = models.DecimalField(
        _("area (m²)"), max_digits=7, decimal_places=2, null=True, blank=True
    )
    features = models.ManyToManyField(
        Feature, blank=True, related_name="spaces", verbose_name=_("features")
    )
    bookable = models.BooleanField(_("bookable"), default=False)
    is_active = models.BooleanField(_("in service"), default=True)

    class Meta:
        verbose_name = _("space")
        verbose_name_plural = _("spaces")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(area_m2__isnull=True) | Q(area_m2__gt=0),
                name="space_area_positive",
                violation_error_message=_("A space's area must be positive."),
            ),
            models.CheckConstraint(
                condition=Q(kind__in=SpaceKind.values),
                name="space_kind_valid",
                violation_error_message=_("Unknown kind of space."),
            ),
        ]

    def __str__(self):
        return f"{self.code} {self.name}"

    def clean(self):
        # A space's code starts with its building's code, so that a code alone says where
        # the room is: B-1.12 is in building B.
        if self.floor_id and self.code:
            prefix = f"{self.floor.building.code}-"
            if not self.code.startswith(prefix):
                raise ValidationError(
                    {
                        "code": _("The code must start with the building code “%(p)s”.")
                        % {"p": prefix}
                    }
                )


class Tenant(models.Model):
    """A company hosted on the campus; members of the technical centre get member prices."""

    class Tier(models.TextChoices):
        MEMBER = "member", _("member")
        NON_MEMBER = "non_member", _("non-member")

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        SUSPENDED = "suspended", _("suspended")
        ENDED = "ended", _("ended")

    name = models.CharField(_("name"), max_length=160, unique=True)
    tier = models.CharField(_("membership"), max_length=12, choices=Tier.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE
    )
    contract_start = models.DateField(_("contract start"))
    contract_end = models.DateField(_("contract end"), null=True, blank=True)
    contact_email = models.EmailField(_("contact e-mail"), blank=True)
    included_minutes_per_month = models.PositiveIntegerField(
        _("included booking minutes per month"),
        default=0,
        help_text=_("Room time included in the contract, deducted from the monthly statement."),
    )
    monthly_quota_minutes = models.PositiveIntegerField(
        _("monthly booking quota (minutes)"),
        null=True,
        blank=True,
        help_text=_("Empty: no quota."),
    )

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(contract_end__isnull=True) | Q(contract_end__gte=F("contract_start")),
                name="tenant_contract_ends_after_start",
                violation_error_message=_("The contract cannot end before it starts."),
            ),
            models.CheckConstraint(
                condition=Q(tier__in=["member", "non_member"]),
                name="tenant_tier_valid",
                violation_error_message=_("Unknown membership tier."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended", "ended"]),
                name="tenant_status_valid",
                violation_error_message=_("Unknown tenant status."),
            ),
        ]

    def __str__(self):
        return self.name

    def is_member(self) -> bool:
        return self.tier == self.Tier.MEMBER


class Lease(models.Model):
    """A tenant's lease of an office (or workshop, or desk), from start to end inclusive."""

    tenant = models.ForeignKey(
        Tenant, models.PROTECT, related_name="leases", verbose_name=_("tenant")
    )
    space = models.ForeignKey(Space, models.PROTECT, related_name="leases", verbose_name=_("space"))
    start = models.DateField(_("start"))
    end = models.DateField(_("end"), null=True, blank=True, help_text=_("Empty: open-ended."))

    class Meta:
        verbose_name = _("lease")
        verbose_name_plural = _("leases")
        ordering = ["space__code", "start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gte=F("start")),
                name="lease_ends_after_start",
                violation_error_message=_("A lease cannot end before it starts."),
            ),
        ]

    def __str__(self):
        return f"{self.space.code} → {self.tenant}"

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def clean(self):
        errors = {}
        if self.space_id and self.space.kind not in Space.LEASABLE_KINDS:
            errors["space"] = _("Only offices, workshops and desks can be leased.")
        if self.tenant_id and self.start:
            t = self.tenant
            if self.start < t.contract_start or (
                t.contract_end and (self.end is None or self.end > t.contract_end)
            ):
                errors["start"] = _("A lease must lie within the tenant's contract dates.")
        if self.space_id and self.start and "space" not in errors:
            overlapping = Lease.objects.filter(space_id=self.space_id).exclude(pk=self.pk)
            overlapping = overlapping.filter(Q(end__isnull=True) | Q(end__gte=self.start))
            if self.end:
                overlapping = overlapping.filter(start__lte=self.end)
            if overlapping.exists():
                errors["space"] = _("This space is already leased during these dates.")
        if errors:
            raise ValidationError(errors)


class PersonManager(BaseUserManager):
    """Creates persons who sign in with their e-mail address."""

    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("A person needs an e-mail address")
        person = self.model(email=self.normalize_email(email).lower(), **extra)
        person.set_password(password)
        person.save(using=self._db)
        return person

    def build(self, email: str, **fields) -> "Person":
        """A new person, not saved, as every adapter (API, admin import, CSV import) makes one:
        the e-mail lower-cased, no usable password until they choose one from their
        invitation (`campus.invitations`) or a reset e-mail."""
        person = self.model(email=self.normalize_email(email).lower(), **fields)
        person.set_unusable_password()
        return person

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_superuser=True, is_facility_staff=True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)


class Person(AbstractBaseUser, PermissionsMixin):
    """Someone who works on the campus: a tenant's employee, or facility staff.

    Roles are flags, since one person can hold several (a facility staff member who is also a
    lab technician). A tenant member is a person with a tenant; a tenant admin manages that
    tenant's people, badges and visitors.
    """

    email = models.EmailField(_("e-mail address"), unique=True)
    first_name = models.CharField(_("first name"), max_length=80)
    last_name = models.CharField(_("last name"), max_length=80)
    phone = models.CharField(_("phone"), max_length=30, blank=True)
    tenant = models.ForeignKey(
        Tenant,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="people",
        verbose_name=_("tenant"),
    )
    is_tenant_admin = models.BooleanField(_("tenant admin"), default=False)
    is_facility_staff = models.BooleanField(_("facility staff"), default=False)
    is_lab_technician = models.BooleanField(_("lab technician"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    language = models.CharField(
        _("language"), max_length=5, choices=[("fr", "Français"), ("en", "English")], default="fr"
    )
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = PersonManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["first_name", "last_name"]

    class Meta:
        verbose_name = _("person")
        verbose_name_plural = _("people")
        ordering = ["last_name", "first_name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(tenant__isnull=False)
                | Q(is_facility_staff=True)
                | Q(is_lab_technician=True)
                | Q(is_superuser=True),
                name="person_belongs_to_tenant_or_staff",
                violation_error_message=_(
                    "A person belongs to a tenant, or is facility staff or a lab technician."
                ),
            ),
            models.CheckConstraint(
                condition=Q(is_tenant_admin=False) | Q(tenant__isnull=False),
                name="tenant_admin_has_tenant",
                violation_error_message=_("A tenant admin must belong to a tenant."),
            ),
        ]

    def __str__(self):
        return self.get_full_name() or self.email

    def get_full_name(self):
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self):
        return self.first_name

    # The roles, each named once. `is_staff` is Django's name for "may open the admin" and
    # means only that: facility rights are `runs_facility`, lab rights `runs_labs`.

    @property
    def runs_facility(self) -> bool:
        """Facility staff (or a superuser): the whole campus, its doors, approvals, billing."""
        return self.is_active and (self.is_facility_staff or self.is_superuser)

    @property
    def runs_labs(self) -> bool:
        """Lab technicians and facility staff: equipment, qualifications, maintenance."""
        return self.runs_facility or (self.is_active and self.is_lab_technician)

    @property
    def is_staff(self) -> bool:
        """Who may open the Django admin (the back-office): whoever runs the labs or more.
        What they may change there is `has_perm`'s business."""
        return self.runs_labs

    def has_perm(self, perm, obj=None):
        # Facility staff run the whole back-office; lab technicians their labs. Roles, not
        # per-user permission rows, decide: one rule, no drift between people.
        if self.is_active and (self.is_superuser or self.is_facility_staff):
            return True
        if self.is_active and self.is_lab_technician:
            app = perm.split(".", 1)[0]
            return app == "labs" or perm.startswith(("campus.view_", "bookings.view_"))
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label):
        if self.is_active and (self.is_superuser or self.is_facility_staff):
            return True
        if self.is_active and self.is_lab_technician:
            return app_label in ("labs", "campus", "bookings")
        return super().has_module_perms(app_label)

    @property
    def roles(self) -> list[str]:
        roles = []
        if self.tenant_id:
            roles.append("tenant_member")
        if self.is_tenant_admin:
            roles.append("tenant_admin")
        if self.is_facility_staff or self.is_superuser:
            roles.append("facility_staff")
        if self.is_lab_technician:
            roles.append("lab_technician")
        return roles


class ApiToken(models.Model):
    """A personal API token: shown once at creation, stored as a SHA-256 digest, revocable.

    Tokens are 256-bit random strings, so a fast hash is enough: there is nothing to guess.
    """

    PREFIX = "tc_"
    LAST_USED_RESOLUTION = timedelta(minutes=1)

    person = models.ForeignKey(
        Person, models.CASCADE, related_name="api_tokens", verbose_name=_("person")
    )
    name = models.CharField(_("name"), max_length=80)
    hint = models.CharField(_("starts with"), max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def digest_of(plaintext: str) -> str:
        return hashlib.sha256(plaintext.encode()).hexdigest()

    @classmethod
    def issue(cls, person: Person, name: str) -> tuple["ApiToken", str]:
        """Create a token; the plaintext is returned once and never stored."""
        plaintext = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            person=person, name=name, hint=plaintext[:10], digest=cls.digest_of(plaintext)
        )
        return token, plaintext

    @classmethod
    def authenticate(cls, plaintext: str) -> Person | None:
        """The active person holding this unrevoked token, or None."""
        if not plaintext.startswith(cls.PREFIX) or len(plaintext) > 100:
            return None
        token = (
            cls.objects.select_related("person", "person__tenant")
            .filter(
                digest=cls.digest_of(plaintext), revoked_at__isnull=True, person__is_active=True
            )
            .first()
        )
        if token is None:
            return None
        now = timezone.now()
        # One write a minute at most, however busy the token: a conditional update, and not
        # even that when the row just read says it was used within the minute.
        recent = token.last_used_at and token.last_used_at >= now - cls.LAST_USED_RESOLUTION
        if not recent:
            cls.objects.filter(pk=token.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - cls.LAST_USED_RESOLUTION)
            ).update(last_used_at=now)
        return token.person

    def revoke(self):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])


class IdempotentRequest(models.Model):
    """The answer to one creating API request sent with an `Idempotency-Key`: kept with the
    creation, in its transaction, so that a retry of the same request by the same person gets
    this answer instead of creating again (campus.idempotency). Forgotten after a day."""

    person = models.ForeignKey(Person, models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # A keyed hash of the method, the path and the body: which request the key was used for,
    # without keeping the body (a badge UID, personal data) itself.
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["person", "key"], name="one_answer_per_key")]

    def __str__(self):
        return f"{self.key} ({self.status})"
