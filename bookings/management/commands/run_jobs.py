"""`manage.py run_jobs`: the periodic jobs (no-show release, reminders, waitlist offers,
series horizon) in a loop. Safe to run on several machines at once; stops on SIGTERM."""

import signal
import threading

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from bookings.jobs import run_due


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


def run_loop(stop: threading.Event, interval: float, once: bool = False, out=None):
    while not stop.is_set():
        close_old_connections()  # a connection lost meanwhile is reopened, not reused
        done = run_due()
        if out is not None and any(done.values()):
            out.write(f"jobs: {done}")
        if once:
            break
        stop.wait(interval)
    close_old_connections()
