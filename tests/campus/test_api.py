"""The API foundation: token and session auth, roles, tenant scoping, errors as JSON."""

from enum import StrEnum

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from bookings.models import Status as BookingStatus
from campus.models import ApiToken, Feature, Person, Space, Tenant
from common.errors import CODES
from config.api import Api
from labs.models import Equipment
from tests.conftest import api_client

pytestmark = pytest.mark.django_db

JSON = "application/json"


def test_a_valid_token_authenticates_and_records_its_use(bob):
    token, plaintext = ApiToken.issue(bob, "script")
    response = Client(headers={"Authorization": f"Bearer {plaintext}"}).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["email"] == "bob@acme.test"
    assert response.json()["tenant"]["name"] == "Acme"
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_token_is_stored_only_as_its_digest(bob):
    token, plaintext = ApiToken.issue(bob, "script")
    assert plaintext not in (token.digest, token.hint)
    assert token.digest == ApiToken.digest_of(plaintext)


def test_a_revoked_token_gets_401(bob):
    token, plaintext = ApiToken.issue(bob, "script")
    token.revoke()
    response = Client(headers={"Authorization": f"Bearer {plaintext}"}).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_no_credentials_get_401_as_json(db):
    response = Client().get("/api/v1/me")
    assert response.status_code == 401
    assert set(response.json()) == {"detail", "code"}


def test_a_made_up_token_gets_401(bob):
    response = Client(headers={"Authorization": "Bearer tc_not-a-real-token"}).get("/api/v1/me")
    assert response.status_code == 401


def test_an_inactive_persons_token_gets_401(bob):
    _token, plaintext = ApiToken.issue(bob, "script")
    Person.objects.filter(pk=bob.pk).update(is_active=False)
    response = Client(headers={"Authorization": f"Bearer {plaintext}"}).get("/api/v1/me")
    assert response.status_code == 401


def test_a_session_works_and_unsafe_methods_need_the_csrf_token(bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    assert client.get("/api/v1/me").status_code == 200
    response = client.post("/api/v1/me/tokens", {"name": "x"}, content_type=JSON)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"


def test_people_create_tokens_see_them_without_the_secret_and_revoke_them(as_bob):
    created = as_bob.post("/api/v1/me/tokens", {"name": "laptop"}, content_type=JSON)
    assert created.status_code == 201
    plaintext = created.json()["token"]
    listed = as_bob.get("/api/v1/me/tokens").json()
    assert [t["name"] for t in listed["items"]] == ["laptop", "tests"] and listed["count"] == 2
    assert all("token" not in t for t in listed["items"])
    revoked = as_bob.post(f"/api/v1/me/tokens/{created.json()['id']}/revoke")
    assert revoked.json()["revoked_at"] is not None
    assert (
        Client(headers={"Authorization": f"Bearer {plaintext}"}).get("/api/v1/me").status_code
        == 401
    )


def test_nobody_revokes_another_persons_token(as_charlie, bob):
    token, _ = ApiToken.issue(bob, "mine")
    assert as_charlie.post(f"/api/v1/me/tokens/{token.pk}/revoke").status_code == 404


def test_spaces_filter_by_kind_capacity_and_feature(as_bob, campus):
    def codes(query):
        response = as_bob.get(f"/api/v1/spaces?{query}")
        assert response.status_code == 200, response.content
        return [s["code"] for s in response.json()["items"]]

    assert codes("kind=meeting_room") == ["B-0.03", "B-1.50"]
    assert codes("kind=meeting_room&min_capacity=10") == ["B-0.03"]
    assert codes("feature=projector&level=1") == ["B-1.50"]
    assert codes("feature=projector&feature=esd-floor") == []
    assert codes("feature=esd-floor") == ["B-0.10"]
    campus["meeting"].features.add(Feature.objects.get(code="esd-floor"))
    assert codes("feature=projector&feature=esd-floor") == ["B-1.50"]  # both: one space
    assert codes("feature=projector&feature=projector") == ["B-0.03", "B-1.50"]


@pytest.mark.parametrize(
    "query",
    ["kind=spaceship", "min_capacity=-1", "min_capacity=lots", "level=99", "limit=-5"],
)
def test_bad_space_filters_get_422_with_a_message(as_bob, query):
    response = as_bob.get(f"/api/v1/spaces?{query}")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"
    assert response.json()["detail"]


def test_a_tenant_member_cannot_create_a_space(as_bob, campus):
    payload = {"floor_id": campus["first"].pk, "code": "B-1.77", "name": "New", "kind": "office"}
    response = as_bob.post("/api/v1/spaces", payload, content_type=JSON)
    assert response.status_code == 403
    assert response.json()["code"] == "staff_only"


def test_staff_create_and_update_a_space(as_sam, campus):
    payload = {
        "floor_id": campus["first"].pk,
        "code": "B-1.77",
        "name": "New room",
        "kind": "meeting_room",
        "capacity": 6,
        "features": ["projector"],
        "bookable": True,
    }
    response = as_sam.post("/api/v1/spaces", payload, content_type=JSON)
    assert response.status_code == 201, response.content
    space_id = response.json()["id"]
    assert response.json()["features"] == ["projector"]
    response = as_sam.patch(f"/api/v1/spaces/{space_id}", {"capacity": 10}, content_type=JSON)
    assert response.json()["capacity"] == 10
    assert Space.objects.get(pk=space_id).name == "New room"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"code": "B-1.78", "name": "x", "kind": "office"}, "floor_id"),
        ({"floor_id": 0, "code": "B-1.78", "name": "x", "kind": "office"}, "floor_id"),
        ({"floor_id": "FLOOR", "code": "B-1.78", "name": "x", "kind": "office"}, "floor_id"),
        (
            {"floor_id": None, "code": "B-1.78", "name": "x", "kind": "lab", "capacity": -3},
            "capacity",
        ),
        ({"floor_id": None, "code": "B-1.78", "name": "", "kind": "office"}, "name"),
        ({"floor_id": None, "code": "B 1 78 !", "name": "x", "kind": "office"}, "code"),
        ({"floor_id": None, "code": "A-1.78", "name": "x", "kind": "office"}, "code"),
        ({"floor_id": None, "code": "B-1.01", "name": "x", "kind": "office"}, "code"),
        (
            {"floor_id": None, "code": "B-1.78", "name": "x", "kind": "office", "area_m2": 0},
            "area_m2",
        ),
        (
            {
                "floor_id": None,
                "code": "B-1.78",
                "name": "x",
                "kind": "office",
                "features": ["wings"],
            },
            "features",
        ),
        (
            {"floor_id": None, "code": "B-1.78", "name": "x", "kind": "office", "colour": "red"},
            "colour",
        ),
    ],
)
def test_bad_space_input_gets_422_naming_the_field(as_sam, campus, payload, field):
    if payload.get("floor_id", 1) is None:
        payload["floor_id"] = campus["first"].pk
    response = as_sam.post("/api/v1/spaces", payload, content_type=JSON)
    assert response.status_code == 422, response.content
    assert field in response.json()["detail"]
    assert not Space.objects.filter(code="B-1.78").exists()


def test_a_body_that_is_not_json_gets_422(as_sam):
    response = as_sam.post("/api/v1/tenants", "{not json", content_type=JSON)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"


def test_staff_create_a_tenant_and_a_member_cannot(as_sam, as_alice):
    payload = {"name": "Initech", "tier": "member", "contract_start": "2025-02-01"}
    assert as_alice.post("/api/v1/tenants", payload, content_type=JSON).status_code == 403
    response = as_sam.post("/api/v1/tenants", payload, content_type=JSON)
    assert response.status_code == 201, response.content
    assert Tenant.objects.get(name="Initech").tier == "member"


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "X", "tier": "gold", "contract_start": "2025-01-01"},
        {"name": "X", "tier": "member", "contract_start": "yesterday"},
        {
            "name": "X",
            "tier": "member",
            "contract_start": "2025-01-01",
            "contract_end": "2024-01-01",
        },
        {"name": "Acme", "tier": "member", "contract_start": "2025-01-01"},
        {"name": "X", "tier": "member", "contract_start": "2025-01-01", "contact_email": "nope"},
    ],
)
def test_bad_tenant_input_gets_422(as_sam, acme, payload):
    response = as_sam.post("/api/v1/tenants", payload, content_type=JSON)
    assert response.status_code == 422, response.content
    assert response.json()["detail"]


def test_a_member_sees_only_their_own_tenant(as_bob, acme, globex):
    assert [t["name"] for t in as_bob.get("/api/v1/tenants").json()["items"]] == ["Acme"]
    assert as_bob.get(f"/api/v1/tenants/{globex.pk}").status_code == 404


def test_a_tenant_member_cannot_see_another_tenants_people(as_bob, charlie, alice):
    assert as_bob.get(f"/api/v1/people/{charlie.pk}").status_code == 404
    emails = {p["email"] for p in as_bob.get("/api/v1/people").json()["items"]}
    assert emails == {"alice@acme.test", "bob@acme.test"}


def test_staff_see_everyone(as_sam, bob, charlie):
    emails = {p["email"] for p in as_sam.get("/api/v1/people").json()["items"]}
    assert {"bob@acme.test", "charlie@globex.test", "sam@campus.test"} <= emails


def test_a_tenant_admin_adds_a_colleague_to_their_own_tenant(as_alice, acme):
    payload = {"email": "Dave@Acme.test", "first_name": "Dave", "last_name": "Doe"}
    response = as_alice.post("/api/v1/people", payload, content_type=JSON)
    assert response.status_code == 201, response.content
    assert response.json()["tenant_id"] == acme.pk
    assert response.json()["email"] == "dave@acme.test"


def test_a_tenant_admin_cannot_make_staff_or_touch_another_tenant(as_alice, charlie, globex):
    staff = {"email": "x@acme.test", "first_name": "X", "last_name": "Y", "is_facility_staff": True}
    assert as_alice.post("/api/v1/people", staff, content_type=JSON).status_code == 403
    other = {"email": "y@acme.test", "first_name": "X", "last_name": "Y", "tenant_id": globex.pk}
    assert as_alice.post("/api/v1/people", other, content_type=JSON).status_code == 403
    patch = as_alice.patch(f"/api/v1/people/{charlie.pk}", {"first_name": "Z"}, content_type=JSON)
    assert patch.status_code == 404


def test_a_plain_member_cannot_add_people(as_bob):
    payload = {"email": "e@acme.test", "first_name": "E", "last_name": "F"}
    assert as_bob.post("/api/v1/people", payload, content_type=JSON).status_code == 403


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "first_name": "A", "last_name": "B", "is_facility_staff": True},
        {"email": "bob@acme.test", "first_name": "A", "last_name": "B", "is_facility_staff": True},
        {"email": "a@b.test", "first_name": "A", "last_name": "B"},
        {"email": "a@b.test", "first_name": "A", "last_name": "B", "tenant_id": 999999},
        {
            "email": "a@b.test",
            "first_name": "A",
            "last_name": "B",
            "is_facility_staff": True,
            "language": "de",
        },
    ],
)
def test_bad_person_input_gets_422(as_sam, bob, payload):
    response = as_sam.post("/api/v1/people", payload, content_type=JSON)
    assert response.status_code == 422, response.content


def test_patching_a_required_field_to_null_gets_422(as_sam, bob):
    response = as_sam.patch(f"/api/v1/people/{bob.pk}", {"first_name": None}, content_type=JSON)
    assert response.status_code == 422
    assert "first_name" in response.json()["detail"]


def test_staff_create_a_lease_and_overlaps_are_refused(as_sam, acme, globex, campus):
    office = campus["office_acme"]
    payload = {"tenant_id": globex.pk, "space_id": office.pk, "start": "2025-01-01"}
    response = as_sam.post("/api/v1/leases", payload, content_type=JSON)
    assert response.status_code == 422
    assert "already leased" in response.json()["detail"]
    lease = acme.leases.get()
    ended = as_sam.patch(f"/api/v1/leases/{lease.pk}", {"end": "2024-12-31"}, content_type=JSON)
    assert ended.status_code == 200
    assert as_sam.post("/api/v1/leases", payload, content_type=JSON).status_code == 201


def test_members_see_their_leases_only(as_bob, as_charlie, acme, globex):
    lease = acme.leases.get()
    assert [x["space_code"] for x in as_bob.get("/api/v1/leases").json()["items"]] == ["B-1.01"]
    assert as_charlie.get(f"/api/v1/leases/{lease.pk}").status_code == 404
    payload = {"tenant_id": acme.pk, "space_id": lease.space_id, "start": "2030-01-01"}
    assert as_bob.post("/api/v1/leases", payload, content_type=JSON).status_code == 403


def test_openapi_schema_and_docs_are_served(db):
    client = Client()
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    assert "/api/v1/me" in schema.json()["paths"]
    assert client.get("/api/v1/docs").status_code == 200


def test_a_staff_token_cannot_be_used_by_someone_who_lost_the_role(sam):
    client = api_client(sam)
    Person.objects.filter(pk=sam.pk).update(is_facility_staff=False, is_lab_technician=True)
    response = client.post(
        "/api/v1/tenants",
        {"name": "Z", "tier": "member", "contract_start": "2025-01-01"},
        content_type=JSON,
    )
    assert response.status_code == 403


def test_each_operation_declares_the_error_codes_it_answers_with_their_status(db):
    schema = Client().get("/api/v1/openapi.json").json()
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"detail", "code"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            errors = {
                int(s): codes_of(a) for s, a in operation["responses"].items() if int(s) >= 400
            }
            assert {401, 503} <= set(errors), (method, path)
            for status, codes in errors.items():
                assert codes and {CODES[c].status for c in codes} == {status}, (method, path)
    responses = schema["paths"]["/api/v1/me"]["get"]["responses"]
    assert not {"403", "404", "409", "422"} & set(responses)  # only a missing token, or busy
    booking = schema["paths"]["/api/v1/bookings"]["post"]["responses"]
    assert codes_of(booking["409"]) == ["conflict", "idempotency_key_in_use", "series_conflict"]
    assert {"not_qualified", "not_authorized", "tenant_suspended"} <= set(codes_of(booking["403"]))
    assert {"too_long", "outside_opening_hours", "quota_exceeded"} <= set(codes_of(booking["422"]))
    unlock = schema["paths"]["/api/v1/doors/{door_id}/unlock"]["post"]["responses"]
    assert codes_of(unlock["409"]) == ["controller_offline", "lockdown"]
    assert codes_of(unlock["503"]) == ["broker_unavailable", "busy"]


def codes_of(answer: dict) -> list[str]:
    schema = answer["content"]["application/json"]["schema"]
    return schema["allOf"][1]["properties"]["code"]["enum"]


def test_the_status_filter_of_bookings_declares_the_booking_statuses(db):
    schema = Client().get("/api/v1/openapi.json").json()
    parameters = schema["paths"]["/api/v1/bookings"]["get"]["parameters"]
    status = next(p for p in parameters if p["name"] == "status")["schema"]["anyOf"][0]
    assert status["enum"] == list(BookingStatus.values)
    equipment = schema["paths"]["/api/v1/equipment"]["get"]["parameters"]
    status = next(p for p in equipment if p["name"] == "status")["schema"]["anyOf"][0]
    assert status["enum"] == list(Equipment.Status.values)


def test_every_list_is_a_page_of_items_with_their_count(db):
    schema = Client().get("/api/v1/openapi.json").json()
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        if "get" not in operations or "200" not in operations["get"]["responses"]:
            continue
        content = operations["get"]["responses"]["200"].get("content", {})
        answer = content.get("application/json", {}).get("schema", {})
        answer = components[answer["$ref"].rsplit("/", 1)[1]] if "$ref" in answer else answer
        assert answer.get("type") != "array", f"GET {path} answers a bare list"
        if "items" in answer.get("properties", {}):
            assert set(answer["required"]) == {"items", "count"}, path
            names = {p["name"] for p in operations["get"]["parameters"]}
            assert {"limit", "offset"} <= names, path


def test_two_different_schemas_under_one_name_are_refused():
    """ninja files schemas by name, the last one winning: the document refuses that instead."""

    class Booking:
        class Status(StrEnum):
            CONFIRMED = "confirmed"

    class Badge:
        class Status(StrEnum):
            LOST = "lost"

    api = Api(urls_namespace="test-two-names")

    @api.get("/bookings")
    def bookings(request, status: Booking.Status): ...

    @api.get("/badges")
    def badges(request, status: Badge.Status): ...

    with pytest.raises(ImproperlyConfigured, match="'Status'"):
        api.get_openapi_schema(path_prefix="/")


HUGE = 2**70  # beyond any database integer


@pytest.mark.parametrize(
    "url, field",
    [
        (f"/api/v1/people?tenant={HUGE}", "tenant"),
        (f"/api/v1/credentials?holder=-{HUGE}", "holder"),
        (f"/api/v1/access-events?person={HUGE}", "person"),
        (f"/api/v1/access-events.csv?person={HUGE}", "person"),
        (f"/api/v1/people?tenant={2**63}", "tenant"),
    ],
)
def test_a_number_beyond_the_database_is_a_422_naming_the_field(as_sam, url, field):
    response = as_sam.get(url)
    assert response.status_code == 422, response.status_code
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_an_id_beyond_the_database_in_a_path_is_a_404(as_sam):
    assert as_sam.get(f"/api/v1/bookings/{HUGE}").status_code == 404


@pytest.mark.parametrize("name", ["offset", "limit"])
def test_a_page_beyond_the_database_is_a_422_naming_the_field(as_sam, name):
    response = as_sam.get(f"/api/v1/spaces?{name}={HUGE}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == name


def test_a_time_with_an_offset_postgresql_refuses_is_read_as_the_same_instant(as_sam):
    # Python accepts offsets up to ±23:59, PostgreSQL ±15:59: times are converted first.
    for url in [
        "/api/v1/bookings?from=2030-07-25T05:22:03%2B22:50",
        "/api/v1/access-events.csv?to=2030-08-11T23:16:15-17:30",
        "/api/v1/maintenance-windows?from=2030-07-25T05:22:03%2B22:50",
    ]:
        assert as_sam.get(url).status_code == 200, url


def test_a_time_beyond_year_9999_once_converted_is_a_422(as_sam):
    response = as_sam.get("/api/v1/bookings?to=9999-12-31T23:00-10:00")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"


# ------------------------------------------------------------------ CSRF only for a session


@pytest.mark.parametrize(
    "method, path",
    [("post", "/api/v1/bookings"), ("patch", "/api/v1/spaces/1"), ("post", "/api/v1/me/tokens")],
)
def test_an_anonymous_unsafe_request_is_unauthenticated_not_a_csrf_failure(db, method, path):
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)(path, {"name": "x"}, content_type=JSON)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "unauthenticated"


def test_a_cookie_that_names_no_session_is_anonymous_too(db):
    client = Client(enforce_csrf_checks=True)
    client.cookies["sessionid"] = "no-such-session"
    response = client.post("/api/v1/me/tokens", {"name": "x"}, content_type=JSON)
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"


def test_a_session_with_its_csrf_token_may_write(bob):
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    secret = "A" * 32  # Django takes an unmasked secret in the cookie and the header alike
    client.cookies["csrftoken"] = secret
    response = client.post(
        "/api/v1/me/tokens", {"name": "x"}, content_type=JSON, headers={"X-CSRFToken": secret}
    )
    assert response.status_code == 201, response.content


def test_a_bearer_token_needs_no_csrf_token(bob):
    _token, plaintext = ApiToken.issue(bob, "script")
    client = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {plaintext}"})
    response = client.post("/api/v1/me/tokens", {"name": "x"}, content_type=JSON)
    assert response.status_code == 201, response.content


# ------------------------------------------------------------------ strict types, sane dates


def assert_invalid(response, field: str):
    assert response.status_code == 422, response.content
    data = response.json()
    assert data["code"] == "invalid" and data["detail"], data
    assert field in [e["field"] for e in data["errors"]], data
    return data


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"contract_start": "1899-12-31"}, "contract_start"),
        ({"contract_start": "2101-01-01"}, "contract_start"),
        ({"contract_start": "0458-01-01"}, "contract_start"),
        ({"contract_start": 0}, "contract_start"),
        ({"contract_start": "2025-01-01T00:00"}, "contract_start"),
        ({"contract_start": "20250101"}, "contract_start"),
        ({"contract_start": "2025-01-01", "contract_end": "2999-01-01"}, "contract_end"),
    ],
)
def test_a_tenant_date_must_be_a_date_in_the_window(as_sam, payload, field):
    body = {"name": "Initech", "tier": "member", **payload}
    assert_invalid(as_sam.post("/api/v1/tenants", body, content_type=JSON), field)
    assert not Tenant.objects.filter(name="Initech").exists()


def test_a_lease_date_must_be_in_the_window(as_sam, acme, campus):
    body = {"tenant_id": acme.pk, "space_id": campus["office_globex"].pk, "start": "1066-10-14"}
    data = assert_invalid(as_sam.post("/api/v1/leases", body, content_type=JSON), "start")
    assert "2000-01-01" in data["detail"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"floor_id": True}, "floor_id"),
        ({"floor_id": "1"}, "floor_id"),
        ({"capacity": True}, "capacity"),
        ({"capacity": 6.0}, "capacity"),
        ({"bookable": 0}, "bookable"),
        ({"bookable": "true"}, "bookable"),
        ({"is_active": 1}, "is_active"),
    ],
)
def test_loose_types_in_a_space_are_a_422(as_sam, campus, change, field):
    body = {"floor_id": campus["first"].pk, "code": "B-1.78", "name": "x", "kind": "office"}
    body.update(change)
    assert_invalid(as_sam.post("/api/v1/spaces", body, content_type=JSON), field)
    assert not Space.objects.filter(code="B-1.78").exists()


@pytest.mark.parametrize(
    "query, field",
    [
        ("floor=1.0", "floor"),
        ("floor=true", "floor"),
        ("level=+1", "level"),
        ("min_capacity=1e3", "min_capacity"),
        ("bookable=1", "bookable"),
        ("bookable=yes", "bookable"),
        ("limit=5.0", "limit"),
    ],
)
def test_loose_query_parameters_are_a_422(as_bob, campus, query, field):
    assert_invalid(as_bob.get(f"/api/v1/spaces?{query}"), field)


def test_strict_query_parameters_still_filter(as_bob, campus):
    first = campus["first"].pk
    response = as_bob.get(f"/api/v1/spaces?bookable=true&level=1&floor={first}")
    assert response.status_code == 200, response.content
    assert [s["code"] for s in response.json()["items"]] == ["B-1.50"]
    response = as_bob.get(f"/api/v1/spaces?bookable=false&floor={first}&limit=5")
    assert {s["code"] for s in response.json()["items"]} == {"B-1.01", "B-1.02"}
