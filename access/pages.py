"""The tenant admin's pages ("My company"): the company's people and their badges, visitor
invitations and the monthly usage statement.

Only a tenant admin reaches them (403 for anyone else, staff included: staff have the
back-office), and only for their own tenant: another tenant's person, badge or visit is a
404. Every change goes through the function the API uses (`campus.people.add_person`,
`resend_invitation`, `access.badges.register_badge`, `set_badge_status`,
`access.visitors.expect_visitor`), so the rules and the audit log are the same whichever way
a change comes in; the portal records `via="portal"`. A staff member or technician of the
company is listed but left to facility staff (`campus.people.require_may_write_person`): a
403 if tried.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from access.badges import register_badge, set_badge_status, visible_credentials
from access.models import Credential
from access.visitors import expect_visitor, visible_visits
from bookings.forms import WhenForm
from campus import clock, invitations
from campus.models import Person, Space
from campus.people import add_person, badge_holders, may_write_person, visible_people
from campus.people import resend_invitation as resend
from campus.roles import tenant_admin_required
from common.errors import DomainError, Forbidden
from common.forms import show_error

VIA = "portal"


# ------------------------------------------------------------------ forms


class ColleagueForm(forms.ModelForm):
    """A new person of the company; the model bounds every field."""

    class Meta:
        model = Person
        fields = ["first_name", "last_name", "email", "phone", "language", "is_tenant_admin"]
        labels = {
            "is_tenant_admin": gettext_lazy("Tenant admin (manages people, badges, visitors)")
        }

    def validate_unique(self):
        pass  # add_person checks everything, uniqueness included, and says which field


class BadgeForm(forms.Form):
    holder = forms.ModelChoiceField(
        label=gettext_lazy("Whose badge"), queryset=Person.objects.none()
    )
    uid = forms.CharField(
        label=gettext_lazy("Badge UID"),
        max_length=64,
        help_text=gettext_lazy(
            "As the reader shows it, e.g. 04:A1:B2:C3. Only a fingerprint is kept."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    label = forms.CharField(
        label=gettext_lazy("Number printed on the badge (optional)"),
        max_length=Credential._meta.get_field("label").max_length,
        required=False,
    )

    def __init__(self, *args, admin: Person, **kwargs):
        super().__init__(*args, **kwargs)
        # The company's active people whose badges the admin may write (register_badge checks
        # it again).
        self.fields["holder"].queryset = badge_holders(admin).filter(
            tenant_id=admin.tenant_id, is_active=True
        )


class ReasonForm(forms.Form):
    why = forms.CharField(
        label=gettext_lazy("Why (optional, kept in the log)"), max_length=200, required=False
    )


class VisitorForm(WhenForm):
    visitor_name = forms.CharField(label=gettext_lazy("Visitor's name"), max_length=160)
    visitor_company = forms.CharField(
        label=gettext_lazy("Visitor's company (optional)"), max_length=160, required=False
    )
    space = forms.ModelChoiceField(
        label=gettext_lazy("Room visited (besides the entrance)"),
        queryset=Space.objects.none(),
        required=False,
        empty_label=gettext_lazy("entrance only"),
    )
    host = forms.ModelChoiceField(label=gettext_lazy("Host"), queryset=Person.objects.none())

    field_order = ["visitor_name", "visitor_company", "date", "start", "end", "space", "host"]

    def __init__(self, *args, tenant_id: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["host"].queryset = Person.objects.filter(tenant_id=tenant_id, is_active=True)
        today = clock.today()
        leased = Q(leases__tenant_id=tenant_id) & (
            Q(leases__end__isnull=True) | Q(leases__end__gte=today)
        )
        shared = Q(bookable=True) & ~Q(kind__in=Space.LEASABLE_KINDS)
        self.fields["space"].queryset = (
            Space.objects.filter(is_active=True).filter(leased | shared).distinct().order_by("code")
        )


# ------------------------------------------------------------------ pages


@tenant_admin_required
def company(request):
    return render(request, "access/company/index.html")


def people_of(admin: Person) -> list[Person]:
    """The company's people with their badges, each marked with whether the admin may change
    them (`writable`) and whether they still have to choose a password (`invited`)."""
    badges = visible_credentials(admin).filter(kind=Credential.Kind.BADGE).order_by("-created_at")
    people = list(
        visible_people(admin)
        .filter(tenant_id=admin.tenant_id)
        .prefetch_related(Prefetch("credentials", queryset=badges, to_attr="badges"))
        .order_by("last_name", "first_name")
    )
    for person in people:
        person.writable = may_write_person(admin, person)
        person.invited = person.is_active and not person.has_usable_password()
    return people


@tenant_admin_required
def people(request):
    """The company's people and their badges; add a colleague; register a badge."""
    admin = request.user
    colleague = ColleagueForm(prefix="person")
    badge = BadgeForm(prefix="badge", admin=admin, initial={"holder": request.GET.get("holder")})
    status = 200
    if request.method == "POST" and request.POST.get("action") == "add-person":
        colleague = ColleagueForm(request.POST, prefix="person")
        if colleague.is_valid():
            try:
                person = add_person(admin, {**colleague.cleaned_data, "tenant_id": admin.tenant_id})
            except (ValidationError, DomainError) as e:
                show_error(colleague, e, {})
            else:
                messages.success(
                    request,
                    _(
                        "%(name)s was added: an e-mail to %(email)s invites them to choose "
                        "a password."
                    )
                    % {"name": person.get_full_name(), "email": person.email},
                )
                return redirect(f"{reverse('company-people')}#person-{person.pk}")
        status = 422
    elif request.method == "POST" and request.POST.get("action") == "add-badge":
        badge = BadgeForm(request.POST, prefix="badge", admin=admin)
        if badge.is_valid():
            d = badge.cleaned_data
            try:
                credential = register_badge(
                    admin, d["uid"], holder_id=d["holder"].pk, label=d["label"], via=VIA
                )
            except (ValidationError, DomainError) as e:
                show_error(badge, e, {"holder_id": "holder"})
            else:
                messages.success(
                    request,
                    _("Badge …%(hint)s registered for %(name)s.")
                    % {"hint": credential.uid_hint, "name": credential.holder.get_full_name()},
                )
                return redirect(f"{reverse('company-people')}#person-{credential.holder_id}")
        status = 422
    context = {"people": people_of(admin), "colleague": colleague, "badge": badge}
    return render(request, "access/company/people.html", context, status=status)


BADGE_ACTIONS = {
    "suspend": (
        Credential.Status.SUSPENDED,
        gettext_lazy("Badge …%(hint)s of %(name)s suspended."),
    ),
    "report-lost": (
        Credential.Status.LOST,
        gettext_lazy("Badge …%(hint)s of %(name)s reported lost."),
    ),
    "reactivate": (
        Credential.Status.ACTIVE,
        gettext_lazy("Badge …%(hint)s of %(name)s active again."),
    ),
}


@tenant_admin_required
@require_POST
def badge_action(request, credential_id: int, action: str):
    """Suspend, report lost or reactivate a badge of the company
    (access.badges.set_badge_status)."""
    if action not in BADGE_ACTIONS:
        raise Http404
    credential = get_object_or_404(visible_credentials(request.user), pk=credential_id)
    status, done = BADGE_ACTIONS[action]
    reason = ReasonForm(request.POST)
    why = reason.cleaned_data["why"] if reason.is_valid() else ""
    try:
        set_badge_status(request.user, credential, status, why=why, via=VIA)
    except Forbidden as e:
        raise PermissionDenied(e.detail) from None
    except DomainError as e:
        messages.error(request, e.detail)
    else:
        holder = credential.holder or credential.visitor_pass
        name = holder.get_full_name() if isinstance(holder, Person) else str(holder)
        messages.success(request, done % {"hint": credential.uid_hint, "name": name})
    anchor = f"#person-{credential.holder_id}" if credential.holder_id else ""
    return redirect(reverse("company-people") + anchor)


@tenant_admin_required
@require_POST
def resend_invitation(request, person_id: int):
    """Send a colleague's invitation again (campus.people.resend_invitation, like the API's)."""
    person = get_object_or_404(
        visible_people(request.user).filter(tenant_id=request.user.tenant_id), pk=person_id
    )
    try:
        resend(request.user, person)
    except Forbidden as e:
        raise PermissionDenied(e.detail) from None
    except DomainError as e:
        messages.error(request, e.detail)
    else:
        messages.success(
            request,
            _(
                "The invitation was sent again to %(email)s; the new link is valid for "
                "%(days)s days."
            )
            % {"email": person.email, "days": invitations.VALID_FOR.days},
        )
    return redirect(f"{reverse('company-people')}#person-{person.pk}")


@tenant_admin_required
def visitors(request):
    """Invite a visitor (access.visitors.expect_visitor, like POST /visitors); the coming visits."""
    admin = request.user
    form = VisitorForm(tenant_id=admin.tenant_id, initial={"host": admin.pk, "date": clock.today()})
    status = 200
    if request.method == "POST":
        form = VisitorForm(request.POST, tenant_id=admin.tenant_id)
        if form.is_valid():
            d = form.cleaned_data
            try:
                visit = expect_visitor(
                    admin,
                    d["visitor_name"],
                    d["start_at"],
                    d["end_at"],
                    visitor_company=d["visitor_company"],
                    host_id=d["host"].pk,
                    space_id=d["space"].pk if d["space"] else None,
                    via=VIA,
                )
            except (ValidationError, DomainError) as e:
                show_error(
                    form,
                    e,
                    {"host_id": "host", "space_id": "space", "visitor_name": "visitor_name"},
                )
            else:
                start = clock.local(visit.start)
                messages.success(
                    request,
                    _(
                        "%(visitor)s is expected on %(day)s from %(start)s to %(end)s; "
                        "reception has the pass."
                    )
                    % {
                        "visitor": visit.visitor_name,
                        "day": start.strftime("%d/%m/%Y"),
                        "start": start.strftime("%H:%M"),
                        "end": clock.local(visit.end).strftime("%H:%M"),
                    },
                )
                return redirect("company-visitors")
        status = 422
    visits = visible_visits(admin).filter(end__gte=timezone.now()).order_by("start", "pk")
    return render(
        request, "access/company/visitors.html", {"form": form, "visits": visits}, status=status
    )
