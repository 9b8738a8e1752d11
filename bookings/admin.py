"""Back-office for bookings. Writes go through bookings.engine, like every other path."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from bookings import engine
from bookings.models import (
    Booking,
    BookingPolicy,
    BookingSeries,
    Closure,
    PersonFeed,
    Resource,
    WaitlistEntry,
)
from common.errors import DomainError


@admin.register(BookingPolicy)
class BookingPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "default_for_kind",
        "who_may_book",
        "approval_required",
        "slot_minutes",
        "max_advance_days",
        "checkin_window_minutes",
    ]


@admin.register(Closure)
class ClosureAdmin(admin.ModelAdmin):
    list_display = ["name", "start_date", "end_date", "is_public_holiday"]
    list_filter = ["is_public_holiday"]


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "name",
        "kind",
        "capacity",
        "policy",
        "price_member_cents",
        "price_non_member_cents",
        "is_active",
    ]
    list_filter = ["kind", "is_active", "policy"]
    search_fields = ["code", "name"]
    autocomplete_fields = ["space"]
    filter_horizontal = ["companions"]


class BookingForm(forms.ModelForm):
    """Creating or moving a booking here calls the booking engine inside clean(), so that a
    refusal (conflict, policy) shows on the form instead of failing on save."""

    acting = None  # set per request by BookingAdmin.get_form

    class Meta:
        model = Booking
        fields = [
            "resource",
            "person",
            "title",
            "attendees",
            "start",
            "end",
            "is_maintenance",
            "note",
        ]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            if self.instance.pk is None:
                slot = engine.Slot(
                    data["resource"],
                    data["start"],
                    data["end"],
                    data.get("title", ""),
                    data.get("attendees") or 1,
                )
                self.result = engine.book(
                    data["person"],
                    slot,
                    by=self.acting,
                    is_maintenance=data.get("is_maintenance", False),
                )
            else:
                if (data["start"], data["end"]) != (self.initial["start"], self.initial["end"]):
                    engine.move(self.acting, self.instance, data["start"], data["end"])
                engine.relabel(
                    self.instance,
                    title=data.get("title", ""),
                    note=data.get("note", ""),
                    attendees=data.get("attendees") or 1,
                )
        except DomainError as e:
            raise ValidationError(e.detail, code=e.code) from e
        return data


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    form = BookingForm
    list_display = [
        "resource",
        "start",
        "end",
        "person",
        "tenant",
        "status",
        "price_cents",
        "charge_cents",
    ]
    list_filter = ["status", "resource__kind", "is_maintenance", "resource"]
    search_fields = ["resource__code", "person__email", "tenant__name", "title"]
    date_hierarchy = "start"
    autocomplete_fields = ["person"]
    list_select_related = ["resource", "person", "tenant"]
    actions = ["approve", "reject", "cancel"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type("BookingFormFor", (form,), {"acting": request.user})

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "resource",
            "person",
            "is_maintenance",
            "status",
            "tenant",
            "price_cents",
            "charge_cents",
            "series",
            "checked_in_at",
            "cancelled_at",
            "decided_by",
            "unqualified_at",
            "unqualified_deadline",
        ]

    def get_fields(self, request, obj=None):
        fields = [
            "resource",
            "person",
            "title",
            "attendees",
            "start",
            "end",
            "is_maintenance",
            "note",
        ]
        if obj is not None:
            fields += [
                "status",
                "tenant",
                "price_cents",
                "charge_cents",
                "series",
                "checked_in_at",
                "cancelled_at",
                "decided_by",
                "unqualified_at",
                "unqualified_deadline",
            ]
        return fields

    def save_model(self, request, obj, form, change):
        if not change:
            obj.pk = form.result.pk
            obj.__dict__.update(form.result.__dict__)
            return
        # A change was written by the booking engine in BookingForm.clean().

    def has_delete_permission(self, request, obj=None):
        return False  # bookings are cancelled, never deleted: statements depend on them

    def _each(self, request, queryset, action, label):
        done = 0
        for booking in queryset:
            try:
                action(request.user, booking)
                done += 1
            except DomainError as e:
                self.message_user(request, f"{booking}: {e.detail}", messages.ERROR)
        if done:
            self.message_user(request, f"{label}: {done}", messages.SUCCESS)

    @admin.action(description=_("Approve the selected requests"))
    def approve(self, request, queryset):
        self._each(request, queryset, engine.approve, _("approved"))

    @admin.action(description=_("Reject the selected requests"))
    def reject(self, request, queryset):
        self._each(request, queryset, engine.reject, _("rejected"))

    @admin.action(description=_("Cancel the selected bookings"))
    def cancel(self, request, queryset):
        def cancel(person, booking):
            engine.require_may_change(person, booking)  # as the API and the portal ask
            return engine.cancel(person, booking)

        self._each(request, queryset, cancel, _("cancelled"))


@admin.register(BookingSeries)
class BookingSeriesAdmin(admin.ModelAdmin):
    list_display = ["__str__", "resource", "person", "rrule", "materialised_until"]
    readonly_fields = ["event", "resource", "person", "tenant", "rrule", "materialised_until"]

    def has_add_permission(self, request):
        return False  # created through the booking API or portal, which expand them


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(admin.ModelAdmin):
    list_display = ["resource", "start", "end", "person", "state", "offer_expires_at"]
    list_filter = ["state"]


@admin.register(PersonFeed)
class PersonFeedAdmin(admin.ModelAdmin):
    list_display = ["person"]
    readonly_fields = ["token"]
