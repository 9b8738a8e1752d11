"""Visitor passes: expecting a visitor, handing them their badge, and who sees which visits.

The API and the company pages call these functions, so that the rules and the audit log are
the same whichever way a visit comes in.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from access.badges import hash_new_uid, holder_for
from access.models import Credential, VisitorPass, record_rights_change
from campus.models import Person, Space
from common.api import existing, save_validated
from common.errors import Conflict, Forbidden, Invalid


def visible_visits(person: Person):
    """Staff see every visitor pass; a tenant admin those hosted by their tenant's people;
    anyone else may not manage visitors (403)."""
    qs = VisitorPass.objects.select_related("host", "space", "credential__holder")
    if person.runs_facility:
        return qs
    if person.is_tenant_admin and person.tenant_id:
        return qs.filter(host__tenant_id=person.tenant_id)
    raise Forbidden("Only facility staff or a tenant admin may manage visitors.", code="staff_only")


def _issue_visitor_badge(
    visit: VisitorPass, uid: str, label: str, *, by: Person, why: str, via: str = "api"
):
    credential = Credential(kind=Credential.Kind.VISITOR, visitor_pass=visit, label=label)
    hash_new_uid(credential, uid)
    save_validated(credential)
    record_rights_change(
        credential, "visitor_badge", actor=by, via=via, why=why, person=visit.host, visit=visit.pk
    )
    return credential


def expect_visitor(
    actor: Person,
    visitor_name: str,
    start: datetime,
    end: datetime,
    *,
    visitor_company: str = "",
    host_id: int | None = None,
    space_id: int | None = None,
    uid: str | None = None,
    label: str = "",
    why: str = "",
    via: str = "api",
) -> VisitorPass:
    """Create a visitor pass (the API's POST /visitors and the portal): staff for any host, a
    tenant admin for their tenant's people (themselves by default); the visited space is
    checked by VisitorPass.clean; a badge may be handed at once. Audit-logged."""
    visible_visits(actor)  # 403 unless staff or a tenant admin
    if end <= timezone.now():
        raise Invalid(_("end: the visit is already over."), field="end")
    host = actor if host_id is None else holder_for(actor, host_id)
    if host is None:
        raise Invalid(_("host_id: a visit needs a host."), field="host_id")
    visit = VisitorPass(
        visitor_name=visitor_name,
        visitor_company=visitor_company,
        host=host,
        start=start,
        end=end,
        space=existing(Space, space_id, "space_id") if space_id else None,
    )
    with transaction.atomic():
        save_validated(visit)
        if uid:
            _issue_visitor_badge(visit, uid, label, by=actor, why=why, via=via)
        else:
            record_rights_change(
                None, "visitor_pass", actor=actor, via=via, why=why, person=host, visit=visit.pk
            )
    return visit


def give_visitor_badge(
    actor: Person, visit: VisitorPass, uid: str, *, label: str = "", why: str = "", via: str = "api"
) -> Credential:
    """Hand a visitor (a visit the actor sees, `visible_visits`) their badge; 409 if they
    already have one. Audit-logged."""
    if hasattr(visit, "credential"):
        raise Conflict("This visitor already has a badge.", code="already_registered")
    with transaction.atomic():
        return _issue_visitor_badge(visit, uid, label, by=actor, why=why, via=via)
