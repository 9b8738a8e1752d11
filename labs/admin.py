"""Back-office for the labs: equipment and its status history, qualifications, incidents,
usage sessions. Status changes, closings and stops go through the labs functions, so that
the history and the machine's status stay right; maintenance windows are bookings (Bookings →
add, “maintenance window” ticked) or `POST /api/v1/maintenance-windows`."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from common.errors import DomainError
from labs import lost_qualifications, maintenance, sessions
from labs.models import Equipment, Incident, Qualification, StatusChange, UsageSession


class StatusChangeInline(admin.TabularInline):
    model = StatusChange
    extra = 0
    can_delete = False
    fields = ["at", "old_status", "new_status", "by", "reason"]
    readonly_fields = fields
    ordering = ["-at", "-pk"]

    def has_add_permission(self, request, obj=None):
        return False


def _run(modeladmin, request, queryset, action, done_message):
    done = 0
    for obj in queryset:
        try:
            action(obj)
            done += 1
        except DomainError as e:
            modeladmin.message_user(request, f"{obj}: {e.detail}", messages.WARNING)
    if done:
        modeladmin.message_user(request, done_message % {"n": done}, messages.SUCCESS)


def _status_action(status, label):
    def action(modeladmin, request, queryset):
        _run(
            modeladmin,
            request,
            queryset,
            lambda eq: maintenance.set_status(eq, status, by=request.user, reason=str(label)),
            _("%(n)s machine(s) updated."),
        )

    action.short_description = label
    action.__name__ = f"set_{status}"
    return action


@admin.register(Equipment)
class EquipmentAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "equipment_class",
        "location",
        "status",
        "controller_kind",
        "energy_metering",
        "unattended_allowed",
        "check_after_use",
    ]
    list_filter = ["status", "equipment_class", "location", "controller_kind"]
    search_fields = ["resource__code", "resource__name", "model_name", "equipment_class"]
    list_select_related = ["resource", "location"]
    autocomplete_fields = ["resource", "location"]
    readonly_fields = ["status"]
    inlines = [StatusChangeInline]
    actions = [
        "sign_off",
        _status_action(Equipment.Status.MAINTENANCE, _("Put in maintenance")),
        _status_action(Equipment.Status.OUT_OF_ORDER, _("Mark out of order")),
        _status_action(Equipment.Status.AVAILABLE, _("Put back in service")),
    ]

    @admin.action(description=_("Sign off after use (checked)"))
    def sign_off(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            lambda eq: maintenance.sign_off(request.user, eq),
            _("%(n)s machine(s) signed off."),
        )


@admin.register(StatusChange)
class StatusChangeAdmin(admin.ModelAdmin):
    list_display = ["equipment", "at", "old_status", "new_status", "by", "reason"]
    list_filter = ["new_status"]
    search_fields = ["equipment__resource__code", "reason"]
    list_select_related = ["equipment__resource", "by"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Qualification)
class QualificationAdmin(admin.ModelAdmin):
    list_display = [
        "person",
        "equipment",
        "equipment_class",
        "valid_from",
        "valid_until",
        "renew_on_use_months",
        "last_used_at",
        "revoked_at",
        "trained_by",
    ]
    list_filter = ["equipment_class", "equipment"]
    search_fields = ["person__email", "person__last_name", "equipment__resource__code"]
    list_select_related = ["person", "equipment__resource", "trained_by"]
    autocomplete_fields = ["person", "equipment", "trained_by"]
    readonly_fields = ["last_used_at", "revoked_at", "revoked_by", "created_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if not change and obj.trained_by_id is None:
            obj.trained_by = request.user
        before = form.initial.get("person")
        super().save_model(request, obj, form, change)
        # Dates edited here change which bookings it covers: flag or clear them now rather
        # than at the periodic jobs' next round.
        lost_qualifications.review_qualifications(person_ids={obj.person_id, before} - {None})

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        lost_qualifications.review_qualifications(person_ids=[obj.person_id])

    def delete_queryset(self, request, queryset):
        people = set(queryset.values_list("person_id", flat=True))
        super().delete_queryset(request, queryset)
        lost_qualifications.review_qualifications(person_ids=people)

    @admin.action(description=_("Revoke now"))
    def revoke(self, request, queryset):
        # One by one through labs.maintenance: the bookings each leaves uncovered are flagged.
        n = 0
        for q in queryset.filter(revoked_at__isnull=True):
            try:
                maintenance.revoke_qualification(request.user, q)
                n += 1
            except DomainError as e:
                self.message_user(request, f"{q}: {e.detail}", messages.ERROR)
        self.message_user(request, _("%(n)s qualification(s) revoked.") % {"n": n})


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = ["equipment", "severity", "reported_at", "reported_by", "tenant", "closed_at"]
    list_filter = ["severity", ("closed_at", admin.EmptyFieldListFilter), "equipment"]
    search_fields = ["equipment__resource__code", "description", "reported_by__email"]
    list_select_related = ["equipment__resource", "reported_by", "tenant"]
    autocomplete_fields = ["equipment", "reported_by"]
    readonly_fields = ["tenant", "reported_at", "closed_at", "closed_by"]
    actions = ["close"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new incident moves the machine's status, like one reported from the API.
        created = maintenance.report_incident(
            obj.reported_by, obj.equipment, obj.severity, obj.description
        )
        obj.pk = created.pk

    @admin.action(description=_("Close (problem solved)"))
    def close(self, request, queryset):
        _run(
            self,
            request,
            queryset,
            lambda i: maintenance.close_incident(request.user, i),
            _("%(n)s incident(s) closed."),
        )


@admin.register(UsageSession)
class UsageSessionAdmin(admin.ModelAdmin):
    list_display = [
        "equipment",
        "person",
        "tenant",
        "started_at",
        "stopped_at",
        "stop_reason",
        "energy_wh",
        "source",
    ]
    list_filter = ["source", "stop_reason", "equipment"]
    search_fields = ["equipment__resource__code", "person__email", "tenant__name"]
    list_select_related = ["equipment__resource", "person", "tenant"]
    date_hierarchy = "started_at"
    actions = ["stop"]

    def has_add_permission(self, request):
        return False  # sessions start at the machine, the portal or the API

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description=_("Stop (staff)"))
    def stop(self, request, queryset):
        def stop(session):
            sessions.require_may_stop(request.user, session)
            # Recorded as the staff's stop, whoever's session it is: this is the back-office.
            return sessions.stop_session(session, reason="staff", by=request.user)

        _run(
            self,
            request,
            queryset.filter(stopped_at__isnull=True),
            stop,
            _("%(n)s session(s) stopped."),
        )
