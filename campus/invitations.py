"""Invitations: a person added by the API, the company page, the CSV import or the admin has
no password; an e-mail in their language brings a link to choose one, valid for 7 days and
once (choosing the password changes what the link was signed with).

The link's token is not the password reset's: another salt (a reset link is no invitation,
nor the other way round) and its own lifetime. The e-mail leaves after the transaction
commits (a rolled-back creation, or a CSV dry run, sends nothing); a failure to send is
logged and never undoes the creation: the invitation can be sent again by the person's
tenant admin or by staff (`campus.people.resend_invitation`), and "Forgotten password"
works for an invited person too.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode

from campus.models import Person

log = logging.getLogger(__name__)

VALID_FOR = timedelta(days=7)


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    """Signed like a password reset token (the person's id, password hash, last sign-in and
    e-mail: any of them changing ends the link), with a salt and a lifetime of its own."""

    key_salt = "campus.invitations.InvitationTokenGenerator"
    valid_for = VALID_FOR

    def check_token(self, user, token):
        # Django's check compares the age with PASSWORD_RESET_TIMEOUT (one day): the same
        # check with this generator's lifetime.
        if not (user and token):
            return False
        try:
            ts_b36, _hash = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return False
        for secret in [self.secret, *self.secret_fallbacks]:
            if constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token):
                break
        else:
            return False
        return self._num_seconds(self._now()) - ts <= self.valid_for.total_seconds()


tokens = InvitationTokenGenerator()


def link_for(person: Person) -> str:
    uid = urlsafe_base64_encode(force_bytes(person.pk))
    path = reverse("invitation_confirm", kwargs={"uidb64": uid, "token": tokens.make_token(person)})
    return f"{settings.SITE_URL}{path}"


def invite(person: Person, *, by: Person | None = None):
    """Send `person` their invitation once the current transaction commits (at once outside
    one). Only an active person without a password is invited."""
    if person.is_active and not person.has_usable_password():
        transaction.on_commit(lambda: send(person, by))


def send(person: Person, by: Person | None = None) -> bool:
    """Render and send the invitation now, in the person's language; False (and logged) if
    the mail server refused it."""
    try:
        with translation.override(person.language or settings.LANGUAGE_CODE):
            context = {
                "person": person,
                "by": by.get_full_name() if by is not None else "",
                "tenant": by.tenant.name if by is not None and by.tenant_id else "",
                "link": link_for(person),
                "days": VALID_FOR.days,
                "site": settings.SITE_URL,
                "reset": f"{settings.SITE_URL}{reverse('password_reset')}",
            }
            subject = render_to_string("campus/auth/invitation_subject.txt", context)
            body = render_to_string("campus/auth/invitation_email.txt", context)
        subject = "".join(subject.splitlines()).strip()  # a header: one line
        EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, [person.email]).send()
    except Exception:  # a mail server outage must not undo the creation of a person
        log.exception("could not send the invitation of person %s", person.pk)
        return False
    return True
