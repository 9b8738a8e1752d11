"""URLs: the back-office (Django admin), the API, language switching, the portal's home."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from access import views as access_views
from bookings import views as booking_views
from campus.api import api

admin.site.site_header = "Technocampus"
admin.site.site_title = "Technocampus"
admin.site.index_title = "Back-office"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("calendar/person/<str:token>.ics", booking_views.person_feed, name="person-feed"),
    path("calendar/resource/<str:token>.ics", booking_views.resource_feed, name="resource-feed"),
    path("occupancy/print/", access_views.occupancy_print, name="occupancy-print"),
]
