"""`manage.py import_people file.csv [--commit]`: the portal's bulk onboarding from a shell.

Without --commit it only checks the file (a dry run); with it, the file is imported only if
every row is valid. The rules and the columns are those of `access.onboarding`.
"""

from django.core.management.base import BaseCommand, CommandError

from access.onboarding import import_people


class Command(BaseCommand):
    help = "Import tenants, people and badges from a CSV file (dry run unless --commit)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file: UTF-8, ';' or ',' separated, with a header")
        parser.add_argument(
            "--commit", action="store_true", help="import (only if every row is valid)"
        )

    def handle(self, *args, file, commit, **options):
        try:
            with open(file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CommandError(f"cannot read {file}: {e.strerror}") from None
        result = import_people(data, by=None, commit=commit)
        for e in result.errors:
            column = f", column {e.column}" if e.column else ""
            self.stderr.write(f"row {e.row}{column}: {e.message}")
        if not result.ok:
            raise CommandError(f"{len(result.errors)} error(s) in {file}: nothing was imported.")
        what = (
            f"{len(result.tenants)} tenant(s), {result.people} person(s), {result.badges} badge(s)"
        )
        if result.committed:
            self.stdout.write(self.style.SUCCESS(f"Imported {what} from {result.rows} row(s)."))
        else:
            self.stdout.write(
                f"The file is valid: {what} would be imported from {result.rows} row(s). "
                "Run again with --commit to import them."
            )
