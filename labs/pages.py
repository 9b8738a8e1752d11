"""The equipment pages of the portal: the machines with each person's qualification, their
next free slots, booking one (through `bookings.engine.book`) and reporting a problem
(through `labs.maintenance.report_incident`, like the API)."""

from datetime import date, datetime, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from bookings import availability, engine
from bookings.forms import WhenForm
from bookings.models import Status
from bookings.pages import describe, refusal_text, suggest, suggestion
from campus import clock
from campus.roles import tenant_admin_required
from common.errors import DomainError
from labs import maintenance, usage
from labs.api import csv_response
from labs.models import Equipment, Incident
from labs.qualifications import standings


class EquipmentBookingForm(WhenForm):
    """When to use the machine; a run may end on a later day (long climatic tests)."""

    end_date = forms.DateField(
        label=gettext_lazy("End date (if not the same day)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    title = forms.CharField(
        label=gettext_lazy("What for (optional)"), max_length=160, required=False
    )


class IncidentForm(forms.ModelForm):
    """A problem on a machine: how bad, and what happened (the model bounds both)."""

    class Meta:
        model = Incident
        fields = ["severity", "description"]
        widgets = {"severity": forms.RadioSelect}
        labels = {"description": gettext_lazy("What happened?")}
        help_texts = {
            "description": gettext_lazy(
                "What you saw, what you were doing, any message on the screen."
            )
        }


def machines(person):
    return maintenance.visible_equipment(person)


def free_slot_of(equipment: Equipment, now: datetime) -> dict | None:
    """The machine's next free interval ({start, end_label}), None if out of service."""
    usable = equipment.is_usable and equipment.resource.is_active
    return suggest(equipment.resource, now) if usable else None


@login_required
def equipment_list(request):
    """Every machine: its state, whether I may book it, and when it is next free."""
    now = timezone.now()
    rows = list(machines(request.user).order_by("location__code", "resource__code"))
    mine = standings(request.user.pk, rows, now)
    # Every machine's next free slot in two queries (not ~40 per machine).
    for eq in rows:
        # A technician also sees the machines withdrawn from booking: nothing to offer there.
        eq.bookable = eq.is_usable and eq.resource.is_active
    found = availability.next_free_slots([eq.resource for eq in rows if eq.bookable], now)
    for eq in rows:
        eq.standing = mine[eq.pk]
        eq.next_free = suggestion(eq.resource, found.get(eq.resource_id))
    return render(request, "labs/machines.html", {"machines": rows})


@login_required
def equipment_detail(request, equipment_id: int):
    """One machine: qualification, free slots of a day, and the booking form."""
    person = request.user
    equipment = get_object_or_404(machines(person), pk=equipment_id)
    now = timezone.now()
    today = clock.today(now=now)
    try:
        day = datetime.strptime(request.GET.get("date", ""), "%Y-%m-%d").date()
    except ValueError:
        day = today
    error = next_free = None
    status = 200
    if request.method == "POST":
        form = EquipmentBookingForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            slot = engine.Slot(equipment.resource, d["start_at"], d["end_at"], d["title"])
            try:
                booking = engine.book(person, slot)
            except DomainError as e:
                error, status = refusal_text(e), e.status
                if isinstance(e, engine.SlotTaken):
                    next_free = suggest(equipment.resource, d["start_at"])
                    error["waitlist"] = {"start": d["start_at"], "end": d["end_at"]}
            else:
                if booking.status == Status.PENDING:
                    text = _("Request sent: %(what)s. A lab technician will confirm it.")
                else:
                    text = _("Booked: %(what)s.")
                messages.success(request, text % {"what": describe(booking)})
                return redirect(f"{reverse('my-bookings')}#booking-{booking.pk}")
            day = d["date"]
        else:
            status = 422
    else:
        form = EquipmentBookingForm(initial={"date": day})
    context = {
        "equipment": equipment,
        "resource": equipment.resource,
        "standing": standings(person.pk, [equipment], now)[equipment.pk],
        "assisted": engine.policy_for(equipment.resource).approval_required,
        "day": day,
        "previous_day": day - timedelta(days=1) if day > today else None,
        "next_day": day + timedelta(days=1),
        "slots": [
            (clock.local(s), clock.local(e))
            for s, e in availability.free_slots(equipment.resource, day)
        ],
        "next_free": next_free,
        "first_free": free_slot_of(equipment, now),
        "form": form,
        "error": error,
        "open_incidents": equipment.incidents.filter(closed_at__isnull=True).count(),
    }
    return render(request, "labs/machine.html", context, status=status)


@login_required
def report_incident(request, equipment_id: int):
    """Report a problem on a machine (labs.maintenance.report_incident, as the API does)."""
    equipment = get_object_or_404(machines(request.user), pk=equipment_id)
    form = IncidentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        incident = maintenance.report_incident(
            request.user, equipment, d["severity"], d["description"]
        )
        messages.success(
            request,
            _(
                "Thank you: problem #%(n)s reported on %(machine)s. "
                "A lab technician will look at it."
            )
            % {"n": incident.pk, "machine": equipment.resource.name},
        )
        return redirect("machine", equipment_id=equipment.pk)
    status = 422 if form.errors else 200
    context = {"equipment": equipment, "form": form}
    return render(request, "labs/incident_form.html", context, status=status)


def month_of(request) -> tuple[date, bool]:
    """The month asked for (?month=YYYY-MM), else this month; and whether the ask was valid."""
    text = request.GET.get("month", "")
    if text:
        try:
            return clock.parse_month(text), True
        except ValueError:
            pass
    return clock.month_of(timezone.now()), not text


@tenant_admin_required
def usage_statement(request):
    """The company's monthly usage statement (labs.usage, as GET /usage), with its CSV."""
    month, valid = month_of(request)
    tenant = usage.require_may_read_statement(request.user, request.user.tenant_id)
    statement = usage.statement_for(tenant, month)
    comma = get_language() == "fr"
    t = statement.totals
    context = {
        "statement": statement,
        "lines": [(line, usage.money(line.amount_cents, comma)) for line in statement.lines],
        "money": {
            name: usage.money(
                t[f"{name}_cents" if name != "late" else "late_cancellation_cents"], comma
            )
            for name in ("room", "equipment", "energy", "credit", "total", "late")
        },
        "month": month,
        "month_error": not valid,
        "previous_month": (month - timedelta(days=1)).replace(day=1),
        "next_month": (month + timedelta(days=32)).replace(day=1),
    }
    return render(request, "labs/company_usage.html", context, status=200 if valid else 422)


@tenant_admin_required
def usage_csv(request):
    month, valid = month_of(request)
    if not valid:
        raise Http404
    tenant = usage.require_may_read_statement(request.user, request.user.tenant_id)
    statement = usage.statement_for(tenant, month)
    return csv_response(statement, decimal_comma=request.GET.get("decimal") == "comma")
