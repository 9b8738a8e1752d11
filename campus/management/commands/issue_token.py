"""`manage.py issue_token <email>`: create a personal API token and print it once."""

from django.core.management.base import BaseCommand, CommandError

from campus.models import ApiToken, Person


class Command(BaseCommand):
    help = "Create a personal API token for a person; the token is printed once and never stored."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--name", default="command line", help="What the token is for")

    def handle(self, *args, email, name, **options):
        person = Person.objects.filter(email__iexact=email.strip()).first()
        if person is None:
            raise CommandError(f"No person with e-mail {email!r}.")
        if not person.is_active:
            raise CommandError(f"{email} is not active; a token would not work.")
        _token, plaintext = ApiToken.issue(person, name[:80])
        self.stdout.write(plaintext)
