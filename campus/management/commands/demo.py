"""`manage.py demo`: the zero-setup start. Migrates, builds the demo campus, serves the portal.

Everything a first-time user needs runs in this one process tree, on SQLite unless
DATABASE_URL says otherwise.
"""

import threading

from django.core.management import call_command
from django.core.management.base import BaseCommand

from campus import demo


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
        self.stdout.write(f"  API docs      {url}/api/v1/docs\n")
        if not no_serve:
            self.start_jobs()
            call_command("runserver", addrport, use_reloader=False)

    def start_jobs(self):
        """Periodic jobs in a background thread: no cron to set up for a first run."""
        from bookings.management.commands.run_jobs import run_loop

        stop = threading.Event()
        threading.Thread(target=run_loop, args=(stop, 30.0), name="jobs", daemon=True).start()
