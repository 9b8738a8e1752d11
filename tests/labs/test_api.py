"""The labs API: who may read and write what, and tenant isolation on every endpoint
(another tenant's objects answer 404, like missing ones)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bookings.engine import Slot, book
from labs import maintenance, sessions
from labs.models import Equipment, Qualification
from tests.bookings.conftest import NOW, at
from tests.labs.conftest import make_equipment, qualify


def current_slot():
    """A 15-minute-aligned hour that covers the real clock (the API uses it)."""
    now = timezone.now()
    start = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    return start, start + timedelta(hours=1)


@pytest.fixture
def running(bob, printer):
    """bob's booking of the 3D printer covering now (booked yesterday)."""
    qualify(bob, printer, since=timezone.now() - timedelta(days=30))
    start, end = current_slot()
    return book(bob, Slot(printer.resource, start, end), now=start - timedelta(days=1))


ENDPOINTS = [
    ("get", "/api/v1/equipment"),
    ("get", "/api/v1/equipment/1"),
    ("post", "/api/v1/equipment/1/sign-off"),
    ("get", "/api/v1/qualifications"),
    ("post", "/api/v1/qualifications"),
    ("post", "/api/v1/qualifications/1/revoke"),
    ("get", "/api/v1/maintenance-windows"),
    ("post", "/api/v1/maintenance-windows"),
    ("get", "/api/v1/incidents"),
    ("post", "/api/v1/incidents"),
    ("post", "/api/v1/incidents/1/close"),
    ("get", "/api/v1/sessions"),
    ("post", "/api/v1/sessions"),
    ("post", "/api/v1/sessions/1/stop"),
    ("get", "/api/v1/usage?month=2026-03"),
    ("get", "/api/v1/usage.csv?month=2026-03"),
]


@pytest.mark.parametrize("method, path", ENDPOINTS)
def test_every_labs_endpoint_needs_authentication(db, method, path):
    response = getattr(Client(), method)(path, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_equipment_lists_status_next_free_slot_and_the_callers_price(
    as_bob, as_charlie, scope, chamber, sam
):
    maintenance.set_status(chamber, "out_of_order", by=sam, reason="Broken antenna")
    body = as_bob.get("/api/v1/equipment").json()
    assert body["count"] == 2
    by_code = {e["code"]: e for e in body["items"]}
    assert by_code["EQ-CEM"]["status"] == "out_of_order"
    assert by_code["EQ-CEM"]["next_free_slot"] is None
    assert by_code["EQ-CEM"]["companions"] == ["B-0.10-CTRL"]
    assert (by_code["EQ-CEM"]["warm_up_minutes"], by_code["EQ-CEM"]["cool_down_minutes"]) == (
        30,
        15,
    )
    assert by_code["EQ-OSC-1"]["next_free_slot"]["start"]
    assert by_code["EQ-OSC-1"]["price_per_hour_cents"] == 1000
    charlie_view = as_charlie.get(f"/api/v1/equipment/{scope.pk}").json()
    assert charlie_view["price_per_hour_cents"] == 2000
    detail = as_bob.get(f"/api/v1/equipment/{chamber.pk}").json()
    assert detail["status_history"][0]["reason"] == "Broken antenna"
    assert as_bob.get("/api/v1/equipment/999999").status_code == 404


def test_technicians_record_and_revoke_qualifications_and_people_read_their_own(
    as_tina, as_bob, as_charlie, as_alice, bob, charlie, scope
):
    payload = {
        "person_id": bob.pk,
        "equipment_id": scope.pk,
        "valid_until": "2030-01-01T00:00:00+01:00",
        "renew_on_use_months": 6,
    }
    assert as_bob.post("/api/v1/qualifications", payload, "application/json").status_code == 403
    created = as_tina.post("/api/v1/qualifications", payload, "application/json")
    assert created.status_code == 201, created.content
    q = created.json()
    assert (q["trained_by_id"], q["in_force"], q["equipment_code"]) == (
        created.wsgi_request.auth.pk,
        True,
        "EQ-OSC-1",
    )
    qualify(charlie, cls="oscilloscope")
    assert [x["person_id"] for x in as_bob.get("/api/v1/qualifications").json()["items"]] == [
        bob.pk
    ]
    assert [x["person_id"] for x in as_charlie.get("/api/v1/qualifications").json()["items"]] == [
        charlie.pk
    ]
    assert as_charlie.get(f"/api/v1/qualifications?person={bob.pk}").json()["count"] == 0
    assert as_alice.get("/api/v1/qualifications").json()["count"] == 1  # her tenant's: bob
    assert as_bob.post(f"/api/v1/qualifications/{q['id']}/revoke").status_code == 403
    revoked = as_tina.post(f"/api/v1/qualifications/{q['id']}/revoke")
    assert revoked.json()["in_force"] is False
    assert as_tina.post(f"/api/v1/qualifications/{q['id']}/revoke").status_code == 409


@pytest.mark.parametrize(
    "payload",
    [
        {"equipment_class": "oscilloscope", "equipment_id": 1},
        {},
        {"equipment_class": "Bad Class"},
        {"equipment_class": "oscilloscope", "surprise": 1},
        {"equipment_class": "oscilloscope", "renew_on_use_months": 0},
    ],
)
def test_a_bad_qualification_is_a_422(as_tina, bob, payload):
    response = as_tina.post(
        "/api/v1/qualifications", {"person_id": bob.pk, **payload}, "application/json"
    )
    assert response.status_code == 422, response.content


def test_a_qualification_ending_before_it_starts_is_a_422(as_tina, bob):
    response = as_tina.post(
        "/api/v1/qualifications",
        {
            "person_id": bob.pk,
            "equipment_class": "oscilloscope",
            "valid_from": "2026-03-02T08:00:00",
            "valid_until": "2026-03-01T08:00:00",
        },
        "application/json",
    )
    assert response.status_code == 422
    assert (
        as_tina.post(
            "/api/v1/qualifications",
            {"person_id": 999999, "equipment_class": "oscilloscope"},
            "application/json",
        ).json()["code"]
        == "invalid"
    )


def test_a_maintenance_window_lists_the_bookings_it_replaces(as_tina, as_bob, bob, scope):
    qualify(bob, scope, since=timezone.now() - timedelta(days=1))
    start = (timezone.now() + timedelta(days=7)).replace(hour=9, minute=0, second=0, microsecond=0)
    booked = book(bob, Slot(scope.resource, start, start + timedelta(hours=2)))
    payload = {
        "equipment_id": scope.pk,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=4)).isoformat(),
        "title": "Calibration",
    }
    assert (
        as_bob.post("/api/v1/maintenance-windows", payload, "application/json").status_code == 403
    )
    response = as_tina.post("/api/v1/maintenance-windows", payload, "application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert [b["id"] for b in body["affected"]] == [booked.pk]
    assert body["affected"][0]["status"] == "cancelled"
    assert body["offers"][0]["booking_id"] == booked.pk
    assert body["window"]["is_maintenance"] is True
    listed = as_bob.get(f"/api/v1/maintenance-windows?equipment={scope.pk}").json()
    assert [w["id"] for w in listed["items"]] == [body["window"]["id"]]


def test_incidents_are_reported_by_anyone_seen_by_their_tenant_and_closed_by_technicians(
    as_charlie, as_bob, as_tina, scope
):
    response = as_charlie.post(
        "/api/v1/incidents",
        {"equipment_id": scope.pk, "severity": "out_of_order", "description": "No trace"},
        "application/json",
    )
    assert response.status_code == 201, response.content
    incident = response.json()
    assert Equipment.objects.get(pk=scope.pk).status == "out_of_order"
    assert as_bob.get("/api/v1/incidents").json()["count"] == 0
    assert as_bob.get(f"/api/v1/incidents/{incident['id']}").status_code == 404
    assert as_charlie.get(f"/api/v1/incidents/{incident['id']}").status_code == 200
    assert (
        as_bob.post(f"/api/v1/incidents/{incident['id']}/close", {}, "application/json").status_code
        == 403
    )
    closed = as_tina.post(
        f"/api/v1/incidents/{incident['id']}/close", {"resolution": "Probe"}, "application/json"
    )
    assert closed.json()["closed_by_id"] is not None
    assert Equipment.objects.get(pk=scope.pk).status == "available"
    bad = as_charlie.post(
        "/api/v1/incidents",
        {"equipment_id": scope.pk, "severity": "meh", "description": "x"},
        "application/json",
    )
    assert bad.status_code == 422


def test_sessions_start_and_stop_from_the_api_within_the_tenant(
    as_bob, as_charlie, as_alice, running, printer
):
    started = as_bob.post("/api/v1/sessions", {"equipment_id": printer.pk}, "application/json")
    assert started.status_code == 201, started.content
    session = started.json()
    assert (session["source"], session["booking_id"]) == ("api", running.pk)
    assert as_charlie.get("/api/v1/sessions").json()["count"] == 0
    assert (
        as_charlie.post(
            f"/api/v1/sessions/{session['id']}/stop", {}, "application/json"
        ).status_code
        == 404
    )
    busy = as_bob.post("/api/v1/sessions", {"equipment_id": printer.pk}, "application/json")
    assert (busy.status_code, busy.json()["code"]) == (409, "equipment_busy")
    shown = as_bob.get(f"/api/v1/equipment/{printer.pk}").json()
    assert (shown["current_session"], shown["relay_online"], shown["powered"]) == (
        session["id"],
        None,
        None,
    )
    listed = {e["id"]: e for e in as_bob.get("/api/v1/equipment").json()["items"]}
    assert listed[printer.pk]["current_session"] == session["id"]
    stopped = as_alice.post(
        f"/api/v1/sessions/{session['id']}/stop", {"energy_wh": 12}, "application/json"
    )
    assert stopped.status_code == 200
    assert (stopped.json()["stop_reason"], stopped.json()["energy_wh"]) == ("manual", 12)
    assert as_bob.get(f"/api/v1/equipment/{printer.pk}").json()["current_session"] is None


def test_a_session_is_refused_without_a_booking_or_on_a_controlled_machine(
    as_charlie, charlie, printer, scope
):
    qualify(charlie, printer, since=timezone.now() - timedelta(days=1))
    response = as_charlie.post("/api/v1/sessions", {"equipment_id": printer.pk}, "application/json")
    assert (response.status_code, response.json()["code"]) == (409, "no_booking")
    Equipment.objects.filter(pk=scope.pk).update(
        controller_kind="tasmota", tasmota_topic="osc1", controller_id="ctrl-lab"
    )
    response = as_charlie.post("/api/v1/sessions", {"equipment_id": scope.pk}, "application/json")
    assert (response.status_code, response.json()["code"]) == (409, "controller_managed")
    response = as_charlie.post("/api/v1/sessions", {"equipment_id": 999999}, "application/json")
    assert response.status_code == 422


@pytest.fixture
def used(bob, charlie, room):
    book(bob, Slot(room, at(3, 10), at(3, 11)), now=NOW)
    book(charlie, Slot(room, at(3, 14), at(3, 15)), now=NOW)


def test_usage_is_for_tenant_admins_and_staff_only(
    as_alice, as_bob, as_sam, as_tina, as_charlie, acme, globex, used
):
    mine = as_alice.get("/api/v1/usage?month=2026-03")
    assert mine.status_code == 200
    assert (mine.json()["tenant"], mine.json()["totals"]["total_cents"]) == ("Acme", 2000)
    assert as_alice.get(f"/api/v1/usage?month=2026-03&tenant={globex.pk}").status_code == 404
    assert as_alice.get(f"/api/v1/usage.csv?month=2026-03&tenant={globex.pk}").status_code == 404
    assert as_bob.get("/api/v1/usage?month=2026-03").status_code == 403
    assert as_charlie.get("/api/v1/usage?month=2026-03").status_code == 403
    assert as_tina.get(f"/api/v1/usage?month=2026-03&tenant={acme.pk}").status_code == 403
    assert as_sam.get("/api/v1/usage?month=2026-03").status_code == 422
    theirs = as_sam.get(f"/api/v1/usage?month=2026-03&tenant={globex.pk}").json()
    assert (theirs["tier"], theirs["totals"]["total_cents"]) == ("non_member", 3500)
    assert as_sam.get("/api/v1/usage?month=2026-03&tenant=999999").status_code == 404


@pytest.mark.parametrize("month", ["2026-13", "march", "2026-3", ""])
def test_a_bad_month_is_a_422(as_alice, month):
    assert as_alice.get(f"/api/v1/usage?month={month}").status_code == 422


def test_the_usage_csv_downloads_with_a_bom_and_decimal_commas(as_alice, used):
    response = as_alice.get("/api/v1/usage.csv?month=2026-03&decimal=comma")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    body = response.content
    assert body.startswith("\ufeff".encode())
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0] == "date;kind;resource;name;basis;minutes;energy_wh;unit_price;amount"
    assert lines[1].endswith(";20,00;20,00")
    assert as_alice.get("/api/v1/usage.csv?month=2026-03&decimal=dot").status_code == 422


def test_a_technician_signs_off_a_machine_to_check(as_tina, as_bob, scope):
    Equipment.objects.filter(pk=scope.pk).update(status="to_check")
    assert as_bob.post(f"/api/v1/equipment/{scope.pk}/sign-off").status_code == 403
    response = as_tina.post(f"/api/v1/equipment/{scope.pk}/sign-off")
    assert response.json()["status"] == "available"
    again = as_tina.post(f"/api/v1/equipment/{scope.pk}/sign-off")
    assert (again.status_code, again.json()["code"]) == (409, "not_to_check")


def test_a_session_started_from_the_portal_marks_the_qualification_used(bob, running, printer):
    session = sessions.start_session(bob, printer, source="portal")
    assert Qualification.objects.get(person=bob).last_used_at == session.started_at


def test_the_equipment_list_costs_the_same_queries_for_2_or_8_machines(
    as_bob, scope, chamber, campus
):
    as_bob.get("/api/v1/equipment")  # loads the catalogue, stamps the token
    with CaptureQueriesContext(connection) as two:
        body = as_bob.get("/api/v1/equipment").json()
    assert body["count"] == 2 and body["items"][1]["next_free_slot"]["start"]
    for i in range(6):
        make_equipment(f"EQ-X{i}", f"Extra {i}", "oscilloscope", campus["lab"])
    as_bob.get("/api/v1/equipment")
    with CaptureQueriesContext(connection) as eight:
        body = as_bob.get("/api/v1/equipment").json()
    assert body["count"] == 8 and all(e["next_free_slot"] for e in body["items"][2:])
    assert len(eight) == len(two)


# ------------------------------------------------------------------ strict types, sane dates


def assert_invalid(response, field: str):
    assert response.status_code == 422, response.content
    data = response.json()
    assert data["code"] == "invalid", data
    assert field in [e["field"] for e in data["errors"]], data


@pytest.mark.parametrize(
    "change, field",
    [
        ({"person_id": True}, "person_id"),
        ({"valid_from": 1797591600}, "valid_from"),
        ({"valid_until": "2250-01-01T00:00"}, "valid_until"),
        ({"renew_on_use_months": 12.0}, "renew_on_use_months"),
    ],
)
def test_loose_or_out_of_window_qualification_input_is_a_422(as_tina, bob, change, field):
    body = {"person_id": bob.pk, "equipment_class": "oscilloscope", **change}
    assert_invalid(as_tina.post("/api/v1/qualifications", body, "application/json"), field)
    assert not Qualification.objects.exists()


@pytest.mark.parametrize(
    "query, field",
    [
        ("/maintenance-windows?from=0.5", "from"),
        ("/maintenance-windows?to=1797591600", "to"),
        ("/maintenance-windows?equipment=true", "equipment"),
        ("/incidents?open=1", "open"),
        ("/sessions?open=0", "open"),
        ("/qualifications?valid_now=yes", "valid_now"),
        ("/usage?month=0458-03", "month"),
        ("/usage?month=2101-01", "month"),
    ],
)
def test_loose_or_out_of_window_labs_queries_are_a_422(as_alice, query, field):
    assert_invalid(as_alice.get(f"/api/v1{query}"), field)


def test_stopping_a_session_takes_an_integer_energy(as_bob, running, printer):
    session = sessions.start_session(running.person, printer, source="api")
    body = {"energy_wh": True}
    response = as_bob.post(f"/api/v1/sessions/{session.pk}/stop", body, "application/json")
    assert_invalid(response, "energy_wh")
