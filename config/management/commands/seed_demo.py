"""`manage.py seed_demo`: build (or bring up to date) the demo Technocampus. Idempotent."""

from django.core.management.base import BaseCommand
from django.db import transaction

from config.demo import access as access_demo
from config.demo import campus as demo


class Command(BaseCommand):
    help = "Create or update the demo Technocampus (building, tenants, people). Safe to re-run."

    def handle(self, *args, **options):
        from config.demo import bookings as bookings_demo
        from config.demo import labs as labs_demo

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
