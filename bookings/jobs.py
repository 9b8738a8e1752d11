"""Periodic booking jobs. Each is idempotent and safe with several instances at once
(conditional updates, compare-and-set), so any long-running process may call `run_due`."""

import logging
from datetime import datetime

from django.utils import timezone

from bookings import engine, notify, series, waitlist
from campus import idempotency

log = logging.getLogger(__name__)


def run_due(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    done = {}
    for name, job in [
        ("released", lambda: len(engine.release_no_shows(now))),
        ("offers_expired", lambda: waitlist.expire_offers(now)),
        ("reminders", lambda: notify.send_reminders(now)),
        ("emails", lambda: notify.send_outbox(now)),
        ("occurrences", lambda: series.extend_series(now)),
        # campus holds the keys but may not import bookings: their cleanup is run from here.
        ("idempotency_keys", lambda: idempotency.purge_expired(now)),
    ]:
        try:
            done[name] = job()
        except Exception:  # one failing job must not stop the others
            log.exception("periodic job %s failed", name)
    return done
