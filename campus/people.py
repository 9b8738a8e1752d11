"""People: adding and changing a person, who may write a person or their badge, and who sees
which tenants, people and leases.

Every adapter asks here: the API, the company pages, the admin and the CSV import. What a
person may see is one function per object type (`visible_tenants`, `visible_people`,
`visible_leases`), used by the API's list and detail operations and the portal's pages alike;
the other apps' are in their own domain modules (`bookings.engine`, `labs.maintenance`,
`access.badges`, …). An object outside it answers 404.
"""

from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campus import invitations
from campus.models import Lease, Person, Tenant
from common.api import apply_fields, save_validated
from common.errors import Conflict, Forbidden

# ---------------------------------------------------------------- who may write a person

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
    actor manages badges at all; which ones they see is `access.badges.visible_credentials`'s
    business."""
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


def badge_holders(actor: Person) -> QuerySet:
    """The people whose badges `actor` may write (`require_may_write_badge` as a query), for
    the lists they pick a holder from: everyone for facility staff; a tenant admin's own
    tenant's people who hold no staff rights; nobody for anyone else."""
    if actor.runs_facility:
        return Person.objects.all()
    if not (actor.is_tenant_admin and actor.tenant_id):
        return Person.objects.none()
    return Person.objects.filter(tenant_id=actor.tenant_id).exclude(STAFF_RIGHTS)


# ---------------------------------------------------------------- adding and changing


def add_person(actor: Person | None, data: dict) -> Person:
    """Add a person (POST /people, the company page's "add a colleague", the CSV import): who
    may is `require_may_write_person` (`actor` None: an operator at the command line). No
    password: an active person is invited by e-mail to choose one (after the commit). 403
    Forbidden or 422 ValidationError otherwise."""
    data = dict(data)
    if actor is not None:
        if not actor.runs_facility and data.get("tenant_id") is None:
            data["tenant_id"] = actor.tenant_id
        require_may_write_person(actor, data, None)
    target = Person.objects.build(data.pop("email"))
    apply_fields(target, data, {"tenant_id": Tenant})
    save_validated(target)
    invitations.invite(target, by=actor)
    return target


def change_person(actor: Person, target: Person, data: dict) -> Person:
    """Change these fields of a person (PATCH /people/{id}): who may is
    `require_may_write_person`; an e-mail address is kept lower-case, as `add_person` does.
    403 Forbidden or 422 ValidationError otherwise."""
    require_may_write_person(actor, data, target)
    data = dict(data)
    if "email" in data:
        data["email"] = data["email"].lower()
    apply_fields(target, data, {"tenant_id": Tenant})
    return save_validated(target)


def resend_invitation(actor: Person, target: Person) -> datetime:
    """Send the invitation again (API, company page, admin): whoever may write the person
    (`require_may_write_person`), to someone active who has not chosen a password yet.
    Returns until when the new link is valid; 403 or 409 otherwise."""
    require_may_write_person(actor, {}, target)
    if not target.is_active:
        raise Conflict(
            _("%(name)s is inactive: activate them first.") % {"name": target.get_full_name()},
            code="inactive",
        )
    if target.has_usable_password():
        raise Conflict(
            _(
                "%(name)s has already chosen a password; if it is forgotten, “Forgotten "
                "password” on the sign-in page sends a new link."
            )
            % {"name": target.get_full_name()},
            code="already_signed_up",
        )
    invitations.invite(target, by=actor)
    return timezone.now() + invitations.VALID_FOR


# ---------------------------------------------------------------- who sees what


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
