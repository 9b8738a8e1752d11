"""Who may write a person and their badges: one rule (`campus.people.require_may_write_person`
and `require_may_write_badge`), obeyed by the API, the company pages, the admin and the CSV
import. A tenant admin manages their own tenant's people, but never one who holds a staff or
technician role or is a superuser, even inside their tenant: whoever controls that person's
e-mail address, activation or badge holds their rights."""

import copy

import pytest
from django.contrib import admin
from django.test import RequestFactory

from access import onboarding
from access.admin import CredentialAdmin
from access.models import AuditEvent, Credential
from campus.admin import PersonAdmin
from campus.models import Person
from campus.people import badge_holders, require_may_write_badge, require_may_write_person
from common.errors import Forbidden
from tests.conftest import api_client
from tests.portal.conftest import signed_in

JSON = "application/json"
GLOBEX, OTHER = 2, 3

# ------------------------------------------------------------------ the rule, table-driven


def someone(tenant=None, **roles) -> Person:
    return Person(email="x@test", first_name="X", last_name="Test", tenant_id=tenant, **roles)


ACTORS = {
    "staff": someone(is_facility_staff=True),
    "staff of a tenant": someone(GLOBEX, is_facility_staff=True),
    "superuser": someone(is_superuser=True),
    "technician": someone(is_lab_technician=True),
    "tenant admin": someone(GLOBEX, is_tenant_admin=True),
    "tenant admin and technician": someone(GLOBEX, is_tenant_admin=True, is_lab_technician=True),
    "member": someone(GLOBEX),
    "inactive staff": someone(is_facility_staff=True, is_active=False),
}
TARGETS = {
    "colleague": someone(GLOBEX),
    "colleague admin": someone(GLOBEX, is_tenant_admin=True),
    "inactive colleague": someone(GLOBEX, is_active=False),
    "staff in the tenant": someone(GLOBEX, is_facility_staff=True),
    "technician in the tenant": someone(GLOBEX, is_lab_technician=True),
    "superuser in the tenant": someone(GLOBEX, is_superuser=True),
    "admin and technician": someone(GLOBEX, is_tenant_admin=True, is_lab_technician=True),
    "inactive technician": someone(GLOBEX, is_lab_technician=True, is_active=False),
    "another tenant's": someone(OTHER),
}
STAFF = {"staff", "staff of a tenant", "superuser"}
TENANT_ADMINS = {"tenant admin", "tenant admin and technician"}
PLAIN = {"colleague", "colleague admin", "inactive colleague"}


def allowed(check, *args) -> bool:
    try:
        check(*args)
    except Forbidden as e:
        assert e.code == "staff_only" and e.detail
        return False
    return True


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("target", TARGETS)
def test_only_facility_staff_write_a_person_with_staff_rights_or_their_badge(actor, target):
    expected = actor in STAFF or (actor in TENANT_ADMINS and target in PLAIN)
    a, t = ACTORS[actor], TARGETS[target]
    assert allowed(require_may_write_person, a, {}, t) is expected
    assert allowed(require_may_write_person, a, {"email": "new@test"}, t) is expected
    assert allowed(require_may_write_badge, a, t) is expected


@pytest.mark.parametrize(
    "data",
    [
        {"is_facility_staff": True},
        {"is_lab_technician": True},
        {"tenant_id": OTHER},
        {"tenant_id": None},
    ],
)
def test_a_tenant_admin_grants_no_staff_role_nor_moves_anyone_out(data):
    colleague = TARGETS["colleague"]
    assert not allowed(require_may_write_person, ACTORS["tenant admin"], data, colleague)
    assert not allowed(require_may_write_person, ACTORS["tenant admin"], data, None)
    assert allowed(require_may_write_person, ACTORS["staff"], data, colleague)


def test_a_tenant_admin_manages_badges_and_a_member_does_not():
    assert allowed(require_may_write_badge, ACTORS["tenant admin"], None)  # a visitor's badge
    assert not allowed(require_may_write_badge, ACTORS["member"], None)
    assert not allowed(require_may_write_badge, ACTORS["technician"], None)


@pytest.mark.django_db
@pytest.mark.parametrize("actor", ACTORS)
def test_the_holders_one_may_pick_are_those_whose_badges_one_may_write(actor, acme, globex):
    targets = {}
    for n, (name, target) in enumerate(TARGETS.items()):
        tenant = acme if target.tenant_id == OTHER else globex
        fields = {
            field: getattr(target, field)
            for field in ("is_tenant_admin", "is_facility_staff", "is_lab_technician")
        }
        targets[name] = Person.objects.create(
            email=f"t{n}@test",
            tenant=tenant,
            is_active=target.is_active,
            is_superuser=target.is_superuser,
            **fields,
        )
    a = copy.copy(ACTORS[actor])
    a.tenant_id = a.tenant_id and globex.pk
    picked = set(badge_holders(a).filter(pk__in=[t.pk for t in targets.values()]))
    assert picked == {t for t in targets.values() if allowed(require_may_write_badge, a, t)}


# ------------------------------------------------------------------ the cast, in the database


def member_of(tenant, email, **roles) -> Person:
    person = Person.objects.build(email, first_name=email.split("@")[0].title(), last_name="Test")
    person.tenant = tenant
    for name, value in roles.items():
        setattr(person, name, value)
    person.save()
    return person


@pytest.fixture
def gina(globex):
    return member_of(globex, "gina@globex.test", is_tenant_admin=True)


@pytest.fixture
def stan(globex):
    """Facility staff hired with Globex as their tenant (the model allows it)."""
    return member_of(globex, "stan@globex.test", is_facility_staff=True)


@pytest.fixture
def theo(globex):
    return member_of(globex, "theo@globex.test", is_lab_technician=True)


@pytest.fixture
def root(globex):
    return member_of(globex, "root@globex.test", is_superuser=True)


def badge_of(person, uid, **extra) -> Credential:
    credential = Credential(holder=person, **extra)
    credential.set_uid(uid)
    credential.save()
    return credential


def post(client, url, body=None):
    return client.post(url, body or {}, content_type=JSON)


def refused(response, words="Only facility staff"):
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "staff_only" and words in body["detail"], body


# ------------------------------------------------------------------ API


@pytest.mark.parametrize(
    "patch",
    [
        {"email": "gina-owns-this@globex.test"},
        {"is_active": False},
        {"is_facility_staff": False},
        {"first_name": "Gina's"},
    ],
)
def test_a_tenant_admin_cannot_take_over_a_staff_member_of_their_tenant(gina, stan, patch):
    refused(api_client(gina).patch(f"/api/v1/people/{stan.pk}", patch, content_type=JSON))
    stan.refresh_from_db()
    assert (stan.email, stan.is_active, stan.is_facility_staff, stan.first_name) == (
        "stan@globex.test",
        True,
        True,
        "Stan",
    )


def test_nor_a_technician_or_a_superuser_of_their_tenant(gina, theo, root):
    as_gina = api_client(gina)
    for person in (theo, root):
        refused(as_gina.patch(f"/api/v1/people/{person.pk}", {"phone": "1"}, content_type=JSON))
        person.refresh_from_db()
        assert person.phone == ""


def test_staff_still_write_staff_of_a_tenant(as_sam, stan):
    response = as_sam.patch(
        f"/api/v1/people/{stan.pk}", {"email": "stan@campus.test"}, content_type=JSON
    )
    assert response.status_code == 200 and response.json()["email"] == "stan@campus.test"


def test_a_tenant_admin_still_writes_their_plain_colleagues(gina, charlie):
    response = api_client(gina).patch(
        f"/api/v1/people/{charlie.pk}", {"is_active": False}, content_type=JSON
    )
    assert response.status_code == 200 and response.json()["is_active"] is False


def test_a_tenant_admin_cannot_badge_a_staff_member_of_their_tenant(gina, stan, theo, charlie):
    as_gina = api_client(gina)
    for person in (stan, theo):
        refused(post(as_gina, "/api/v1/credentials", {"uid": "04A1B2C3", "holder_id": person.pk}))
    assert not Credential.objects.exists()
    fine = post(as_gina, "/api/v1/credentials", {"uid": "04A1B2C3", "holder_id": charlie.pk})
    assert fine.status_code == 201


@pytest.mark.parametrize("action", ["suspend", "report-lost", "reactivate"])
def test_a_tenant_admin_cannot_change_a_staff_members_badge(gina, stan, action):
    badge = badge_of(stan, "05050505")
    if action == "reactivate":
        badge.change_status("suspended", actor=None, via="test")
    before = (badge.status, AuditEvent.objects.count())
    as_gina = api_client(gina)
    assert as_gina.get(f"/api/v1/credentials/{badge.pk}").status_code == 200  # seen, not changed
    refused(post(as_gina, f"/api/v1/credentials/{badge.pk}/{action}"), "badges of a facility")
    badge.refresh_from_db()
    assert (badge.status, AuditEvent.objects.count()) == before


def test_a_lost_master_card_of_a_tenants_staff_member_stays_lost(gina, stan):
    master = badge_of(stan, "06060606", override=True)
    master.change_status("lost", actor=None, via="test")
    refused(post(api_client(gina), f"/api/v1/credentials/{master.pk}/reactivate"))
    master.refresh_from_db()
    assert master.status == "lost"


def test_a_tenant_admin_who_is_also_a_technician_is_only_a_tenant_admin(globex, charlie):
    both = member_of(globex, "tess@globex.test", is_tenant_admin=True, is_lab_technician=True)
    client = api_client(both)
    ok = client.patch(f"/api/v1/people/{charlie.pk}", {"phone": "2"}, content_type=JSON)
    assert ok.status_code == 200
    refused(client.patch(f"/api/v1/people/{both.pk}", {"phone": "2"}, content_type=JSON))
    refused(post(client, "/api/v1/credentials", {"uid": "07070707", "holder_id": both.pk}))


# ------------------------------------------------------------------ the company pages


def test_the_company_page_lists_a_staff_member_without_any_action(gina, stan, charlie):
    stans = badge_of(stan, "05050505")
    charlies = badge_of(charlie, "0499AA11")
    body = signed_in(gina).get("/company/people/").content.decode()
    assert "Stan Test" in body and "only facility staff change this person" in body
    assert f"/company/badges/{stans.pk}/" not in body
    assert f"?holder={stan.pk}#add-badge" not in body
    assert f'<option value="{stan.pk}"' not in body  # not among the holders to pick
    assert f"/company/badges/{charlies.pk}/suspend/" in body
    assert f'<option value="{charlie.pk}"' in body


def test_a_badge_action_on_a_staff_members_badge_is_a_403_that_says_why(gina, stan):
    badge = badge_of(stan, "05050505")
    response = signed_in(gina).post(f"/company/badges/{badge.pk}/suspend/")
    assert response.status_code == 403
    assert "Only facility staff may change the badges of" in response.content.decode()
    badge.refresh_from_db()
    assert badge.status == "active" and not AuditEvent.objects.exists()


def test_registering_a_badge_for_a_staff_member_is_refused_on_the_page(gina, stan):
    data = {"action": "add-badge", "badge-holder": stan.pk, "badge-uid": "0411"}
    response = signed_in(gina).post("/company/people/", data)
    assert response.status_code == 422 and 'id="id_badge-holder_error"' in response.content.decode()
    assert not Credential.objects.exists()


# ------------------------------------------------------------------ the admin


def admin_request(user):
    request = RequestFactory().post("/admin/")
    request.user = user
    return request


def test_a_technician_sees_people_in_the_admin_but_changes_nobody(tina, stan, bob):
    client = signed_in(tina)
    for person in (stan, bob):
        url = f"/admin/campus/person/{person.pk}/change/"
        assert client.get(url).status_code == 200  # view only
        data = {"email": "tina-owns-this@campus.test", "first_name": "T", "last_name": "T"}
        assert client.post(url, data).status_code == 403
        assert client.get(f"/admin/campus/person/{person.pk}/password/").status_code == 403
    stan.refresh_from_db()
    assert stan.email == "stan@globex.test"
    assert client.get("/admin/access/credential/").status_code == 403


def test_the_admins_person_form_checks_the_rule(globex, tina, stan, sam):
    """A technician who is also Globex's tenant admin reaches the admin (as a technician):
    the form refuses her change of Globex's staff member, whatever her permissions."""
    tess = member_of(globex, "tess@globex.test", is_tenant_admin=True, is_lab_technician=True)
    person_admin = PersonAdmin(Person, admin.site)
    data = {
        "email": "tina-owns-this@campus.test",
        "first_name": "Stan",
        "last_name": "Test",
        "tenant": stan.tenant_id,
        "language": "fr",
        "is_facility_staff": "on",
        "is_active": "on",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "10:00:00",
    }
    as_tess = person_admin.get_form(admin_request(tess), stan)(data, instance=stan)
    assert not as_tess.is_valid()
    assert "Only facility staff may change a facility" in str(as_tess.non_field_errors())
    as_tina = person_admin.get_form(admin_request(tina), stan)(data, instance=stan)
    assert not as_tina.is_valid()
    as_sam = person_admin.get_form(admin_request(sam), stan)(data, instance=stan)
    assert as_sam.is_valid(), as_sam.errors


def test_the_admins_badge_form_checks_the_holder(tina, stan, sam):
    credential_admin = CredentialAdmin(Credential, admin.site)
    data = {"uid": "04A1B2C3", "kind": "badge", "holder": stan.pk, "status": "active"}
    as_tina = credential_admin.get_form(admin_request(tina))(data)
    assert not as_tina.is_valid() and "holder" in as_tina.errors
    as_sam = credential_admin.get_form(admin_request(sam))(data)
    assert as_sam.is_valid(), as_sam.errors


def test_staff_and_superusers_change_anyone_in_the_admin(sam, root, stan, tina):
    person_admin = PersonAdmin(Person, admin.site)
    for actor, target in ((sam, root), (root, stan), (sam, tina)):
        assert person_admin.has_change_permission(admin_request(actor), target)
    assert not person_admin.has_change_permission(admin_request(tina), stan)


# ------------------------------------------------------------------ the CSV import


def test_an_import_row_never_attaches_to_an_existing_staff_member(sam, gina, stan):
    data = b"tenant;email;first_name;last_name;badge_uid\nGlobex;STAN@globex.test;Stan;Test;0808\n"
    result = onboarding.import_people(data, by=gina, commit=True)
    assert not result.committed
    assert [(e.row, e.column) for e in result.errors] == [(2, "email")]
    assert not Credential.objects.exists()
    stan.refresh_from_db()
    assert stan.first_name == "Stan" and stan.is_facility_staff
