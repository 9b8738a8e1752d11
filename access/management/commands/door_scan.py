"""`manage.py door_scan <door_id> <uid>`: present one badge at a door, through the broker and
the bridge, as its controller would; prints the decision and its reason."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from access.management.commands.simulate_controller import describe
from access.models import Door
from access.mqtt import configured_broker, random_client_id
from access.protocol import ProtocolError
from access.simulator import SimulatedController


class Command(BaseCommand):
    help = "Try one badge at a door through the broker and print the decision."

    def add_arguments(self, parser):
        parser.add_argument("door_id")
        parser.add_argument("uid", help="the badge UID in hex, e.g. 04:A1:B2:C3")
        parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait")

    def handle(self, *args, door_id, uid, timeout, **options):
        door = Door.objects.filter(pk=door_id).first()
        if door is None:
            raise CommandError(f"no door {door_id}")
        try:
            # Not the controller itself: no presence, a client id of its own.
            device = SimulatedController(
                door.controller_id,
                broker=configured_broker(),
                key=settings.CREDENTIAL_KEY,
                root=settings.MQTT_ROOT,
                presence=False,
                client_id=random_client_id("door-scan"),
                decision_timeout=timeout,
            ).start()
            answer = device.scan(door_id, uid)
        except (ProtocolError, ValueError, TimeoutError, OSError) as e:
            raise CommandError(str(e)) from None
        device.stop()
        self.stdout.write(f"{door_id} ({door.name}) {uid}: {describe(answer)}")
        if answer is None:
            raise CommandError("no decision")
