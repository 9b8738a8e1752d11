"""Fuzzing the API from its own OpenAPI schema (schemathesis, in-process through WSGI).

Every operation gets generated requests, valid and invalid, as facility staff and as a tenant
member, with a bearer token. Whatever comes in, the API answers without a server error, with
a status its schema declares, in the declared content type and shape.

Bounded (25 generated requests per operation and caller) and derandomized, so that CI sends
the same requests every run. The database is the test's, on a small campus whose ids the
generated requests may hit; each request runs in a savepoint, so that one PostgreSQL refuses
does not abort the test's transaction for the next ones.
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from access import commands
from campus.models import ApiToken
from config.wsgi import application
from tests.test_authorization import World

# negative_data_rejection is left out on purpose: free-text fields (titles, notes, reasons)
# accept any string, and the API reads naive times as local time, so "invalid" data generated
# from the schema's types is often valid input here and rightly answered 2xx.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

FUZZ = settings(
    max_examples=25,
    derandomize=True,  # the same examples on every run: a stable CI
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


# The coverage phase (boundary values and every kind of invalid input, deterministic) adds
# about 3,400 requests per caller, a minute each: FUZZ_COVERAGE=1 runs it, CI does not.
COVERAGE = os.environ.get("FUZZ_COVERAGE") == "1"

# Loaded at collection, from the app itself (the schema view touches no database). Not with
# schemathesis.pytest.from_fixture: its lazy loader sets `Function._nodeid`, which pytest 9.2
# does not have (AttributeError), while this eager form gives each operation its own test.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json",
    application,
    config=schemathesis.Config.from_dict(
        {"seed": 20260302, "phases": {"coverage": {"enabled": COVERAGE}}}
    ),
)


@pytest.fixture
def in_test_transaction():
    """Keep the test's database connection across requests, as Django's test client does:
    the WSGI handler would otherwise close it at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def small_campus(
    in_test_transaction, campus, acme, globex, alice, bob, charlie, tina, sam, monkeypatch
):
    """The cast and one of each object, so that generated ids sometimes exist. Door commands
    are published nowhere: no broker in this test, and a 503 would hide the rest."""
    monkeypatch.setattr(commands.publisher, "publish", lambda topic, payload, retain: None)
    world = World(campus, acme, {"bob": bob, "sam": sam})
    for name in ("token", "booking", "request_pending", "offer", "session", "incident"):
        getattr(world, name)  # the session before the incident: that puts the machine "to check"
    for name in ("door", "badge", "visit"):
        getattr(world, name)
    return world


def bearer(person) -> dict:
    return {"Authorization": f"Bearer {ApiToken.issue(person, 'fuzz')[1]}"}


@pytest.fixture
def as_staff(small_campus, sam):
    return bearer(sam)


@pytest.fixture
def as_member(small_campus, bob):
    return bearer(bob)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ
def test_the_api_holds_its_contract_for_staff(case, as_staff):
    with transaction.atomic():  # a savepoint per request: see on_out_of_range
        case.call_and_validate(headers=as_staff, checks=CHECKS)


@pytest.mark.django_db
@schema.parametrize()
@FUZZ
def test_the_api_holds_its_contract_for_a_tenant_member(case, as_member):
    with transaction.atomic():
        case.call_and_validate(headers=as_member, checks=CHECKS)
