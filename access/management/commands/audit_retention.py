"""`manage.py audit_retention [--months 12]`: delete audit lines older than the retention.

The one command that removes rows from the audit log, through `purge_audit_events`. Safe to
run at any time and from several places at once: it deletes by age only.
"""

import calendar
from datetime import date, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from access.models import purge_audit_events
from campus import clock

DEFAULT_MONTHS = 12


def months_before(now: datetime, months: int) -> datetime:
    """Local midnight of the same day `months` calendar months earlier (a 31st becomes the last
    day of a shorter month), so that whole days leave the log together."""
    local = clock.local(now)
    year, month0 = divmod(local.year * 12 + local.month - 1 - months, 12)
    day = min(local.day, calendar.monthrange(year, month0 + 1)[1])
    return clock.local_midnight(date(year, month0 + 1, day))


class Command(BaseCommand):
    help = "Delete audit log lines older than the retention (default 12 months)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--months",
            type=int,
            default=DEFAULT_MONTHS,
            help=f"keep this many months of audit log (default {DEFAULT_MONTHS}, at least 1)",
        )

    def handle(self, *args, months, **options):
        if months < 1:
            raise CommandError("--months must be at least 1: the log is never emptied at once.")
        before = months_before(timezone.now(), months)
        deleted = purge_audit_events(before)
        self.stdout.write(f"Deleted {deleted} audit lines older than {before:%Y-%m-%d %H:%M %Z}.")
