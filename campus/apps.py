from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def create_cache_table(using, **kwargs):
    """The database cache's table (rate limits count there), after every `migrate`: on a
    fresh machine, and after CACHE_URL is emptied. Nothing happens when it exists."""
    call_command("createcachetable", database=using, verbosity=0)


class CampusConfig(AppConfig):
    name = "campus"
    verbose_name = _("Campus")

    def ready(self):
        post_migrate.connect(create_cache_table, sender=self)
