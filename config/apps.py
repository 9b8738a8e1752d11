from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def create_cache_table(using, **kwargs):
    """The database cache's table (rate limits count there), after every `migrate`: on a
    fresh machine, and after CACHE_URL is emptied. Nothing happens when it exists."""
    call_command("createcachetable", database=using, verbosity=0)


class ProjectConfig(AppConfig):
    name = "config"
    verbose_name = _("Technocampus")

    def ready(self):
        # `config` has no models, so Django sends it no post_migrate of its own: hang on the
        # campus app's, which every migrate sends.
        post_migrate.connect(create_cache_table, sender=self.apps.get_app_config("campus"))
