"""The portal's home page, sign-in form and the staff console's entry page; the booking pages
live in `bookings.portal`, the lab pages in `labs.portal`, the door pages in `access.portal`.

Staff pages are for facility staff (`staff_required`); the lab pages also for lab technicians
(`lab_staff_required`). Anyone else gets a 403, whatever the page.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone

from bookings.models import HOLDING, Booking, Status
from campus.auth import is_staff


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


@lab_staff_required
def staff_console(request):
    """The console's sections the person may open: labs for technicians, all for staff."""
    return render(request, "campus/staff_console.html", {"facility_staff": is_staff(request.user)})
