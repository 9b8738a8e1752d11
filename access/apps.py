from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = _("Access control")

    def ready(self):
        from access.changefeed import install_after_migrate

        # After every migrate: a rebuilt SQLite table loses its triggers (access.changefeed).
        post_migrate.connect(install_after_migrate, sender=self, dispatch_uid="access-change-feed")
