"""Test equipment, the people qualified to use it, incidents and usage sessions.

Maintenance windows are no model of their own: they are bookings with `is_maintenance` made
through `bookings.engine.book`, so that the one conflict rule covers them.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from bookings.models import Booking, Resource
from campus.models import Space, Tenant


class Equipment(models.Model):
    """A machine of the shared labs, booked through its Resource, powered by a controller.

    Its MQTT id (`eq/{eq}` in the protocol) is its resource code. Warm-up, cool-down, prices
    and companions live on the resource, since the booking engine reads them there; an
    assisted machine (a technician must be present) is one whose booking policy requires
    approval: a lab technician approves each booking.
    """

    class Status(models.TextChoices):
        AVAILABLE = "available", _("available")
        IN_USE = "in_use", _("in use")
        TO_CHECK = "to_check", _("to check")
        MAINTENANCE = "maintenance", _("maintenance")
        OUT_OF_ORDER = "out_of_order", _("out of order")

    class ControllerKind(models.TextChoices):
        NONE = "none", _("none (sessions started from the portal)")
        NATIVE = "native", _("native equipment node")
        TASMOTA = "tasmota", _("Tasmota relay")

    # A machine in these states may not start a session (nor be powered).
    UNUSABLE = (Status.MAINTENANCE, Status.OUT_OF_ORDER, Status.TO_CHECK)

    resource = models.OneToOneField(
        Resource, models.PROTECT, related_name="equipment", verbose_name=_("bookable resource")
    )
    equipment_class = models.SlugField(
        _("equipment class"),
        max_length=60,
        help_text=_("Machines of one class share qualifications, e.g. “oscilloscope”."),
    )
    model_name = models.CharField(_("make and model"), max_length=160, blank=True)
    location = models.ForeignKey(
        Space, models.PROTECT, related_name="equipment", verbose_name=_("lab")
    )
    status = models.CharField(
        _("status"), max_length=14, choices=Status.choices, default=Status.AVAILABLE
    )
    controller_kind = models.CharField(
        _("controller"), max_length=10, choices=ControllerKind.choices, default=ControllerKind.NONE
    )
    controller_id = models.CharField(
        _("controller id"),
        max_length=64,
        blank=True,
        help_text=_(
            "The MQTT id of the controller whose badge reader sends the machine's scans: a "
            "native node's own, or the reader's next to a Tasmota relay. Scans from any "
            "other controller are refused."
        ),
    )
    tasmota_topic = models.CharField(
        _("Tasmota topic"),
        max_length=64,
        blank=True,
        help_text=_("Tasmota relay: its topic (cmnd/<topic>/POWER)."),
    )
    energy_metering = models.BooleanField(
        _("energy metering"), default=False, help_text=_("The controller reports energy in Wh.")
    )
    energy_price_cents_per_kwh = models.PositiveIntegerField(
        _("energy price (cents per kWh)"), default=0, help_text=_("0: energy is not billed.")
    )
    unattended_allowed = models.BooleanField(
        _("unattended and overnight runs allowed"),
        default=False,
        help_text=_("Otherwise bookings stay within the lab's opening hours."),
    )
    check_after_use = models.BooleanField(
        _("check-off after use"),
        default=False,
        help_text=_("After each session the machine is “to check” until a technician signs it."),
    )
    # What the MQTT bridge last heard from the machine's relay or node (access.power); empty
    # until it reports. Shown to staff; the bridge stops a session when the relay goes away.
    relay_online = models.BooleanField(_("relay online"), null=True, editable=False)
    powered = models.BooleanField(_("powered"), null=True, editable=False)
    power_seen_at = models.DateTimeField(_("power state seen"), null=True, editable=False)
    meter_kwh = models.DecimalField(
        _("energy meter (kWh)"),
        max_digits=12,
        decimal_places=3,
        null=True,
        editable=False,
        help_text=_("The relay's cumulative counter (Tasmota ENERGY.Total), last reading."),
    )

    class Meta:
        verbose_name = _("equipment")
        verbose_name_plural = _("equipment")
        ordering = ["resource__code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    status__in=["available", "in_use", "to_check", "maintenance", "out_of_order"]
                ),
                name="equipment_status_valid",
                violation_error_message=_("Unknown equipment status."),
            ),
            models.CheckConstraint(
                condition=Q(controller_kind="none")
                | (Q(controller_kind="native") & ~Q(controller_id=""))
                | (Q(controller_kind="tasmota") & ~Q(tasmota_topic="") & ~Q(controller_id="")),
                name="equipment_controller_bound",
                violation_error_message=_(
                    "A native node needs its controller id; a Tasmota relay needs its topic "
                    "and the id of the controller whose reader sends its scans."
                ),
            ),
        ]

    def __str__(self):
        return str(self.resource)

    @property
    def code(self) -> str:
        return self.resource.code

    @property
    def is_usable(self) -> bool:
        return self.status not in self.UNUSABLE


class StatusChange(models.Model):
    """One change of an equipment's status: the history staff read back (who, when, why)."""

    equipment = models.ForeignKey(
        Equipment, models.CASCADE, related_name="status_history", verbose_name=_("equipment")
    )
    old_status = models.CharField(_("from"), max_length=14, choices=Equipment.Status.choices)
    new_status = models.CharField(_("to"), max_length=14, choices=Equipment.Status.choices)
    at = models.DateTimeField(_("at"), default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    reason = models.CharField(_("reason"), max_length=250, blank=True)

    class Meta:
        verbose_name = _("equipment status change")
        verbose_name_plural = _("equipment status history")
        ordering = ["-at", "-pk"]

    def __str__(self):
        return f"{self.equipment}: {self.old_status} → {self.new_status}"


class Qualification(models.Model):
    """A person's training on one equipment, or on a whole equipment class, with a validity.

    With `renew_on_use_months`, each use of the machine while the qualification is in force
    pushes `valid_until` to at least that many months after the use (`labs.qualifications`).
    """

    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.CASCADE,
        related_name="qualifications",
        verbose_name=_("person"),
    )
    equipment = models.ForeignKey(
        Equipment,
        models.CASCADE,
        null=True,
        blank=True,
        related_name="qualifications",
        verbose_name=_("equipment"),
    )
    equipment_class = models.SlugField(_("equipment class"), max_length=60, blank=True)
    valid_from = models.DateTimeField(_("valid from"), default=timezone.now)
    valid_until = models.DateTimeField(_("valid until"), null=True, blank=True)
    renew_on_use_months = models.PositiveSmallIntegerField(
        _("renewed on use (months)"),
        null=True,
        blank=True,
        help_text=_("Empty: no renewal. Else each use extends the validity to N months later."),
    )
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("revoked by"),
    )
    trained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("trained by"),
    )
    note = models.CharField(_("note"), max_length=250, blank=True)
    created_at = models.DateTimeField(_("recorded"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("qualification")
        verbose_name_plural = _("qualifications")
        ordering = ["person__last_name", "person__first_name", "valid_from"]
        indexes = [models.Index(fields=["person", "valid_from"], name="qualification_person")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(equipment__isnull=False) & Q(equipment_class=""))
                | (Q(equipment__isnull=True) & ~Q(equipment_class="")),
                name="qualification_for_equipment_or_class",
                violation_error_message=_("A qualification is for one equipment or one class."),
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="qualification_valid_period",
                violation_error_message=_("A qualification must end after it starts."),
            ),
            models.CheckConstraint(
                condition=Q(renew_on_use_months__isnull=True)
                | (Q(renew_on_use_months__gte=1) & Q(renew_on_use_months__lte=120)),
                name="qualification_renewal_range",
                violation_error_message=_("Renewal on use is 1 to 120 months."),
            ),
        ]

    def __str__(self):
        return f"{self.person} — {self.equipment or self.equipment_class}"


class Incident(models.Model):
    """A problem reported on a machine; it keeps the machine “to check” or “out of order”
    until a technician closes it."""

    class Severity(models.TextChoices):
        TO_CHECK = "to_check", _("to check (may still work)")
        OUT_OF_ORDER = "out_of_order", _("out of order")

    equipment = models.ForeignKey(
        Equipment, models.PROTECT, related_name="incidents", verbose_name=_("equipment")
    )
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        related_name="reported_incidents",
        verbose_name=_("reported by"),
    )
    tenant = models.ForeignKey(
        Tenant,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="incidents",
        verbose_name=_("tenant"),
    )
    severity = models.CharField(_("severity"), max_length=14, choices=Severity.choices)
    description = models.TextField(_("description"), max_length=4000)
    reported_at = models.DateTimeField(_("reported"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("closed by"),
    )
    resolution = models.CharField(_("resolution"), max_length=250, blank=True)

    class Meta:
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        ordering = ["-reported_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(severity__in=["to_check", "out_of_order"]),
                name="incident_severity_valid",
                violation_error_message=_("Unknown incident severity."),
            ),
            models.CheckConstraint(
                condition=Q(closed_at__isnull=True) | Q(closed_at__gte=F("reported_at")),
                name="incident_closed_after_reported",
                violation_error_message=_("An incident cannot be closed before it is reported."),
            ),
        ]

    def __str__(self):
        return f"{self.equipment.code} {self.reported_at:%Y-%m-%d} {self.get_severity_display()}"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class UsageSession(models.Model):
    """One real use of a machine: who, for which tenant, under which booking, how long, how
    much energy. Created by the MQTT bridge for machines with a controller, or from the portal
    and the API for the others. At most one session per machine is open at a time."""

    class StopReason(models.TextChoices):
        BADGE_OUT = "badge_out", _("badge out")
        BOOKING_END = "booking_end", _("end of booking")
        LEASE_LOST = "lease_lost", _("controller lease lost")
        STAFF = "staff", _("stopped by staff")
        RELAY_OFFLINE = "relay_offline", _("relay offline")
        MANUAL = "manual", _("stopped by the user")

    class Source(models.TextChoices):
        CONTROLLER = "controller", _("controller")
        PORTAL = "portal", _("portal")
        API = "api", _("API")

    equipment = models.ForeignKey(
        Equipment, models.PROTECT, related_name="sessions", verbose_name=_("equipment")
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        related_name="usage_sessions",
        verbose_name=_("person"),
    )
    tenant = models.ForeignKey(
        Tenant,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="usage_sessions",
        verbose_name=_("tenant"),
    )
    booking = models.ForeignKey(
        Booking,
        models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_sessions",
        verbose_name=_("booking"),
    )
    started_at = models.DateTimeField(_("started"))
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)
    stop_reason = models.CharField(
        _("stop reason"), max_length=14, choices=StopReason.choices, blank=True
    )
    energy_wh = models.PositiveIntegerField(_("energy (Wh)"), null=True, blank=True)
    # The relay's meter when the session started: energy_wh is the difference at the stop.
    meter_start_kwh = models.DecimalField(
        _("meter at start (kWh)"), max_digits=12, decimal_places=3, null=True, blank=True
    )
    source = models.CharField(_("source"), max_length=10, choices=Source.choices)

    class Meta:
        verbose_name = _("usage session")
        verbose_name_plural = _("usage sessions")
        ordering = ["-started_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "started_at"], name="session_tenant_start"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["equipment"],
                condition=Q(stopped_at__isnull=True),
                name="one_open_session_per_equipment",
                violation_error_message=_("This machine is already in use."),
            ),
            models.CheckConstraint(
                condition=Q(stopped_at__isnull=True) | Q(stopped_at__gte=F("started_at")),
                name="session_stops_after_start",
                violation_error_message=_("A session cannot stop before it starts."),
            ),
            models.CheckConstraint(
                condition=(Q(stopped_at__isnull=True) & Q(stop_reason=""))
                | (Q(stopped_at__isnull=False) & ~Q(stop_reason="")),
                name="session_stop_has_reason",
                violation_error_message=_("A stopped session says why it stopped."),
            ),
        ]

    def __str__(self):
        return f"{self.equipment.code} {self.person} {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None
