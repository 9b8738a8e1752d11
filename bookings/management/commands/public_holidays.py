"""`manage.py public_holidays [--years 2027 2028] [--subdiv 57] [--restore]`: close the
French public holidays of those years (default: this year and next) as closures."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bookings.jobs import add_public_holidays
from campus import clock


class Command(BaseCommand):
    help = (
        "Add the French public holidays of some years as closures (default: this year and "
        "next). A year already added is left as it is, unless --restore: then the days "
        "missing from it (deleted closures) are added back. Never adds a day twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("--years", type=int, nargs="+", metavar="YEAR")
        parser.add_argument(
            "--subdiv",
            default=None,
            help="a region's own holidays too, e.g. 57 for Moselle "
            "(default: the PUBLIC_HOLIDAYS_SUBDIV setting)",
        )
        parser.add_argument(
            "--restore", action="store_true", help="add back the missing days of those years"
        )

    def handle(self, *args, years, subdiv, restore, **options):
        this_year = clock.today().year
        years = years or [this_year, this_year + 1]
        if any(not 1900 <= y <= 2200 for y in years):
            raise CommandError("a year is between 1900 and 2200")
        subdiv = settings.PUBLIC_HOLIDAYS_SUBDIV if subdiv is None else subdiv
        try:
            added = add_public_holidays(years, subdiv=subdiv, restore=restore)
        except ValueError as e:
            raise CommandError(str(e)) from e
        for closure in added:
            self.stdout.write(f"{closure.start_date:%Y-%m-%d} {closure.name}")
        self.stdout.write(f"{len(added)} closure(s) added for {', '.join(map(str, years))}.")
