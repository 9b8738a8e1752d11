"""The printable roll call: who is inside now, for the fire warden at the assembly point."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone

from access import occupancy
from campus.auth import is_staff


@login_required
def occupancy_print(request):
    if not is_staff(request.user):
        raise PermissionDenied
    now = timezone.now()
    inside = occupancy.who_is_inside(now)
    response = render(
        request,
        "access/occupancy_print.html",
        {
            "inside": inside,
            "visitors": sum(p.is_visitor for p in inside),
            "at": now,
            "since": occupancy.since_midnight(now),
        },
    )
    response["Cache-Control"] = "no-store"  # a list of people: never from a cache
    return response
