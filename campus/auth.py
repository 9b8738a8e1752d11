"""Who is calling: the API's authentication, the sign-in backend and their throttles.

Two ways in: the browser session (with Django's CSRF check on unsafe methods) and
`Authorization: Bearer <token>` with a personal API token.

Who may write a person or their badge, and who sees which people, is `campus.people`'s.
"""

import logging

from django.contrib.auth.backends import ModelBackend
from django.db.models import QuerySet
from ninja.security import HttpBearer, SessionAuth

from campus.models import ApiToken, Person
from common.errors import DomainError, Forbidden
from common.throttle import Throttle, client_ip


class TooManyAttempts(DomainError):
    code = "too_many_attempts"


class TokenAuth(HttpBearer):
    """`Authorization: Bearer tc_…`: a personal API token, looked up by its digest.

    A valid token always passes, whatever others sent from the same address. Invalid ones
    are counted per address and per token prefix (TOKENS): past the limit they get 429.
    """

    def authenticate(self, request, token):
        person = ApiToken.authenticate(token)
        if person is not None:
            request.user = person
            return person
        keys = [f"ip:{client_ip(request)}", f"prefix:{token[:10]}"]
        if any(TOKENS.blocked(key) for key in keys):
            raise TooManyAttempts(
                "Too many invalid tokens from your address or like this one; wait 5 minutes."
            )
        for key in keys:
            TOKENS.fail(key)
        return None


class ActiveSessionAuth(SessionAuth):
    """The signed-in browser session, CSRF-checked on unsafe methods.

    CSRF protects a session's rights from other sites: a request without a signed-in session
    has none, so it is not checked and is answered 401 like any anonymous request."""

    def __call__(self, request):
        if self.authenticate(request, None) is None:
            return None
        return super().__call__(request)  # the CSRF check, then authenticate

    def authenticate(self, request, key):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_active:
            return user
        return None


api_auth = [TokenAuth(), ActiveSessionAuth()]


def caller(request) -> Person:
    return request.auth


def require_staff(request) -> Person:
    person = caller(request)
    if not person.runs_facility:
        raise Forbidden("Only facility staff may do this.", code="staff_only")
    return person


def visible_tokens(person: Person) -> QuerySet:
    """Everyone sees only their own API tokens, staff included."""
    return ApiToken.objects.filter(person=person)


# ---------------------------------------------------------------- sign-in and token guesses

# Guessing one person's password stops at 10 tries: the account then waits 15 minutes, the
# right password too. Failures from one address are counted only to be logged: an office or a
# proxy puts many people behind one address, and none of them is refused for another's typos.
SIGN_IN = Throttle("sign-in", limit=10, window=15 * 60)
SIGN_IN_FROM = Throttle("sign-in-from", limit=100, window=15 * 60)
# API tokens carry 256 random bits: guessing one is hopeless, a valid one always passes. Past
# 30 invalid ones from an address, or for one token prefix, the next are answered 429 rather
# than 401, to tell a broken or scanning client to stop.
TOKENS = Throttle("token", limit=30, window=5 * 60)

security_log = logging.getLogger("campus.security")


def sign_in_locked(email: str) -> bool:
    """Too many failed sign-ins for this e-mail address: whether or not an account has it."""
    return SIGN_IN.blocked(email.strip().lower())


class ThrottledModelBackend(ModelBackend):
    """E-mail + password sign-in (portal and admin), with the account lock of SIGN_IN."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        username = username or kwargs.get("email")
        if not username or password is None:
            return None  # not a password sign-in: nothing to count
        email = username.strip().lower()
        if sign_in_locked(email):
            security_log.warning("sign-in refused: account locked (from %s)", client_ip(request))
            return None
        user = super().authenticate(request, username=email, password=password, **kwargs)
        if user is not None:
            SIGN_IN.reset(email)
            return user
        if SIGN_IN.fail(email) == SIGN_IN.limit:
            security_log.warning("account locked after %d failed sign-ins", SIGN_IN.limit)
        ip = client_ip(request)
        if SIGN_IN_FROM.fail(ip) == SIGN_IN_FROM.limit:
            security_log.warning("%d failed sign-ins from %s", SIGN_IN_FROM.limit, ip)
        return None
