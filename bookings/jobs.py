"""The periodic jobs and their loop. Each job is idempotent and safe with several instances at
once (conditional updates, compare-and-set), so any long-running process may run the loop:
`manage.py run_jobs`, the MQTT bridge's first worker, the demo. No cron to set up."""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from bookings import engine, notify, series, waitlist
from bookings.models import Closure, PublicHolidayYear
from campus import clock, idempotency

log = logging.getLogger(__name__)


# The jobs, by name, each a function of `now` returning how much it did. The booking jobs are
# listed here; an app above bookings adds its own from its AppConfig.ready() (`register`), so
# that this module never imports it. campus holds the idempotency keys but may not import
# bookings: their cleanup is listed here.
JOBS: dict[str, Callable[[datetime], int]] = {
    "released": lambda now: len(engine.release_no_shows(now)),
    "offers_expired": lambda now: waitlist.expire_offers(now),
    "reminders": lambda now: notify.send_reminders(now),
    "emails": lambda now: notify.send_outbox(now),
    "occurrences": lambda now: series.extend_series(now),
    "public_holidays": lambda now: len(cover_public_holidays(now)),
    "idempotency_keys": lambda now: idempotency.purge_expired(now),
}


def register(name: str, job: Callable[[datetime], int]) -> None:
    """Add a periodic job (idempotent, safe with several instances at once)."""
    JOBS[name] = job


def run_due(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    done = {}
    for name, job in list(JOBS.items()):
        try:
            done[name] = job(now)
        except Exception:  # one failing job must not stop the others
            log.exception("periodic job %s failed", name)
    return done


# The e-mail outbox is looked at more often than the other jobs: a booking's confirmation
# should not wait for the next round of no-show releases.
OUTBOX_POLL = 2.0


def run_loop(stop: threading.Event, interval: float, once: bool = False, out=None):
    """Run the jobs every `interval` seconds, and the e-mail outbox every OUTBOX_POLL, until
    `stop` is set: in `manage.py run_jobs`, the bridge's first worker and the demo."""
    next_round = 0.0
    while not stop.is_set():
        close_old_connections()  # a connection lost meanwhile is reopened, not reused
        if time.monotonic() >= next_round:
            done = run_due()
            next_round = time.monotonic() + interval
        else:
            done = {"emails": _send_outbox()}
        if out is not None and any(done.values()):
            out.write(f"jobs: {done}")
        if once:
            break
        stop.wait(min(interval, OUTBOX_POLL))
    close_old_connections()


def _send_outbox() -> int:
    try:
        return notify.send_outbox()
    except Exception:  # a database outage: the next round tries again
        log.exception("sending the e-mail outbox failed")
        return 0


# ------------------------------------------------------------------ public holidays


def public_holidays(year: int, subdiv: str = "") -> list[tuple[date, str]]:
    """France's public holidays of a year, with a region's own days (`subdiv`, e.g. "57"),
    named in the site's language (French, else English). ValueError for an unknown region."""
    import holidays  # only here: the package builds its calendars on first use

    if subdiv and subdiv not in holidays.France.subdivisions:
        raise ValueError(
            f"unknown region {subdiv!r} for French public holidays; "
            f"one of {', '.join(holidays.France.subdivisions)}"
        )
    language = "fr" if settings.LANGUAGE_CODE.startswith("fr") else "en_US"
    found = holidays.France(years=year, subdiv=subdiv or None, language=language)
    return sorted(found.items())


def add_public_holidays(
    years: Iterable[int], *, subdiv: str | None = None, restore: bool = False
) -> list[Closure]:
    """Close the public holidays of these years (whole local days, `is_public_holiday`, so
    that a policy may stay open on them); returns the closures added.

    A year is added once, under its PublicHolidayYear row: the first caller inserts it and
    adds the days, a concurrent one waits for that row and finds the year done. A later run
    adds nothing to a year already there, so that a holiday closure staff deleted (to open on
    that day) stays deleted; `restore` adds the year's missing days back. A day that a
    public-holiday closure already covers is never added twice.
    """
    subdiv = settings.PUBLIC_HOLIDAYS_SUBDIV if subdiv is None else subdiv
    added = []
    for year in sorted(set(years)):
        days = public_holidays(year, subdiv)
        with transaction.atomic():
            marker, created = PublicHolidayYear.objects.get_or_create(year=year, subdiv=subdiv)
            if not created:
                if not restore:
                    continue
                # One restorer at a time per year (on SQLite the transaction already is).
                PublicHolidayYear.objects.select_for_update().filter(pk=marker.pk).first()
            covered = Closure.objects.filter(
                is_public_holiday=True,
                start_date__lte=date(year, 12, 31),
                end_date__gte=date(year, 1, 1),
            ).values_list("start_date", "end_date")
            taken = set()
            for first, last in covered:
                taken.update(first + timedelta(days=i) for i in range((last - first).days + 1))
            for day, name in days:
                if day not in taken:
                    added.append(
                        Closure.objects.create(
                            name=name[:120], start_date=day, end_date=day, is_public_holiday=True
                        )
                    )
    return added


def cover_public_holidays(now: datetime | None = None) -> list[Closure]:
    """The yearly job: this year's and next year's public holidays are closures (one query
    when both years are there already)."""
    now = now or timezone.now()
    this_year = clock.today(now=now).year
    years = {this_year, this_year + 1}
    subdiv = settings.PUBLIC_HOLIDAYS_SUBDIV
    done = set(
        PublicHolidayYear.objects.filter(year__in=years, subdiv=subdiv).values_list(
            "year", flat=True
        )
    )
    if years <= done:
        return []
    return add_public_holidays(years - done, subdiv=subdiv)
