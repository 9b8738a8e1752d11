"""Who may stop a usage session by hand (`sessions.require_may_stop`) and read a tenant's
usage statement (`usage.require_may_read_statement`): the rules themselves, which the API,
the admin and the company usage page ask."""

import pytest

from campus.models import Person
from common.errors import Forbidden, Invalid, NotFound
from labs import sessions, usage
from labs.models import UsageSession

ACME, GLOBEX = 1, 2


def someone(pk, tenant=None, **roles) -> Person:
    return Person(pk=pk, email=f"{pk}@test", tenant_id=tenant, **roles)


def stop_reason(person, session):
    try:
        return sessions.require_may_stop(person, session)
    except Forbidden:
        return None


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        (someone(10, ACME), "manual"),  # the session's user
        (someone(11, ACME, is_tenant_admin=True), "manual"),
        (someone(12, ACME), None),  # a colleague
        (someone(13, GLOBEX, is_tenant_admin=True), None),  # another tenant's admin
        (someone(14, is_lab_technician=True), "staff"),
        (someone(15, is_facility_staff=True), "staff"),
        (someone(16, is_lab_technician=True, is_active=False), None),
    ],
    ids=["user", "their admin", "colleague", "other admin", "technician", "staff", "inactive"],
)
def test_who_may_stop_a_session_and_what_the_stop_is_called(person, expected):
    session = UsageSession(person_id=10, tenant_id=ACME)
    assert stop_reason(person, session) == expected


def test_who_may_read_which_statement(acme, globex, alice, bob, charlie, sam, tina):
    read = usage.require_may_read_statement
    assert read(alice, None) == acme  # a tenant admin: their own, by default
    assert read(alice, acme.pk) == acme
    with pytest.raises(NotFound):
        read(alice, globex.pk)  # another tenant's is as unknown as a missing one
    assert read(sam, globex.pk) == globex
    with pytest.raises(Invalid):
        read(sam, None)  # staff name the tenant
    with pytest.raises(NotFound):
        read(sam, 999999)
    for nobody in (bob, charlie, tina):
        with pytest.raises(Forbidden):
            read(nobody, acme.pk)
