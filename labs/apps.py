from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LabsConfig(AppConfig):
    name = "labs"
    verbose_name = _("Labs and equipment")

    def ready(self):
        from bookings import jobs
        from labs import lost_qualifications

        jobs.register(
            "qualifications", lambda now: len(lost_qualifications.review_qualifications(now))
        )
