"""The facility staff's booking pages: the approval queue (approve, reject) and today's bookings."""

from datetime import datetime, timedelta

from django.contrib import messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from bookings import engine
from bookings.models import (
    HOLDING,
    Status,
)
from bookings.pages import describe
from campus import clock
from campus.roles import facility_required
from common.errors import DomainError


@facility_required
def approvals(request):
    """Pending requests, oldest slot first, each with the requests competing for it."""
    pending = list(
        engine.visible_bookings(request.user)
        .filter(status=Status.PENDING, end__gte=timezone.now())
        .order_by("start", "pk")
    )
    for b in pending:
        b.competitors = [
            o
            for o in pending
            if o.pk != b.pk
            and o.resource_id == b.resource_id
            and o.blocked_start < b.blocked_end
            and o.blocked_end > b.blocked_start
        ]
    return render(request, "bookings/approvals.html", {"pending": pending})


@facility_required
@require_POST
def decide(request, booking_id: int, decision: str):
    booking = get_object_or_404(engine.visible_bookings(request.user), pk=booking_id)
    try:
        if decision == "approve":
            engine.approve(request.user, booking)
            messages.success(request, _("Approved: %(what)s.") % {"what": describe(booking)})
        else:
            engine.reject(request.user, booking, note=request.POST.get("note", ""))
            messages.success(request, _("Rejected: %(what)s.") % {"what": describe(booking)})
    except DomainError as e:
        messages.error(request, e.detail)
    return redirect("approvals")


@facility_required
def today(request):
    """Every booking of a day (today by default), in start order."""
    try:
        day = datetime.strptime(request.GET.get("date", ""), "%Y-%m-%d").date()
    except ValueError:
        day = clock.today()
    following = clock.local_midnight(day + timedelta(days=1))
    bookings = (
        engine.visible_bookings(request.user)
        .filter(Q(start__lt=following) & Q(end__gt=clock.local_midnight(day)))
        .order_by("start", "resource__code")
    )
    context = {
        "day": day,
        "is_today": day == clock.today(),
        "previous_day": day - timedelta(days=1),
        "next_day": day + timedelta(days=1),
        "bookings": bookings,
        "active": sum(1 for b in bookings if b.status in HOLDING),
    }
    return render(request, "bookings/today.html", context)
