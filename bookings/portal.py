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
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from bookings import availability, engine, reports, series, waitlist
from bookings.models import (
    HOLDING,
    Booking,
    PersonFeed,
    Resource,
    ResourceKind,
    Status,
    WaitlistEntry,
)
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


class WhenForm(forms.Form):
    """A day and a start and end time, local (building); cleaned into `start_at`, `end_at`."""

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

    def clean(self):
        data = super().clean()
        day, start, end = data.get("date"), data.get("start"), data.get("end")
        last_day = data.get("end_date") or day
        if day and start and end:
            if at(last_day, end) <= at(day, start):
                self.add_error("end", _("The end time must be after the start time."))
            else:
                data["start_at"], data["end_at"] = at(day, start), at(last_day, end)
        return data

    @classmethod
    def of(cls, booking: Booking, **kwargs):
        start, end = local(booking.start), local(booking.end)
        initial = {"date": start.date(), "start": start.time(), "end": end.time()}
        return cls(initial=initial, **kwargs)


REPEATS = [
    ("", gettext_lazy("does not repeat")),
    ("daily", gettext_lazy("every day")),
    ("weekly", gettext_lazy("every week")),
    ("monthly", gettext_lazy("every month")),
]
WEEKDAYS = [
    (1, gettext_lazy("Monday")),
    (2, gettext_lazy("Tuesday")),
    (3, gettext_lazy("Wednesday")),
    (4, gettext_lazy("Thursday")),
    (5, gettext_lazy("Friday")),
    (6, gettext_lazy("Saturday")),
    (7, gettext_lazy("Sunday")),
]
ENDS = [
    ("count", gettext_lazy("after a number of times")),
    ("until", gettext_lazy("on a given day")),
]


class SearchForm(WhenForm):
    """What the person wants: when, for how many, with what, how often. Times are local."""

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
    repeat = forms.ChoiceField(label=gettext_lazy("Repeat"), choices=REPEATS, required=False)
    interval = forms.IntegerField(
        label=gettext_lazy("Every how many days, weeks or months"),
        min_value=1,
        max_value=series.MAX_INTERVAL,
        initial=1,
        required=False,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    weekdays = forms.TypedMultipleChoiceField(
        label=gettext_lazy("On these days (weekly only; none: the same weekday)"),
        choices=WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    ends = forms.ChoiceField(
        label=gettext_lazy("Ends"),
        choices=ENDS,
        initial="count",
        required=False,
        widget=forms.RadioSelect,
    )
    count = forms.IntegerField(
        label=gettext_lazy("Number of times"),
        min_value=1,
        max_value=series.MAX_OCCURRENCES,
        initial=10,
        required=False,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    until = forms.DateField(
        label=gettext_lazy("Ends on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the features some bookable room offers: nobody searches for the rest.
        self.fields["feature"].queryset = Feature.objects.filter(
            spaces__resource__is_active=True
        ).distinct()

    def clean(self):
        data = super().clean()
        data["recurrence"] = None
        freq = data.get("repeat")
        if not freq:
            return data
        count = until = None
        if data.get("ends") == "until":
            until = data.get("until")
            if until is None and "until" not in self.errors:
                self.add_error("until", _("Give the date of the last time."))
            elif until and data.get("date") and until < data["date"]:
                self.add_error("until", _("The last date cannot be before the first."))
        else:
            count = data.get("count")
            if count is None and "count" not in self.errors:
                self.add_error("count", _("Say how many times."))
        if not self.errors:
            weekdays = tuple(sorted(set(data.get("weekdays") or ()))) if freq == "weekly" else ()
            interval = data.get("interval") or 1
            data["recurrence"] = series.Recurrence(freq, interval, weekdays, count, until)
        return data

    def repeat_summary(self) -> str:
        """The recurrence in plain words: "every 2 weeks on Monday, Thursday, 10 times"."""
        r = self.cleaned_data.get("recurrence")
        if r is None:
            return ""
        unit = {
            "daily": (_("every day"), _("every %(n)s days")),
            "weekly": (_("every week"), _("every %(n)s weeks")),
            "monthly": (_("every month"), _("every %(n)s months")),
        }[r.freq]
        words = unit[0] if r.interval == 1 else unit[1] % {"n": r.interval}
        if r.weekdays:
            names = dict(WEEKDAYS)
            words += " " + _("on %(days)s") % {"days": ", ".join(str(names[d]) for d in r.weekdays)}
        if r.count:
            words += ", " + ngettext("once", "%(n)s times", r.count) % {"n": r.count}
        else:
            words += ", " + _("until %(day)s") % {"day": r.until.strftime("%d/%m/%Y")}
        return words

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
    return suggestion(resource, availability.next_free_slot(resource, after))


def suggestion(resource: Resource, found: tuple | None) -> dict | None:
    """A free interval (availability.next_free_slot) as the pages show it."""
    if found is None:
        return None
    start, end = local(found[0]), local(found[1])
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
        row = {"start": local(start), "end": local(end), "free": booking is not None}
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
            % {"day": local(r.start).strftime("%d/%m/%Y %H:%M"), "reason": r.detail},
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
        "preview": preview,
        "resource": resource,
        "repeat_summary": form.repeat_summary() if form.is_bound and form.is_valid() else "",
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
    context = {"booking": booking, "policy": pol, "staff": is_staff(person)}
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


@staff_required
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


@staff_required
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


@staff_required
def today(request):
    """Every booking of a day (today by default), in start order."""
    try:
        day = datetime.strptime(request.GET.get("date", ""), "%Y-%m-%d").date()
    except ValueError:
        day = local(timezone.now()).date()
    bookings = (
        engine.visible_bookings(request.user)
        .filter(Q(start__lt=at(day + timedelta(days=1), time(0))) & Q(end__gt=at(day, time(0))))
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
    path("bookings/<int:booking_id>/move/", move_booking, name="move-booking"),
    path("waitlist/", my_waitlist, name="waitlist"),
    path("waitlist/join/", join_waitlist, name="waitlist-join"),
    path("waitlist/<int:entry_id>/accept/", accept_offer, name="waitlist-accept"),
    path("waitlist/<int:entry_id>/leave/", leave_waitlist, name="waitlist-leave"),
    path("account/calendar/", calendar_feed, name="calendar-feed"),
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
