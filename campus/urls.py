"""URLs: the portal (home, sign-in, bookings), the back-office (Django admin), the API,
language switching and calendar feeds."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from access import views as access_views
from bookings import views as booking_views
from campus import ops
from campus import views as portal
from campus.api import api

admin.site.site_header = "Technocampus"
admin.site.site_title = "Technocampus"
admin.site.index_title = "Back-office"

# Django's own sign-in and password-reset views with the portal's templates. Their template
# names are our own: the admin app ships registration/*.html, which would win otherwise.
accounts = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="campus/auth/login.html",
            authentication_form=portal.SignInForm,
            redirect_authenticated_user=True,
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(
            template_name="campus/auth/password_reset_form.html",
            email_template_name="campus/auth/password_reset_email.txt",
            subject_template_name="campus/auth/password_reset_subject.txt",
            form_class=portal.ResetForm,
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(
            template_name="campus/auth/password_reset_done.html"
        ),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="campus/auth/password_reset_confirm.html"
        ),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="campus/auth/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    # An invited person's first password (campus.invitations), like a reset with its own link.
    path(
        "invitation/<uidb64>/<token>/",
        portal.InvitationConfirmView.as_view(),
        name="invitation_confirm",
    ),
    path(
        "invitation/done/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="campus/auth/invitation_complete.html"
        ),
        name="invitation_complete",
    ),
]

urlpatterns = [
    path("", portal.home, name="home"),
    path("accounts/", include(accounts)),
    path("", include("bookings.portal")),
    path("staff/", portal.staff_console, name="staff"),
    path("staff/import/", portal.import_people, name="import-people"),
    path("", include("labs.portal")),
    path("", include("access.portal")),
    path("", include("campus.views")),
    path("", include("labs.tenant_portal")),
    path("", include("campus.company")),
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("calendar/person/<str:token>.ics", booking_views.person_feed, name="person-feed"),
    path("calendar/resource/<str:token>.ics", booking_views.resource_feed, name="resource-feed"),
    path("occupancy/print/", access_views.occupancy_print, name="occupancy-print"),
]
