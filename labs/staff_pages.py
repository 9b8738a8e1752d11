"""The lab pages of the staff console: machines with their status and history, maintenance
windows (the bookings a window will cancel are shown before it is confirmed), qualifications
and incidents. For lab technicians and facility staff.

Every write goes through `labs.maintenance` (and through it `bookings.engine`), like the API:
the pages turn a `DomainError` or a model `ValidationError` into a message next to the form.
"""

from datetime import time, timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from bookings.engine import visible_bookings
from bookings.models import CANCELLABLE, Booking
from campus import clock
from campus.models import Person
from campus.roles import facility_required, labs_required
from common.errors import DomainError
from common.forms import back_to, show_error
from labs import maintenance, reports
from labs.lost_qualifications import unqualified_deadline
from labs.models import Equipment
from labs.qualifications import in_force

PAGE_SIZE = 50


# ------------------------------------------------------------------ equipment


@labs_required
def equipment_list(request):
    """Every machine: status in words, open incidents, next maintenance window."""
    status = request.GET.get("status", "")
    rows = (
        maintenance.visible_equipment(request.user)
        .annotate(open_incidents=Count("incidents", filter=Q(incidents__closed_at__isnull=True)))
        .order_by("resource__code")
    )
    if status in Equipment.Status.values:
        rows = rows.filter(status=status)
    rows = list(rows)
    windows = {}
    for w in (
        maintenance.visible_maintenance_windows(request.user)
        .filter(end__gte=timezone.now(), resource_id__in=[e.resource_id for e in rows])
        .order_by("start")
    ):
        windows.setdefault(w.resource_id, w)
    flagged = dict(
        visible_bookings(request.user)
        .filter(
            unqualified_at__isnull=False,
            status__in=CANCELLABLE,
            resource_id__in=[e.resource_id for e in rows],
        )
        .values("resource_id")
        .annotate(n=Count("pk"))
        .values_list("resource_id", "n")
    )
    for e in rows:
        e.next_window = windows.get(e.resource_id)
        e.unqualified = flagged.get(e.resource_id, 0)
    context = {"rows": rows, "status": status, "statuses": Equipment.Status.choices}
    return render(request, "labs/equipment_list.html", context)


class MaintenanceForm(forms.Form):
    """A maintenance window, in the building's local time."""

    start_date = forms.DateField(
        label=gettext_lazy("From (date)"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    start_time = forms.TimeField(
        label=gettext_lazy("From (time)"),
        widget=forms.TimeInput(attrs={"type": "time", "step": 900}, format="%H:%M"),
    )
    end_date = forms.DateField(
        label=gettext_lazy("Until (date)"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    end_time = forms.TimeField(
        label=gettext_lazy("Until (time)"),
        widget=forms.TimeInput(attrs={"type": "time", "step": 900}, format="%H:%M"),
    )
    title = forms.CharField(label=gettext_lazy("Title (optional)"), max_length=160, required=False)

    def clean(self):
        data = super().clean()
        if all(data.get(k) for k in ("start_date", "start_time", "end_date", "end_time")):
            data["start"] = clock.at(data["start_date"], data["start_time"])
            data["end"] = clock.at(data["end_date"], data["end_time"])
            if data["end"] <= data["start"]:
                self.add_error("end_time", _("The window must end after it starts."))
        return data


def _equipment(request, equipment_id: int) -> Equipment:
    return get_object_or_404(maintenance.visible_equipment(request.user), pk=equipment_id)


def _detail(request, eq: Equipment, form: MaintenanceForm, *, error=None, status=200):
    now = timezone.now()
    context = {
        "eq": eq,
        "form": form,
        "error": error,
        "history": eq.status_history.select_related("by")[:20],
        "incidents": eq.incidents.filter(closed_at__isnull=True).select_related("reported_by"),
        "windows": maintenance.visible_maintenance_windows(request.user)
        .filter(resource=eq.resource, end__gte=now)
        .order_by("start"),
        "unqualified": visible_bookings(request.user)
        .filter(resource=eq.resource, unqualified_at__isnull=False, status__in=CANCELLABLE)
        .order_by("start", "pk"),
    }
    return render(request, "labs/equipment_detail.html", context, status=status)


@labs_required
def equipment_detail(request, equipment_id: int):
    eq = _equipment(request, equipment_id)
    tomorrow = clock.today() + timedelta(days=1)
    initial = {
        "start_date": tomorrow,
        "start_time": time(8),
        "end_date": tomorrow,
        "end_time": time(12),
    }
    return _detail(request, eq, MaintenanceForm(initial=initial))


@labs_required
@require_POST
def schedule_maintenance(request, equipment_id: int):
    """Two steps: `preview` lists the bookings the window would cancel; `confirm` books it."""
    eq = _equipment(request, equipment_id)
    form = MaintenanceForm(request.POST)
    if not form.is_valid():
        return _detail(request, eq, form, status=422)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    if request.POST.get("step") != "confirm":
        affected = maintenance.affected_bookings(eq, start, end)
        in_progress = [b for b in affected if b.status == Booking.Status.CHECKED_IN]
        context = {"eq": eq, "form": form, "affected": affected, "in_progress": in_progress}
        return render(request, "labs/maintenance_confirm.html", context)
    try:
        result = maintenance.schedule_maintenance(
            request.user, eq, start, end, title=form.cleaned_data["title"]
        )
    except DomainError as e:
        return _detail(request, eq, form, error=e.detail, status=e.status)
    n = len(result.affected)
    messages.success(
        request,
        _(
            "Maintenance window booked for %(machine)s; %(n)s booking(s) cancelled free of "
            "charge, their owners told by e-mail."
        )
        % {"machine": eq.resource.name, "n": n},
    )
    return redirect("equipment-detail", equipment_id=eq.pk)


@labs_required
@require_POST
def sign_off(request, equipment_id: int):
    eq = _equipment(request, equipment_id)
    try:
        maintenance.sign_off(request.user, eq)
    except DomainError as e:
        messages.error(request, e.detail)
    else:
        messages.success(request, _("%(machine)s is back in service.") % {"machine": eq})
    return redirect("equipment-detail", equipment_id=eq.pk)


# ------------------------------------------------------------------ qualifications


def equipment_classes() -> list[str]:
    return sorted(set(Equipment.objects.values_list("equipment_class", flat=True)))


class TrainingForm(forms.Form):
    """A training to record: one person, one machine or one class of machines."""

    person = forms.EmailField(
        label=gettext_lazy("Person's e-mail address"),
        widget=forms.EmailInput(attrs={"autocomplete": "off"}),
    )
    equipment = forms.ModelChoiceField(
        label=gettext_lazy("Machine"),
        queryset=Equipment.objects.select_related("resource").order_by("resource__code"),
        required=False,
        empty_label=gettext_lazy("— a whole class instead —"),
    )
    equipment_class = forms.ChoiceField(
        label=gettext_lazy("or class of machines"), required=False, choices=[]
    )
    valid_until = forms.DateField(
        label=gettext_lazy("Valid until (optional)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=gettext_lazy("Empty: no end date."),
    )
    renew_on_use_months = forms.IntegerField(
        label=gettext_lazy("Renewed on each use for (months, optional)"),
        required=False,
        min_value=1,
        max_value=120,
    )
    note = forms.CharField(label=gettext_lazy("Note (optional)"), max_length=250, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["equipment_class"].choices = [("", "—")] + [(c, c) for c in equipment_classes()]

    def clean_person(self):
        email = self.cleaned_data["person"]
        person = Person.objects.filter(email__iexact=email).first()
        if person is None:
            raise ValidationError(_("Nobody has this e-mail address."))
        return person

    def clean(self):
        data = super().clean()
        one_target = bool(data.get("equipment")) != bool(data.get("equipment_class"))
        if not one_target and not self.has_error("equipment"):
            self.add_error("equipment", _("Choose one machine or one class, not both."))
        return data


@labs_required
def qualifications(request):
    """Trainings, filtered by person and machine; record one; revoke one."""
    now = timezone.now()
    form = TrainingForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            d = form.cleaned_data
            until = d["valid_until"]
            try:
                q = maintenance.record_training(
                    request.user,
                    d["person"],
                    equipment=d["equipment"],
                    equipment_class=d["equipment_class"] or "",
                    valid_until=clock.at(until, time(23, 59)) if until else None,
                    renew_on_use_months=d["renew_on_use_months"],
                    note=d["note"],
                )
            except ValidationError as e:
                show_error(
                    form,
                    e,
                    {
                        "valid_until": "valid_until",
                        "renew_on_use_months": "renew_on_use_months",
                        "note": "note",
                        "person": "person",
                    },
                )
            else:
                messages.success(request, _("Training recorded: %(q)s.") % {"q": q})
                return redirect(reverse("qualifications") + f"#qualification-{q.pk}")
        status = 422

    search = request.GET.get("q", "").strip()
    state = request.GET.get("state", "in_force")
    qs = (
        maintenance.visible_qualifications(request.user)
        .select_related("person__tenant", "trained_by")
        .order_by("person__last_name", "person__first_name", "valid_from", "pk")
    )
    if search:
        qs = qs.filter(
            Q(person__email__icontains=search)
            | Q(person__last_name__icontains=search)
            | Q(person__first_name__icontains=search)
            | Q(equipment__resource__code__icontains=search)
            | Q(equipment_class__icontains=search)
        )
    rows = list(qs)
    for q in rows:
        q.is_in_force = in_force(q, now)
    if state == "in_force":
        rows = [q for q in rows if q.is_in_force]
    elif state == "not_in_force":
        rows = [q for q in rows if not q.is_in_force]
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "search": search,
        "state": state,
        "query": query.urlencode(),
    }
    return render(request, "labs/qualifications.html", context, status=status)


@labs_required
@require_POST
def revoke_qualification(request, qualification_id: int):
    """Two steps: first the bookings the revocation would leave without a valid
    qualification, then (`step=confirm`) the revocation, which flags them."""
    q = get_object_or_404(maintenance.visible_qualifications(request.user), pk=qualification_id)
    back = back_to(request, reverse("qualifications"))
    if request.POST.get("step") != "confirm":
        if q.revoked_at is not None:
            messages.error(request, _("This qualification is already revoked."))
            return redirect(back)
        now = timezone.now()
        affected = maintenance.revocation_affects(q, now=now)
        for b in affected:
            b.cancel_at = unqualified_deadline(b, now)
        context = {"q": q, "affected": affected, "back": back}
        return render(request, "labs/revoke_confirm.html", context)
    try:
        done = maintenance.revoke_qualification(request.user, q)
    except DomainError as e:
        messages.error(request, e.detail)
    else:
        messages.success(
            request,
            ngettext(
                "Revoked: %(q)s. %(n)s booking is flagged; its booker and the technicians "
                "were told by e-mail.",
                "Revoked: %(q)s. %(n)s bookings are flagged; their bookers and the "
                "technicians were told by e-mail.",
                len(done.affected),
            )
            % {"q": q, "n": len(done.affected)}
            if done.affected
            else _("Revoked: %(q)s.") % {"q": q},
        )
    return redirect(back)


# ------------------------------------------------------------------ incidents


@labs_required
def incidents(request):
    """Open incidents first (oldest first), then those closed in the last 30 days."""
    base = maintenance.visible_incidents(request.user).select_related(
        "reported_by", "tenant", "closed_by"
    )
    since = timezone.now() - timedelta(days=30)
    context = {
        "open": base.filter(closed_at__isnull=True).order_by("reported_at", "pk"),
        "closed": base.filter(closed_at__gte=since).order_by("-closed_at", "-pk"),
    }
    return render(request, "labs/incidents.html", context)


@labs_required
@require_POST
def close_incident(request, incident_id: int):
    incident = get_object_or_404(maintenance.visible_incidents(request.user), pk=incident_id)
    try:
        maintenance.close_incident(
            request.user, incident, resolution=request.POST.get("resolution", "")
        )
    except DomainError as e:
        messages.error(request, e.detail)
    else:
        messages.success(request, _("Incident #%(n)s closed.") % {"n": incident.pk})
    return redirect(back_to(request, reverse("incidents")))


class MonthForm(forms.Form):
    month = forms.RegexField(
        label=gettext_lazy("Month"),
        regex=r"^\d{4}-(0[1-9]|1[0-2])$",
        error_messages={"invalid": gettext_lazy("Write the month as YYYY-MM, e.g. 2026-03.")},
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"}),
    )


@facility_required
def report(request):
    """A month's utilisation, measured use, no-shows and busiest hours; `format=csv` for a
    spreadsheet (`decimal=comma` for a French one)."""
    data = request.GET.copy()
    data.setdefault("month", clock.format_month(clock.month_of(timezone.now())))
    form = MonthForm(data)
    if not form.is_valid():
        return render(request, "labs/report.html", {"form": form}, status=422)
    result = reports.monthly_report(clock.parse_month(form.cleaned_data["month"]))
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
        "month_label": clock.parse_month(result.month),
    }
    return render(request, "labs/report.html", context)
