"""The booking pages of the web portal: find and book a room, my bookings, the staff console.

Every write goes through `bookings.engine` (or `series`, built on it), like the API: the
portal turns a `DomainError` into a readable message and never writes Booking rows itself.
Who sees what is the engine's rule too (`visible_bookings`, `get_visible`,
`require_may_change`), as in the API: another tenant's booking is a 404, an action one may not
take a 403.
"""

from collections import defaultdict
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from bookings import availability, engine, series, waitlist
from bookings.forms import SearchForm, WhenForm, hidden_search_fields
from bookings.models import (
    Booking,
    PersonFeed,
    Resource,
    ResourceKind,
    Status,
    WaitlistEntry,
)
from bookings.policy import within_opening_hours
from campus import clock
from campus.models import Floor, Space
from common.errors import DomainError, Forbidden, NotFound
from common.forms import back_to

# ------------------------------------------------------------------ forms


# ------------------------------------------------------------------ helpers


def visible_booking(person, booking_id: int, *, to_change: bool = False) -> Booking:
    """The booking if the person may see it (else 404) and change it (else 403)."""
    try:
        booking = engine.get_visible(person, booking_id)
        if to_change:
            engine.require_may_change(person, booking)
    except NotFound as e:
        raise Http404(e.detail) from e
    except Forbidden as e:
        raise PermissionDenied(e.detail) from e
    return booking


def may_change(person, booking: Booking) -> bool:
    try:
        engine.require_may_change(person, booking)
    except Forbidden:
        return False
    return True


def describe(booking: Booking) -> str:
    start, end = clock.local(booking.start), clock.local(booking.end)
    return _("%(room)s on %(day)s, %(start)s–%(end)s") % {
        "room": booking.resource.name,
        "day": start.strftime("%d/%m/%Y"),
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
    }


def conflicts_of(error: DomainError) -> list[dict]:
    """The conflicting slots of a SlotTaken, in local time, for the page."""
    return [
        {
            "resource": c["resource"],
            "start": clock.local(datetime.fromisoformat(c["start"])),
            "end": clock.local(datetime.fromisoformat(c["end"])),
        }
        for c in error.data.get("conflicts", [])
    ]


def priced(resources, person) -> list[Resource]:
    """The facts a free room shows: its price for this person, approval, features."""
    policies = availability.policies_of(resources)
    names = defaultdict(list)
    for space_id, name in Space.features.through.objects.filter(
        space_id__in=[r.space_id for r in resources if r.space_id]
    ).values_list("space_id", "feature__name"):
        names[space_id].append(name)
    for r in resources:
        r.hourly_price = Decimal(r.price_per_hour_cents(person.tenant)) / 100
        r.needs_approval = policies[r.pk].approval_required
        r.feature_names = sorted(names[r.space_id])
    return resources


# ------------------------------------------------------------------ book a room


def suggest(resource: Resource, after: datetime) -> dict | None:
    """The room's next free interval, for the conflict message."""
    return suggestion(resource, availability.next_free_slot(resource, after))


def suggestion(resource: Resource, found: tuple | None) -> dict | None:
    """A free interval (availability.next_free_slot) as the pages show it."""
    if found is None:
        return None
    start, end = clock.local(found[0]), clock.local(found[1])
    ends_at_midnight = end.time() == time(0) and end.date() > start.date()
    return {
        "room": resource.name,
        "start": start,
        "end_label": "24:00" if ends_at_midnight else f"{end:%H:%M}",
    }


def refusal_text(error: DomainError) -> dict:
    return {"detail": error.detail, "code": error.code, "conflicts": conflicts_of(error)}


def preview_series(person, slot: engine.Slot, recurrence) -> dict:
    """Each occurrence of the wanted series, free or refused with the reason, as booking would
    answer (series.book_series in a dry run: nothing is kept)."""
    result = series.book_series(person, slot, recurrence, dry_run=True)
    rows = []
    for start, end, booking, refusal in result.outcomes():
        row = {"start": clock.local(start), "end": clock.local(end), "free": booking is not None}
        if booking is not None:
            row["pending"] = booking.status == Status.PENDING
        else:
            row["code"], row["detail"] = refusal.code, refusal.detail
        rows.append(row)
    free = len(result.booked)
    return {"rows": rows, "later": result.later, "free": free, "refused": len(result.refused)}


def book_the_series(request, slot: engine.Slot, form: SearchForm):
    """Book the series (all or nothing, or skipping conflicts); a redirect, or the refusal."""
    skip = request.POST.get("mode") != "all"
    result = series.book_series(
        request.user, slot, form.cleaned_data["recurrence"], skip_conflicts=skip
    )
    first = result.booked[0]
    messages.success(
        request,
        ngettext(
            "Booked %(n)s time: %(what)s, %(repeat)s.",
            "Booked %(n)s times: %(what)s, %(repeat)s.",
            len(result.booked),
        )
        % {"n": len(result.booked), "what": describe(first), "repeat": form.repeat_summary()},
    )
    for r in result.refused:
        messages.warning(
            request,
            _("Not booked on %(day)s: %(reason)s")
            % {"day": clock.local(r.start).strftime("%d/%m/%Y %H:%M"), "reason": r.detail},
        )
    return redirect(f"{reverse('my-bookings')}#booking-{first.pk}")


@login_required
def book(request):
    """Search free rooms (GET) and book one of them (POST, through the engine).

    With a repetition, a room's button previews the series first (every occurrence, free or
    refused with its reason), then books it all or nothing, or skipping the conflicts.
    """
    person = request.user
    error = None
    next_free = None
    preview = None
    resource = None
    status = 200
    if request.method == "POST":
        form = SearchForm(request.POST)
        action = request.POST.get("action", "book")
        resource = Resource.objects.filter(
            pk=request.POST.get("resource") or 0, is_active=True
        ).first()
        if form.is_valid() and resource is None:
            error = {"detail": _("This room cannot be booked any more; pick another.")}
            status = 422
        elif form.is_valid():
            d = form.cleaned_data
            slot = engine.Slot(resource, d["start_at"], d["end_at"], d["title"], d["capacity"])
            try:
                if d["recurrence"] and action == "series":
                    return book_the_series(request, slot, form)
                if d["recurrence"]:
                    preview = preview_series(person, slot, d["recurrence"])
                else:
                    booking = engine.book(person, slot)
            except DomainError as e:
                error = refusal_text(e)
                status = e.status
                if isinstance(e, engine.SlotTaken):
                    next_free = suggest(resource, d["start_at"])
                    error["waitlist"] = {"start": d["start_at"], "end": d["end_at"]}
                if isinstance(e, series.SeriesRefused):
                    preview = preview_series(person, slot, d["recurrence"])
            else:
                if preview is None:
                    if booking.status == Status.PENDING:
                        text = _("Request sent: %(what)s. It awaits staff approval.")
                    else:
                        text = _("Booked: %(what)s.")
                    messages.success(request, text % {"what": describe(booking)})
                    return redirect(f"{reverse('my-bookings')}#booking-{booking.pk}")
        else:
            status = 422
    elif "now" in request.GET:
        form = SearchForm(SearchForm.starting_now(request.GET))
    elif "date" in request.GET:
        form = SearchForm(request.GET)
    else:
        today = clock.today()
        form = SearchForm(initial={"date": today, "capacity": 1})
    free = None
    if form.is_bound and form.is_valid():
        d = form.cleaned_data
        free = availability.free_resources(
            d["start_at"],
            d["end_at"],
            kind=d["kind"] or None,
            min_capacity=d["capacity"],
            features=[f.code for f in d["feature"]],
        )
        # The smallest room that fits first: big rooms stay free for big meetings.
        rooms = [r for r in free if r.kind != ResourceKind.EQUIPMENT]
        free = priced(sorted(rooms, key=lambda r: (r.capacity, r.code)), person)
    context = {
        "form": form,
        "free": free,
        "error": error,
        "next_free": next_free,
        "preview": preview,
        "resource": resource,
        "repeat_summary": form.repeat_summary() if form.is_bound and form.is_valid() else "",
        "hidden": hidden_search_fields(form) if form.is_bound else [],
    }
    return render(request, "bookings/book.html", context, status=status)


@login_required
def day_grid(request):
    """A floor's rooms for one day, in half-hour slots: free or taken, in words; in the
    local time of the floor's site."""
    floors = list(
        Floor.objects.filter(spaces__resource__is_active=True)
        .select_related("building__site")
        .distinct()
    )
    floor = next((f for f in floors if str(f.pk) == request.GET.get("floor")), None)
    floor = floor or (floors[0] if floors else None)
    tz = clock.zone(floor.building.site.time_zone) if floor else clock.building_tz()
    try:
        day = datetime.strptime(request.GET.get("date", ""), "%Y-%m-%d").date()
    except ValueError:
        day = clock.today(tz)
    start_hour, end_hour = 8, 20
    slots = [clock.at(day, time(h, m), tz) for h in range(start_hour, end_hour) for m in (0, 30)]
    rows = []
    if floor is not None:
        resources = [
            r
            for r in availability.candidates(kind=None)
            if r.space and r.space.floor_id == floor.pk and r.kind != ResourceKind.EQUIPMENT
        ]
        busy = availability.busy_ranges(
            [r.pk for r in resources],
            clock.local_midnight(day, tz),
            clock.local_midnight(day + timedelta(days=1), tz),
        )
        policies = availability.policies_of(resources)
        closed_by_policy = {}
        for r in resources:
            pol = policies[r.pk]
            if pol.pk not in closed_by_policy:
                closed_by_policy[pol.pk] = day in engine.closed_days(pol, day, day)
            closed = closed_by_policy[pol.pk]
            cells = []
            for s in slots:
                e = s + timedelta(minutes=30)
                if any(b_s < e and b_e > s for b_s, b_e in busy.get(r.pk, ())):
                    state = "taken"
                elif closed or not within_opening_hours(pol.opening_hours, s, e):
                    state = "closed"
                else:
                    state = "free"
                cells.append({"start": s, "state": state})
            rows.append({"resource": r, "cells": cells})
    context = {
        "day": day,
        "previous_day": day - timedelta(days=1),
        "next_day": day + timedelta(days=1),
        "floors": floors,
        "floor": floor,
        "slots": slots,
        "rows": rows,
        "zone": tz,
    }
    return render(request, "bookings/day_grid.html", context)


# ------------------------------------------------------------------ my bookings


@login_required
def my_bookings(request):
    """The person's bookings; a tenant admin may switch to the whole company's."""
    person = request.user
    company = request.GET.get("scope") == "company" and person.is_tenant_admin
    qs = engine.visible_bookings(person)
    qs = qs.filter(tenant_id=person.tenant_id) if company else qs.filter(person=person)
    now = timezone.now()
    upcoming = list(qs.filter(end__gte=now).order_by("start", "pk")[:200])
    past = list(qs.filter(end__lt=now).order_by("-start", "-pk")[:50])
    for b in upcoming:
        allowed = may_change(person, b)
        b.can_cancel = allowed and b.status in (Status.PENDING, Status.CONFIRMED)
        b.can_move = b.can_cancel
        b.can_check_in = (
            allowed
            and b.status == Status.CONFIRMED
            and b.start - engine.CHECK_IN_OPENS_BEFORE <= now < b.end
        )
    context = {"upcoming": upcoming, "past": past, "company": company}
    return render(request, "bookings/my_bookings.html", context)


@login_required
def cancel_booking(request, booking_id: int):
    """GET asks for confirmation; POST cancels through the engine."""
    person = request.user
    booking = visible_booking(person, booking_id, to_change=True)
    if request.method == "POST":
        try:
            if request.POST.get("scope") == "following" and booking.series_id:
                done = series.cancel_following(person, booking)
            else:
                done = [engine.cancel(person, booking, reason=request.POST.get("reason", ""))]
        except DomainError as e:
            messages.error(request, e.detail)
        else:
            for b in done:
                messages.success(request, _("Cancelled: %(what)s.") % {"what": describe(b)})
        return redirect("my-bookings")
    pol = engine.policy_for(booking.resource)
    context = {"booking": booking, "policy": pol, "staff": person.runs_facility}
    return render(request, "bookings/cancel.html", context)


@login_required
def move_booking(request, booking_id: int):
    """Change a booking's time through `engine.move` (every rule checked again)."""
    person = request.user
    booking = visible_booking(person, booking_id, to_change=True)
    error = next_free = None
    status = 200
    if request.method == "POST":
        form = WhenForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                moved = engine.move(person, booking, d["start_at"], d["end_at"])
            except DomainError as e:
                error, status = refusal_text(e), e.status
                if isinstance(e, engine.SlotTaken):
                    next_free = suggest(booking.resource, d["start_at"])
            else:
                messages.success(request, _("Moved: %(what)s.") % {"what": describe(moved)})
                return redirect(f"{reverse('my-bookings')}#booking-{moved.pk}")
        else:
            status = 422
    else:
        form = WhenForm.of(booking)
    context = {"booking": booking, "form": form, "error": error, "next_free": next_free}
    return render(request, "bookings/move.html", context, status=status)


@login_required
@require_POST
def check_in(request, booking_id: int):
    person = request.user
    booking = visible_booking(person, booking_id, to_change=True)
    try:
        engine.check_in(person, booking)
    except DomainError as e:
        messages.error(request, e.detail)
    else:
        messages.success(request, _("Checked in: %(what)s.") % {"what": describe(booking)})
    return redirect(back_to(request, reverse("my-bookings")))


# ------------------------------------------------------------------ waitlist


def parse_moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return moment if moment.tzinfo else None


@login_required
@require_POST
def join_waitlist(request):
    """From a conflict message: queue for the taken slot (bookings.waitlist.join)."""
    resource = Resource.objects.filter(pk=request.POST.get("resource") or 0, is_active=True).first()
    start, end = parse_moment(request.POST.get("start")), parse_moment(request.POST.get("end"))
    if resource is None or start is None or end is None:
        messages.error(request, _("This slot cannot be found any more; search again."))
        return redirect("book")
    try:
        entry = waitlist.join(request.user, resource, start, end)
    except DomainError as e:
        messages.error(request, e.detail)
    else:
        messages.success(
            request,
            _("You are on the waiting list for %(what)s. You will get an e-mail if it frees up.")
            % {"what": describe(entry)},
        )
    return redirect("waitlist")


def my_entry(request, entry_id: int) -> WaitlistEntry:
    return get_object_or_404(waitlist.visible_entries(request.user), pk=entry_id)


@login_required
def my_waitlist(request):
    """My waiting-list entries: open ones first (offers on top), then the closed ones."""
    entries = list(
        waitlist.visible_entries(request.user)
        .filter(end__gte=timezone.now())
        .order_by("start", "pk")
    )
    now = timezone.now()
    live = (WaitlistEntry.State.WAITING, WaitlistEntry.State.OFFERED)
    for e in entries:
        e.offer_open = e.state == WaitlistEntry.State.OFFERED and e.offer_expires_at > now
    context = {
        "open": [e for e in entries if e.state in live],
        "closed": [e for e in entries if e.state not in live],
    }
    return render(request, "bookings/waitlist.html", context)


@login_required
@require_POST
def accept_offer(request, entry_id: int):
    entry = my_entry(request, entry_id)
    try:
        booking = waitlist.accept(request.user, entry)
    except DomainError as e:
        messages.error(request, e.detail)
        return redirect("waitlist")
    messages.success(request, _("Booked: %(what)s.") % {"what": describe(booking)})
    return redirect(f"{reverse('my-bookings')}#booking-{booking.pk}")


@login_required
@require_POST
def leave_waitlist(request, entry_id: int):
    entry = waitlist.leave(request.user, my_entry(request, entry_id))
    messages.success(request, _("Left the waiting list for %(what)s.") % {"what": describe(entry)})
    return redirect("waitlist")


# ------------------------------------------------------------------ calendar feed


@login_required
def calendar_feed(request):
    """The person's secret feed URL, how to subscribe to it, and a button to change it."""
    if request.method == "POST":
        PersonFeed.reset(request.user)
        messages.success(
            request, _("Your calendar link was changed: the old link no longer works.")
        )
        return redirect("calendar-feed")
    return render(request, "bookings/calendar_feed.html", {"feed": PersonFeed.of(request.user)})


# ------------------------------------------------------------------ staff console
