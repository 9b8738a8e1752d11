"""The door pages of the staff console (facility staff only): controllers and doors live,
remote unlock, site lockdown, the access log and who is inside.

Commands go through `access.commands` (logged, then published), the log search through the
API's own filter (`access.api.access_events`) and its CSV export is the API's. Refusals are
shown by their stable code, in the reader's language.
"""

import base64
import binascii
from datetime import datetime, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from access import commands, occupancy, onboarding
from access.api import AccessEventFilter, access_events, doors_queryset
from access.models import AuditEvent, Controller, Door, SiteMode, visible_doors
from campus import clock
from campus.models import Person
from campus.roles import facility_required
from common.errors import DomainError

PAGE_SIZE = 50
POLL_SECONDS = 4
# Door events and alarms that need someone to look (the bridge logs forced, held and tamper
# as alarms): the door stays "in alarm" until a later event (closed, held_cleared…) says
# otherwise. A scan flood is its controller's, shown at the door its scans named.
ALARMS = {
    "forced": gettext_lazy("Forced open"),
    "held": gettext_lazy("Held open too long"),
    "tamper": gettext_lazy("Reader tampered with"),
    "scan_flood": gettext_lazy("Scan flood: its controller sends more scans than allowed"),
}
CONFIRM_WORD = "LOCKDOWN"


def refusal(error: DomainError, door: Door | None = None) -> str:
    """A command's refusal in the reader's language, by its stable code."""
    texts = {
        "lockdown": _("The site or this door is in lockdown: no remote unlock."),
        "controller_offline": _(
            "Controller %(ctrl)s is offline (not heard from for 90 s): the command would not "
            "be heard."
        )
        % {"ctrl": door.controller_id if door else ""},
        "broker_unavailable": _(
            "The MQTT broker is unavailable: the controllers could not be told."
        ),
    }
    return texts.get(error.code, error.detail)


# ------------------------------------------------------------------ doors and controllers


def _when(moment: datetime | None) -> str:
    if moment is None:
        return _("never")
    return formats.date_format(clock.local(moment), "j M H:i:s")


def live_state(person, now: datetime | None = None) -> dict:
    """Controllers and doors as the page shows them to this (staff) person: each cell's text
    and state, keyed by the id of its element, so that the page and its JSON poll render the
    same words."""
    now = now or timezone.now()
    last_door_event = AuditEvent.objects.filter(
        door=OuterRef("pk"), kind__in=[AuditEvent.Kind.DOOR_EVENT, AuditEvent.Kind.ALARM]
    ).order_by("-ts", "-id")
    doors = list(
        doors_queryset(person)
        .annotate(last_alarm=Subquery(last_door_event.values("result")[:1]))
        .order_by("id")
    )
    controllers = list(Controller.objects.order_by("id"))
    cells = {}
    for c in controllers:
        online = commands.is_online(c, now)
        if not c.is_active:
            status, state = _("Out of service"), "offline"
        else:
            status, state = (_("Online"), "online") if online else (_("Offline"), "offline")
        c.cells = {
            "status": (status, state),
            "seen": (_when(c.last_seen), ""),
            "firmware": (c.firmware or "—", ""),
            "acl": (str(c.acl_version) if c.acl_version is not None else "—", ""),
        }
        for name, value in c.cells.items():
            cells[f"c-{c.pk}-{name}"] = value
    for d in doors:
        if d.last_ts is None:
            last = _("no event yet")
        else:
            last = f"{_when(d.last_ts)} · {d.last_kind} {d.last_result} {d.last_reason}".strip()
        alarm = ALARMS.get(d.last_alarm)
        d.cells = {
            "mode": (d.get_mode_display(), d.mode),
            "last": (last, ""),
            "alarm": (str(alarm), "alarm") if alarm else (_("none"), ""),
        }
        for name, value in d.cells.items():
            cells[f"d-{d.pk}-{name}"] = value
    return {"controllers": controllers, "doors": doors, "cells": cells, "at": now}


@facility_required
def doors(request):
    state = live_state(request.user)
    context = {
        **state,
        "lockdown": SiteMode.current(),
        "poll_seconds": POLL_SECONDS,
        "offline": sum(1 for c in state["controllers"] if c.cells["status"][1] == "offline"),
        "alarms": sum(1 for d in state["doors"] if d.cells["alarm"][1] == "alarm"),
    }
    return render(request, "access/doors.html", context)


@facility_required
def doors_state(request):
    """The page's cells for its poll: `{"at": …, "cells": {id: {"text", "state"}}}`."""
    state = live_state(request.user)
    body = {
        "at": clock.local(state["at"]).isoformat(timespec="seconds"),
        "lockdown": SiteMode.current().lockdown,
        "cells": {k: {"text": str(t), "state": s} for k, (t, s) in state["cells"].items()},
    }
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response


@facility_required
@require_POST
def unlock(request, door_id: str):
    door = visible_doors(request.user).filter(pk=door_id).first()
    if door is None:
        messages.error(request, _("No such door."))
        return redirect("doors")
    why = request.POST.get("why", "")[:200]
    try:
        commands.unlock(door, by=request.user, why=why)
    except DomainError as e:
        messages.error(
            request,
            _("%(door)s not unlocked: %(why)s")
            % {
                "door": door.name,
                "why": refusal(e, door),
            },
        )
    else:
        messages.success(
            request,
            _("Unlock sent to %(door)s (valid for 5 seconds).") % {"door": door.name},
        )
    return redirect(reverse("doors") + f"#door-{door.pk}")


# ------------------------------------------------------------------ lockdown


class LockdownForm(forms.Form):
    on = forms.TypedChoiceField(
        choices=[("1", "on"), ("0", "off")], coerce=lambda v: v == "1", widget=forms.HiddenInput
    )
    confirm = forms.CharField(
        label=gettext_lazy("Type LOCKDOWN to confirm"),
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    why = forms.CharField(
        label=gettext_lazy("Why (kept in the audit log)"), max_length=200, required=False
    )

    def clean_confirm(self):
        word = self.cleaned_data["confirm"].strip()
        if word != CONFIRM_WORD:
            raise forms.ValidationError(
                _("Type the word %(word)s, in capitals, to confirm.") % {"word": CONFIRM_WORD}
            )
        return word


@facility_required
def lockdown(request):
    """The site's lockdown, on or off, after typing the confirmation word."""
    mode = SiteMode.current()
    status = 200
    resend = False
    if request.method == "POST":
        form = LockdownForm(request.POST)
        if form.is_valid():
            on = form.cleaned_data["on"]
            try:
                mode = commands.set_lockdown(on, by=request.user, why=form.cleaned_data["why"])
            except commands.BrokerUnavailable as e:
                mode = SiteMode.current()
                resend = True
                status = 503
                messages.warning(
                    request,
                    _(
                        "Saved: online decisions follow it at once. But %(why)s Send it again "
                        "once the broker is back."
                    )
                    % {"why": refusal(e)},
                )
            else:
                messages.success(
                    request,
                    _("Site lockdown is ON: only master cards open doors.")
                    if on
                    else _("Site lockdown lifted: doors follow their usual rules."),
                )
                return redirect("lockdown")
        else:
            status = 422
    else:
        form = LockdownForm(initial={"on": "0" if mode.lockdown else "1"})
    context = {"mode": mode, "form": form, "resend": resend, "word": CONFIRM_WORD}
    return render(request, "access/lockdown.html", context, status=status)


# ------------------------------------------------------------------ access log


RESULTS = ["grant", "deny", "sent", "lockdown", "controller_offline", "broker_unavailable"]


class LogSearchForm(forms.Form):
    start = forms.DateField(
        label=gettext_lazy("From (date)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    end = forms.DateField(
        label=gettext_lazy("Until (date, included)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    door = forms.ChoiceField(label=gettext_lazy("Door"), required=False, choices=[])
    person = forms.EmailField(label=gettext_lazy("Person's e-mail address"), required=False)
    result = forms.ChoiceField(
        label=gettext_lazy("Result"),
        required=False,
        choices=[("", gettext_lazy("any result")), *[(r, r) for r in RESULTS]],
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason code"),
        required=False,
        max_length=40,
        help_text=gettext_lazy("e.g. not_leased, outside_schedule, unlock"),
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"),
        required=False,
        choices=[("", gettext_lazy("any kind")), *AuditEvent.Kind.choices],
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["door"].choices = [("", _("any door"))] + [
            (pk, f"{pk} — {name}") for pk, name in Door.objects.values_list("pk", "name")
        ]

    def clean_person(self):
        email = self.cleaned_data["person"]
        if not email:
            return None
        person = Person.objects.filter(email__iexact=email).first()
        if person is None:
            raise forms.ValidationError(_("Nobody has this e-mail address."))
        return person

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", _("The last day must not be before the first."))
        return data

    def api_query(self) -> dict:
        """The search as the API's access-log parameters (local times, `to` excluded)."""
        d = self.cleaned_data
        query = {}
        if d.get("start"):
            query["from"] = clock.local_midnight(d["start"])
        if d.get("end"):
            query["to"] = clock.local_midnight(d["end"] + timedelta(days=1))
        for name in ("door", "result", "reason", "kind"):
            if d.get(name):
                query[name] = d[name]
        if d.get("person"):
            query["person"] = d["person"].pk
        return query


@facility_required
def access_log(request):
    form = LogSearchForm(request.GET)
    page = None
    csv_url = None
    if form.is_valid():
        query = form.api_query()
        events = access_events(request.user, AccessEventFilter(**query))
        page = Paginator(events.select_related("actor"), PAGE_SIZE).get_page(
            request.GET.get("page")
        )
        csv_url = "/api/v1/access-events.csv?" + urlencode(
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in query.items()}
        )
    params = request.GET.copy()
    params.pop("page", None)
    context = {"form": form, "page": page, "csv_url": csv_url, "query": params.urlencode()}
    status = 200 if page is not None else 422
    return render(request, "access/access_log.html", context, status=status)


# ------------------------------------------------------------------ occupancy


@facility_required
def who_is_inside(request):
    now = timezone.now()
    inside = occupancy.who_is_inside(now)
    context = {
        "inside": inside,
        "visitors": sum(p.is_visitor for p in inside),
        "at": now,
        "since": occupancy.since_midnight(now),
    }
    response = render(request, "access/occupancy.html", context)
    response["Cache-Control"] = "no-store"  # a list of people: never from a cache
    return response


@login_required
def occupancy_print(request):
    if not request.user.runs_facility:
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


class ImportForm(forms.Form):
    """A CSV file, or (after a clean dry run) the same file carried back by the page."""

    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    content = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            if upload.size > onboarding.MAX_BYTES:
                self.add_error("file", _("The file is larger than 1 MB: split it."))
                return data
            data["bytes"] = upload.read()
        elif data.get("content"):
            try:
                data["bytes"] = base64.b64decode(data["content"], validate=True)
            except (binascii.Error, ValueError):
                self.add_error("file", _("Choose the file again."))
        else:
            self.add_error("file", _("Choose a CSV file."))
        return data


@facility_required
def import_people(request):
    """Check a file (dry run: nothing is saved), then import it, all rows or none."""
    form = ImportForm(request.POST or None, request.FILES or None)
    context = {"form": form, "columns": onboarding.COLUMNS}
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "access/import_people.html", context, status=422)
        data = form.cleaned_data["bytes"]
        commit = request.POST.get("step") == "import"
        result = onboarding.import_people(data, by=request.user, commit=commit)
        if result.committed:
            messages.success(
                request,
                _("Imported: %(tenants)s new tenant(s), %(people)s person(s), %(badges)s badge(s).")
                % {
                    "tenants": len(result.tenants),
                    "people": result.people,
                    "badges": result.badges,
                },
            )
            return redirect("import-people")
        context.update(
            result=result,
            content=base64.b64encode(data).decode() if result.ok else "",
            name=getattr(form.cleaned_data.get("file"), "name", "") or request.POST.get("name"),
        )
        status = 200 if result.ok else 422
    return render(request, "access/import_people.html", context, status=status)
