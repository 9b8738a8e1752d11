"""Test equipment and the people qualified to use it."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from bookings.models import Resource
from campus.models import Space


class Equipment(models.Model):
    """A machine of the shared labs, booked through its Resource, powered by a controller."""

    class Status(models.TextChoices):
        AVAILABLE = "available", _("available")
        IN_USE = "in_use", _("in use")
        TO_CHECK = "to_check", _("to check")
        MAINTENANCE = "maintenance", _("maintenance")
        OUT_OF_ORDER = "out_of_order", _("out of order")

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

    class Meta:
        verbose_name = _("equipment")
        verbose_name_plural = _("equipment")
        ordering = ["resource__code"]

    def __str__(self):
        return str(self.resource)


class Qualification(models.Model):
    """A person's training on one equipment, or on a whole equipment class, with a validity."""

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
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    trained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("trained by"),
    )

    class Meta:
        verbose_name = _("qualification")
        verbose_name_plural = _("qualifications")
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
        ]

    def __str__(self):
        return f"{self.person} — {self.equipment or self.equipment_class}"
