from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = _("Bookings")

    def ready(self):
        from bookings import engine, waitlist

        engine.slot_freed.connect(waitlist.on_slot_freed, dispatch_uid="waitlist")
