"""`manage.py simulate_controller <ctrl_id> [--uid UID --door DOOR ...]`: a door controller on
the broker (birth and last will, heartbeats, decisions within 1 s). With --uid it presents those
badges (each at the --door of the same position, or the last --door given, or the controller's
first door) and prints the decisions; it then keeps running until SIGTERM, or exits with --once.
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from access.models import Door
from access.mqtt import configured_broker
from access.protocol import ProtocolError
from access.simulator import SimulatedController


class Command(BaseCommand):
    help = "Simulate a door controller: presence, heartbeats and badge scans."

    def add_arguments(self, parser):
        parser.add_argument("ctrl_id")
        parser.add_argument("--uid", action="append", default=[], help="a badge UID (hex)")
        parser.add_argument("--door", action="append", default=[], help="a door id")
        parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds")
        parser.add_argument("--once", action="store_true", help="exit after the scans")

    def handle(self, *args, ctrl_id, uid, door, heartbeat, once, **options):
        doors = door or list(
            Door.objects.filter(controller_id=ctrl_id).values_list("pk", flat=True)[:1]
        )
        if uid and not doors:
            raise CommandError(f"no door given and controller {ctrl_id} has none")
        try:
            device = SimulatedController(
                ctrl_id,
                broker=configured_broker(),
                key=settings.CREDENTIAL_KEY,
                root=settings.MQTT_ROOT,
                heartbeat=heartbeat,
            ).start()
        except (ProtocolError, ValueError, TimeoutError, OSError) as e:
            raise CommandError(str(e)) from None
        self.stdout.write(f"controller {ctrl_id} online")
        try:
            for i, badge in enumerate(uid):
                at = doors[i] if i < len(doors) else doors[-1]
                answer = device.scan(at, badge)
                self.stdout.write(f"{at} {badge}: {describe(answer)}")
            if not once:
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                signal.signal(signal.SIGINT, lambda *_: stop.set())
                stop.wait()
        finally:
            device.stop()


def describe(answer: dict | None) -> str:
    if answer is None:
        return "no answer within 1 s (a real controller would use its allow-list)"
    return f"{answer.get('result')} {answer.get('reason')}"
