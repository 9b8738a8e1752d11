"""The home page and the staff console's hub, the two pages of the project package."""

from django.shortcuts import render
from django.utils import timezone

from bookings.engine import visible_bookings
from bookings.models import HOLDING, Status
from campus.roles import labs_required


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
        if person.runs_facility:
            context["pending_count"] = (
                visible_bookings(person)
                .filter(status=Status.PENDING, end__gte=timezone.now())
                .count()
            )
    return render(request, "config/home.html", context)


@labs_required
def staff_console(request):
    """The console's sections the person may open: labs for technicians, all for staff."""
    return render(
        request, "config/staff_console.html", {"facility_staff": request.user.runs_facility}
    )
