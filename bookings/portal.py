"""The booking pages of the web portal: find and book a room, my bookings, the staff console.

Every write goes through `bookings.engine` (or `series`, built on it), like the API: the
portal turns a `DomainError` into a readable message and never writes Booking rows itself.
Who sees what is the engine's rule too (`get_visible`, `require_may_change`): another
tenant's booking is a 404, an action one may not take a 403.
"""

from collections import defaultdict
from datetime import datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from bookings import availability, engine, reports, series
from bookings.models import HOLDING, Booking, Resource, ResourceKind, Status
from bookings.policy import within_opening_hours
from campus.auth import is_staff
from campus.errors import DomainError, Forbidden, NotFound
from campus.models import Feature, Floor, Space
from campus.views import staff_required

ROOM_KINDS = [(k, label) for k, label in ResourceKind.choices if k != ResourceKind.EQUIPMENT]
STEP = timedelta(minutes=15)


def local(moment: datetime) -> datetime:
    return moment.astimezone(engine.building_tz())


def at(day, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=engine.building_tz())


# ------------------------------------------------------------------ forms


class SearchForm(forms.Form):
    """What the person wants: when, for how many, with what. Times are local (building)."""

    date = forms.DateField(
        label=gettext_lazy("Date"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    start = forms.TimeField(
        label=gettext_lazy("Start time"),
        widget=forms.TimeInput(attrs={"type": "time", "step": 900}, format="%H:%M"),
    )
    end = forms.TimeField(
        label=gettext_lazy("End time"),
        widget=forms.TimeInput(attrs={"type": "time", "step": 900}, format="%H:%M"),
    )
    capacity = forms.IntegerField(
        label=gettext_lazy("Number of people"),
        min_value=1,
        max_value=1000,
        initial=1,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind of room"),
        choices=[("", gettext_lazy("any kind")), *ROOM_KINDS],
        required=False,
    )
    feature = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Features"),
        queryset=Feature.objects.none(),
        to_field_name="code",
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    title = forms.CharField(label=gettext_lazy("Title (optional)"), max_length=160, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the features some bookable room offers: nobody searches for the rest.
        self.fields["feature"].queryset = Feature.objects.filter(
            spaces__resource__is_active=True
        ).distinct()

    def clean(self):
        data = super().clean()
        day, start, end = data.get("date"), data.get("start"), data.get("end")
        if day and start and end:
            if end <= start:
                self.add_error("end", _("The end time must be after the start time."))
            else:
                data["start_at"], data["end_at"] = at(day, start), at(day, end)
        return data

    @classmethod
    def starting_now(cls, query) -> dict:
        """The query with date and times replaced by the next quarter-hour, for an hour."""
        now = local(timezone.now())
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start = midnight + -(-(now - midnight) // STEP) * STEP
        end = start + timedelta(hours=1)
        data = query.copy()
        data["date"] = start.date().isoformat()
        data["start"] = f"{start:%H:%M}"
        data["end"] = f"{end:%H:%M}" if end.date() == start.date() else "23:59"
        data.pop("now", None)
        return data


def hidden_search_fields(form: SearchForm) -> list[tuple[str, str]]:
    """The search as (name, value) pairs, carried by each Book button."""
    return [(name, value) for name in form.fields for value in form.data.getlist(name)]


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
    start, end = local(booking.start), local(booking.end)
    return _("%(room)s on %(day)s, %(start)s–%(end)s") % {
        "room": booking.resource.name,
        "day": start.strftime("%d/%m/%Y"),
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
    }


def back_to(request, default: str) -> str:
    target = request.POST.get("next") or default
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


def conflicts_of(error: DomainError) -> list[dict]:
    """The conflicting slots of a SlotTaken, in local time, for the page."""
    return [
        {
            "resource": c["resource"],
            "start": local(datetime.fromisoformat(c["start"])),
            "end": local(datetime.fromisoformat(c["end"])),
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
    found = availability.next_free_slot(resource, after)
    if found is None:
        return None
    start, end = local(found[0]), local(found[1])
    ends_at_midnight = end.time() == time(0) and end.date() > start.date()
    return {
        "room": resource.name,
        "start": start,
        "end_label": "24:00" if ends_at_midnight else f"{end:%H:%M}",
    }


@login_required
def book(request):
    """Search free rooms (GET) and book one of them (POST, through the engine)."""
    person = request.user
    error = None
    next_free = None
    status = 200
    if request.method == "POST":
        form = SearchForm(request.POST)
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
                booking = engine.book(person, slot)
            except DomainError as e:
                error = {"detail": e.detail, "code": e.code, "conflicts": conflicts_of(e)}
                status = e.status
                if isinstance(e, engine.SlotTaken):
                    next_free = suggest(resource, d["start_at"])
            else:
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
        today = local(timezone.now()).date()
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
        "hidden": hidden_search_fields(form) if form.is_bound else [],
    }
    return render(request, "bookings/book.html", context, status=status)


@login_required
def day_grid(request):
    """A floor's rooms for one day, in half-hour slots: free or taken, in words."""
    tz = engine.building_tz()
    try:
        day = datetime.strptime(request.GET.get("date", ""), "%Y-%m-%d").date()
    except ValueError:
        day = local(timezone.now()).date()
    floors = list(Floor.objects.filter(spaces__resource__is_active=True).distinct())
    floor = next((f for f in floors if str(f.pk) == request.GET.get("floor")), None)
    floor = floor or (floors[0] if floors else None)
    start_hour, end_hour = 8, 20
    slots = [at(day, time(h, m)) for h in range(start_hour, end_hour) for m in (0, 30)]
    rows = []
    if floor is not None:
        resources = [
            r
            for r in availability.candidates(kind=None)
            if r.space and r.space.floor_id == floor.pk and r.kind != ResourceKind.EQUIPMENT
        ]
        busy = availability.busy_ranges(
            [r.pk for r in resources], at(day, time(0)), at(day + timedelta(days=1), time(0))
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
                cells.append({"start": s.astimezone(tz), "state": state})
            rows.append({"resource": r, "cells": cells})
    context = {
        "day": day,
        "previous_day": day - timedelta(days=1),
        "next_day": day + timedelta(days=1),
        "floors": floors,
        "floor": floor,
        "slots": slots,
        "rows": rows,
    }
    return render(request, "bookings/day_grid.html", context)


# ------------------------------------------------------------------ my bookings


@login_required
def my_bookings(request):
    """The person's bookings; a tenant admin may switch to the whole company's."""
    person = request.user
    company = request.GET.get("scope") == "company" and person.is_tenant_admin
    qs = Booking.objects.select_related("resource", "person")
    qs = qs.filter(tenant_id=person.tenant_id) if company else qs.filter(person=person)
    now = timezone.now()
    upcoming = list(qs.filter(end__gte=now).order_by("start", "pk")[:200])
    past = list(qs.filter(end__lt=now).order_by("-start", "-pk")[:50])
    for b in upcoming:
        allowed = may_change(person, b)
        b.can_cancel = allowed and b.status in (Status.PENDING, Status.CONFIRMED)
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
    context = {"booking": booking, "policy": pol, "staff": is_staff(person)}
    return render(request, "bookings/cancel.html", context)


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


# ------------------------------------------------------------------ staff console


@staff_required
def approvals(request):
    """Pending requests, oldest slot first, each with the requests competing for it."""
    pending = list(
        Booking.objects.filter(status=Status.PENDING, end__gte=timezone.now())
        .select_related("resource", "person", "tenant")
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


@staff_required
@require_POST
def decide(request, booking_id: int, decision: str):
    booking = get_object_or_404(Booking.objects.select_related("resource"), pk=booking_id)
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


@staff_required
def today(request):
    """Every booking of a day (today by default), in start order."""
    try:
        day = datetime.strptime(request.GET.get("date", ""), "%Y-%m-%d").date()
    except ValueError:
        day = local(timezone.now()).date()
    bookings = (
        Booking.objects.filter(
            Q(start__lt=at(day + timedelta(days=1), time(0))) & Q(end__gt=at(day, time(0)))
        )
        .select_related("resource", "person", "tenant")
        .order_by("start", "resource__code")
    )
    context = {
        "day": day,
        "is_today": day == local(timezone.now()).date(),
        "previous_day": day - timedelta(days=1),
        "next_day": day + timedelta(days=1),
        "bookings": bookings,
        "active": sum(1 for b in bookings if b.status in HOLDING),
    }
    return render(request, "bookings/today.html", context)


class MonthForm(forms.Form):
    month = forms.RegexField(
        label=gettext_lazy("Month"),
        regex=r"^\d{4}-(0[1-9]|1[0-2])$",
        error_messages={"invalid": gettext_lazy("Write the month as YYYY-MM, e.g. 2026-03.")},
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
    )


@staff_required
def report(request):
    """A month's utilisation, measured use, no-shows and busiest hours; `format=csv` for a
    spreadsheet (`decimal=comma` for a French one)."""
    data = request.GET.copy()
    data.setdefault("month", f"{local(timezone.now()):%Y-%m}")
    form = MonthForm(data)
    if not form.is_valid():
        return render(request, "bookings/report.html", {"form": form}, status=422)
    result = reports.monthly_report(reports.parse_month(form.cleaned_data["month"]))
    if request.GET.get("format") == "csv":
        body = reports.to_csv(result, decimal_comma=request.GET.get("decimal") == "comma")
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="report-{result.month}.csv"'
        return response

    def use_chart(rows, label=lambda u: f"{u.key} {u.name}"):
        return reports.bar_chart(
            [
                (label(u)[:32], u.percent_tenths, f"{reports.percent(u.percent_tenths)} %")
                for u in rows
            ]
        )

    day_names = [
        _("Monday"),
        _("Tuesday"),
        _("Wednesday"),
        _("Thursday"),
        _("Friday"),
        _("Saturday"),
        _("Sunday"),
    ]
    levels = reports.heat_levels(result.busiest)
    context = {
        "form": form,
        "report": result,
        "kinds_chart": use_chart(result.kinds, label=lambda u: u.name.capitalize()),
        "spaces_chart": use_chart(result.spaces),
        "equipment_chart": use_chart(result.equipment),
        "measured_chart": reports.bar_chart(
            [
                (
                    f"{m.code} {m.name}"[:32],
                    m.percent_tenths,
                    f"{reports.percent(m.percent_tenths)} %",
                )
                for m in result.measured
            ]
        ),
        "busiest": [
            (
                name,
                [
                    (reports.hours(m) if m else "0", lv)
                    for m, lv in zip(row, levels_row, strict=True)
                ],
            )
            for name, row, levels_row in zip(day_names, result.busiest, levels, strict=True)
        ],
        "hours_of_day": [f"{h:02d}" for h in range(24)],
        "month_label": reports.parse_month(result.month),
    }
    return render(request, "bookings/report.html", context)


urlpatterns = [
    path("book/", book, name="book"),
    path("book/day/", day_grid, name="day-grid"),
    path("bookings/", my_bookings, name="my-bookings"),
    path("bookings/<int:booking_id>/cancel/", cancel_booking, name="cancel-booking"),
    path("bookings/<int:booking_id>/check-in/", check_in, name="check-in"),
    path("staff/approvals/", approvals, name="approvals"),
    path(
        "staff/approvals/<int:booking_id>/approve/",
        decide,
        {"decision": "approve"},
        name="approve",
    ),
    path("staff/approvals/<int:booking_id>/reject/", decide, {"decision": "reject"}, name="reject"),
    path("staff/today/", today, name="today"),
    path("staff/reports/", report, name="reports"),
]
