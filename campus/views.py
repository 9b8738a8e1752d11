"""The portal's home page, sign-in form and "My account" pages (API tokens); the booking
pages live in `bookings.portal`, the tenant admin's in `campus.company`."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from bookings.models import HOLDING, Booking, Status
from campus.auth import is_staff
from campus.models import ApiToken


class SignInForm(AuthenticationForm):
    """Django's sign-in form, with an e-mail input (phones show the right keyboard)."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].widget.input_type = "email"
        self.fields["username"].widget.attrs["autocomplete"] = "username"
        self.fields["password"].widget.attrs["autocomplete"] = "current-password"


def home(request):
    """Anonymous visitors get a welcome and the sign-in link; people their next bookings."""
    context = {}
    person = request.user
    if person.is_authenticated:
        context["next_bookings"] = (
            Booking.objects.filter(person=person, status__in=HOLDING, end__gte=timezone.now())
            .select_related("resource")
            .order_by("start")[:3]
        )
        if is_staff(person):
            context["pending_count"] = Booking.objects.filter(
                status=Status.PENDING, end__gte=timezone.now()
            ).count()
    return render(request, "campus/home.html", context)


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
        "tokens": person.api_tokens.all(),
    }
    response = render(request, "campus/api_tokens.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may hold a token shown only once
    return response


@login_required
@require_POST
def revoke_token(request, token_id: int):
    token = get_object_or_404(request.user.api_tokens.all(), pk=token_id)
    token.revoke()
    messages.success(request, _("Revoked: the token %(name)s no longer works.") % {"name": token})
    return redirect("api-tokens")


urlpatterns = [
    path("account/", account, name="account"),
    path("account/tokens/", api_tokens, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke/", revoke_token, name="api-token-revoke"),
]
