"""The portal's home page, sign-in form, "My account" pages (API tokens) and the staff
console's entry page; the booking pages live in `bookings.portal`, the lab pages in
`labs.portal` (staff) and `labs.tenant_portal` (tenants), the door pages in `access.portal`,
the tenant admin's in `campus.company`.

Staff pages are for facility staff (`facility_required`); the lab pages also for lab technicians
(`labs_required`). Anyone else gets a 403, whatever the page.
"""

import unicodedata

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from campus import invitations
from campus.auth import sign_in_locked, visible_tokens
from campus.models import ApiToken, Person


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
