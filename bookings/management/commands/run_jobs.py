"""`manage.py run_jobs`: the periodic jobs (no-show release, reminders, waitlist offers,
series horizon, e-mails, public holidays) in a loop, the e-mail outbox every OUTBOX_POLL
seconds. Safe to run on several machines at once; stops on SIGTERM."""

import logging
import signal
import threading
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from bookings import notify
from bookings.jobs import run_due

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the periodic booking jobs every --interval seconds until SIGTERM (or --once)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=30.0)
        parser.add_argument("--once", action="store_true")

    def handle(self, *args, interval, once, **options):
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_loop(stop, interval, once, self.stdout)


# The e-mail outbox is looked at more often than the other jobs: a booking's confirmation
# should not wait for the next round of no-show releases.
OUTBOX_POLL = 2.0


def run_loop(stop: threading.Event, interval: float, once: bool = False, out=None):
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
