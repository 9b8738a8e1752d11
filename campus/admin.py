"""The back-office for facility staff: every campus model, searchable and filterable.

Lab technicians reach it too (`Person.is_staff`), with view rights only on campus models;
people are written under the rule of the API and the portal
(`campus.people.require_may_write_person`), checked on every form and action here as well.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.utils.translation import gettext_lazy as _

from campus import invitations
from campus.models import ApiToken, Building, Feature, Floor, Lease, Person, Site, Space, Tenant
from campus.people import may_write_person, require_may_write_person, resend_invitation
from common.errors import DomainError


class FloorInline(admin.TabularInline):
    model = Floor
    extra = 0


class BuildingInline(admin.TabularInline):
    model = Building
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "time_zone"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [BuildingInline]


@admin.register(Building)
class BuildingAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "site", "area_m2"]
    list_filter = ["site"]
    inlines = [FloorInline]


@admin.register(Floor)
class FloorAdmin(admin.ModelAdmin):
    list_display = ["__str__", "building", "level"]
    list_filter = ["building"]


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    search_fields = ["code", "name"]


@admin.register(Space)
class SpaceAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "floor", "capacity", "area_m2", "bookable", "is_active"]
    list_filter = ["kind", "floor", "bookable", "is_active", "features"]
    search_fields = ["code", "name"]
    filter_horizontal = ["features"]
    list_select_related = ["floor__building"]


class LeaseInline(admin.TabularInline):
    model = Lease
    extra = 0
    autocomplete_fields = ["space"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "tier", "status", "contract_start", "contract_end"]
    list_filter = ["tier", "status"]
    search_fields = ["name", "contact_email"]
    inlines = [LeaseInline]


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["space", "tenant", "start", "end"]
    list_filter = ["space__floor"]
    search_fields = ["space__code", "tenant__name"]
    autocomplete_fields = ["tenant", "space"]
    list_select_related = ["space", "tenant"]


class PersonRuleForm:
    """Checks the fields changed against `require_may_write_person`, as the API does.
    `actor` is set by PersonAdmin.get_form; `instance` still holds the saved values here."""

    actor: Person | None = None

    def clean(self):
        data = super().clean()
        changed = {name: data.get(name) for name in self.changed_data if name in data}
        if "tenant" in changed:
            tenant = changed.pop("tenant")
            changed["tenant_id"] = tenant.pk if tenant else None
        target = None if self.instance._state.adding else self.instance
        try:
            require_may_write_person(self.actor, changed, target)
        except DomainError as e:
            raise forms.ValidationError(e.detail) from None
        return data


class PersonCreationForm(PersonRuleForm, AdminUserCreationForm):
    class Meta:
        model = Person
        fields = ["email", "first_name", "last_name", "tenant", "language"]


class PersonChangeForm(PersonRuleForm, UserChangeForm):
    class Meta:
        model = Person
        fields = "__all__"


@admin.register(Person)
class PersonAdmin(UserAdmin):
    form = PersonChangeForm
    add_form = PersonCreationForm
    list_display = [
        "email",
        "first_name",
        "last_name",
        "tenant",
        "is_tenant_admin",
        "is_facility_staff",
        "is_lab_technician",
        "is_active",
    ]
    list_filter = [
        "is_facility_staff",
        "is_lab_technician",
        "is_tenant_admin",
        "is_active",
        "tenant",
    ]
    search_fields = ["email", "first_name", "last_name", "tenant__name"]
    ordering = ["last_name", "first_name"]
    autocomplete_fields = ["tenant"]
    list_select_related = ["tenant"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        (_("Identity"), {"fields": ["first_name", "last_name", "phone", "language"]}),
        (
            _("Roles"),
            {
                "fields": [
                    "tenant",
                    "is_tenant_admin",
                    "is_facility_staff",
                    "is_lab_technician",
                    "is_active",
                    "is_superuser",
                ]
            },
        ),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": [
                    "email",
                    "first_name",
                    "last_name",
                    "tenant",
                    "language",
                    "usable_password",
                    "password1",
                    "password2",
                ],
                "description": _(
                    "Without a password, the person gets an e-mail inviting them to choose one."
                ),
            },
        ),
    ]
    readonly_fields = ["last_login", "date_joined"]
    actions = ["send_invitation"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)  # a class of its own for each call
        form.actor = request.user
        return form

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_write_person(request.user, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_write_person(request.user, obj))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            invitations.invite(obj, by=request.user)

    @admin.action(description=_("Send the invitation again"), permissions=["change"])
    def send_invitation(self, request, queryset):
        sent = 0
        for person in queryset:
            try:
                resend_invitation(request.user, person)
            except DomainError as e:
                self.message_user(request, e.detail, messages.WARNING)
            else:
                sent += 1
        if sent:
            self.message_user(
                request, _("Invitations sent: %(n)s.") % {"n": sent}, messages.SUCCESS
            )


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["person", "name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created here with their plaintext shown once, in a message; never stored."""

    list_display = ["name", "person", "hint", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "person__email"]
    autocomplete_fields = ["person"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["person", "name", "hint", "created_at", "last_used_at"]
        return []

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        token, plaintext = ApiToken.issue(obj.person, obj.name)
        obj.pk = token.pk
        obj.__dict__.update(token.__dict__)
        self.message_user(
            request,
            _("Token created. Copy it now, it will not be shown again: %(t)s") % {"t": plaintext},
            messages.WARNING,
        )

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request, queryset):
        for token in queryset:
            token.revoke()
