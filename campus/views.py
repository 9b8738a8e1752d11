"""The portal's home page, sign-in form, "My account" pages (API tokens) and the staff
console's entry page; the booking pages live in `bookings.portal`, the lab pages in
`labs.portal` (staff) and `labs.tenant_portal` (tenants), the door pages in `access.portal`,
the tenant admin's in `campus.company`.

Staff pages are for facility staff (`staff_required`); the lab pages also for lab technicians
(`lab_staff_required`). Anyone else gets a 403, whatever the page.
"""

import base64
import binascii
import unicodedata
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse_lazy
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from bookings.engine import visible_bookings
from bookings.models import HOLDING, Status
from campus import invitations, onboarding
from campus.auth import is_staff, visible_tokens
from campus.models import ApiToken, Person
from campus.ops import sign_in_locked


def is_lab_staff(person) -> bool:
    # Imported late: labs imports bookings, whose portal imports this module.
    from labs.maintenance import is_lab_staff

    return is_lab_staff(person)


def _role_required(check):
    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


staff_required = _role_required(is_staff)
lab_staff_required = _role_required(is_lab_staff)


class SignInForm(AuthenticationForm):
    """Django's sign-in form, with an e-mail input (phones show the right keyboard)."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].widget.input_type = "email"
        self.fields["username"].widget.attrs["autocomplete"] = "username"
        self.fields["password"].widget.attrs["autocomplete"] = "current-password"

    def get_invalid_login_error(self):
        # Said for any e-mail address, an account's or not: it tells nothing of who exists.
        if sign_in_locked(self.cleaned_data.get("username") or ""):
            return ValidationError(
                _(
                    "Too many failed sign-ins with this e-mail address: wait 15 minutes, "
                    "then try again (the right password waits too)."
                ),
                code="locked",
            )
        return super().get_invalid_login_error()


def _folded(address: str) -> str:
    return unicodedata.normalize("NFKC", address).casefold()


class ResetForm(PasswordResetForm):
    """Django's reset form, also for an active person who has no password yet (an invited
    one whose link expired or got lost): Django's skips them, for sites where such users sign
    in some other way; here everybody signs in with a password."""

    def get_users(self, email):
        people = Person.objects.filter(email__iexact=email, is_active=True)
        # iexact may match addresses that differ beyond case in some collations: compare again.
        return (p for p in people if _folded(p.email) == _folded(email))


class InvitationConfirmView(auth_views.PasswordResetConfirmView):
    """The invitation's link: choose a first password (campus.invitations' tokens: 7 days,
    once). An expired or used link shows how to get a new one."""

    template_name = "campus/auth/invitation_confirm.html"
    token_generator = invitations.tokens
    success_url = reverse_lazy("invitation_complete")

    def get_user(self, uidb64):
        person = super().get_user(uidb64)
        return person if person is not None and person.is_active else None

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "days": invitations.VALID_FOR.days}


def home(request):
    """Anonymous visitors get a welcome and the sign-in link; people their next bookings."""
    context = {}
    person = request.user
    if person.is_authenticated:
        context["next_bookings"] = (
            visible_bookings(person)
            .filter(person=person, status__in=HOLDING, end__gte=timezone.now())
            .order_by("start")[:3]
        )
        if is_staff(person):
            context["pending_count"] = (
                visible_bookings(person)
                .filter(status=Status.PENDING, end__gte=timezone.now())
                .count()
            )
    return render(request, "campus/home.html", context)


@lab_staff_required
def staff_console(request):
    """The console's sections the person may open: labs for technicians, all for staff."""
    return render(request, "campus/staff_console.html", {"facility_staff": is_staff(request.user)})


class ImportForm(forms.Form):
    """A CSV file, or (after a clean dry run) the same file carried back by the page."""

    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    content = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > onboarding.MAX_BYTES:
                self.add_error("file", _("The file is larger than 1 MB: split it."))
                return data
            data["bytes"] = upload.read()
        elif data.get("content"):
            try:
                data["bytes"] = base64.b64decode(data["content"], validate=True)
            except (binascii.Error, ValueError):
                self.add_error("file", _("Choose the file again."))
        else:
            self.add_error("file", _("Choose a CSV file."))
        return data


@staff_required
def import_people(request):
    """Check a file (dry run: nothing is saved), then import it, all rows or none."""
    form = ImportForm(request.POST or None, request.FILES or None)
    context = {"form": form, "columns": onboarding.COLUMNS}
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "campus/import_people.html", context, status=422)
        data = form.cleaned_data["bytes"]
        commit = request.POST.get("step") == "import"
        result = onboarding.import_people(data, by=request.user, commit=commit)
        if result.committed:
            messages.success(
                request,
                _("Imported: %(tenants)s new tenant(s), %(people)s person(s), %(badges)s badge(s).")
                % {
                    "tenants": len(result.tenants),
                    "people": result.people,
                    "badges": result.badges,
                },
            )
            return redirect("import-people")
        context.update(
            result=result,
            content=base64.b64encode(data).decode() if result.ok else "",
            name=getattr(form.cleaned_data.get("file"), "name", "") or request.POST.get("name"),
        )
        status = 200 if result.ok else 422
    return render(request, "campus/import_people.html", context, status=status)


@login_required
def account(request):
    """My account: the waiting list, the calendar feed, API tokens."""
    return render(request, "campus/account.html")


class TokenForm(forms.ModelForm):
    """A new personal API token: only its name is chosen (the model bounds it)."""

    class Meta:
        model = ApiToken
        fields = ["name"]
        help_texts = {"name": gettext_lazy("What it is for, e.g. “Accounting export”.")}


@login_required
def api_tokens(request):
    """Create a token (shown once, on this answer only), list mine, revoke one."""
    person = request.user
    created = plaintext = None
    form = TokenForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            created, plaintext = ApiToken.issue(person, form.cleaned_data["name"])
            form = TokenForm()
        else:
            status = 422
    context = {
        "form": form,
        "created": created,
        "plaintext": plaintext,
        "tokens": visible_tokens(person),
    }
    response = render(request, "campus/api_tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may hold a token shown only once
    return response


@login_required
@require_POST
def revoke_token(request, token_id: int):
    token = get_object_or_404(visible_tokens(request.user), pk=token_id)
    token.revoke()
    messages.success(request, _("Revoked: the token %(name)s no longer works.") % {"name": token})
    return redirect("api-tokens")


urlpatterns = [
    path("account/", account, name="account"),
    path("account/tokens/", api_tokens, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke/", revoke_token, name="api-token-revoke"),
]
