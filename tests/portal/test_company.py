"""My company, for tenant admins only: people and their badges, visitor invitations and the
monthly usage statement. Every change goes through the API's functions and lands in the audit
log; another tenant's person or badge is a 404; anyone but a tenant admin gets a 403."""

from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from access import pages
from access.models import AuditEvent, Credential, VisitorPass
from bookings.engine import Slot, book
from campus.models import Person
from labs import usage
from tests.portal.conftest import signed_in, tomorrow

PAGES = ["/company/", "/company/people/", "/company/visitors/", "/company/usage/"]


def badge_of(person, uid="04A1B2C3"):
    credential = Credential(holder=person)
    credential.set_uid(uid)
    credential.save()
    return credential


@pytest.fixture
def bobs_badge(bob):
    return badge_of(bob)


@pytest.fixture
def charlies_badge(charlie):
    return badge_of(charlie, "0499AA11")


def test_only_a_tenant_admin_reaches_the_company_pages(alice, bob, sam):
    for page in PAGES:
        assert signed_in(alice).get(page).status_code == 200, page
        assert signed_in(bob).get(page).status_code == 403, page
        assert signed_in(sam).get(page).status_code == 403, page  # staff have the back-office
        assert Client().get(page).status_code == 302, page
    assert 'href="/company/"' in signed_in(alice).get("/").content.decode()
    assert 'href="/company/"' not in signed_in(bob).get("/").content.decode()


# ------------------------------------------------------------------ people


def test_the_people_page_lists_my_company_and_its_badges_only(alice, bob, charlie, bobs_badge):
    body = signed_in(alice).get("/company/people/").content.decode()
    assert "Bob Test" in body and "Alice Test" in body and "Charlie" not in body
    assert f"…{bobs_badge.uid_hint}" in body and "Status: active" in body
    assert "04A1B2C3" not in body  # the UID itself is never shown


def test_adding_a_colleague_uses_the_apis_rule(alice, acme):
    data = {
        "action": "add-person",
        "person-first_name": "Dana",
        "person-last_name": "Doe",
        "person-email": "Dana@Acme.test",
        "person-language": "en",
    }
    with mock.patch.object(pages, "add_person", wraps=pages.add_person) as spy:
        response = signed_in(alice).post("/company/people/", data, follow=True)
    assert spy.call_count == 1
    dana = Person.objects.get(email="dana@acme.test")
    assert (dana.tenant, dana.is_tenant_admin, dana.has_usable_password()) == (acme, False, False)
    assert "Dana Doe was added" in response.content.decode()


def test_a_taken_email_is_shown_next_to_the_field_and_the_form_kept(alice, charlie):
    data = {
        "action": "add-person",
        "person-first_name": "Kept",
        "person-last_name": "Name",
        "person-email": "charlie@globex.test",
        "person-language": "fr",
    }
    response = signed_in(alice).post("/company/people/", data)
    assert response.status_code == 422
    body = response.content.decode()
    assert 'aria-describedby="id_person-email_error"' in body
    assert 'value="Kept"' in body and 'value="charlie@globex.test"' in body
    assert Person.objects.filter(first_name="Kept").count() == 0


def test_registering_a_badge_is_audit_logged_and_never_keeps_the_uid(alice, bob):
    data = {
        "action": "add-badge",
        "badge-holder": bob.pk,
        "badge-uid": "04:de:ad:be",
        "badge-label": "17",
    }
    with mock.patch.object(pages, "register_badge", wraps=pages.register_badge) as spy:
        response = signed_in(alice).post("/company/people/", data, follow=True)
    assert spy.call_count == 1
    credential = Credential.objects.get(holder=bob)
    assert (credential.uid_hint, credential.label) == ("ADBE", "17")
    assert "04deadbe" not in credential.uid_hash
    assert "Badge …ADBE registered for Bob Test." in response.content.decode()
    event = AuditEvent.objects.get(credential=credential)
    assert (event.result, event.reason, event.actor) == ("issued", "portal", alice)


def test_a_bad_uid_is_refused_next_to_the_field(alice, bob, bobs_badge):
    client = signed_in(alice)
    data = {
        "action": "add-badge",
        "badge-holder": bob.pk,
        "badge-uid": "zz-not-hex",
        "badge-label": "K",
    }
    body = client.post("/company/people/", data).content.decode()
    assert 'id="id_badge-uid_error"' in body and "whole bytes in hexadecimal" in body
    assert 'value="zz-not-hex"' in body and 'value="K"' in body
    again = {**data, "badge-uid": "04A1B2C3"}
    assert "already registered" in client.post("/company/people/", again).content.decode()


def test_another_tenants_person_cannot_get_a_badge(alice, charlie):
    data = {"action": "add-badge", "badge-holder": charlie.pk, "badge-uid": "0411"}
    response = signed_in(alice).post("/company/people/", data)
    assert response.status_code == 422 and not Credential.objects.exists()


def test_suspending_a_badge_goes_through_the_shared_function_and_the_log(alice, bobs_badge):
    with mock.patch.object(pages, "set_badge_status", wraps=pages.set_badge_status) as spy:
        response = signed_in(alice).post(
            f"/company/badges/{bobs_badge.pk}/suspend/", {"why": "left the office"}, follow=True
        )
    assert spy.call_count == 1
    bobs_badge.refresh_from_db()
    assert bobs_badge.status == "suspended"
    event = AuditEvent.objects.get(credential=bobs_badge)
    assert (event.result, event.reason, event.actor) == ("suspended", "portal", alice)
    assert event.detail["why"] == "left the office"
    body = response.content.decode()
    assert "suspended" in body and "Status: suspended" in body and "Reactivate" in body


def test_report_lost_then_an_impossible_move_is_explained(alice, bobs_badge):
    client = signed_in(alice)
    client.post(f"/company/badges/{bobs_badge.pk}/report-lost/")
    bobs_badge.refresh_from_db()
    assert bobs_badge.status == "lost"
    response = client.post(f"/company/badges/{bobs_badge.pk}/suspend/", follow=True)
    assert "A lost badge cannot become suspended." in response.content.decode()


def test_another_tenants_badge_is_not_found(alice, bob, charlies_badge):
    assert signed_in(alice).post(f"/company/badges/{charlies_badge.pk}/suspend/").status_code == 404
    assert signed_in(bob).post(f"/company/badges/{charlies_badge.pk}/suspend/").status_code == 403
    assert signed_in(alice).post(f"/company/badges/{charlies_badge.pk}/explode/").status_code == 404
    charlies_badge.refresh_from_db()
    assert charlies_badge.status == "active"


def test_badge_changes_need_post_and_csrf(alice, bobs_badge):
    assert signed_in(alice).get(f"/company/badges/{bobs_badge.pk}/suspend/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(f"/company/badges/{bobs_badge.pk}/suspend/").status_code == 403


# ------------------------------------------------------------------ visitors


def visit(**extra):
    return {
        "visitor_name": "Vera Visitor",
        "visitor_company": "Initech",
        "date": tomorrow(10).date().isoformat(),
        "start": "09:00",
        "end": "12:00",
        **extra,
    }


def test_inviting_a_visitor_creates_the_pass_like_the_api(alice, bob, campus):
    with mock.patch.object(pages, "expect_visitor", wraps=pages.expect_visitor) as spy:
        response = signed_in(alice).post(
            "/company/visitors/", visit(host=bob.pk, space=campus["office_acme"].pk), follow=True
        )
    assert spy.call_count == 1
    pass_ = VisitorPass.objects.get()
    assert (pass_.host, pass_.space, pass_.start) == (bob, campus["office_acme"], tomorrow(9))
    assert AuditEvent.objects.get(result="visitor_pass").reason == "portal"
    body = response.content.decode()
    assert "Vera Visitor is expected on" in body and "Initech" in body


def test_the_room_list_holds_my_offices_and_shared_rooms_only(alice, campus, rooms):
    choices = signed_in(alice).get("/company/visitors/").context["form"].fields["space"].queryset
    codes = {s.code for s in choices}
    assert "B-1.01" in codes and "B-1.50" in codes and "B-1.02" not in codes


def test_a_visit_in_the_past_or_backwards_is_refused_next_to_the_field(alice):
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = signed_in(alice).post("/company/visitors/", visit(date=yesterday, host=alice.pk))
    body = response.content.decode()
    assert response.status_code == 422 and "the visit is already over" in body
    assert 'id="id_end_error"' in body and 'value="Vera Visitor"' in body
    response = signed_in(alice).post(
        "/company/visitors/", visit(start="12:00", end="09:00", host=alice.pk)
    )
    assert 'aria-describedby="id_end_error"' in response.content.decode()
    assert not VisitorPass.objects.exists()


def test_another_tenants_person_cannot_host(alice, charlie):
    response = signed_in(alice).post("/company/visitors/", visit(host=charlie.pk))
    assert response.status_code == 422 and not VisitorPass.objects.exists()


# ------------------------------------------------------------------ usage


def test_the_usage_page_shows_the_statement_and_the_csv_is_the_apis(alice, bob, rooms):
    booking = book(bob, Slot(rooms["loire"], tomorrow(10), tomorrow(11)))
    month = timezone.localtime(booking.start).strftime("%Y-%m")
    client = signed_in(alice)
    response = client.get("/company/usage/", {"month": month})
    assert response.status_code == 200
    assert response.context["statement"].totals["room_cents"] == 2000
    body = response.content.decode()
    assert "Salle Loire" in body and "20.00 €" in body
    csv = client.get("/company/usage.csv", {"month": month, "decimal": "comma"})
    assert csv["Content-Type"] == "text/csv; charset=utf-8"
    api = signed_in(alice).get("/api/v1/usage.csv", {"month": month, "decimal": "comma"})
    assert csv.content == api.content and csv["Content-Disposition"] == api["Content-Disposition"]
    assert csv.content.startswith("\ufeff".encode())


def test_the_usage_of_another_tenant_is_never_shown(alice, charlie, rooms):
    book(charlie, Slot(rooms["maine"], tomorrow(10), tomorrow(11)))
    month = tomorrow(10).strftime("%Y-%m")
    response = signed_in(alice).get(
        "/company/usage/", {"month": month, "tenant": charlie.tenant_id}
    )
    assert response.context["statement"].tenant == "Acme"
    assert "Salle Maine" not in response.content.decode()


def test_a_bad_month_is_said_and_this_month_shown(alice):
    response = signed_in(alice).get("/company/usage/", {"month": "2026-13"})
    assert response.status_code == 422
    body = response.content.decode()
    assert 'aria-describedby="month-error"' in body and "YYYY-MM" in body
    assert response.context["month"] == timezone.localdate().replace(day=1)
    assert signed_in(alice).get("/company/usage.csv", {"month": "nope"}).status_code == 404
    with mock.patch.object(usage, "statement_for", wraps=usage.statement_for) as spy:
        signed_in(alice).get("/company/usage/")
    assert spy.call_count == 1
