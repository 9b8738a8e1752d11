"""`manage.py mqtt_bridge [--workers N] [--group NAME]`: answer badge scans over MQTT, log door
events and controller presence, publish the retained site and door modes, run the periodic
booking jobs. Stops cleanly on SIGTERM (audit rows flushed, offline status published)."""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from prometheus_client import multiprocess

from access.bridge import Bridge, BridgeConfig, new_worker_id
from access.mqtt import configured_broker


class Command(BaseCommand):
    help = "Run the MQTT bridge between door/equipment controllers and the access decision."
    # No system checks at start: they import every URL conf, admin and API module (0.3-0.6 s
    # of CPU) before the first allow-list can go out; `manage.py check` and `migrate` run them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="worker processes sharing the scans (MQTT 5 shared subscriptions)",
        )
        parser.add_argument(
            "--group", default="technocampus", help="shared-subscription group of the workers"
        )
        parser.add_argument(
            "--name",
            default=None,
            help="client id prefix (default <group>-bridge); give each machine its own, and "
            "keep it across restarts: the broker keeps each worker's session under it",
        )
        parser.add_argument("--no-jobs", action="store_true", help="do not run the booking jobs")
        parser.add_argument(
            "--threads", type=int, default=1, help="threads deciding door scans in each worker"
        )
        parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)

    def handle(self, *args, workers, group, name, no_jobs, threads, worker_index, **options):
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if workers > 1 and not settings.MQTT_V5:
            raise CommandError("several workers need MQTT 5 shared subscriptions (MQTT_V5=1)")
        try:
            broker = configured_broker()
        except ValueError as e:
            raise CommandError(f"MQTT_URL: {e}") from None
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if workers > 1 and worker_index is None:
            self.supervise(stop, workers, group, name, no_jobs, threads)
            return
        index = worker_index or 0
        config = BridgeConfig(
            broker=broker,
            root=settings.MQTT_ROOT,
            group=group,
            client_id=new_worker_id(group, name, index),
            v5=settings.MQTT_V5,
            run_jobs=index == 0 and not no_jobs,
            power=index == 0,
            deciders=max(1, threads),
        )
        Bridge(config).run(stop)

    def supervise(self, stop, workers, group, name, no_jobs, threads):
        """N worker processes (one GIL each); one that dies is started again, with backoff."""
        manage = Path(sys.argv[0]).resolve()
        if manage.name != "manage.py":
            manage = Path(settings.BASE_DIR) / "manage.py"

        def spawn(index):
            argv = [sys.executable, str(manage), "mqtt_bridge", "--worker-index", str(index)]
            argv += ["--group", group] + (["--name", name] if name else [])
            argv += ["--threads", str(threads)] + (["--no-jobs"] if no_jobs else [])
            return subprocess.Popen(argv)  # noqa: S603 - our own interpreter and manage.py

        children = {i: spawn(i) for i in range(workers)}
        backoff = dict.fromkeys(children, 1.0)
        self.stdout.write(f"{workers} bridge workers started (group {group})")
        while not stop.wait(0.5):
            for i, child in list(children.items()):
                if child.poll() is not None:
                    self.stderr.write(f"worker {i} exited ({child.returncode}); restarting")
                    forget_gauges(child.pid)
                    time.sleep(backoff[i])
                    backoff[i] = min(backoff[i] * 2, 30)
                    children[i] = spawn(i)
        for child in children.values():
            child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            forget_gauges(child.pid)


def forget_gauges(pid: int):
    """A worker's gauges (controllers online, allow-lists lagging) leave /metrics with it,
    even when it could not say so itself (killed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
