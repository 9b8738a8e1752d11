"""Bookable resources, their policies, bookings, recurring series, the waitlist and feeds.

Invariant 1 (no double booking) is written in one place: `bookings.engine`. The database
backs it on PostgreSQL with an exclusion constraint created in migration 0002 (it is not in
Meta because SQLite cannot hold it; SQLite serialises writers with IMMEDIATE transactions).
"""

import secrets
import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.postgres.fields import DateTimeRangeField
from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import F, Func, Q, Value
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campus import clock
from campus.models import Space, Tenant

WEEKDAYS = range(1, 8)  # ISO: 1 = Monday … 7 = Sunday


def validate_weekly_hours(value):
    """`[[iso_weekday, "HH:MM", "HH:MM"], ...]`, the allow-list schedule format of the protocol."""
    if not isinstance(value, list):
        raise ValidationError(_("Opening hours must be a list of [weekday, start, end]."))
    for row in value:
        if not (isinstance(row, list | tuple) and len(row) == 3 and row[0] in WEEKDAYS):
            raise ValidationError(_("Each opening-hours row is [weekday 1-7, “HH:MM”, “HH:MM”]."))
        try:
            start, end = parse_hhmm(row[1]), parse_hhmm(row[2])
        except (TypeError, ValueError) as e:
            raise ValidationError(_("Opening hours use HH:MM times.")) from e
        if end != time(0, 0) and end <= start:
            raise ValidationError(_("An opening-hours row must end after it starts."))


def parse_hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    if len(hours) != 2 or len(minutes) != 2:
        raise ValueError(text)
    if hours == "24" and minutes == "00":
        return time(0, 0)
    return time(int(hours), int(minutes))


class WhoMayBook(models.TextChoices):
    TENANT_MEMBERS = "tenant_members", _("tenant members")
    ANYONE = "anyone", _("anyone with an account")
    QUALIFIED = "qualified", _("qualified people only")
    STAFF = "staff", _("facility staff only")


class BookingPolicy(models.Model):
    """The rules of booking a resource: hours, durations, notice, buffers, who, approval.

    A resource uses its own policy if set, else the default policy of its kind, else the
    built-in defaults of this model.
    """

    name = models.CharField(_("name"), max_length=120, unique=True)
    default_for_kind = models.CharField(
        _("default for kind"),
        max_length=20,
        blank=True,
        help_text=_("Leave empty for a policy assigned to resources one by one."),
    )
    opening_hours = models.JSONField(
        _("opening hours"),
        default=list,
        blank=True,
        validators=[validate_weekly_hours],
        help_text=_("[[weekday 1-7, “HH:MM”, “HH:MM”], …] in local time; empty: always open."),
    )
    closed_on_public_holidays = models.BooleanField(_("closed on public holidays"), default=True)
    slot_minutes = models.PositiveSmallIntegerField(_("slot granularity (min)"), default=15)
    min_duration_minutes = models.PositiveIntegerField(_("minimum duration (min)"), default=15)
    max_duration_minutes = models.PositiveIntegerField(_("maximum duration (min)"), default=600)
    min_notice_minutes = models.PositiveIntegerField(_("minimum notice (min)"), default=0)
    max_advance_days = models.PositiveIntegerField(_("booking horizon (days)"), default=90)
    buffer_before_minutes = models.PositiveIntegerField(_("buffer before (min)"), default=0)
    buffer_after_minutes = models.PositiveIntegerField(_("buffer after (min)"), default=0)
    who_may_book = models.CharField(
        _("who may book"),
        max_length=20,
        choices=WhoMayBook.choices,
        default=WhoMayBook.TENANT_MEMBERS,
    )
    approval_required = models.BooleanField(_("approval required"), default=False)
    free_cancellation_hours = models.PositiveIntegerField(
        _("free cancellation notice (h)"), default=24
    )
    late_cancellation_percent = models.PositiveSmallIntegerField(
        _("late cancellation charge (%)"), default=100
    )
    checkin_window_minutes = models.PositiveIntegerField(
        _("check-in window (min)"),
        default=15,
        help_text=_("Released as a no-show if nobody checks in within this time; 0: no check-in."),
    )
    unqualified_notice_hours = models.PositiveIntegerField(
        _("notice before an unqualified booking is cancelled (h)"),
        default=48,
        help_text=_(
            "When the booker's qualification is revoked or ends before a booking, the booking "
            "is flagged and cancelled free of charge this long after (at its start at the "
            "latest), unless they are qualified again by then."
        ),
    )

    class Meta:
        verbose_name = _("booking policy")
        verbose_name_plural = _("booking policies")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["default_for_kind"],
                condition=~Q(default_for_kind=""),
                name="one_default_policy_per_kind",
                violation_error_message=_("Another policy is already the default for this kind."),
            ),
            models.CheckConstraint(
                condition=Q(slot_minutes__gte=1) & Q(slot_minutes__lte=1440),
                name="policy_slot_range",
                violation_error_message=_("The slot granularity is 1 to 1440 minutes."),
            ),
            models.CheckConstraint(
                condition=Q(max_duration_minutes__gte=F("min_duration_minutes")),
                name="policy_durations_ordered",
                violation_error_message=_("The maximum duration is below the minimum."),
            ),
            models.CheckConstraint(
                condition=Q(late_cancellation_percent__lte=100),
                name="policy_late_charge_percent",
                violation_error_message=_("A late-cancellation charge is 0 to 100 %."),
            ),
        ]

    def __str__(self):
        return self.name


class Closure(models.Model):
    """Days when bookable resources are closed: public holidays, building closures."""

    name = models.CharField(_("name"), max_length=120)
    start_date = models.DateField(_("first day"))
    end_date = models.DateField(_("last day"))
    is_public_holiday = models.BooleanField(_("public holiday"), default=False)

    class Meta:
        verbose_name = _("closure")
        verbose_name_plural = _("closures")
        ordering = ["start_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__gte=F("start_date")),
                name="closure_ends_after_start",
                violation_error_message=_("A closure cannot end before it starts."),
            ),
        ]

    def __str__(self):
        return self.name


class PublicHolidayYear(models.Model):
    """A year whose public holidays (of a region, "" for mainland France) were added as
    closures. Each year is added once (`bookings.jobs.add_public_holidays`): a holiday closure
    that staff delete afterwards, to open on that day, is not added back by the yearly job."""

    year = models.PositiveSmallIntegerField(_("year"))
    subdiv = models.CharField(_("region"), max_length=10, blank=True)
    added_at = models.DateTimeField(_("added"), default=timezone.now)

    class Meta:
        verbose_name = _("public holidays of a year")
        verbose_name_plural = _("public holidays of each year")
        ordering = ["year", "subdiv"]
        constraints = [
            models.UniqueConstraint(fields=["year", "subdiv"], name="holidays_added_once"),
        ]

    def __str__(self):
        return f"{self.year} {self.subdiv}".strip()


class ResourceKind(models.TextChoices):
    MEETING_ROOM = "meeting_room", _("meeting room")
    AUDITORIUM = "auditorium", _("auditorium")
    LAB = "lab", _("lab")
    WORKSHOP = "workshop", _("workshop")
    DESK = "desk", _("coworking desk")
    EQUIPMENT = "equipment", _("equipment")


class Resource(models.Model):
    """Anything that can be booked: a space or a piece of equipment.

    One conflict rule covers both, since both are rows of this table. Warm-up and cool-down
    (set by the labs app for equipment) are booked with the slot, like the policy's buffers.
    """

    Kind = ResourceKind

    code = models.CharField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=160)
    kind = models.CharField(_("kind"), max_length=20, choices=ResourceKind.choices)
    space = models.OneToOneField(
        Space,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="resource",
        verbose_name=_("space"),
    )
    capacity = models.PositiveIntegerField(_("capacity (people)"), default=1)
    policy = models.ForeignKey(
        BookingPolicy,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="resources",
        verbose_name=_("policy"),
        help_text=_("Empty: the default policy of its kind."),
    )
    price_member_cents = models.PositiveIntegerField(_("hourly price, members (cents)"), default=0)
    price_non_member_cents = models.PositiveIntegerField(
        _("hourly price, non-members (cents)"), default=0
    )
    uses_credits = models.BooleanField(
        _("counts toward included hours and quota"),
        default=True,
    )
    warm_up_minutes = models.PositiveIntegerField(_("warm-up (min)"), default=0)
    cool_down_minutes = models.PositiveIntegerField(_("cool-down (min)"), default=0)
    companions = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="companion_of",
        verbose_name=_("companion resources"),
        help_text=_(
            "Booked together with this one, atomically (e.g. a chamber and its control room)."
        ),
    )
    is_active = models.BooleanField(_("bookable now"), default=True)
    feed_token = models.CharField(
        max_length=43, unique=True, editable=False, default=secrets.token_urlsafe
    )

    class Meta:
        verbose_name = _("bookable resource")
        verbose_name_plural = _("bookable resources")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ResourceKind.values),
                name="resource_kind_valid",
                violation_error_message=_("Unknown kind of resource."),
            ),
        ]

    def __str__(self):
        return f"{self.code} {self.name}"

    def price_per_hour_cents(self, tenant: Tenant | None) -> int:
        if tenant is not None and tenant.is_member():
            return self.price_member_cents
        return self.price_non_member_cents


class Status(models.TextChoices):
    PENDING = "pending", _("awaiting approval")
    CONFIRMED = "confirmed", _("confirmed")
    CHECKED_IN = "checked_in", _("checked in")
    CANCELLED = "cancelled", _("cancelled")
    REJECTED = "rejected", _("rejected")
    RELEASED = "released", _("released (no-show)")


# Confirmed and checked-in bookings never overlap (the exclusion constraint). A pending request
# holds its slot against new bookings, but competing requests may queue for one slot: approving
# one rejects the others.
ACTIVE = (Status.CONFIRMED, Status.CHECKED_IN)
HOLDING = (Status.PENDING, Status.CONFIRMED, Status.CHECKED_IN)
# Not in use yet: what may still be cancelled (`engine.cancel` refuses a checked-in booking).
CANCELLABLE = (Status.PENDING, Status.CONFIRMED)


def occurrences(event, window_start: datetime, window_end: datetime, tz: ZoneInfo):
    """(start, end) of each occurrence in the window, expanded in the resource's time zone
    `tz`: django-scheduler expands in the zone of the window it is given, so that a weekly
    09:00 stays at 09:00 local time across that zone's daylight-saving changes."""
    found = event.get_occurrences(clock.local(window_start, tz), clock.local(window_end, tz))
    return [(o.start, o.end) for o in found if not o.cancelled]


class BookingSeries(models.Model):
    """A recurring booking: a django-scheduler Event with its Rule, expanded in local time.

    Each occurrence within the booking horizon is a Booking row of its own; the horizon job
    materialises later occurrences as time passes.
    """

    event = models.OneToOneField("schedule.Event", models.PROTECT, related_name="booking_series")
    resource = models.ForeignKey(Resource, models.PROTECT, related_name="series")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="series")
    tenant = models.ForeignKey(Tenant, models.PROTECT, null=True, blank=True, related_name="series")
    title = models.CharField(_("title"), max_length=160, blank=True)
    rrule = models.CharField(_("recurrence rule"), max_length=250)
    skip_conflicts = models.BooleanField(_("skip conflicting occurrences"), default=True)
    materialised_until = models.DateTimeField(_("materialised until"))
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("recurring booking")
        verbose_name_plural = _("recurring bookings")

    def __str__(self):
        return f"{self.title or self.resource} ({self.rrule})"


class BlockedRange(Func):
    """`tstzrange(blocked_start, blocked_end, '[)')`: the expression the GiST indexes hold."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()

    def __init__(self):
        super().__init__(F("blocked_start"), F("blocked_end"), Value("[)"))


class BookingQuerySet(models.QuerySet):
    def blocking(self, start: datetime, end: datetime):
        """Bookings whose blocked time meets [start, end).

        On PostgreSQL this is a range overlap on the expression of the GiST indexes (migrations
        0002 and 0003), so that one index probe answers it. Written as two comparisons, the
        planner can only bound one column: at 200,000 bookings the free-resource query read
        ~68 ms of rows instead of ~1 ms (bench/README.md).
        """
        if connections[self.db].vendor == "postgresql":
            return self.alias(blocked=BlockedRange()).filter(
                blocked__overlap=DateTimeTZRange(start, end, "[)")
            )
        return self.filter(blocked_start__lt=end, blocked_end__gt=start)


class Booking(models.Model):
    """One booking of one resource, from start to end, with the time it blocks around it."""

    Status = Status

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No single-column index on resource, person or tenant: the composite indexes below start
    # with them and serve the same lookups; three fewer indexes to write per booking.
    resource = models.ForeignKey(
        Resource,
        models.PROTECT,
        related_name="bookings",
        verbose_name=_("resource"),
        db_index=False,
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        related_name="bookings",
        verbose_name=_("booked by"),
        db_index=False,
    )
    tenant = models.ForeignKey(
        Tenant,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="bookings",
        verbose_name=_("tenant"),
        db_index=False,
    )
    title = models.CharField(_("title"), max_length=160, blank=True)
    attendees = models.PositiveIntegerField(_("attendees"), default=1)
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    # start/end widened by the policy's buffers and the resource's warm-up and cool-down:
    # what the exclusion constraint compares.
    blocked_start = models.DateTimeField(editable=False)
    blocked_end = models.DateTimeField(editable=False)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices)
    is_maintenance = models.BooleanField(
        _("maintenance window"),
        default=False,
        help_text=_("Staff block the resource; it conflicts like any booking."),
    )
    series = models.ForeignKey(
        BookingSeries, models.PROTECT, null=True, blank=True, related_name="bookings"
    )
    occurrence_start = models.DateTimeField(null=True, blank=True, editable=False)
    group = models.UUIDField(
        null=True,
        blank=True,
        editable=False,
        help_text="Shared by companion bookings made together",
    )
    price_cents = models.PositiveIntegerField(_("price (cents)"), default=0)
    charge_cents = models.PositiveIntegerField(_("late-cancellation charge (cents)"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    checked_in_at = models.DateTimeField(_("checked in"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    note = models.CharField(_("note"), max_length=250, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Flagged by `labs.lost_qualifications` when the booker holds no valid qualification
    # for it any more; cancelled free of charge at the deadline unless qualified again.
    unqualified_at = models.DateTimeField(
        _("flagged: no valid qualification since"), null=True, blank=True, editable=False
    )
    unqualified_deadline = models.DateTimeField(
        _("cancelled unless qualified again by"), null=True, blank=True, editable=False
    )

    objects = BookingQuerySet.as_manager()

    class Meta:
        verbose_name = _("booking")
        verbose_name_plural = _("bookings")
        ordering = ["start"]
        indexes = [
            models.Index(fields=["resource", "blocked_start"], name="booking_resource_blocked"),
            models.Index(fields=["person", "start"], name="booking_person_start"),
            models.Index(fields=["tenant", "start"], name="booking_tenant_start"),
            models.Index(fields=["status", "start"], name="booking_status_start"),
            # "Does this person hold a booking covering now?" (the access decision, per badge
            # scan): one probe over the person's bookings not yet ended, however long the
            # history grows; `start` in the key lets the scan skip the person's later bookings
            # without reading their rows. Not partial: SQLite would not use a partial index for
            # a query whose statuses are bound parameters.
            models.Index(fields=["person", "end", "start"], name="booking_person_end"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="booking_ends_after_start",
                violation_error_message=_("A booking must end after it starts."),
            ),
            models.CheckConstraint(
                condition=Q(blocked_start__lte=F("start")) & Q(blocked_end__gte=F("end")),
                name="booking_blocks_its_own_time",
                violation_error_message=_("The blocked time must contain the booking."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=Status.values),
                name="booking_status_valid",
                violation_error_message=_("Unknown booking status."),
            ),
            models.UniqueConstraint(
                fields=["series", "occurrence_start"],
                condition=Q(series__isnull=False),
                name="one_booking_per_occurrence",
                violation_error_message=_("This occurrence is already booked."),
            ),
        ]

    def __str__(self):
        local = clock.local(self.start)
        return f"{self.resource.code} {local:%Y-%m-%d %H:%M} ({self.get_status_display()})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_flagged_unqualified(self) -> bool:
        """Its booker holds no valid qualification for it, and it is not cancelled yet."""
        return self.unqualified_at is not None and self.status in CANCELLABLE

    def duration(self) -> timedelta:
        return self.end - self.start


class WaitlistEntry(models.Model):
    """Someone queueing for a taken slot; offered it, first come first served, when it frees."""

    class State(models.TextChoices):
        WAITING = "waiting", _("waiting")
        OFFERED = "offered", _("offered")
        BOOKED = "booked", _("booked")
        EXPIRED = "expired", _("offer expired")
        CANCELLED = "cancelled", _("cancelled")

    resource = models.ForeignKey(Resource, models.CASCADE, related_name="waitlist")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="waitlist")
    tenant = models.ForeignKey(Tenant, models.CASCADE, null=True, blank=True, related_name="+")
    start = models.DateTimeField(_("start"))
    end = models.DateTimeField(_("end"))
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.WAITING
    )
    created_at = models.DateTimeField(default=timezone.now)
    offer_expires_at = models.DateTimeField(null=True, blank=True)
    booking = models.ForeignKey(Booking, models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        verbose_name = _("waitlist entry")
        verbose_name_plural = _("waitlist entries")
        ordering = ["created_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=F("start")),
                name="waitlist_ends_after_start",
                violation_error_message=_("The slot must end after it starts."),
            ),
        ]

    def __str__(self):
        return f"{self.person} → {self.resource.code} {self.start:%Y-%m-%d %H:%M}"


class PersonFeed(models.Model):
    """The secret token of a person's calendar feed; regenerate it to revoke old links."""

    person = models.OneToOneField(settings.AUTH_USER_MODEL, models.CASCADE, related_name="feed")
    token = models.CharField(max_length=43, unique=True, default=secrets.token_urlsafe)

    class Meta:
        verbose_name = _("calendar feed")
        verbose_name_plural = _("calendar feeds")

    def __str__(self):
        return str(self.person)

    @classmethod
    def of(cls, person) -> "PersonFeed":
        feed, _created = cls.objects.get_or_create(person=person)
        return feed

    @classmethod
    def reset(cls, person) -> "PersonFeed":
        """A new secret: the old URL stops answering at once (a leaked link is revoked)."""
        feed, _created = cls.objects.update_or_create(
            person=person, defaults={"token": secrets.token_urlsafe()}
        )
        return feed

    @property
    def url(self) -> str:
        """The absolute URL calendar applications subscribe to (settings.SITE_URL)."""
        return settings.SITE_URL + reverse("person-feed", args=[self.token])


class CatalogueVersion(models.Model):
    """One row whose `version` changes, through database triggers (migration 0005), with
    every write to the tables the in-memory catalogue is read from (bookings.catalogue)."""

    version = models.CharField(max_length=32)

    def __str__(self):
        return self.version


class OutboxEmail(models.Model):
    """An e-mail about a booking, to be sent by the periodic worker (bookings.notify).

    Written in the transaction that changes the booking, so that it is never lost and never
    sent for a change that was rolled back; marked sent only after a successful send, retried
    with a growing delay otherwise. Rendered when sent, in the person's language.
    """

    booking = models.ForeignKey(Booking, models.CASCADE, related_name="+")
    what = models.CharField(max_length=20)
    # Empty: the booker. Otherwise someone else told about the booking (a lab technician).
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=250, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(sent_at__isnull=True),
                name="outbox_due",
            ),
        ]

    def __str__(self):
        return f"{self.what} #{self.booking_id}"

    @classmethod
    def queue(cls, booking: Booking, what: str, to=None) -> "OutboxEmail":
        """Queue the e-mail telling the booker (or `to`) of this change, in the current
        transaction (sent by `bookings.notify.send_outbox`)."""
        return cls.objects.create(booking=booking, what=what, recipient=to)
