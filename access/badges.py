"""Badges: registering one, changing its status (suspend, report lost, reactivate) with its
audit record, and who sees which badges.

The API, the company pages, the admin and the CSV import call these functions; who may
write a badge is `campus.people.require_may_write_badge`. Badge UIDs are taken in, hashed
(`Credential.register_uid`) and dropped: never stored, echoed back or logged.
"""

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from access.models import Credential, record_rights_change
from campus import clock
from campus.models import Person
from campus.people import require_may_write_badge
from common.api import existing, save_validated
from common.errors import Conflict, Forbidden, Invalid


def visible_credentials(person: Person):
    """Staff see every badge; a tenant admin their tenant's people's and visitors'; anyone
    else their own."""
    qs = Credential.objects.select_related("holder")
    if person.runs_facility:
        return qs
    if person.is_tenant_admin and person.tenant_id:
        return qs.filter(
            Q(holder__tenant_id=person.tenant_id)
            | Q(visitor_pass__host__tenant_id=person.tenant_id)
        )
    return qs.filter(holder=person)


def hash_new_uid(credential: Credential, uid: str):
    """Hash the UID into the credential; 422 if not hex, 409 if already registered."""
    try:
        credential.register_uid(uid)
    except Invalid as e:
        raise Invalid(f"uid: {e.detail}", field="uid") from None


def holder_for(person: Person | None, holder_id: int | None) -> Person | None:
    """The badge's holder (or a visit's host): anyone for staff (and for an operator at the
    command line, `person` None), one of their tenant's people for a tenant admin."""
    if person is None or person.runs_facility:
        return existing(Person, holder_id, "holder_id") if holder_id is not None else None
    if holder_id is None:
        raise Invalid(_("holder_id: whose badge is it?"), field="holder_id")
    holder = Person.objects.filter(pk=holder_id, tenant_id=person.tenant_id).first()
    if holder is None:
        raise Invalid(
            _("holder_id: no person with id %(id)s in your tenant.") % {"id": holder_id},
            field="holder_id",
        )
    return holder


def register_badge(
    actor: Person | None,
    uid: str,
    *,
    holder_id: int | None,
    label: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    override: bool = False,
    why: str = "",
    via: str = "api",
) -> Credential:
    """Register a person's badge (the API's POST /credentials, the company page, the CSV
    import): who may is `require_may_write_badge` (`actor` None: an operator at the command
    line); master cards are staff-only. The UID is hashed and dropped; the change is
    audit-logged."""
    if actor is not None:
        require_may_write_badge(actor)
        if override and not actor.runs_facility:
            raise Forbidden(_("Only facility staff may issue master cards."), code="staff_only")
    holder = holder_for(actor, holder_id)
    if actor is not None:
        require_may_write_badge(actor, holder)
    credential = Credential(
        kind=Credential.Kind.BADGE,
        holder=holder,
        label=label,
        valid_from=clock.aware(valid_from),
        valid_until=clock.aware(valid_until),
        override=override,
    )
    hash_new_uid(credential, uid)
    with transaction.atomic():
        save_validated(credential)
        given = ("holder", "label", "valid_from", "valid_until", "override")
        changed = ["uid", *(name for name in given if getattr(credential, name))]
        record_rights_change(credential, "issued", actor=actor, via=via, why=why, changed=changed)
    return credential


def set_badge_status(
    actor: Person, credential: Credential, status: str, *, why: str = "", via: str = "api"
) -> Credential:
    """Suspend, report lost or reactivate a badge the actor may see (visible_credentials)
    and change (`require_may_write_badge`); audit-logged by Credential.change_status. 403
    Forbidden, or 409 Conflict `invalid_transition` for a move the badge's status forbids."""
    require_may_write_badge(actor, credential.holder)
    try:
        credential.change_status(status, actor=actor, via=via, why=why)
    except ValueError:
        raise Conflict(
            _("A %(old)s badge cannot become %(new)s.")
            % {
                "old": credential.get_status_display(),
                "new": Credential.Status(status).label,
            },
            code="invalid_transition",
        ) from None
    return credential
