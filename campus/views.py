"""The portal's home page and sign-in form; the booking pages live in `bookings.portal`."""

from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render
from django.utils import timezone

from bookings.models import HOLDING, Booking, Status
from campus.auth import is_staff


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
