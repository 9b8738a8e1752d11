"""The root URLs: the home page and the staff console's hub, each app's pages, the
back-office (Django admin), the API, the operations probes, language switching."""

from django.contrib import admin
from django.urls import include, path

from config import ops, views
from config.api import api

admin.site.site_header = "Technocampus"
admin.site.site_title = "Technocampus"
admin.site.index_title = "Back-office"

urlpatterns = [
    path("", views.home, name="home"),
    path("staff/", views.staff_console, name="staff"),
    path("", include("campus.urls")),
    path("", include("bookings.urls")),
    path("", include("labs.urls")),
    path("", include("access.urls")),
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
]
