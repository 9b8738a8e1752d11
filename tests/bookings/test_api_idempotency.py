"""`Idempotency-Key` on the creating operations: a retry after a lost answer gets the first
answer, never a second booking nor a 409 against the caller's own booking.

The key is the caller's (one person's keys never meet another's); the answer is kept with
the creation, in its transaction, for 24 hours; the same key with another request is a 422.
"""

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from bookings import engine, jobs
from bookings.engine import Slot, book
from bookings.models import Booking, WaitlistEntry
from campus.models import IdempotentRequest, Tenant
from tests.bookings.test_api import always_open, body, tomorrow  # noqa: F401 (a fixture)
from tests.bookings.test_race import race
from tests.conftest import api_client

JSON = "application/json"
KEY = "3f1c0a6e-5b1e-4c1a-9d43-8d2f5b7e9a10"


def post(client, payload, key=KEY, path="/api/v1/bookings"):
    return client.post(path, payload, content_type=JSON, headers={"Idempotency-Key": key})


@pytest.fixture
def slot(room, always_open):  # noqa: F811
    return body(room, tomorrow(10), tomorrow(11), title="Review")


@pytest.mark.django_db
def test_a_retry_with_the_same_key_gets_the_first_answer(as_bob, slot):
    first = post(as_bob, slot)
    assert first.status_code == 201, first.content
    again = post(as_bob, slot)
    assert again.status_code == 201, again.content
    assert again.content == first.content
    assert again["Content-Type"] == first["Content-Type"]
    assert again["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Booking.objects.count() == 1


@pytest.mark.django_db
def test_without_a_key_the_retry_meets_the_first_booking(as_bob, slot):
    assert as_bob.post("/api/v1/bookings", slot, content_type=JSON).status_code == 201
    assert as_bob.post("/api/v1/bookings", slot, content_type=JSON).status_code == 409


@pytest.mark.django_db
def test_the_same_key_for_another_request_is_a_422(as_bob, slot, room):
    assert post(as_bob, slot).status_code == 201
    other = post(as_bob, {**slot, "end": tomorrow(12).isoformat()})
    assert other.status_code == 422, other.content
    assert other.json()["code"] == "idempotency_key_reused"
    elsewhere = post(as_bob, body(room, tomorrow(14), tomorrow(15)), path="/api/v1/waitlist")
    assert elsewhere.status_code == 422 and elsewhere.json()["code"] == "idempotency_key_reused"
    assert Booking.objects.count() == 1 and not WaitlistEntry.objects.exists()


@pytest.mark.django_db
def test_the_same_body_written_differently_is_the_same_request(as_bob, slot):
    assert post(as_bob, slot).status_code == 201
    reordered = dict(reversed(list(slot.items())))
    assert post(as_bob, reordered)["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_key_is_the_callers_own(as_bob, as_charlie, slot, room, charlie):
    bobs = post(as_bob, slot)
    charlies = post(as_charlie, body(room, tomorrow(14), tomorrow(15)))
    assert charlies.status_code == 201, charlies.content
    assert charlies.json()["person_id"] == charlie.pk != bobs.json()["person_id"]
    assert Booking.objects.count() == 2


@pytest.mark.django_db
def test_an_error_answer_is_not_kept_and_the_retry_runs_again(as_bob, slot, charlie, room):
    charlies = book(charlie, Slot(room, tomorrow(10), tomorrow(11)))
    refused = post(as_bob, slot)
    assert refused.status_code == 409
    assert not IdempotentRequest.objects.exists()
    engine.cancel(charlie, charlies)
    retried = post(as_bob, slot)
    assert retried.status_code == 201, retried.content
    assert not retried.has_header("Idempotent-Replayed")


@pytest.mark.django_db
def test_an_invalid_request_is_not_kept_either(as_bob, slot):
    assert post(as_bob, {**slot, "attendees": 0}).status_code == 422
    assert post(as_bob, slot).status_code == 201


@pytest.mark.django_db
def test_a_key_is_forgotten_after_a_day_by_the_periodic_jobs(as_bob, slot):
    assert post(as_bob, slot).status_code == 201
    assert jobs.run_due(timezone.now() + timedelta(hours=23))["idempotency_keys"] == 0
    assert jobs.run_due(timezone.now() + timedelta(hours=25))["idempotency_keys"] == 1
    assert not IdempotentRequest.objects.exists()


@pytest.mark.django_db
def test_an_expired_key_not_yet_removed_is_not_replayed(as_bob, slot):
    assert post(as_bob, slot).status_code == 201
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=25))
    later = post(
        as_bob, {**slot, "start": tomorrow(14).isoformat(), "end": tomorrow(15).isoformat()}
    )
    assert later.status_code == 201 and not later.has_header("Idempotent-Replayed")
    assert Booking.objects.count() == 2 and IdempotentRequest.objects.count() == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "two words", "tab\there"])
@pytest.mark.django_db
def test_a_key_is_1_to_255_visible_ascii_characters(as_bob, slot, key):
    response = post(as_bob, slot, key=key)
    assert response.status_code == 422, response.content
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert not Booking.objects.exists()


@pytest.mark.django_db
def test_other_creating_operations_replay_too(as_sam):
    tenant = {"name": "Initech", "tier": "member", "contract_start": "2025-02-01"}
    first = post(as_sam, tenant, path="/api/v1/tenants")
    assert first.status_code == 201, first.content
    again = post(as_sam, tenant, path="/api/v1/tenants")
    assert again.status_code == 201 and again.json() == first.json()
    assert Tenant.objects.filter(name="Initech").count() == 1


def test_every_creating_operation_documents_the_header(db):
    from config.api import api

    schema = api.get_openapi_schema()
    creating, documented = set(), set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method == "post" and any(str(s) == "201" for s in operation["responses"]):
                creating.add(path)
            header = [
                p
                for p in operation.get("parameters", [])
                if p["in"] == "header" and p["name"] == "Idempotency-Key"
            ]
            if header:
                assert not header[0]["required"] and header[0]["schema"]["maxLength"] == 255
                documented.add(path)
    # A token is shown once and kept only as its digest: its answer is never stored.
    assert documented == creating - {"/api/v1/me/tokens"}
    assert "/api/v1/bookings" in documented


# ------------------------------------------------------------------ with real transactions


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_booking_leaves_neither_the_booking_nor_the_key(
    as_bob, slot, monkeypatch
):
    # A server killed mid-request rolls its transaction back: so must any failure between
    # writing the booking and keeping its answer.
    real = IdempotentRequest.save

    def fail_to_keep_the_answer(self, *args, **kwargs):
        if kwargs.get("update_fields"):
            raise OperationalError("the server went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(IdempotentRequest, "save", fail_to_keep_the_answer)
    failed = post(as_bob, slot)
    assert failed.status_code == 503, failed.content
    assert not Booking.objects.exists() and not IdempotentRequest.objects.exists()
    monkeypatch.setattr(IdempotentRequest, "save", real)
    assert post(as_bob, slot).status_code == 201
    assert Booking.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_engine_still_retries_a_deadlock_inside_a_keyed_request(as_bob, slot, monkeypatch):
    real = engine.lock_resources
    calls = []

    def deadlock_once(ids):
        calls.append(1)
        if len(calls) == 1:
            if connection.vendor == "postgresql":
                # A real error from the server, which aborts the engine's savepoint.
                with connection.cursor() as cursor:
                    cursor.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' "
                        "USING ERRCODE = '40P01'; END $$"
                    )
            raise OperationalError("database is locked")
        return real(ids)

    monkeypatch.setattr(engine, "lock_resources", deadlock_once)
    first = post(as_bob, slot)
    assert first.status_code == 201, first.content
    assert len(calls) == 2
    assert post(as_bob, slot).content == first.content
    assert Booking.objects.count() == 1 and IdempotentRequest.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_create_once_and_get_one_answer(bob, slot):
    clients = [api_client(bob) for _ in range(4)]  # one caller, four connections

    results = race(len(clients), lambda i: post(clients[i], slot))

    assert all(kind == "ok" for kind, _r in results), results
    answers = [r for _kind, r in results]
    assert [r.status_code for r in answers] == [201] * len(clients), [r.content for r in answers]
    assert len({r.content for r in answers}) == 1
    assert sum(r.has_header("Idempotent-Replayed") for r in answers) == len(clients) - 1
    assert Booking.objects.count() == 1 and IdempotentRequest.objects.count() == 1
