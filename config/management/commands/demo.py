"""`manage.py demo`: the zero-setup start. Migrates, builds the demo campus, serves the portal,
and runs the access side: an MQTT broker (embedded unless MQTT_URL is set), the MQTT bridge
(which also runs the periodic booking jobs) and, when demo controllers exist, simulated ones.

Everything a first-time user needs runs in this one process tree, on SQLite unless
DATABASE_URL says otherwise.
"""

import logging
import threading
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.demo import campus as demo

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Start Technocampus with demo data: migrate, seed the demo campus, run the web server."

    def add_arguments(self, parser):
        parser.add_argument(
            "--addrport", default="127.0.0.1:8000", help="Where the web server listens"
        )
        parser.add_argument("--no-serve", action="store_true", help="Prepare the data and exit")

    def handle(self, *args, addrport, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        call_command("seed_demo", stdout=self.stdout)
        host, _, port = addrport.rpartition(":")
        url = f"http://{host or '127.0.0.1'}:{port}"
        self.stdout.write(self.style.SUCCESS(f"\nTechnocampus is starting on {url}/"))
        self.stdout.write(f"  portal        {url}/")
        self.stdout.write(
            f"  back-office   {url}/admin/   (any demo login above, password {demo.DEMO_PASSWORD})"
        )
        self.stdout.write(f"  API docs      {url}/api/v1/docs")
        if no_serve:
            return
        if not settings.EMAIL_HOST:
            self.stdout.write(f"  e-mails       written to {settings.EMAIL_FILE_PATH}/")
        settings.SITE_URL = url
        embedded_url_file = None
        try:
            embedded_url_file = self.start_access()
        except Exception as e:  # the portal still starts; the jobs still run
            log.exception("the MQTT side did not start")
            self.stderr.write(f"  MQTT          not started: {e}")
            self.start_jobs()
        self.stdout.write("")
        try:
            call_command("runserver", addrport, use_reloader=False)
        finally:
            if embedded_url_file is not None:
                embedded_url_file.unlink(missing_ok=True)

    def start_access(self) -> Path | None:
        """Broker, bridge and simulated controllers, each in background threads; returns the
        file that tells other commands (door_scan) where the embedded broker listens."""
        from access.bridge import Bridge, BridgeConfig
        from access.mqtt import EMBEDDED_URL_FILE, broker_from_url
        from access.power import tasmota_prefix
        from access.simulator import SimulatedRelay
        from config.demo import access as access_demo

        url_file = None
        if settings.MQTT_URL:
            url, v5 = settings.MQTT_URL, settings.MQTT_V5
            shown = broker_from_url(url)
            self.stdout.write(f"  MQTT broker   {shown.host}:{shown.port} (MQTT_URL)")
        else:
            from access.embedded_broker import EmbeddedBroker

            url, v5 = EmbeddedBroker().start().url, False
            url_file = Path(settings.VAR_DIR) / EMBEDDED_URL_FILE
            url_file.write_text(url + "\n")
            self.stdout.write(
                f"  MQTT broker   embedded amqtt on {url} "
                "(MQTT 3.1.1, anonymous, this machine only)"
            )
        broker = broker_from_url(url)
        bridge = Bridge(
            BridgeConfig(
                broker=broker,
                root=settings.MQTT_ROOT,
                group="demo",
                client_id="technocampus-demo-bridge",
                v5=v5,
            )
        )
        threading.Thread(target=bridge.run, name="bridge", daemon=True).start()
        self.stdout.write(
            f"  MQTT bridge   answers badge scans under {settings.MQTT_ROOT}/ and runs the "
            "booking jobs every 30 s"
        )
        self.stdout.write("                try a badge: uv run manage.py door_scan <door id> <uid>")
        devices = access_demo.simulate(
            broker, key=settings.CREDENTIAL_KEY, root=settings.MQTT_ROOT, prefix=tasmota_prefix()
        )
        relays = [d for d in devices if isinstance(d, SimulatedRelay)]
        if devices:
            self.stdout.write(
                f"  controllers   {len(devices) - len(relays)} simulated (every door and machine "
                f"controller) and {len(relays)} Tasmota relays"
            )
        else:
            self.stdout.write("  controllers   none in the database, none simulated")
        return url_file

    def start_jobs(self):
        """Periodic jobs in a background thread: no cron to set up for a first run."""
        from bookings.jobs import run_loop

        stop = threading.Event()
        threading.Thread(target=run_loop, args=(stop, 30.0), name="jobs", daemon=True).start()
