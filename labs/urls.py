"""The lab pages' URLs: the machines for everyone signed in, the staff console's equipment,
qualifications, incidents and the month's report."""

from django.urls import path

from labs import pages, staff_pages

urlpatterns = [
    path("equipment/", pages.equipment_list, name="machines"),
    path("equipment/<int:equipment_id>/", pages.equipment_detail, name="machine"),
    path("equipment/<int:equipment_id>/incident/", pages.report_incident, name="machine-incident"),
    path("company/usage/", pages.usage_statement, name="company-usage"),
    path("company/usage.csv", pages.usage_csv, name="company-usage-csv"),
    path("staff/equipment/", staff_pages.equipment_list, name="equipment"),
    path(
        "staff/equipment/<int:equipment_id>/",
        staff_pages.equipment_detail,
        name="equipment-detail",
    ),
    path(
        "staff/equipment/<int:equipment_id>/maintenance/",
        staff_pages.schedule_maintenance,
        name="maintenance",
    ),
    path("staff/equipment/<int:equipment_id>/sign-off/", staff_pages.sign_off, name="sign-off"),
    path("staff/qualifications/", staff_pages.qualifications, name="qualifications"),
    path(
        "staff/qualifications/<int:qualification_id>/revoke/",
        staff_pages.revoke_qualification,
        name="revoke-qualification",
    ),
    path("staff/incidents/", staff_pages.incidents, name="incidents"),
    path(
        "staff/incidents/<int:incident_id>/close/",
        staff_pages.close_incident,
        name="close-incident",
    ),
    path("staff/reports/", staff_pages.report, name="reports"),
]
