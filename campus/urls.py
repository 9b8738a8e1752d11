"""The campus pages' URLs: sign-in, password reset and invitations (Django's views with the
portal's templates), and "my account" with its API tokens."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from campus import pages

# Django's own sign-in and password-reset views with the portal's templates. Their template
# names are our own: the admin app ships registration/*.html, which would win otherwise.
accounts = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="campus/auth/login.html",
            authentication_form=pages.SignInForm,
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
            form_class=pages.ResetForm,
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
        pages.InvitationConfirmView.as_view(),
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
    path("accounts/", include(accounts)),
    path("account/", pages.account, name="account"),
    path("account/tokens/", pages.api_tokens, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke/", pages.revoke_token, name="api-token-revoke"),
]
