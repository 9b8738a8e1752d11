"""The booking pages' forms: when (a local day and times), what and how often (the search)."""

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from bookings import series
from bookings.models import (
    Booking,
    ResourceKind,
)
from campus import clock
from campus.models import Feature

ROOM_KINDS = [(k, label) for k, label in ResourceKind.choices if k != ResourceKind.EQUIPMENT]


STEP = timedelta(minutes=15)


class WhenForm(forms.Form):
    """A day and a start and end time, local to the default zone (campus.clock: the pages'
    times); cleaned into `start_at`, `end_at`."""

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
            start_at, end_at = clock.at(day, start), clock.at(last_day, end)
            if end_at <= start_at:
                self.add_error("end", _("The end time must be after the start time."))
            else:
                data["start_at"], data["end_at"] = start_at, end_at
        return data

    @classmethod
    def of(cls, booking: Booking, **kwargs):
        start, end = clock.local(booking.start), clock.local(booking.end)
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
        now = clock.local(timezone.now())
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
