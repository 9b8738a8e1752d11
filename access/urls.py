"""The access pages' URLs: a tenant admin's company (people and their badges, visitors), and
the staff console's doors, lockdown, access log, occupancy and bulk import."""

from django.urls import path

from access import pages, staff_pages

urlpatterns = [
    path("company/", pages.company, name="company"),
    path("company/people/", pages.people, name="company-people"),
    path(
        "company/people/<int:person_id>/invitation/",
        pages.resend_invitation,
        name="company-invitation",
    ),
    path(
        "company/badges/<int:credential_id>/<str:action>/",
        pages.badge_action,
        name="company-badge",
    ),
    path("company/visitors/", pages.visitors, name="company-visitors"),
    path("staff/doors/", staff_pages.doors, name="doors"),
    path("staff/doors/state.json", staff_pages.doors_state, name="doors-state"),
    path("staff/doors/<str:door_id>/unlock/", staff_pages.unlock, name="unlock"),
    path("staff/lockdown/", staff_pages.lockdown, name="lockdown"),
    path("staff/access-log/", staff_pages.access_log, name="access-log"),
    path("staff/occupancy/", staff_pages.who_is_inside, name="occupancy"),
    path("staff/import/", staff_pages.import_people, name="import-people"),
    path("occupancy/print/", staff_pages.occupancy_print, name="occupancy-print"),
]
