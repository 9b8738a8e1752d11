"""Back-office for badges, visitors, controllers, doors, lockdown and the (read-only) audit log."""

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from access import commands
from access.badges import set_badge_status
from access.commands import BrokerUnavailable
from access.models import (
    AuditEvent,
    Controller,
    Credential,
    Door,
    SiteMode,
    VisitorPass,
    record_rights_change,
)
from campus.people import may_write_badge, require_may_write_badge
from common.errors import Conflict, DomainError, Forbidden

RIGHTS_FIELDS = ("status", "holder", "visitor_pass", "override", "valid_from", "valid_until")


class CredentialForm(forms.ModelForm):
    """Staff type or scan the UID; only its hash and last four digits are stored. The holder
    is checked against `require_may_write_badge` like the API's (`actor`: set by get_form)."""

    actor = None

    uid = forms.CharField(
        label=_("badge UID"),
        required=False,
        max_length=64,
        help_text=_("Hex, as the reader shows it (04:A1:B2:C3). Not stored: only its hash."),
    )

    class Meta:
        model = Credential
        fields = [
            "uid",
            "kind",
            "label",
            "holder",
            "visitor_pass",
            "status",
            "valid_from",
            "valid_until",
            "override",
        ]

    def clean_uid(self):
        uid = self.cleaned_data["uid"].strip()
        if not uid and self.instance._state.adding:
            raise forms.ValidationError(_("Scan or type the badge UID."))
        if not uid:
            return ""
        try:
            self.instance.register_uid(uid)
        except DomainError as e:
            raise forms.ValidationError(e.detail) from None
        return uid

    def clean_holder(self):
        holder = self.cleaned_data["holder"]
        try:
            require_may_write_badge(self.actor, holder)
        except DomainError as e:
            raise forms.ValidationError(e.detail) from None
        return holder


def warn_not_published(request, error: BrokerUnavailable):
    messages.warning(
        request,
        _(
            "Saved, but the controllers could not be told (%(detail)s). Do it again to re-send "
            "it once the broker is back."
        )
        % {"detail": error.detail},
    )


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    form = CredentialForm
    list_display = [
        "uid_hint",
        "label",
        "kind",
        "holder",
        "visitor_pass",
        "status",
        "override",
        "valid_until",
    ]
    list_filter = ["kind", "status", "override"]
    search_fields = ["uid_hint", "label", "holder__email", "holder__last_name", "uid_hash"]
    autocomplete_fields = ["holder", "visitor_pass"]
    readonly_fields = ["uid_hash", "uid_hint", "created_at"]
    list_select_related = ["holder", "visitor_pass"]
    actions = ["suspend", "mark_lost"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)  # a class of its own for each call
        form.actor = request.user
        return form

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_write_badge(request.user, obj.holder))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_write_badge(request.user, obj.holder))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = set(form.changed_data) & {*RIGHTS_FIELDS, "uid"}
        if not change or changed:
            what = "changed" if change else "issued"
            record_rights_change(obj, what, actor=request.user, via="admin", changed=changed)

    def _set_status(self, request, queryset, status):
        for credential in queryset.exclude(status=status).select_related("holder"):
            try:
                set_badge_status(request.user, credential, status, via="admin")
            except Forbidden:
                self.message_user(
                    request,
                    _("%(badge)s: only facility staff change this badge.") % {"badge": credential},
                    messages.WARNING,
                )
            except Conflict:
                self.message_user(
                    request,
                    _("%(badge)s: a %(status)s badge cannot change like this.")
                    % {"badge": credential, "status": credential.get_status_display()},
                    messages.WARNING,
                )

    @admin.action(description=_("Suspend the selected badges"))
    def suspend(self, request, queryset):
        self._set_status(request, queryset, Credential.Status.SUSPENDED)

    @admin.action(description=_("Mark the selected badges as lost"))
    def mark_lost(self, request, queryset):
        self._set_status(request, queryset, Credential.Status.LOST)


@admin.register(VisitorPass)
class VisitorPassAdmin(admin.ModelAdmin):
    list_display = ["visitor_name", "visitor_company", "host", "start", "end", "space"]
    list_filter = ["start"]
    search_fields = ["visitor_name", "visitor_company", "host__email", "host__last_name"]
    autocomplete_fields = ["host", "space"]
    date_hierarchy = "start"
    list_select_related = ["host", "space"]


class DoorInline(admin.TabularInline):
    model = Door
    extra = 0
    fields = ["id", "name", "kind", "space", "is_active"]
    show_change_link = True


@admin.register(Controller)
class ControllerAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "is_active",
        "online",
        "last_seen",
        "firmware",
        "acl_version",
        "mqtt_password_set_at",
    ]
    list_filter = ["is_active", "online"]
    search_fields = ["id", "name"]
    readonly_fields = [
        "online",
        "last_seen",
        "last_heartbeat",
        "firmware",
        "acl_version",
        "mqtt_password_set_at",
    ]
    inlines = [DoorInline]
    actions = ["new_mqtt_password"]

    def get_readonly_fields(self, request, obj=None):
        # The id is the device's MQTT login and topic level: fixed once enrolled.
        return [*self.readonly_fields, "id"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        plaintext = None if obj.mqtt_password_hash else obj.set_mqtt_password()
        super().save_model(request, obj, form, change)
        if plaintext:
            self._show_password(request, obj, plaintext)

    def _show_password(self, request, controller, plaintext):
        messages.warning(
            request,
            _(
                "MQTT login of %(id)s: password %(password)s. Shown once: configure the "
                "device now, then regenerate the broker files (manage.py mosquitto_config)."
            )
            % {"id": controller.id, "password": plaintext},
        )

    @admin.action(description=_("Give the selected controllers a new MQTT password"))
    def new_mqtt_password(self, request, queryset):
        for controller in queryset:
            self._show_password(request, controller, controller.set_mqtt_password())


@admin.register(Door)
class DoorAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "controller",
        "kind",
        "space",
        "mode",
        "mode_version",
        "is_active",
    ]
    list_filter = ["kind", "mode", "is_active", "controller"]
    search_fields = ["id", "name", "space__code"]
    autocomplete_fields = ["controller", "space"]
    readonly_fields = ["mode", "mode_version"]
    list_select_related = ["controller", "space"]
    actions = ["mode_normal", "mode_passage", "mode_lockdown"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "id"] if obj else self.readonly_fields

    def _set_mode(self, request, queryset, mode):
        broker_down = False
        for door in queryset.select_related("controller"):
            if broker_down:  # saved anyway; no point waiting on the broker for each door
                if door.mode != mode:
                    door.set_mode(mode, actor=request.user)
                continue
            try:
                commands.set_door_mode(door, mode, by=request.user)
            except BrokerUnavailable as e:
                broker_down = True
                warn_not_published(request, e)

    @admin.action(description=_("Set the selected doors to normal"))
    def mode_normal(self, request, queryset):
        self._set_mode(request, queryset, Door.Mode.NORMAL)

    @admin.action(description=_("Hold the selected doors open"))
    def mode_passage(self, request, queryset):
        self._set_mode(request, queryset, Door.Mode.PASSAGE)

    @admin.action(description=_("Lock down the selected doors"))
    def mode_lockdown(self, request, queryset):
        self._set_mode(request, queryset, Door.Mode.LOCKDOWN)


@admin.register(SiteMode)
class SiteModeAdmin(admin.ModelAdmin):
    list_display = ["__str__", "lockdown", "version", "changed_at", "changed_by"]
    fields = ["lockdown", "version", "changed_at", "changed_by"]
    readonly_fields = ["version", "changed_at", "changed_by"]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not SiteMode.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # One path for lockdown, so that the version grows, the audit log says who and the
        # controllers are told.
        try:
            commands.set_lockdown(obj.lockdown, by=request.user)
        except BrokerUnavailable as e:
            warn_not_published(request, e)
        saved = SiteMode.current()
        obj.version, obj.changed_at, obj.changed_by = (
            saved.version,
            saved.changed_at,
            saved.changed_by,
        )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only (see access.models.AuditEvent)."""

    list_display = [
        "ts",
        "kind",
        "controller",
        "door",
        "person",
        "result",
        "reason",
        "latency_ms",
        "actor",
    ]
    list_filter = ["kind", "result", "reason"]
    search_fields = ["controller", "door", "equipment", "uid_hash", "person__email", "req_id"]
    date_hierarchy = "ts"
    list_select_related = ["person", "actor"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
