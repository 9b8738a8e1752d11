"""`manage.py run_jobs`: the periodic jobs (no-show release, reminders, waitlist offers,
series horizon, e-mails, public holidays) in a loop, the e-mail outbox every OUTBOX_POLL
seconds. Safe to run on several machines at once; stops on SIGTERM."""

import logging
import signal
import threading

from django.core.management.base import BaseCommand

from bookings.jobs import run_loop

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
