"""Who is calling the API, and what their roles let them do.

Two ways in: the browser session (with Django's CSRF check on unsafe methods) and
`Authorization: Bearer <token>` with a personal API token. Scoping helpers live here so that
every list and detail endpoint filters the same way.
"""

from django.db.models import QuerySet
from ninja.security import HttpBearer, SessionAuth

from campus.errors import DomainError, Forbidden, NotFound
from campus.models import ApiToken, Person
from campus.ops import TOKENS, client_ip


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"


class TokenAuth(HttpBearer):
    """`Authorization: Bearer tc_…`: a personal API token, looked up by its digest."""

    def authenticate(self, request, token):
        ip = client_ip(request)
        if TOKENS.blocked(f"ip:{ip}"):
            raise TooManyAttempts("Too many invalid tokens from your address; wait 5 minutes.")
        person = ApiToken.authenticate(token)
        if person is None:
            TOKENS.fail(f"ip:{ip}")
            return None
        request.user = person
        return person


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


def is_staff(person: Person) -> bool:
    return person.is_active and (person.is_facility_staff or person.is_superuser)


def require_staff(request) -> Person:
    person = caller(request)
    if not is_staff(person):
        raise Forbidden("Only facility staff may do this.", code="staff_only")
    return person


STAFF_ROLES = ("is_facility_staff", "is_lab_technician")


def require_may_write_person(person: Person, data: dict, target: Person | None):
    """Staff manage anyone; a tenant admin, their own tenant's people, without staff roles.

    `data` holds the fields being set; `target` is the person changed (None: a new one).
    """
    if is_staff(person):
        return
    if not person.is_tenant_admin:
        raise Forbidden(
            "Only facility staff or a tenant admin may manage people.", code="staff_only"
        )
    if target is not None and target.tenant_id != person.tenant_id:
        raise Forbidden("Only facility staff may do this.", code="staff_only")
    if any(data.get(role) for role in STAFF_ROLES):
        raise Forbidden("Only facility staff may grant staff roles.", code="staff_only")
    if "tenant_id" in data and data["tenant_id"] != person.tenant_id:
        raise Forbidden("A tenant admin manages only their own tenant's people.", code="staff_only")


def scoped_to_tenant(person: Person, qs: QuerySet, tenant_field: str = "tenant") -> QuerySet:
    """Staff see everything; anyone else sees only their own tenant's rows (or none)."""
    if is_staff(person):
        return qs
    if person.tenant_id is None:
        return qs.none()
    return qs.filter(**{f"{tenant_field}_id": person.tenant_id})


def get_scoped(qs: QuerySet, pk: int, what: str):
    """The object with this id in the caller's scope, or 404 (also for another tenant's)."""
    obj = qs.filter(pk=pk).first()
    if obj is None:
        raise NotFound(f"No {what} with id {pk}.")
    return obj
