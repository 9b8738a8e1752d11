"""Who is calling the API, and what their roles let them do.

Two ways in: the browser session (with Django's CSRF check on unsafe methods) and
`Authorization: Bearer <token>` with a personal API token.

What a person may see is one function per object type (`visible_tenants`, `visible_people`,
…), used by the API's list and detail operations and the portal's pages alike; the campus
objects' are here, the others' in the domain module of their app (`bookings.engine`,
`labs.maintenance`, `access.models`, …). An object outside it answers 404.
"""

import logging

from django.contrib.auth.backends import ModelBackend
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from ninja.security import HttpBearer, SessionAuth

from campus.models import ApiToken, Lease, Person, Tenant
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


STAFF_ROLES = ("is_facility_staff", "is_lab_technician")


def holds_staff_rights(person: Person) -> bool:
    """A role beyond a tenant's: facility staff, lab technician or superuser, active or not
    (an inactive one could be made active again). Only facility staff write such a person:
    whoever controls their e-mail address, activation or badge holds their rights."""
    return person.is_facility_staff or person.is_lab_technician or person.is_superuser


# The same rule as a query, for the lists of people a tenant admin may pick from.
STAFF_RIGHTS = Q(is_facility_staff=True) | Q(is_lab_technician=True) | Q(is_superuser=True)


def _require_tenant_admin(actor: Person, detail: str):
    if not (actor.is_tenant_admin and actor.tenant_id):
        raise Forbidden(detail, code="staff_only")


def _require_own_tenant(actor: Person, target: Person, protected: str):
    if target.tenant_id != actor.tenant_id:
        raise Forbidden(_("A tenant admin manages only their own tenant's people."), "staff_only")
    if holds_staff_rights(target):
        raise Forbidden(protected, code="staff_only")


def require_may_write_person(actor: Person, data: dict, target: Person | None):
    """May `actor` set these fields (`data`) of `target` (None: a new person)? Facility staff
    write anyone; a tenant admin, their own tenant's people who hold no staff rights, and
    grants none. Every adapter asks here: API, portal, admin, CSV import. 403 otherwise.

    A lab technician is no facility staff here, and a tenant admin who is also a technician
    is only a tenant admin."""
    if actor.runs_facility:
        return
    _require_tenant_admin(actor, _("Only facility staff or a tenant admin may manage people."))
    if target is not None:
        _require_own_tenant(
            actor,
            target,
            _(
                "Only facility staff may change a facility staff member, a lab technician or a "
                "superuser."
            ),
        )
    if any(data.get(role) for role in STAFF_ROLES):
        raise Forbidden(_("Only facility staff may grant staff roles."), code="staff_only")
    if "tenant_id" in data and data["tenant_id"] != actor.tenant_id:
        raise Forbidden(_("A tenant admin manages only their own tenant's people."), "staff_only")


def require_may_write_badge(actor: Person, holder: Person | None = None):
    """May `actor` issue, suspend, report lost or reactivate a badge of `holder`? Facility
    staff any badge; a tenant admin the badges of their own tenant's people who hold no staff
    rights. Without a holder (a visitor's badge, or before the holder is known): whether the
    actor manages badges at all; which ones they see is `visible_credentials`'s business."""
    if actor.runs_facility:
        return
    _require_tenant_admin(actor, _("Only facility staff or a tenant admin may change badges."))
    if holder is not None:
        _require_own_tenant(
            actor,
            holder,
            _(
                "Only facility staff may change the badges of a facility staff member, a lab "
                "technician or a superuser."
            ),
        )


def may_write_badge(actor: Person, holder: Person | None) -> bool:
    try:
        require_may_write_badge(actor, holder)
    except Forbidden:
        return False
    return True


def may_write_person(actor: Person, target: Person) -> bool:
    try:
        require_may_write_person(actor, {}, target)
    except Forbidden:
        return False
    return True


def scoped_to_tenant(person: Person, qs: QuerySet, tenant_field: str = "tenant") -> QuerySet:
    """Staff see everything; anyone else sees only their own tenant's rows (or none)."""
    if person.runs_facility:
        return qs
    if person.tenant_id is None:
        return qs.none()
    return qs.filter(**{f"{tenant_field}_id": person.tenant_id})


def visible_tenants(person: Person) -> QuerySet:
    """Staff see every tenant; anyone else their own (none without a tenant)."""
    if person.runs_facility:
        return Tenant.objects.all()
    return Tenant.objects.filter(pk=person.tenant_id) if person.tenant_id else Tenant.objects.none()


def visible_people(person: Person) -> QuerySet:
    """Staff see everyone; anyone else their own tenant's people, and themselves (a lab
    technician has no tenant)."""
    qs = Person.objects.all()
    if person.runs_facility:
        return qs
    if person.tenant_id is None:
        return qs.filter(pk=person.pk)
    return qs.filter(Q(tenant_id=person.tenant_id) | Q(pk=person.pk))


def visible_leases(person: Person) -> QuerySet:
    """Staff see every lease; anyone else their own tenant's."""
    return scoped_to_tenant(person, Lease.objects.select_related("space"))


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
