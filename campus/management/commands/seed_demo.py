"""`manage.py seed_demo`: build (or bring up to date) the demo Technocampus. Idempotent."""

from django.core.management.base import BaseCommand
from django.db import transaction

from access import demo as access_demo
from campus import demo


class Command(BaseCommand):
    help = "Create or update the demo Technocampus (building, tenants, people). Safe to re-run."

    def handle(self, *args, **options):
        from bookings import demo as bookings_demo
        from labs import demo as labs_demo

        with transaction.atomic():
            logins = demo.build()
            bookings_demo.build()
            labs_demo.build()
            bookings_demo.week()
            access_demo.build(self.stdout)
        self.stdout.write(self.style.SUCCESS("Demo campus ready."))
        self.stdout.write(f"Demo logins (password: {demo.DEMO_PASSWORD}):")
        for email, roles in logins.items():
            self.stdout.write(f"  {email:55} {roles}")
